//! A validator that misbehaves on request, to prove the sandbox holds for validators:
//! `mode` names one of the attacks every hostile guest makes (`../hostile/src/attacks.rs`),
//! whose text becomes the detail of its one passing check; `pass` (the default) checks
//! nothing and passes.

#[path = "../../hostile/src/attacks.rs"]
mod attacks;

use kiln_sdk::{Check, Config, Descriptor, Error, Inputs, Severity, Validator, ValueKind};

struct HostileValidator;

impl Validator for HostileValidator {
    fn describe() -> Descriptor {
        Descriptor::new(
            "hostile-validator",
            "A validator that misbehaves on request",
        )
        .optional_input("in", ValueKind::Any, "anything: it is not looked at")
        .config(
            "mode",
            Some("pass"),
            &format!("pass, or an attack: {}", attacks::MODES),
        )
        .config("path", None, "the file for read; HOST:PORT for connect")
        .config("mib", Some("200"), "the size of huge's text, in MiB")
    }

    fn validate(_inputs: Inputs, config: Config) -> Result<Vec<Check>, Error> {
        let detail = match config.get("mode").unwrap_or("pass") {
            "pass" => String::new(),
            mode => attacks::attack(mode, &config)
                .ok_or_else(|| Error::invalid_config(format!("unknown mode `{mode}`")))??,
        };
        Ok(vec![
            Check::new("attack", true, Severity::Info).detail(detail),
        ])
    }
}

kiln_sdk::export_validator!(HostileValidator);
