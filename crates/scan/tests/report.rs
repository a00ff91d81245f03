//! The report's shapes: JSON and SARIF snapshots, SARIF validated against the official
//! schema, `suggest` on what a skill was seen to use.

use std::sync::OnceLock;

use serde_json::Value;
use skillcell_scan::{ScanReport, rules, suggest, to_sarif};
use skillcell_types::finding::Severity;

use crate::common::{fixtures, scan};

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).expect("a report serializes")
}

fn malicious(name: &str) -> ScanReport {
    scan(&fixtures().join("malicious").join(name))
}

fn sarif_errors(sarif: &Value) -> Vec<String> {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(include_str!("schema/sarif-schema-2.1.0.json"))
            .expect("the vendored schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema compiles")
    });
    validator
        .iter_errors(sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn json_report_of_a_benign_skill() {
    let r = scan(&fixtures().join("benign/weather-fetcher"));
    assert_eq!(r.at_least(Severity::Low).count(), 0, "{r:?}");
    assert!(r.used.hosts.contains("api.open-meteo.com:443"));
    insta::assert_snapshot!(pretty(&r));
}

#[test]
fn json_report_of_an_exfiltrating_skill() {
    let r = malicious("undeclared-host");
    assert_eq!(r.max_severity, Some(Severity::Critical));
    insta::assert_snapshot!(pretty(&r));
}

#[test]
fn findings_are_sorted_by_file_line_col_rule() {
    let r = malicious("js-child-process");
    let keys: Vec<_> = r
        .findings
        .iter()
        .map(|f| (&f.file, f.line, f.col, &f.rule))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(r.findings.len() >= 4);
}

#[test]
fn sarif_snapshot_and_schema() {
    let r = malicious("undeclared-host");
    let sarif = to_sarif(&r, "0.1.0");
    assert_eq!(sarif_errors(&sarif), Vec::<String>::new());
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "skillcell");
    assert_eq!(
        run["tool"]["driver"]["rules"].as_array().map(Vec::len),
        Some(rules().len())
    );
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), r.findings.len());
    let host = results
        .iter()
        .find(|x| x["ruleId"] == "undeclared-host")
        .expect("the undeclared host is a result");
    assert_eq!(host["level"], "error");
    let loc = &host["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "scripts/translate.py");
    assert_eq!(loc["region"]["startLine"], 7);
    // The rule list is long and stable; the snapshot keeps the results.
    insta::assert_snapshot!(pretty(&run["results"]));
}

#[test]
fn sarif_of_every_fixture_is_schema_valid() {
    for kind in ["benign", "malicious"] {
        for e in std::fs::read_dir(fixtures().join(kind)).expect("list fixtures") {
            let dir = e.expect("fixture entry").path();
            let sarif = to_sarif(&scan(&dir), "0.1.0");
            assert_eq!(
                sarif_errors(&sarif),
                Vec::<String>::new(),
                "{}",
                dir.display()
            );
        }
    }
}

#[test]
fn a_broken_sarif_is_refused_by_the_schema() {
    // The validation can fail: a result without a message is not SARIF.
    let mut sarif = to_sarif(&malicious("b64-exec"), "0.1.0");
    sarif["runs"][0]["results"][0]
        .as_object_mut()
        .expect("a result object")
        .remove("message");
    assert!(!sarif_errors(&sarif).is_empty());
}

#[test]
fn suggest_declares_what_an_undeclared_skill_uses() {
    let r = malicious("undeclared-host");
    assert_eq!(
        suggest(&r.used),
        "  skillcell.network: api.example.com:443 collect.evil-metrics.example.net:443\n"
    );
    let r = malicious("bash-c-curl");
    let s = suggest(&r.used);
    assert!(
        s.contains("  skillcell.network: toolchain-update.example.net:443\n"),
        "{s}"
    );
    assert!(s.contains("  skillcell.exec: curl\n"), "{s}");
}

#[test]
fn hints_name_the_declaring_line() {
    let r = malicious("undeclared-exec");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "undeclared-exec")
        .expect("undeclared exec found");
    assert_eq!(f.hint, "declare it: `skillcell.exec: curl`");
    let r = malicious("undeclared-network");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "undeclared-network")
        .expect("undeclared network found");
    assert!(
        f.hint.contains("`skillcell.network: 198.51.100.7:8080`"),
        "{}",
        f.hint
    );
}
