//! Helpers shared by the integration tests.

use std::fs;
use std::path::{Path, PathBuf};

use skillcell_scan::{ScanConfig, ScanReport, scan_dir};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the copy's directory");
    for e in fs::read_dir(from).expect("list the fixture") {
        let e = e.expect("read a fixture entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("fixture entry type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).expect("copy a fixture file");
        }
    }
}

/// Scans `dir` with the contract its SKILL.md declares and the default config.
pub fn scan(dir: &Path) -> ScanReport {
    let loaded = skillcell_manifest::load_dir(dir)
        .unwrap_or_else(|r| panic!("{}: SKILL.md refused: {:?}", dir.display(), r.0));
    scan_dir(dir, &loaded.manifest.contract, &ScanConfig::default()).expect("scan runs")
}

/// `rule severity file:line:col` of each finding, for failure messages.
pub fn show(r: &ScanReport) -> String {
    r.findings
        .iter()
        .map(|f| {
            format!(
                "  {} {} {}:{}:{} {}",
                f.rule, f.severity, f.file, f.line, f.col, f.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
