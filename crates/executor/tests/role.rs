//! The executor role is held read-only on the store and the registry by the kernel.
//!
//! Landlock binds a process for good, so each restricted check runs in a child: this test
//! binary re-executes itself with `SKILLCELL_TEST_CHILD` set, and the child test enters the
//! executor role and tries the writes. The parent judges from outside: the child's errno
//! reports, and the files on disk (the host's view).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use skillcell_developer::Developer;
use skillcell_executor::{ExecError, Executor};
use skillcell_store::Home;

const CHILD: &str = "SKILLCELL_TEST_CHILD";
const HOME: &str = "SKILLCELL_TEST_HOME";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/skills")
        .join(name)
}

/// A data dir with one installed skill, plus a directory inside the store that plain Unix
/// permissions leave writable to everyone, so that only Landlock can refuse writes there.
fn prepared_home() -> (tempfile::TempDir, Home, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = Home::at(tmp.path().join("home")).expect("home");
    let mut dev = Developer::open(home.clone()).expect("developer");
    dev.install(&example("json-stats")).expect("install");
    dev.approve("json-stats", None, &[], "test")
        .expect("approve");
    let open_dir = home.store_dir().join("probe-open");
    fs::create_dir_all(&open_dir).expect("mkdir");
    fs::set_permissions(
        &open_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    (tmp, home, open_dir)
}

/// Runs the named child test against `home`; returns its stdout.
fn run_child(test: &str, home: &Home) -> String {
    let out = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env(HOME, home.root())
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {test} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn outcome(kind: Result<(), std::io::Error>) -> String {
    match kind {
        Ok(()) => "ok".into(),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => "EACCES".into(),
        Err(e) => format!("other:{e}"),
    }
}

/// Child half: enters the role, tries each write, prints `RESULT <what> <outcome>`.
#[test]
fn child_tries_writes() {
    if std::env::var_os(CHILD).is_none() {
        return; // Only meaningful when started by `executor_cannot_write_store_or_registry`.
    }
    let home = Home::at(std::env::var(HOME).expect("home")).expect("home");
    let exec = Executor::enter(home.clone()).expect("enter executor role");
    println!("LANDLOCK {}", exec.landlock().status);
    let tree = exec.resolve("json-stats").expect("resolve").dir;
    let attempts: Vec<(&str, Result<(), std::io::Error>)> = vec![
        (
            "store-new-file",
            fs::write(home.store_dir().join("probe-open/planted.txt"), b"x"),
        ),
        (
            "tree-overwrite",
            fs::OpenOptions::new()
                .write(true)
                .open(tree.join("scripts/stats.py"))
                .map(|_| ()),
        ),
        ("tree-new-file", fs::write(tree.join("evil.py"), b"x")),
        ("tree-remove", fs::remove_file(tree.join("SKILL.md"))),
        (
            "registry-write",
            fs::OpenOptions::new()
                .write(true)
                .open(home.registry_db())
                .map(|_| ()),
        ),
        (
            "registry-journal",
            fs::write(home.registry_dir().join("registry.db-journal"), b"x"),
        ),
        // Positive controls: the run-state dir and the audit trail stay writable.
        ("run-dir", fs::write(home.run_dir().join("state"), b"ok")),
    ];
    for (what, result) in attempts {
        println!("RESULT {what} {}", outcome(result));
    }
}

#[test]
fn executor_cannot_write_store_or_registry() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let (_tmp, home, open_dir) = prepared_home();
    let before = fs::read(home.registry_db()).expect("registry");

    // Control: without the role, this process (root or not) can write the open store dir.
    fs::write(open_dir.join("control.txt"), b"x").expect("unrestricted write works");
    fs::remove_file(open_dir.join("control.txt")).expect("cleanup");

    let out = run_child("role::child_tries_writes", &home);
    let result = |what: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("RESULT {what} ")))
            .unwrap_or_else(|| panic!("child did not report {what}:\n{out}"))
            .to_owned()
    };
    assert!(out.contains("LANDLOCK full"), "{out}");
    for what in [
        "store-new-file",
        "tree-overwrite",
        "tree-new-file",
        "tree-remove",
        "registry-write",
        "registry-journal",
    ] {
        assert_eq!(result(what), "EACCES", "{what}:\n{out}");
    }
    assert_eq!(result("run-dir"), "ok", "positive control:\n{out}");

    // From the host: nothing planted, nothing changed, the run state was written.
    assert!(!open_dir.join("planted.txt").exists());
    assert_eq!(fs::read(home.registry_db()).expect("registry"), before);
    assert_eq!(
        fs::read(home.run_dir().join("state")).expect("state"),
        b"ok"
    );
    // The executor's resolve decision reached the audit trail.
    let log = fs::read_to_string(home.audit_dir().join("audit.log")).expect("audit");
    assert!(
        log.contains("\"op\":\"resolve\"") && log.contains("\"role\":\"executor\""),
        "{log}"
    );
}

#[test]
fn resolve_refuses_tampered_and_quarantined_versions() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let (_tmp, home, _) = prepared_home();
    let reader = skillcell_store::RegistryReader::open(&home.registry_db()).expect("reader");
    let tree = home.tree_dir(&reader.current("json-stats").expect("current").tree_hash);
    drop(reader);
    let script = tree.join("scripts/stats.py");
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    fs::write(&script, b"import os; os.system('id')\n").expect("tamper");
    let out = run_child("role::child_resolves", &home);
    assert!(out.contains("REFUSED tampered"), "{out}");

    let mut dev = Developer::open(home.clone()).expect("developer");
    let report = dev.verify().expect("verify");
    assert_eq!(report.newly_quarantined(), 1);
    let out = run_child("role::child_resolves", &home);
    assert!(out.contains("REFUSED not_usable"), "{out}");
}

#[test]
fn child_resolves() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let home = Home::at(std::env::var(HOME).expect("home")).expect("home");
    let exec = Executor::enter(home).expect("enter");
    match exec.resolve("json-stats") {
        Ok(_) => println!("RESOLVED"),
        Err(ExecError::Refused { code, .. }) => println!("REFUSED {code}"),
        Err(e) => panic!("{e}"),
    }
}
