//! The WASM cell: a skill that is a WebAssembly module runs in-process, in wasmtime, with
//! default-blind WASI preview 1 and host functions linked per capability.
//!
//! - **Engine** ([`WasmEngine`]): Cranelift, the pooling allocator (instances come from
//!   pre-reserved slots, so instantiation is cheap and bounded), fuel (CPU: deterministic),
//!   epoch interruption (the guest yields every tick so the wall-clock deadline is checked),
//!   a bounded native stack for guest code (deep recursion traps, it never crashes the host).
//!   One engine serves every run of a process; its linkers are built once, one per set of
//!   grants, so a module is linked against exactly the host functions its contract grants.
//! - **Loading** ([`WasmEngine::compile`], [`WasmEngine::precompile`],
//!   [`artifact::load`]): a module is compiled once, at install, to an artifact cached by the
//!   module's content hash and the engine's compatibility hash; a run deserializes it only
//!   after checking its digest against the one recorded at install (a serialized artifact is
//!   native code: the digest check is what makes loading it sound).
//! - **Linking** ([`WasmEngine::link`]): imports are checked against the grants before
//!   anything runs; an import of a host function that is not granted is refused with an error
//!   naming the grant.
//! - **A run** ([`WasmEngine::run`]): a fresh store per call with store limits (memory, table
//!   elements, instances), WASI with only what [`WasmSpec`] lists: arguments, the declared
//!   environment variables, preopened directories for fs grants (read-only unless the grant is
//!   writable), stdin from memory, stdout and stderr captured up to a cap (the rest counted
//!   and dropped). No sockets, no name lookup. The whole call, host calls included (a guest
//!   sleeping in `poll_oneoff`, an `http_fetch` waiting on a slow server), runs under one
//!   wall-clock deadline. A module exporting `skillcell_run` gets its input written straight
//!   into its memory (docs/wasm-abi.md).
//!
//! This crate knows nothing of contracts, the store or the audit trail: the executor turns a
//! contract into [`Grants`] and a [`WasmSpec`], and implements [`HostCalls`] (audit records,
//! the egress proxy).

pub mod artifact;
mod capture;
mod engine;
pub mod host;
mod run;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub use engine::{LinkedModule, ModuleKind, WasmEngine};
pub use host::{FetchError, FetchResponse, Grants, HostCalls, NoHost, error_code};
pub use wasmtime::Module;

/// Largest module accepted (bytes of `.wasm`, or of `.wat` text).
pub const MAX_MODULE_BYTES: usize = 16 << 20;
/// Longest a module may take to compile.
pub const MAX_COMPILE: std::time::Duration = std::time::Duration::from_secs(30);
/// Native stack for guest code: deep recursion hits this and traps.
pub const MAX_WASM_STACK: usize = 512 << 10;
/// Log records a run may write through `skillcell::log`.
pub const MAX_LOG_RECORDS: u32 = 64;
/// Bytes of one log record.
pub const MAX_LOG_BYTES: usize = 4096;
/// Largest response body `http_fetch` hands to a guest.
pub const MAX_FETCH_RESPONSE: usize = 16 << 20;
/// The largest request body `http_fetch` sends (-5 beyond).
pub const MAX_FETCH_BODY: usize = 16 << 20;

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

impl Default for WasmLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            table_elements: 10_000,
            fuel: 1_000_000_000,
            wall_ms: 10_000,
            output_bytes: 1 << 20,
        }
    }
}

/// A directory the guest sees.
#[derive(Clone, Debug)]
pub struct Preopen {
    /// The host directory: opened by this path, or, when `fd` is set, only shown.
    pub host: PathBuf,
    /// The directory itself, opened by the caller (say, refusing symlinks). It is preopened
    /// through `/proc/self/fd`, so a path swapped after the caller's checks cannot redirect it.
    pub fd: Option<Arc<OwnedFd>>,
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
    /// stdin of a command; the input a tool gets in its memory.
    pub input: Vec<u8>,
    pub limits: WasmLimits,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WasmOutcome {
    /// `_start` returned (code 0), the guest called `proc_exit`, or a tool returned (0 for an
    /// output, 1 for a negative result).
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
    /// Kept stdout (a tool's returned output is appended to it).
    #[serde(skip)]
    pub stdout: Vec<u8>,
    #[serde(skip)]
    pub stderr: Vec<u8>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub fuel_used: u64,
    /// Peak linear memory of the instance.
    pub memory_peak_bytes: u64,
    pub wall_us: u64,
    /// Set when the caller interrupted the run ([`HostCalls::interrupted`]), with its reason.
    pub interrupted: Option<String>,
}

/// Why a module could not be compiled, linked or started.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("the module is {size} bytes; the most accepted is {MAX_MODULE_BYTES}")]
    TooLarge { size: usize },
    #[error("the module does not compile: {0}")]
    Compile(String),
    #[error("the module took longer than {secs} s to compile")]
    CompileTimeout { secs: f64 },
    #[error(
        "the module imports {module}::{name}; a WASM skill may import WASI preview 1 (`wasi_snapshot_preview1`) and skillcell's host functions (`skillcell`) only"
    )]
    Import { module: String, name: String },
    #[error("the module imports skillcell::{name}, which needs {grant}")]
    NotGranted { name: String, grant: &'static str },
    #[error("the module cannot be linked: {0}")]
    Link(String),
    #[error(
        "the module has no entry: export `_start` (a WASI command) or `memory`, `skillcell_alloc` and `skillcell_run` (a tool; docs/wasm-abi.md)"
    )]
    NoEntry,
    #[error("the compiled artifact cannot be used: {0}")]
    Artifact(String),
    #[error("cannot set up the run: {0}")]
    Setup(String),
}

impl WasmError {
    /// Stable code for the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "module_too_large",
            Self::Compile(_) => "module_invalid",
            Self::CompileTimeout { .. } => "compile_timeout",
            Self::Import { .. } => "import_unknown",
            Self::NotGranted { .. } => "import_not_granted",
            Self::Link(_) => "link_failed",
            Self::NoEntry => "no_entry",
            Self::Artifact(_) => "artifact_invalid",
            Self::Setup(_) => "setup_failed",
        }
    }
}
