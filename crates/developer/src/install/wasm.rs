//! Compiling a skill's WASM modules at install, so a run only instantiates.
//!
//! The entry module (when the skill runs in the WASM cell) must compile and link against the
//! host functions its contract grants, or the install is refused: a module that imports
//! `skillcell::http_fetch` without a network grant is caught here, before anyone approves it.
//! Other `.wasm`/`.wat` files are compiled when they can be (a run of one that was not compiles
//! it then). Each artifact is written under `store/wasm/<engine>/<module digest>.cwasm`,
//! read-only, and its digest recorded in the registry, which is what lets the executor load it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::params;
use skillcell_store::tree::TreeListing;
use skillcell_types::{Contract, Digest, Runtime};
use skillcell_wasm::{Grants, WasmEngine};

use super::refuse;
use crate::{DevError, Developer, now};

/// A module compiled from the staged tree.
pub(super) struct Compiled {
    module: Digest,
    artifact: Vec<u8>,
}

/// The module a WASM skill runs by default: its entry, when it runs in the WASM cell.
fn entry_module(contract: &Contract) -> Option<&str> {
    let entry = contract.entry.as_deref()?;
    let wasm_ext = entry.ends_with(".wasm") || entry.ends_with(".wat");
    match contract.runtime {
        Some(Runtime::Wasm) => Some(entry),
        None if wasm_ext => Some(entry),
        _ => None,
    }
}

/// Compiles every WASM module of the staged tree (nothing, and no engine, when it has none).
pub(super) fn compile_modules(
    staged: &Path,
    listing: &TreeListing,
    contract: &Contract,
) -> Result<(Option<String>, Vec<Compiled>), DevError> {
    let entry = entry_module(contract);
    let modules: Vec<_> = listing
        .files
        .iter()
        .filter(|f| f.path.ends_with(".wasm") || f.path.ends_with(".wat"))
        .collect();
    if modules.is_empty() && entry.is_none() {
        return Ok((None, Vec::new()));
    }
    let engine = WasmEngine::new()
        .map_err(|e| refuse("wasm_unavailable", "", format!("the WASM engine: {e}")))?;
    let mut compiled = Vec::new();
    for file in modules {
        let is_entry = entry == Some(file.path.as_str());
        let path = staged.join(&file.path);
        let bytes = fs::read(&path).map_err(DevError::io(&path))?;
        if Digest::of(&bytes) != file.digest {
            return Err(refuse(
                "changed_during_install",
                file.path.clone(),
                "the file changed while the skill was being installed",
            ));
        }
        let result = engine.precompile(&bytes).and_then(|(module, artifact)| {
            if is_entry {
                engine.link(&module, Grants::of(contract))?;
            }
            Ok(artifact)
        });
        match result {
            Ok(artifact) => compiled.push(Compiled {
                module: file.digest,
                artifact,
            }),
            Err(e) if is_entry => {
                return Err(refuse(e.code(), file.path.clone(), e.to_string()));
            }
            Err(_) => {}
        }
    }
    if let Some(entry) = entry
        && !listing.files.iter().any(|f| f.path == entry)
    {
        return Err(refuse(
            "no_entry",
            entry.to_owned(),
            "the entry module is not a file of the skill",
        ));
    }
    Ok((Some(engine.compatibility()), compiled))
}

impl Developer {
    /// Writes the artifacts (read-only, replacing nothing that is intact) and records their
    /// digests.
    pub(super) fn store_artifacts(
        &self,
        engine: &str,
        compiled: &[Compiled],
    ) -> Result<(), DevError> {
        let dir = self.home.wasm_dir().join(engine);
        fs::create_dir_all(&dir).map_err(DevError::io(&dir))?;
        for c in compiled {
            let path = self.home.wasm_artifact(engine, &c.module);
            let digest = Digest::of(&c.artifact);
            let tmp = dir.join(format!(".{}.tmp", c.module));
            let _ = fs::remove_file(&tmp);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(&tmp)
                .map_err(DevError::io(&tmp))?;
            f.write_all(&c.artifact)
                .and_then(|()| f.sync_all())
                .map_err(DevError::io(&tmp))?;
            fs::rename(&tmp, &path).map_err(DevError::io(&path))?;
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO wasm_artifacts \
                     (module_digest, engine, artifact_digest, size, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        c.module.to_string(),
                        engine,
                        digest.to_string(),
                        i64::try_from(c.artifact.len()).unwrap_or(i64::MAX),
                        now(),
                    ],
                )
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }
}
