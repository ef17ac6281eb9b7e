//! {{name}}: {{description}}.

use kiln_sdk::{Config, Descriptor, Error, Event, Tracker};

struct Plugin;

impl Tracker for Plugin {
    fn describe() -> Descriptor {
        Descriptor::new("{{name}}", "{{description}}")
    }

    fn on_events(run_id: String, events: Vec<Event>, _config: Config) -> Result<(), Error> {
        for event in events {
            if let Event::Metric(m) = event {
                kiln_sdk::log::info(&format!(
                    "{run_id}: {} = {} at step {}",
                    m.key, m.value, m.step
                ));
            }
        }
        Ok(())
    }
}

kiln_sdk::export_tracker!(Plugin);
