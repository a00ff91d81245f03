#!/usr/bin/env bash
# Runs every test of skillcell, after installing what the tests need on a fresh Debian machine:
# a C compiler (SQLite is built in), Python 3 with venv, the Agent Skills reference validator
# (skills-ref, from PyPI) that every accepted SKILL.md is checked against, and what the cell's
# attack tests drive or inspect from the host: Node.js (a cell runtime), util-linux (unshare,
# nsenter, ipcmk, dmesg, su), iproute2 (ip), findutils, and for the egress tests curl, openssl
# (a test certificate) and Python's requests.
# Some tests need root (device nodes) and a kernel with Landlock and user namespaces; they fail
# loudly, never skip, when those are missing (`skillcell doctor` says why).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v mkfifo >/dev/null 2>&1 || missing+=(coreutils)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
for tool in unshare nsenter ipcmk dmesg; do
  command -v "$tool" >/dev/null 2>&1 || { missing+=(util-linux); break; }
done
command -v su >/dev/null 2>&1 || missing+=(util-linux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v find >/dev/null 2>&1 || missing+=(findutils)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x .venv-test/bin/agentskills ]; then
  echo "== installing the Agent Skills reference validator (skills-ref) into .venv-test"
  python3 -m venv .venv-test
  .venv-test/bin/pip install --quiet --disable-pip-version-check skills-ref==0.1.1
fi
export SKILLCELL_AGENTSKILLS="$PWD/.venv-test/bin/agentskills"

# The egress tests' positive control drives Python `requests` inside a cell, which runs the
# host's python3: it must be importable there.
if ! python3 -c 'import requests' >/dev/null 2>&1; then
  echo "== installing requests for the host's python3 (egress positive control)"
  python3 -m pip install --quiet --disable-pip-version-check requests \
    || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-requests
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
