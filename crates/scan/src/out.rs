//! Where analyses put what they find: findings, and the capabilities the code was seen to use,
//! each with the place it was first seen.

use std::collections::BTreeMap;

use skillcell_types::Finding;

use crate::rules::R;

/// A place in a file: relative path, 1-based line, 1-based column in characters (0: unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub file: String,
    pub line: u32,
    pub col: u32,
}

/// Where a host was seen.
#[derive(Clone, Debug)]
pub(crate) struct HostUse {
    pub loc: Loc,
    /// Seen as the argument of a network call, not merely as a URL somewhere.
    pub call_site: bool,
}

/// Capabilities the code uses, with the first place each was seen.
#[derive(Clone, Debug, Default)]
pub(crate) struct Usage {
    pub network: Option<Loc>,
    /// `host:port`.
    pub hosts: BTreeMap<String, HostUse>,
    pub env: BTreeMap<String, Loc>,
    pub exec: BTreeMap<String, Loc>,
    pub writes: BTreeMap<String, Loc>,
}

impl Usage {
    pub fn network(&mut self, loc: &Loc) {
        if self.network.is_none() {
            self.network = Some(loc.clone());
        }
    }

    pub fn host(&mut self, host_port: String, loc: &Loc, call_site: bool) {
        let e = self.hosts.entry(host_port).or_insert_with(|| HostUse {
            loc: loc.clone(),
            call_site,
        });
        if call_site && !e.call_site {
            *e = HostUse {
                loc: loc.clone(),
                call_site,
            };
        }
    }

    pub fn env(&mut self, name: &str, loc: &Loc) {
        self.env
            .entry(name.to_owned())
            .or_insert_with(|| loc.clone());
    }

    pub fn exec(&mut self, program: &str, loc: &Loc) {
        self.exec
            .entry(program.to_owned())
            .or_insert_with(|| loc.clone());
    }

    pub fn write(&mut self, path: &str, loc: &Loc) {
        self.writes
            .entry(path.to_owned())
            .or_insert_with(|| loc.clone());
    }
}

/// Findings and usage of one scan.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub findings: Vec<Finding>,
    pub usage: Usage,
}

impl Out {
    /// A finding of `rule` with its default hint.
    pub fn emit(&mut self, rule: R, loc: &Loc, message: impl Into<String>) {
        self.emit_hint(rule, loc, message, rule.rule().hint);
    }

    pub fn emit_hint(
        &mut self,
        rule: R,
        loc: &Loc,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let r = rule.rule();
        self.findings.push(Finding {
            rule: r.id.to_owned(),
            severity: r.severity,
            message: message.into(),
            file: loc.file.clone(),
            line: loc.line,
            col: loc.col,
            hint: hint.into(),
        });
    }
}

/// Positions in one text: byte offsets to 1-based line and character column.
#[derive(Debug)]
pub(crate) struct Text<'a> {
    pub file: &'a str,
    pub text: &'a str,
    line_starts: Vec<usize>,
    /// When set, every position maps here (code embedded in a string of another file).
    pub fixed: Option<Loc>,
}

impl<'a> Text<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file,
            text,
            line_starts,
            fixed: None,
        }
    }

    /// Code embedded in a string literal at `at`: every finding points at the literal.
    pub fn embedded(text: &'a str, at: &'a Loc) -> Self {
        let mut t = Self::new(&at.file, text);
        t.fixed = Some(at.clone());
        t
    }

    pub fn loc(&self, byte: usize) -> Loc {
        if let Some(l) = &self.fixed {
            return l.clone();
        }
        let line = self.line_starts.partition_point(|&s| s <= byte).max(1);
        let start = self.line_starts[line - 1];
        let end = byte.min(self.text.len());
        let col = self
            .text
            .get(start..end)
            .map_or(0, |s| s.chars().count() + 1);
        Loc {
            file: self.file.to_owned(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    }

    pub fn whole_file(&self) -> Loc {
        Loc {
            file: self.file.to_owned(),
            line: 0,
            col: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let t = Text::new("a.py", "x = 1\nπé = eval(y)\n");
        let byte = "x = 1\nπé = ".len();
        let l = t.loc(byte);
        assert_eq!((l.line, l.col), (2, 6));
        assert_eq!((t.loc(0).line, t.loc(0).col), (1, 1));
    }
}
