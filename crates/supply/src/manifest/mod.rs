//! Reading a skill folder's dependency manifests: requirement files, `pyproject.toml`, PEP 723
//! script blocks in `.py` files, `package.json`. Each reader adds dependencies and findings to
//! a [`Collector`]; none of them runs anything.

mod npm;
mod pep723;
mod pyproject;
mod requirements;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use skillcell_types::finding::{Finding, Severity};

use crate::error::SupplyError;
use crate::report::{AuditPolicy, Dependency, Ecosystem};
use crate::rules;

/// Largest manifest or `.py` file read; a larger one is reported and skipped.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most files walked in a skill folder.
const MAX_FILES: usize = 50_000;
/// Folders not descended into: tool caches and vendored installs, not declarations.
const SKIPPED_DIRS: &[&str] = &[".git", "node_modules", "__pycache__", ".venv", "venv"];

/// Accumulates what the readers find.
pub(crate) struct Collector<'p> {
    pub root: PathBuf,
    pub policy: &'p AuditPolicy,
    pub dependencies: Vec<Dependency>,
    pub findings: Vec<Finding>,
    /// Requirement files already read (canonical paths), so `-r` cycles end.
    pub seen_requirements: BTreeSet<PathBuf>,
}

impl Collector<'_> {
    #[expect(clippy::too_many_arguments, reason = "a finding has this many fields")]
    pub fn finding(
        &mut self,
        rule: &str,
        severity: Severity,
        file: &str,
        line: u32,
        col: u32,
        message: String,
        hint: &str,
    ) {
        self.findings.push(Finding {
            rule: rule.to_owned(),
            severity,
            message,
            file: file.to_owned(),
            line,
            col,
            hint: hint.to_owned(),
        });
    }

    /// `Critical`, or `Info` when the policy accepts it.
    pub fn gated(allowed: bool) -> Severity {
        if allowed {
            Severity::Info
        } else {
            Severity::Critical
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "a dependency has this many fields"
    )]
    pub fn dependency(
        &mut self,
        ecosystem: Ecosystem,
        name: String,
        spec: String,
        pinned: Option<String>,
        url: Option<String>,
        file: &str,
        line: u32,
        col: u32,
    ) {
        self.dependencies.push(Dependency {
            ecosystem,
            name,
            spec,
            pinned,
            url,
            file: file.to_owned(),
            line,
            col,
        });
    }

    /// Reads a file of at most [`MAX_FILE_BYTES`] as text; reports and returns `None` when it
    /// is larger or not UTF-8.
    pub fn read_text(&mut self, abs: &Path, rel: &str) -> Result<Option<String>, SupplyError> {
        let io_err = |source| SupplyError::Io {
            path: abs.to_owned(),
            source,
        };
        let mut bytes = Vec::new();
        fs::File::open(abs)
            .map_err(io_err)?
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            self.finding(
                rules::UNPARSABLE,
                Severity::High,
                rel,
                0,
                0,
                format!(
                    "{rel} is larger than {MAX_FILE_BYTES} bytes; its dependencies were not read"
                ),
                "keep manifests and scripts small, or split the file",
            );
            return Ok(None);
        }
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Some(s.replace("\r\n", "\n"))),
            Err(_) => {
                self.finding(
                    rules::UNPARSABLE,
                    Severity::High,
                    rel,
                    0,
                    0,
                    format!("{rel} is not UTF-8 text; its dependencies were not read"),
                    "save the file as UTF-8",
                );
                Ok(None)
            }
        }
    }
}

/// The files of `root` worth reading, as (relative `/`-separated path, absolute path), in a
/// stable order, and whether the walk stopped at [`MAX_FILES`]. Symlinks are not followed.
fn walk(root: &Path) -> Result<(Vec<(String, PathBuf)>, bool), SupplyError> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), root.to_owned())];
    while let Some((rel_dir, dir)) = stack.pop() {
        let io_err = |source| SupplyError::Io {
            path: dir.clone(),
            source,
        };
        let entries = sorted_entries(&dir)?;
        for e in entries.into_iter().rev() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() {
                name.clone()
            } else {
                format!("{rel_dir}/{name}")
            };
            let ft = e.file_type().map_err(io_err)?;
            if ft.is_dir() && !SKIPPED_DIRS.contains(&name.as_str()) {
                stack.push((rel, e.path()));
            } else if ft.is_file() {
                out.push((rel, e.path()));
                if out.len() >= MAX_FILES {
                    out.sort();
                    return Ok((out, true));
                }
            }
        }
    }
    out.sort();
    Ok((out, false))
}

/// Whether a file name is a requirement file read on its own (`requirements*.txt`).
fn is_requirements_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("requirements") && lower.ends_with(".txt")
}

/// Reads every manifest under `collector.root`.
/// The entries of `dir`, sorted by name (walks are deterministic).
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<fs::DirEntry>, SupplyError> {
    let io_err = |source| SupplyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = fs::read_dir(dir)
        .map_err(io_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err)?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

pub(crate) fn collect(c: &mut Collector<'_>) -> Result<(), SupplyError> {
    let root = c.root.clone();
    let (files, truncated) = walk(&root)?;
    if truncated {
        c.finding(
            rules::UNPARSABLE,
            Severity::High,
            "",
            0,
            0,
            format!("the skill folder has more than {MAX_FILES} files; only the first were read"),
            "remove vendored trees and generated files from the skill folder",
        );
    }
    for (rel, abs) in files {
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_owned();
        if is_requirements_name(&name) {
            requirements::read(c, &abs, &rel, 0)?;
        } else if name == "pyproject.toml" {
            pyproject::read(c, &abs, &rel)?;
        } else if name == "package.json" {
            npm::read(c, &abs, &rel)?;
        } else if name.ends_with(".py") {
            pep723::read(c, &abs, &rel)?;
        }
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u32, col as u32)
}
