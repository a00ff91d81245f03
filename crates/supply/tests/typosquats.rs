//! Typosquat detection through the audit.

use skillcell_supply::AuditPolicy;
use skillcell_supply::audit;
use skillcell_types::finding::Severity;

use crate::common::{audit_strict, skill, with_rule};

fn pypi_squat(name: &str) -> Option<String> {
    let dir = skill(&[("requirements.txt", &format!("{name}==1.0.0\n"))]);
    let report = audit_strict(dir.path(), None);
    let found = with_rule(&report, "dep-typosquat");
    assert!(found.len() <= 1);
    found.first().map(|f| {
        assert_eq!(f.severity, Severity::High);
        f.message.clone()
    })
}

fn npm_squat(name: &str) -> Option<String> {
    let dir = skill(&[(
        "package.json",
        &format!("{{\"dependencies\": {{\"{name}\": \"1.0.0\"}}}}"),
    )]);
    let report = audit_strict(dir.path(), None);
    with_rule(&report, "dep-typosquat")
        .first()
        .map(|f| f.message.clone())
}

fn assert_target(message: Option<String>, target: &str) {
    let m = message.unwrap_or_else(|| panic!("expected a typosquat of {target}"));
    assert!(m.contains(&format!("`{target}`")), "{m}");
}

#[test]
fn a_transposition_is_caught() {
    assert_target(pypi_squat("reqeusts"), "requests");
}

#[test]
fn a_digit_for_a_letter_is_caught() {
    assert_target(pypi_squat("djang0"), "django");
    assert_target(pypi_squat("ur1lib3"), "urllib3");
}

#[test]
fn rn_for_m_is_caught() {
    assert_target(pypi_squat("nurnpy"), "numpy");
}

#[test]
fn a_suffix_on_a_long_name_is_caught() {
    assert_target(pypi_squat("python-dateutils"), "python-dateutil");
}

#[test]
fn a_removed_prefix_is_caught() {
    assert_target(pypi_squat("dateutil"), "python-dateutil");
}

#[test]
fn two_edits_on_a_long_name_are_caught() {
    assert_target(pypi_squat("beautifulsop"), "beautifulsoup4");
}

#[test]
fn npm_squats_are_caught() {
    assert_target(npm_squat("lodahs"), "lodash");
    assert_target(npm_squat("crossenv"), "cross-env");
    assert_target(npm_squat("expresss"), "express");
}

#[test]
fn popular_names_are_not_flagged() {
    for name in [
        "requests",
        "numpy",
        "pandas",
        "urllib3",
        "boto3",
        "django",
        "flask",
        "setuptools",
        "beautifulsoup4",
        "pyyaml",
        "cryptography",
        "PyYAML",
        "python_dateutil",
    ] {
        assert_eq!(pypi_squat(name), None, "{name}");
    }
    for name in [
        "lodash",
        "react",
        "express",
        "axios",
        "chalk",
        "request",
        "react-dom",
    ] {
        assert_eq!(npm_squat(name), None, "{name}");
    }
}

#[test]
fn lists_are_per_ecosystem() {
    // `request` is a real npm package but one letter from PyPI's `requests`.
    assert_eq!(npm_squat("request"), None);
    assert_target(pypi_squat("request"), "requests");
}

#[test]
fn short_unrelated_names_are_not_flagged() {
    for name in ["abc", "zzz-tool", "skillcell-helper"] {
        assert_eq!(pypi_squat(name), None, "{name}");
    }
}

#[test]
fn known_names_silence_the_check() {
    let dir = skill(&[("requirements.txt", "reqeusts==1.0\n")]);
    let policy = AuditPolicy {
        known_names: vec!["Reqeusts".into()],
        ..AuditPolicy::default()
    };
    let report = audit(dir.path(), None, &policy).expect("audit");
    assert!(with_rule(&report, "dep-typosquat").is_empty());
}
