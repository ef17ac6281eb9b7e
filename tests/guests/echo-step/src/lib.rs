//! The trivial step: returns its inputs unchanged (`in` comes back as `out`, as its
//! descriptor says). It touches nothing but its arguments, so instantiate+call benchmarks
//! measure the runtime, not the plugin.

use kiln_sdk::{Config, Descriptor, Error, Inputs, Outputs, Step, ValueKind};

struct Echo;

impl Step for Echo {
    fn describe() -> Descriptor {
        Descriptor::new("echo-step", "Returns its inputs")
            .optional_input("in", ValueKind::Any, "anything")
            .output("out", ValueKind::Any, "the same values")
    }

    fn run(inputs: Inputs, _config: Config) -> Result<Outputs, Error> {
        let mut out = Outputs::new();
        for v in inputs.into_inner() {
            let name = if v.name == "in" { "out" } else { &v.name };
            out.push(name, v.value);
        }
        Ok(out)
    }
}

kiln_sdk::export_step!(Echo);
