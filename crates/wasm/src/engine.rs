//! The engine: configuration, compiling, the per-grant linkers and linking.

use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use skillcell_types::StreamingDigest;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig,
};

use crate::host::{self, Grants};
use crate::run::RunState;
use crate::{MAX_COMPILE, MAX_MODULE_BYTES, MAX_WASM_STACK, WasmError};

/// Epoch tick: how often a running guest yields so the deadline can be checked.
pub(crate) const TICK: Duration = Duration::from_millis(10);
/// Instances of the pool (runs at once per engine).
const POOL_INSTANCES: u32 = 64;
/// Largest linear memory any instance of the pool may have.
const POOL_MAX_MEMORY: usize = 4 << 30;
/// Largest table any instance of the pool may have.
const POOL_MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Bytes of a slot's linear memory, table and async stack zeroed with `memset` and kept
/// mapped when an instance ends, instead of released with `madvise`. Releasing pages costs a
/// TLB shootdown of every other CPU running a thread of the process (the audit writer, the
/// proxy), which on a VM is the largest part of a small run; keeping pages also spares the next
/// run the page faults of touching them again. The price is resident memory: at most this much
/// per slot that has been used.
const POOL_KEEP_RESIDENT: usize = 16 << 20;
const POOL_KEEP_RESIDENT_SMALL: usize = 1 << 20;

/// One engine per process, shared by every run.
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    /// One linker per [`Grants`] value ([`Grants::index`]): WASI preview 1 and exactly the
    /// host functions those grants allow.
    linkers: Arc<[Linker<RunState>; 4]>,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine").finish_non_exhaustive()
    }
}

/// How a module takes its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// A WASI command: `_start`, input on stdin.
    Command,
    /// `skillcell_run`: input written into its memory (docs/wasm-abi.md).
    Tool,
}

/// A module linked against the host functions of its grants, ready to instantiate.
#[derive(Clone)]
pub struct LinkedModule {
    pub(crate) pre: InstancePre<RunState>,
    pub kind: ModuleKind,
    pub grants: Grants,
}

impl std::fmt::Debug for LinkedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedModule")
            .field("kind", &self.kind)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// A thread that advances the engine's epoch every [`TICK`], so running guests reach their
/// epoch checks (a guest computing never gives the async runtime a chance to run a timer).
#[derive(Debug)]
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Self, WasmError> {
        let stop = Arc::new(AtomicBool::new(false));
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

/// Feeds `Hash` output into SHA-256, for a stable compatibility key.
struct DigestHasher(StreamingDigest);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl WasmEngine {
    /// An engine that denies by default: fuel and epochs on, a 512 KiB guest stack, the
    /// pooling allocator, and linkers that give WASI preview 1 (no sockets, no name lookup:
    /// every run's context disables them) plus only granted host functions.
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
            .table_elements(POOL_MAX_TABLE_ELEMENTS)
            .linear_memory_keep_resident(POOL_KEEP_RESIDENT)
            .table_keep_resident(POOL_KEEP_RESIDENT_SMALL)
            .async_stack_keep_resident(POOL_KEEP_RESIDENT_SMALL);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| WasmError::Setup(e.to_string()))?;
        let setup = |e: wasmtime::Error| WasmError::Setup(format!("{e:#}"));
        let mut linkers = Vec::with_capacity(4);
        for grants in Grants::all() {
            let mut linker: Linker<RunState> = Linker::new(&engine);
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut RunState| &mut s.wasi)
                .map_err(setup)?;
            host::define(&mut linker, grants).map_err(setup)?;
            linkers.push(linker);
        }
        let linkers: [Linker<RunState>; 4] = linkers
            .try_into()
            .map_err(|_| WasmError::Setup("linkers".into()))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(Self {
            engine,
            linkers: Arc::new(linkers),
            _ticker: Arc::new(ticker),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Identifies what artifacts this engine can load (wasmtime's version and the settings
    /// that shape compiled code): artifacts are cached under it.
    pub fn compatibility(&self) -> String {
        let mut h = DigestHasher(StreamingDigest::new());
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut h);
        h.0.finish().to_string()
    }

    /// Compiles a `.wasm` binary or `.wat` text: its size first, at most [`MAX_COMPILE`] of
    /// compile time, then its imports and entry ([`check_module`](Self::check_module)).
    pub fn compile(&self, bytes: &[u8]) -> Result<Module, WasmError> {
        self.compile_within(bytes, MAX_COMPILE)
    }

    /// As [`compile`](Self::compile), with another compile-time cap.
    pub fn compile_within(&self, bytes: &[u8], cap: Duration) -> Result<Module, WasmError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(WasmError::TooLarge { size: bytes.len() });
        }
        let (tx, rx) = mpsc::channel();
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        std::thread::Builder::new()
            .name("skillcell-wasm-compile".into())
            .spawn(move || {
                let _ = tx.send(Module::new(&engine, owned));
            })
            .map_err(|e| WasmError::Setup(format!("compile thread: {e}")))?;
        // On time-out the thread is left to finish on its own; its result is dropped.
        let module = match rx.recv_timeout(cap) {
            Ok(m) => m.map_err(|e| WasmError::Compile(format!("{e:#}")))?,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(WasmError::CompileTimeout {
                    secs: cap.as_secs_f64(),
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(WasmError::Compile("the compiler stopped".into()));
            }
        };
        self.check_module(&module)?;
        Ok(module)
    }

    /// Compiles and serializes: the artifact [`artifact::load`](crate::artifact::load) takes.
    pub fn precompile(&self, bytes: &[u8]) -> Result<(Module, Vec<u8>), WasmError> {
        let module = self.compile(bytes)?;
        let artifact = module
            .serialize()
            .map_err(|e| WasmError::Artifact(format!("{e:#}")))?;
        Ok((module, artifact))
    }

    /// Checks what does not depend on grants: imports come from WASI preview 1 or skillcell's
    /// host functions, and the module has an entry.
    pub fn check_module(&self, module: &Module) -> Result<(), WasmError> {
        for import in module.imports() {
            let known = match import.module() {
                "wasi_snapshot_preview1" => true,
                "skillcell" => host::HostFn::parse(import.name()).is_some(),
                _ => false,
            };
            if !known {
                return Err(WasmError::Import {
                    module: import.module().to_owned(),
                    name: import.name().to_owned(),
                });
            }
        }
        kind_of(module).map(|_| ())
    }

    /// Links `module` against WASI and the host functions `grants` allow. An import of a host
    /// function that is not granted is refused here, naming the grant it needs.
    pub fn link(&self, module: &Module, grants: Grants) -> Result<LinkedModule, WasmError> {
        self.check_module(module)?;
        for import in module.imports() {
            if import.module() != "skillcell" {
                continue;
            }
            if let Some(f) = host::HostFn::parse(import.name())
                && !f.granted(grants)
            {
                return Err(WasmError::NotGranted {
                    name: import.name().to_owned(),
                    grant: f.grant(),
                });
            }
        }
        let pre = self.linkers[grants.index()]
            .instantiate_pre(module)
            .map_err(|e| WasmError::Link(format!("{e:#}")))?;
        Ok(LinkedModule {
            pre,
            kind: kind_of(module)?,
            grants,
        })
    }
}

/// A tool when it exports the zero-copy entry, else a command when it exports `_start`.
fn kind_of(module: &Module) -> Result<ModuleKind, WasmError> {
    let has = |name| module.get_export(name).is_some();
    if has("skillcell_run") && has("skillcell_alloc") && has("memory") {
        Ok(ModuleKind::Tool)
    } else if has("_start") {
        Ok(ModuleKind::Command)
    } else {
        Err(WasmError::NoEntry)
    }
}
