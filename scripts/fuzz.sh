#!/usr/bin/env bash
# Fuzzes one target: scripts/fuzz.sh [skill_md|archive|proxy_request] [SECONDS]
# (defaults: skill_md 600). Seeds the corpus from the test fixtures and examples (proxy_request:
# from a list of interesting requests below); installs cargo-fuzz if missing.
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
  proxy_request)
    # Interesting request heads (and host lines: the first line also goes to Host::parse):
    # each form, odd IP spellings, userinfo, IDNA, Host mismatches, pipelining, bodies.
    python3 - "$corpus" <<'PY'
import os, sys
out = sys.argv[1]
H = "\r\n"
def req(line, *headers, body=b""):
    return (line + H + "".join(h + H for h in headers) + H).encode() + body
seeds = [
    req("CONNECT api.test:443 HTTP/1.1", "Host: api.test:443"),
    req("CONNECT api.test:443 HTTP/1.1", "Host: api.test"),
    req("CONNECT api.test:443 HTTP/1.1", "Host: evil.test:443"),
    req("CONNECT api.test HTTP/1.1"),
    req("CONNECT [::ffff:127.0.0.1]:8080 HTTP/1.1"),
    req("CONNECT user:pw@api.test:443 HTTP/1.1"),
    req("CONNECT http://api.test:443/ HTTP/1.1"),
    req("CONNECT api.test:0443 HTTP/1.1", "Host: API.test.:443"),
    req("GET http://svc.test:8080/x?y=1 HTTP/1.1", "Host: svc.test:8080", "User-Agent: Python-urllib/3.12"),
    req("GET http://svc.test/ HTTP/1.1"),
    req("GET http://svc.test?q=1 HTTP/1.1"),
    req("GET HTTP://SVC.TEST:80/ HTTP/1.0", "Host: svc.test"),
    req("GET http://svc.test/ HTTP/1.1", "Host: svc.test:8080"),
    req("GET http://svc.test/ HTTP/1.1", "Host: svc.test", "Host: svc.test"),
    req("GET https://svc.test/ HTTP/1.1"),
    req("GET http://user@svc.test/ HTTP/1.1"),
    req("GET http://allowed.test:80@evil.test/ HTTP/1.1"),
    req("GET http://svc.test:/ HTTP/1.1"),
    req("GET /x HTTP/1.1", "Host: svc.test:8080"),
    req("GET /x HTTP/1.1"),
    req("OPTIONS * HTTP/1.1", "Host: svc.test"),
    req("GET //evil.test/x HTTP/1.1", "Host: svc.test"),
    req("GET http://2130706433/ HTTP/1.1"),
    req("GET http://0x7f.1:8080/ HTTP/1.1", "Host: 127.1:8080"),
    req("GET http://0177.0.0.1/ HTTP/1.1"),
    req("GET http://0251.0376.0251.0376/latest/meta-data/ HTTP/1.1"),
    req("GET http://[::ffff:7f00:1]/ HTTP/1.1"),
    req("GET http://[64:ff9b::a9fe:a9fe]/ HTTP/1.1"),
    req("GET http://[fe80::1%25eth0]/ HTTP/1.1"),
    req("GET http://127.0.0.1./ HTTP/1.1"),
    req("GET /x HTTP/1.1", "Host: \uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11"),
    req("GET http://xn--bcher-kva.example/ HTTP/1.1", "Host: B\u00dcCHER.example"),
    req("GET /x HTTP/1.1", "Host: b\u00fccher.example"),
    req("GET http://a..b/ HTTP/1.1"),
    req("GET http://-a.test/ HTTP/1.1"),
    req("GET http://a_b.test/ HTTP/1.1"),
    req("POST http://svc.test/u HTTP/1.1", "Content-Length: 5", body=b"hello")
        + req("GET http://evil.test/ HTTP/1.1"),
    req("GET http://svc.test/a HTTP/1.1") + req("GET http://svc.test/b HTTP/1.1", "Host: svc.test")
        + req("GET /c HTTP/1.1", "Host: evil.test"),
    req("POST /u HTTP/1.1", "Host: svc.test", "Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
    req("POST /u HTTP/1.1", "Host: svc.test", "Content-Length: 3", "Content-Length: 4", body=b"abcd"),
    b"\r\n\r\nGET http://svc.test/ HTTP/1.1\n\n",
    b"API.Example.COM.\napi.example.com:443\n",
    b"0x7f.1\n[::1]:8080\n",
    b"127.0.0.1\n[64:ff9b::7f00:1]\n",
    b"\xef\xbc\x91\xef\xbc\x92\xef\xbc\x97\xef\xbc\x8e\xef\xbc\x91\nb\xc3\xbccher.example:80\n",
]
for i, s in enumerate(seeds):
    with open(os.path.join(out, f"seed-{i:02}"), "wb") as f:
        f.write(s)
PY
    max_len=4096
    ;;
  *) echo "unknown target $target (skill_md, archive or proxy_request)" >&2; exit 2 ;;
esac

cd fuzz
cargo fuzz run "$target" "corpus/$target" -- \
  -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1
