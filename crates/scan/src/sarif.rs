//! SARIF 2.1.0 output: one run, the full rule table as the driver's rules, one result per
//! finding with a relative artifact URI.

use serde_json::{Value, json};
use skillcell_types::finding::Severity;

use crate::ScanReport;
use crate::rules::rules;

const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// SARIF `level` of a severity: critical and high are errors.
pub(crate) fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The `security-severity` score code-scanning tools sort by.
fn score(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// Percent-encodes a relative path for `artifactLocation.uri`, keeping `/`.
fn uri(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The report as a SARIF 2.1.0 log.
pub fn to_sarif(report: &ScanReport, tool_version: &str) -> Value {
    let table = rules();
    let driver_rules: Vec<Value> = table
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "shortDescription": { "text": r.summary },
                "help": { "text": r.hint },
                "defaultConfiguration": { "level": level(r.severity) },
                "properties": {
                    "severity": r.severity.as_str(),
                    "security-severity": score(r.severity),
                    "tags": ["security"],
                },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut region = serde_json::Map::new();
            if f.line > 0 {
                region.insert("startLine".into(), json!(f.line));
                if f.col > 0 {
                    region.insert("startColumn".into(), json!(f.col));
                }
            }
            let mut physical = json!({ "artifactLocation": { "uri": uri(&f.file) } });
            if !region.is_empty() {
                physical["region"] = Value::Object(region);
            }
            let mut result = json!({
                "ruleId": f.rule,
                "level": level(f.severity),
                "message": { "text": f.message },
                "locations": [{ "physicalLocation": physical }],
                "properties": { "severity": f.severity.as_str(), "hint": f.hint },
            });
            if let Some(i) = table.iter().position(|r| r.id == f.rule) {
                result["ruleIndex"] = json!(i);
            }
            result
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "skillcell",
                    "version": tool_version,
                    "rules": driver_rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_escaped_relative_paths() {
        assert_eq!(uri("scripts/run me.py"), "scripts/run%20me.py");
        assert_eq!(uri("a/é.py"), "a/%C3%A9.py");
    }

    #[test]
    fn levels() {
        assert_eq!(level(Severity::Critical), "error");
        assert_eq!(level(Severity::Medium), "warning");
        assert_eq!(level(Severity::Info), "note");
    }
}
