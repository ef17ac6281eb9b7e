//! Reads a CSV file the plugin was granted into a table.
//!
//! Types are inferred per column (boolean, then int64, then float64, else text) unless
//! declared with `types=col:type,...`. Empty cells and the `na` markers are missing.

use kiln_sdk::{
    Column, ColumnData, Config, Descriptor, Error, Inputs, Outputs, Step, Table, ValueKind,
};

struct CsvReader;

impl Step for CsvReader {
    fn describe() -> Descriptor {
        Descriptor::new("csv-reader", "Reads a CSV file into a table")
            .output("table", ValueKind::Table, "the file's rows")
            .required_config("path", "the file to read; its directory must be granted")
            .config(
                "types",
                None,
                "declared column types, e.g. `age:float64,name:text`",
            )
            .config(
                "delimiter",
                Some(","),
                "the field separator (one character)",
            )
            .config(
                "na",
                Some(",NA,NaN,null"),
                "cell texts that mean missing, comma-separated",
            )
    }

    fn run(_inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        let path = config.require("path")?;
        let delimiter = match config.get("delimiter").unwrap_or(",").as_bytes() {
            [b] => *b,
            _ => return Err(Error::invalid_config("`delimiter` must be one character")),
        };
        let na: Vec<String> = match config.get("na") {
            Some(v) => v.split(',').map(|s| s.trim().to_string()).collect(),
            None => vec![String::new(), "NA".into(), "NaN".into(), "null".into()],
        };
        let declared = parse_types(&config.list("types"))?;
        let file = std::fs::File::open(path).map_err(|e| {
            Error::invalid_input(format!(
                "cannot open `{path}`: {e} (is its directory granted?)"
            ))
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .from_reader(file);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| Error::invalid_input(format!("`{path}`: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); headers.len()];
        for (line, record) in reader.records().enumerate() {
            let record = record
                .map_err(|e| Error::invalid_input(format!("`{path}` record {}: {e}", line + 1)))?;
            for (col, cell) in cells.iter_mut().zip(record.iter()) {
                let cell = cell.trim();
                col.push((!na.iter().any(|m| m == cell)).then(|| cell.to_string()));
            }
        }
        let mut columns = Vec::with_capacity(headers.len());
        for (name, values) in headers.into_iter().zip(cells) {
            let ty = match declared.iter().find(|(n, _)| *n == name) {
                Some((_, ty)) => ty.clone(),
                None => infer(&values),
            };
            columns.push(build_column(name, &ty, values)?);
        }
        for (name, _) in &declared {
            if !columns.iter().any(|c| &c.name == name) {
                return Err(Error::invalid_config(format!(
                    "`types` names column `{name}`, which the file does not have"
                )));
            }
        }
        let table = Table::new(columns);
        kiln_sdk::log::info(&format!(
            "read {} rows × {} columns from {path}",
            table.num_rows(),
            table.columns.len()
        ));
        Ok(Outputs::new().with("table", table))
    }
}

fn parse_types(specs: &[String]) -> Result<Vec<(String, String)>, Error> {
    specs
        .iter()
        .map(|s| match s.split_once(':') {
            Some((name, ty)) if ["float64", "int64", "text", "boolean"].contains(&ty.trim()) => {
                Ok((name.trim().to_string(), ty.trim().to_string()))
            }
            _ => Err(Error::invalid_config(format!(
                "`types` entry `{s}` must be column:float64|int64|text|boolean"
            ))),
        })
        .collect()
}

fn infer(values: &[Option<String>]) -> String {
    let present = || values.iter().flatten();
    if present().next().is_none() {
        return "text".into();
    }
    if present().all(|v| parse_bool(v).is_some()) {
        "boolean".into()
    } else if present().all(|v| v.parse::<i64>().is_ok()) {
        "int64".into()
    } else if present().all(|v| v.parse::<f64>().is_ok()) {
        "float64".into()
    } else {
        "text".into()
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn build_column(name: String, ty: &str, values: Vec<Option<String>>) -> Result<Column, Error> {
    let valid: Vec<bool> = values.iter().map(Option::is_some).collect();
    let bad = |row: usize, v: &str| {
        Error::invalid_input(format!(
            "column `{name}` row {}: `{v}` is not a {ty}",
            row + 1
        ))
    };
    let data = match ty {
        "float64" => ColumnData::Float64(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_deref()
                        .map_or(Ok(f64::NAN), |s| s.parse().map_err(|_| bad(i, s)))
                })
                .collect::<Result<_, _>>()?,
        ),
        "int64" => ColumnData::Int64(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_deref()
                        .map_or(Ok(0), |s| s.parse().map_err(|_| bad(i, s)))
                })
                .collect::<Result<_, _>>()?,
        ),
        "boolean" => ColumnData::Boolean(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_deref()
                        .map_or(Ok(false), |s| parse_bool(s).ok_or_else(|| bad(i, s)))
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => ColumnData::Text(values.into_iter().map(Option::unwrap_or_default).collect()),
    };
    let valid = if valid.iter().all(|v| *v) {
        None
    } else {
        Some(valid)
    };
    Ok(Column { name, data, valid })
}

kiln_sdk::export_step!(CsvReader);
