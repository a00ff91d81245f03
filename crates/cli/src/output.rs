//! Printing: tables for people, JSON for machines, and failures for both. Everything that came
//! from a skill is escaped before it reaches a terminal.

use serde::Serialize;
use skillcell_types::text::escape;

use crate::exit;

/// `println!` that ends the process quietly when stdout is closed (`skillcell list | head`),
/// instead of panicking on the broken pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// A command that could not do its job.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    /// Stable snake_case kind for machines.
    pub kind: &'static str,
    pub message: String,
    /// Structured detail for `--json` (diagnostics, refusal…).
    pub detail: Option<serde_json::Value>,
}

impl Failure {
    pub fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            kind,
            message: message.into(),
            detail: None,
        }
    }

    pub fn internal(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(exit::FAILURE, kind, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, "usage", message)
    }

    pub fn with_detail(mut self, detail: impl Serialize) -> Self {
        self.detail = serde_json::to_value(detail).ok();
        self
    }
}

pub fn print_failure(f: &Failure, json: bool) {
    if json {
        let v = serde_json::json!({
            "error": { "kind": f.kind, "message": f.message, "detail": f.detail }
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        eprintln!("error: {}", escape_multiline(&f.message));
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let s = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::internal("serialize", e.to_string()))?;
    outln!("{s}");
    Ok(())
}

/// Escapes every line of `s`, keeping the line breaks.
pub fn escape_multiline(s: &str) -> String {
    s.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// A plain-text table: a header row and left-aligned columns, cells escaped.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| escape(c)).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }

    pub fn print(&self) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            outln!("{}", line.trim_end());
        }
    }
}

/// One admission finding on a line for people, `  [severity] rule file:line:col message`,
/// everything from the skill escaped.
pub fn finding_line(f: &skillcell_types::Finding) -> String {
    format!(
        "  [{}] {} {}:{}:{} {}",
        f.severity,
        escape(&f.rule),
        escape(&f.file),
        f.line,
        f.col,
        escape(&f.message)
    )
}
