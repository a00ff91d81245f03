//! `skillcell new NAME`: a spec-valid skill with a commented contract.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use skillcell_types::{NameError, SkillName};

/// Why a scaffold could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("invalid skill name: {0}")]
    Name(#[from] NameError),
    #[error("{0} already exists; choose another name or remove it")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Writes `parent/NAME/` with SKILL.md and scripts/main.py. The contract keys are present as
/// YAML comments, so the new skill starts default-blind until its author opts in.
pub fn scaffold(parent: &Path, name: &str) -> Result<PathBuf, ScaffoldError> {
    let name = SkillName::new(name)?;
    let dir = parent.join(name.as_str());
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    let scripts = dir.join("scripts");
    fs::create_dir_all(&scripts).map_err(io(&scripts))?;
    let skill_md = dir.join("SKILL.md");
    fs::write(&skill_md, skill_md_text(&name)).map_err(io(&skill_md))?;
    let main = scripts.join("main.py");
    fs::write(&main, MAIN_PY).map_err(io(&main))?;
    fs::set_permissions(&main, fs::Permissions::from_mode(0o755)).map_err(io(&main))?;
    Ok(dir)
}

fn skill_md_text(name: &SkillName) -> String {
    format!(
        r#"---
name: {name}
description: Describe what {name} does and when an agent should use it (one or two sentences, at most 1024 characters).
license: Apache-2.0
metadata:
  skillcell.entry: scripts/main.py
  # The sandbox contract. Everything not declared is denied; uncomment what the skill needs.
  # Grammar and examples: docs/contract.md.
  #
  # skillcell.runtime: python3                      # python3, bash, sh, node or wasm
  # skillcell.fs.read: /usr/share/dict $INPUT       # absolute paths or caller placeholders
  # skillcell.fs.write: $WORKSPACE                  # read-write; $NAME is supplied at run time
  # skillcell.network: api.example.com:443          # host[:port], *.example.com, IP literals
  # skillcell.env: EXAMPLE_UNITS                    # caller variables passed in by name
  # skillcell.exec: git                             # programs besides the interpreter
  # skillcell.limits: memory=128M cpu=5s wall=20s pids=16 fsize=10M output=1M
  # skillcell.calls: other-skill                    # skills this one may call
---

# {name}

Explain to the agent, step by step, how to use this skill.

```bash
python3 scripts/main.py --help
```
"#
    )
}

const MAIN_PY: &str = r#"#!/usr/bin/env python3
"""Entry point of the skill: reads JSON on stdin, writes JSON on stdout."""
import json
import sys


def main():
    request = json.load(sys.stdin) if not sys.stdin.isatty() else {}
    json.dump({"ok": True, "echo": request}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
"#;
