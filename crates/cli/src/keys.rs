//! Signing keys, signatures, the trust list and the admission policy: `keygen`, `sign`,
//! `trust`, `policy`; and the offline advisory database, `advisories`.

use std::path::{Path, PathBuf};

use skillcell_developer::policy::{self, AdmissionPolicy};
use skillcell_developer::signing::{self, PublicKey, SignError, TrustList};
use skillcell_store::Home;
use skillcell_types::text::escape;

use crate::output::{Failure, print_json};
use std::io::IsTerminal;

use crate::{AdvisoriesAction, PolicyAction, TrustAction, exit, outln};

fn sign_failure(e: SignError) -> Failure {
    match e {
        e @ (SignError::BadKey(_) | SignError::Exists(_) | SignError::BadFile { .. }) => {
            Failure::new(exit::REFUSED, "refused", e.to_string())
        }
        SignError::Manifest(report) => Failure::new(
            exit::REFUSED,
            "invalid_skill",
            format!("SKILL.md refused:\n{report}"),
        )
        .with_detail(report),
        e @ SignError::Io { .. } => Failure::internal("io", e.to_string()),
    }
}

/// The signing key's default place: `keys/signing.key` in the data dir.
fn key_path(home: &Home, given: Option<&PathBuf>) -> PathBuf {
    given
        .cloned()
        .unwrap_or_else(|| home.root().join("keys").join("signing.key"))
}

pub fn keygen(home: &Home, out: Option<&PathBuf>, json: bool) -> Result<u8, Failure> {
    let path = key_path(home, out);
    let public = signing::keygen(&path).map_err(sign_failure)?;
    if json {
        print_json(&serde_json::json!({ "key_file": path, "public_key": public }))?;
    } else {
        outln!("made a signing key at {} (keep it private)", path.display());
        outln!("public key: {public}");
        outln!("operators trust it with: skillcell trust add {public} --label NAME");
    }
    Ok(exit::OK)
}

pub fn sign(home: &Home, dir: &Path, key: Option<&PathBuf>, json: bool) -> Result<u8, Failure> {
    let path = key_path(home, key);
    let file = signing::sign_dir(dir, &path).map_err(sign_failure)?;
    if json {
        print_json(&file)?;
    } else {
        outln!(
            "signed {} (tree {}, contract {}) with {}: {}",
            file.name,
            file.tree_hash.short(),
            file.contract_hash.short(),
            file.key,
            dir.join(signing::SIGNATURE_FILE).display()
        );
    }
    Ok(exit::OK)
}

fn parse_key(s: &str) -> Result<PublicKey, Failure> {
    s.parse()
        .map_err(|e: SignError| Failure::new(exit::USAGE, "usage", e.to_string()))
}

pub fn trust(home: &Home, action: &TrustAction, json: bool) -> Result<u8, Failure> {
    match action {
        TrustAction::Add { key, label } => {
            let key = parse_key(key)?;
            let new = TrustList::add(home, key, label).map_err(sign_failure)?;
            if json {
                print_json(&serde_json::json!({ "key": key, "label": label, "added": new }))?;
            } else if new {
                outln!("trusted {key} as {}", escape(label));
            } else {
                outln!(
                    "{key} was trusted already; its label is now {}",
                    escape(label)
                );
            }
        }
        TrustAction::Remove { key } => {
            let key = parse_key(key)?;
            if !TrustList::remove(home, &key).map_err(sign_failure)? {
                return Err(Failure::new(
                    exit::NOT_FOUND,
                    "not_found",
                    format!("{key} is not in the trust list"),
                ));
            }
            if json {
                print_json(&serde_json::json!({ "key": key, "removed": true }))?;
            } else {
                outln!("no longer trusted: {key}");
            }
        }
        TrustAction::List => {
            let list = TrustList::load(home).map_err(sign_failure)?;
            if json {
                print_json(&list.keys)?;
            } else if list.keys.is_empty() {
                outln!("no trusted keys (skillcell trust add KEY --label NAME)");
            } else {
                for k in &list.keys {
                    outln!("{} {}", k.key, escape(&k.label));
                }
            }
        }
    }
    Ok(exit::OK)
}

pub fn policy(home: &Home, action: Option<&PolicyAction>, json: bool) -> Result<u8, Failure> {
    let current = match action {
        Some(PolicyAction::Set { key, value }) => {
            let value = policy::parse_flag(value)
                .ok_or_else(|| Failure::usage(format!("`{value}` is not yes or no")))?;
            AdmissionPolicy::update(home, key, value).map_err(sign_failure)?
        }
        None => AdmissionPolicy::load(home).map_err(sign_failure)?,
    };
    if json {
        print_json(&current)?;
        return Ok(exit::OK);
    }
    let flag = |b: bool| if b { "yes" } else { "no" };
    for (key, meaning) in policy::KEYS {
        let value = match key {
            "require-signature" => current.require_signature,
            _ => current.allow_pip_options,
        };
        outln!("{key} = {}    # {meaning}", flag(value));
    }
    Ok(exit::OK)
}

pub fn advisories(
    home: &Home,
    action: Option<&AdvisoriesAction>,
    json: bool,
) -> Result<u8, Failure> {
    let path = home.advisories_db();
    let supply_failure = |e: skillcell_supply::SupplyError| match e {
        e @ skillcell_supply::SupplyError::Io { .. } => Failure::internal("io", e.to_string()),
        e => Failure::new(exit::REFUSED, "refused", e.to_string()),
    };
    match action {
        Some(AdvisoriesAction::Import { path: source }) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Failure::internal("io", format!("{}: {e}", dir.display())))?;
            }
            let mut db = skillcell_supply::AdvisoryDb::open(&path).map_err(supply_failure)?;
            let bar = indicatif::ProgressBar::new_spinner();
            if json || !std::io::stderr().is_terminal() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            bar.set_message(format!("importing {}", source.display()));
            let stats = db
                .import(source, &mut |n| bar.set_position(n))
                .map_err(supply_failure);
            bar.finish_and_clear();
            let stats = stats?;
            if json {
                print_json(&stats)?;
            } else {
                outln!(
                    "imported {} OSV records from {}: {} new, {} updated, {} unchanged, {} older than stored, {} files skipped",
                    stats.records,
                    escape(&stats.source),
                    stats.inserted,
                    stats.updated,
                    stats.unchanged,
                    stats.skipped_older,
                    stats.skipped_files
                );
            }
        }
        None => {
            if !path.exists() {
                if json {
                    print_json(&serde_json::Value::Null)?;
                } else {
                    outln!(
                        "no advisory database yet: install audits dependencies without one (and says so); load OSV data with `skillcell advisories import PATH`"
                    );
                }
                return Ok(exit::OK);
            }
            let info = skillcell_supply::AdvisoryDb::open(&path)
                .and_then(|db| db.info())
                .map_err(supply_failure)?;
            if json {
                print_json(&info)?;
            } else {
                outln!("{}: {} advisories", info.path, info.advisories);
                if let Some(last) = &info.last_import {
                    outln!(
                        "last import: {} from {} ({} records)",
                        last.imported_at,
                        escape(&last.source),
                        last.records
                    );
                }
            }
        }
    }
    Ok(exit::OK)
}
