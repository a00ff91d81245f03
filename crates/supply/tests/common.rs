//! Helpers shared by the test modules: skill folders in temporary directories, the fixture
//! advisories as a zip, report queries.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use skillcell_supply::{AdvisoryDb, AuditPolicy, SupplyReport, audit};
use skillcell_types::finding::Finding;
use tempfile::TempDir;
use zip::write::SimpleFileOptions;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv")
}

/// Number of `.json` records in the fixture folder.
pub const FIXTURE_RECORDS: u64 = 7;

/// A zip of `files` (name, bytes) at `dir/name`.
pub fn write_zip(dir: &Path, name: &str, files: &[(String, Vec<u8>)]) -> PathBuf {
    let path = dir.join(name);
    let file = fs::File::create(&path).expect("create zip");
    let mut zip = zip::ZipWriter::new(file);
    for (n, bytes) in files {
        zip.start_file(n.as_str(), SimpleFileOptions::default())
            .expect("start zip entry");
        zip.write_all(bytes).expect("write zip entry");
    }
    zip.finish().expect("finish zip");
    path
}

/// The fixture folder as OSV publishes it: a flat zip of `<ID>.json` (plus the README).
pub fn fixture_zip(dir: &Path) -> PathBuf {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(fixtures())
        .expect("fixture dir")
        .map(|e| {
            let e = e.expect("fixture entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("read fixture"),
            )
        })
        .collect();
    files.sort();
    write_zip(dir, "all.zip", &files)
}

/// A database in `dir` with the fixtures imported from their zip.
pub fn fixture_db(dir: &Path) -> AdvisoryDb {
    let zip = fixture_zip(dir);
    let mut db = AdvisoryDb::open(&dir.join("advisories.db")).expect("open db");
    db.import(&zip, &mut |_| {}).expect("import fixtures");
    db
}

/// A skill folder holding `files` (relative path, text).
pub fn skill(files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    for (rel, text) in files {
        let path = dir.path().join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&path, text).expect("write skill file");
    }
    dir
}

pub fn audit_strict(dir: &Path, db: Option<&AdvisoryDb>) -> SupplyReport {
    audit(dir, db, &AuditPolicy::default()).expect("audit runs")
}

pub fn with_rule<'a>(report: &'a SupplyReport, rule: &str) -> Vec<&'a Finding> {
    report.findings.iter().filter(|f| f.rule == rule).collect()
}

/// The only finding with `rule`; fails listing all findings otherwise.
pub fn one<'a>(report: &'a SupplyReport, rule: &str) -> &'a Finding {
    let found = with_rule(report, rule);
    assert_eq!(
        found.len(),
        1,
        "expected one {rule} finding, got: {:#?}",
        report.findings
    );
    found[0]
}

pub fn none(report: &SupplyReport, rule: &str) {
    let found = with_rule(report, rule);
    assert!(
        found.is_empty(),
        "expected no {rule} finding, got: {found:#?}"
    );
}
