//! `skillcell install PATH`: a folder, a `.zip` or a `.skill` archive into the store.

mod archive;
mod folder;
mod wasm;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use skillcell_audit::{Actor, Event};
use skillcell_manifest::Report;
use skillcell_store::tree::{self, TreeListing};
use skillcell_types::finding::Severity;
use skillcell_types::{Contract, Decision, Digest, Finding, SkillName, VersionState};

/// Why a freshly installed version may not run yet.
pub const PENDING_REASON: &str =
    "waiting for a person to approve it: `skillcell approve NAME` at a terminal";

use crate::fsutil::{Staging, force_remove_dir, make_read_only};
use crate::policy::AdmissionPolicy;
use crate::signing::{self, SIGNATURE_FILE, SignatureCheck, TrustList};
use crate::{DevError, Developer, HistoryRow, now};

/// Caps applied while copying or extracting a skill.
#[derive(Clone, Debug)]
pub struct InstallLimits {
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Largest skill, all files together (after extraction).
    pub max_total_bytes: u64,
    /// Most files and directories.
    pub max_entries: usize,
    /// Deepest directory nesting.
    pub max_depth: usize,
    /// Largest expansion ratio of an archive (uncompressed / compressed), for archives whose
    /// content exceeds one MiB.
    pub max_ratio: u64,
}

impl Default for InstallLimits {
    /// 32 MiB per file, 256 MiB per skill, 10 000 entries, depth 32, expansion ratio 100.
    fn default() -> Self {
        Self {
            max_file_bytes: 32 << 20,
            max_total_bytes: 256 << 20,
            max_entries: 10_000,
            max_depth: 32,
            max_ratio: 100,
        }
    }
}

/// Why a skill package was refused before its SKILL.md was even read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Stable code: `symlink_escape`, `symlink_dir`, `hard_link`, `special_file`,
    /// `absolute_member`, `dotdot_member`, `duplicate_member`, `symlink_member`, `file_too_large`,
    /// `too_many_entries`, `too_deep`, `zip_bomb`, `bad_name`, `not_a_skill`, `bad_archive`.
    pub code: &'static str,
    /// The file concerned, relative to the package.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {}",
            self.code,
            skillcell_types::text::escape(&self.path),
            skillcell_types::text::escape(&self.message)
        )
    }
}

pub(super) fn refuse(
    code: &'static str,
    path: impl Into<String>,
    message: impl Into<String>,
) -> DevError {
    DevError::Refused(Refusal {
        code,
        path: path.into(),
        message: message.into(),
    })
}

/// What `install` did.
#[derive(Clone, Debug, Serialize)]
pub struct InstallOutcome {
    pub name: SkillName,
    pub seq: u32,
    pub tree_hash: Digest,
    pub contract_hash: Digest,
    pub contract: Contract,
    pub files: usize,
    pub bytes: u64,
    /// The same tree and contract were already the current version: nothing changed.
    pub unchanged: bool,
    /// `pending` for a new version: it runs once a person approves it.
    pub state: VersionState,
    /// What admission found, shown to the approver.
    pub findings: Vec<Finding>,
    /// The folder's signature as checked against what was staged.
    pub signature: SignatureCheck,
    /// Warnings from the SKILL.md checks.
    pub warnings: Report,
}

pub(super) struct Budget<'a> {
    limits: &'a InstallLimits,
    entries: usize,
    bytes: u64,
}

impl Budget<'_> {
    fn entry(&mut self, rel: &str, depth: usize) -> Result<(), DevError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(refuse(
                "too_many_entries",
                rel,
                format!(
                    "the skill has more than {} files and directories",
                    self.limits.max_entries
                ),
            ));
        }
        if depth > self.limits.max_depth {
            return Err(refuse(
                "too_deep",
                rel,
                format!("nested deeper than {} directories", self.limits.max_depth),
            ));
        }
        Ok(())
    }

    /// Copies at most the file cap from `src` to `dst`, counting against the total.
    fn copy(&mut self, rel: &str, src: &mut dyn Read, dst: &mut File) -> Result<u64, DevError> {
        let cap = self.limits.max_file_bytes;
        let mut limited = src.take(cap + 1);
        let n = io::copy(&mut limited, dst).map_err(DevError::io(rel))?;
        if n > cap {
            return Err(refuse(
                "file_too_large",
                rel,
                format!("larger than the {} byte cap per file", cap),
            ));
        }
        self.bytes += n;
        if self.bytes > self.limits.max_total_bytes {
            return Err(refuse(
                "zip_bomb",
                rel,
                format!(
                    "the skill expands beyond the {} byte cap",
                    self.limits.max_total_bytes
                ),
            ));
        }
        Ok(n)
    }
}

pub(super) fn new_file(path: &Path, executable: bool) -> Result<File, DevError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
        .map_err(DevError::io(path))
}

/// Refuses an invalid signature always, and a missing or untrusted one when the operator
/// requires a trusted signature; otherwise says in `findings` (info) what the signature is.
fn admit_signature(
    signature: &SignatureCheck,
    policy: &AdmissionPolicy,
    findings: &mut Vec<Finding>,
) -> Result<(), DevError> {
    let note = |rule: &str, message: String, hint: &str| Finding {
        rule: rule.to_owned(),
        severity: Severity::Info,
        message,
        file: SIGNATURE_FILE.to_owned(),
        line: 0,
        col: 0,
        hint: hint.to_owned(),
    };
    match signature {
        SignatureCheck::Invalid { why } => Err(refuse(
            "bad_signature",
            SIGNATURE_FILE,
            format!(
                "the signature is not valid for this skill ({why}); re-sign it (`skillcell sign DIR`) or remove it"
            ),
        )),
        SignatureCheck::Unsigned if policy.require_signature => Err(refuse(
            "signature_required",
            SIGNATURE_FILE,
            "the operator requires a trusted signature (config/admission.conf); the author signs with `skillcell sign DIR`",
        )),
        SignatureCheck::Valid {
            key,
            trusted_as: None,
        } if policy.require_signature => Err(refuse(
            "untrusted_signature",
            SIGNATURE_FILE,
            format!(
                "signed by {key}, which the operator does not trust (`skillcell trust add {key} --label NAME`)"
            ),
        )),
        SignatureCheck::Unsigned => {
            findings.push(note(
                "sig-unsigned",
                "the skill is not signed: nobody vouches for these bytes".into(),
                "the author can sign it with `skillcell sign DIR`",
            ));
            Ok(())
        }
        SignatureCheck::Valid {
            key,
            trusted_as: None,
        } => {
            findings.push(note(
                "sig-untrusted",
                format!("signed by {key}, a key the operator does not trust"),
                "trust the author's key with `skillcell trust add KEY --label NAME` if you know it",
            ));
            Ok(())
        }
        SignatureCheck::Valid {
            key,
            trusted_as: Some(label),
        } => {
            findings.push(note(
                "sig-trusted",
                format!("signed by {label} ({key})"),
                "",
            ));
            Ok(())
        }
    }
}

impl Developer {
    /// The supply-chain audit of the staged folder, against the advisory database when one
    /// was imported (without one the report says so; it is never a clean bill).
    fn audit_supply(
        &self,
        staged: &Path,
        policy: &AdmissionPolicy,
    ) -> Result<skillcell_supply::SupplyReport, DevError> {
        let db_path = self.home.advisories_db();
        let db = if db_path.exists() {
            Some(skillcell_supply::AdvisoryDb::open(&db_path)?)
        } else {
            None
        };
        let audit_policy = skillcell_supply::AuditPolicy {
            allow_pip_options: policy.allow_pip_options,
            ..skillcell_supply::AuditPolicy::default()
        };
        Ok(skillcell_supply::audit(staged, db.as_ref(), &audit_policy)?)
    }

    /// Installs the skill at `source` (folder, `.zip` or `.skill`). All or nothing.
    pub fn install(&mut self, source: &Path) -> Result<InstallOutcome, DevError> {
        let result = self.install_inner(source);
        if let Err(e) = &result {
            let reason = match e {
                DevError::Manifest(r) => {
                    format!("SKILL.md refused: {} error(s)", r.errors().count())
                }
                other => other.to_string(),
            };
            self.audit(
                self.event("install", Decision::Deny, reason)
                    .details(serde_json::json!({"source": source.display().to_string()})),
            )?;
        }
        result
    }

    fn install_inner(&mut self, source: &Path) -> Result<InstallOutcome, DevError> {
        let source = &source.canonicalize().map_err(DevError::io(source))?;
        let meta = fs::metadata(source).map_err(DevError::io(source))?;
        let staging = Staging::new(&self.home.staging_dir())
            .map_err(DevError::io(self.home.staging_dir()))?;
        let staged = if meta.is_dir() {
            let folder = source
                .canonicalize()
                .map_err(DevError::io(source))?
                .file_name()
                .map(|n| n.to_os_string())
                .ok_or_else(|| {
                    refuse(
                        "not_a_skill",
                        source.display().to_string(),
                        "not a skill folder",
                    )
                })?;
            let dst = staging.path.join(folder);
            folder::stage_dir(source, &dst, &self.limits)?;
            dst
        } else {
            let file_name = source
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let stem = file_name
                .strip_suffix(".zip")
                .or_else(|| file_name.strip_suffix(".skill"))
                .ok_or_else(|| {
                    refuse(
                        "not_a_skill",
                        source.display().to_string(),
                        "install takes a skill folder, a .zip or a .skill archive",
                    )
                })?;
            let extracted = staging.path.join(".extract");
            archive::stage_zip(source, &extracted, &self.limits)?;
            archive::locate_archive_skill(&extracted, &staging.path, stem)?
        };

        let loaded = skillcell_manifest::load_dir(&staged).map_err(DevError::Manifest)?;
        let manifest = loaded.manifest;
        let listing: TreeListing = tree::hash_dir(&staged).map_err(|e| DevError::Io {
            path: staged.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        let contract_hash = manifest.contract.digest();
        let name = manifest.name.clone();

        if let Some(current) = self.current_hashes(name.as_str())?
            && current.0 == listing.hash
            && current.1 == contract_hash
            && (current.3 == "usable" || current.3 == "pending")
        {
            self.audit(
                self.event("install", Decision::Allow, "already installed, unchanged")
                    .skill(name.as_str())
                    .version(listing.hash),
            )?;
            return Ok(InstallOutcome {
                name,
                seq: current.2,
                tree_hash: listing.hash,
                contract_hash,
                contract: manifest.contract,
                files: listing.files.len(),
                bytes: listing.total_bytes(),
                unchanged: true,
                state: current.3.parse().unwrap_or(VersionState::Pending),
                findings: Vec::new(),
                signature: SignatureCheck::Unsigned,
                warnings: loaded.report,
            });
        }

        let policy = AdmissionPolicy::load(&self.home)?;
        let trust = TrustList::load(&self.home)?;
        let signature = signing::check(&staged, &listing, name.as_str(), &contract_hash, &trust);
        let mut findings: Vec<Finding> = Vec::new();
        admit_signature(&signature, &policy, &mut findings)?;
        let supply = self.audit_supply(&staged, &policy)?;
        findings.extend(supply.findings);
        let critical: Vec<Finding> = findings
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .cloned()
            .collect();
        if !critical.is_empty() {
            return Err(DevError::Inadmissible { findings: critical });
        }

        let (engine, compiled) = wasm::compile_modules(&staged, &listing, &manifest.contract)?;
        if let Some(engine) = engine {
            self.store_artifacts(&engine, &compiled)?;
        }
        let created_tree = self.place_tree(&staged, &listing.hash)?;
        match self.record_version(&manifest, &listing, &contract_hash, source, &findings) {
            Ok(seq) => Ok(InstallOutcome {
                name,
                seq,
                tree_hash: listing.hash,
                contract_hash,
                contract: manifest.contract,
                files: listing.files.len(),
                bytes: listing.total_bytes(),
                unchanged: false,
                state: VersionState::Pending,
                findings,
                signature,
                warnings: loaded.report,
            }),
            Err(e) => {
                if created_tree {
                    let _ = force_remove_dir(&self.home.tree_dir(&listing.hash));
                }
                Err(e)
            }
        }
    }

    /// (tree hash, contract hash, seq, state) of the current version of `name`.
    fn current_hashes(
        &self,
        name: &str,
    ) -> Result<Option<(Digest, Digest, u32, String)>, DevError> {
        let row: Option<(String, String, u32, String)> = self
            .conn
            .query_row(
                "SELECT v.tree_hash, v.contract_hash, v.seq, v.state FROM skills s \
                 JOIN versions v ON v.id = s.current_version WHERE s.name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(row.and_then(|(t, c, s, st)| Some((t.parse().ok()?, c.parse().ok()?, s, st))))
    }

    /// Makes the staged tree read-only and moves it to `trees/<hash>`. Returns whether a new
    /// tree was created (false: an intact identical tree was already there).
    fn place_tree(&self, staged: &Path, hash: &Digest) -> Result<bool, DevError> {
        let dst = self.home.tree_dir(hash);
        if dst.exists() {
            let intact = tree::hash_dir(&dst)
                .map(|l| l.hash == *hash)
                .unwrap_or(false);
            if intact {
                return Ok(false);
            }
            // A tampered copy of the same content: replace it with the fresh one.
            force_remove_dir(&dst).map_err(DevError::io(&dst))?;
        }
        make_read_only(staged).map_err(DevError::io(staged))?;
        fs::rename(staged, &dst).map_err(DevError::io(&dst))?;
        // Re-check what landed: the bytes in the store are the bytes that were hashed.
        let landed = tree::hash_dir(&dst).map(|l| l.hash).ok();
        if landed != Some(*hash) {
            let _ = force_remove_dir(&dst);
            return Err(DevError::Io {
                path: dst,
                source: io::Error::other("the tree changed while it was being installed"),
            });
        }
        Ok(true)
    }

    fn record_version(
        &mut self,
        manifest: &skillcell_manifest::Manifest,
        listing: &TreeListing,
        contract_hash: &Digest,
        source: &Path,
        findings: &[Finding],
    ) -> Result<u32, DevError> {
        let actor = self.actor_label();
        let at = now();
        let contract_json =
            serde_json::to_string(&manifest.contract).map_err(|e| DevError::Io {
                path: source.to_path_buf(),
                source: io::Error::other(e),
            })?;
        let findings_json = serde_json::to_string(findings).map_err(|e| DevError::Io {
            path: source.to_path_buf(),
            source: io::Error::other(e),
        })?;
        let name = manifest.name.as_str();
        let event = |seq: &u32, actor: &Actor| {
            Event::new(
                actor.clone(),
                "install",
                Decision::Allow,
                "installed, pending a person's approval",
            )
            .skill(name)
            .version(listing.hash)
            .details(serde_json::json!({
                "source": source.display().to_string(),
                "seq": seq,
                "contract_hash": contract_hash.to_string(),
                "profile": manifest.contract.profile,
                "files": listing.files.len(),
                "bytes": listing.total_bytes(),
            }))
        };
        self.in_tx_audited(|tx| -> rusqlite::Result<u32> {
            tx.execute(
                "INSERT OR IGNORE INTO skills (name, current_version, created_at) VALUES (?1, NULL, ?2)",
                params![name, at],
            )?;
            let seq: u32 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM versions WHERE skill = ?1",
                params![name],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO versions (skill, seq, tree_hash, contract_hash, contract_json, \
                 description, source, file_count, total_bytes, installed_at, installed_by, \
                 state, state_reason, state_changed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'pending', ?12, ?10)",
                params![
                    name,
                    seq,
                    listing.hash.to_string(),
                    contract_hash.to_string(),
                    contract_json,
                    manifest.description,
                    source.display().to_string(),
                    i64::try_from(listing.files.len()).unwrap_or(i64::MAX),
                    i64::try_from(listing.total_bytes()).unwrap_or(i64::MAX),
                    at,
                    actor,
                    PENDING_REASON,
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO admission_reports (version_id, findings, created_at) VALUES (?1, ?2, ?3)",
                params![id, findings_json, at],
            )?;
            tx.execute(
                "UPDATE skills SET current_version = ?1 WHERE name = ?2",
                params![id, name],
            )?;
            HistoryRow {
                at: &at,
                skill: name,
                version_id: Some(id),
                tree_hash: Some(&listing.hash),
                event: "install",
                actor: &actor,
                detail: &format!("seq {seq} from {}", source.display()),
            }
            .insert(tx)?;
            Ok(seq)
        }, event)
    }
}
