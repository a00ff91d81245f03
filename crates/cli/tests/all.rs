//! End-to-end tests of the `skillcell` binary: exit codes, JSON output, and what lands on disk.

mod cell;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Cli {
    home: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().expect("tmp"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_skillcell"))
            .args(args)
            .env("SKILLCELL_HOME", self.home.path())
            .current_dir(root())
            .output()
            .expect("run skillcell")
    }

    fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }
}

#[test]
fn lint_exit_codes_and_json_follow_the_fixtures() {
    let cli = Cli::new();
    let fixtures = root().join("crates/manifest/tests/fixtures");
    for entry in fs::read_dir(fixtures.join("bad")).expect("bad") {
        let dir = entry.expect("e").path();
        let want = fs::read_to_string(dir.join("expect")).expect("expect");
        let code = want.split('\t').next().expect("code");
        let (rc, v) = cli.json(&["lint", dir.to_str().expect("utf8")]);
        assert_eq!(rc, 3, "{}", dir.display());
        assert_eq!(v["ok"], false);
        let codes: Vec<&str> = v["diagnostics"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|d| d["code"].as_str())
            .collect();
        assert!(codes.contains(&code), "{}: {codes:?}", dir.display());
    }
    let (rc, v) = cli.json(&["lint", "examples/skills/weather-forecast"]);
    assert_eq!(rc, 0);
    assert_eq!(v["contract"]["network"][0]["port"], 443);
}

#[test]
fn refusals_never_print_raw_control_characters() {
    let cli = Cli::new();
    let dir = root().join("crates/manifest/tests/fixtures/bad/control-in-name");
    let out = cli.run(&["lint", dir.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(3));
    let shown = String::from_utf8_lossy(&out.stderr);
    assert!(shown.contains("U+001B"), "{shown}");
    assert!(
        !shown.contains('\u{1b}'),
        "raw ESC reached the terminal: {shown:?}"
    );
}

#[test]
fn install_list_show_and_not_found() {
    let cli = Cli::new();
    let (rc, v) = cli.json(&["install", "examples/skills/markdown-toc"]);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["contract"]["profile"], "default-blind");
    let tree = v["tree_hash"].as_str().expect("hash").to_owned();
    assert!(
        cli.home
            .path()
            .join("store/trees")
            .join(&tree)
            .join("SKILL.md")
            .is_file()
    );

    let (rc, v) = cli.json(&["list"]);
    assert_eq!(rc, 0);
    assert_eq!(v[0]["name"], "markdown-toc");
    assert_eq!(v[0]["current"]["state"], "pending");
    let out = cell::lab::approve_on_a_terminal(cli.home.path(), "markdown-toc", &[]);
    assert!(out.status.success(), "{out:?}");
    let (_, v) = cli.json(&["list"]);
    assert_eq!(v[0]["current"]["state"], "usable");

    let (rc, v) = cli.json(&["show", "markdown-toc"]);
    assert_eq!(rc, 0);
    assert_eq!(v["versions"][0]["tree_hash"], tree.as_str());

    let (rc, v) = cli.json(&["show", "nope"]);
    assert_eq!(rc, 4);
    assert_eq!(v["error"]["kind"], "not_found");
    assert_eq!(cli.run(&["remove", "nope"]).status.code(), Some(4));
    assert_eq!(
        cli.run(&["rollback", "markdown-toc"]).status.code(),
        Some(3)
    );
}

#[test]
fn verify_and_audit_verify_report_tampering_with_exit_5() {
    let cli = Cli::new();
    let (_, v) = cli.json(&["install", "examples/skills/json-stats"]);
    let tree = cli
        .home
        .path()
        .join("store/trees")
        .join(v["tree_hash"].as_str().expect("hash"));
    // Positive controls first.
    assert_eq!(cli.run(&["verify"]).status.code(), Some(0));
    assert_eq!(cli.run(&["audit", "verify"]).status.code(), Some(0));

    let f = tree.join("SKILL.md");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::write(&f, "tampered").expect("write");
    let (rc, v) = cli.json(&["verify"]);
    assert_eq!(rc, 5, "{v}");
    assert_eq!(v["versions"][0]["outcome"], "quarantined");
    let (_, v) = cli.json(&["list"]);
    assert_eq!(v[0]["current"]["state"], "quarantined");

    let log = cli.home.path().join("audit/audit.log");
    let text = fs::read_to_string(&log).expect("log");
    fs::write(
        &log,
        text.replacen("\"decision\":\"deny\"", "\"decision\":\"allow\"", 1),
    )
    .expect("edit");
    let (rc, v) = cli.json(&["audit", "verify"]);
    assert_eq!(rc, 5, "{v}");
    assert_eq!(v["ok"], false);

    // Regression from review: deleting the whole trail (log and head) read as "empty, ok".
    fs::remove_file(&log).expect("rm log");
    fs::remove_file(cli.home.path().join("audit/audit.head")).expect("rm head");
    let (rc, v) = cli.json(&["audit", "verify"]);
    assert_eq!(rc, 5, "{v}");
    assert_eq!(v["problems"][0]["code"], "anchor_missing");
}

#[test]
fn audit_filters() {
    let cli = Cli::new();
    cli.run(&["install", "examples/skills/json-stats"]);
    cli.run(&["install", "examples/skills/markdown-toc"]);
    cli.run(&["remove", "json-stats"]);
    let (_, v) = cli.json(&["audit", "--skill", "json-stats"]);
    let ops: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["op"].as_str())
        .collect();
    assert_eq!(ops, ["install", "remove"]);
    let (_, v) = cli.json(&["audit", "--last", "1"]);
    assert_eq!(v.as_array().expect("array").len(), 1);
    assert_eq!(v[0]["op"], "remove");
}

#[test]
fn new_scaffolds_a_skill_that_lints_and_passes_the_reference_validator() {
    let cli = Cli::new();
    let parent = tempfile::tempdir().expect("tmp");
    let (rc, v) = cli.json(&[
        "new",
        "my-tool",
        "--dir",
        parent.path().to_str().expect("utf8"),
    ]);
    assert_eq!(rc, 0, "{v}");
    let dir = parent.path().join("my-tool");
    let (rc, _) = cli.json(&["lint", dir.to_str().expect("utf8")]);
    assert_eq!(rc, 0);
    let validator = std::env::var_os("SKILLCELL_AGENTSKILLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-test/bin/agentskills"));
    assert!(
        validator.exists(),
        "reference validator missing at {}; run scripts/test.sh",
        validator.display()
    );
    let out = Command::new(&validator)
        .arg("validate")
        .arg(&dir)
        .output()
        .expect("validator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (rc, _) = cli.json(&[
        "new",
        "my-tool",
        "--dir",
        parent.path().to_str().expect("utf8"),
    ]);
    assert_eq!(rc, 3, "refuses to overwrite");
    let (rc, _) = cli.json(&["new", "Bad_Name"]);
    assert_eq!(rc, 3);
}

#[test]
fn doctor_exit_code_matches_its_checks() {
    let cli = Cli::new();
    let (rc, v) = cli.json(&["doctor"]);
    let statuses: Vec<&str> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["status"].as_str())
        .collect();
    assert_eq!(statuses.len(), 9);
    // The last two run a real cell and a module in the WASM cell; on the machines the tests
    // run on they must pass.
    let cell = &v["checks"][7];
    assert_eq!(cell["id"], "cell");
    assert_eq!(cell["status"], "ok", "{cell}");
    let wasm = &v["checks"][8];
    assert_eq!(wasm["id"], "wasm");
    assert_eq!(wasm["status"], "ok", "{wasm}");
    let want = if statuses.contains(&"fail") { 6 } else { 0 };
    assert_eq!(rc, want, "{v}");
    assert!(
        ["unified", "hybrid", "legacy", "none"]
            .contains(&v["cgroups"]["mode"].as_str().expect("mode"))
    );
}

#[test]
fn a_trail_rebuilt_by_the_executor_is_caught_by_the_registry_anchors() {
    // Regression from review: the executor may write the audit dir, so it can drop the
    // developer's records and rebuild a clean chain; the registry history (which it cannot
    // write) keeps the hash of every developer record.
    use skillcell_audit::{AuditLog, Role};
    let cli = Cli::new();
    cli.run(&["install", "examples/skills/json-stats"]);
    assert_eq!(cli.run(&["audit", "verify"]).status.code(), Some(0));

    let log = AuditLog::new(cli.home.path().join("audit"));
    let mut records = log.read_all().expect("read");
    let mut prev = skillcell_types::Digest::from_bytes([0; 32]);
    for (i, r) in records.iter_mut().enumerate() {
        r.event.actor.role = Role::Executor;
        r.event.op = "resolve".into();
        r.seq = i as u64 + 1;
        r.prev = prev;
        r.hash = r.computed_hash();
        prev = r.hash;
    }
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("json") + "\n")
        .collect();
    fs::write(log.log_path(), text).expect("rewrite");
    fs::write(
        cli.home.path().join("audit/audit.head"),
        format!("{} {}\n", records.len(), prev),
    )
    .expect("head");
    let (rc, v) = cli.json(&["audit", "verify"]);
    assert_eq!(rc, 5, "{v}");
    let codes: Vec<&str> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["code"].as_str())
        .collect();
    assert_eq!(codes, ["anchor_missing"], "the chain itself is clean: {v}");
}
