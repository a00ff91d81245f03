//! Dependencies judged against the fixture advisories: pinned versions, ranges, boundaries,
//! withdrawn records, and the report's database information.

use skillcell_supply::{AdvisoryDb, Ecosystem};
use skillcell_types::finding::Severity;
use tempfile::TempDir;

use crate::common::{audit_strict, fixture_db, none, one, skill, with_rule, write_zip};

const VULNERABLE: &str = "dep-vulnerable";
const MAY: &str = "dep-may-be-vulnerable";

fn py(req: &str, db: &AdvisoryDb) -> skillcell_supply::SupplyReport {
    let dir = skill(&[("requirements.txt", &format!("{req}\n"))]);
    audit_strict(dir.path(), Some(db))
}

fn npm(name: &str, spec: &str, db: &AdvisoryDb) -> skillcell_supply::SupplyReport {
    let json = format!("{{\"dependencies\": {{\"{name}\": \"{spec}\"}}}}\n");
    let dir = skill(&[("package.json", &json)]);
    audit_strict(dir.path(), Some(db))
}

#[test]
fn a_pinned_vulnerable_version_is_caught() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    let report = py("requests==2.25.0", &db);
    let f = one(&report, VULNERABLE);
    assert_eq!(
        f.severity,
        Severity::High,
        "CVSS 6.1, MODERATE: not critical"
    );
    assert!(f.message.contains("GHSA-j8r2-6x86-q33q"), "{}", f.message);
    assert!(f.message.contains("CVE-2023-32681"), "{}", f.message);
    assert!(f.hint.contains("2.31.0"), "{}", f.hint);
    assert_eq!((f.file.as_str(), f.line, f.col), ("requirements.txt", 1, 1));
}

#[test]
fn the_fixed_version_is_clean() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    let report = py("requests==2.31.0", &db);
    none(&report, VULNERABLE);
    none(&report, MAY);
    // The GIT range (introduced 0, fixed <commit>) must not make every version vulnerable.
    none(&py("requests==3.0.0", &db), VULNERABLE);
}

#[test]
fn names_are_matched_after_pep_503_normalization() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    // The advisory names `PyYAML`; the requirement spells it differently.
    let report = py("py_yaml==5.1", &db);
    none(&report, VULNERABLE);
    let report = py("PyYaml==5.1", &db);
    one(&report, VULNERABLE);
}

#[test]
fn last_affected_is_inclusive_and_critical_severity_is_carried() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    let f = one(&py("pyyaml==5.3.1", &db), VULNERABLE).clone();
    assert_eq!(f.severity, Severity::Critical);
    // PEP 440: 5.3.1.post1 sorts after 5.3.1, 5.3.1rc1 before it.
    none(&py("pyyaml==5.3.1.post1", &db), VULNERABLE);
    one(&py("pyyaml==5.3.1rc1", &db), VULNERABLE);
    none(&py("pyyaml==5.4", &db), VULNERABLE);
    // 5.3.1.0 is 5.3.1.
    one(&py("pyyaml==5.3.1.0", &db), VULNERABLE);
}

#[test]
fn an_explicit_versions_list_is_matched() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    one(&py("ctx==0.2.2", &db), VULNERABLE);
    none(&py("ctx==0.2.3", &db), VULNERABLE);
    one(&py("ctx>=0.2", &db), MAY);
    none(&py("ctx>=0.2.7", &db), MAY);
    none(&py("ctx>=0.2,!=0.2.2,!=0.2.6", &db), MAY);
}

#[test]
fn a_withdrawn_advisory_is_ignored() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    let report = py("flask==2.0.0", &db);
    none(&report, VULNERABLE);
    none(&report, MAY);
}

#[test]
fn a_range_that_admits_an_affected_version_may_resolve_to_it() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    let report = py("requests>=2.0", &db);
    let f = one(&report, MAY);
    assert_eq!(f.severity, Severity::Medium);
    assert!(f.message.contains("may resolve"), "{}", f.message);
    none(&report, VULNERABLE);
    none(&py("requests>=2.31.0", &db), MAY);
    none(&py("requests~=2.31", &db), MAY);
    one(&py("requests<2.31.0", &db), MAY);
    one(&py("requests", &db), MAY);
    // `>2.30.0` still admits 2.30.1 < 2.31.0.
    one(&py("requests>2.30.0", &db), MAY);
}

#[test]
fn a_limit_event_caps_an_open_range() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    one(&py("limited-pkg==1.5", &db), VULNERABLE);
    none(&py("limited-pkg==2.0", &db), VULNERABLE);
    none(&py("limited-pkg>=2.0", &db), MAY);
}

#[test]
fn npm_pinned_versions_use_semver_precedence() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    one(&npm("lodash", "4.17.20", &db), VULNERABLE);
    none(&npm("lodash", "4.17.21", &db), VULNERABLE);
    // A pre-release of the fixed version sorts before it.
    one(&npm("lodash", "4.17.21-beta.1", &db), VULNERABLE);
    // Numeric identifiers compare as numbers: alpha.10 > alpha.5 (fixed).
    one(&npm("lodash", "5.0.0-alpha.3", &db), VULNERABLE);
    none(&npm("lodash", "5.0.0-alpha.10", &db), VULNERABLE);
    // Alphanumeric identifiers sort after numeric ones: alpha.beta > alpha.5.
    none(&npm("lodash", "5.0.0-alpha.beta", &db), VULNERABLE);
    // Build metadata does not count.
    one(&npm("lodash", "4.17.20+build.7", &db), VULNERABLE);
}

#[test]
fn npm_ranges_may_resolve_to_affected_versions() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    one(&npm("lodash", "^4.17.0", &db), MAY);
    // ^4.17.21 stops below 5.0.0-0, under every 5.0.0 pre-release.
    none(&npm("lodash", "^4.17.21", &db), MAY);
    one(&npm("minimist", "^1.2.0", &db), MAY);
    none(&npm("minimist", "^1.2.6", &db), MAY);
    none(&npm("minimist", "0.2.4 - 0.9.0", &db), MAY);
    one(&npm("minimist", "latest", &db), MAY);
    let f = one(&npm("minimist", "1.2.5", &db), VULNERABLE).clone();
    assert_eq!(f.severity, Severity::Critical);
}

#[test]
fn without_a_database_the_report_says_so() {
    let dir = skill(&[("requirements.txt", "requests==2.25.0\n")]);
    let report = audit_strict(dir.path(), None);
    let f = one(&report, "dep-no-advisories");
    assert_eq!(f.severity, Severity::Info);
    assert!(report.db.is_none());
    none(&report, VULNERABLE);
}

#[test]
fn with_a_database_the_report_names_it_and_its_import() {
    let tmp = TempDir::new().expect("tmp");
    let db = fixture_db(tmp.path());
    let report = py("requests==2.31.0", &db);
    none(&report, "dep-no-advisories");
    let info = report.db.expect("db info");
    assert!(info.path.ends_with("advisories.db"), "{}", info.path);
    let last = info.last_import.expect("an import");
    assert!(last.source.ends_with("all.zip"), "{}", last.source);
    assert!(last.imported_at.starts_with("20"), "{}", last.imported_at);
    let json = serde_json::to_value(&report.dependencies).expect("serialize");
    assert_eq!(json[0]["ecosystem"], "PyPI");
    assert_eq!(report.dependencies[0].ecosystem, Ecosystem::PyPI);
}

#[test]
fn an_updated_advisory_replaces_its_ranges() {
    let tmp = TempDir::new().expect("tmp");
    let mut db = AdvisoryDb::open(&tmp.path().join("a.db")).expect("open");
    let rec = |modified: &str, fixed: &str| {
        format!(
            r#"{{"id": "U-1", "modified": "{modified}", "affected": [{{"package":
            {{"ecosystem": "PyPI", "name": "demo"}}, "ranges": [{{"type": "ECOSYSTEM",
            "events": [{{"introduced": "0"}}, {{"fixed": "{fixed}"}}]}}]}}]}}"#
        )
        .into_bytes()
    };
    let v1 = write_zip(
        tmp.path(),
        "v1.zip",
        &[("U-1.json".into(), rec("2024-01-01T00:00:00Z", "1.0"))],
    );
    let v2 = write_zip(
        tmp.path(),
        "v2.zip",
        &[("U-1.json".into(), rec("2024-02-01T00:00:00Z", "2.0"))],
    );
    db.import(&v1, &mut |_| {}).expect("v1");
    none(&py("demo==1.5", &db), VULNERABLE);
    db.import(&v2, &mut |_| {}).expect("v2");
    let report = py("demo==1.5", &db);
    assert_eq!(
        with_rule(&report, VULNERABLE).len(),
        1,
        "{:#?}",
        report.findings
    );
}
