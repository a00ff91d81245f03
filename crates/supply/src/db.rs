//! The offline advisory database: OSV records imported from the per-ecosystem `all.zip`
//! exports (or a folder of `.json` records) into SQLite, queried by package during an audit.
//!
//! The database never touches the network. Imports run in one transaction: a refused archive
//! (too many entries, a record too large, too much in total, a malformed record) leaves the
//! database as it was.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::SupplyError;
use crate::osv::{EventKind, RawRecord, SeverityScore};
use crate::pep440::normalize_name;

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE advisories (
    id          TEXT PRIMARY KEY,
    modified    TEXT NOT NULL,
    modified_ns INTEGER NOT NULL,
    published   TEXT,
    withdrawn   TEXT,
    summary     TEXT NOT NULL,
    aliases     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    db_severity TEXT
) STRICT;
CREATE TABLE affected (
    advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    ecosystem   TEXT NOT NULL,
    name        TEXT NOT NULL,
    versions    TEXT NOT NULL,
    PRIMARY KEY (advisory_id, idx)
) STRICT;
CREATE INDEX affected_by_package ON affected(ecosystem, name);
CREATE TABLE ranges (
    advisory_id  TEXT NOT NULL,
    affected_idx INTEGER NOT NULL,
    idx          INTEGER NOT NULL,
    type         TEXT NOT NULL,
    repo         TEXT,
    PRIMARY KEY (advisory_id, affected_idx, idx),
    FOREIGN KEY (advisory_id, affected_idx) REFERENCES affected(advisory_id, idx) ON DELETE CASCADE
) STRICT;
CREATE TABLE events (
    advisory_id  TEXT NOT NULL,
    affected_idx INTEGER NOT NULL,
    range_idx    INTEGER NOT NULL,
    idx          INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('introduced', 'fixed', 'last_affected', 'limit')),
    version      TEXT NOT NULL,
    PRIMARY KEY (advisory_id, affected_idx, range_idx, idx),
    FOREIGN KEY (advisory_id, affected_idx, range_idx)
        REFERENCES ranges(advisory_id, affected_idx, idx) ON DELETE CASCADE
) STRICT;
CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    imported_at   TEXT NOT NULL,
    records       INTEGER NOT NULL,
    inserted      INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    unchanged     INTEGER NOT NULL,
    skipped_older INTEGER NOT NULL,
    skipped_files INTEGER NOT NULL
) STRICT;
";

/// Bounds on what an import reads; the defaults fit the real OSV exports with room to spare.
#[derive(Clone, Copy, Debug)]
pub struct ImportLimits {
    /// Entries in a zip (or `.json` files in a folder). Default 1 000 000.
    pub max_entries: u64,
    /// Uncompressed bytes of one record. Default 16 MiB.
    pub max_entry_bytes: u64,
    /// Uncompressed bytes of all records together. Default 4 GiB.
    pub max_total_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            max_entry_bytes: 16 << 20,
            max_total_bytes: 4 << 30,
        }
    }
}

/// What one import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportStats {
    /// The zip, folder or file imported, as given.
    pub source: String,
    /// RFC 3339, UTC.
    pub imported_at: String,
    /// OSV records read.
    pub records: u64,
    /// New advisory ids.
    pub inserted: u64,
    /// Known ids replaced by a record with a newer `modified`.
    pub updated: u64,
    /// Known ids whose record had the same `modified`.
    pub unchanged: u64,
    /// Records older than the stored one, ignored.
    pub skipped_older: u64,
    /// Archive entries or files that are not `.json`, ignored.
    pub skipped_files: u64,
}

/// Which database an audit used, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DbInfo {
    pub path: String,
    pub schema_version: i64,
    /// Advisories stored, withdrawn ones included.
    pub advisories: u64,
    /// The most recent import, if any.
    pub last_import: Option<ImportStats>,
}

/// An advisory as the audit evaluates it.
#[derive(Clone, Debug)]
pub(crate) struct Advisory {
    pub id: String,
    pub summary: String,
    pub aliases: Vec<String>,
    pub severity: Vec<SeverityScore>,
    pub db_severity: Option<String>,
    pub affected: Vec<StoredAffected>,
}

#[derive(Clone, Debug)]
pub(crate) struct StoredAffected {
    pub versions: Vec<String>,
    pub ranges: Vec<StoredRange>,
}

#[derive(Clone, Debug)]
pub(crate) struct StoredRange {
    /// `ECOSYSTEM`, `SEMVER` or `GIT`.
    pub kind: String,
    pub events: Vec<(EventKind, String)>,
}

/// An OSV advisory database in one SQLite file.
#[derive(Debug)]
pub struct AdvisoryDb {
    conn: Connection,
    path: PathBuf,
}

impl AdvisoryDb {
    /// Opens the database at `path`, creating the file and its schema if missing. Refuses a
    /// database whose schema is newer than this build's.
    pub fn open(path: &Path) -> Result<Self, SupplyError> {
        let db_err = |source| SupplyError::Db {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(db_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(db_err)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db_err)?;
        if found > SCHEMA_VERSION {
            return Err(SupplyError::SchemaTooNew {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == 0 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(db_err)?;
        }
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    fn db_err(&self, source: rusqlite::Error) -> SupplyError {
        SupplyError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Imports OSV records from `path` with the default [`ImportLimits`]: a zip of `<ID>.json`
    /// records (OSV's `<ecosystem>/all.zip`), a folder of `.json` records (searched
    /// recursively, symlinks not followed) or one `.json` record. A record replaces a stored
    /// one with the same id only when its `modified` is newer. `progress` is called with the
    /// number of records read so far.
    pub fn import(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportStats, SupplyError> {
        self.import_with_limits(path, &ImportLimits::default(), progress)
    }

    /// [`AdvisoryDb::import`] with explicit bounds.
    pub fn import_with_limits(
        &mut self,
        path: &Path,
        limits: &ImportLimits,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportStats, SupplyError> {
        let db_path = self.path.clone();
        let db_err = |source| SupplyError::Db {
            path: db_path.clone(),
            source,
        };
        let meta = fs::metadata(path).map_err(|source| SupplyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut stats = ImportStats {
            source: path.display().to_string(),
            imported_at: now_rfc3339(),
            records: 0,
            inserted: 0,
            updated: 0,
            unchanged: 0,
            skipped_older: 0,
            skipped_files: 0,
        };
        let tx = self.conn.transaction().map_err(db_err)?;
        let mut importer = Importer {
            tx: &tx,
            origin: path,
            db_path: &db_path,
            limits,
            total: 0,
            stats: &mut stats,
            progress,
        };
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if meta.is_dir() {
            importer.folder()?;
        } else if ext.as_deref() == Some("zip") {
            importer.zip()?;
        } else if ext.as_deref() == Some("json") {
            let bytes = read_bounded(path, limits.max_entry_bytes, path)?;
            importer.record(&bytes, &path.display().to_string())?;
        } else {
            return Err(SupplyError::UnknownSource {
                path: path.to_owned(),
            });
        }
        tx.execute(
            "INSERT INTO imports (source, imported_at, records, inserted, updated, unchanged,
                                  skipped_older, skipped_files)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                stats.source,
                stats.imported_at,
                stats.records as i64,
                stats.inserted as i64,
                stats.updated as i64,
                stats.unchanged as i64,
                stats.skipped_older as i64,
                stats.skipped_files as i64,
            ],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(stats)
    }

    /// The database's path, schema, size and last import.
    pub fn info(&self) -> Result<DbInfo, SupplyError> {
        let advisories: i64 = self
            .conn
            .query_row("SELECT count(*) FROM advisories", [], |r| r.get(0))
            .map_err(|e| self.db_err(e))?;
        let last_import = self
            .conn
            .query_row(
                "SELECT source, imported_at, records, inserted, updated, unchanged,
                        skipped_older, skipped_files
                 FROM imports ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(ImportStats {
                        source: r.get(0)?,
                        imported_at: r.get(1)?,
                        records: r.get::<_, i64>(2)? as u64,
                        inserted: r.get::<_, i64>(3)? as u64,
                        updated: r.get::<_, i64>(4)? as u64,
                        unchanged: r.get::<_, i64>(5)? as u64,
                        skipped_older: r.get::<_, i64>(6)? as u64,
                        skipped_files: r.get::<_, i64>(7)? as u64,
                    })
                },
            )
            .optional()
            .map_err(|e| self.db_err(e))?;
        Ok(DbInfo {
            path: self.path.display().to_string(),
            schema_version: SCHEMA_VERSION,
            advisories: advisories as u64,
            last_import,
        })
    }

    /// The `modified` timestamp stored for an advisory id, if any.
    pub fn modified(&self, id: &str) -> Result<Option<String>, SupplyError> {
        self.conn
            .query_row("SELECT modified FROM advisories WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db_err(e))
    }

    /// The advisories, withdrawn ones excluded, naming `name` in `ecosystem` (`PyPI`, `npm`).
    /// PyPI names are compared in their PEP 503 normalized form.
    pub(crate) fn advisories_for(
        &self,
        ecosystem: &str,
        name: &str,
    ) -> Result<Vec<Advisory>, SupplyError> {
        let key = stored_name(ecosystem, name);
        let run = || -> rusqlite::Result<Vec<Advisory>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT a.id, a.summary, a.aliases, a.severity, a.db_severity, f.idx, f.versions
                 FROM affected f JOIN advisories a ON a.id = f.advisory_id
                 WHERE f.ecosystem = ?1 AND f.name = ?2 AND a.withdrawn IS NULL
                 ORDER BY a.id, f.idx",
            )?;
            let rows = stmt.query_map(params![ecosystem, key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?;
            let mut out: Vec<Advisory> = Vec::new();
            for row in rows {
                let (id, summary, aliases, severity, db_severity, idx, versions) = row?;
                let ranges = self.ranges(&id, idx)?;
                let affected = StoredAffected {
                    versions: serde_json::from_str(&versions).unwrap_or_default(),
                    ranges,
                };
                match out.last_mut() {
                    Some(last) if last.id == id => last.affected.push(affected),
                    _ => out.push(Advisory {
                        id,
                        summary,
                        aliases: serde_json::from_str(&aliases).unwrap_or_default(),
                        severity: serde_json::from_str(&severity).unwrap_or_default(),
                        db_severity,
                        affected: vec![affected],
                    }),
                }
            }
            Ok(out)
        };
        run().map_err(|e| self.db_err(e))
    }

    fn ranges(&self, id: &str, affected_idx: i64) -> rusqlite::Result<Vec<StoredRange>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.idx, r.type, e.kind, e.version
             FROM ranges r LEFT JOIN events e
               ON e.advisory_id = r.advisory_id AND e.affected_idx = r.affected_idx
                  AND e.range_idx = r.idx
             WHERE r.advisory_id = ?1 AND r.affected_idx = ?2
             ORDER BY r.idx, e.idx",
        )?;
        let rows = stmt.query_map(params![id, affected_idx], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out: Vec<(i64, StoredRange)> = Vec::new();
        for row in rows {
            let (idx, kind, ev_kind, version) = row?;
            if out.last().is_none_or(|(i, _)| *i != idx) {
                out.push((
                    idx,
                    StoredRange {
                        kind,
                        events: Vec::new(),
                    },
                ));
            }
            if let (Some(k), Some(v), Some((_, range))) = (ev_kind, version, out.last_mut())
                && let Some(k) = EventKind::from_str(&k)
            {
                range.events.push((k, v));
            }
        }
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }
}

fn stored_name(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        normalize_name(name)
    } else {
        name.to_owned()
    }
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("unknown"))
}

fn read_bounded(path: &Path, limit: u64, origin: &Path) -> Result<Vec<u8>, SupplyError> {
    let io_err = |source| SupplyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > limit {
        return Err(SupplyError::EntryTooLarge {
            path: origin.to_owned(),
            file: path.display().to_string(),
            limit,
        });
    }
    Ok(bytes)
}

struct Importer<'a, 'c> {
    tx: &'a Transaction<'c>,
    origin: &'a Path,
    db_path: &'a Path,
    limits: &'a ImportLimits,
    total: u64,
    stats: &'a mut ImportStats,
    progress: &'a mut dyn FnMut(u64),
}

impl Importer<'_, '_> {
    fn zip(&mut self) -> Result<(), SupplyError> {
        let zip_err = |source| SupplyError::Zip {
            path: self.origin.to_owned(),
            source,
        };
        let file = fs::File::open(self.origin).map_err(|source| SupplyError::Io {
            path: self.origin.to_owned(),
            source,
        })?;
        let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
        let entries = archive.len() as u64;
        if entries > self.limits.max_entries {
            return Err(SupplyError::TooManyEntries {
                path: self.origin.to_owned(),
                entries,
                limit: self.limits.max_entries,
            });
        }
        for i in 0..archive.len() {
            let entry = archive.by_index(i).map_err(zip_err)?;
            let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
            if entry.is_dir() {
                continue;
            }
            if !name.to_ascii_lowercase().ends_with(".json") {
                self.stats.skipped_files += 1;
                continue;
            }
            // The declared size is checked first, then the real one: headers can lie.
            if entry.size() > self.limits.max_entry_bytes {
                return Err(self.too_large(&name));
            }
            let mut bytes = Vec::new();
            entry
                .take(self.limits.max_entry_bytes + 1)
                .read_to_end(&mut bytes)
                .map_err(|source| SupplyError::BadRecord {
                    path: self.origin.to_owned(),
                    file: name.clone(),
                    reason: format!("cannot decompress: {source}"),
                })?;
            if bytes.len() as u64 > self.limits.max_entry_bytes {
                return Err(self.too_large(&name));
            }
            self.record(&bytes, &name)?;
        }
        Ok(())
    }

    fn too_large(&self, name: &str) -> SupplyError {
        SupplyError::EntryTooLarge {
            path: self.origin.to_owned(),
            file: name.to_owned(),
            limit: self.limits.max_entry_bytes,
        }
    }

    fn folder(&mut self) -> Result<(), SupplyError> {
        let mut files = Vec::new();
        let mut stack = vec![self.origin.to_owned()];
        while let Some(dir) = stack.pop() {
            let io_err = |source| SupplyError::Io {
                path: dir.clone(),
                source,
            };
            for e in crate::manifest::sorted_entries(&dir)? {
                let ft = e.file_type().map_err(io_err)?;
                let p = e.path();
                if ft.is_dir() {
                    stack.push(p);
                } else if ft.is_file() {
                    if p.extension()
                        .is_some_and(|x| x.eq_ignore_ascii_case("json"))
                    {
                        files.push(p);
                        if files.len() as u64 > self.limits.max_entries {
                            return Err(SupplyError::TooManyEntries {
                                path: self.origin.to_owned(),
                                entries: files.len() as u64,
                                limit: self.limits.max_entries,
                            });
                        }
                    } else {
                        self.stats.skipped_files += 1;
                    }
                }
            }
        }
        for p in files {
            let bytes = read_bounded(&p, self.limits.max_entry_bytes, self.origin)?;
            let name = p
                .strip_prefix(self.origin)
                .unwrap_or(&p)
                .display()
                .to_string();
            self.record(&bytes, &name)?;
        }
        Ok(())
    }

    fn record(&mut self, bytes: &[u8], file: &str) -> Result<(), SupplyError> {
        self.total += bytes.len() as u64;
        if self.total > self.limits.max_total_bytes {
            return Err(SupplyError::TotalTooLarge {
                path: self.origin.to_owned(),
                file: file.to_owned(),
                limit: self.limits.max_total_bytes,
            });
        }
        let bad = |reason: String| SupplyError::BadRecord {
            path: self.origin.to_owned(),
            file: file.to_owned(),
            reason,
        };
        let rec: RawRecord = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if rec.id.trim().is_empty() {
            return Err(bad("empty `id`".into()));
        }
        let modified_ns = OffsetDateTime::parse(&rec.modified, &Rfc3339)
            .map_err(|e| bad(format!("`modified` is not an RFC 3339 time: {e}")))?
            .unix_timestamp_nanos();
        let modified_ns =
            i64::try_from(modified_ns).map_err(|_| bad("`modified` is out of range".into()))?;
        for a in &rec.affected {
            for r in &a.ranges {
                if r.events.iter().any(|e| e.single().is_none()) {
                    return Err(bad(format!(
                        "an event in a {} range must have exactly one of introduced, fixed, last_affected, limit",
                        r.kind
                    )));
                }
            }
        }
        self.stats.records += 1;
        self.store(&rec, modified_ns)
            .map_err(|source| SupplyError::Db {
                path: self.db_path.to_owned(),
                source,
            })?;
        (self.progress)(self.stats.records);
        Ok(())
    }

    fn store(&mut self, rec: &RawRecord, modified_ns: i64) -> rusqlite::Result<()> {
        let tx = self.tx;
        let known: Option<i64> = tx
            .prepare_cached("SELECT modified_ns FROM advisories WHERE id = ?1")?
            .query_row([&rec.id], |r| r.get(0))
            .optional()?;
        match known {
            Some(k) if k > modified_ns => {
                self.stats.skipped_older += 1;
                return Ok(());
            }
            Some(k) if k == modified_ns => {
                self.stats.unchanged += 1;
                return Ok(());
            }
            Some(_) => {
                tx.execute("DELETE FROM advisories WHERE id = ?1", [&rec.id])?;
                self.stats.updated += 1;
            }
            None => self.stats.inserted += 1,
        }
        tx.prepare_cached(
            "INSERT INTO advisories (id, modified, modified_ns, published, withdrawn, summary,
                                     aliases, severity, db_severity)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            rec.id,
            rec.modified,
            modified_ns,
            rec.published,
            rec.withdrawn,
            rec.summary.clone().unwrap_or_default(),
            serde_json::to_string(&rec.aliases).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&rec.severity).unwrap_or_else(|_| "[]".into()),
            rec.database_severity(),
        ])?;
        for (ai, a) in rec.affected.iter().enumerate() {
            let Some(pkg) = &a.package else { continue };
            tx.prepare_cached(
                "INSERT INTO affected (advisory_id, idx, ecosystem, name, versions)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                rec.id,
                ai as i64,
                pkg.ecosystem,
                stored_name(&pkg.ecosystem, &pkg.name),
                serde_json::to_string(&a.versions).unwrap_or_else(|_| "[]".into()),
            ])?;
            for (ri, r) in a.ranges.iter().enumerate() {
                tx.prepare_cached(
                    "INSERT INTO ranges (advisory_id, affected_idx, idx, type, repo)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![rec.id, ai as i64, ri as i64, r.kind, r.repo])?;
                for (ei, e) in r.events.iter().enumerate() {
                    let Some((kind, version)) = e.single() else {
                        continue;
                    };
                    tx.prepare_cached(
                        "INSERT INTO events (advisory_id, affected_idx, range_idx, idx, kind,
                                             version)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        rec.id,
                        ai as i64,
                        ri as i64,
                        ei as i64,
                        kind.as_str(),
                        version
                    ])?;
                }
            }
        }
        Ok(())
    }
}
