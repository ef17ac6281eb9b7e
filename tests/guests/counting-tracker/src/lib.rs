//! A tracker that checks the events it receives: it refuses a batch holding a
//! non-finite metric, and logs how many events of each kind arrived.

use kiln_sdk::{Config, Descriptor, Error, Event, Tracker};

struct CountingTracker;

impl Tracker for CountingTracker {
    fn describe() -> Descriptor {
        Descriptor::new("counting-tracker", "Counts and checks run events")
    }

    fn on_events(run_id: String, events: Vec<Event>, _config: Config) -> Result<(), Error> {
        let mut metrics = 0;
        let mut other = 0;
        for e in &events {
            match e {
                Event::Metric(m) if !m.value.is_finite() => {
                    return Err(Error::invalid_input(format!(
                        "metric `{}` is not finite",
                        m.key
                    )));
                }
                Event::Metric(_) => metrics += 1,
                _ => other += 1,
            }
        }
        kiln_sdk::log::info(&format!(
            "run {run_id}: {metrics} metrics, {other} other events"
        ));
        Ok(())
    }
}

kiln_sdk::export_tracker!(CountingTracker);
