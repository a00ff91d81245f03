//! Importing OSV records: zip and folder, upsert by `modified`, bounds, malformed records.

use std::fs;

use skillcell_supply::{AdvisoryDb, ImportLimits, SupplyError};
use tempfile::TempDir;

use crate::common::{FIXTURE_RECORDS, fixture_zip, fixtures, write_zip};

fn record(id: &str, modified: &str, fixed: &str) -> Vec<u8> {
    format!(
        r#"{{"id": "{id}", "modified": "{modified}",
            "affected": [{{"package": {{"ecosystem": "PyPI", "name": "demo"}},
              "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "0"}}, {{"fixed": "{fixed}"}}]}}]}}]}}"#
    )
    .into_bytes()
}

#[test]
fn zip_import_counts_records_and_skips_other_files() {
    let tmp = TempDir::new().expect("tmp");
    let zip = fixture_zip(tmp.path());
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let mut calls = Vec::new();
    let stats = db.import(&zip, &mut |n| calls.push(n)).expect("import");
    assert_eq!(stats.records, FIXTURE_RECORDS);
    assert_eq!(stats.inserted, FIXTURE_RECORDS);
    assert_eq!(stats.skipped_files, 1, "the README is not a record");
    assert_eq!(calls.last().copied(), Some(FIXTURE_RECORDS));
    let info = db.info().expect("info");
    assert_eq!(info.advisories, FIXTURE_RECORDS);
    assert_eq!(
        info.last_import.as_ref().map(|i| i.records),
        Some(FIXTURE_RECORDS)
    );
    assert_eq!(info.schema_version, skillcell_supply::SCHEMA_VERSION);
}

#[test]
fn folder_import_matches_zip_import_and_reimport_is_unchanged() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let first = db.import(&fixtures(), &mut |_| {}).expect("import folder");
    assert_eq!(
        (first.records, first.inserted),
        (FIXTURE_RECORDS, FIXTURE_RECORDS)
    );
    let zip = fixture_zip(tmp.path());
    let again = db.import(&zip, &mut |_| {}).expect("import zip");
    assert_eq!(again.inserted, 0);
    assert_eq!(again.unchanged, FIXTURE_RECORDS);
    assert_eq!(db.info().expect("info").advisories, FIXTURE_RECORDS);
}

#[test]
fn a_newer_modified_replaces_and_an_older_one_is_ignored() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let zip = |name: &str, modified: &str, fixed: &str| {
        write_zip(
            tmp.path(),
            name,
            &[("X-1.json".into(), record("X-1", modified, fixed))],
        )
    };
    let v1 = zip("v1.zip", "2024-01-01T00:00:00Z", "1.0");
    // Later as text, earlier as a time (23:00 the day before, UTC): must be ignored.
    let older = zip("older.zip", "2024-01-01T01:00:00+02:00", "0.5");
    let v2 = zip("v2.zip", "2024-01-02T00:00:00.5Z", "2.0");
    assert_eq!(db.import(&v1, &mut |_| {}).expect("v1").inserted, 1);
    assert_eq!(
        db.import(&older, &mut |_| {}).expect("older").skipped_older,
        1
    );
    assert_eq!(
        db.modified("X-1").expect("query").as_deref(),
        Some("2024-01-01T00:00:00Z")
    );
    assert_eq!(db.import(&v2, &mut |_| {}).expect("v2").updated, 1);
    assert_eq!(
        db.modified("X-1").expect("query").as_deref(),
        Some("2024-01-02T00:00:00.5Z")
    );
    assert_eq!(db.info().expect("info").advisories, 1);
}

#[test]
fn a_malformed_record_is_named_and_nothing_is_imported() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let zip = write_zip(
        tmp.path(),
        "bad.zip",
        &[
            (
                "GOOD-1.json".into(),
                record("GOOD-1", "2024-01-01T00:00:00Z", "1.0"),
            ),
            (
                "BROKEN-7.json".into(),
                b"{\"id\": \"BROKEN-7\", \"modified\": ".to_vec(),
            ),
        ],
    );
    let err = db.import(&zip, &mut |_| {}).expect_err("malformed refused");
    assert!(matches!(err, SupplyError::BadRecord { .. }), "{err}");
    assert!(err.to_string().contains("BROKEN-7.json"), "{err}");
    assert_eq!(
        db.info().expect("info").advisories,
        0,
        "the transaction rolled back"
    );
}

#[test]
fn an_event_with_two_kinds_is_refused() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let bad = br#"{"id": "E-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package":
        {"ecosystem": "PyPI", "name": "x"}, "ranges": [{"type": "ECOSYSTEM",
        "events": [{"introduced": "0", "fixed": "1.0"}]}]}]}"#;
    let zip = write_zip(tmp.path(), "e.zip", &[("E-1.json".into(), bad.to_vec())]);
    let err = db.import(&zip, &mut |_| {}).expect_err("refused");
    assert!(
        err.to_string().contains("E-1.json") && err.to_string().contains("exactly one"),
        "{err}"
    );
}

#[test]
fn a_record_without_modified_is_refused() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let zip = write_zip(
        tmp.path(),
        "m.zip",
        &[("M-1.json".into(), br#"{"id": "M-1"}"#.to_vec())],
    );
    let err = db.import(&zip, &mut |_| {}).expect_err("refused");
    assert!(err.to_string().contains("M-1.json"), "{err}");
}

#[test]
fn an_entry_above_the_record_bound_is_refused_by_name() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    // 4 MiB of spaces compresses to a few kilobytes: a small zip bomb.
    let mut bomb = record("B-1", "2024-01-01T00:00:00Z", "1.0");
    bomb.extend(std::iter::repeat_n(b' ', 4 << 20));
    let zip = write_zip(tmp.path(), "bomb.zip", &[("B-1.json".into(), bomb)]);
    assert!(fs::metadata(&zip).expect("zip").len() < 100_000);
    let limits = ImportLimits {
        max_entry_bytes: 1 << 20,
        ..ImportLimits::default()
    };
    let err = db
        .import_with_limits(&zip, &limits, &mut |_| {})
        .expect_err("refused");
    assert!(matches!(err, SupplyError::EntryTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("B-1.json"), "{err}");
    // The same archive passes under the default bound: the limit is what refused it.
    db.import(&zip, &mut |_| {})
        .expect("within the default bound");
}

#[test]
fn the_total_uncompressed_bound_is_enforced() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let files: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| {
            let mut r = record(&format!("T-{i}"), "2024-01-01T00:00:00Z", "1.0");
            r.extend(std::iter::repeat_n(b' ', 1000));
            (format!("T-{i}.json"), r)
        })
        .collect();
    let zip = write_zip(tmp.path(), "t.zip", &files);
    let limits = ImportLimits {
        max_total_bytes: 5_000,
        ..ImportLimits::default()
    };
    let err = db
        .import_with_limits(&zip, &limits, &mut |_| {})
        .expect_err("refused");
    assert!(matches!(err, SupplyError::TotalTooLarge { .. }), "{err}");
    assert_eq!(db.info().expect("info").advisories, 0);
}

#[test]
fn too_many_entries_are_refused_before_reading() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let zip = fixture_zip(tmp.path());
    let limits = ImportLimits {
        max_entries: 3,
        ..ImportLimits::default()
    };
    let mut calls = 0;
    let err = db
        .import_with_limits(&zip, &limits, &mut |_| calls += 1)
        .expect_err("refused");
    assert!(matches!(err, SupplyError::TooManyEntries { .. }), "{err}");
    assert_eq!(calls, 0);
    let err = db
        .import_with_limits(&fixtures(), &limits, &mut |_| {})
        .expect_err("folder refused too");
    assert!(matches!(err, SupplyError::TooManyEntries { .. }), "{err}");
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let tmp = TempDir::new().expect("tmp");
    let path = tmp.path().join("a.db");
    drop(AdvisoryDb::open(&path).expect("create"));
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = AdvisoryDb::open(&path).expect_err("refused");
    assert!(
        matches!(err, SupplyError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn a_source_that_is_neither_zip_nor_folder_is_refused() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let txt = tmp.path().join("notes.txt");
    fs::write(&txt, "hello").expect("write");
    let err = db.import(&txt, &mut |_| {}).expect_err("refused");
    assert!(matches!(err, SupplyError::UnknownSource { .. }), "{err}");
}
