//! Fuzzes installing an archive: arbitrary bytes as a `.zip` handed to the developer role.
//! Beyond "no crash": a refused install leaves no staging entry, no store tree and no registry
//! row behind; an accepted one hashes to the tree it claims, and is removed again.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use skillcell_developer::{Developer, InstallLimits};
use skillcell_store::{Home, tree};

fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("skillcell-fuzz-archive-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("fuzz root");
        p
    })
}

fn count(p: PathBuf) -> usize {
    fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let home = Home::at(root().join("home")).expect("home");
    let mut dev = Developer::open(home.clone())
        .expect("open")
        .with_limits(InstallLimits {
            max_file_bytes: 1 << 20,
            max_total_bytes: 4 << 20,
            max_entries: 256,
            max_depth: 16,
            max_ratio: 100,
        });
    let pkg = root().join("fuzz.zip");
    fs::write(&pkg, data).expect("write input");
    match dev.install(&pkg) {
        Ok(out) => {
            let dir = home.tree_dir(&out.tree_hash);
            assert_eq!(tree::hash_dir(&dir).expect("hash").hash, out.tree_hash);
            dev.remove(out.name.as_str()).expect("remove");
        }
        Err(_) => {}
    }
    assert_eq!(count(home.staging_dir()), 0, "staging left behind");
    assert_eq!(count(home.trees_dir()), 0, "tree left behind");
    assert!(dev.reader().expect("reader").list().expect("list").is_empty());
});
