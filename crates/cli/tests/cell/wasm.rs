//! The WASM cell, attacked through the real `skillcell` binary: a module installed under a
//! minimal contract, run in-process in wasmtime, and judged from the host (files on disk, the
//! store, the audit trail, a loopback test server's request log), never from what the guest
//! prints alone. Every attack has a positive control.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, sleep};
use std::time::Duration;

use serde_json::Value;

use super::lab::{Lab, Run, SECRET};

// ---------------------------------------------------------------------------------------------
// Modules (WAT text: `skillcell install` accepts it and compiles it to an artifact)

const WASI: &str = "wasi_snapshot_preview1";

/// Imports and helpers most modules share: `$print(ptr, len)` writes to stdout; `$arg1`
/// returns a pointer to `argv[1]` (its length in `$alen`), or exits with 99 when there is none.
/// Memory: 0..64 scratch, 256.. the argv pointers, 1024.. the argv strings, 8192.. the heap of
/// `skillcell_alloc` (a bump allocator that grows the memory).
fn prelude() -> String {
    format!(
        r#"
  (import "{WASI}" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "{WASI}" "proc_exit" (func $exit (param i32)))
  (import "{WASI}" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "{WASI}" "args_get" (func $args_get (param i32 i32) (result i32)))"#
    )
}

const HELPERS: &str = r#"
  (memory (export "memory") 1)
  (global $alen (mut i32) (i32.const 0))
  (global $next (mut i32) (i32.const 8192))
  (func $print (param $p i32) (param $n i32)
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $arg1 (result i32) (local $p i32) (local $n i32)
    (drop (call $args_sizes (i32.const 16) (i32.const 20)))
    (if (i32.lt_u (i32.load (i32.const 16)) (i32.const 2)) (then (call $exit (i32.const 99))))
    (drop (call $args_get (i32.const 256) (i32.const 1024)))
    (local.set $p (i32.load (i32.const 260)))
    (block $done (loop $l
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))
    (global.set $alen (local.get $n))
    (local.get $p))
  (func (export "skillcell_alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (if (i32.gt_u (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get $n) (i32.const 16)) (i32.const 1))) (i32.const -1))
        (then (return (i32.const 0))))))
    (local.get $p))"#;

/// Logs `message` through `skillcell::log`, prints `said` and exits with `code`.
fn hello(message: &str, said: &str, code: i32) -> String {
    format!(
        r#"(module{prelude}
  (import "skillcell" "log" (func $log (param i32 i32 i32) (result i32)))
{HELPERS}
  (data (i32.const 2048) "{said}")
  (data (i32.const 3072) "{message}")
  (func (export "_start")
    (drop (call $log (i32.const 1) (i32.const 3072) (i32.const {mlen})))
    (call $print (i32.const 2048) (i32.const {slen}))
    (call $exit (i32.const {code}))))"#,
        prelude = prelude(),
        mlen = message.len(),
        // The WAT escape `\\n` is one byte.
        slen = said.replace("\\n", "\n").len(),
    )
}

/// `http_fetch(argv[1])` with no body: exits with `100 - code` when it fails (-1 → 101), else
/// prints `status=NNN\n` and the response body.
fn fetcher() -> String {
    format!(
        r#"(module{prelude}
  (import "skillcell" "http_fetch" (func $fetch (param i32 i32 i32 i32 i32) (result i32)))
{HELPERS}
  (data (i32.const 64) "status=")
  (func (export "_start") (local $req i32) (local $s i32)
    (local.set $req (call $arg1))
    (local.set $s (call $fetch (local.get $req) (global.get $alen) (i32.const 0) (i32.const 0) (i32.const 32)))
    (if (i32.lt_s (local.get $s) (i32.const 0))
      (then (call $exit (i32.sub (i32.const 100) (local.get $s)))))
    (i32.store8 (i32.const 71) (i32.add (i32.const 48) (i32.div_u (local.get $s) (i32.const 100))))
    (i32.store8 (i32.const 72) (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $s) (i32.const 10)) (i32.const 10))))
    (i32.store8 (i32.const 73) (i32.add (i32.const 48) (i32.rem_u (local.get $s) (i32.const 10))))
    (i32.store8 (i32.const 74) (i32.const 10))
    (call $print (i32.const 64) (i32.const 11))
    (call $print (i32.load (i32.const 32)) (i32.load (i32.const 36)))))"#,
        prelude = prelude(),
    )
}

/// Opens `argv[1]` beneath the preopen at fd 4 (`/mnt/workspace`; fd 3 is `/skill`) with
/// O_CREAT|O_TRUNC, following symlinks, and writes `written-by-wasm` into it. Exits with 0 when
/// both worked, the WASI errno (1..=76) when the open failed, 120 when the write did (WASI
/// exit codes must be below 126).
fn creator() -> String {
    format!(
        r#"(module{prelude}
  (import "{WASI}" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
{HELPERS}
  (data (i32.const 2048) "written-by-wasm")
  (func (export "_start") (local $path i32) (local $e i32)
    (local.set $path (call $arg1))
    (local.set $e (call $open (i32.const 4) (i32.const 1) (local.get $path) (global.get $alen)
      (i32.const 9) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 40)))
    (if (local.get $e) (then (call $exit (local.get $e))))
    (i32.store (i32.const 0) (i32.const 2048))
    (i32.store (i32.const 4) (i32.const 15))
    (local.set $e (call $fd_write (i32.load (i32.const 40)) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (local.get $e) (then (call $exit (i32.const 120))))))"#,
        prelude = prelude(),
    )
}

/// Prints every environment variable it has (NUL-separated) and exits with their count.
fn env_reader() -> String {
    format!(
        r#"(module{prelude}
  (import "{WASI}" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "{WASI}" "environ_get" (func $env_get (param i32 i32) (result i32)))
{HELPERS}
  (func (export "_start")
    (if (call $env_sizes (i32.const 16) (i32.const 20)) (then (call $exit (i32.const 98))))
    (if (call $env_get (i32.const 256) (i32.const 1024)) (then (call $exit (i32.const 97))))
    (call $print (i32.const 1024) (i32.load (i32.const 20)))
    (call $exit (i32.load (i32.const 16)))))"#,
        prelude = prelude(),
    )
}

/// Spins forever when it has an argument; otherwise counts to 1000 and exits with 0.
fn spinner() -> String {
    format!(
        r#"(module{prelude}
{HELPERS}
  (func (export "_start") (local $i i32)
    (drop (call $args_sizes (i32.const 16) (i32.const 20)))
    (if (i32.ge_u (i32.load (i32.const 16)) (i32.const 2))
      (then (loop $forever (br $forever))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const 1000)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))))"#,
        prelude = prelude(),
    )
}

/// A tool (docs/wasm-abi.md, from crates/wasm/tests/wa.rs): a bump allocator; `skillcell_run`
/// upper-cases its input in place, logs one record and returns the same range as its output.
const UPPER_TOOL: &str = r#"(module
  (import "skillcell" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (data (i32.const 16) "tool ran")
  (func (export "skillcell_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (if (i32.gt_u (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get $n) (i32.const 16)) (i32.const 1))) (i32.const -1))
        (then (return (i32.const 0))))))
    (local.get $p))
  (func (export "skillcell_run") (param $p i32) (param $n i32) (result i64)
    (local $i i32) (local $c i32)
    (drop (call $log (i32.const 1) (i32.const 16) (i32.const 8)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
      (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
        (then (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n)))))"#;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Installs a WASM skill whose entry is `NAME.wat`, plus `metadata` lines.
fn install_wasm(lab: &Lab, name: &str, metadata: &[&str], wat: &str) {
    let entry = format!("skillcell.entry: {name}.wat");
    let file = format!("{name}.wat");
    let mut m = vec!["skillcell.runtime: wasm", entry.as_str()];
    m.extend_from_slice(metadata);
    lab.install(name, &m, &[(file.as_str(), wat)]);
}

/// `skillcell run --json ARGS` with extra variables in the CLI's environment.
fn run_with_env(lab: &Lab, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec!["run", "--json"];
    all.extend_from_slice(args);
    let mut cmd = lab.cmd(&all);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The guest's stdout, as `run --json` reports it.
fn guest_stdout(r: &Run) -> &str {
    r.json["stdout"].as_str().unwrap_or_default()
}

/// The records of the audit trail with `op` about `skill`.
fn records(lab: &Lab, op: &str, skill: &str) -> Vec<Value> {
    lab.audit()
        .into_iter()
        .filter(|r| r["op"] == op && r["skill"] == skill)
        .collect()
}

/// Every `.cwasm` artifact in the store.
fn artifacts(lab: &Lab) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(engines) = fs::read_dir(lab.home.path().join("store/wasm")) else {
        return found;
    };
    for e in engines.flatten() {
        for f in fs::read_dir(e.path()).expect("engine dir").flatten() {
            if f.path().extension().is_some_and(|x| x == "cwasm") {
                found.push(f.path());
            }
        }
    }
    found.sort();
    found
}

/// The installed tree of the current version of `skill`.
fn tree_of(lab: &Lab, skill: &str) -> PathBuf {
    let out = lab.cmd(&["show", skill, "--json"]).output().expect("show");
    let v: Value = serde_json::from_slice(&out.stdout).expect("show --json");
    let hash = v["versions"][0]["tree_hash"].as_str().expect("tree hash");
    lab.home.path().join("store/trees").join(hash)
}

fn make_writable(p: &Path) {
    let mode = fs::metadata(p).expect("stat").permissions().mode();
    fs::set_permissions(p, fs::Permissions::from_mode(mode | 0o200)).expect("chmod u+w");
}

/// How many `log` records about `skill` carry `message`.
fn logs_saying(lab: &Lab, skill: &str, message: &str) -> usize {
    records(lab, "log", skill)
        .iter()
        .filter(|r| r["reason"] == message)
        .count()
}

/// Asserts `r` was refused as tampered before the guest ran: exit 125, `error.kind` in --json,
/// and no new `log` record of the guest (`logs_before` of them with `message` before the run).
fn assert_tampered(lab: &Lab, r: &Run, skill: &str, message: &str, logs_before: usize) {
    assert_eq!(r.code, 125, "{r:?}");
    assert_eq!(r.json["error"]["kind"], "tampered", "{r:?}");
    assert_eq!(
        logs_saying(lab, skill, message),
        logs_before,
        "the guest ran although its module was tampered with"
    );
}

/// The list of entries of a directory, sorted, for before/after comparisons.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// A loopback HTTP server that records every request

/// One request the [`Server`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    host: Option<String>,
}

/// A listener on 127.0.0.1 (random port) that answers every request with 200 and a body
/// naming the request, and records the method, target and `Host` header of each.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || serve(conn, &s));
                    }
                    Err(_) => sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Requests received so far, after a grace for ones still in flight.
    fn seen(&self) -> Vec<Seen> {
        sleep(Duration::from_millis(150));
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request head, records it and answers it (the connection is closed after).
fn serve(mut conn: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 << 10 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let host = lines.find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.trim().to_owned())
    });
    let body = format!("skillcell-wasm-test-server {method} {target}\n");
    seen.lock().expect("lock").push(Seen {
        method,
        target,
        host,
    });
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

/// A UDP socket named as the proxy's only nameserver: any DNS query lands here.
struct DnsCanary(UdpSocket);

impl DnsCanary {
    fn start() -> Self {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS canary");
        s.set_nonblocking(true).expect("nonblocking");
        Self(s)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().expect("addr").port()
    }

    /// Whether any datagram arrived.
    fn heard_anything(&self) -> bool {
        let mut buf = [0u8; 512];
        match self.0.recv_from(&mut buf) {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("DNS canary: {e}"),
        }
    }
}

/// Writes the operator's `egress.conf`: the DNS canary as the only nameserver, and `map` lines
/// (docs/egress.md: a map is the operator's statement of trust, dialed as written, loopback
/// included, and only for requests a contract allows by name).
fn egress_conf(lab: &Lab, dns: &DnsCanary, maps: &[(&str, &str)]) {
    let mut text = format!("nameserver 127.0.0.1:{}\n", dns.port());
    for (name, addr) in maps {
        text.push_str(&format!("map {name} {addr}\n"));
    }
    let dir = lab.home.path().join("config");
    fs::create_dir_all(&dir).expect("config dir");
    fs::write(dir.join("egress.conf"), text).expect("egress.conf");
}

// ---------------------------------------------------------------------------------------------
// The cases

/// A WASI command runs from its artifact: its stdout is passed through, `proc_exit`'s code is
/// the CLI's exit code, and the trail has the run (runtime wasm, loaded from the artifact) and
/// the record the module logged.
#[test]
fn a_wasm_command_runs_from_its_artifact_and_is_audited() {
    let lab = Lab::new();
    let message = "hello-log from the wasm e2e test";
    install_wasm(&lab, "hello", &[], &hello(message, "hello from wasm\\n", 7));
    assert_eq!(artifacts(&lab).len(), 1, "install compiled no artifact");

    // Without --json: the guest's stdout goes straight to ours, its exit code is ours.
    let out = lab.cmd(&["run", "hello"]).output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from wasm\n");

    let r = lab.run(&["hello"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert_eq!(r.json["exit_code"], 7, "{r:?}");
    assert_eq!(guest_stdout(&r), "hello from wasm\n");
    assert_eq!(r.outcome(), ("exited", 7), "{r:?}");

    let run = lab.last_run_record("hello");
    assert_eq!(run["decision"], "allow", "{run}");
    assert_eq!(run["details"]["runtime"], "wasm", "{run}");
    assert_eq!(run["details"]["wasm"]["loaded_from"], "artifact", "{run}");
    assert_eq!(run["details"]["wasm"]["kind"], "command", "{run}");
    assert_eq!(run["details"]["wasm"]["logs"], 1, "{run}");
    let logs = records(&lab, "log", "hello");
    assert_eq!(logs.len(), 2, "one log record per run: {logs:?}");
    let last = logs.last().expect("a log record");
    assert_eq!(last["reason"], message, "{last}");
    assert_eq!(last["decision"], "allow", "{last}");
    assert_eq!(last["details"]["level"], 1, "{last}");
    assert_eq!(last["details"]["run"], run["details"]["run"], "{last}");
    assert!(!r.channels().contains(SECRET));
}

/// The compiled artifact is native code the run loads as is: bytes that are not the ones
/// recorded at install (another module's artifact, one byte flipped, no file at all) are
/// refused as tampered before anything runs. Positive controls: the untouched install, and the
/// original bytes put back.
#[test]
fn a_tampered_artifact_is_refused() {
    let lab = Lab::new();
    let message = "hello-log: the approved module ran";
    install_wasm(&lab, "hello", &[], &hello(message, "approved\\n", 7));
    let mine = artifacts(&lab);
    assert_eq!(mine.len(), 1, "{mine:?}");
    let artifact = mine[0].clone();
    let other_message = "other-log: a different module ran";
    install_wasm(
        &lab,
        "other",
        &[],
        &hello(other_message, "other module\\n", 3),
    );
    let other = artifacts(&lab)
        .into_iter()
        .find(|p| *p != artifact)
        .expect("the other module's artifact");
    let mode = fs::metadata(&artifact).expect("stat").permissions().mode();
    assert_eq!(
        mode & 0o222,
        0,
        "the artifact is installed writable: {mode:o}"
    );

    // Positive control: untouched, it runs from its artifact.
    let r = lab.run(&["hello"]);
    assert_eq!((r.code, guest_stdout(&r)), (7, "approved\n"), "{r:?}");
    assert_eq!(
        lab.last_run_record("hello")["details"]["wasm"]["loaded_from"],
        "artifact"
    );
    let original = fs::read(&artifact).expect("artifact");
    make_writable(&artifact);

    // Another module's valid artifact in its place.
    fs::write(&artifact, fs::read(&other).expect("other artifact")).expect("overwrite");
    let r = lab.run(&["hello"]);
    // Neither module ran: no log record of the other module's, nor a new one of hello's.
    assert_tampered(&lab, &r, "hello", other_message, 0);
    assert_eq!(
        logs_saying(&lab, "hello", message),
        1,
        "only the control logged"
    );
    assert!(!guest_stdout(&r).contains("other module"), "{r:?}");
    let rec = lab.last_run_record("hello");
    assert_eq!(rec["decision"], "deny", "{rec}");
    assert_eq!(rec["details"]["code"], "tampered", "{rec}");

    // Positive control: the original bytes put back run again.
    fs::write(&artifact, &original).expect("restore");
    let r = lab.run(&["hello"]);
    assert_eq!((r.code, guest_stdout(&r)), (7, "approved\n"), "{r:?}");

    // One byte flipped in the middle (it could be machine code).
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    fs::write(&artifact, &flipped).expect("flip");
    let before = logs_saying(&lab, "hello", message);
    let r = lab.run(&["hello"]);
    assert_tampered(&lab, &r, "hello", message, before);
    let rec = lab.last_run_record("hello");
    assert_eq!(
        (&rec["decision"], &rec["details"]["code"]),
        (&Value::from("deny"), &Value::from("tampered")),
        "{rec}"
    );

    // The artifact removed: refused, not silently compiled from the source again.
    fs::remove_file(&artifact).expect("rm");
    let r = lab.run(&["hello"]);
    assert_tampered(&lab, &r, "hello", message, before);
    assert!(
        !artifact.exists(),
        "the run wrote an artifact into the store"
    );
}

/// The module file in the installed tree replaced after install (with a valid module that
/// would exit 0): the gate's tree hash refuses the run as tampered before anything runs.
/// Positive control: the untouched install runs.
#[test]
fn a_module_changed_in_the_store_tree_is_refused() {
    let lab = Lab::new();
    let message = "hello-log: the approved module ran";
    install_wasm(&lab, "hello", &[], &hello(message, "approved\\n", 7));
    let r = lab.run(&["hello"]);
    assert_eq!((r.code, guest_stdout(&r)), (7, "approved\n"), "{r:?}");

    let tree = tree_of(&lab, "hello");
    let module = tree.join("hello.wat");
    assert!(module.is_file(), "{}", module.display());
    make_writable(&tree);
    make_writable(&module);
    let evil = "evil-log: the replaced module ran";
    fs::write(&module, hello(evil, "replaced\\n", 0)).expect("replace the module");

    let r = lab.run(&["hello"]);
    assert_tampered(&lab, &r, "hello", evil, 0);
    assert!(!r.stdout.contains("replaced"), "{r:?}");
    let resolve = records(&lab, "resolve", "hello");
    let last = resolve.last().expect("a resolve record");
    assert_eq!(last["decision"], "deny", "{last}");
    assert_eq!(last["details"]["code"], "tampered", "{last}");
    assert_eq!(
        records(&lab, "log", "hello").len(),
        1,
        "only the control logged"
    );
}

/// A module importing `skillcell::http_fetch` without a `skillcell.network` grant is refused at
/// install, with a message naming the grant, and nothing is installed (no version, no tree, no
/// artifact). Positive control: with the grant it installs.
#[test]
fn http_fetch_without_a_network_grant_is_refused_at_install() {
    let lab = Lab::new();
    let dir = lab.path("skills").join("fetcher");
    fs::create_dir_all(&dir).expect("mkdir");
    let md = |network: &str| {
        format!(
            "---\nname: fetcher\ndescription: Fetches over skillcell::http_fetch.\nmetadata:\n  skillcell.runtime: wasm\n  skillcell.entry: fetcher.wat\n{network}---\n"
        )
    };
    fs::write(dir.join("SKILL.md"), md("")).expect("SKILL.md");
    fs::write(dir.join("fetcher.wat"), fetcher()).expect("module");
    let out = lab
        .cmd(&["install", dir.to_str().expect("utf8")])
        .output()
        .expect("install");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "installed without a grant: {said}");
    assert!(
        said.contains("skillcell.network") && said.contains("http_fetch"),
        "the refusal does not name the grant: {said}"
    );
    let list = lab.cmd(&["list", "--json"]).output().expect("list");
    let list: Value = serde_json::from_slice(&list.stdout).expect("list --json");
    assert_eq!(list, Value::Array(Vec::new()), "something was installed");
    let trees = lab.home.path().join("store/trees");
    assert!(
        !trees.exists() || listing(&trees).is_empty(),
        "a tree was left in the store: {:?}",
        listing(&trees)
    );
    assert_eq!(artifacts(&lab), Vec::<PathBuf>::new());
    let r = lab.run(&["fetcher", "--", "GET http://svc.test:80/x"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert_eq!(r.json["error"]["kind"], "unknown_skill", "{r:?}");

    // Positive control: with the grant it installs and compiles.
    fs::write(
        dir.join("SKILL.md"),
        md("  skillcell.network: svc.test:8080\n"),
    )
    .expect("SKILL.md");
    let out = lab
        .cmd(&["install", dir.to_str().expect("utf8")])
        .output()
        .expect("install");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(artifacts(&lab).len(), 1);
}

/// `http_fetch` end to end: the contract names `svc.test` on the test server's port and the
/// operator maps `svc.test` (and `evil.test`) to 127.0.0.1. A fetch of the declared name
/// reaches the server once, with the right `Host`, and is audited as allowed. The undeclared
/// name and the server's bare address get -1 from the host function: the server sees nothing
/// new, no DNS query leaves, and each refusal is an `egress` deny record.
#[test]
fn http_fetch_reaches_only_the_declared_host() {
    let lab = Lab::new();
    let server = Server::start();
    let dns = DnsCanary::start();
    egress_conf(
        &lab,
        &dns,
        &[("svc.test", "127.0.0.1"), ("evil.test", "127.0.0.1")],
    );
    let net = format!("skillcell.network: svc.test:{}", server.port);
    install_wasm(&lab, "fetcher", &[&net], &fetcher());

    // Positive control: the declared name.
    let good = format!("GET http://svc.test:{}/x", server.port);
    let r = lab.run(&["fetcher", "--", &good]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        guest_stdout(&r),
        "status=200\nskillcell-wasm-test-server GET /x\n",
        "{r:?}"
    );
    let seen = server.seen();
    let want = Seen {
        method: "GET".into(),
        target: "/x".into(),
        host: Some(format!("svc.test:{}", server.port)),
    };
    assert_eq!(
        seen,
        vec![want],
        "the server did not see exactly the one request"
    );
    let egress = records(&lab, "egress", "fetcher");
    assert_eq!(egress.len(), 1, "{egress:?}");
    let d = &egress[0]["details"];
    assert_eq!(egress[0]["decision"], "allow", "{egress:?}");
    assert_eq!(
        (&d["host"], &d["port"]),
        (&Value::from("svc.test"), &Value::from(server.port))
    );
    assert_eq!(d["method"], "GET");
    let run = lab.last_run_record("fetcher");
    assert_eq!(run["details"]["egress"]["connections"], 1, "{run}");

    // The undeclared name, mapped to the same server, and the server's bare address.
    for (target, host) in [
        (
            format!("GET http://evil.test:{}/y", server.port),
            "evil.test",
        ),
        (
            format!("GET http://127.0.0.1:{}/z", server.port),
            "127.0.0.1",
        ),
    ] {
        let before = records(&lab, "egress", "fetcher").len();
        let r = lab.run(&["fetcher", "--", &target]);
        assert_eq!(
            r.code, 101,
            "http_fetch did not return -1 for {target}: {r:?}"
        );
        assert_eq!(server.seen().len(), 1, "{target} reached the server");
        let egress = records(&lab, "egress", "fetcher");
        let new = &egress[before..];
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(new[0]["decision"], "deny", "{new:?}");
        assert_eq!(new[0]["details"]["host"], host, "{new:?}");
        assert_eq!(new[0]["details"]["port"], server.port, "{new:?}");
        let code = new[0]["details"]["code"].as_str().unwrap_or_default();
        assert!(code.starts_with("undeclared_"), "{new:?}");
        let denials: Vec<&str> = r.report()["denials"]
            .as_array()
            .expect("denials")
            .iter()
            .filter_map(|d| d["code"].as_str())
            .collect();
        assert!(
            denials.contains(&format!("network_{code}").as_str()),
            "the run report misses the refusal: {denials:?}"
        );
    }
    assert!(!dns.heard_anything(), "a DNS query left the host");
}

/// `$WORKSPACE` grants are preopens: a write grant takes a new file (positive control); a
/// symlink planted in the workspace, to a canary dir or file outside it, cannot be followed to
/// write there; a read grant takes nothing.
#[test]
fn workspace_grants_confine_the_module() {
    let lab = Lab::new();
    let ws = lab.path("ws");
    let canary = lab.path("canary");
    std::os::unix::fs::symlink(&canary, ws.join("link")).expect("symlink dir");
    std::os::unix::fs::symlink(canary.join("secret.txt"), ws.join("secret-link"))
        .expect("symlink file");
    install_wasm(
        &lab,
        "ws-rw",
        &["skillcell.fs.write: $WORKSPACE"],
        &creator(),
    );
    install_wasm(
        &lab,
        "ws-ro",
        &["skillcell.fs.read: $WORKSPACE"],
        &creator(),
    );
    let w = lab.s("ws");
    let canary_before = listing(&canary);

    // Positive control: the write grant takes a new file, the host sees it.
    let r = lab.run(&["ws-rw", "--workspace", &w, "--", "made-inside"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        fs::read_to_string(ws.join("made-inside")).expect("the guest's file"),
        "written-by-wasm"
    );

    for escape in [
        "link/escape",
        "secret-link",
        "../escape",
        "link/../../escape",
    ] {
        let r = lab.run(&["ws-rw", "--workspace", &w, "--", escape]);
        assert_ne!(r.code, 0, "{escape}: {r:?}");
        assert_eq!(r.outcome().0, "exited", "{escape}: {r:?}");
    }
    assert_eq!(
        listing(&canary),
        canary_before,
        "the guest wrote into the canary dir"
    );
    assert_eq!(
        fs::read_to_string(canary.join("secret.txt")).expect("canary"),
        SECRET,
        "the guest wrote through the planted link"
    );
    assert!(!lab.path("escape").exists());
    assert!(
        !lab.dir
            .path()
            .parent()
            .expect("tmp")
            .join("escape")
            .exists()
    );

    // A read grant takes nothing.
    let before = listing(&ws);
    let r = lab.run(&["ws-ro", "--workspace", &w, "--", "made-ro"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert_eq!(r.outcome().0, "exited", "{r:?}");
    assert_eq!(listing(&ws), before, "a read grant took a new file");
    let r = lab.run(&["ws-ro", "--workspace", &w, "--", "made-inside"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert_eq!(
        fs::read_to_string(ws.join("made-inside")).expect("still there"),
        "written-by-wasm"
    );
}

/// A read-only grant nested in a write grant would be writable through the parent preopen
/// (one WASI capability each): the run is refused before the guest starts, with the grant
/// named, and nothing is written under the read-only grant. Positive control: the same skill
/// without the nested grant writes there.
#[test]
fn a_read_only_grant_inside_a_write_grant_is_refused() {
    let lab = Lab::new();
    let ws = lab.path("ws");
    fs::create_dir_all(ws.join("ro")).expect("ro");
    install_wasm(
        &lab,
        "nested",
        &[
            "skillcell.fs.write: $WORKSPACE",
            "skillcell.fs.read: $WORKSPACE/ro",
        ],
        &creator(),
    );
    install_wasm(
        &lab,
        "flat",
        &["skillcell.fs.write: $WORKSPACE"],
        &creator(),
    );
    let w = lab.s("ws");
    let r = lab.run(&["nested", "--workspace", &w, "--", "ro/made"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert_eq!(r.json["error"]["kind"], "bad_grant", "{r:?}");
    let said = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        said.contains("/mnt/workspace/ro"),
        "the grant is not named: {said}"
    );
    assert!(
        !ws.join("ro/made").exists(),
        "the guest wrote under the read-only grant"
    );
    let refusals = records(&lab, "run", "nested");
    assert!(
        refusals
            .iter()
            .any(|r| r["decision"] == "deny" && r["details"]["code"] == "bad_grant"),
        "the refusal is not audited: {refusals:?}"
    );
    // Positive control: granted as a whole, the same path takes the file.
    let r = lab.run(&["flat", "--workspace", &w, "--", "ro/made"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(ws.join("ro/made").exists());
}

/// SIGINT to `skillcell run` while a WASM guest computes (120 s of CPU and wall granted)
/// stops the guest: the run ends, its record says `interrupted` (denied), and nothing of the
/// limits ended it. The guest signals the host that it runs by creating a file in its grant.
#[test]
fn an_interrupted_wasm_run_stops_and_is_audited() {
    let lab = Lab::new();
    let ws = lab.path("ws");
    let wat = format!(
        r#"(module
  (import "{WASI}" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "{WASI}" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "started")
  (func (export "_start")
    (if (call $open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 7)
          (i32.const 1) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 200))
      (then (call $exit (i32.const 3))))
    (loop $l (br $l))))"#
    );
    install_wasm(
        &lab,
        "busy",
        &[
            "skillcell.fs.write: $WORKSPACE",
            "skillcell.limits: cpu=120s wall=120s",
        ],
        &wat,
    );
    let mut child = lab
        .cmd(&["run", "--json", "busy", "--workspace", &lab.s("ws")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let waited = std::time::Instant::now();
    while !ws.join("started").exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the guest never started"
        );
        sleep(Duration::from_millis(10));
    }
    let st = std::process::Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(134), "{status}");
    let run = lab.last_run_record("busy");
    assert_eq!(run["decision"], "deny", "{run}");
    let report = &run["details"]["report"];
    let denials: Vec<&str> = report["denials"]
        .as_array()
        .expect("denials")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert_eq!(denials, ["interrupted"], "{run}");
    assert_eq!(report["limit_hit"], Value::Null, "{run}");
    assert!(
        report["usage"]["wall_ms"].as_u64().expect("wall") < 120_000,
        "{run}"
    );
}

/// A FIFO with no writer in a read grant (the host's user, or any process outside skillcell,
/// can make one): the guest's `path_open` blocks in `open(2)` in a host thread nothing can
/// cancel. The run must still end at its wall clock and `skillcell run` must exit, not wait
/// for that thread; judged by the process exiting within a host-side limit. Positive control:
/// a regular file in the FIFO's place is opened (exit 0).
#[test]
fn a_fifo_in_a_read_grant_cannot_hang_the_process() {
    let lab = Lab::new();
    let ws = lab.path("ws");
    // Opens "fifo" beneath the workspace preopen (fd 4) for reading; exits with the errno.
    let wat = format!(
        r#"(module
  (import "{WASI}" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "{WASI}" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "fifo")
  (func (export "_start")
    (call $exit (call $open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 4)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200)))))"#
    );
    install_wasm(
        &lab,
        "fifo-reader",
        &["skillcell.fs.read: $WORKSPACE", "skillcell.limits: wall=1s"],
        &wat,
    );
    let made = std::process::Command::new("mkfifo")
        .arg(ws.join("fifo"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let run_within = |limit: Duration| {
        let mut child = lab
            .cmd(&["run", "--json", "fifo-reader", "--workspace", &lab.s("ws")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let waited = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if waited.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("skillcell run did not exit within {limit:?}");
            }
            sleep(Duration::from_millis(20));
        }
    };
    let status = run_within(Duration::from_secs(30));
    assert_ne!(status.code(), Some(0), "{status}");
    let run = lab.last_run_record("fifo-reader");
    assert_eq!(run["details"]["report"]["limit_hit"], "wall", "{run}");

    fs::remove_file(ws.join("fifo")).expect("rm fifo");
    fs::write(ws.join("fifo"), "data").expect("a file in its place");
    let status = run_within(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status}");
}

/// A variable in the caller's environment is invisible unless the contract declares it: the
/// module counts 0 variables; declared, it sees exactly it (positive control).
#[test]
fn undeclared_environment_variables_are_invisible() {
    let lab = Lab::new();
    let token = "env-canary-4b1e9f";
    install_wasm(&lab, "env-blind", &[], &env_reader());
    install_wasm(
        &lab,
        "env-declared",
        &["skillcell.env: SECRET_TOKEN"],
        &env_reader(),
    );
    let env = [("SECRET_TOKEN", token)];

    let r = run_with_env(&lab, &["env-blind"], &env);
    assert_eq!(r.code, 0, "the module saw variables: {r:?}");
    assert_eq!(guest_stdout(&r), "", "{r:?}");
    assert!(
        !r.channels().contains(token) && !r.channels().contains(SECRET),
        "{r:?}"
    );

    let r = run_with_env(&lab, &["env-declared"], &env);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(guest_stdout(&r), format!("SECRET_TOKEN={token}\0"), "{r:?}");
    assert!(!r.channels().contains(SECRET), "{r:?}");
}

/// `skillcell.limits: cpu=200ms` is fuel: an infinite loop traps (exit 134), the report says
/// the cpu limit stopped it, and the trail's run record says trapped. Positive control: a short
/// loop under the same contract exits 0.
#[test]
fn an_infinite_loop_is_stopped_by_the_cpu_limit() {
    let lab = Lab::new();
    install_wasm(
        &lab,
        "spin",
        &["skillcell.limits: cpu=200ms wall=20s"],
        &spinner(),
    );
    let r = lab.run(&["spin"]);
    assert_eq!((r.code, r.outcome().0), (0, "exited"), "{r:?}");

    let r = lab.run(&["spin", "--", "forever"]);
    assert_eq!(r.code, 134, "{r:?}");
    assert_eq!(r.outcome().0, "trapped", "{r:?}");
    assert_eq!(r.limit_hit(), Some("cpu"), "{r:?}");
    let denials: Vec<&str> = r.report()["denials"]
        .as_array()
        .expect("denials")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert!(denials.contains(&"cpu_limit"), "{denials:?}");
    assert!(
        r.report()["usage"]["wall_ms"].as_u64().expect("wall") < 20_000,
        "the wall clock, not fuel, ended it: {r:?}"
    );
    let run = lab.last_run_record("spin");
    assert!(
        run["reason"]
            .as_str()
            .expect("reason")
            .starts_with("trapped"),
        "{run}"
    );
    assert_eq!(
        run["details"]["report"]["outcome"]["kind"], "trapped",
        "{run}"
    );
    assert_eq!(run["details"]["report"]["limit_hit"], "cpu", "{run}");
    assert_eq!(run["details"]["wasm"]["fuel_used"], 200_000_000u64, "{run}");
}

/// A tool (`skillcell_alloc` + `skillcell_run`) gets `--input` in its memory and returns its
/// output from there.
#[test]
fn a_tool_gets_its_input_in_memory() {
    let lab = Lab::new();
    install_wasm(&lab, "upper", &[], UPPER_TOOL);
    let r = lab.run(&["upper", "--input", "\"hello\""]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(guest_stdout(&r), "\"HELLO\"", "{r:?}");
    let out = lab
        .cmd(&["run", "upper", "--input", "\"hello, wasm\""])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\"HELLO, WASM\"");
    let run = lab.last_run_record("upper");
    assert_eq!(run["details"]["wasm"]["kind"], "tool", "{run}");
    assert_eq!(run["details"]["wasm"]["loaded_from"], "artifact", "{run}");
    assert_eq!(run["details"]["stdin_bytes"], 13, "{run}");
    assert_eq!(logs_saying(&lab, "upper", "tool ran"), 2);
}

/// The Rust example (examples/skills/wasm-wordcount, built for wasm32-wasip1) installs, gets
/// its artifact, and counts what the host counts.
#[test]
fn the_rust_example_counts_its_input() {
    let lab = Lab::new();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/skills/wasm-wordcount");
    let out = lab
        .cmd(&["install", example.to_str().expect("utf8")])
        .output()
        .expect("install");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.approve("wasm-wordcount");
    assert_eq!(artifacts(&lab).len(), 1);
    let input = "\"one two  three\\nfour\"";
    let r = run_with_env(&lab, &["wasm-wordcount", "--input", input], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got: Value = serde_json::from_str(guest_stdout(&r)).expect("JSON output");
    // The tool receives the --input bytes as they are (the JSON text).
    let lines = input.matches('\n').count();
    let words = input.split_ascii_whitespace().count();
    assert_eq!(
        got,
        serde_json::json!({"bytes": input.len(), "lines": lines, "words": words})
    );
    assert_eq!(
        records(&lab, "run", "wasm-wordcount")[0]["details"]["wasm"]["kind"],
        "tool"
    );
}
