//! MLflow's run search language: `filter` strings (`metrics.rmse < 1 and params.lr = '0.1'`)
//! and `order_by` clauses (`metrics.rmse ASC`), over tracked runs.

use std::cmp::Ordering;

use super::{TrackedRun, TrackingError};

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Metric,
    Param,
    Tag,
    Attribute,
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Num(f64),
    Str(String),
    List(Vec<String>),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    kind: Kind,
    key: String,
    op: String,
    value: Lit,
}

/// A parsed filter: clauses that must all hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter(Vec<Clause>, bool);

fn invalid(msg: impl Into<String>) -> TrackingError {
    TrackingError::Invalid(msg.into())
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(String),
    LParen,
    RParen,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, TrackingError> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let quoted = |i: &mut usize, q: char| -> Result<String, TrackingError> {
        let mut text = String::new();
        *i += 1;
        while *i < chars.len() && chars[*i] != q {
            text.push(chars[*i]);
            *i += 1;
        }
        if *i >= chars.len() {
            return Err(invalid(format!("unterminated {q} in filter `{s}`")));
        }
        *i += 1;
        Ok(text)
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => out.push(Tok::Str(quoted(&mut i, '\'')?)),
            '<' | '>' | '=' | '!' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if ["<=", ">=", "!=", "=="].contains(&two.as_str()) {
                    out.push(Tok::Op(if two == "==" { "=".into() } else { two }));
                    i += 2;
                } else if c == '!' {
                    return Err(invalid(format!("unexpected `!` in filter `{s}`")));
                } else {
                    out.push(Tok::Op(c.to_string()));
                    i += 1;
                }
            }
            _ => {
                // An identifier (with dots and quoted parts) or a number.
                let mut text = String::new();
                while i < chars.len() && !" \t\n(),<>=!'".contains(chars[i]) {
                    if chars[i] == '`' || chars[i] == '"' {
                        let q = chars[i];
                        text.push_str(&quoted(&mut i, q)?);
                    } else {
                        text.push(chars[i]);
                        i += 1;
                    }
                }
                match text.parse::<f64>() {
                    Ok(n) if !text.starts_with(|ch: char| ch.is_alphabetic()) => {
                        out.push(Tok::Num(n))
                    }
                    _ => out.push(Tok::Ident(text)),
                }
            }
        }
    }
    Ok(out)
}

fn kind_and_key(ident: &str) -> Result<(Kind, String), TrackingError> {
    let (prefix, key) = match ident.split_once('.') {
        Some((p, k)) => (p.to_ascii_lowercase(), k.to_string()),
        None => ("attributes".into(), ident.to_string()),
    };
    let kind = match prefix.as_str() {
        "metrics" | "metric" => Kind::Metric,
        "params" | "param" | "parameters" | "parameter" => Kind::Param,
        "tags" | "tag" => Kind::Tag,
        "attributes" | "attribute" | "attr" | "run" => Kind::Attribute,
        other => {
            return Err(invalid(format!(
                "`{other}` is not metrics, params, tags or attributes"
            )));
        }
    };
    if key.is_empty() {
        return Err(invalid(format!("`{ident}` names no key")));
    }
    Ok((kind, key))
}

impl Filter {
    /// Parses a filter; the empty string matches every run.
    pub fn parse(s: &str) -> Result<Filter, TrackingError> {
        let toks = tokenize(s)?;
        let mut clauses = Vec::new();
        let mut i = 0;
        let word = |t: Option<&Tok>, w: &str| matches!(t, Some(Tok::Ident(x)) if x.eq_ignore_ascii_case(w));
        while i < toks.len() {
            let Tok::Ident(ident) = &toks[i] else {
                return Err(invalid(format!(
                    "filter `{s}`: expected a key like metrics.rmse"
                )));
            };
            let (kind, key) = kind_and_key(ident)?;
            i += 1;
            let op = match toks.get(i) {
                Some(Tok::Op(o)) => {
                    i += 1;
                    o.clone()
                }
                Some(Tok::Ident(w))
                    if ["like", "ilike", "in", "is"]
                        .iter()
                        .any(|k| w.eq_ignore_ascii_case(k)) =>
                {
                    i += 1;
                    let w = w.to_ascii_uppercase();
                    if w == "IS" && word(toks.get(i), "not") {
                        i += 1;
                        "IS NOT".into()
                    } else {
                        w
                    }
                }
                t if word(t, "not") && word(toks.get(i + 1), "in") => {
                    i += 2;
                    "NOT IN".into()
                }
                _ => {
                    return Err(invalid(format!(
                        "filter `{s}`: expected a comparison after `{ident}`"
                    )));
                }
            };
            let value = match (op.as_str(), toks.get(i)) {
                ("IS" | "IS NOT", t) if word(t, "null") => {
                    i += 1;
                    Lit::Null
                }
                ("IN" | "NOT IN", Some(Tok::LParen)) => {
                    i += 1;
                    let mut items = Vec::new();
                    loop {
                        match toks.get(i) {
                            Some(Tok::Str(v)) => items.push(v.clone()),
                            Some(Tok::Num(n)) => items.push(n.to_string()),
                            _ => return Err(invalid(format!("filter `{s}`: IN takes ('a', 'b')"))),
                        }
                        i += 1;
                        match toks.get(i) {
                            Some(Tok::Comma) => i += 1,
                            Some(Tok::RParen) => {
                                i += 1;
                                break;
                            }
                            _ => return Err(invalid(format!("filter `{s}`: unclosed IN list"))),
                        }
                    }
                    Lit::List(items)
                }
                (_, Some(Tok::Num(n))) => {
                    i += 1;
                    Lit::Num(*n)
                }
                // A double-quoted value reads as an identifier token; take it as text.
                (_, Some(Tok::Str(v) | Tok::Ident(v))) => {
                    i += 1;
                    Lit::Str(v.clone())
                }
                _ => {
                    return Err(invalid(format!(
                        "filter `{s}`: expected a value after `{ident} {op}`"
                    )));
                }
            };
            if kind == Kind::Metric && !matches!(value, Lit::Num(_) | Lit::Null) {
                return Err(invalid(format!(
                    "filter `{s}`: metrics compare with numbers"
                )));
            }
            clauses.push(Clause {
                kind,
                key,
                op,
                value,
            });
            if i < toks.len() {
                if !word(toks.get(i), "and") {
                    return Err(invalid(format!("filter `{s}`: clauses are joined by AND")));
                }
                i += 1;
            }
        }
        Ok(Filter(clauses, false))
    }

    /// Whether a run matches.
    pub fn matches(&self, run: &TrackedRun) -> bool {
        self.0.iter().all(|c| clause_holds(c, run, self.1))
    }

    /// The model registry's reading, where `tags.x != 'v'` also holds for an entry that
    /// has no tag `x` (the MLflow client filters prompts out this way).
    pub fn missing_tags_differ(mut self) -> Filter {
        self.1 = true;
        self
    }
}

enum Field {
    Num(f64),
    Str(String),
}

fn field(kind: &Kind, key: &str, run: &TrackedRun) -> Option<Field> {
    match kind {
        Kind::Metric => run.metrics.get(key).map(|m| Field::Num(m.value)),
        Kind::Param => run.params.get(key).map(|v| Field::Str(v.clone())),
        Kind::Tag => run.tags.get(key).map(|v| Field::Str(v.clone())),
        Kind::Attribute => {
            let i = &run.info;
            match key {
                "status" => Some(Field::Str(i.status.clone())),
                "run_name" | "runName" | "name" => Some(Field::Str(i.run_name.clone())),
                "run_id" | "run_uuid" => Some(Field::Str(i.run_id.clone())),
                "user_id" => Some(Field::Str(i.user_id.clone())),
                "artifact_uri" => Some(Field::Str(i.artifact_uri.clone())),
                "lifecycle_stage" => Some(Field::Str(i.lifecycle_stage.clone())),
                "experiment_id" => Some(Field::Str(i.experiment_id.clone())),
                "start_time" | "created" | "Created" => Some(Field::Num(i.start_time as f64)),
                "end_time" => i.end_time.map(|t| Field::Num(t as f64)),
                _ => None,
            }
        }
    }
}

fn like(pattern: &str, text: &str, fold: bool) -> bool {
    let (p, t) = if fold {
        (pattern.to_lowercase(), text.to_lowercase())
    } else {
        (pattern.to_string(), text.to_string())
    };
    // `%` matches any run of characters, `_` one character.
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|k| go(&p[1..], &t[k..])),
            Some('_') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = p.chars().collect();
    let t: Vec<char> = t.chars().collect();
    go(&p, &t)
}

fn clause_holds(c: &Clause, run: &TrackedRun, missing_tags_differ: bool) -> bool {
    let f = field(&c.kind, &c.key, run);
    match (&c.value, f) {
        (Lit::Null, f) => (c.op == "IS") == f.is_none(),
        (_, None) => missing_tags_differ && c.kind == Kind::Tag && c.op == "!=",
        (Lit::Num(want), Some(Field::Num(got))) => compare(c.op.as_str(), got.partial_cmp(want)),
        (Lit::Num(want), Some(Field::Str(got))) => match got.parse::<f64>() {
            Ok(got) => compare(c.op.as_str(), got.partial_cmp(want)),
            Err(_) => false,
        },
        (Lit::Str(want), Some(Field::Str(got))) => match c.op.as_str() {
            "LIKE" => like(want, &got, false),
            "ILIKE" => like(want, &got, true),
            op => compare(op, Some(got.as_str().cmp(want.as_str()))),
        },
        (Lit::Str(want), Some(Field::Num(got))) => match want.parse::<f64>() {
            Ok(want) => compare(c.op.as_str(), got.partial_cmp(&want)),
            Err(_) => false,
        },
        (Lit::List(items), Some(f)) => {
            let text = match f {
                Field::Str(s) => s,
                Field::Num(n) => n.to_string(),
            };
            items.contains(&text) == (c.op == "IN")
        }
    }
}

fn compare(op: &str, ord: Option<Ordering>) -> bool {
    let Some(o) = ord else { return false };
    match op {
        "=" => o.is_eq(),
        "!=" => o.is_ne(),
        "<" => o.is_lt(),
        "<=" => o.is_le(),
        ">" => o.is_gt(),
        ">=" => o.is_ge(),
        _ => false,
    }
}

/// Sorts runs by `order_by` clauses (`metrics.rmse ASC`, `start_time DESC`...), then by
/// start time (newest first) and id. Missing values sort last.
pub fn order(runs: &mut [TrackedRun], order_by: &[String]) -> Result<(), TrackingError> {
    let mut keys = Vec::new();
    for o in order_by {
        let mut parts = o.split_whitespace();
        let ident = parts
            .next()
            .ok_or_else(|| invalid("an empty order_by clause"))?;
        let asc = match parts.next().map(str::to_ascii_uppercase).as_deref() {
            None | Some("ASC") => true,
            Some("DESC") => false,
            Some(other) => {
                return Err(invalid(format!(
                    "order_by `{o}`: `{other}` is not ASC or DESC"
                )));
            }
        };
        let ident = ident.replace('`', "");
        keys.push((kind_and_key(&ident)?, asc));
    }
    runs.sort_by(|a, b| {
        for ((kind, key), asc) in &keys {
            let (fa, fb) = (field(kind, key, a), field(kind, key, b));
            let o = match (fa, fb) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => return Ordering::Greater,
                (Some(_), None) => return Ordering::Less,
                (Some(Field::Num(x)), Some(Field::Num(y))) => x.total_cmp(&y),
                (Some(Field::Str(x)), Some(Field::Str(y))) => x.cmp(&y),
                (Some(Field::Num(_)), Some(Field::Str(_))) => Ordering::Less,
                (Some(Field::Str(_)), Some(Field::Num(_))) => Ordering::Greater,
            };
            let o = if *asc { o } else { o.reverse() };
            if o.is_ne() {
                return o;
            }
        }
        b.info
            .start_time
            .cmp(&a.info.start_time)
            .then_with(|| a.info.run_id.cmp(&b.info.run_id))
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::tracking::{Metric, RunInfo};

    fn run(id: &str, rmse: f64, lr: &str, status: &str, start: i64) -> TrackedRun {
        TrackedRun {
            info: RunInfo {
                run_id: id.into(),
                run_name: format!("name-{id}"),
                experiment_id: "1".into(),
                user_id: String::new(),
                status: status.into(),
                start_time: start,
                end_time: None,
                artifact_uri: String::new(),
                lifecycle_stage: "active".into(),
            },
            params: BTreeMap::from([("lr".to_string(), lr.to_string())]),
            tags: BTreeMap::from([("team".to_string(), "ml".to_string())]),
            metrics: BTreeMap::from([(
                "rmse".to_string(),
                Metric {
                    value: rmse,
                    timestamp: 0,
                    step: 0,
                },
            )]),
            inputs: Vec::new(),
        }
    }

    #[test]
    fn filters_as_mlflow_writes_them() {
        let a = run("a", 0.5, "0.1", "FINISHED", 1);
        let b = run("b", 2.0, "0.01", "RUNNING", 2);
        let check = |f: &str| -> Vec<&str> {
            let f = Filter::parse(f).unwrap();
            [&a, &b]
                .iter()
                .filter(|r| f.matches(r))
                .map(|r| r.info.run_id.as_str())
                .collect()
        };
        assert_eq!(check(""), ["a", "b"]);
        assert_eq!(check("metrics.rmse < 1"), ["a"]);
        assert_eq!(check("metrics.rmse >= 1 and params.lr = '0.01'"), ["b"]);
        assert_eq!(check("attributes.status = 'FINISHED'"), ["a"]);
        assert_eq!(
            check("tags.team = \"ml\" AND run_name LIKE 'name-%'"),
            ["a", "b"]
        );
        assert_eq!(check("attributes.run_name ILIKE 'NAME-B'"), ["b"]);
        assert_eq!(check("params.lr IN ('0.1', '0.5')"), ["a"]);
        assert_eq!(check("metrics.`rmse` != 0.5"), ["b"]);
        assert_eq!(
            check("tags.missing IS NULL and params.lr IS NOT NULL"),
            ["a", "b"]
        );
        for bad in [
            "metrics.rmse",
            "metrics.rmse < 'x'",
            "foo.bar = 1",
            "metrics.rmse < 1 or x",
            "params.lr = 'x",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn orders_by_clauses_then_newest_first() {
        let mut runs = vec![
            run("a", 0.5, "x", "FINISHED", 1),
            run("b", 2.0, "y", "FINISHED", 2),
            run("c", 1.0, "z", "FINISHED", 3),
        ];
        order(&mut runs, &[]).unwrap();
        assert_eq!(
            runs.iter()
                .map(|r| r.info.run_id.as_str())
                .collect::<Vec<_>>(),
            ["c", "b", "a"]
        );
        order(&mut runs, &["metrics.rmse ASC".into()]).unwrap();
        assert_eq!(
            runs.iter()
                .map(|r| r.info.run_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "c", "b"]
        );
        order(&mut runs, &["metrics.rmse DESC".into()]).unwrap();
        assert_eq!(runs[0].info.run_id, "b");
        assert!(order(&mut runs, &["metrics.rmse SIDEWAYS".into()]).is_err());
    }
}
