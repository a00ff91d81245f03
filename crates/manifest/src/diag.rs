use std::fmt;

use serde::Serialize;

use skillcell_types::text::escape;

/// How bad a finding is. Errors refuse the skill; warnings are shown and kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One finding about a SKILL.md: where, which key, what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable snake_case identifier (`duplicate_key`, `env_dangerous`, …).
    pub code: &'static str,
    pub severity: Severity,
    /// The file the finding is about, as the caller named it.
    pub file: String,
    /// 1-based line and column in `file`; 0 when the finding is about the file as a whole.
    pub line: usize,
    pub col: usize,
    /// Dotted key path (`metadata.skillcell.env`), when the finding is about a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        write!(f, ": {sev}[{}]: ", self.code)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Everything found about one SKILL.md.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Report(pub Vec<Diagnostic>);

impl Report {
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Warning)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A finding before it is placed in a file: collected by the parsing stages, which know lines
/// but not the file's name.
#[derive(Clone, Debug)]
pub(crate) struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub line: usize,
    pub col: usize,
    pub key: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl Finding {
    pub fn error(code: &'static str, line: usize, col: usize, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: Severity::Error,
            line,
            col,
            key: None,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(
        code: &'static str,
        line: usize,
        col: usize,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, line, col, message)
        }
    }

    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Places the finding in `file`. Text that came from the skill is escaped here, so that no
    /// diagnostic can carry control, bidirectional or invisible characters to a terminal.
    pub fn in_file(self, file: &str) -> Diagnostic {
        Diagnostic {
            code: self.code,
            severity: self.severity,
            file: escape(file),
            line: self.line,
            col: self.col,
            key: self.key.as_deref().map(escape),
            message: escape(&self.message),
            help: self.help.as_deref().map(escape),
        }
    }
}
