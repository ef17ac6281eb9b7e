//! Fills missing values, column by column, as scikit-learn's `SimpleImputer` does.
//!
//! `mean` and `median` apply to numeric columns (which become float64); `most_frequent`
//! and `constant` apply to any column. The fill values used are output as JSON; given a
//! `fills` input (another impute step's output), the step learns nothing and fills exactly
//! those columns with those values instead: fit on the training rows, then fill the test
//! rows (or a served request's rows) the same way.
//!
//! A fill's JSON type carries the column's type: an integer keeps an int64 column int64
//! (`most_frequent` or `constant` with a whole number), a float makes it float64 (`mean`,
//! `median`), so applied fills give the table the fit gave.

use kiln_sdk::{
    Column, ColumnData, Config, Descriptor, Error, Inputs, Outputs, Step, Table, Value, ValueKind,
};
use serde_json::{Map, json};

struct Impute;

impl Step for Impute {
    fn describe() -> Descriptor {
        Descriptor::new("impute", "Fills missing values")
            .input("table", ValueKind::Table, "the table")
            .optional_input(
                "fills",
                ValueKind::Json,
                "the values to fill with instead of learning them (a `fills` output)",
            )
            .output(
                "table",
                ValueKind::Table,
                "the table with no missing values in the chosen columns",
            )
            .output("fills", ValueKind::Json, "the value used for each column")
            .config(
                "strategy",
                Some("mean"),
                "mean, median, most_frequent or constant",
            )
            .config(
                "columns",
                None,
                "columns to fill (default: every column with missing values)",
            )
            .config("fill_value", None, "the value for `constant`")
    }

    fn run(mut inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        let mut table = inputs.table("table")?;
        table.check()?;
        if let Some(fitted) = inputs.take_opt("fills") {
            let Value::Json(text) = fitted else {
                return Err(Error::invalid_input("`fills` must be JSON"));
            };
            return apply(table, &text);
        }
        let strategy = config.get("strategy").unwrap_or("mean");
        if !["mean", "median", "most_frequent", "constant"].contains(&strategy) {
            return Err(Error::invalid_config(format!(
                "unknown strategy `{strategy}`"
            )));
        }
        let fill_value = config.get("fill_value");
        if strategy == "constant" && fill_value.is_none() {
            return Err(Error::invalid_config(
                "strategy `constant` needs `fill_value`",
            ));
        }
        let chosen = config.list("columns");
        for name in &chosen {
            table.column(name)?;
        }
        let mut fills = Map::new();
        for col in &mut table.columns {
            let wanted = if chosen.is_empty() {
                col.missing_count() > 0
            } else {
                chosen.contains(&col.name)
            };
            if !wanted {
                continue;
            }
            let fill = fill_column(col, strategy, fill_value)?;
            fills.insert(col.name.clone(), fill);
        }
        let filled = fills.len();
        kiln_sdk::log::info(&format!(
            "filled {filled} column(s) with strategy {strategy}"
        ));
        Ok(Outputs::new()
            .with("table", Table::new(table.columns))
            .with("fills", Value::Json(json!(fills).to_string())))
    }
}

fn fill_column(
    col: &mut Column,
    strategy: &str,
    fill_value: Option<&str>,
) -> Result<serde_json::Value, Error> {
    let name = col.name.clone();
    let valid = col.valid.take().unwrap_or_else(|| vec![true; col.len()]);
    let numeric_fill = |values: &[f64]| -> Result<f64, Error> {
        let present: Vec<f64> = values
            .iter()
            .zip(&valid)
            .filter(|(_, ok)| **ok)
            .map(|(v, _)| *v)
            .collect();
        if present.is_empty() && strategy != "constant" {
            return Err(Error::invalid_input(format!(
                "column `{name}` has no values to compute a {strategy} from"
            )));
        }
        Ok(match strategy {
            "mean" => present.iter().sum::<f64>() / present.len() as f64,
            "median" => median(present),
            "most_frequent" => most_frequent(present.iter().map(|v| v.to_string()).collect())
                .parse()
                .unwrap_or(f64::NAN),
            _ => fill_value.unwrap_or_default().parse().map_err(|_| {
                Error::invalid_config(format!("`fill_value` must be a number for column `{name}`"))
            })?,
        })
    };
    let fill = match &mut col.data {
        ColumnData::Float64(v) => {
            let f = numeric_fill(v)?;
            v.iter_mut()
                .zip(&valid)
                .filter(|(_, ok)| !**ok)
                .for_each(|(x, _)| *x = f);
            json!(f)
        }
        ColumnData::Int64(v) => {
            let as_f: Vec<f64> = v.iter().map(|x| *x as f64).collect();
            let f = numeric_fill(&as_f)?;
            if f.fract() == 0.0 && matches!(strategy, "most_frequent" | "constant") {
                v.iter_mut()
                    .zip(&valid)
                    .filter(|(_, ok)| !**ok)
                    .for_each(|(x, _)| *x = f as i64);
                json!(f as i64)
            } else {
                let filled = as_f
                    .iter()
                    .zip(&valid)
                    .map(|(x, ok)| if *ok { *x } else { f })
                    .collect();
                col.data = ColumnData::Float64(filled);
                json!(f)
            }
        }
        ColumnData::Text(v) => {
            let f = match strategy {
                "most_frequent" => most_frequent(
                    v.iter()
                        .zip(&valid)
                        .filter(|(_, ok)| **ok)
                        .map(|(s, _)| s.clone())
                        .collect(),
                ),
                "constant" => fill_value.unwrap_or_default().to_string(),
                _ => {
                    return Err(Error::invalid_input(format!(
                        "column `{name}` is text: use most_frequent or constant"
                    )));
                }
            };
            v.iter_mut()
                .zip(&valid)
                .filter(|(_, ok)| !**ok)
                .for_each(|(x, _)| *x = f.clone());
            json!(f)
        }
        ColumnData::Boolean(v) => {
            let f = match strategy {
                "most_frequent" => {
                    most_frequent(
                        v.iter()
                            .zip(&valid)
                            .filter(|(_, ok)| **ok)
                            .map(|(b, _)| b.to_string())
                            .collect(),
                    ) == "true"
                }
                "constant" => fill_value == Some("true"),
                _ => {
                    return Err(Error::invalid_input(format!(
                        "column `{name}` is boolean: use most_frequent or constant"
                    )));
                }
            };
            v.iter_mut()
                .zip(&valid)
                .filter(|(_, ok)| !**ok)
                .for_each(|(x, _)| *x = f);
            json!(f)
        }
    };
    Ok(fill)
}

/// Fills the columns a `fills` output names with its values.
fn apply(mut table: Table, fills: &str) -> Result<Outputs, Error> {
    let fitted: Map<String, serde_json::Value> = serde_json::from_str(fills).map_err(|e| {
        Error::invalid_input(format!("`fills` is not an object of column to value: {e}"))
    })?;
    for (name, fill) in &fitted {
        let col = table
            .columns
            .iter_mut()
            .find(|c| &c.name == name)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "`fills` fills column `{name}`, which the table does not have"
                ))
            })?;
        let valid = col.valid.take().unwrap_or_else(|| vec![true; col.len()]);
        let wrong = |kind: &str| {
            Error::invalid_input(format!(
                "`fills` holds {fill} for column `{name}`, which is {kind}"
            ))
        };
        match &mut col.data {
            ColumnData::Float64(v) => {
                let f = fill.as_f64().ok_or_else(|| wrong("float64"))?;
                fill_missing(v, &valid, f);
            }
            ColumnData::Int64(v) => match (fill.as_i64(), fill.as_f64()) {
                (Some(f), _) => fill_missing(v, &valid, f),
                (None, Some(f)) => {
                    let filled = v
                        .iter()
                        .zip(&valid)
                        .map(|(x, ok)| if *ok { *x as f64 } else { f })
                        .collect();
                    col.data = ColumnData::Float64(filled);
                }
                _ => return Err(wrong("int64")),
            },
            ColumnData::Text(v) => {
                let f = fill.as_str().ok_or_else(|| wrong("text"))?;
                fill_missing(v, &valid, f.to_string());
            }
            ColumnData::Boolean(v) => {
                let f = fill.as_bool().ok_or_else(|| wrong("boolean"))?;
                fill_missing(v, &valid, f);
            }
        }
    }
    Ok(Outputs::new()
        .with("table", Table::new(table.columns))
        .with("fills", Value::Json(fills.to_string())))
}

/// Sets every cell not marked valid to `fill`.
fn fill_missing<T: Clone>(values: &mut [T], valid: &[bool], fill: T) {
    values
        .iter_mut()
        .zip(valid)
        .filter(|(_, ok)| !**ok)
        .for_each(|(x, _)| *x = fill.clone());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The most frequent text; ties go to the smallest, as scikit-learn does.
fn most_frequent(mut v: Vec<String>) -> String {
    v.sort();
    let mut best = (0, String::new());
    let mut i = 0;
    while i < v.len() {
        let j = v[i..]
            .iter()
            .position(|x| *x != v[i])
            .map_or(v.len(), |p| i + p);
        if j - i > best.0 {
            best = (j - i, v[i].clone());
        }
        i = j;
    }
    best.1
}

kiln_sdk::export_step!(Impute);
