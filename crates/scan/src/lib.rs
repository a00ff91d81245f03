//! Static scan of a skill folder, run by `skillcell scan` and by install before admission.
//!
//! The scan walks the folder without following symlinks, parses Python, JavaScript,
//! TypeScript and shell with tree-sitter grammars, and reports [`Finding`]s under stable rule
//! ids ([`rules`]): code execution, process spawning, network and environment use, credential
//! and persistence targets, dynamic and native code, obfuscation, install hooks, and in
//! SKILL.md download-and-run lines, hidden Unicode and instructions to hide actions. It infers
//! the capabilities the code uses ([`UsedCapabilities`]) and compares them with the declared
//! [`Contract`]: undeclared network or exec use is critical, so admission fails closed.
//!
//! The scan is a speed bump, not the boundary: it reads code, it never runs it, and code can
//! always hide from a reader. Containment at run time (the cell, the egress proxy) is what
//! enforces the contract. The scan refuses to do what would make it a risk itself: it follows
//! no symlink, reads files with `O_NOFOLLOW`, and stops at the operator's bounds
//! ([`ScanConfig`]) with a finding rather than skipping silently.

mod check;
mod lang;
mod out;
mod rules;
mod sarif;
mod strings;
mod text;
mod walk;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use skillcell_types::finding::Severity;
use skillcell_types::{Contract, Finding};

pub use check::suggest;
pub use rules::{Rule, rule, rules};
pub use sarif::to_sarif;

use crate::lang::js::Dialect;
use crate::out::{Loc, Out, Text};
use crate::rules::R;

/// Bounds and switches of a scan. Comes from the operator, never from the skill folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanConfig {
    /// Largest file read, in bytes; a larger one is a `file-too-large` finding.
    pub max_file_bytes: u64,
    /// Most entries (files, directories, links) listed; more is a `too-many-files` finding.
    pub max_files: u64,
    /// Most bytes read over the whole folder; past it, files are `file-too-large` findings.
    pub max_total_bytes: u64,
    /// Deepest directory nesting walked.
    pub max_depth: u32,
    /// A line of code longer than this (in characters) is a `long-line` finding.
    pub max_line_chars: usize,
    /// Rule ids whose findings are dropped.
    pub disabled_rules: BTreeSet<String>,
}

impl Default for ScanConfig {
    /// 1 MiB a file, 2 000 entries, 32 MiB in all, 16 levels deep, 1 000-character lines, no
    /// rule disabled.
    fn default() -> Self {
        Self {
            max_file_bytes: 1024 * 1024,
            max_files: 2000,
            max_total_bytes: 32 * 1024 * 1024,
            max_depth: 16,
            max_line_chars: 1000,
            disabled_rules: BTreeSet::new(),
        }
    }
}

/// Capabilities the code was seen to use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsedCapabilities {
    /// Any network API was seen (an import, a call, a network command, `/dev/tcp`).
    pub network: bool,
    /// `host:port` of URLs and of host literals at network call sites (port from the URL or
    /// its scheme).
    pub hosts: BTreeSet<String>,
    /// Environment variables read by literal name.
    pub env: BTreeSet<String>,
    /// Programs started besides the interpreter of the file that starts them, as written
    /// (`git`, `/usr/bin/jq`).
    pub exec: BTreeSet<String>,
    /// Paths written, when literal (relative ones as written).
    pub paths_written: BTreeSet<String>,
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    pub files_scanned: u64,
    pub bytes_scanned: u64,
    /// Sorted by file, line, column, rule.
    pub findings: Vec<Finding>,
    pub used: UsedCapabilities,
    /// The strictest severity found, if any.
    pub max_severity: Option<Severity>,
}

impl ScanReport {
    /// Findings at `min` or above.
    pub fn at_least(&self, min: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity >= min)
    }
}

/// Why a scan could not run at all (problems inside the folder are findings instead).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: not a directory (a symlink is not followed); scan the skill folder itself")]
    NotADirectory { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Scans the skill folder `dir` against its declared `contract`.
pub fn scan_dir(
    dir: &Path,
    contract: &Contract,
    config: &ScanConfig,
) -> Result<ScanReport, ScanError> {
    let mut out = Out::default();
    let files = walk::walk(dir, config, &mut out)?;
    let mut files_scanned = 0u64;
    let mut bytes_scanned = 0u64;
    for entry in &files {
        let left = config.max_total_bytes.saturating_sub(bytes_scanned);
        if left == 0 {
            out.emit(
                R::FileTooLarge,
                &Loc {
                    file: entry.rel.clone(),
                    line: 0,
                    col: 0,
                },
                format!(
                    "the folder is over the bound of {} bytes; not scanned",
                    config.max_total_bytes
                ),
            );
            continue;
        }
        let Some(bytes) = walk::read(entry, config.max_file_bytes.min(left), &mut out) else {
            continue;
        };
        files_scanned += 1;
        bytes_scanned += bytes.len() as u64;
        scan_file(&entry.rel, &bytes, config, &mut out);
    }
    check::compare(contract, &mut out);
    let used = check::used(&out.usage);
    let mut findings: Vec<Finding> = out
        .findings
        .into_iter()
        .filter(|f| !config.disabled_rules.contains(&f.rule))
        .collect();
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.col, &a.rule, &a.message)
            .cmp(&(&b.file, b.line, b.col, &b.rule, &b.message))
    });
    findings.dedup();
    let max_severity = findings.iter().map(|f| f.severity).max();
    Ok(ScanReport {
        files_scanned,
        bytes_scanned,
        findings,
        used,
        max_severity,
    })
}

/// What kind of file a path holds, by name, extension and first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Python,
    Js(Dialect),
    Shell,
    Markdown,
    Text,
    Native,
    Bytecode,
    Binary,
}

fn classify(rel: &str, bytes: &[u8]) -> Kind {
    let name = rel.rsplit('/').next().unwrap_or(rel).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let magic = bytes.get(..4).unwrap_or(&[]);
    let native_magic = magic == b"\x7fELF"
        || matches!(
            magic,
            [0xfe, 0xed, 0xfa, 0xce | 0xcf]
                | [0xce | 0xcf, 0xfa, 0xed, 0xfe]
                | [0xca, 0xfe, 0xba, 0xbe]
        )
        || (magic.starts_with(b"MZ") && matches!(ext, "exe" | "dll" | "sys" | "scr" | "com"));
    if native_magic
        || matches!(ext, "so" | "dylib" | "dll" | "node" | "exe")
        || name.contains(".so.")
    {
        return Kind::Native;
    }
    if matches!(ext, "pyc" | "pyo") {
        return Kind::Bytecode;
    }
    match ext {
        "py" | "pyw" | "pyi" => return Kind::Python,
        "js" | "mjs" | "cjs" | "jsx" => return Kind::Js(Dialect::JavaScript),
        "ts" | "mts" | "cts" => return Kind::Js(Dialect::TypeScript),
        "tsx" => return Kind::Js(Dialect::Tsx),
        "sh" | "bash" | "ksh" | "zsh" | "dash" => return Kind::Shell,
        "md" | "markdown" | "txt" | "rst" => return Kind::Markdown,
        _ => {}
    }
    if bytes.contains(&0) {
        return Kind::Binary;
    }
    if let Some(first) = bytes.strip_prefix(b"#!") {
        let line = first.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = String::from_utf8_lossy(line);
        if line.contains("python") {
            return Kind::Python;
        }
        if line.contains("node") || line.contains("deno") || line.contains("bun") {
            return Kind::Js(Dialect::JavaScript);
        }
        if ["sh", "bash", "zsh", "dash", "ksh"]
            .iter()
            .any(|s| line.split(['/', ' ']).any(|w| w == *s))
        {
            return Kind::Shell;
        }
    }
    Kind::Text
}

fn scan_file(rel: &str, bytes: &[u8], config: &ScanConfig, out: &mut Out) {
    let whole = Loc {
        file: rel.to_owned(),
        line: 0,
        col: 0,
    };
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let kind = classify(rel, bytes);
    match kind {
        Kind::Native => {
            out.emit(R::NativeBinary, &whole, "ships a native binary");
            return;
        }
        Kind::Bytecode => {
            out.emit(R::PythonBytecode, &whole, "ships Python bytecode");
            return;
        }
        Kind::Binary => return,
        _ => {}
    }
    let text = String::from_utf8_lossy(bytes);
    let t = Text::new(rel, &text);
    if name.ends_with(".pth") {
        out.emit(
            R::Persistence,
            &whole,
            "ships a .pth file, which Python runs at start-up when it is on a site path",
        );
    }
    if matches!(name, "sitecustomize.py" | "usercustomize.py") {
        out.emit(
            R::Persistence,
            &whole,
            format!("ships {name}, which Python imports at start-up"),
        );
    }
    if name == "setup.py" {
        out.emit(
            R::InstallHook,
            &whole,
            "setup.py runs code when the folder is installed with pip",
        );
    }
    if name == "package.json" {
        package_json(&t, out);
    }
    text::hidden_unicode(&t, out);
    let code = matches!(kind, Kind::Python | Kind::Js(_) | Kind::Shell);
    if code
        && let Some((i, line)) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.chars().count() > config.max_line_chars)
    {
        out.emit(
            R::LongLine,
            &Loc {
                file: rel.to_owned(),
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                col: 1,
            },
            format!("line of {} characters", line.chars().count()),
        );
    }
    match kind {
        Kind::Python => lang::python::scan(&t, out),
        Kind::Js(d) => lang::js::scan(&t, d, out),
        Kind::Shell => lang::shell::scan(&t, out),
        Kind::Markdown => text::markdown(&t, out),
        _ => {}
    }
}

/// npm lifecycle scripts that run at install.
const NPM_HOOKS: &[&str] = &[
    "preinstall",
    "install",
    "postinstall",
    "prepare",
    "prepublish",
];

fn package_json(t: &Text<'_>, out: &mut Out) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(t.text) else {
        return;
    };
    let Some(scripts) = v.get("scripts").and_then(|s| s.as_object()) else {
        return;
    };
    for hook in NPM_HOOKS {
        if let Some(cmd) = scripts.get(*hook).and_then(|c| c.as_str()) {
            let at = t
                .text
                .find(&format!("\"{hook}\""))
                .map_or_else(|| t.whole_file(), |i| t.loc(i));
            out.emit(
                R::InstallHook,
                &at,
                format!("package.json `{hook}` script runs `{cmd}` at install"),
            );
            lang::shell::scan_embedded(cmd, &at, out);
        }
    }
}
