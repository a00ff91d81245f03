#!/usr/bin/env bash
# The egress proxy's overhead against a direct connection to the same local server, side by
# side in one run: added latency per request and requests/s, keep-alive, CONNECT tunnel, a new
# connection per request, and several concurrent clients.
#
#   bash bench/egress.sh                     # writes bench/results/egress.md
#   ROUNDS=20 BATCH=500 bash bench/egress.sh # more samples (see the example's docs for knobs)
#
# Builds crates/egress/examples/proxy_bench.rs in release (that example only) and runs it.
# Everything is on loopback: no DNS (the proxy's operator map answers svc.test), no network.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -q --example proxy_bench -p skillcell-egress
BIN="$PWD/target/release/examples/proxy_bench"
mkdir -p bench/results

OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
"$BIN" >"$OUT"

cpu="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
{
    echo "# Egress proxy overhead, side by side"
    echo
    echo "$(date -u +%F), this machine: ${cpu:-?}, $(nproc) cores, Linux $(uname -r);" \
        "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates/egress 2>/dev/null || echo ' (crates/egress modified)')."
    echo "Server: hyper HTTP/1.1 on one thread, 13-byte body; proxy: \`skillcell_egress::Proxy\`"
    echo "(one thread, current-thread runtime), \`map svc.test 127.0.0.1\`, contract allowing"
    echo "\`svc.test:<port>\`, a recorder counting records; clients: blocking std threads, one write"
    echo "per request. All on loopback. Source: \`crates/egress/examples/proxy_bench.rs\`."
    echo
    cat "$OUT"
    echo
    echo "The proxy dials the server afresh for every plain-HTTP request (absolute URI), even on a"
    echo "keep-alive client connection; inside a CONNECT tunnel it only copies bytes. A new client"
    echo "connection adds the proxy's accept and the client's handshake on top."
    echo
    echo "One client's sequential latency is mostly the time to wake idle CPUs (on a VM especially:"
    echo "compare the lowest and highest round medians); the throughput table keeps the CPUs busy and"
    echo "shows the work per request more steadily (wall µs per request = 1 / req/s, all cores)."
} | tee bench/results/egress.md
