//! The WASM cell: a skill that is a WebAssembly module runs in-process, in wasmtime, with
//! default-blind WASI preview 1.
//!
//! - **Engine** ([`WasmEngine`]): Cranelift, the pooling allocator (instances come from
//!   pre-reserved slots, so instantiation is cheap and bounded), fuel (CPU: deterministic),
//!   epoch interruption (the guest yields every tick so the wall-clock deadline is checked),
//!   a bounded native stack for guest code (deep recursion traps, it never crashes the host).
//! - **A run** ([`WasmEngine::run`]): a fresh store per call with store limits (memory, table
//!   elements, instances), WASI with only what [`WasmSpec`] lists: arguments, the declared
//!   environment variables, preopened directories for fs grants (read-only unless the grant is
//!   writable), stdin from memory, stdout and stderr captured up to a cap (the rest counted
//!   and dropped). No sockets, no name lookup. The whole call, host calls included (a guest
//!   sleeping in `poll_oneoff` too), runs under one wall-clock deadline.
//!
//! Not yet here (issue 6 continues): compiled-module cache by content hash at install, host
//! functions linked per capability (`http_fetch`, `log`, `call_skill`), zero-copy input, and
//! the executor and audit wiring.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig, Store,
    StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Largest module accepted (bytes of `.wasm`, or of `.wat` text).
pub const MAX_MODULE_BYTES: usize = 16 << 20;
/// Native stack for guest code: deep recursion hits this and traps.
pub const MAX_WASM_STACK: usize = 512 << 10;
/// Epoch tick: how often a running guest yields so the deadline can be checked.
const TICK: Duration = Duration::from_millis(10);
/// Instances of the pool (runs at once per engine).
const POOL_INSTANCES: u32 = 64;
/// Largest linear memory any instance of the pool may have.
const POOL_MAX_MEMORY: usize = 4 << 30;
/// Largest table any instance of the pool may have.
const POOL_MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Limits of one run. Zero never means unlimited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WasmLimits {
    /// Linear memory, all memories together.
    pub memory_bytes: u64,
    /// Elements of any one table.
    pub table_elements: u64,
    /// Fuel (about one unit per instruction): the CPU budget.
    pub fuel: u64,
    /// Wall-clock time of the whole call, host calls included.
    pub wall_ms: u64,
    /// Bytes kept of stdout and of stderr each.
    pub output_bytes: u64,
}

/// A directory the guest sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    /// The path the guest opens it by (`/mnt/workspace`).
    pub guest: String,
    pub writable: bool,
}

/// Everything one run gets. Nothing else: no other file, variable, clock beyond WASI's
/// monotonic and wall clocks, or socket.
#[derive(Clone, Debug, Default)]
pub struct WasmSpec {
    /// `argv[0]` first.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub preopens: Vec<Preopen>,
    pub stdin: Vec<u8>,
    pub limits: Option<WasmLimits>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WasmOutcome {
    /// `_start` returned (code 0) or the guest called `proc_exit`.
    Exited { code: i32 },
    /// The guest trapped; `limit` names the limit when one caused it.
    Trapped {
        message: String,
        limit: Option<WasmLimitHit>,
    },
}

/// Which limit stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WasmLimitHit {
    Fuel,
    Wall,
    Memory,
    Table,
    Stack,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WasmReport {
    pub outcome: WasmOutcome,
    #[serde(skip)]
    pub stdout: Vec<u8>,
    #[serde(skip)]
    pub stderr: Vec<u8>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub fuel_used: u64,
    pub wall_us: u64,
}

/// Why a module could not be compiled or a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("the module is {size} bytes; the most accepted is {MAX_MODULE_BYTES}")]
    TooLarge { size: usize },
    #[error("the module does not compile: {0}")]
    Compile(String),
    #[error(
        "the module imports {module}::{name}, which this skill is not granted (a WASM skill gets WASI preview 1 only)"
    )]
    Import { module: String, name: String },
    #[error("the module has no `_start` function (a WASI command)")]
    NoStart,
    #[error("cannot set up the run: {0}")]
    Setup(String),
}

/// One engine per process, shared by every run.
#[derive(Clone, Debug)]
pub struct WasmEngine {
    engine: Engine,
    _ticker: Arc<Ticker>,
}

/// A thread that advances the engine's epoch every [`TICK`], so running guests reach their
/// epoch checks (a guest computing never gives the async runtime a chance to run a timer).
#[derive(Debug)]
struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Self, WasmError> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("skillcell-wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| WasmError::Setup(format!("epoch thread: {e}")))?;
        Ok(Self { stop })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl WasmEngine {
    pub fn new() -> Result<Self, WasmError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(MAX_WASM_STACK);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(POOL_INSTANCES)
            .total_memories(POOL_INSTANCES)
            .total_tables(POOL_INSTANCES)
            .max_memory_size(POOL_MAX_MEMORY)
            .table_elements(POOL_MAX_TABLE_ELEMENTS);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| WasmError::Setup(e.to_string()))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(Self {
            engine,
            _ticker: Arc::new(ticker),
        })
    }

    /// Compiles a `.wasm` binary or `.wat` text, checking its size first and that it imports
    /// nothing but WASI preview 1.
    pub fn compile(&self, bytes: &[u8]) -> Result<Module, WasmError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(WasmError::TooLarge { size: bytes.len() });
        }
        let module =
            Module::new(&self.engine, bytes).map_err(|e| WasmError::Compile(format!("{e:#}")))?;
        for import in module.imports() {
            if import.module() != "wasi_snapshot_preview1" {
                return Err(WasmError::Import {
                    module: import.module().to_owned(),
                    name: import.name().to_owned(),
                });
            }
        }
        if module.get_export("_start").is_none() {
            return Err(WasmError::NoStart);
        }
        Ok(module)
    }

    /// Runs `module`'s `_start` once, in a fresh store, under `spec`.
    pub fn run(&self, module: &Module, spec: &WasmSpec) -> Result<WasmReport, WasmError> {
        let limits = spec.limits.clone().unwrap_or(WasmLimits {
            memory_bytes: 64 << 20,
            table_elements: 10_000,
            fuel: 1_000_000_000,
            wall_ms: 10_000,
            output_bytes: 1 << 20,
        });
        let setup = |e: wasmtime::Error| WasmError::Setup(format!("{e:#}"));
        let stdout = Captured::new(limits.output_bytes);
        let stderr = Captured::new(limits.output_bytes);
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&spec.args)
            .envs(&spec.env)
            .stdin(MemoryInputPipe::new(spec.stdin.clone()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for p in &spec.preopens {
            let perms = if p.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&p.host, &p.guest, perms)
                .map_err(|e| WasmError::Setup(format!("preopen {}: {e:#}", p.host.display())))?;
        }
        let state = RunState {
            wasi: wasi.build_p1(),
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX))
                .table_elements(usize::try_from(limits.table_elements).unwrap_or(usize::MAX))
                .instances(1)
                .memories(1)
                .tables(4)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_fuel(limits.fuel).map_err(setup)?;
        let wall = Duration::from_millis(limits.wall_ms);
        let deadline = Instant::now() + wall;
        // At every tick a computing guest checks the deadline (guest code), then yields so the
        // runtime's timeout can also end host calls.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let mut linker: Linker<RunState> = Linker::new(&self.engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut RunState| &mut s.wasi)
            .map_err(setup)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| WasmError::Setup(e.to_string()))?;
        let started = Instant::now();
        let result = rt.block_on(async {
            let call = async {
                let instance = linker.instantiate_async(&mut store, module).await?;
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call_async(&mut store, ()).await
            };
            // Host calls (a guest sleeping in poll_oneoff) are futures this timeout drops.
            tokio::time::timeout(wall, call).await
        });
        let wall_us = started.elapsed().as_micros() as u64;
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let outcome = match result {
            Err(_) => WasmOutcome::Trapped {
                message: format!("the wall-clock limit of {} ms passed", limits.wall_ms),
                limit: Some(WasmLimitHit::Wall),
            },
            Ok(Ok(())) => WasmOutcome::Exited { code: 0 },
            Ok(Err(e)) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => WasmOutcome::Exited { code: exit.0 },
                None => classify(&e),
            },
        };
        Ok(WasmReport {
            outcome,
            stdout_bytes: stdout.total(),
            stderr_bytes: stderr.total(),
            stdout: stdout.kept(),
            stderr: stderr.kept(),
            fuel_used,
            wall_us,
        })
    }
}

/// Which limit a trap comes from, if any.
fn classify(e: &wasmtime::Error) -> WasmOutcome {
    let message = format!("{e:#}");
    let limit = match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Some(WasmLimitHit::Fuel),
        Some(Trap::StackOverflow) => Some(WasmLimitHit::Stack),
        Some(Trap::Interrupt) => Some(WasmLimitHit::Wall),
        _ if message.contains("forcing trap when growing memory") => Some(WasmLimitHit::Memory),
        _ if message.contains("forcing trap when growing table") => Some(WasmLimitHit::Table),
        _ => None,
    };
    WasmOutcome::Trapped { message, limit }
}

struct RunState {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// stdout or stderr of a guest: the first `cap` bytes are kept, the rest counted and dropped
/// (never an error the guest could use to detect the cap, never unbounded memory).
#[derive(Clone, Debug)]
struct Captured {
    kept: Arc<Mutex<Vec<u8>>>,
    total: Arc<AtomicU64>,
    cap: usize,
}

impl Captured {
    fn new(cap: u64) -> Self {
        Self {
            kept: Arc::default(),
            total: Arc::default(),
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
        }
    }

    fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn kept(&self) -> Vec<u8> {
        self.kept.lock().map(|k| k.clone()).unwrap_or_default()
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.total.fetch_add(buf.len() as u64, Ordering::Relaxed);
        if let Ok(mut kept) = self.kept.lock() {
            let room = self.cap.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
