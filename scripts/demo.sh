#!/usr/bin/env bash
# Builds skillcell and runs its main job on example skills: check the kernel, lint a skill,
# install skills into a content-addressed store, approve them, show what they will be able to do, run them in
# fresh cells (a JSON tool; a skill writing into a workspace; a network skill through the egress
# proxy), verify the store and the audit
# trail. The data dir is ./.skillcell-demo unless SKILLCELL_HOME is set.
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
sc install examples/skills/workspace-notes
# A Rust tool compiled to wasm32-wasip1: compiled once more, for this engine, at install.
sc install examples/skills/wasm-wordcount
# A new version is pending until a person approves it at a terminal (the confirmation is the
# skill's name, typed). Without a terminal here, the demo types it on a pseudo-terminal itself.
approve() {
  echo; echo "\$ skillcell approve $1"
  if { : </dev/tty; } 2>/dev/null; then ./target/release/skillcell approve "$1"
  else printf '%s\n' "$1" | script -qec "./target/release/skillcell approve $1" /dev/null; fi
}
for s in weather-forecast json-stats workspace-notes wasm-wordcount; do approve "$s"; done
sc list
sc show weather-forecast
sc run json-stats --input '{"values": [3, 1, 4, 1, 5, 9, 2, 6]}'
workspace="$PWD/.skillcell-demo-workspace"
mkdir -p "$workspace"
sc run workspace-notes --workspace "$workspace" -- add "Ran a skill in a cell"
sc run workspace-notes --workspace "$workspace" -- list --last 3
sc run json-stats --json --input '{"values": [1, 2]}' | head -c 600; echo " …"
# In-process in the WASM cell: the input is written straight into the module's memory.
sc run wasm-wordcount --input '"the bytes that run are the bytes that were approved"'
echo
# Its only way out is the egress proxy, which allows api.open-meteo.com:443 and nothing else
# (without internet access the proxy reports that the name could not be resolved).
sc run weather-forecast -- --lat 52.52 --lon 13.41 --days 2 || true
sc verify
sc audit --last 8
sc audit verify
