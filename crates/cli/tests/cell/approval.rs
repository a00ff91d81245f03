//! Approval: a pending version never runs; only a person at a terminal approves, by typing the
//! skill's name; the approval is bound to the tree and contract it was given for. Judged from
//! the host: a canary file the skill would create, the registry, the audit trail.

use std::process::{Command, Stdio};

use super::lab::Lab;

/// A skill that creates `made` in its workspace grant when it runs.
fn install_maker(lab: &Lab, name: &str) {
    lab.install_pending(
        name,
        &["skillcell.entry: main.py", "skillcell.fs.write: $WORKSPACE"],
        &[(
            "main.py",
            "import os\nopen(os.path.join(os.environ['SKILLCELL_PATH_WORKSPACE'], 'made'), 'w').write('x')\n",
        )],
    );
}

fn state(lab: &Lab, name: &str) -> String {
    let out = lab.cmd(&["show", name, "--json"]).output().expect("show");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("show --json");
    v["versions"][0]["state"].as_str().unwrap_or("?").to_owned()
}

#[test]
fn a_pending_version_does_not_run_until_a_person_approves_it() {
    let lab = Lab::new();
    install_maker(&lab, "maker");
    let ws = lab.s("ws");
    let r = lab.run(&["maker", "--workspace", &ws]);
    assert_eq!(r.code, 125, "{r:?}");
    assert_eq!(r.json["error"]["kind"], "not_usable", "{r:?}");
    assert!(!lab.path("ws/made").exists(), "a pending version ran");
    let refusal = lab
        .audit()
        .into_iter()
        .rev()
        .find(|r| r["op"] == "resolve" && r["skill"] == "maker")
        .expect("the refusal is audited");
    assert_eq!(refusal["decision"], "deny", "{refusal}");

    // Positive control: approved at a terminal, the same version runs.
    lab.approve("maker");
    assert_eq!(state(&lab, "maker"), "usable");
    let r = lab.run(&["maker", "--workspace", &ws]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(lab.path("ws/made").exists());
    let approved = lab
        .audit()
        .into_iter()
        .find(|r| r["op"] == "approve" && r["decision"] == "allow")
        .expect("the approval is audited");
    assert_eq!(approved["skill"], "maker", "{approved}");
}

/// Without a controlling terminal (a pipe, an agent's tool call), or with the wrong name
/// typed, nothing is approved.
#[test]
fn approval_needs_a_terminal_and_the_typed_name() {
    let lab = Lab::new();
    install_maker(&lab, "maker");
    // `setsid`: a new session has no controlling terminal, whatever the test runner has.
    let out = Command::new("setsid")
        .args([super::lab::BIN, "approve", "maker", "--json"])
        .env("SKILLCELL_HOME", lab.home.path())
        .stdin(Stdio::piped())
        .output()
        .expect("setsid");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"]["kind"], "no_terminal", "{v}");
    assert_eq!(state(&lab, "maker"), "pending");

    // At a terminal, but the confirmation typed is not the skill's name.
    let line = format!("{} approve maker", super::lab::BIN);
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("SKILLCELL_HOME", lab.home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().expect("stdin").write_all(b"yes\n")?;
            c.wait_with_output()
        })
        .expect("script");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(state(&lab, "maker"), "pending");
    let r = lab.run(&["maker", "--workspace", &lab.s("ws")]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(!lab.path("ws/made").exists());
}

/// Someone who can write the registry marks a version usable without approving it, or points
/// an approval at another tree: the run is refused before anything starts.
#[test]
fn a_usable_mark_without_a_matching_approval_is_refused() {
    let lab = Lab::new();
    install_maker(&lab, "forged");
    let db = lab.home.path().join("registry/registry.db");
    let conn = rusqlite::Connection::open(&db).expect("registry");
    conn.execute("UPDATE versions SET state = 'usable'", [])
        .expect("forge");
    drop(conn);
    let ws = lab.s("ws");
    let r = lab.run(&["forged", "--workspace", &ws]);
    assert_eq!(r.code, 125, "{r:?}");
    assert_eq!(r.json["error"]["kind"], "not_approved", "{r:?}");
    assert!(!lab.path("ws/made").exists());

    // Approved for real (positive control), then the approval is pointed at another tree.
    let conn = rusqlite::Connection::open(&db).expect("registry");
    conn.execute("UPDATE versions SET state = 'pending'", [])
        .expect("reset");
    drop(conn);
    lab.approve("forged");
    let r = lab.run(&["forged", "--workspace", &ws]);
    assert_eq!(r.code, 0, "{r:?}");
    std::fs::remove_file(lab.path("ws/made")).expect("rm");
    let conn = rusqlite::Connection::open(&db).expect("registry");
    conn.execute(
        "UPDATE approvals SET tree_hash = '0000000000000000000000000000000000000000000000000000000000000000'",
        [],
    )
    .expect("forge");
    drop(conn);
    let r = lab.run(&["forged", "--workspace", &ws]);
    assert_eq!(r.code, 125, "{r:?}");
    assert_eq!(r.json["error"]["kind"], "tampered", "{r:?}");
    assert!(!lab.path("ws/made").exists());
}

/// After approval, any change to the stored tree (the entry script, a helper module, SKILL.md,
/// a planted `.pyc`) refuses the run as tampered before anything starts; the file the skill
/// would create stays absent. Positive control: with the approved bytes back, it runs.
#[test]
fn tampering_after_approval_refuses_the_run() {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new();
    lab.install(
        "approved-maker",
        &["skillcell.entry: main.py", "skillcell.fs.write: $WORKSPACE"],
        &[
            ("main.py", "import helper\nhelper.make()\n"),
            (
                "helper.py",
                "import os\ndef make():\n    open(os.path.join(os.environ['SKILLCELL_PATH_WORKSPACE'], 'made'), 'w').write('x')\n",
            ),
        ],
    );
    let ws = lab.s("ws");
    let tree = super::fs::store_tree_with(&lab, "helper.py", "def make");
    let writable = |p: &std::path::Path| {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    writable(&tree);
    let run_is_refused = |what: &str| {
        let r = lab.run(&["approved-maker", "--workspace", &ws]);
        assert_eq!(r.code, 125, "{what}: {r:?}");
        assert_eq!(r.json["error"]["kind"], "tampered", "{what}: {r:?}");
        assert!(!lab.path("ws/made").exists(), "{what}: the skill ran");
    };
    for file in ["main.py", "helper.py", "SKILL.md"] {
        let path = tree.join(file);
        let original = fs::read(&path).expect("read");
        writable(&path);
        let mut changed = original.clone();
        changed.extend_from_slice(b"\n# changed\n");
        fs::write(&path, &changed).expect("tamper");
        run_is_refused(file);
        fs::write(&path, &original).expect("restore");
    }
    let cache = tree.join("__pycache__");
    fs::create_dir_all(&cache).expect("mkdir");
    fs::write(cache.join("helper.cpython-311.pyc"), b"\x00planted").expect("plant");
    run_is_refused("a planted .pyc");
    fs::remove_dir_all(&cache).expect("unplant");

    // Positive control: the approved bytes again.
    let r = lab.run(&["approved-maker", "--workspace", &ws]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(lab.path("ws/made").exists());
}
