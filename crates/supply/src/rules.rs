//! The rule ids the supply-chain audit reports, with their default severities.

use serde::Serialize;
use skillcell_types::finding::Severity;

/// One rule: its stable id, the severity it is reported at by default, and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

pub const PIP_INDEX_OVERRIDE: &str = "dep-pip-index-override";
pub const PIP_TRUSTED_HOST: &str = "dep-pip-trusted-host";
pub const PIP_FIND_LINKS: &str = "dep-pip-find-links";
pub const PIP_PRE: &str = "dep-pip-pre";
pub const PIP_CONSTRAINT: &str = "dep-pip-constraint";
pub const PIP_OPTION: &str = "dep-pip-option";
pub const EDITABLE: &str = "dep-editable";
pub const DIRECT_URL: &str = "dep-direct-url";
pub const INCLUDE_ESCAPE: &str = "dep-include-escape";
pub const INCLUDE_MISSING: &str = "dep-include-missing";
pub const UNPARSABLE: &str = "dep-unparsable";
pub const INSTALL_SCRIPT: &str = "dep-npm-install-script";
pub const UNPINNED: &str = "dep-unpinned";
pub const VULNERABLE: &str = "dep-vulnerable";
pub const MAY_BE_VULNERABLE: &str = "dep-may-be-vulnerable";
pub const TYPOSQUAT: &str = "dep-typosquat";
pub const NO_ADVISORIES: &str = "dep-no-advisories";

const RULES: &[Rule] = &[
    Rule {
        id: PIP_INDEX_OVERRIDE,
        severity: Severity::Critical,
        summary: "a requirement file or uv setting replaces or adds a package index (--index-url, -i, --extra-index-url, --no-index, [tool.uv] index)",
    },
    Rule {
        id: PIP_TRUSTED_HOST,
        severity: Severity::Critical,
        summary: "a requirement file disables TLS verification for a host (--trusted-host)",
    },
    Rule {
        id: PIP_FIND_LINKS,
        severity: Severity::Critical,
        summary: "a requirement file adds a place to find archives (--find-links, -f)",
    },
    Rule {
        id: PIP_PRE,
        severity: Severity::Critical,
        summary: "a requirement file admits pre-releases for every package (--pre)",
    },
    Rule {
        id: PIP_CONSTRAINT,
        severity: Severity::Critical,
        summary: "a requirement file loads a constraints file (-c, --constraint)",
    },
    Rule {
        id: PIP_OPTION,
        severity: Severity::Critical,
        summary: "a requirement file carries another pip option (only --hash and --require-hashes are accepted)",
    },
    Rule {
        id: EDITABLE,
        severity: Severity::Critical,
        summary: "an editable install (-e, --editable) runs a build from a path or repository",
    },
    Rule {
        id: DIRECT_URL,
        severity: Severity::Critical,
        summary: "a dependency comes from a URL, a VCS repository or a local path instead of the registry (pkg @ url, git+https, file:, link:, user/repo)",
    },
    Rule {
        id: INCLUDE_ESCAPE,
        severity: Severity::Critical,
        summary: "-r names a file outside the skill folder (absolute, `..`, a symlink out, or a URL)",
    },
    Rule {
        id: INCLUDE_MISSING,
        severity: Severity::High,
        summary: "-r names a file that is not in the skill folder",
    },
    Rule {
        id: UNPARSABLE,
        severity: Severity::High,
        summary: "a manifest or requirement could not be read, so its dependencies were not audited",
    },
    Rule {
        id: INSTALL_SCRIPT,
        severity: Severity::High,
        summary: "package.json has a script npm runs at install time (preinstall, install, postinstall, prepare), or binding.gyp makes npm run node-gyp",
    },
    Rule {
        id: UNPINNED,
        severity: Severity::Low,
        summary: "a dependency is not pinned to one exact version, so what installs can change",
    },
    Rule {
        id: VULNERABLE,
        severity: Severity::High,
        summary: "a pinned dependency is affected by an advisory (critical when the advisory rates it critical)",
    },
    Rule {
        id: MAY_BE_VULNERABLE,
        severity: Severity::Medium,
        summary: "a dependency's version range admits a version affected by an advisory",
    },
    Rule {
        id: TYPOSQUAT,
        severity: Severity::High,
        summary: "a dependency's name is one edit or one look-alike swap away from a popular package",
    },
    Rule {
        id: NO_ADVISORIES,
        severity: Severity::Info,
        summary: "the audit ran without an advisory database: dependencies were not checked for known vulnerabilities",
    },
];

/// Every rule the audit can report.
pub fn rules() -> &'static [Rule] {
    RULES
}
