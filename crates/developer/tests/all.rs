//! Integration tests of the developer role, one binary.

mod lifecycle;
mod refusals;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use skillcell_developer::Developer;
use skillcell_store::Home;

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/skills")
        .join(name)
}

#[derive(Debug)]
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub home: Home,
    pub dev: Developer,
}

pub fn env() -> Env {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = Home::at(tmp.path().join("home")).expect("home");
    let dev = Developer::open(home.clone()).expect("open");
    Env { tmp, home, dev }
}

/// Copies a folder recursively (test helper, follows nothing special).
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("mkdir");
    for e in fs::read_dir(src).expect("read") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            fs::copy(e.path(), &to).expect("copy");
        }
    }
}

/// Everything that an install could leave behind: trees, staging entries, registry rows.
pub fn footprint(env: &Env) -> (BTreeSet<String>, BTreeSet<String>, usize) {
    let names = |p: PathBuf| -> BTreeSet<String> {
        fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = env
        .dev
        .reader()
        .and_then(|r| Ok(r.all_versions()?.len()))
        .expect("versions");
    (
        names(env.home.trees_dir()),
        names(env.home.staging_dir()),
        versions,
    )
}
