//! What admission checks report: a finding names a rule by its stable id, says how serious it
//! is, where, and how to fix it. The static scan and the supply-chain audit both produce them;
//! `install` and `approve` judge by their severities.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How serious a finding is, least to most; `max` of several is the strictest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    /// Admission refuses it unless the approver accepts the risk by rule id.
    High,
    /// Admission refuses it; no acceptance.
    Critical,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id of the rule (`py-exec`, `dep-pip-option`): what `--accept-risk` names.
    pub rule: String,
    pub severity: Severity,
    /// What was found, in one sentence.
    pub message: String,
    /// Path relative to the skill folder, `/`-separated.
    pub file: String,
    /// 1-based; 0 when the finding is about the whole file.
    pub line: u32,
    /// 1-based, in characters; 0 when unknown.
    pub col: u32,
    /// How to fix it, or what to declare to make it legitimate.
    pub hint: String,
}
