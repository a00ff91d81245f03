//! `remove`, `rollback` and `verify`.

use std::collections::BTreeSet;
use std::fs;

use rusqlite::params;
use serde::Serialize;
use skillcell_audit::{Actor, Event};
use skillcell_store::tree;
use skillcell_types::{Decision, Digest, VersionState};

use crate::fsutil::force_remove_dir;
use crate::{DevError, Developer, HistoryRow, now};

/// What `rollback` did.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackOutcome {
    pub name: String,
    pub from_seq: u32,
    pub to_seq: u32,
    pub tree_hash: Digest,
}

/// One version `verify` looked at.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyFinding {
    pub name: String,
    pub seq: u32,
    pub tree_hash: Digest,
    /// `ok`, `quarantined` (newly, now), or `still_quarantined`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub versions: Vec<VerifyFinding>,
    /// Trees in the store no version references (left by an interrupted removal).
    pub orphan_trees: Vec<String>,
}

impl VerifyReport {
    /// Whether any version was found tampered now.
    pub fn newly_quarantined(&self) -> usize {
        self.versions
            .iter()
            .filter(|v| v.outcome == "quarantined")
            .count()
    }
}

impl Developer {
    /// Removes a skill: every version from the registry and every tree no other skill uses.
    /// The registry history keeps its past.
    pub fn remove(&mut self, name: &str) -> Result<Vec<Digest>, DevError> {
        let versions = match self.reader()?.versions(name) {
            Ok(v) => v,
            Err(skillcell_store::RegistryError::UnknownSkill(_)) => {
                self.audit(
                    self.event("remove", Decision::Deny, "no such skill")
                        .skill(name),
                )?;
                return Err(DevError::UnknownSkill(name.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let at = now();
        let label = self.actor_label();
        let trees: BTreeSet<Digest> = versions.iter().map(|v| v.tree_hash).collect();
        let event = |_: &(), actor: &Actor| {
            Event::new(actor.clone(), "remove", Decision::Allow, "removed")
                .skill(name)
                .details(serde_json::json!({
                    "versions": versions.len(),
                    "trees": trees.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }))
        };
        self.in_tx_audited(
            |tx| -> rusqlite::Result<()> {
                tx.execute(
                    "UPDATE skills SET current_version = NULL WHERE name = ?1",
                    params![name],
                )?;
                tx.execute("DELETE FROM versions WHERE skill = ?1", params![name])?;
                tx.execute("DELETE FROM skills WHERE name = ?1", params![name])?;
                HistoryRow {
                    at: &at,
                    skill: name,
                    version_id: None,
                    tree_hash: None,
                    event: "remove",
                    actor: &label,
                    detail: &format!("{} version(s)", versions.len()),
                }
                .insert(tx)?;
                Ok(())
            },
            event,
        )?;
        // Trees go after the commit; one still used by another skill stays.
        let reader = self.reader()?;
        let mut removed = Vec::new();
        for hash in trees {
            if !reader.tree_referenced(&hash)? {
                let dir = self.home.tree_dir(&hash);
                force_remove_dir(&dir).map_err(DevError::io(&dir))?;
                removed.push(hash);
            }
        }
        Ok(removed)
    }

    /// Makes the newest usable version before the current one current again.
    pub fn rollback(&mut self, name: &str) -> Result<RollbackOutcome, DevError> {
        let result = self.rollback_inner(name);
        if let Err(e) = &result {
            self.audit(
                self.event("rollback", Decision::Deny, e.to_string())
                    .skill(name),
            )?;
        }
        result
    }

    fn rollback_inner(&mut self, name: &str) -> Result<RollbackOutcome, DevError> {
        let versions = match self.reader()?.versions(name) {
            Ok(v) => v,
            Err(skillcell_store::RegistryError::UnknownSkill(_)) => {
                return Err(DevError::UnknownSkill(name.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let current = versions.iter().find(|v| v.current);
        let from_seq = current.map_or(u32::MAX, |c| c.seq);
        let target = versions
            .iter()
            .filter(|v| v.seq < from_seq && v.state == VersionState::Usable)
            .max_by_key(|v| v.seq)
            .ok_or_else(|| DevError::NoPrevious {
                name: name.to_owned(),
            })?;
        let at = now();
        let label = self.actor_label();
        let event = |_: &(), actor: &Actor| {
            Event::new(
                actor.clone(),
                "rollback",
                Decision::Allow,
                format!("seq {from_seq} -> seq {}", target.seq),
            )
            .skill(name)
            .version(target.tree_hash)
        };
        self.in_tx_audited(
            |tx| -> rusqlite::Result<()> {
                tx.execute(
                    "UPDATE skills SET current_version = ?1 WHERE name = ?2",
                    params![target.id, name],
                )?;
                HistoryRow {
                    at: &at,
                    skill: name,
                    version_id: Some(target.id),
                    tree_hash: Some(&target.tree_hash),
                    event: "rollback",
                    actor: &label,
                    detail: &format!("seq {from_seq} -> seq {}", target.seq),
                }
                .insert(tx)?;
                Ok(())
            },
            event,
        )?;
        Ok(RollbackOutcome {
            name: name.to_owned(),
            from_seq,
            to_seq: target.seq,
            tree_hash: target.tree_hash,
        })
    }

    /// Re-hashes every installed version and quarantines those whose files no longer match.
    pub fn verify(&mut self) -> Result<VerifyReport, DevError> {
        self.verify_with_progress(&mut |_, _| {})
    }

    /// [`Developer::verify`], calling `progress(done, total)` after each version.
    pub fn verify_with_progress(
        &mut self,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<VerifyReport, DevError> {
        let versions = self.reader()?.all_versions()?;
        let mut findings = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            progress(i, versions.len());
            let dir = self.home.tree_dir(&v.tree_hash);
            let problem = match tree::hash_dir(&dir) {
                _ if v.contract.digest() != v.contract_hash => Some(format!(
                    "its contract in the registry no longer matches its contract hash {}",
                    v.contract_hash.short()
                )),
                Ok(listing) if listing.hash == v.tree_hash => None,
                Ok(listing) => Some(format!(
                    "files changed after install: tree hash is now {}",
                    listing.hash.short()
                )),
                Err(e) => Some(format!("cannot hash the installed tree: {e}")),
            };
            let outcome = match (&problem, v.state) {
                (None, _) => "ok",
                (Some(_), VersionState::Quarantined) => "still_quarantined",
                (Some(reason), _) => {
                    self.quarantine_version(v.id, v.skill.as_str(), &v.tree_hash, reason)?;
                    "quarantined"
                }
            };
            findings.push(VerifyFinding {
                name: v.skill.to_string(),
                seq: v.seq,
                tree_hash: v.tree_hash,
                outcome,
                reason: problem,
            });
        }
        progress(versions.len(), versions.len());
        let known: BTreeSet<String> = versions.iter().map(|v| v.tree_hash.to_string()).collect();
        let mut orphan_trees: Vec<String> = fs::read_dir(self.home.trees_dir())
            .map_err(DevError::io(self.home.trees_dir()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !known.contains(n))
            .collect();
        orphan_trees.sort();
        let report = VerifyReport {
            versions: findings,
            orphan_trees,
        };
        let bad = report.newly_quarantined();
        self.audit(self.event(
            "verify",
            if bad == 0 {
                Decision::Allow
            } else {
                Decision::Deny
            },
            format!(
                "{} version(s) checked, {bad} newly quarantined",
                report.versions.len()
            ),
        ))?;
        Ok(report)
    }

    pub(crate) fn quarantine_version(
        &mut self,
        id: i64,
        name: &str,
        tree_hash: &Digest,
        reason: &str,
    ) -> Result<(), DevError> {
        let at = now();
        let label = self.actor_label();
        let event = |_: &(), actor: &Actor| {
            Event::new(actor.clone(), "quarantine", Decision::Deny, reason)
                .skill(name)
                .version(*tree_hash)
        };
        self.in_tx_audited(|tx| -> rusqlite::Result<()> {
            tx.execute(
                "UPDATE versions SET state = 'quarantined', state_reason = ?1, state_changed_at = ?2 WHERE id = ?3",
                params![reason, at, id],
            )?;
            HistoryRow {
                at: &at,
                skill: name,
                version_id: Some(id),
                tree_hash: Some(tree_hash),
                event: "quarantine",
                actor: &label,
                detail: reason,
            }
            .insert(tx)?;
            Ok(())
        }, event)
    }
}
