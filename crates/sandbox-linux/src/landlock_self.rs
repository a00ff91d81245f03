//! Landlock on the calling thread: write access only beneath the given directories.

use std::path::{Path, PathBuf};

use std::os::fd::AsFd;

use landlock::{
    ABI, AccessFs, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, path_beneath_rules,
};
use serde::Serialize;

use crate::grant::GrantFd;

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
/// `writable`, beneath the open grants `writable_grants` (the directories they hold, whatever
/// their paths lead to by now) and on `/dev/null`, and remove directories beneath `remove_in`
/// (nothing else there). Reading and executing stay as they were.
///
/// Landlock binds the calling thread only: call this while the process is single-threaded.
/// Note that a Landlock-restricted thread can no longer mount or pivot_root.
pub fn restrict_writes(
    writable: &[&Path],
    writable_grants: &[&GrantFd],
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
    for grant in writable_grants {
        let err = rule_err(grant.shown());
        let is_dir = grant.is_dir().map_err(|e| LandlockError::Rule {
            path: grant.shown().to_path_buf(),
            detail: e.to_string(),
        })?;
        // As in a native cell's write grant: the caller uses this directory after the run, so
        // nothing may leave a FIFO (a reader hangs), a socket, a device node or a symlink
        // (`summary.md -> ~/.ssh/id_rsa`, followed later by whoever reads it) there. A file
        // gets the rights that apply to files; the kernel refuses the others on it.
        let grant_write = handled
            & !(AccessFs::MakeFifo
                | AccessFs::MakeSock
                | AccessFs::MakeChar
                | AccessFs::MakeBlock
                | AccessFs::MakeSym);
        let access = if is_dir {
            grant_write
        } else {
            grant_write & AccessFs::from_file(TARGET_ABI)
        };
        ruleset = ruleset
            .add_rule(PathBeneath::new(grant.as_fd(), access))
            .map_err(err)?;
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
        writable: writable
            .iter()
            .map(|p| p.to_path_buf())
            .chain(writable_grants.iter().map(|g| g.shown().to_path_buf()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The rule is on the directory opened, not on its path: swapping the path for a symlink
    /// to another directory after opening does not make that other directory writable. And a
    /// write grant takes files, not symlinks.
    #[test]
    fn a_writable_grant_is_the_directory_opened() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().canonicalize().expect("canonical");
        let (ws, canary) = (root.join("ws"), root.join("canary"));
        fs::create_dir_all(ws.join("sub")).expect("mkdir");
        fs::create_dir_all(&canary).expect("mkdir");
        let grant = GrantFd::open(&ws, "sub").expect("open");
        fs::rename(ws.join("sub"), ws.join("moved")).expect("rename");
        std::os::unix::fs::symlink(&canary, ws.join("sub")).expect("plant");
        // Landlock binds the calling thread only: restrict a thread of our own.
        let (granted, planted, made_link) = std::thread::scope(|s| {
            s.spawn(|| {
                restrict_writes(&[], &[&grant], &[]).expect("Landlock (see skillcell doctor)");
                (
                    fs::write(ws.join("moved/in"), "x"),
                    fs::write(ws.join("sub/in"), "x"),
                    std::os::unix::fs::symlink("../../etc/passwd", ws.join("moved/link")),
                )
            })
            .join()
            .expect("thread")
        });
        granted.expect("the opened directory is writable");
        assert!(planted.is_err(), "the planted link's target was writable");
        assert!(!canary.join("in").exists());
        assert!(
            fs::symlink_metadata(ws.join("moved/link")).is_err(),
            "a symlink was made in a write grant"
        );
        assert!(
            made_link.is_err(),
            "making a symlink in a write grant succeeded"
        );
    }
}
