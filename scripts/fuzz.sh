#!/usr/bin/env bash
# Fuzzes the SKILL.md parser: scripts/fuzz.sh [SECONDS] (default 600).
# Seeds the corpus from the test fixtures and examples; installs cargo-fuzz if missing.
# cargo-fuzz needs nightly compiler flags: the nightly toolchain when rustup has one, else the
# stable compiler with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  export RUSTUP_TOOLCHAIN=nightly
else
  export RUSTC_BOOTSTRAP=1
fi

corpus=fuzz/corpus/skill_md
mkdir -p "$corpus"
i=0
for f in crates/manifest/tests/fixtures/*/*/SKILL.md examples/skills/*/SKILL.md; do
  i=$((i + 1))
  cp "$f" "$corpus/seed-$i"
done

cd fuzz
cargo fuzz run skill_md "corpus/skill_md" -- \
  -max_total_time="$seconds" -max_len=70000 -print_final_stats=1
