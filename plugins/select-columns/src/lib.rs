//! Keeps the listed columns (in that order) or drops the listed ones.

use kiln_sdk::{Config, Descriptor, Error, Inputs, Outputs, Step, Table, ValueKind};

struct SelectColumns;

impl Step for SelectColumns {
    fn describe() -> Descriptor {
        Descriptor::new("select-columns", "Keeps or drops table columns")
            .input("table", ValueKind::Table, "the table")
            .output(
                "table",
                ValueKind::Table,
                "the table with the chosen columns",
            )
            .config(
                "columns",
                None,
                "columns to keep, in this order (comma-separated)",
            )
            .config("drop", None, "columns to drop (comma-separated)")
    }

    fn run(mut inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        let table = inputs.table("table")?;
        let keep = config.list("columns");
        let drop = config.list("drop");
        if keep.is_empty() == drop.is_empty() {
            return Err(Error::invalid_config(
                "set exactly one of `columns` and `drop`",
            ));
        }
        for name in keep.iter().chain(&drop) {
            table.column(name)?;
        }
        let columns = if keep.is_empty() {
            table
                .columns
                .into_iter()
                .filter(|c| !drop.contains(&c.name))
                .collect()
        } else {
            let mut cols = table.columns;
            keep.iter()
                .filter_map(|name| {
                    cols.iter()
                        .position(|c| &c.name == name)
                        .map(|i| cols.swap_remove(i))
                })
                .collect()
        };
        Ok(Outputs::new().with("table", Table::new(columns)))
    }
}

kiln_sdk::export_step!(SelectColumns);
