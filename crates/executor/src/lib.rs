//! The executor role: the side of skillcell that agents reach (run, later serve and mcp).
//!
//! Before it touches a skill, [`Executor::enter`] restricts the process with Landlock so that
//! it can write only its run-state dir and the audit trail; the store and the registry are
//! read-only to it by the kernel, whatever bugs the rest of the code has. The crate depends on
//! `skillcell-store` for reading and has no dependency on `skillcell-developer`, so no code
//! path here can reach a store write.
//!
//! [`Executor::resolve`] is the gate every run passes: the current version must be usable, its
//! contract must still hash to the recorded contract hash, and its files to the tree hash
//! recorded at install. Each decision is audited. [`run`] turns the contract and the caller's
//! request into a cell spec (the only place where policy becomes mounts, environment and
//! limits) and audits the run with its enforcement report; [`runtimes`] finds the host
//! interpreters and the files they need. Cells are prepared with
//! `skillcell_sandbox_linux::PreparedCell` before [`Executor::enter_with`], because a
//! Landlock-restricted process cannot mount.

mod egress;
pub mod run;
pub mod runtimes;
pub mod wasm;

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use skillcell_audit::{Actor, AuditError, AuditLog, Event, Role};
use skillcell_sandbox_linux::grant::GrantFd;
use skillcell_sandbox_linux::{LandlockError, LandlockReport, restrict_writes};
use skillcell_store::{Home, RegistryError, RegistryReader, VersionRecord, tree};
use skillcell_types::{Decision, Digest, VersionState};

/// Which cell a run will need, decided before the executor restricts itself (a native cell
/// must be prepared first; a WASM run writes its write grants from this process).
#[derive(Debug)]
pub enum CellKind {
    Native,
    /// In-process, writing through these host directories (held open: the executor's Landlock
    /// rules are built on them, not on paths a concurrent run could swap).
    Wasm {
        writable: Vec<GrantFd>,
    },
}

/// Looks at the current version of the requested skill (read-only, unverified: the run itself
/// verifies it and re-plans) to tell which cell the run needs. Anything it cannot read says
/// `Native`, and the run reports the problem.
pub fn cell_kind(home: &Home, request: &run::RunRequest) -> CellKind {
    let Ok(registry) = RegistryReader::open(&home.registry_db()) else {
        return CellKind::Native;
    };
    let Ok(version) = registry.current(&request.name) else {
        return CellKind::Native;
    };
    let dir = home.tree_dir(&version.tree_hash);
    match wasm::wasm_write_grants(&dir, &version.contract, request, home.root()) {
        Some(writable) => CellKind::Wasm { writable },
        None => CellKind::Native,
    }
}

/// Errors of the executor role.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot prepare {path}: {source}")]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Landlock(#[from] LandlockError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Cell(#[from] skillcell_sandbox_linux::CellError),
    #[error("refused to load `{name}`: {reason}")]
    Refused {
        name: String,
        /// Stable code: `not_usable`, `tampered`, `unknown_skill`.
        code: &'static str,
        reason: String,
    },
}

/// An executor that has restricted itself.
#[derive(Debug)]
pub struct Executor {
    home: Home,
    registry: RegistryReader,
    audit: AuditLog,
    actor: Actor,
    landlock: LandlockReport,
}

/// A version that passed the gate.
#[derive(Clone, Debug, Serialize)]
pub struct Resolved {
    pub version: VersionRecord,
    /// The read-only installed folder.
    pub dir: PathBuf,
    /// Time spent re-hashing the tree, in microseconds.
    pub integrity_check_us: u128,
    /// Its files as hashed by that check: what a WASM run compares the module it reads with.
    #[serde(skip)]
    pub files: Vec<tree::TreeFile>,
}

impl Executor {
    /// Creates the run-state and audit dirs if needed, then restricts this process (and all
    /// it starts) to writing only those two dirs. Call it while single-threaded; fails closed
    /// if Landlock is unavailable.
    pub fn enter(home: Home) -> Result<Self, ExecError> {
        Self::enter_with(home, &[], &[], &[])
    }

    /// As [`enter`](Self::enter), keeping `also_writable` and the open `writable_grants`
    /// writable too (a WASM run's write grants, see [`cell_kind`]), and directories removable
    /// beneath `removable_in`: the cgroup directories of a prepared cell, which the executor
    /// must still set limits in, and their parents, where it removes them.
    pub fn enter_with(
        home: Home,
        also_writable: &[PathBuf],
        writable_grants: &[GrantFd],
        removable_in: &[PathBuf],
    ) -> Result<Self, ExecError> {
        let run = home.run_dir();
        let audit_dir = home.audit_dir();
        for dir in [&run, &audit_dir] {
            fs::create_dir_all(dir).map_err(|source| ExecError::Prepare {
                path: dir.clone(),
                source,
            })?;
        }
        let mut writable: Vec<&std::path::Path> = vec![&run, &audit_dir];
        writable.extend(also_writable.iter().map(PathBuf::as_path));
        let remove: Vec<&std::path::Path> = removable_in.iter().map(PathBuf::as_path).collect();
        let grants: Vec<&GrantFd> = writable_grants.iter().collect();
        let landlock = restrict_writes(&writable, &grants, &remove)?;
        let registry = RegistryReader::open(&home.registry_db())?;
        let audit = AuditLog::new(audit_dir);
        Ok(Self {
            home,
            registry,
            audit,
            actor: Actor::current(Role::Executor),
            landlock,
        })
    }

    pub fn landlock(&self) -> &LandlockReport {
        &self.landlock
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    pub(crate) fn actor(&self) -> Actor {
        self.actor.clone()
    }

    pub(crate) fn registry(&self) -> &RegistryReader {
        &self.registry
    }

    pub(crate) fn audit_event(&self, event: Event) -> Result<(), ExecError> {
        self.audit.append(event)?;
        Ok(())
    }

    /// Checks that `name`'s current version may run and is intact; audits the decision.
    pub fn resolve(&self, name: &str) -> Result<Resolved, ExecError> {
        let outcome = self.check(name);
        let event = match &outcome {
            Ok(r) => Event::new(
                self.actor.clone(),
                "resolve",
                Decision::Allow,
                "usable and intact",
            )
            .skill(name)
            .version(r.version.tree_hash)
            .details(serde_json::json!({
                "seq": r.version.seq,
                "contract_hash": r.version.contract_hash.to_string(),
                "integrity_check_us": r.integrity_check_us,
            })),
            Err((code, reason, tree)) => {
                let e = Event::new(
                    self.actor.clone(),
                    "resolve",
                    Decision::Deny,
                    reason.clone(),
                )
                .skill(name)
                .details(serde_json::json!({ "code": code }));
                match tree {
                    Some(t) => e.version(*t),
                    None => e,
                }
            }
        };
        self.audit.append(event)?;
        outcome.map_err(|(code, reason, _)| ExecError::Refused {
            name: name.to_owned(),
            code,
            reason,
        })
    }

    fn check(&self, name: &str) -> Result<Resolved, (&'static str, String, Option<Digest>)> {
        let version = self.registry.current(name).map_err(|e| match e {
            RegistryError::UnknownSkill(_) => ("unknown_skill", e.to_string(), None),
            other => ("registry_error", other.to_string(), None),
        })?;
        let tree_hash = version.tree_hash;
        if version.state != VersionState::Usable {
            let why = version
                .state_reason
                .clone()
                .unwrap_or_else(|| "no reason recorded".into());
            return Err((
                "not_usable",
                format!("version {} is {}: {why}", version.seq, version.state),
                Some(tree_hash),
            ));
        }
        // What runs must be what a person approved: the approval names both hashes.
        match self.registry.approval(version.id) {
            Ok(Some(a))
                if a.tree_hash == version.tree_hash && a.contract_hash == version.contract_hash => {
            }
            Ok(Some(a)) => {
                return Err((
                    "tampered",
                    format!(
                        "its approval is for tree {} and contract {}, not this version's {} and {}; run `skillcell verify`",
                        a.tree_hash.short(),
                        a.contract_hash.short(),
                        tree_hash.short(),
                        version.contract_hash.short()
                    ),
                    Some(tree_hash),
                ));
            }
            Ok(None) => {
                return Err((
                    "not_approved",
                    format!(
                        "version {} is marked usable but no person approved it; run `skillcell verify`, then `skillcell approve {name}` at a terminal",
                        version.seq
                    ),
                    Some(tree_hash),
                ));
            }
            Err(e) => return Err(("registry_error", e.to_string(), Some(tree_hash))),
        }
        // The registry row is read-only to the executor, but not to whoever else can write the
        // data dir: the contract that runs must be the one whose hash was recorded.
        if version.contract.digest() != version.contract_hash {
            return Err((
                "tampered",
                format!(
                    "its contract in the registry no longer matches its contract hash {}; run `skillcell verify`",
                    version.contract_hash.short()
                ),
                Some(tree_hash),
            ));
        }
        let dir = self.home.tree_dir(&tree_hash);
        let started = Instant::now();
        let actual = tree::hash_dir(&dir);
        let integrity_check_us = started.elapsed().as_micros();
        match actual {
            Ok(l) if l.hash == tree_hash => Ok(Resolved {
                version,
                dir,
                integrity_check_us,
                files: l.files,
            }),
            Ok(l) => Err((
                "tampered",
                format!(
                    "its files changed since install (tree {} is now {}); run `skillcell verify`",
                    tree_hash.short(),
                    l.hash.short()
                ),
                Some(tree_hash),
            )),
            Err(e) => Err((
                "tampered",
                format!("its installed tree cannot be read: {e}; run `skillcell verify`"),
                Some(tree_hash),
            )),
        }
    }
}
