//! Section WA of the security cases against the WASM cell, each with a positive control.
//! Effects are judged from the host (files in and outside the preopens, the run's outcome as
//! the engine reports it), never from what the guest prints.

use std::fs;
use std::path::Path;

use skillcell_wasm::{
    Grants, MAX_MODULE_BYTES, NoHost, Preopen, WasmEngine, WasmError, WasmLimitHit, WasmLimits,
    WasmOutcome, WasmReport, WasmSpec,
};

fn limits() -> WasmLimits {
    WasmLimits {
        memory_bytes: 16 << 20,
        table_elements: 10_000,
        fuel: 50_000_000,
        wall_ms: 5_000,
        output_bytes: 1 << 16,
    }
}

fn run(wat: &str, spec: WasmSpec) -> WasmReport {
    let engine = WasmEngine::new().expect("engine");
    let module = engine.compile(wat.as_bytes()).expect("compiles");
    let linked = engine.link(&module, Grants::default()).expect("links");
    engine
        .run(&linked, &spec, std::sync::Arc::new(NoHost))
        .expect("runs")
}

fn spec() -> WasmSpec {
    WasmSpec {
        args: vec!["skill.wasm".into()],
        limits: limits(),
        ..WasmSpec::default()
    }
}

fn limit_hit(r: &WasmReport) -> Option<WasmLimitHit> {
    match &r.outcome {
        WasmOutcome::Trapped { limit, .. } => *limit,
        WasmOutcome::Exited { .. } => None,
    }
}

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wasm\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

#[test]
fn a_wasi_command_runs_and_its_output_is_captured() {
    let r = run(HELLO, spec());
    assert_eq!(r.outcome, WasmOutcome::Exited { code: 0 });
    assert_eq!(r.stdout, b"hello from wasm\n");
}

#[test]
fn output_beyond_the_cap_is_counted_and_dropped() {
    let wat = HELLO.replace(
        "(drop (call $w",
        "(loop $l (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br_if $l (i32.lt_u (i32.load (i32.const 8)) (i32.const 0)))) (drop (call $w",
    );
    let mut s = spec();
    {
        let l = &mut s.limits;
        l.output_bytes = 4;
    }
    let r = run(&wat, s);
    assert_eq!(r.outcome, WasmOutcome::Exited { code: 0 });
    assert_eq!(r.stdout, b"hell");
    assert_eq!(r.stdout_bytes, 32);
}

#[test]
fn an_infinite_loop_is_stopped_by_fuel_and_by_the_wall_clock() {
    let wat = r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;
    let r = run(wat, spec());
    assert_eq!(limit_hit(&r), Some(WasmLimitHit::Fuel), "{r:?}");
    // With fuel to spare, the wall clock ends it.
    let mut s = spec();
    {
        let l = &mut s.limits;
        l.fuel = u64::MAX / 2;
        l.wall_ms = 300;
    }
    let r = run(wat, s);
    assert_eq!(limit_hit(&r), Some(WasmLimitHit::Wall), "{r:?}");
    assert!(r.wall_us < 3_000_000, "{r:?}");
}

/// `poll_oneoff` on a one-hour clock: a host call, not guest code; the deadline covers it.
#[test]
fn a_blocking_host_call_is_cut_at_the_wall_clock() {
    let wat = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; one clock subscription: tag 0 at 8, clock id 1 (monotonic) at 16, timeout at 24 (ns)
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (drop (call $p (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 512)))))"#;
    let mut s = spec();
    {
        let l = &mut s.limits;
        l.wall_ms = 300;
    }
    let r = run(wat, s);
    assert_eq!(limit_hit(&r), Some(WasmLimitHit::Wall), "{r:?}");
    assert!(r.wall_us < 3_000_000, "{r:?}");
    // Positive control: a short sleep completes.
    let short = wat.replace("3600000000000", "1000000");
    let r = run(&short, spec());
    assert_eq!(r.outcome, WasmOutcome::Exited { code: 0 }, "{r:?}");
}

/// Says "interrupted" once its flag is set (by another thread, as a signal watcher would).
#[derive(Default)]
struct Interruptible(std::sync::atomic::AtomicBool);

impl skillcell_wasm::HostCalls for Interruptible {
    fn log(&self, _level: i32, _message: &str) {}

    fn http_fetch(
        &self,
        _method: String,
        _url: String,
        _body: Vec<u8>,
    ) -> skillcell_wasm::host::BoxFuture<
        Result<skillcell_wasm::FetchResponse, skillcell_wasm::FetchError>,
    > {
        Box::pin(async { Err(skillcell_wasm::FetchError::Refused("test".into())) })
    }

    fn interrupted(&self) -> Option<String> {
        self.0
            .load(std::sync::atomic::Ordering::SeqCst)
            .then(|| "SIGINT".to_owned())
    }
}

/// The caller's interruption ends a computing guest and a guest waiting in a host call, long
/// before their limits (60 s of wall clock, fuel to spare), and the report says so.
#[test]
fn an_interruption_ends_the_run_computing_or_waiting() {
    let computing =
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;
    let waiting = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (drop (call $p (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 512)))))"#;
    let engine = WasmEngine::new().expect("engine");
    let mut s = spec();
    s.limits.fuel = u64::MAX / 2;
    s.limits.wall_ms = 60_000;
    for wat in [computing, waiting] {
        let module = engine.compile(wat.as_bytes()).expect("compiles");
        let linked = engine.link(&module, Grants::default()).expect("links");
        let host = std::sync::Arc::new(Interruptible::default());
        let flag = std::sync::Arc::clone(&host);
        let interrupter = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            flag.0.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let r = engine.run(&linked, &s, host).expect("runs");
        interrupter.join().expect("interrupter");
        assert_eq!(r.interrupted.as_deref(), Some("SIGINT"), "{r:?}");
        assert_eq!(limit_hit(&r), None, "{r:?}");
        assert!(
            matches!(&r.outcome, WasmOutcome::Trapped { message, .. } if message.contains("interrupted")),
            "{r:?}"
        );
    }
}

#[test]
fn memory_growth_stops_at_the_limit() {
    let wat = r#"(module (memory (export "memory") 1)
  (func (export "_start") (loop $l (drop (memory.grow (i32.const 16))) (br $l))))"#;
    let r = run(wat, spec());
    assert_eq!(limit_hit(&r), Some(WasmLimitHit::Memory), "{r:?}");
    // Positive control: growing within the limit works.
    let ok = r#"(module (memory (export "memory") 1)
  (func (export "_start") (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))))"#;
    assert_eq!(run(ok, spec()).outcome, WasmOutcome::Exited { code: 0 });
}

#[test]
fn huge_tables_are_refused() {
    let grow = r#"(module (memory (export "memory") 1) (table 1 funcref)
  (func (export "_start") (drop (table.grow 0 (ref.null func) (i32.const 100000000)))))"#;
    // Fuel to spare: the table limit, not the CPU budget, must be what stops it.
    let mut s = spec();
    {
        let l = &mut s.limits;
        l.fuel = u64::MAX / 2;
    }
    let r = run(grow, s);
    assert_eq!(limit_hit(&r), Some(WasmLimitHit::Table), "{r:?}");
    // A module whose table starts huge is refused when it is compiled.
    let big = r#"(module (memory (export "memory") 1) (table 100000000 funcref) (func (export "_start")))"#;
    let engine = WasmEngine::new().expect("engine");
    assert!(
        matches!(engine.compile(big.as_bytes()), Err(WasmError::Compile(_))),
        "a 100M-element table compiled"
    );
    // Positive control.
    let ok = grow.replace("100000000", "100");
    assert_eq!(run(&ok, spec()).outcome, WasmOutcome::Exited { code: 0 });
}

#[test]
fn deep_recursion_traps_and_the_host_survives() {
    let wat = r#"(module (memory (export "memory") 1)
  (func $f (param i64) (call $f (i64.add (local.get 0) (i64.const 1))))
  (func (export "_start") (call $f (i64.const 0))))"#;
    let mut s = spec();
    {
        let l = &mut s.limits;
        l.fuel = u64::MAX / 2;
    }
    let r = run(wat, s);
    assert_eq!(limit_hit(&r), Some(WasmLimitHit::Stack), "{r:?}");
    // The host is still here and runs the next module.
    assert_eq!(run(HELLO, spec()).stdout, b"hello from wasm\n");
}

#[test]
fn oversized_modules_and_ungranted_imports_are_refused_before_running() {
    let engine = WasmEngine::new().expect("engine");
    let huge = vec![b' '; MAX_MODULE_BYTES + 1];
    assert!(matches!(
        engine.compile(&huge),
        Err(WasmError::TooLarge { .. })
    ));
    // An import module skillcell does not define: refused when compiled.
    let env = r#"(module (import "env" "socket" (func (param i32) (result i32)))
  (memory (export "memory") 1) (func (export "_start")))"#;
    match engine.compile(env.as_bytes()) {
        Err(WasmError::Import { module, name }) => {
            assert_eq!((module.as_str(), name.as_str()), ("env", "socket"));
        }
        other => panic!("{other:?}"),
    }
    // A host function the contract does not grant: refused at link time, naming the grant;
    // with the grant it links (positive control), and a wrong signature does not.
    let fetch = |params: &str| {
        format!(
            r#"(module (import "skillcell" "http_fetch" (func (param {params}) (result i32)))
  (memory (export "memory") 1) (func (export "_start")))"#
        )
    };
    let module = engine
        .compile(fetch("i32 i32 i32 i32 i32").as_bytes())
        .expect("compiles");
    match engine.link(&module, Grants::default()) {
        Err(e @ WasmError::NotGranted { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("skillcell::http_fetch") && msg.contains("skillcell.network"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    let network = Grants {
        network: true,
        calls: false,
    };
    assert!(engine.link(&module, network).is_ok());
    let wrong = engine
        .compile(fetch("i32 i32").as_bytes())
        .expect("compiles");
    assert!(matches!(
        engine.link(&wrong, network),
        Err(WasmError::Link(_))
    ));
    let call = r#"(module (import "skillcell" "call_skill" (func (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1) (func (export "_start")))"#;
    let module = engine.compile(call.as_bytes()).expect("compiles");
    assert!(matches!(
        engine.link(&module, network),
        Err(WasmError::NotGranted { .. })
    ));
    assert!(
        engine
            .link(
                &module,
                Grants {
                    network: false,
                    calls: true
                }
            )
            .is_ok()
    );
    assert!(engine.compile(HELLO.as_bytes()).is_ok());
}

/// A module that creates `PATH` in the first preopen (fd 3) and writes one byte into it; exits
/// with 100 + errno when the open fails.
fn create_at(path: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "{path}")
  (func (export "_start") (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const {len})
      (i32.const 1) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 200)))
    (if (local.get $e) (then (call $exit (i32.add (i32.const 100) (local.get $e)))))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $w (i32.load (i32.const 200)) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        len = path.len()
    )
}

fn preopen(host: &Path, writable: bool) -> Preopen {
    Preopen {
        host: host.to_path_buf(),
        fd: None,
        guest: "/mnt/workspace".into(),
        writable,
    }
}

#[test]
fn preopens_confine_traversal_symlinks_and_read_only_grants() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = tmp.path().join("ws");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&ws).expect("ws");
    fs::create_dir_all(&outside).expect("outside");
    std::os::unix::fs::symlink(&outside, ws.join("link")).expect("symlink");
    let with = |writable| WasmSpec {
        preopens: vec![preopen(&ws, writable)],
        ..spec()
    };
    // Positive control: a writable grant takes a new file.
    let r = run(&create_at("made-inside"), with(true));
    assert_eq!(r.outcome, WasmOutcome::Exited { code: 0 }, "{r:?}");
    assert!(ws.join("made-inside").exists());
    for escape in [
        "../escape",
        "link/escape",
        "/tmp/escape",
        "link/../../escape",
    ] {
        let r = run(&create_at(escape), with(true));
        assert_ne!(
            r.outcome,
            WasmOutcome::Exited { code: 0 },
            "{escape}: {r:?}"
        );
    }
    let created: Vec<_> = fs::read_dir(&outside).expect("outside").collect();
    assert!(
        created.is_empty(),
        "the guest wrote outside its preopen: {created:?}"
    );
    assert!(!tmp.path().join("escape").exists());
    // A read-only grant takes nothing.
    let r = run(&create_at("made-ro"), with(false));
    assert_ne!(r.outcome, WasmOutcome::Exited { code: 0 }, "{r:?}");
    assert!(!ws.join("made-ro").exists());
}

/// A preopen given as a descriptor is that directory: swapping its path for a symlink after
/// the caller opened it (a concurrent run planting a link) does not redirect the guest.
#[test]
fn a_preopen_by_descriptor_ignores_a_swapped_path() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (ws, outside, moved) = (
        tmp.path().join("ws"),
        tmp.path().join("outside"),
        tmp.path().join("moved"),
    );
    fs::create_dir_all(&ws).expect("ws");
    fs::create_dir_all(&outside).expect("outside");
    let fd: std::os::fd::OwnedFd = fs::File::open(&ws).expect("open ws").into();
    fs::rename(&ws, &moved).expect("rename");
    std::os::unix::fs::symlink(&outside, &ws).expect("plant");
    let by_fd = |fd| WasmSpec {
        preopens: vec![Preopen {
            host: ws.clone(),
            fd,
            guest: "/mnt/workspace".into(),
            writable: true,
        }],
        ..spec()
    };
    let r = run(&create_at("made"), by_fd(Some(std::sync::Arc::new(fd))));
    assert_eq!(r.outcome, WasmOutcome::Exited { code: 0 }, "{r:?}");
    assert!(
        moved.join("made").exists(),
        "the opened directory took the file"
    );
    assert!(
        !outside.join("made").exists(),
        "the swapped path redirected the preopen"
    );
    // Control: by path, the same preopen follows the planted link.
    let r = run(&create_at("by-path"), by_fd(None));
    assert_eq!(r.outcome, WasmOutcome::Exited { code: 0 }, "{r:?}");
    assert!(outside.join("by-path").exists());
}

/// Moving a file out of a read-only preopen into a writable one (then writing it there) would
/// both change the read-only grant and launder its file: refused, the file stays.
#[test]
fn a_file_cannot_move_from_a_read_only_preopen_to_a_writable_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (ro, rw) = (tmp.path().join("ro"), tmp.path().join("rw"));
    fs::create_dir_all(&ro).expect("ro");
    fs::create_dir_all(&rw).expect("rw");
    fs::write(ro.join("data"), "keep").expect("data");
    let wat = r#"(module
  (import "wasi_snapshot_preview1" "path_rename" (func $mv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "data")
  (func (export "_start") (local $e i32)
    (local.set $e (call $mv (i32.const 3) (i32.const 100) (i32.const 4) (i32.const FD) (i32.const 100) (i32.const 4)))
    (if (local.get $e) (then (call $exit (i32.add (i32.const 100) (local.get $e)))))))"#;
    let two = WasmSpec {
        preopens: vec![
            Preopen {
                host: ro.clone(),
                fd: None,
                guest: "/mnt/ro".into(),
                writable: false,
            },
            Preopen {
                host: rw.clone(),
                fd: None,
                guest: "/mnt/rw".into(),
                writable: true,
            },
        ],
        ..spec()
    };
    let r = run(&wat.replace("FD", "4"), two.clone());
    assert_ne!(r.outcome, WasmOutcome::Exited { code: 0 }, "{r:?}");
    assert_eq!(
        fs::read_to_string(ro.join("data")).expect("still there"),
        "keep"
    );
    assert!(!rw.join("data").exists());
    // Positive control: a rename inside the writable preopen works.
    fs::write(rw.join("data"), "x").expect("rw data");
    let inside = r#"(module
  (import "wasi_snapshot_preview1" "path_rename" (func $mv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "data")
  (data (i32.const 200) "moved")
  (func (export "_start") (local $e i32)
    (local.set $e (call $mv (i32.const 4) (i32.const 100) (i32.const 4) (i32.const 4) (i32.const 200) (i32.const 5)))
    (if (local.get $e) (then (call $exit (i32.add (i32.const 100) (local.get $e)))))))"#;
    let r = run(inside, two);
    assert_eq!(r.outcome, WasmOutcome::Exited { code: 0 }, "{r:?}");
    assert!(rw.join("moved").exists() && !rw.join("data").exists());
}

/// A tool (docs/wasm-abi.md): a bump allocator; `skillcell_run` upper-cases the input in place,
/// logs one record and returns the same range as its output.
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

#[derive(Default)]
struct Logs(std::sync::Mutex<Vec<(i32, String)>>);

impl skillcell_wasm::HostCalls for Logs {
    fn log(&self, level: i32, message: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.push((level, message.to_owned()));
        }
    }

    fn http_fetch(
        &self,
        _method: String,
        _url: String,
        _body: Vec<u8>,
    ) -> skillcell_wasm::host::BoxFuture<
        Result<skillcell_wasm::FetchResponse, skillcell_wasm::FetchError>,
    > {
        Box::pin(async { Err(skillcell_wasm::FetchError::Refused("test".into())) })
    }
}

/// Answers every fetch with 200 and `pong`.
struct Pong;

impl skillcell_wasm::HostCalls for Pong {
    fn log(&self, _level: i32, _message: &str) {}

    fn http_fetch(
        &self,
        _method: String,
        _url: String,
        _body: Vec<u8>,
    ) -> skillcell_wasm::host::BoxFuture<
        Result<skillcell_wasm::FetchResponse, skillcell_wasm::FetchError>,
    > {
        Box::pin(async {
            Ok(skillcell_wasm::FetchResponse {
                status: 200,
                body: b"pong".to_vec(),
            })
        })
    }
}

/// Fetches once; its allocator is `ALLOC`. Exits 0 when the status is 200 and the body landed.
const FETCHER: &str = r#"(module
  (import "skillcell" "http_fetch" (func $fetch (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "GET http://api.example/")
  (func (export "skillcell_alloc") (param i32) (result i32) ALLOC)
  (func (export "_start")
    (if (i32.ne (call $fetch (i32.const 100) (i32.const 23) (i32.const 0) (i32.const 0) (i32.const 200)) (i32.const 200))
      (then (call $exit (i32.const 1))))
    (if (i32.ne (i32.load8_u (i32.load (i32.const 200))) (i32.const 112))
      (then (call $exit (i32.const 2))))
    (call $exit (i32.const 0))))"#;

/// A trap inside the guest's allocator during `http_fetch` ends the run as a trap; it is not
/// turned into an error code the guest could carry on after.
#[test]
fn a_trap_in_the_allocator_during_a_fetch_ends_the_run() {
    let engine = WasmEngine::new().expect("engine");
    let grants = Grants {
        network: true,
        ..Grants::default()
    };
    let run = |alloc: &str| {
        let module = engine
            .compile(FETCHER.replace("ALLOC", alloc).as_bytes())
            .expect("compiles");
        let linked = engine.link(&module, grants).expect("links");
        engine
            .run(&linked, &spec(), std::sync::Arc::new(Pong))
            .expect("runs")
    };
    // Positive control: a working allocator gets the body.
    let r = run("(i32.const 1024)");
    assert_eq!(r.outcome, WasmOutcome::Exited { code: 0 }, "{r:?}");
    let r = run("(unreachable)");
    assert!(matches!(r.outcome, WasmOutcome::Trapped { .. }), "{r:?}");
}

/// Records the body length of every fetch that reaches the host, and answers 200.
#[derive(Default)]
struct BodySizes(std::sync::Mutex<Vec<usize>>);

impl skillcell_wasm::HostCalls for BodySizes {
    fn log(&self, _level: i32, _message: &str) {}

    fn http_fetch(
        &self,
        _method: String,
        _url: String,
        body: Vec<u8>,
    ) -> skillcell_wasm::host::BoxFuture<
        Result<skillcell_wasm::FetchResponse, skillcell_wasm::FetchError>,
    > {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(body.len());
        }
        Box::pin(async {
            Ok(skillcell_wasm::FetchResponse {
                status: 200,
                body: Vec::new(),
            })
        })
    }
}

/// A request body over [`skillcell_wasm::MAX_FETCH_BODY`] is refused with `TOO_LARGE` before
/// the host copies it or sends anything; one of exactly that size is sent whole (positive
/// control). Judged by what reached the host.
#[test]
fn a_request_body_over_the_cap_never_leaves_the_guest() {
    let engine = WasmEngine::new().expect("engine");
    let cap = skillcell_wasm::MAX_FETCH_BODY;
    let grants = Grants {
        network: true,
        ..Grants::default()
    };
    let mut s = spec();
    s.limits.memory_bytes = 32 << 20;
    let sizes = std::sync::Arc::new(BodySizes::default());
    let mut codes = Vec::new();
    for len in [cap, cap + 1] {
        // The body is the memory from 64 KiB on; exits with -status (0 - -5 = 5 for TOO_LARGE)
        // or 0 on 200.
        let wat = format!(
            r#"(module
  (import "skillcell" "http_fetch" (func $fetch (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 300)
  (data (i32.const 100) "POST http://api.example/")
  (func (export "skillcell_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "_start") (local $s i32)
    (local.set $s (call $fetch (i32.const 100) (i32.const 24) (i32.const 65536) (i32.const {len}) (i32.const 200)))
    (if (i32.eq (local.get $s) (i32.const 200)) (then (call $exit (i32.const 0))))
    (call $exit (i32.sub (i32.const 0) (local.get $s)))))"#
        );
        let module = engine.compile(wat.as_bytes()).expect("compiles");
        let linked = engine.link(&module, grants).expect("links");
        let r = engine.run(&linked, &s, sizes.clone()).expect("runs");
        codes.push(r.outcome);
    }
    assert_eq!(
        codes,
        [
            WasmOutcome::Exited { code: 0 },
            WasmOutcome::Exited {
                code: -skillcell_wasm::host::error_code::TOO_LARGE
            }
        ]
    );
    assert_eq!(
        *sizes.0.lock().expect("sizes"),
        [cap],
        "what reached the host"
    );
}

#[test]
fn a_tool_gets_its_input_in_memory_and_returns_output_from_it() {
    let engine = WasmEngine::new().expect("engine");
    let module = engine.compile(UPPER_TOOL.as_bytes()).expect("compiles");
    let linked = engine.link(&module, Grants::default()).expect("links");
    assert_eq!(linked.kind, skillcell_wasm::ModuleKind::Tool);
    let logs = std::sync::Arc::new(Logs::default());
    // 300 KiB: more than the memory the module starts with, so its allocator grows it.
    let input: Vec<u8> = b"hello, wasm! "
        .iter()
        .copied()
        .cycle()
        .take(300 << 10)
        .collect();
    let mut s = spec();
    s.input = input.clone();
    s.limits.output_bytes = 1 << 20;
    let r = engine.run(&linked, &s, logs.clone()).expect("runs");
    assert_eq!(r.outcome, WasmOutcome::Exited { code: 0 }, "{r:?}");
    assert_eq!(r.stdout, input.to_ascii_uppercase());
    assert_eq!(
        logs.0.lock().map(|l| l.clone()).unwrap_or_default(),
        vec![(1, "tool ran".to_owned())]
    );
    // A fresh store per run: the second run's allocator starts over, same result.
    let r2 = engine.run(&linked, &s, logs.clone()).expect("runs");
    assert_eq!(r2.stdout, r.stdout);
}

#[test]
fn an_artifact_loads_only_with_the_digest_recorded_for_it() {
    let engine = WasmEngine::new().expect("engine");
    let (_, artifact) = engine.precompile(HELLO.as_bytes()).expect("precompiles");
    let recorded = skillcell_types::Digest::of(&artifact);
    // Positive control: the recorded bytes load and run.
    let module = skillcell_wasm::artifact::load(&engine, &artifact, &recorded).expect("loads");
    let linked = engine.link(&module, Grants::default()).expect("links");
    let r = engine
        .run(&linked, &spec(), std::sync::Arc::new(NoHost))
        .expect("runs");
    assert_eq!(r.stdout, b"hello from wasm\n");
    // One byte changed (it could be machine code): refused before wasmtime sees it.
    let mut forged = artifact.clone();
    let mid = forged.len() / 2;
    forged[mid] ^= 0x01;
    assert!(matches!(
        skillcell_wasm::artifact::load(&engine, &forged, &recorded),
        Err(WasmError::Artifact(_))
    ));
    // Bytes that are not an artifact of this engine, recorded or not, are an error, not a crash.
    let junk = b"not an artifact".to_vec();
    assert!(matches!(
        skillcell_wasm::artifact::load(&engine, &junk, &skillcell_types::Digest::of(&junk)),
        Err(WasmError::Artifact(_))
    ));
}

/// A compile bomb: a module just under the size cap whose functions are each as large as
/// wasmtime allows, so compiling it takes real time. With a tight compile-time cap it is
/// refused (and the host carries on: the next module compiles and runs); with the real cap
/// it is either compiled or refused, never a hang.
#[test]
fn a_compile_bomb_is_cut_by_the_compile_time_cap() {
    let engine = WasmEngine::new().expect("engine");
    // 64 functions of 14 000 `local.get 0 drop` each: ~15 MiB of text.
    let body = "local.get 0 drop ".repeat(14_000);
    let mut wat = String::from("(module (memory (export \"memory\") 1)");
    for _ in 0..64 {
        wat.push_str(&format!("(func (param i32) {body})"));
    }
    wat.push_str("(func (export \"_start\")))");
    assert!(wat.len() <= MAX_MODULE_BYTES, "{}", wat.len());
    let started = std::time::Instant::now();
    let cut = engine.compile_within(wat.as_bytes(), std::time::Duration::from_millis(50));
    assert!(
        matches!(cut, Err(WasmError::CompileTimeout { .. })),
        "{:?}",
        cut.map(|_| ())
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The host is unaffected: another module compiles and runs.
    assert_eq!(run(HELLO, spec()).stdout, b"hello from wasm\n");
}

/// Opens `fifo` in the first preopen read-only and reads from it: exits 100 + errno when the
/// open fails, else with the read's errno.
const FIFO_READER: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "fifo")
  (func (export "_start") (local $e i32)
    ;; rights: fd_read (0x2) only
    (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 4)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200)))
    (if (local.get $e) (then (call $exit (i32.add (i32.const 100) (local.get $e)))))
    (i32.store (i32.const 0) (i32.const 300))
    (i32.store (i32.const 4) (i32.const 10))
    (local.set $e (call $r (i32.load (i32.const 200)) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (local.get $e))))"#;

/// A FIFO in a granted directory (the host's user, or a process outside skillcell, can make
/// one) cannot hang the run or the host: opened for reading only, with no writer, `open(2)`
/// would block in a host thread; the run must still end, at its wall clock at the latest, and
/// a later run on the same thread must work. Judged with a host-side time limit.
#[test]
fn a_fifo_in_a_grant_cannot_hang_the_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = tmp.path().join("ws");
    fs::create_dir_all(&ws).expect("ws");
    let made = std::process::Command::new("mkfifo")
        .arg(ws.join("fifo"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let mut s = WasmSpec {
        preopens: vec![preopen(&ws, false)],
        ..spec()
    };
    s.limits.wall_ms = 1_000;
    let (tx, rx) = std::sync::mpsc::channel();
    let regular = ws.join("regular");
    fs::write(&regular, "data").expect("file");
    std::thread::spawn(move || {
        let first = run(FIFO_READER, s.clone());
        // Positive control on the same thread (and its runtime): a regular file is read.
        fs::remove_file(s.preopens[0].host.join("fifo")).expect("rm fifo");
        fs::rename(&regular, s.preopens[0].host.join("fifo")).expect("file in its place");
        let second = run(FIFO_READER, s);
        let _ = tx.send((first, second));
    });
    let (first, second) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the runs ended within 30 s");
    assert_ne!(first.outcome, WasmOutcome::Exited { code: 0 }, "{first:?}");
    assert_eq!(
        second.outcome,
        WasmOutcome::Exited { code: 0 },
        "{second:?}"
    );
}
