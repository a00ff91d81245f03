//! `pyproject.toml`: `[project] dependencies`, `[project.optional-dependencies]`,
//! `[build-system] requires` (installed and run to build the project), `[dependency-groups]`
//! (PEP 735), and uv's index settings under `[tool.uv]`. The same TOML shape, less the
//! `[project]` table, is what a PEP 723 script block holds.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use skillcell_types::finding::Severity;
use toml::Spanned;

use super::{Collector, line_col, requirements};
use crate::error::SupplyError;
use crate::rules;

#[derive(Debug, Deserialize)]
struct PyProject {
    project: Option<Project>,
    #[serde(rename = "build-system")]
    build_system: Option<BuildSystem>,
    #[serde(rename = "dependency-groups", default)]
    dependency_groups: BTreeMap<String, Vec<Spanned<toml::Value>>>,
    tool: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Deserialize)]
struct Project {
    #[serde(default)]
    dependencies: Vec<Spanned<String>>,
    #[serde(rename = "optional-dependencies", default)]
    optional_dependencies: BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
struct BuildSystem {
    #[serde(default)]
    requires: Vec<Spanned<String>>,
}

/// Where TOML text sits in its file: the line and column offsets to add to positions in it.
#[derive(Clone, Copy)]
pub(super) struct Origin {
    /// File line of the TOML text's first line, minus one.
    pub line_offset: u32,
    /// Columns removed from each line (the `# ` of a PEP 723 block).
    pub col_offset: u32,
}

pub(super) fn read(c: &mut Collector<'_>, abs: &Path, rel: &str) -> Result<(), SupplyError> {
    let Some(text) = c.read_text(abs, rel)? else {
        return Ok(());
    };
    let doc: PyProject = match toml::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            let (line, col) = e.span().map_or((0, 0), |s| line_col(&text, s.start));
            c.finding(
                rules::UNPARSABLE,
                Severity::High,
                rel,
                line,
                col,
                format!("pyproject.toml is not valid for the audit: {}", e.message()),
                "fix the TOML so its dependency arrays are lists of strings",
            );
            return Ok(());
        }
    };
    let origin = Origin {
        line_offset: 0,
        col_offset: 0,
    };
    let mut reqs: Vec<&Spanned<String>> = Vec::new();
    if let Some(p) = &doc.project {
        reqs.extend(&p.dependencies);
        reqs.extend(p.optional_dependencies.values().flatten());
    }
    if let Some(b) = &doc.build_system {
        reqs.extend(&b.requires);
    }
    for r in reqs {
        spanned_requirement(c, &text, r, rel, origin);
    }
    dependency_groups(c, &text, &doc.dependency_groups, rel, origin);
    if let Some(tool) = &doc.tool {
        uv_settings(c, &text, tool, rel, origin);
    }
    Ok(())
}

pub(super) fn spanned_requirement(
    c: &mut Collector<'_>,
    text: &str,
    r: &Spanned<String>,
    rel: &str,
    origin: Origin,
) {
    let (line, col) = line_col(text, r.span().start);
    requirements::requirement(
        c,
        r.get_ref(),
        rel,
        line + origin.line_offset,
        col + origin.col_offset,
        false,
    );
}

pub(super) fn dependency_groups(
    c: &mut Collector<'_>,
    text: &str,
    groups: &BTreeMap<String, Vec<Spanned<toml::Value>>>,
    rel: &str,
    origin: Origin,
) {
    for item in groups.values().flatten() {
        // A group item is a requirement string or an `{include-group = "..."}` table.
        if let toml::Value::String(s) = item.get_ref() {
            let (line, col) = line_col(text, item.span().start);
            requirements::requirement(
                c,
                s,
                rel,
                line + origin.line_offset,
                col + origin.col_offset,
                false,
            );
        }
    }
}

/// `[tool.uv]` keys that change where packages come from.
const UV_SOURCE_KEYS: &[&str] = &[
    "index",
    "index-url",
    "extra-index-url",
    "find-links",
    "sources",
    "no-index",
];

pub(super) fn uv_settings(
    c: &mut Collector<'_>,
    text: &str,
    tool: &Spanned<toml::Table>,
    rel: &str,
    origin: Origin,
) {
    let Some(toml::Value::Table(uv)) = tool.get_ref().get("uv") else {
        return;
    };
    let (line, col) = line_col(text, tool.span().start);
    for key in UV_SOURCE_KEYS {
        if uv.contains_key(*key) {
            let (rule, allowed) = if *key == "sources" {
                (rules::DIRECT_URL, c.policy.allow_direct_references)
            } else {
                (rules::PIP_INDEX_OVERRIDE, c.policy.allow_pip_options)
            };
            c.finding(
                rule,
                Collector::gated(allowed),
                rel,
                line + origin.line_offset,
                col + origin.col_offset,
                format!("[tool.uv] sets `{key}`, which changes where packages come from"),
                "remove the setting: dependencies come from the default index (PyPI)",
            );
        }
    }
}
