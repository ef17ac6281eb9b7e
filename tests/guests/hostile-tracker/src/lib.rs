//! A tracker that misbehaves on request, to prove the sandbox holds for trackers: `mode`
//! names one of the attacks every hostile guest makes (`../hostile/src/attacks.rs`); a
//! tracker returns nothing, so an attack's text is dropped (a failed one is the error).
//! `accept` (the default) takes the events and does nothing.

#[path = "../../hostile/src/attacks.rs"]
mod attacks;

use kiln_sdk::{Config, Descriptor, Error, Event, Tracker};

struct HostileTracker;

impl Tracker for HostileTracker {
    fn describe() -> Descriptor {
        Descriptor::new("hostile-tracker", "A tracker that misbehaves on request")
            .config(
                "mode",
                Some("accept"),
                &format!("accept, or an attack: {}", attacks::MODES),
            )
            .config("path", None, "the file for read; HOST:PORT for connect")
            .config("mib", Some("200"), "the size of huge's text, in MiB")
    }

    fn on_events(_run_id: String, _events: Vec<Event>, config: Config) -> Result<(), Error> {
        match config.get("mode").unwrap_or("accept") {
            "accept" => Ok(()),
            mode => attacks::attack(mode, &config)
                .ok_or_else(|| Error::invalid_config(format!("unknown mode `{mode}`")))?
                .map(drop),
        }
    }
}

kiln_sdk::export_tracker!(HostileTracker);
