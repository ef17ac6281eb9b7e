//! Errors in a workflow file: each points at the file, the line and the step.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A line and column, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loc {
    pub line: u64,
    pub column: u64,
}

/// One problem found in a workflow before anything ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub file: String,
    pub loc: Option<Loc>,
    /// The step it is about, when it is about one.
    pub step: Option<String>,
    pub message: String,
    /// The offending line of the file, for display.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.loc {
            write!(f, ":{}:{}", l.line, l.column)?;
        }
        write!(f, ": ")?;
        if let Some(step) = &self.step {
            write!(f, "step `{step}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let (Some(l), Some(src)) = (self.loc, &self.source_line) {
            write!(f, "\n {:>4} | {src}", l.line)?;
        }
        Ok(())
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    /// The closing line of a refusal: how many errors, and that nothing ran.
    pub fn summary(&self) -> String {
        let n = self.0.len();
        format!(
            "the workflow has {n} error{}; nothing ran",
            if n == 1 { "" } else { "s" }
        )
    }
}

/// Collects diagnostics against one file's text.
pub struct Collector<'a> {
    file: String,
    text: &'a str,
    found: Vec<Diagnostic>,
    /// The file's lines, split once at the first error: a diagnostic per step of a long
    /// file must not scan the file from its start each time.
    lines: std::cell::OnceCell<Vec<&'a str>>,
}

impl<'a> Collector<'a> {
    pub fn new(file: String, text: &'a str) -> Self {
        Collector {
            file,
            text,
            found: Vec::new(),
            lines: std::cell::OnceCell::new(),
        }
    }

    /// Records a problem at `loc`, about `step` if given.
    pub fn error(&mut self, loc: Option<Loc>, step: Option<&str>, message: impl Into<String>) {
        let lines = self.lines.get_or_init(|| self.text.lines().collect());
        let source_line = loc
            .and_then(|l| usize::try_from(l.line.checked_sub(1)?).ok())
            .and_then(|i| lines.get(i))
            .map(|l| (*l).to_string());
        self.found.push(Diagnostic {
            file: self.file.clone(),
            loc,
            step: step.map(str::to_string),
            message: message.into(),
            source_line,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The problems found, by position in the file, or `Ok` when there were none.
    pub fn finish(mut self) -> Result<(), Diagnostics> {
        if self.found.is_empty() {
            return Ok(());
        }
        self.found
            .sort_by_key(|d| d.loc.map_or((u64::MAX, 0), |l| (l.line, l.column)));
        Err(Diagnostics(self.found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_diagnostic_shows_its_own_line() {
        let text = "a: 1\nb: 2\n\nd: 4\n";
        let mut c = Collector::new("f.yaml".into(), text);
        c.error(Some(Loc { line: 4, column: 1 }), None, "fourth");
        c.error(Some(Loc { line: 1, column: 1 }), Some("s"), "first");
        c.error(Some(Loc { line: 9, column: 1 }), None, "past the end");
        c.error(None, None, "nowhere");
        let Err(d) = c.finish() else {
            panic!("four errors")
        };
        let lines: Vec<Option<&str>> = d.0.iter().map(|d| d.source_line.as_deref()).collect();
        assert_eq!(lines, [Some("a: 1"), Some("d: 4"), None, None]);
        assert!(d.to_string().contains("    4 | d: 4"), "{d}");
    }

    /// A diagnostic on every line of a long file is linear work: it scanned the file from
    /// its start for each (60,000 lines, 20,000 errors: seconds; now milliseconds).
    #[test]
    fn many_diagnostics_on_a_long_file_stay_linear() {
        let text: String = (0..60_000).map(|i| format!("line {i}\n")).collect();
        let started = std::time::Instant::now();
        let mut c = Collector::new("f.yaml".into(), &text);
        for i in (0..60_000).step_by(3) {
            c.error(
                Some(Loc {
                    line: i + 1,
                    column: 1,
                }),
                None,
                "x",
            );
        }
        let Err(d) = c.finish() else { panic!("errors") };
        assert_eq!(d.0.len(), 20_000);
        assert_eq!(d.0[19_999].source_line.as_deref(), Some("line 59997"));
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(2),
            "20,000 diagnostics took {took:?}"
        );
    }
}
