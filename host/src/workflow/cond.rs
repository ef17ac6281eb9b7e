//! Conditions on a run's metrics, as `register.when` writes them:
//! `evaluate.test_r2 >= 0.4 and evaluate.test_mae < 50`. Each comparison names a step and
//! one metric it tracked; comparisons are joined by `and`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Ge => a >= b,
            Op::Gt => a > b,
            Op::Le => a <= b,
            Op::Lt => a < b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// One comparison: `step.metric OP number`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub step: String,
    pub metric: String,
    pub op: Op,
    pub value: f64,
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} {} {}",
            self.step,
            self.metric,
            self.op.text(),
            self.value
        )
    }
}

/// Comparisons that must all hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition(pub Vec<Comparison>);

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, String> {
        let parts: Vec<&str> = text.split(" and ").map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("`{text}` is not a condition: empty comparison"));
        }
        parts
            .into_iter()
            .map(parse_comparison)
            .collect::<Result<_, _>>()
            .map(Condition)
    }

    /// Whether every comparison holds, given a lookup of `(step, metric)` to its last
    /// value. A metric that was never tracked is an error naming it.
    pub fn eval(&self, lookup: impl Fn(&str, &str) -> Option<f64>) -> Result<bool, String> {
        for c in &self.0 {
            let Some(v) = lookup(&c.step, &c.metric) else {
                return Err(format!(
                    "step `{}` tracked no metric `{}`",
                    c.step, c.metric
                ));
            };
            if !c.op.holds(v, c.value) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn parse_comparison(s: &str) -> Result<Comparison, String> {
    const OPS: [(&str, Op); 6] = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];
    let (at, text, op) = OPS
        .iter()
        .filter_map(|(t, op)| s.find(t).map(|at| (at, *t, *op)))
        .min_by_key(|(at, t, _)| (*at, std::cmp::Reverse(t.len())))
        .ok_or_else(|| format!("`{s}` has no comparison (>=, >, <=, <, ==, !=)"))?;
    let lhs = s[..at].trim();
    let rhs = s[at + text.len()..].trim();
    let (step, metric) = lhs
        .split_once('.')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("`{lhs}` must name a step and a metric: step.metric"))?;
    let value = rhs
        .parse::<f64>()
        .map_err(|_| format!("`{rhs}` is not a number"))?;
    Ok(Comparison {
        step: step.to_string(),
        metric: metric.to_string(),
        op,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_evaluates() {
        let c = Condition::parse("evaluate.test_r2 >= 0.4 and evaluate.test_mae<50").unwrap();
        assert_eq!(c.0.len(), 2);
        assert_eq!(c.0[1].op, Op::Lt);
        let m = |r2: f64| {
            move |s: &str, k: &str| match (s, k) {
                ("evaluate", "test_r2") => Some(r2),
                ("evaluate", "test_mae") => Some(44.0),
                _ => None,
            }
        };
        assert_eq!(c.eval(m(0.5)), Ok(true));
        assert_eq!(c.eval(m(0.3)), Ok(false));
        let missing = Condition::parse("train.loss <= 1").unwrap();
        assert!(
            missing
                .eval(m(0.5))
                .unwrap_err()
                .contains("no metric `loss`")
        );
    }

    #[test]
    fn refuses_malformed_conditions() {
        for bad in ["", "r2 >= 0.4", "a.b >= x", "a.b 0.4", "a.b >= 1 and "] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
    }
}
