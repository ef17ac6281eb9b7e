//! Checks a table against expectations: row count, required columns and their types,
//! value ranges, and the share of missing values. Every expectation is one check in the
//! report; a failed check of severity `error` blocks what depends on the data.

use kiln_sdk::{
    Check, ColumnData, Config, Descriptor, Error, Inputs, Severity, Table, Validator, ValueKind,
};

struct SchemaValidator;

impl Validator for SchemaValidator {
    fn describe() -> Descriptor {
        Descriptor::new(
            "schema-validator",
            "Checks a table's columns, types, ranges and missing values",
        )
        .input("table", ValueKind::Table, "the table to check")
        .config("columns", None, "columns that must be present")
        .config(
            "types",
            None,
            "expected types, e.g. `age:float64,species:text`",
        )
        .config(
            "ranges",
            None,
            "allowed closed ranges, e.g. `age:0..120,bmi:10..60`",
        )
        .config(
            "max_null_fraction",
            Some("0"),
            "the largest share of missing values allowed per column",
        )
        .config("min_rows", Some("1"), "the fewest rows allowed")
        .config(
            "severity",
            Some("error"),
            "severity of failed checks: error, warning or info",
        )
    }

    fn validate(mut inputs: Inputs, config: Config) -> Result<Vec<Check>, Error> {
        let table = inputs.table("table")?;
        table.check()?;
        let severity = match config.get("severity").unwrap_or("error") {
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            "info" => Severity::Info,
            other => return Err(Error::invalid_config(format!("unknown severity `{other}`"))),
        };
        let min_rows: usize = config.parse_or("min_rows", 1)?;
        let max_null: f64 = config.parse_or("max_null_fraction", 0.0)?;
        let rows = table.num_rows();
        let mut checks = vec![
            Check::new("rows", rows >= min_rows, severity)
                .observed(rows as f64)
                .detail(format!("{rows} rows, at least {min_rows} required")),
        ];

        for name in config.list("columns") {
            let present = table.column(&name).is_ok();
            checks.push(
                Check::new(&format!("column:{name}"), present, severity).detail(if present {
                    "present".to_string()
                } else {
                    "missing".to_string()
                }),
            );
        }
        for spec in config.list("types") {
            let (name, want) = spec.split_once(':').ok_or_else(|| {
                Error::invalid_config(format!("`types` entry `{spec}` must be column:type"))
            })?;
            let got = table.column(name).map(|c| c.data.type_name());
            checks.push(
                Check::new(&format!("type:{name}"), got == Ok(want), severity).detail(match got {
                    Ok(got) => format!("{got}, expected {want}"),
                    Err(_) => "column missing".to_string(),
                }),
            );
        }
        for spec in config.list("ranges") {
            checks.push(range_check(&table, &spec, severity)?);
        }
        for col in &table.columns {
            let fraction = if rows == 0 {
                0.0
            } else {
                col.missing_count() as f64 / rows as f64
            };
            checks.push(
                Check::new(
                    &format!("nulls:{}", col.name),
                    fraction <= max_null,
                    severity,
                )
                .observed(fraction)
                .detail(format!(
                    "{} of {rows} missing, at most {max_null} allowed",
                    col.missing_count()
                )),
            );
        }
        let failed = checks.iter().filter(|c| !c.passed).count();
        kiln_sdk::log::info(&format!("{} checks, {failed} failed", checks.len()));
        Ok(checks)
    }
}

fn range_check(table: &Table, spec: &str, severity: Severity) -> Result<Check, Error> {
    let bad = || Error::invalid_config(format!("`ranges` entry `{spec}` must be column:low..high"));
    let (name, range) = spec.split_once(':').ok_or_else(bad)?;
    let (lo, hi) = range.split_once("..").ok_or_else(bad)?;
    let lo: f64 = if lo.is_empty() {
        f64::NEG_INFINITY
    } else {
        lo.parse().map_err(|_| bad())?
    };
    let hi: f64 = if hi.is_empty() {
        f64::INFINITY
    } else {
        hi.parse().map_err(|_| bad())?
    };
    let check = format!("range:{name}");
    let Ok(col) = table.column(name) else {
        return Ok(Check::new(&check, false, severity).detail("column missing"));
    };
    if matches!(col.data, ColumnData::Text(_)) {
        return Ok(Check::new(&check, false, severity).detail("column is text, not numeric"));
    }
    let values = col.to_f64()?;
    let outside = values
        .iter()
        .enumerate()
        .filter(|(i, v)| col.is_valid(*i) && (**v < lo || **v > hi))
        .count();
    Ok(Check::new(&check, outside == 0, severity)
        .observed(outside as f64)
        .detail(format!("{outside} values outside [{lo}, {hi}]")))
}

kiln_sdk::export_validator!(SchemaValidator);
