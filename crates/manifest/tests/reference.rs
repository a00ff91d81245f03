//! Every SKILL.md skillcell accepts must stay valid for the Agent Skills reference validator
//! (`agentskills validate`, from the skills-ref package). The test runs the real validator; it
//! fails, never skips, when the validator is not installed (`scripts/test.sh` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cases::{cases, fixture_root};

/// The validator: `$SKILLCELL_AGENTSKILLS`, else `.venv-test/bin/agentskills` at the
/// workspace root.
pub fn validator() -> PathBuf {
    if let Some(p) = std::env::var_os("SKILLCELL_AGENTSKILLS") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join(".venv-test/bin/agentskills");
    assert!(
        p.exists(),
        "the Agent Skills reference validator is not installed at {}; run scripts/test.sh (it installs skills-ref into .venv-test) or set SKILLCELL_AGENTSKILLS",
        p.display()
    );
    p
}

pub fn reference_accepts(dir: &Path) -> Result<(), String> {
    let out = Command::new(validator())
        .arg("validate")
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run the validator: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn every_accepted_fixture_passes_the_reference_validator() {
    let mut failures = Vec::new();
    for dir in cases("good") {
        if let Err(e) = reference_accepts(&dir) {
            failures.push(format!("{}: {e}", dir.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reference_validator_is_real_and_refuses() {
    // Positive control: the validator does refuse what the spec forbids.
    let dir = fixture_root().join("bad/unknown-field");
    assert!(reference_accepts(&dir).is_err());
}

#[test]
fn accepted_examples_pass_the_reference_validator() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/skills");
    let mut n = 0;
    for entry in std::fs::read_dir(&examples).expect("examples/skills") {
        let dir = entry.expect("entry").path();
        skillcell_manifest::load_dir(&dir)
            .unwrap_or_else(|r| panic!("{} refused by skillcell:\n{r}", dir.display()));
        reference_accepts(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        n += 1;
    }
    assert!(n >= 4, "expected at least four example skills, found {n}");
}
