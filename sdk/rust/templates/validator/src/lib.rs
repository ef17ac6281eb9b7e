//! {{name}}: {{description}}.

use kiln_sdk::{Check, Config, Descriptor, Error, Inputs, Severity, Validator, ValueKind};

struct Plugin;

impl Validator for Plugin {
    fn describe() -> Descriptor {
        Descriptor::new("{{name}}", "{{description}}")
            .input("table", ValueKind::Table, "the table to check")
            .config("min_rows", Some("1"), "the fewest rows accepted")
    }

    fn validate(mut inputs: Inputs, config: Config) -> Result<Vec<Check>, Error> {
        let min_rows: usize = config.parse_or("min_rows", 1)?;
        let rows = inputs.table("table")?.num_rows();
        Ok(vec![
            Check::new("rows", rows >= min_rows, Severity::Error)
                .observed(rows as f64)
                .detail(format!("{rows} rows, at least {min_rows} wanted")),
        ])
    }
}

kiln_sdk::export_validator!(Plugin);
