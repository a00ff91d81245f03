//! The developer role: install, remove, roll back and verify skills, and scaffold new ones.
//!
//! This is the only crate that writes the store (`store/trees`, `store/staging`) or the
//! registry. Installs are all-or-nothing: a skill is built in a private staging dir, checked
//! (no symlink leaving the folder, no hard links, devices, FIFOs or sockets, no archive member
//! with an absolute or `..` path, size, count and expansion caps), validated as a SKILL.md,
//! hashed, made read-only and renamed into place; only then is the registry written, in one
//! transaction. Every operation appends to the audit trail.
//!
//! A new version is installed `pending`; [`Developer::approve`], reached only from the CLI's
//! terminal-bound `approve`, makes it usable (see `approve`).
//!
//! Not here: running skills (the executor role).

mod approve;
mod fsutil;
mod install;
mod ops;
pub mod policy;
mod scaffold;
pub mod signing;

use std::fs;
use std::path::PathBuf;

use rusqlite::Connection;
use skillcell_audit::{Actor, AuditError, AuditLog, Event, Role};
use skillcell_store::{
    Home, RegistryError, RegistryReader, SCHEMA, SCHEMA_V2, SCHEMA_V3, SCHEMA_VERSION,
};
use skillcell_types::Decision;

pub use approve::{ApprovalOutcome, Review};
pub use install::{InstallLimits, InstallOutcome, PENDING_REASON, Refusal};
pub use ops::{RollbackOutcome, VerifyFinding, VerifyReport};
pub use scaffold::{ScaffoldError, scaffold};

/// Errors of the developer role.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("SKILL.md is not valid:\n{0}")]
    Manifest(skillcell_manifest::Report),
    #[error("no skill named `{0}` is installed (see `skillcell list`)")]
    UnknownSkill(String),
    #[error("`{name}` has no earlier usable version to roll back to")]
    NoPrevious { name: String },
    #[error("`{name}` has no version {}", .seq.map_or("marked current".to_owned(), |s| s.to_string()))]
    UnknownVersion { name: String, seq: Option<u32> },
    #[error(transparent)]
    Sign(#[from] signing::SignError),
    #[error("admission refused: {}", .findings.iter().map(|f| format!("[{}] {} {}:{}: {}", f.severity, f.rule, f.file, f.line, f.message)).collect::<Vec<_>>().join("; "))]
    Inadmissible {
        /// The critical findings.
        findings: Vec<skillcell_types::Finding>,
    },
    #[error("advisory database: {0}")]
    Supply(#[from] skillcell_supply::SupplyError),
    #[error("cannot approve `{name}` version {seq}: {why}")]
    NotApprovable { name: String, seq: u32, why: String },
}

impl DevError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// A session of the developer role on one data dir.
#[derive(Debug)]
pub struct Developer {
    home: Home,
    conn: Connection,
    audit: AuditLog,
    actor: Actor,
    limits: InstallLimits,
}

impl Developer {
    /// Opens the data dir for writing, creating and migrating what is missing.
    pub fn open(home: Home) -> Result<Self, DevError> {
        for dir in [
            home.trees_dir(),
            home.staging_dir(),
            home.registry_dir(),
            home.audit_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(DevError::io(&dir))?;
        }
        let path = home.registry_db();
        let sql = |source| DevError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        // DELETE journal mode: readers need no write access (WAL would need the -shm file).
        conn.pragma_update(None, "journal_mode", "DELETE")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        // Each step brings the schema from its version to the next, in one transaction.
        let steps: [(i64, &str); 3] = [(0, SCHEMA), (1, SCHEMA_V2), (2, SCHEMA_V3)];
        match version {
            0..SCHEMA_VERSION => {
                let mut batch = String::from("BEGIN IMMEDIATE;");
                for (_, step) in steps.iter().filter(|(from, _)| *from >= version) {
                    batch.push_str(step);
                }
                // Versions installed before admission were usable without anyone approving
                // them: fail closed, they wait for a person like any new install.
                if version > 0 {
                    batch.push_str(
                        "UPDATE versions SET state = 'pending', \
                         state_reason = 'installed before approvals existed: a person must approve it (skillcell approve NAME)' \
                         WHERE state = 'usable';",
                    );
                }
                batch.push_str(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"));
                conn.execute_batch(&batch).map_err(sql)?;
            }
            SCHEMA_VERSION => {}
            found => {
                return Err(RegistryError::SchemaVersion {
                    path: path.clone(),
                    found,
                }
                .into());
            }
        }
        let audit = AuditLog::new(home.audit_dir());
        Ok(Self {
            home,
            conn,
            audit,
            actor: Actor::current(Role::Developer),
            limits: InstallLimits::default(),
        })
    }

    /// Replaces the install caps (tests use small ones).
    pub fn with_limits(mut self, limits: InstallLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// A read-only view of the registry.
    pub fn reader(&self) -> Result<RegistryReader, DevError> {
        Ok(RegistryReader::open(&self.home.registry_db())?)
    }

    pub(crate) fn sql(&self, source: rusqlite::Error) -> DevError {
        DevError::Sqlite {
            path: self.home.registry_db(),
            source,
        }
    }

    /// Runs `f` in one transaction, appends the audit record `event` builds from its result,
    /// then commits. The record is written before the commit: if it cannot be written, the
    /// transaction rolls back and nothing changes; if the commit then fails, a second record
    /// says the change was not applied. No change ever lands without its record.
    pub(crate) fn in_tx_audited<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
        event: impl FnOnce(&T, &Actor) -> Event,
    ) -> Result<T, DevError> {
        let path = self.home.registry_db();
        let sql = |source| DevError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        let value = f(&tx).map_err(sql)?;
        let record = event(&value, &self.actor);
        let (op, skill) = (record.op.clone(), record.skill.clone());
        let not_applied = |audit: &AuditLog, why: String| {
            let mut undo = Event::new(
                self.actor.clone(),
                &op,
                Decision::Deny,
                format!("not applied: {why}"),
            );
            if let Some(s) = &skill {
                undo = undo.skill(s.clone());
            }
            // Best effort: if the trail cannot take this either, the first record was not
            // written.
            let _ = audit.append(undo);
        };
        let written = match self.audit.append(record) {
            Ok(r) => r,
            Err(e) => {
                not_applied(
                    &self.audit,
                    format!("the audit record could not be written: {e}"),
                );
                return Err(e.into());
            }
        };
        // Anchor the record in the row this operation wrote, where the executor cannot reach.
        let anchored = tx.execute(
            "UPDATE history SET audit_hash = ?1 WHERE id = (SELECT MAX(id) FROM history)",
            rusqlite::params![written.hash.to_string()],
        );
        if let Err(e) = anchored.and_then(|_| tx.commit()) {
            not_applied(&self.audit, format!("the registry commit failed: {e}"));
            return Err(sql(e));
        }
        Ok(value)
    }

    pub(crate) fn event(&self, op: &str, decision: Decision, reason: impl Into<String>) -> Event {
        Event::new(self.actor.clone(), op, decision, reason)
    }

    pub(crate) fn audit(&self, event: Event) -> Result<(), DevError> {
        self.audit.append(event)?;
        Ok(())
    }

    pub(crate) fn actor_label(&self) -> String {
        format!("{}(uid {})", self.actor.user, self.actor.uid)
    }
}

/// One row of registry history, written inside the caller's transaction.
#[derive(Debug)]
pub(crate) struct HistoryRow<'a> {
    pub at: &'a str,
    pub skill: &'a str,
    pub version_id: Option<i64>,
    pub tree_hash: Option<&'a skillcell_types::Digest>,
    pub event: &'a str,
    pub actor: &'a str,
    pub detail: &'a str,
}

impl HistoryRow<'_> {
    pub fn insert(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO history (at, skill, version_id, tree_hash, event, actor, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                self.at,
                self.skill,
                self.version_id,
                self.tree_hash.map(ToString::to_string),
                self.event,
                self.actor,
                self.detail
            ],
        )?;
        Ok(())
    }
}

/// Problems between the registry history and the audit trail: every history row carries the
/// hash of the developer record written with it, and that record must be in the trail. The
/// executor can rewrite the trail but not the registry, so a rebuilt chain misses anchors.
pub fn audit_anchor_problems(
    reader: &RegistryReader,
    records: &[skillcell_audit::Record],
) -> Result<Vec<skillcell_audit::Problem>, DevError> {
    let developer: std::collections::BTreeSet<String> = records
        .iter()
        .filter(|r| r.event.actor.role == Role::Developer)
        .map(|r| r.hash.to_string())
        .collect();
    let mut problems = Vec::new();
    for anchor in reader.audit_anchors()? {
        let (id, skill, event, hash) = (
            anchor.history_id,
            anchor.skill,
            anchor.event,
            anchor.audit_hash,
        );
        let missing = match &hash {
            Some(h) => !developer.contains(h),
            None => true,
        };
        if missing {
            problems.push(skillcell_audit::Problem {
                line: 0,
                code: "anchor_missing",
                detail: format!(
                    "registry history row {id} ({event} of {skill}) names audit record {}, which is not in the trail",
                    hash.as_deref().map_or("(none)", |h| &h[..12.min(h.len())])
                ),
            });
        }
    }
    Ok(problems)
}

pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
