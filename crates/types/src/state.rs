use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The life-cycle state of one installed version of a skill.
///
/// Only [`VersionState::Usable`] versions may run. `Pending` and `Rejected` are reserved for the
/// human-approval step (admission): until it lands, `install` marks versions usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Installed, waiting for a person to approve it.
    Pending,
    /// May run.
    Usable,
    /// A person refused it.
    Rejected,
    /// Its files no longer match its tree hash, or an operator pulled it.
    Quarantined,
}

impl VersionState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Usable => "usable",
            Self::Rejected => "rejected",
            Self::Quarantined => "quarantined",
        }
    }
}

impl fmt::Display for VersionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VersionState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => Self::Pending,
            "usable" => Self::Usable,
            "rejected" => Self::Rejected,
            "quarantined" => Self::Quarantined,
            other => return Err(format!("unknown version state {other:?}")),
        })
    }
}

/// The outcome of a policy decision. Ordered from most to least permissive, so that combining
/// decisions is `max`: the strictest wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Prompt,
    Deny,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Prompt => "prompt",
            Self::Deny => "deny",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictest_decision_wins() {
        assert_eq!(Decision::Allow.max(Decision::Deny), Decision::Deny);
        assert_eq!(Decision::Prompt.max(Decision::Allow), Decision::Prompt);
    }

    #[test]
    fn state_round_trips() {
        for s in [
            VersionState::Pending,
            VersionState::Usable,
            VersionState::Rejected,
            VersionState::Quarantined,
        ] {
            assert_eq!(s.as_str().parse::<VersionState>(), Ok(s));
        }
    }
}
