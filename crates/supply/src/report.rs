//! What an audit takes (the policy) and returns (the report).

use std::fmt;

use serde::{Deserialize, Serialize};
use skillcell_types::finding::Finding;

use crate::db::DbInfo;

/// The package registry a dependency comes from, spelled as OSV spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    #[serde(rename = "PyPI")]
    PyPI,
    #[serde(rename = "npm")]
    Npm,
}

impl Ecosystem {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PyPI => "PyPI",
            Self::Npm => "npm",
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared dependency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub ecosystem: Ecosystem,
    /// PyPI names PEP 503 normalized; npm names as written.
    pub name: String,
    /// The version constraint as written (`>=2.0,<3`, `^1.2.0`); empty when there is none.
    pub spec: String,
    /// The exact version when the constraint pins one (`==1.2.3`, `===1.2.3`, npm `1.2.3`).
    pub pinned: Option<String>,
    /// A direct reference (URL, VCS, path) instead of a registry version; not looked up.
    pub url: Option<String>,
    /// Path relative to the skill folder, `/`-separated.
    pub file: String,
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters; 0 when unknown.
    pub col: u32,
}

/// What the operator accepts. [`AuditPolicy::default`] is strict: every switch is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditPolicy {
    /// Accept pip options in requirement files (index overrides, `--trusted-host`,
    /// `--find-links`, `--pre`, `-c`, others) and uv index settings: reported as info instead
    /// of critical. Off by default.
    pub allow_pip_options: bool,
    /// Accept direct references (`pkg @ url`, bare URLs, VCS, local paths, `-e`, npm `git`,
    /// `file:`, `link:` and URL specs): reported as info instead of critical. Off by default.
    pub allow_direct_references: bool,
    /// Accept npm install-time scripts: reported as info instead of high. Off by default.
    pub allow_install_scripts: bool,
    /// Names never reported as typosquats (normalized as the ecosystem normalizes them):
    /// for a legitimate package that happens to look like a popular one. Empty by default.
    pub known_names: Vec<String>,
}

/// The result of [`crate::audit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SupplyReport {
    /// Sorted by file, line and column.
    pub dependencies: Vec<Dependency>,
    /// Sorted by file, line, column and rule.
    pub findings: Vec<Finding>,
    /// The advisory database used; `None` when the audit ran without one (a
    /// `dep-no-advisories` finding says so too).
    pub db: Option<DbInfo>,
}
