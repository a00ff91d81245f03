//! Table-driven fixtures: `fixtures/good/<case>/` must load with no error; each
//! `fixtures/bad/<case>/` must be refused with exactly the errors its `expect` file lists, one
//! `code<TAB>message substring` per line.

use std::fs;
use std::path::{Path, PathBuf};

use skillcell_manifest::{MAX_FRONTMATTER_BYTES, MAX_SKILL_MD_BYTES, load_dir};
use skillcell_types::{Contract, Profile};

pub fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn cases(kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(fixture_root().join(kind))
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {kind} fixtures found");
    out
}

#[test]
fn good_fixtures_load_without_errors() {
    for dir in cases("good") {
        match load_dir(&dir) {
            Ok(skill) => assert!(!skill.report.has_errors(), "{}", dir.display()),
            Err(report) => panic!("{} refused:\n{report}", dir.display()),
        }
    }
}

#[test]
fn bad_fixtures_are_refused_with_their_messages() {
    let mut failures = Vec::new();
    for dir in cases("bad") {
        let expect = fs::read_to_string(dir.join("expect"))
            .unwrap_or_else(|_| panic!("{}: missing expect file", dir.display()));
        let wanted: Vec<(&str, &str)> = expect
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split_once('\t').expect("code<TAB>substring"))
            .collect();
        let report = match load_dir(&dir) {
            Ok(_) => {
                failures.push(format!("{}: accepted", dir.display()));
                continue;
            }
            Err(r) => r,
        };
        let errors: Vec<_> = report.errors().collect();
        let mut unmatched: Vec<_> = errors.clone();
        for (code, needle) in &wanted {
            let pos = unmatched
                .iter()
                .position(|d| d.code == *code && d.to_string().contains(needle));
            match pos {
                Some(i) => {
                    let d = unmatched.remove(i);
                    // Every refusal names the file, and a position or the file as a whole.
                    assert!(
                        d.file.ends_with("SKILL.md")
                            || d.file.ends_with("skill.md")
                            || d.code == "missing_skill_md"
                    );
                    assert!(
                        d.help.is_some() || d.code == "missing_skill_md",
                        "{d} has no help"
                    );
                }
                None => failures.push(format!(
                    "{}: expected {code} containing {needle:?}, got:\n{report}",
                    dir.display()
                )),
            }
        }
        if !unmatched.is_empty() {
            failures.push(format!(
                "{}: unexpected extra errors: {:?}",
                dir.display(),
                unmatched.iter().map(|d| d.to_string()).collect::<Vec<_>>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn positions_name_line_and_key() {
    let report = load_dir(&fixture_root().join("bad/env-loader")).unwrap_err();
    let first = report.errors().next().expect("an error");
    assert_eq!(first.line, 5);
    assert_eq!(first.key.as_deref(), Some("metadata.skillcell.env"));
    let shown = first.to_string();
    assert!(shown.contains("SKILL.md:5:18:"), "{shown}");
    // Each token is pointed at: `  skillcell.env: LD_PRELOAD LD_LIBRARY_PATH`.
    let second = report.errors().nth(1).expect("a second error");
    assert_eq!((second.line, second.col), (5, 29), "{second}");
}

fn write_skill(root: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("SKILL.md"), bytes).expect("write");
    dir
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut big = b"---\nname: big\ndescription: a\n---\n".to_vec();
    big.resize(MAX_SKILL_MD_BYTES + 10, b'x');
    let report = load_dir(&write_skill(tmp.path(), "big", &big)).unwrap_err();
    assert_eq!(report.0[0].code, "file_too_large", "{report}");

    let mut fm = b"---\nname: fat\ndescription: a\nlicense: ".to_vec();
    fm.resize(MAX_FRONTMATTER_BYTES + 10, b'x');
    fm.extend(b"\n---\n");
    let report = load_dir(&write_skill(tmp.path(), "fat", &fm)).unwrap_err();
    assert_eq!(report.0[0].code, "frontmatter_too_large", "{report}");
}

#[test]
fn alias_expansion_is_refused_without_expanding() {
    // A billion-laughs document: refused at the first anchor, in well under a second.
    let mut doc = String::from("---\nname: lol\ndescription: a\nmetadata:\n  a0: &a0 lol\n");
    for i in 1..10 {
        let refs: Vec<String> = (0..10).map(|_| format!("*a{}", i - 1)).collect();
        doc.push_str(&format!("  a{i}: &a{i} [{}]\n", refs.join(",")));
    }
    doc.push_str("---\n");
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = load_dir(&write_skill(tmp.path(), "lol", doc.as_bytes())).unwrap_err();
    assert_eq!(report.0[0].code, "yaml_anchor");
}

#[test]
fn no_contract_means_default_blind() {
    let skill = load_dir(&fixture_root().join("good/minimal")).expect("loads");
    let c = &skill.manifest.contract;
    assert_eq!(c.profile, Profile::DefaultBlind);
    assert!(c.network.is_empty() && c.env.is_empty() && c.fs.is_empty() && c.exec.is_empty());
    assert_eq!(c, &Contract::default_blind());
}

#[test]
fn full_contract_is_read_and_canonical() {
    let skill = load_dir(&fixture_root().join("good/full-contract")).expect("loads");
    let c = &skill.manifest.contract;
    assert_eq!(c.profile, Profile::Declared);
    assert_eq!(c.entry.as_deref(), Some("scripts/main.py"));
    let hosts: Vec<String> = c.network.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        hosts,
        [
            "api.example.com:443",
            "*.tiles.example.org:443",
            "192.0.2.10:8080"
        ]
    );
    assert_eq!(c.limits.memory, 128 << 20);
    assert_eq!(c.limits.cpu_ms, 5000);
    assert_eq!(c.placeholders(), vec!["INPUT", "WORKSPACE"]);
    // Reordering keys and values does not change the contract digest.
    let src = fs::read_to_string(fixture_root().join("good/full-contract/SKILL.md")).expect("read");
    let reordered = src
        .replace(
            "skillcell.env: OPEN_METEO_UNITS TZ",
            "skillcell.env: TZ   OPEN_METEO_UNITS",
        )
        .replace(
            "skillcell.exec: git /usr/bin/jq",
            "skillcell.exec: /usr/bin/jq git",
        );
    assert_ne!(src, reordered);
    let (m2, _) = skillcell_manifest::parse(reordered.as_bytes(), "SKILL.md").expect("parses");
    assert_eq!(m2.contract.digest(), c.digest());
}
