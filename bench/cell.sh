#!/usr/bin/env bash
# The cell's start-up cost, side by side in one run (hyperfine, whole-process timing):
# bare exec, skillcell's cell, bwrap with comparable flags, and a bare `unshare` of the same
# namespaces, around /bin/true and around `python3 -I -S -c pass`.
#
#   bash bench/cell.sh            # 200 runs each; writes bench/results/cell.md
#   RUNS=50 bash bench/cell.sh
#
# Needs root (or unprivileged user namespaces and a delegated cgroup), hyperfine and bwrap
# (installed from Debian's packages when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-200}"

install_missing() {
    local missing=()
    command -v hyperfine >/dev/null || missing+=(hyperfine)
    command -v bwrap >/dev/null || missing+=(bubblewrap)
    if ((${#missing[@]})); then
        echo "installing ${missing[*]}" >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
install_missing

cargo build --release --locked -q --example cell_exec -p skillcell-executor
CELL="$PWD/target/release/examples/cell_exec"
export CELL_EXEC_CACHE="$PWD/target/bench-cache"
mkdir -p "$CELL_EXEC_CACHE" bench/results

# The real interpreter (pyenv shims are scripts) and its prefix.
PY="$(python3 -I -S -c 'import sys; print(sys.executable)')"
PY="$(readlink -f "$PY")"
PREFIX="$(python3 -I -S -c 'import sys; print(sys.base_prefix)')"

# What peers run: bwrap with every namespace, /usr read-only, fresh /proc, /dev and /tmp.
BWRAP=(bwrap --unshare-all --die-with-parent --new-session
    --ro-bind /usr /usr --symlink usr/lib64 /lib64 --symlink usr/lib /lib --symlink usr/bin /bin
    --proc /proc --dev /dev --tmpfs /tmp)
case "$PREFIX" in /usr | /usr/*) ;; *) BWRAP+=(--ro-bind "$PREFIX" "$PREFIX") ;; esac
UNSHARE=(unshare --user --map-user=1000 --map-group=1000 --mount --pid --fork --net --ipc
    --uts --cgroup)

# Warm the discovery caches so the runs measure the cell, not discovery.
"$CELL" /bin/true
"$CELL" --python -I -S -c pass

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$OUT/true.json" \
    -n bare "/bin/true" \
    -n unshare "${UNSHARE[*]} /bin/true" \
    -n bwrap "${BWRAP[*]} /bin/true" \
    -n skillcell "$CELL /bin/true" >&2
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$OUT/python.json" \
    -n bare "$PY -I -S -c pass" \
    -n unshare "${UNSHARE[*]} $PY -I -S -c pass" \
    -n bwrap "${BWRAP[*]} $PY -I -S -c pass" \
    -n skillcell "$CELL --python -I -S -c pass" >&2

python3 - "$OUT" "$RUNS" <<'PY' | tee bench/results/cell.md
import json, platform, subprocess, sys, datetime, os
out, runs = sys.argv[1], sys.argv[2]
def load(name):
    data = json.load(open(os.path.join(out, name + ".json")))["results"]
    return {r["command"]: r for r in data}
t, p = load("true"), load("python")
ms = lambda r: r["median"] * 1000
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# Cell start-up, side by side\n")
print(f"{datetime.date.today()}, {platform.node() and 'this machine'}: {cpu}, {os.cpu_count()} cores, "
      f"Linux {platform.release()}; hyperfine, {runs} runs each after 10 warm-ups; medians.\n")
print("| around | bare | unshare (same namespaces) | bwrap --unshare-all | skillcell cell |")
print("| --- | --- | --- | --- | --- |")
for label, r in (("/bin/true", t), ("python3 -I -S -c pass", p)):
    print(f"| `{label}` | {ms(r['bare']):.2f} ms | {ms(r['unshare']):.2f} ms | {ms(r['bwrap']):.2f} ms | {ms(r['skillcell']):.2f} ms |")
sc, bw, un = ms(t["skillcell"]), ms(t["bwrap"]), ms(t["unshare"])
added = ms(p["skillcell"]) - ms(p["bare"])
print()
print(f"- skillcell / bwrap around /bin/true: **{sc / bw:.2f}×** (goal ≤ 0.6×)")
print(f"- skillcell / bare unshare around /bin/true: **{sc / un:.2f}×** (goal ≤ 1.2×)")
print(f"- cold Python in the cell: bare python **+ {added:.2f} ms** (goal ≤ + 2 ms)")
print()
print("The skillcell column is `crates/executor/examples/cell_exec`: every layer of a real run "
      "(user, mount, pid, net, ipc, uts and cgroup namespaces; pivot_root into a tmpfs with the "
      "interpreter's files bound one by one; Landlock; seccomp; capabilities dropped; rlimits; a "
      "cgroup per run, created and removed), without the registry lookup and tree re-hash of "
      "`skillcell run`.")
PY
