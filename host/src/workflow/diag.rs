//! Errors in a workflow file: each points at the file, the line and the step.

use std::fmt;

use serde::Serialize;

/// A line and column, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Loc {
    pub line: u64,
    pub column: u64,
}

/// One problem found in a workflow before anything ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

impl<'a> Collector<'a> {
    pub fn new(file: String, text: &'a str) -> Self {
        Collector {
            file,
            text,
            found: Vec::new(),
        }
    }

    /// Records a problem at `loc`, about `step` if given.
    pub fn error(&mut self, loc: Option<Loc>, step: Option<&str>, message: impl Into<String>) {
        self.found.push(Diagnostic {
            file: self.file.clone(),
            loc,
            step: step.map(str::to_string),
            message: message.into(),
            source_line: loc.and_then(|l| super::spec::source_line(self.text, l.line)),
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
