//! The walk: symlinks and special files are findings, bounds are findings, nothing outside the
//! folder is read, the operator can disable rules.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use skillcell_scan::{ScanConfig, ScanError, scan_dir};
use skillcell_types::Contract;

fn rules_of(dir: &Path, config: &ScanConfig) -> Vec<String> {
    let r = scan_dir(dir, &Contract::default_blind(), config).expect("scan runs");
    r.findings
        .iter()
        .map(|f| format!("{}:{}", f.rule, f.file))
        .collect()
}

#[test]
fn a_symlink_is_a_finding_and_is_not_followed() {
    let outside = tempfile::tempdir().expect("temp dir");
    fs::write(outside.path().join("evil.py"), "eval(x)\n").expect("write outside");
    let skill = tempfile::tempdir().expect("temp dir");
    symlink(outside.path().join("evil.py"), skill.path().join("run.py")).expect("link");
    symlink(outside.path(), skill.path().join("lib")).expect("link dir");
    let r = rules_of(skill.path(), &ScanConfig::default());
    assert_eq!(r, vec!["symlink:lib", "symlink:run.py"]);
}

#[test]
fn the_root_must_be_a_directory_not_a_link() {
    let t = tempfile::tempdir().expect("temp dir");
    fs::create_dir(t.path().join("real")).expect("mkdir");
    symlink(t.path().join("real"), t.path().join("link")).expect("link");
    let e = scan_dir(
        &t.path().join("link"),
        &Contract::default_blind(),
        &ScanConfig::default(),
    );
    assert!(matches!(e, Err(ScanError::NotADirectory { .. })), "{e:?}");
}

#[test]
fn a_fifo_is_a_special_file() {
    let t = tempfile::tempdir().expect("temp dir");
    let fifo = t.path().join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    assert_eq!(
        rules_of(t.path(), &ScanConfig::default()),
        vec!["special-file:pipe"]
    );
}

#[test]
fn bounds_are_reported_not_silently_applied() {
    let t = tempfile::tempdir().expect("temp dir");
    fs::write(
        t.path().join("big.py"),
        format!("x = 1\n{}eval(y)\n", "#\n".repeat(600)),
    )
    .expect("write");
    fs::write(t.path().join("small.py"), "eval(y)\n").expect("write");
    let config = ScanConfig {
        max_file_bytes: 1000,
        ..ScanConfig::default()
    };
    assert_eq!(
        rules_of(t.path(), &config),
        vec!["file-too-large:big.py", "py-exec:small.py"]
    );

    let config = ScanConfig {
        max_files: 1,
        ..ScanConfig::default()
    };
    assert_eq!(
        rules_of(t.path(), &config),
        vec!["py-exec:big.py", "too-many-files:small.py"]
    );

    fs::create_dir_all(t.path().join("a/b/c")).expect("mkdir");
    fs::write(t.path().join("a/b/c/deep.py"), "eval(z)\n").expect("write");
    let config = ScanConfig {
        max_depth: 2,
        ..ScanConfig::default()
    };
    let r = rules_of(t.path(), &config);
    assert!(r.contains(&"too-many-files:a/b/c".to_owned()), "{r:?}");
    assert!(!r.iter().any(|x| x.ends_with("deep.py")), "{r:?}");

    let config = ScanConfig {
        max_total_bytes: 8 + 1214,
        ..ScanConfig::default()
    };
    let r = rules_of(t.path(), &config);
    // Files of a directory come before its subdirectories.
    assert!(
        r.contains(&"file-too-large:a/b/c/deep.py".to_owned()),
        "{r:?}"
    );
    assert!(r.contains(&"py-exec:small.py".to_owned()), "{r:?}");
}

#[test]
fn disabled_rules_are_dropped() {
    let t = tempfile::tempdir().expect("temp dir");
    fs::write(t.path().join("a.py"), "import ctypes\neval(y)\n").expect("write");
    let config = ScanConfig {
        disabled_rules: ["native-ffi".to_owned()].into(),
        ..ScanConfig::default()
    };
    assert_eq!(rules_of(t.path(), &config), vec!["py-exec:a.py"]);
}

#[test]
fn shebang_scripts_without_extension_are_parsed() {
    let t = tempfile::tempdir().expect("temp dir");
    fs::write(t.path().join("run"), "#!/usr/bin/env python3\nexec(code)\n").expect("write");
    fs::write(t.path().join("go"), "#!/bin/sh\neval \"$1$2\"\n").expect("write");
    assert_eq!(
        rules_of(t.path(), &ScanConfig::default()),
        vec!["shell-eval:go", "py-exec:run"]
    );
}

#[test]
fn long_lines_in_code() {
    let t = tempfile::tempdir().expect("temp dir");
    fs::write(
        t.path().join("min.js"),
        format!("var a=[{}];\n", "1,".repeat(800)),
    )
    .expect("write");
    assert_eq!(
        rules_of(t.path(), &ScanConfig::default()),
        vec!["long-line:min.js"]
    );
}
