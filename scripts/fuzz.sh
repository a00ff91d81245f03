#!/usr/bin/env bash
# Fuzzes one target: scripts/fuzz.sh [skill_md|archive] [SECONDS]  (defaults: skill_md 600).
# Seeds the corpus from the test fixtures and examples; installs cargo-fuzz if missing.
# cargo-fuzz needs nightly compiler flags: the nightly toolchain when rustup has one, else the
# stable compiler with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-skill_md}"
seconds="${2:-600}"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  export RUSTUP_TOOLCHAIN=nightly
else
  export RUSTC_BOOTSTRAP=1
fi

corpus="fuzz/corpus/$target"
mkdir -p "$corpus"
case "$target" in
  skill_md)
    i=0
    for f in crates/manifest/tests/fixtures/*/*/SKILL.md examples/skills/*/SKILL.md; do
      i=$((i + 1))
      cp "$f" "$corpus/seed-$i"
    done
    max_len=70000
    ;;
  archive)
    python3 - "$corpus" <<'PY'
import os, sys, zipfile
out = sys.argv[1]
for name in sorted(os.listdir("examples/skills")):
    src = os.path.join("examples/skills", name)
    for prefix in (name + "/", ""):
        path = os.path.join(out, f"seed-{name}-{'dir' if prefix else 'flat'}.zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for root, _, files in os.walk(src):
                for f in sorted(files):
                    full = os.path.join(root, f)
                    z.write(full, prefix + os.path.relpath(full, src))
PY
    max_len=65536
    ;;
  *) echo "unknown target $target (skill_md or archive)" >&2; exit 2 ;;
esac

cd fuzz
cargo fuzz run "$target" "corpus/$target" -- \
  -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1
