#!/usr/bin/env bash
# Builds skillcell and runs its main job on an example skill: check the kernel, lint the skill,
# install it into a content-addressed store, show what it will be able to do, verify the store
# and the audit trail. The data dir is ./.skillcell-demo unless SKILLCELL_HOME is set.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cc >/dev/null 2>&1 || {
  echo "== installing a C compiler (SQLite is built in)"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq build-essential
  else sudo apt-get update -qq && sudo apt-get install -y -qq build-essential; fi
}
echo "== building skillcell"
cargo build --release --locked -p skillcell-cli
sc() { echo; echo "\$ skillcell $*"; ./target/release/skillcell "$@"; }

export SKILLCELL_HOME="${SKILLCELL_HOME:-$PWD/.skillcell-demo}"
skill=examples/skills/weather-forecast
sc doctor || true
sc lint "$skill"
sc install "$skill"
sc install examples/skills/json-stats
sc list
sc show weather-forecast
sc verify
sc audit --last 5
sc audit verify
