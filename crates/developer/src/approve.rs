//! `approve` and `reject`: a person's decision on one installed version.
//!
//! An approval is bound to the version's tree hash and contract hash as they are when the
//! person decides: the tree is re-hashed first (a tree changed since install is quarantined,
//! not approved), and the approval row records both hashes, which the executor compares with
//! the version it is about to run. High findings must be accepted rule by rule; critical
//! ones cannot be. This module is reached only from the CLI's terminal-bound `approve`
//! command: no agent-facing front end calls it.

use std::collections::BTreeSet;

use rusqlite::params;
use serde::Serialize;
use skillcell_audit::{Actor, Event};
use skillcell_store::{VersionRecord, tree};
use skillcell_types::finding::Severity;
use skillcell_types::{Decision, Digest, Finding, VersionState};

use crate::{DevError, Developer, HistoryRow, now};

/// What a person is asked to approve.
#[derive(Clone, Debug, Serialize)]
pub struct Review {
    pub version: VersionRecord,
    /// Admission findings recorded at install, most severe first.
    pub findings: Vec<Finding>,
    /// Rule ids of the high findings, which need `--accept-risk`.
    pub high_rules: Vec<String>,
    /// Rule ids of the critical findings, which no approval can accept.
    pub critical_rules: Vec<String>,
}

/// What `approve` did.
#[derive(Clone, Debug, Serialize)]
pub struct ApprovalOutcome {
    pub name: String,
    pub seq: u32,
    pub tree_hash: Digest,
    pub contract_hash: Digest,
    pub accepted_risks: Vec<String>,
}

impl Developer {
    /// The version `seq` of `name` (its current version when `None`) and what admission found.
    pub fn review(&self, name: &str, seq: Option<u32>) -> Result<Review, DevError> {
        let reader = self.reader()?;
        let version = pick(
            &reader.versions(name).map_err(|e| match e {
                skillcell_store::RegistryError::UnknownSkill(_) => {
                    DevError::UnknownSkill(name.to_owned())
                }
                other => other.into(),
            })?,
            name,
            seq,
        )?;
        let mut findings = reader.admission_findings(version.id)?.unwrap_or_default();
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(&b.rule)));
        let rules = |sev: Severity| -> Vec<String> {
            findings
                .iter()
                .filter(|f| f.severity == sev)
                .map(|f| f.rule.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let (high_rules, critical_rules) = (rules(Severity::High), rules(Severity::Critical));
        Ok(Review {
            version,
            findings,
            high_rules,
            critical_rules,
        })
    }

    /// Approves version `seq` of `name` (the current one when `None`) on behalf of `approver`,
    /// accepting the high findings of the rules in `accept_risks`. Refused, and audited, when
    /// the version is not pending or rejected, its tree or contract changed since install, a
    /// critical finding exists, or a high finding's rule is not accepted.
    pub fn approve(
        &mut self,
        name: &str,
        seq: Option<u32>,
        accept_risks: &[String],
        approver: &str,
    ) -> Result<ApprovalOutcome, DevError> {
        let result = self.approve_inner(name, seq, accept_risks, approver);
        if let Err(e) = &result {
            self.audit(
                self.event("approve", Decision::Deny, e.to_string())
                    .skill(name)
                    .details(serde_json::json!({ "approver": approver })),
            )?;
        }
        result
    }

    fn approve_inner(
        &mut self,
        name: &str,
        seq: Option<u32>,
        accept_risks: &[String],
        approver: &str,
    ) -> Result<ApprovalOutcome, DevError> {
        let review = self.review(name, seq)?;
        let v = &review.version;
        let not = |why: String| DevError::NotApprovable {
            name: name.to_owned(),
            seq: v.seq,
            why,
        };
        match v.state {
            VersionState::Pending | VersionState::Rejected => {}
            VersionState::Usable => return Err(not("it is already approved".into())),
            VersionState::Quarantined => {
                return Err(not(format!(
                    "it is quarantined ({}); install it again",
                    v.state_reason.as_deref().unwrap_or("no reason recorded")
                )));
            }
        }
        // What the person approves must be what was installed: re-hash it now.
        let problem = if v.contract.digest() != v.contract_hash {
            Some(format!(
                "its contract in the registry no longer matches its contract hash {}",
                v.contract_hash.short()
            ))
        } else {
            match tree::hash_dir(&self.home.tree_dir(&v.tree_hash)) {
                Ok(l) if l.hash == v.tree_hash => None,
                Ok(l) => Some(format!(
                    "files changed after install: tree hash is now {}",
                    l.hash.short()
                )),
                Err(e) => Some(format!("cannot hash the installed tree: {e}")),
            }
        };
        if let Some(reason) = problem {
            self.quarantine_version(v.id, name, &v.tree_hash, &reason)?;
            return Err(not(format!("{reason}; it was quarantined")));
        }
        if !review.critical_rules.is_empty() {
            return Err(not(format!(
                "critical findings cannot be accepted: {}",
                review.critical_rules.join(", ")
            )));
        }
        let accepted: BTreeSet<&str> = accept_risks.iter().map(String::as_str).collect();
        let missing: Vec<&str> = review
            .high_rules
            .iter()
            .map(String::as_str)
            .filter(|r| !accepted.contains(r))
            .collect();
        if !missing.is_empty() {
            return Err(not(format!(
                "high findings need the approver to accept them: add --accept-risk {}",
                missing.join(" --accept-risk ")
            )));
        }
        let stray: Vec<&str> = accepted
            .iter()
            .copied()
            .filter(|r| !review.high_rules.iter().any(|h| h == r))
            .collect();
        if !stray.is_empty() {
            return Err(not(format!(
                "no high finding of rule(s) {} to accept; check the spelling",
                stray.join(", ")
            )));
        }
        let accepted: Vec<String> = accepted.into_iter().map(str::to_owned).collect();
        let risks_json = serde_json::to_string(&accepted).map_err(|e| DevError::Io {
            path: self.home.registry_db(),
            source: std::io::Error::other(e),
        })?;
        let at = now();
        let label = format!("{approver} as {}", self.actor_label());
        let (id, tree_hash, contract_hash, vseq) = (v.id, v.tree_hash, v.contract_hash, v.seq);
        let event = |_: &(), actor: &Actor| {
            Event::new(
                actor.clone(),
                "approve",
                Decision::Allow,
                "approved by a person",
            )
            .skill(name)
            .version(tree_hash)
            .details(serde_json::json!({
                "seq": vseq,
                "contract_hash": contract_hash.to_string(),
                "approver": approver,
                "accepted_risks": accepted,
                "findings": review.findings.len(),
            }))
        };
        self.in_tx_audited(
            |tx| -> rusqlite::Result<()> {
                tx.execute(
                    "INSERT OR REPLACE INTO approvals (version_id, tree_hash, contract_hash, \
                     approved_by, approved_at, accepted_risks) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        tree_hash.to_string(),
                        contract_hash.to_string(),
                        label,
                        at,
                        risks_json
                    ],
                )?;
                tx.execute(
                    "UPDATE versions SET state = 'usable', state_reason = ?1, \
                     state_changed_at = ?2 WHERE id = ?3",
                    params![format!("approved by {label}"), at, id],
                )?;
                HistoryRow {
                    at: &at,
                    skill: name,
                    version_id: Some(id),
                    tree_hash: Some(&tree_hash),
                    event: "approve",
                    actor: &label,
                    detail: &format!("seq {vseq}"),
                }
                .insert(tx)?;
                Ok(())
            },
            event,
        )?;
        Ok(ApprovalOutcome {
            name: name.to_owned(),
            seq: vseq,
            tree_hash,
            contract_hash,
            accepted_risks: accept_risks.to_vec(),
        })
    }

    /// Rejects version `seq` of `name` (the current one when `None`): it will not run, and its
    /// approval, if any, is withdrawn.
    pub fn reject(
        &mut self,
        name: &str,
        seq: Option<u32>,
        reason: &str,
        approver: &str,
    ) -> Result<u32, DevError> {
        let review = self.review(name, seq)?;
        let v = &review.version;
        if v.state == VersionState::Quarantined {
            return Err(DevError::NotApprovable {
                name: name.to_owned(),
                seq: v.seq,
                why: "it is quarantined already".into(),
            });
        }
        let at = now();
        let label = format!("{approver} as {}", self.actor_label());
        let (id, tree_hash, vseq) = (v.id, v.tree_hash, v.seq);
        let why = format!("rejected by {label}: {reason}");
        let event = |_: &(), actor: &Actor| {
            Event::new(actor.clone(), "reject", Decision::Deny, reason)
                .skill(name)
                .version(tree_hash)
                .details(serde_json::json!({ "seq": vseq, "approver": approver }))
        };
        self.in_tx_audited(
            |tx| -> rusqlite::Result<()> {
                tx.execute("DELETE FROM approvals WHERE version_id = ?1", params![id])?;
                tx.execute(
                    "UPDATE versions SET state = 'rejected', state_reason = ?1, \
                     state_changed_at = ?2 WHERE id = ?3",
                    params![why, at, id],
                )?;
                HistoryRow {
                    at: &at,
                    skill: name,
                    version_id: Some(id),
                    tree_hash: Some(&tree_hash),
                    event: "reject",
                    actor: &label,
                    detail: reason,
                }
                .insert(tx)?;
                Ok(())
            },
            event,
        )?;
        Ok(vseq)
    }
}

/// Version `seq` of `name` among `versions`, or the current one.
fn pick(
    versions: &[VersionRecord],
    name: &str,
    seq: Option<u32>,
) -> Result<VersionRecord, DevError> {
    let found = match seq {
        Some(s) => versions.iter().find(|v| v.seq == s),
        None => versions.iter().find(|v| v.current),
    };
    found.cloned().ok_or_else(|| DevError::UnknownVersion {
        name: name.to_owned(),
        seq,
    })
}
