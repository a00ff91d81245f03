//! The fixture corpus: every malicious skill yields its rule at its minimum severity, and no
//! benign skill has a finding at high or above. The expected rule of each malicious fixture
//! lives here, not in the fixture.

use std::fs;
use std::path::Path;

use skillcell_types::finding::Severity;

use crate::common::{copy_tree, fixtures, scan, show};

/// Fixture name, the rule it must trigger, the minimum severity of that finding.
const MALICIOUS: &[(&str, &str, Severity)] = &[
    ("b64-exec", "obfuscated-exec", Severity::Critical),
    ("bash-c-curl", "remote-pipe-exec", Severity::Critical),
    ("bashrc-persistence", "persistence", Severity::Critical),
    ("ctypes-native", "native-ffi", Severity::High),
    ("dev-tcp-shell", "undeclared-network", Severity::Critical),
    ("env-dump", "env-enumerate", Severity::Medium),
    ("getattr-concat", "py-getattr-builtins", Severity::Critical),
    ("git-hooks", "persistence", Severity::Critical),
    ("helper-payload", "obfuscated-exec", Severity::Critical),
    ("high-entropy-blob", "high-entropy-string", Severity::Medium),
    ("js-child-process", "remote-pipe-exec", Severity::Critical),
    ("js-function-atob", "obfuscated-exec", Severity::Critical),
    ("js-require-dynamic", "dynamic-import", Severity::Medium),
    ("md-bidi", "hidden-unicode", Severity::Critical),
    ("md-curl-sh", "remote-pipe-exec", Severity::Critical),
    ("md-hide-user", "hide-from-user", Severity::High),
    ("md-tag-chars", "hidden-unicode", Severity::Critical),
    ("md-zero-width", "hidden-unicode", Severity::Critical),
    ("nfkc-eval", "unicode-lookalike", Severity::Critical),
    ("npm-postinstall", "install-hook", Severity::High),
    ("pth-persistence", "persistence", Severity::Critical),
    ("reversed-exec", "py-getattr-builtins", Severity::Critical),
    ("setup-py-hook", "install-hook", Severity::High),
    ("shell-base64-pipe", "obfuscated-exec", Severity::Critical),
    ("shipped-pyc", "python-bytecode", Severity::High),
    ("shipped-so", "native-binary", Severity::High),
    ("ssh-key-read", "credential-path", Severity::High),
    ("symlink-escape", "symlink", Severity::High),
    ("ts-eval", "js-eval", Severity::High),
    ("undeclared-env", "undeclared-env", Severity::High),
    ("undeclared-exec", "undeclared-exec", Severity::Critical),
    ("undeclared-host", "undeclared-host", Severity::Critical),
    (
        "undeclared-network",
        "undeclared-network",
        Severity::Critical,
    ),
];

/// Adds what the repository keeps out of the fixture (binary files, links) to a copy.
fn plant(name: &str, dir: &Path) {
    match name {
        "shipped-pyc" => {
            let cache = dir.join("scripts/__pycache__");
            fs::create_dir_all(&cache).expect("create __pycache__");
            // CPython 3.12 magic, flags, mtime, size, then a code object's first bytes.
            let mut pyc = vec![0xcb, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            pyc.extend_from_slice(&[0xe3, 0, 0, 0, 0]);
            fs::write(cache.join("sums.cpython-312.pyc"), pyc).expect("write the .pyc");
        }
        "shipped-so" => {
            let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
            elf.resize(64, 0);
            fs::write(
                dir.join("scripts/_search.cpython-312-x86_64-linux-gnu.so"),
                elf,
            )
            .expect("write the .so");
        }
        "symlink-escape" => {
            fs::create_dir_all(dir.join("config")).expect("create config/");
            std::os::unix::fs::symlink("/etc/passwd", dir.join("config/settings.ini"))
                .expect("plant the symlink");
        }
        _ => {}
    }
}

#[test]
fn every_malicious_fixture_is_caught_by_its_rule() {
    let root = fixtures().join("malicious");
    let mut on_disk: Vec<String> = fs::read_dir(&root)
        .expect("list malicious fixtures")
        .map(|e| {
            e.expect("fixture entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = MALICIOUS.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(
        on_disk, listed,
        "each fixture needs a row in MALICIOUS, and each row a fixture"
    );

    let mut failures = Vec::new();
    for (name, rule, min) in MALICIOUS {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join(name);
        copy_tree(&root.join(name), &dir);
        plant(name, &dir);
        let report = scan(&dir);
        let hit = report
            .findings
            .iter()
            .any(|f| f.rule == *rule && f.severity >= *min);
        if !hit {
            failures.push(format!(
                "{name}: no `{rule}` at {min} or above; found:\n{}",
                show(&report)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_benign_fixture_has_a_high_finding() {
    let root = fixtures().join("benign");
    let mut n = 0;
    let mut failures = Vec::new();
    for e in fs::read_dir(&root).expect("list benign fixtures") {
        let dir = e.expect("fixture entry").path();
        let report = scan(&dir);
        n += 1;
        if report.at_least(Severity::High).next().is_some() {
            failures.push(format!("{}:\n{}", dir.display(), show(&report)));
        }
        assert!(report.files_scanned >= 2, "{}", dir.display());
    }
    assert!(
        n >= 20,
        "the benign corpus has {n} skills, want at least 20"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
