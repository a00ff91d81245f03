//! Signatures through the binary: keygen, sign, trust, and the operator's policy requiring a
//! trusted signature. Judged from the host: the registry's rows, the store's trees, the audit
//! trail, never from what install prints alone.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use super::lab::Lab;

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Writes the skill folder `skills/NAME` with a helper module beside its entry.
fn write_skill(lab: &Lab, name: &str) -> std::path::PathBuf {
    let dir = lab.path("skills").join(name);
    fs::create_dir_all(dir.join("lib")).expect("mkdir");
    fs::write(
        dir.join("SKILL.md"),
        format!(
            "---\nname: {name}\ndescription: A signed test skill.\nmetadata:\n  skillcell.entry: main.py\n---\nBody.\n"
        ),
    )
    .expect("SKILL.md");
    fs::write(dir.join("main.py"), "import lib.helper\n").expect("main");
    fs::write(dir.join("lib/helper.py"), "print('helper')\n").expect("helper");
    dir
}

/// How many versions of `name` the registry holds.
fn versions(lab: &Lab, name: &str) -> i64 {
    let db = lab.home.path().join("registry/registry.db");
    if !db.exists() {
        return 0;
    }
    let conn = rusqlite::Connection::open(&db).expect("registry");
    conn.query_row(
        "SELECT COUNT(*) FROM versions WHERE skill = ?1",
        [name],
        |r| r.get(0),
    )
    .expect("count")
}

fn install(lab: &Lab, dir: &Path) -> Output {
    lab.cmd(&["install", "--json", dir.to_str().expect("utf8")])
        .output()
        .expect("install")
}

fn refusal_code(out: &Output) -> String {
    json(out)["error"]["detail"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_operator_can_require_a_trusted_signature() {
    let lab = Lab::new();
    let key = lab.path("author.key");
    let out = lab
        .cmd(&["keygen", "--json", "--out", key.to_str().expect("utf8")])
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{out:?}");
    let public = json(&out)["public_key"]
        .as_str()
        .expect("public key")
        .to_owned();
    assert!(public.starts_with("ed25519:"), "{public}");
    assert_eq!(
        fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );

    // Default policy: an unsigned skill installs, and the report says it is unsigned.
    let dir = write_skill(&lab, "unsigned-ok");
    let out = install(&lab, &dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["signature"]["status"], "unsigned");
    assert_eq!(versions(&lab, "unsigned-ok"), 1);

    let out = lab
        .cmd(&["policy", "set", "require-signature", "yes"])
        .output()
        .expect("policy");
    assert!(out.status.success(), "{out:?}");

    // Unsigned: refused, nothing recorded, the refusal audited.
    let dir = write_skill(&lab, "signed-skill");
    let out = install(&lab, &dir);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(refusal_code(&out), "signature_required", "{out:?}");
    assert_eq!(versions(&lab, "signed-skill"), 0);
    let denied = lab
        .audit()
        .into_iter()
        .rev()
        .find(|r| r["op"] == "install")
        .expect("install record");
    assert_eq!(denied["decision"], "deny", "{denied}");

    // Signed by a key nobody trusts: refused.
    let out = lab
        .cmd(&[
            "sign",
            dir.to_str().expect("utf8"),
            "--key",
            key.to_str().expect("utf8"),
        ])
        .output()
        .expect("sign");
    assert!(out.status.success(), "{out:?}");
    assert!(dir.join("skillcell.sig").exists());
    let out = install(&lab, &dir);
    assert_eq!(refusal_code(&out), "untrusted_signature", "{out:?}");
    assert_eq!(versions(&lab, "signed-skill"), 0);

    // Trusted (positive control): installed, pending, signer named.
    let out = lab
        .cmd(&["trust", "add", &public, "--label", "alice"])
        .output()
        .expect("trust");
    assert!(out.status.success(), "{out:?}");
    let out = install(&lab, &dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["signature"]["trusted_as"], "alice", "{out:?}");
    assert_eq!(versions(&lab, "signed-skill"), 1);

    // A helper module changed after signing: refused, the version count unchanged.
    fs::write(dir.join("lib/helper.py"), "import os; os.system('id')\n").expect("tamper");
    let out = install(&lab, &dir);
    assert_eq!(refusal_code(&out), "bad_signature", "{out:?}");
    assert_eq!(versions(&lab, "signed-skill"), 1);

    // Removing the key from the trust list makes the same signature untrusted again.
    fs::write(dir.join("lib/helper.py"), "print('helper v2')\n").expect("v2");
    lab.cmd(&[
        "sign",
        dir.to_str().expect("utf8"),
        "--key",
        key.to_str().expect("utf8"),
    ])
    .output()
    .expect("sign");
    let out = lab
        .cmd(&["trust", "remove", &public])
        .output()
        .expect("untrust");
    assert!(out.status.success(), "{out:?}");
    let out = install(&lab, &dir);
    assert_eq!(refusal_code(&out), "untrusted_signature", "{out:?}");
    assert_eq!(versions(&lab, "signed-skill"), 1);
}

/// A signature that does not cover the content refuses the install even when the operator
/// requires nothing: it is a sign the folder was changed after its author vouched for it.
#[test]
fn a_broken_signature_is_refused_whatever_the_policy() {
    let lab = Lab::new();
    let key = lab.path("author.key");
    lab.cmd(&["keygen", "--out", key.to_str().expect("utf8")])
        .output()
        .expect("keygen");
    let dir = write_skill(&lab, "resigned");
    lab.cmd(&[
        "sign",
        dir.to_str().expect("utf8"),
        "--key",
        key.to_str().expect("utf8"),
    ])
    .output()
    .expect("sign");
    // The contract widened after signing.
    let md = fs::read_to_string(dir.join("SKILL.md")).expect("md");
    fs::write(
        dir.join("SKILL.md"),
        md.replace(
            "  skillcell.entry",
            "  skillcell.network: evil.example:443\n  skillcell.entry",
        ),
    )
    .expect("widen");
    let out = install(&lab, &dir);
    assert_eq!(refusal_code(&out), "bad_signature", "{out:?}");
    assert_eq!(versions(&lab, "resigned"), 0);
    // Positive control: re-signed, it installs.
    lab.cmd(&[
        "sign",
        dir.to_str().expect("utf8"),
        "--key",
        key.to_str().expect("utf8"),
    ])
    .output()
    .expect("sign");
    let out = install(&lab, &dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["signature"]["status"], "valid", "{out:?}");
    assert_eq!(versions(&lab, "resigned"), 1);
}
