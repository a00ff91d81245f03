//! Landlock on the calling thread: write access only beneath the given directories.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, path_beneath_rules,
};
use serde::Serialize;

/// The ABI whose write rights we ask for. Older kernels get what they support, and the report
/// says so; a kernel without Landlock is refused.
const TARGET_ABI: ABI = ABI::V5;

/// What was enforced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LandlockReport {
    /// `full` or `partial` (some write rights of the target ABI unknown to this kernel).
    pub status: &'static str,
    /// The ABI the kernel reports.
    pub kernel_abi: i32,
    /// Directories left writable.
    pub writable: Vec<PathBuf>,
}

/// Why the restriction could not be put in place. The caller must stop: running unrestricted
/// would be weaker than promised.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error(
        "Landlock is not available on this kernel ({0}); the executor role cannot hold the store read-only. Run `skillcell doctor`"
    )]
    Unavailable(std::io::Error),
    #[error("cannot open {path} for a Landlock rule: {detail}")]
    Rule { path: PathBuf, detail: String },
    #[error("Landlock restriction failed: {0}")]
    Restrict(String),
    #[error("Landlock reported that nothing was enforced")]
    NotEnforced,
}

/// Restricts the calling thread, and every process it starts afterwards, so that it can write
/// (create, write, truncate, rename, link, remove, make devices or sockets) only beneath
/// `writable` and on `/dev/null`, and remove directories beneath `remove_in` (nothing else
/// there). Reading and executing stay as they were.
///
/// Landlock binds the calling thread only: call this while the process is single-threaded.
/// Note that a Landlock-restricted thread can no longer mount or pivot_root.
pub fn restrict_writes(
    writable: &[&Path],
    remove_in: &[&Path],
) -> Result<LandlockReport, LandlockError> {
    let kernel_abi = crate::sys::landlock_abi().map_err(LandlockError::Unavailable)?;
    let handled = AccessFs::from_write(TARGET_ABI);
    let rule_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: landlock::RulesetError| LandlockError::Rule {
            path: path.clone(),
            detail: e.to_string(),
        }
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(handled)
        .map_err(|e| LandlockError::Restrict(e.to_string()))?
        .create()
        .map_err(|e| LandlockError::Restrict(e.to_string()))?;
    for dir in writable {
        for rule in path_beneath_rules([dir], handled) {
            ruleset = ruleset
                .add_rule(rule.map_err(rule_err(dir))?)
                .map_err(rule_err(dir))?;
        }
    }
    for dir in remove_in {
        for rule in path_beneath_rules([dir], AccessFs::RemoveDir) {
            ruleset = ruleset
                .add_rule(rule.map_err(rule_err(dir))?)
                .map_err(rule_err(dir))?;
        }
    }
    let devnull = Path::new("/dev/null");
    for rule in path_beneath_rules([devnull], AccessFs::WriteFile | AccessFs::Truncate) {
        ruleset = ruleset
            .add_rule(rule.map_err(rule_err(devnull))?)
            .map_err(rule_err(devnull))?;
    }
    let status = ruleset
        .restrict_self()
        .map_err(|e| LandlockError::Restrict(e.to_string()))?;
    let status = match status.ruleset {
        RulesetStatus::FullyEnforced => "full",
        RulesetStatus::PartiallyEnforced => "partial",
        RulesetStatus::NotEnforced => return Err(LandlockError::NotEnforced),
    };
    Ok(LandlockReport {
        status,
        kernel_abi,
        writable: writable.iter().map(|p| p.to_path_buf()).collect(),
    })
}
