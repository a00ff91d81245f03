//! The registry's schema and the read-only view of it.
//!
//! The registry is a SQLite database (journal mode DELETE, so a read-only connection needs no
//! write access anywhere). The developer role creates and migrates it; every other reader
//! opens it with [`RegistryReader::open`], read-only at the SQLite level, and the executor is
//! also held read-only by Landlock.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::Serialize;
use skillcell_types::{Contract, Digest, SkillName, VersionState};

/// Schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 3;

/// The registry schema (version 1). A version is installed `pending`; a person's approval
/// ([`SCHEMA_V3`]) makes it `usable`.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS skills (
    name            TEXT PRIMARY KEY,
    current_version INTEGER REFERENCES versions(id),
    created_at      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    id               INTEGER PRIMARY KEY,
    skill            TEXT NOT NULL REFERENCES skills(name) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    tree_hash        TEXT NOT NULL,
    contract_hash    TEXT NOT NULL,
    contract_json    TEXT NOT NULL,
    description      TEXT NOT NULL,
    source           TEXT NOT NULL,
    file_count       INTEGER NOT NULL,
    total_bytes      INTEGER NOT NULL,
    installed_at     TEXT NOT NULL,
    installed_by     TEXT NOT NULL,
    state            TEXT NOT NULL
        CHECK (state IN ('pending', 'usable', 'rejected', 'quarantined')),
    state_reason     TEXT,
    state_changed_at TEXT NOT NULL,
    UNIQUE (skill, seq)
);
CREATE INDEX IF NOT EXISTS versions_tree ON versions(tree_hash);
CREATE TABLE IF NOT EXISTS history (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    skill      TEXT NOT NULL,
    version_id INTEGER,
    tree_hash  TEXT,
    event      TEXT NOT NULL,
    actor      TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    -- Hash of the audit record written with this row: anchors the audit trail in a place the
    -- executor cannot write.
    audit_hash TEXT
);
"#;

/// Added in schema version 2: compiled WASM modules. An artifact is native code, so the digest
/// of its file is recorded here, where the executor can only read, and checked before it is
/// loaded. Keyed by the module's content digest and the engine's compatibility hash.
pub const SCHEMA_V2: &str = r#"
CREATE TABLE IF NOT EXISTS wasm_artifacts (
    module_digest   TEXT NOT NULL,
    engine          TEXT NOT NULL,
    artifact_digest TEXT NOT NULL,
    size            INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (module_digest, engine)
);
"#;

/// Added in schema version 3: admission. `approvals` binds a person's approval to exactly the
/// tree and contract that were approved (the executor refuses a version whose approval names
/// other hashes); `admission_reports` keeps the findings shown at install, which the approval
/// must accept rule by rule when they are high.
pub const SCHEMA_V3: &str = r#"
CREATE TABLE IF NOT EXISTS approvals (
    version_id     INTEGER PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    tree_hash      TEXT NOT NULL,
    contract_hash  TEXT NOT NULL,
    approved_by    TEXT NOT NULL,
    approved_at    TEXT NOT NULL,
    -- JSON array of the rule ids whose high findings the approver accepted.
    accepted_risks TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS admission_reports (
    version_id  INTEGER PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    -- JSON array of findings (skillcell_types::Finding).
    findings    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
"#;

/// A person's approval of one version.
#[derive(Clone, Debug, Serialize)]
pub struct ApprovalRecord {
    pub tree_hash: Digest,
    pub contract_hash: Digest,
    pub approved_by: String,
    pub approved_at: String,
    pub accepted_risks: Vec<String>,
}

/// Why the registry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no registry at {path}; install a skill first (`skillcell install PATH`)")]
    Missing { path: PathBuf },
    #[error("registry {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("registry {path} has schema version {found}; this skillcell reads {SCHEMA_VERSION}")]
    SchemaVersion { path: PathBuf, found: i64 },
    #[error("registry {path} holds a malformed row: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("no skill named `{0}` is installed (see `skillcell list`)")]
    UnknownSkill(String),
}

/// One row of `skillcell list`.
#[derive(Clone, Debug, Serialize)]
pub struct SkillSummary {
    pub name: SkillName,
    pub versions: u32,
    pub current: Option<VersionRecord>,
}

/// One installed version.
#[derive(Clone, Debug, Serialize)]
pub struct VersionRecord {
    pub id: i64,
    pub skill: SkillName,
    pub seq: u32,
    pub tree_hash: Digest,
    pub contract_hash: Digest,
    pub contract: Contract,
    pub description: String,
    pub source: String,
    pub file_count: u64,
    pub total_bytes: u64,
    pub installed_at: String,
    pub installed_by: String,
    pub state: VersionState,
    pub state_reason: Option<String>,
    pub state_changed_at: String,
    pub current: bool,
}

/// Columns selected for a [`VersionRecord`], in the order [`version_from_row`] reads them.
pub const VERSION_COLUMNS: &str = "v.id, v.skill, v.seq, v.tree_hash, v.contract_hash, \
    v.contract_json, v.description, v.source, v.file_count, v.total_bytes, v.installed_at, \
    v.installed_by, v.state, v.state_reason, v.state_changed_at, \
    (s.current_version IS v.id)";

/// Reads a row selected with [`VERSION_COLUMNS`].
pub fn version_from_row(row: &Row<'_>) -> rusqlite::Result<Result<VersionRecord, String>> {
    let text = |i: usize| row.get::<_, String>(i);
    let skill = text(1)?;
    let tree = text(3)?;
    let contract_hash = text(4)?;
    let contract_json = text(5)?;
    let state = text(12)?;
    let parsed = (|| {
        Ok::<_, String>(VersionRecord {
            id: row.get(0).map_err(|e| e.to_string())?,
            skill: SkillName::new(&skill).map_err(|e| e.to_string())?,
            seq: row.get(2).map_err(|e| e.to_string())?,
            tree_hash: tree.parse().map_err(|e| format!("{e}"))?,
            contract_hash: contract_hash.parse().map_err(|e| format!("{e}"))?,
            contract: serde_json::from_str(&contract_json).map_err(|e| e.to_string())?,
            description: text(6).map_err(|e| e.to_string())?,
            source: text(7).map_err(|e| e.to_string())?,
            file_count: u64::try_from(row.get::<_, i64>(8).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?,
            total_bytes: u64::try_from(row.get::<_, i64>(9).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?,
            installed_at: text(10).map_err(|e| e.to_string())?,
            installed_by: text(11).map_err(|e| e.to_string())?,
            state: state.parse()?,
            state_reason: row.get(13).map_err(|e| e.to_string())?,
            state_changed_at: text(14).map_err(|e| e.to_string())?,
            current: row.get(15).map_err(|e| e.to_string())?,
        })
    })();
    Ok(parsed)
}

/// A read-only connection to the registry.
#[derive(Debug)]
pub struct RegistryReader {
    conn: Connection,
    path: PathBuf,
}

impl RegistryReader {
    /// Opens the registry read-only. Fails if it does not exist or has another schema version.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        if !path.exists() {
            return Err(RegistryError::Missing {
                path: path.to_path_buf(),
            });
        }
        let sql = |source| RegistryError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        if found != SCHEMA_VERSION {
            return Err(RegistryError::SchemaVersion {
                path: path.to_path_buf(),
                found,
            });
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, source: rusqlite::Error) -> RegistryError {
        RegistryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, detail: String) -> RegistryError {
        RegistryError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn versions_where(
        &self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<VersionRecord>, RegistryError> {
        let q = format!(
            "SELECT {VERSION_COLUMNS} FROM versions v JOIN skills s ON s.name = v.skill \
             WHERE {clause} ORDER BY v.skill, v.seq"
        );
        let mut stmt = self.conn.prepare(&q).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(args, version_from_row)
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(|e| self.sql(e))?.map_err(|d| self.corrupt(d))?);
        }
        Ok(out)
    }

    /// Every installed skill with its current version.
    pub fn list(&self) -> Result<Vec<SkillSummary>, RegistryError> {
        let all = self.versions_where("1", &[])?;
        let mut names: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT name FROM skills ORDER BY name")
                .map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.sql(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))?
        };
        names.dedup();
        names
            .into_iter()
            .map(|n| {
                let name = SkillName::new(&n).map_err(|e| self.corrupt(e.to_string()))?;
                let mine: Vec<&VersionRecord> = all.iter().filter(|v| v.skill == name).collect();
                Ok(SkillSummary {
                    versions: u32::try_from(mine.len()).unwrap_or(u32::MAX),
                    current: mine.iter().find(|v| v.current).map(|v| (*v).clone()),
                    name,
                })
            })
            .collect()
    }

    /// Every version of one skill, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        let v = self.versions_where("v.skill = ?1", &[&name])?;
        if v.is_empty() {
            return Err(RegistryError::UnknownSkill(name.to_owned()));
        }
        Ok(v)
    }

    /// The current version of one skill.
    pub fn current(&self, name: &str) -> Result<VersionRecord, RegistryError> {
        let v = self.versions_where("v.skill = ?1 AND s.current_version IS v.id", &[&name])?;
        v.into_iter()
            .next()
            .ok_or_else(|| RegistryError::UnknownSkill(name.to_owned()))
    }

    /// Every version of every skill.
    pub fn all_versions(&self) -> Result<Vec<VersionRecord>, RegistryError> {
        self.versions_where("1", &[])
    }

    /// The install/rollback/remove/quarantine history of one skill, newest last.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, RegistryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, event, tree_hash, actor, detail FROM history \
                 WHERE skill = ?1 ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![name], |r| {
                Ok(HistoryEntry {
                    at: r.get(0)?,
                    event: r.get(1)?,
                    tree_hash: r.get(2)?,
                    actor: r.get(3)?,
                    detail: r.get(4)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Every history row's audit anchor.
    pub fn audit_anchors(&self) -> Result<Vec<AuditAnchor>, RegistryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, skill, event, audit_hash FROM history ORDER BY id")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AuditAnchor {
                    history_id: r.get(0)?,
                    skill: r.get(1)?,
                    event: r.get(2)?,
                    audit_hash: r.get(3)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// The recorded digest of the compiled artifact of the module whose content digest is
    /// `module`, for the engine whose compatibility hash is `engine`.
    pub fn wasm_artifact(
        &self,
        module: &Digest,
        engine: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT artifact_digest FROM wasm_artifacts WHERE module_digest = ?1 AND engine = ?2",
                params![module.to_string(), engine],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        found
            .map(|d| {
                d.parse()
                    .map_err(|_| self.corrupt(format!("wasm artifact digest {d:?}")))
            })
            .transpose()
    }

    /// The approval of the version with row id `version_id`, if a person approved it.
    pub fn approval(&self, version_id: i64) -> Result<Option<ApprovalRecord>, RegistryError> {
        let row: Option<(String, String, String, String, String)> = self
            .conn
            .query_row(
                "SELECT tree_hash, contract_hash, approved_by, approved_at, accepted_risks \
                 FROM approvals WHERE version_id = ?1",
                params![version_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some((tree, contract, approved_by, approved_at, risks)) = row else {
            return Ok(None);
        };
        let digest = |d: String| {
            d.parse()
                .map_err(|_| self.corrupt(format!("approval digest {d:?}")))
        };
        Ok(Some(ApprovalRecord {
            tree_hash: digest(tree)?,
            contract_hash: digest(contract)?,
            approved_by,
            approved_at,
            accepted_risks: serde_json::from_str(&risks)
                .map_err(|e| self.corrupt(format!("accepted risks {risks:?}: {e}")))?,
        }))
    }

    /// The findings recorded when the version with row id `version_id` was installed (`None`
    /// for versions installed before admission reports existed).
    pub fn admission_findings(
        &self,
        version_id: i64,
    ) -> Result<Option<Vec<skillcell_types::Finding>>, RegistryError> {
        let row: Option<String> = self
            .conn
            .query_row(
                "SELECT findings FROM admission_reports WHERE version_id = ?1",
                params![version_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        row.map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| self.corrupt(format!("admission findings: {e}")))
        })
        .transpose()
    }

    /// Whether any version still references `tree_hash`.
    pub fn tree_referenced(&self, tree_hash: &Digest) -> Result<bool, RegistryError> {
        self.conn
            .query_row(
                "SELECT 1 FROM versions WHERE tree_hash = ?1 LIMIT 1",
                params![tree_hash.to_string()],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| self.sql(e))
    }
}

/// A history row and the hash of the audit record written with it.
#[derive(Clone, Debug, Serialize)]
pub struct AuditAnchor {
    pub history_id: i64,
    pub skill: String,
    pub event: String,
    pub audit_hash: Option<String>,
}

/// One row of the registry history.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    pub at: String,
    pub event: String,
    pub tree_hash: Option<String>,
    pub actor: String,
    pub detail: String,
}
