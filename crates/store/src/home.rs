use std::path::{Path, PathBuf};

/// The skillcell data dir and the places inside it.
///
/// ```text
/// $SKILLCELL_HOME/            (else $XDG_DATA_HOME/skillcell, else ~/.local/share/skillcell)
///   store/trees/<tree-hash>/  installed skill folders, read-only, one per distinct content
///   store/staging/            half-built installs; never read by the executor
///   registry/registry.db      SQLite registry (developer writes, executor reads)
///   audit/audit.log           hash-chained audit trail (both roles append)
///   run/                      executor run state
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

/// Why the data dir cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("cannot find a data dir: set SKILLCELL_HOME (or XDG_DATA_HOME or HOME)")]
    NoHome,
    #[error("SKILLCELL_HOME must be an absolute path, got {0:?}")]
    Relative(PathBuf),
}

impl Home {
    /// The data dir at `root`, which must be absolute.
    pub fn at(root: impl Into<PathBuf>) -> Result<Self, HomeError> {
        let root = root.into();
        if !root.is_absolute() {
            return Err(HomeError::Relative(root));
        }
        Ok(Self { root })
    }

    /// Resolves the data dir from the environment: `SKILLCELL_HOME`, else
    /// `$XDG_DATA_HOME/skillcell`, else `$HOME/.local/share/skillcell`.
    pub fn from_env() -> Result<Self, HomeError> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(p) = var("SKILLCELL_HOME") {
            return Self::at(p);
        }
        if let Some(p) = var("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
            return Self::at(p.join("skillcell"));
        }
        match var("HOME") {
            Some(h) => Self::at(h.join(".local/share/skillcell")),
            None => Err(HomeError::NoHome),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    pub fn trees_dir(&self) -> PathBuf {
        self.root.join("store/trees")
    }

    /// The installed folder of the version whose tree hash is `hash`.
    pub fn tree_dir(&self, hash: &skillcell_types::Digest) -> PathBuf {
        self.trees_dir().join(hash.to_string())
    }

    /// Compiled WASM modules: `wasm/<engine compatibility hash>/<module digest>.cwasm`.
    pub fn wasm_dir(&self) -> PathBuf {
        self.root.join("store/wasm")
    }

    pub fn wasm_artifact(&self, engine: &str, module: &skillcell_types::Digest) -> PathBuf {
        self.wasm_dir().join(engine).join(format!("{module}.cwasm"))
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("store/staging")
    }

    pub fn registry_dir(&self) -> PathBuf {
        self.root.join("registry")
    }

    pub fn registry_db(&self) -> PathBuf {
        self.root.join("registry/registry.db")
    }

    pub fn audit_dir(&self) -> PathBuf {
        self.root.join("audit")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    /// The operator's configuration (`config/egress.conf`, …): read by the executor, written
    /// by the operator only.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }

    /// The offline advisory database (`skillcell advisories import`), read by install.
    pub fn advisories_db(&self) -> PathBuf {
        self.root.join("advisories").join("osv.db")
    }

    pub fn egress_config(&self) -> PathBuf {
        self.config_dir().join("egress.conf")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_home_is_refused() {
        assert!(Home::at("relative/dir").is_err());
        let h = Home::at("/data/sc").expect("absolute");
        assert_eq!(
            h.registry_db(),
            PathBuf::from("/data/sc/registry/registry.db")
        );
    }
}
