//! One run: a fresh store, WASI from the spec, the entry called under every limit.

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{
    AsContextMut, Extern, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::capture::Captured;
use crate::host::{self, HostCalls};
use crate::{
    LinkedModule, ModuleKind, WasmEngine, WasmError, WasmLimitHit, WasmOutcome, WasmReport,
    WasmSpec,
};

/// What a store holds for one run.
pub(crate) struct RunState {
    pub(crate) wasi: WasiP1Ctx,
    limits: Limiter,
    pub(crate) host: Arc<dyn HostCalls>,
    pub(crate) log_records: u32,
    /// Why the caller stopped the run, once it did.
    interrupted: Option<String>,
}

/// Store limits, remembering the largest memory granted.
struct Limiter {
    inner: StoreLimits,
    peak: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        if ok {
            self.peak = self.peak.max(desired);
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

thread_local! {
    /// Each thread that runs guests keeps one small async runtime (host calls are futures);
    /// building one per run would cost more than the run.
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

fn with_runtime<R>(f: impl FnOnce(&tokio::runtime::Runtime) -> R) -> Result<R, WasmError> {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| WasmError::Setup(format!("async runtime: {e}")))?,
            );
        }
        match slot.as_ref() {
            Some(rt) => Ok(f(rt)),
            None => Err(WasmError::Setup("async runtime".into())),
        }
    })
}

/// Drops this thread's runtime without waiting for its blocking pool. A run that ended by its
/// wall clock or an interruption may have left a host call blocked in a pool thread (WASI
/// `path_open` of a FIFO with no writer blocks in `open(2)`, which nothing can cancel); the
/// runtime's ordinary drop, at the latest when the thread ends, would wait for that thread
/// forever and hang the process at exit. The stuck thread is left to end when its call does;
/// the next run builds a fresh runtime.
fn abandon_runtime() {
    RUNTIME.with(|cell| {
        if let Some(rt) = cell.borrow_mut().take() {
            rt.shutdown_background();
        }
    });
}

impl WasmEngine {
    /// Runs `module` once, in a fresh store, under `spec`: `_start` for a command (input on
    /// stdin), `skillcell_alloc` then `skillcell_run` for a tool (input in its memory).
    pub fn run(
        &self,
        module: &LinkedModule,
        spec: &WasmSpec,
        host: Arc<dyn HostCalls>,
    ) -> Result<WasmReport, WasmError> {
        let limits = &spec.limits;
        let setup = |e: wasmtime::Error| WasmError::Setup(format!("{e:#}"));
        let stdout = Captured::new(limits.output_bytes);
        let stderr = Captured::new(limits.output_bytes);
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&spec.args)
            .envs(&spec.env)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if module.kind == ModuleKind::Command && !spec.input.is_empty() {
            wasi.stdin(MemoryInputPipe::new(spec.input.clone()));
        }
        for p in &spec.preopens {
            let perms = if p.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            let host = match &p.fd {
                Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
                None => p.host.clone(),
            };
            wasi.preopened_dir(&host, &p.guest, perms)
                .map_err(|e| WasmError::Setup(format!("preopen {}: {e:#}", p.host.display())))?;
        }
        let state = RunState {
            wasi: wasi.build_p1(),
            limits: Limiter {
                inner: StoreLimitsBuilder::new()
                    .memory_size(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX))
                    .table_elements(usize::try_from(limits.table_elements).unwrap_or(usize::MAX))
                    .instances(1)
                    .memories(1)
                    .tables(4)
                    .trap_on_grow_failure(true)
                    .build(),
                peak: 0,
            },
            host: Arc::clone(&host),
            log_records: 0,
            interrupted: None,
        };
        let mut store = Store::new(self.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_fuel(limits.fuel).map_err(setup)?;
        let wall = Duration::from_millis(limits.wall_ms);
        let started = Instant::now();
        let deadline = started + wall;
        // At every tick a computing guest checks the deadline and the caller's interruption
        // (guest code), then yields so the runtime's timeout can also end host calls.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            if let Some(why) = ctx.data().host.interrupted() {
                ctx.data_mut().interrupted = Some(why);
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let result = with_runtime(|rt| {
            rt.block_on(async {
                let call = call_entry(module, &mut store, &spec.input, &stdout);
                // Host calls (a guest sleeping in poll_oneoff, a slow fetch) are futures the
                // timeout, or the caller's interruption, drops.
                tokio::select! {
                    biased;
                    r = tokio::time::timeout(wall, call) => Ok(r),
                    why = interruption(&*host) => Err(why),
                }
            })
        })?;
        if !matches!(result, Ok(Ok(_))) {
            abandon_runtime();
        }
        let wall_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let interrupted = match &result {
            Err(why) => Some(why.clone()),
            Ok(_) => store.data_mut().interrupted.take(),
        };
        let outcome = match result {
            _ if interrupted.is_some() => WasmOutcome::Trapped {
                message: format!(
                    "interrupted by the caller ({})",
                    interrupted.as_deref().unwrap_or_default()
                ),
                limit: None,
            },
            Err(_) | Ok(Err(_)) => WasmOutcome::Trapped {
                message: format!("the wall-clock limit of {} ms passed", limits.wall_ms),
                limit: Some(WasmLimitHit::Wall),
            },
            Ok(Ok(Ok(code))) => WasmOutcome::Exited { code },
            Ok(Ok(Err(e))) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => WasmOutcome::Exited { code: exit.0 },
                None => classify(&e),
            },
        };
        let memory_peak_bytes = store.data().limits.peak as u64;
        Ok(WasmReport {
            outcome,
            stdout_bytes: stdout.total(),
            stderr_bytes: stderr.total(),
            stdout: stdout.take(),
            stderr: stderr.take(),
            fuel_used,
            memory_peak_bytes,
            wall_us,
            interrupted,
        })
    }
}

/// Resolves, with the reason, once `host` says the caller interrupted the run; checked every
/// 10 ms (only while the guest waits in a host call: otherwise the run ends first).
async fn interruption(host: &dyn HostCalls) -> String {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Some(why) = host.interrupted() {
            return why;
        }
    }
}

/// Instantiates and calls the entry; the exit code on return.
async fn call_entry(
    module: &LinkedModule,
    store: &mut Store<RunState>,
    input: &[u8],
    stdout: &Captured,
) -> wasmtime::Result<i32> {
    let instance = module.pre.instantiate_async(&mut *store).await?;
    if module.kind == ModuleKind::Command {
        let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
        start.call_async(&mut *store, ()).await?;
        return Ok(0);
    }
    if let Some(init) = instance.get_func(&mut *store, "_initialize") {
        init.typed::<(), ()>(&*store)?
            .call_async(&mut *store, ())
            .await?;
    }
    let memory = match instance.get_export(&mut *store, "memory") {
        Some(Extern::Memory(m)) => m,
        _ => return Err(wasmtime::Error::msg("the tool exports no memory")),
    };
    let alloc = instance.get_typed_func::<i32, i32>(&mut *store, "skillcell_alloc")?;
    let run = instance.get_typed_func::<(i32, i32), i64>(&mut *store, "skillcell_run")?;
    let len = i32::try_from(input.len())
        .map_err(|_| wasmtime::Error::msg("the input does not fit a wasm32 memory"))?;
    let ptr = alloc.call_async(&mut *store, len).await?;
    if ptr == 0 && len != 0 {
        return Err(wasmtime::Error::msg(
            "skillcell_alloc returned 0 for the input",
        ));
    }
    // The one copy: from the caller's buffer straight into the guest's memory.
    if !host::write(&memory, store.as_context_mut(), ptr, input) {
        return Err(wasmtime::Error::msg(
            "skillcell_alloc returned a range outside the memory",
        ));
    }
    let result = run.call_async(&mut *store, (ptr, len)).await?;
    if result < 0 {
        return Ok(1);
    }
    let (out_ptr, out_len) = ((result >> 32) as u32 as i32, result as u32);
    let out_len = i32::try_from(out_len)
        .map_err(|_| wasmtime::Error::msg("skillcell_run returned an output over 2 GiB"))?;
    let (start, end) = (
        out_ptr as u32 as usize,
        out_ptr as u32 as usize + out_len as usize,
    );
    match memory.data(&*store).get(start..end) {
        Some(out) => stdout.push(out),
        None => {
            return Err(wasmtime::Error::msg(
                "skillcell_run returned a range outside the memory",
            ));
        }
    }
    Ok(0)
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
