#!/usr/bin/env bash
# The WASM cell's costs, side by side in one run: the cost of one invocation (the run alone, and
# with the policy check, the spec and the audit record around it), and 10 MiB of input through
# the zero-copy tool ABI against stdin + JSON.
#
#   bash bench/wasm.sh                      # writes bench/results/wasm.md
#   N=5000 RUNS=10 bash bench/wasm.sh       # fewer samples (see the example's docs for knobs)
#
# Builds crates/wasm/examples/wasm_bench.rs in release (that example only) and runs it. The
# audit records go to a temporary directory under ${TMPDIR:-/tmp}: its file system decides what
# an fsync costs.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -q --example wasm_bench -p skillcell-wasm
BIN="$PWD/target/release/examples/wasm_bench"
mkdir -p bench/results

OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
"$BIN" >"$OUT"

cpu="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
tmp="${TMPDIR:-/tmp}"
fs="$(findmnt -no FSTYPE -T "$tmp" 2>/dev/null || stat -f -c %T "$tmp" 2>/dev/null || echo "?")"
dev="$(df --output=source "$tmp" 2>/dev/null | tail -n1 || echo '?')"
{
    echo "# WASM cell: invocation and large input, side by side"
    echo
    echo "$(date -u +%F), this machine: ${cpu:-?}, $(nproc) cores, Linux $(uname -r);" \
        "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates/wasm 2>/dev/null || echo ' (crates/wasm modified)')."
    echo "wasmtime $(grep -A1 '^name = "wasmtime"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p' | head -n1)," \
        "Cranelift, the engine as \`WasmEngine::new()\` configures it (pooling allocator, fuel, epoch"
    echo "interruption every 10 ms); release build (thin LTO). Audit trail on $fs ($dev), one fsync per"
    echo "record and one per head update. Source: \`crates/wasm/examples/wasm_bench.rs\`."
    echo
    grep -v '^GOAL ' "$OUT"
    echo
    echo "## Goals"
    echo
    sed -n 's/^GOAL /- /p' "$OUT"
    echo
    echo "The \"full\" row is what the executor does around \`engine.run\` per call, minus what is"
    echo "not in this crate: the registry lookup, the tree re-hash and the artifact's digest check"
    echo "(\`skillcell run\` does them per call; a resident host would do them once per loaded"
    echo "module). Its audit record is handed to a writer thread; the writer's own pace, one"
    echo "fsynced record at a time, is the sustained rate above, so a steady stream of invocations"
    echo "that must each be on disk runs at the batch figure, not at the hand-off latency."
    echo
    echo "Reading the counters: when an instance ends, the pooling allocator either releases its"
    echo "linear memory (\`madvise\`: the next run's memory starts unmapped, every 4 KiB page it"
    echo "touches faults in again, and a release made while another thread of the process is on"
    echo "another CPU, such as the audit writer, needs a TLB shootdown, an interrupt to that CPU)"
    echo "or zeroes it with \`memset\` and keeps it mapped. \`WasmEngine\` keeps the first 16 MiB"
    echo "of each slot's memory (and 1 MiB of its table and async stack) resident, so runs below"
    echo "that size show no faults and no shootdowns; the JSON path's 20 MiB still faults beyond it."
} | tee bench/results/wasm.md
