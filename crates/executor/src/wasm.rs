//! A run in the WASM cell: the contract becomes preopens, environment, limits and the host
//! functions linked; the module is the approved bytes (its digest checked against the tree
//! listing the gate just hashed), loaded from the artifact compiled at install when its
//! recorded digest matches; the run is audited with the same enforcement report as a native
//! cell's.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use skillcell_audit::Event;
use skillcell_egress::{Connector, EgressSummary, FetchFailure};
use skillcell_sandbox::{
    CgroupReport, Denial, EnforcementReport, Layer, LimitHit, Mount, MountKind, Outcome, SKILL_DIR,
    Usage,
};
use skillcell_sandbox_linux::InterruptWatch;
use skillcell_sandbox_linux::grant::GrantFd;
use skillcell_types::{Contract, Decision, Digest, Runtime};
use skillcell_wasm::Module;
use skillcell_wasm::host::BoxFuture;
use skillcell_wasm::{
    FetchError, FetchResponse, Grants, HostCalls, MAX_FETCH_RESPONSE, MAX_MODULE_BYTES, Preopen,
    WasmEngine, WasmError, WasmLimitHit, WasmLimits, WasmOutcome, WasmReport, WasmSpec, artifact,
};

use crate::egress::{RunEgress, Subject};
use crate::run::{PlanError, RunOutcome, RunRequest, cell_limits, check_grant_host, grant_mounts};
use crate::{ExecError, Executor, Resolved};

/// Fuel per millisecond of `skillcell.limits: cpu`: about a million wasm instructions, a
/// conservative rate for Cranelift code on current x86-64.
pub const FUEL_PER_MS: u64 = 1_000_000;

/// The contract's limits for a WASM run.
fn wasm_limits(contract: &Contract) -> WasmLimits {
    let l = &contract.limits;
    WasmLimits {
        memory_bytes: l.memory,
        // Table elements are pointers: budgeted from the same memory limit.
        table_elements: (l.memory / 8).min(1 << 20),
        fuel: l.cpu_ms.saturating_mul(FUEL_PER_MS),
        wall_ms: l.wall_ms,
        output_bytes: l.output,
    }
}

/// Preopens, environment and limits for `request`. The skill's folder is preopened read-only
/// at `/skill`; each fs grant at the path a native cell would mount it, as the directory
/// [`open_grant_dir`] opened: no symlink on the way, and the same directory whatever its path
/// leads to by the time the guest starts.
pub fn plan_wasm(
    resolved: &Resolved,
    contract: &Contract,
    request: &RunRequest,
    data_dir: &Path,
    script: &str,
) -> Result<WasmSpec, PlanError> {
    let (mounts, placeholder_env) = grant_mounts(contract, &request.placeholders)?;
    // The store folder the gate just hashed, held by descriptor like the grants.
    let skill_dir = rustix::fs::open(
        &resolved.dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| PlanError::BadGrant {
        grant: SKILL_DIR.into(),
        why: format!(
            "cannot open the skill's folder {}: {e}",
            resolved.dir.display()
        ),
    })?;
    let mut preopens = vec![Preopen {
        host: resolved.dir.clone(),
        fd: Some(Arc::new(skill_dir)),
        guest: SKILL_DIR.into(),
        writable: false,
    }];
    preopens.extend(grant_preopens(&mounts, data_dir)?);
    let mut env = placeholder_env;
    for name in &contract.env {
        if let Some((_, v)) = request
            .caller_env
            .iter()
            .find(|(k, _)| k.to_str() == Some(name.0.as_str()))
            && let Some(v) = v.to_str()
        {
            env.push((name.0.clone(), v.to_owned()));
        }
    }
    let mut args = vec![format!("{SKILL_DIR}/{script}")];
    args.extend(request.args.iter().cloned());
    Ok(WasmSpec {
        args,
        env,
        preopens,
        input: request.stdin.clone(),
        limits: wasm_limits(contract),
    })
}

/// A preopen per fs grant in `mounts`, each the directory [`open_grant_dir`] opened.
fn grant_preopens(mounts: &[Mount], data_dir: &Path) -> Result<Vec<Preopen>, PlanError> {
    let mut preopens = Vec::new();
    for m in mounts {
        let MountKind::Grant {
            base,
            rest,
            writable,
        } = &m.kind
        else {
            continue;
        };
        let grant = open_grant_dir(&m.target, base, rest, data_dir)?;
        preopens.push(Preopen {
            host: grant.shown().to_path_buf(),
            fd: Some(Arc::new(grant.into_fd())),
            guest: m.target.clone(),
            writable: *writable,
        });
    }
    // Each preopen is a capability of its own: a read-only grant nested in a write grant would
    // still be writable through the parent (a native cell mounts the child read-only on top).
    for child in preopens.iter().filter(|p| !p.writable) {
        if let Some(parent) = preopens
            .iter()
            .find(|p| p.writable && child.guest.starts_with(&format!("{}/", p.guest)))
        {
            return Err(PlanError::BadGrant {
                grant: child.guest.clone(),
                why: format!(
                    "a read-only grant inside the write grant {} cannot be held read-only in the WASM cell; make it a write grant or grant a directory outside it",
                    parent.guest
                ),
            });
        }
    }
    Ok(preopens)
}

/// Opens the grant `base/rest` for `target` (refusing symlinks beneath and on `base`, see
/// [`GrantFd`]), and refuses it unless it is a directory away from the data dir `data`,
/// judged by identity ([`GrantFd::overlap_with`]).
fn open_grant_dir(
    target: &str,
    base: &Path,
    rest: &str,
    data: &Path,
) -> Result<GrantFd, PlanError> {
    let bad = |why: String| PlanError::BadGrant {
        grant: target.to_owned(),
        why,
    };
    let grant = GrantFd::open(base, rest).map_err(|e| bad(e.to_string()))?;
    if !grant.is_dir().map_err(|e| bad(e.to_string()))? {
        return Err(bad(format!(
            "{} is not a directory",
            grant.shown().display()
        )));
    }
    check_grant_host(target, &grant, data)?;
    Ok(grant)
}

/// The write grants a WASM run of `request` would write through, opened, for the executor's
/// own Landlock: `None` when the run is not a WASM run. Grants the run would refuse (a
/// symlink on the way, over the data dir) are left out: the run reports them.
pub fn wasm_write_grants(
    skill_dir: &Path,
    contract: &Contract,
    request: &RunRequest,
    data_dir: &Path,
) -> Option<Vec<GrantFd>> {
    let (_, runtime) = crate::run::choose_script(skill_dir, contract, request).ok()?;
    if runtime != Runtime::Wasm {
        return None;
    }
    let Ok((mounts, _)) = grant_mounts(contract, &request.placeholders) else {
        return Some(Vec::new());
    };
    let mut grants = Vec::new();
    for m in &mounts {
        if let MountKind::Grant {
            base,
            rest,
            writable: true,
        } = &m.kind
        {
            match open_grant_dir(&m.target, base, rest, data_dir) {
                Ok(g) => grants.push(g),
                // One refused grant refuses the run: nothing is kept writable for it.
                Err(_) => return Some(Vec::new()),
            }
        }
    }
    Some(grants)
}

/// What the guest's host functions do in a run: logs kept for the audit trail, fetches sent
/// through the run's in-process egress proxy.
struct RunHost {
    logs: Mutex<Vec<(i32, String)>>,
    connector: Option<Connector>,
    interrupts: InterruptWatch,
    /// The first interrupting signal seen.
    interrupted: Mutex<Option<String>>,
}

impl HostCalls for RunHost {
    fn log(&self, level: i32, message: &str) {
        if let Ok(mut logs) = self.logs.lock() {
            logs.push((level, message.to_owned()));
        }
    }

    fn http_fetch(
        &self,
        method: String,
        url: String,
        body: Vec<u8>,
    ) -> BoxFuture<Result<FetchResponse, FetchError>> {
        let connector = self.connector.clone();
        Box::pin(async move {
            let Some(connector) = connector else {
                return Err(FetchError::Refused("this run has no egress".into()));
            };
            match connector
                .fetch(&method, &url, body, MAX_FETCH_RESPONSE)
                .await
            {
                Ok(f) => Ok(FetchResponse {
                    status: f.status,
                    body: f.body,
                }),
                Err(FetchFailure::Refused { message, .. }) => Err(FetchError::Refused(message)),
                Err(FetchFailure::BadRequest(m)) => Err(FetchError::BadRequest(m)),
                Err(FetchFailure::TooLarge(_)) => Err(FetchError::TooLarge),
                Err(e @ (FetchFailure::Upstream(_) | FetchFailure::Closed)) => {
                    Err(FetchError::Upstream(e.to_string()))
                }
            }
        })
    }

    fn interrupted(&self) -> Option<String> {
        let mut seen = self.interrupted.lock().ok()?;
        if seen.is_none() {
            *seen = self.interrupts.received();
        }
        seen.clone()
    }
}

/// Reads a file of the store without following a symlink, at most `cap` bytes.
fn read_no_follow(path: &Path, cap: usize) -> std::io::Result<Vec<u8>> {
    let f = File::options()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let mut bytes = Vec::new();
    f.take(cap as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Where the module came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loaded {
    Artifact,
    CompiledAtRun,
}

/// Why the module cannot run.
enum LoadError {
    Tampered(String),
    Wasm(WasmError),
}

impl Executor {
    /// Loads the approved module bytes: the file's digest must be the one the gate hashed; its
    /// artifact is used when the registry records one for this engine and it matches.
    fn load_module(
        &self,
        engine: &WasmEngine,
        resolved: &Resolved,
        script: &str,
    ) -> Result<(Module, Loaded, Digest), LoadError> {
        let expected = resolved
            .files
            .iter()
            .find(|f| f.path == script)
            .map(|f| f.digest)
            .ok_or_else(|| LoadError::Tampered(format!("{script} is not in the hashed tree")))?;
        let path = resolved.dir.join(script);
        let bytes = read_no_follow(&path, MAX_MODULE_BYTES)
            .map_err(|e| LoadError::Tampered(format!("cannot read {script}: {e}")))?;
        if Digest::of(&bytes) != expected {
            return Err(LoadError::Tampered(format!(
                "{script} changed after the tree was checked"
            )));
        }
        let compat = engine.compatibility();
        let recorded = self
            .registry()
            .wasm_artifact(&expected, &compat)
            .map_err(|e| LoadError::Tampered(e.to_string()))?;
        match recorded {
            Some(digest) => {
                let path = self.home().wasm_artifact(&compat, &expected);
                let bytes = read_no_follow(&path, 1 << 30).map_err(|e| {
                    LoadError::Tampered(format!("its compiled module cannot be read: {e}"))
                })?;
                let module = artifact::load(engine, &bytes, &digest).map_err(|e| {
                    LoadError::Tampered(format!("its compiled module was refused: {e}"))
                })?;
                Ok((module, Loaded::Artifact, expected))
            }
            None => engine
                .compile(&bytes)
                .map(|m| (m, Loaded::CompiledAtRun, expected))
                .map_err(LoadError::Wasm),
        }
    }

    /// Runs a WASM skill in-process and audits it like a native run.
    pub(crate) fn run_wasm(
        &self,
        resolved: &Resolved,
        request: &RunRequest,
        script: String,
        run_id: String,
        out: &mut (dyn Write + Send),
        err: &mut (dyn Write + Send),
    ) -> Result<RunOutcome, ExecError> {
        let started = Instant::now();
        let contract = &resolved.version.contract;
        let spec = match plan_wasm(resolved, contract, request, self.home().root(), &script) {
            Ok(s) => s,
            Err(e) => return Err(self.refuse_run(request, resolved, &run_id, &e)?),
        };
        // Before any thread starts (the engine's epoch ticker, the proxy), so that none of them
        // takes a SIGINT meant for the run: the guest's epoch callback reads it.
        let interrupts = match InterruptWatch::start() {
            Ok(w) => w,
            Err(e) => {
                self.audit_event(
                    Event::new(self.actor(), "run", Decision::Deny, e.to_string())
                        .skill(&request.name)
                        .version(resolved.version.tree_hash)
                        .details(serde_json::json!({ "code": "cell_failed", "run": run_id })),
                )?;
                return Err(e.into());
            }
        };
        let engine = match WasmEngine::new() {
            Ok(e) => e,
            Err(e) => return Err(self.refuse_run(request, resolved, &run_id, &e)?),
        };
        let (module, loaded, module_digest) = match self.load_module(&engine, resolved, &script) {
            Ok(m) => m,
            Err(LoadError::Wasm(e)) => return Err(self.refuse_run(request, resolved, &run_id, &e)?),
            Err(LoadError::Tampered(reason)) => {
                self.audit_event(
                    Event::new(self.actor(), "run", Decision::Deny, reason.clone())
                        .skill(&request.name)
                        .version(resolved.version.tree_hash)
                        .details(serde_json::json!({ "code": "tampered", "run": run_id })),
                )?;
                return Err(ExecError::Refused {
                    name: request.name.clone(),
                    code: "tampered",
                    reason: format!("{reason}; run `skillcell verify`"),
                });
            }
        };
        let t_loaded = started.elapsed();
        let grants = Grants::of(contract);
        let linked = match engine.link(&module, grants) {
            Ok(l) => l,
            Err(e) => return Err(self.refuse_run(request, resolved, &run_id, &e)?),
        };
        let t_linked = started.elapsed();
        let egress = if grants.network {
            let subject = Subject {
                actor: self.actor(),
                skill: &request.name,
                version: resolved.version.tree_hash,
                run_id: &run_id,
            };
            match RunEgress::start_in_process(self.home(), contract, subject) {
                Ok(x) => Some(x),
                Err(reason) => {
                    let refusal = crate::run::Refusal("egress_unavailable", reason);
                    return Err(self.refuse_run(request, resolved, &run_id, &refusal)?);
                }
            }
        } else {
            None
        };
        let (egress, connector) = match egress {
            Some((e, c)) => (Some(e), Some(c)),
            None => (None, None),
        };
        let host = Arc::new(RunHost {
            logs: Mutex::new(Vec::new()),
            connector,
            interrupts,
            interrupted: Mutex::new(None),
        });
        let result = engine.run(&linked, &spec, Arc::clone(&host) as Arc<dyn HostCalls>);
        let t_exited = started.elapsed();
        let (egress_summary, written) = match egress {
            Some(e) => {
                let (s, w) = e.finish();
                (s, Some(w))
            }
            None => (
                EgressSummary {
                    budget_bytes: contract.limits.egress,
                    ..EgressSummary::default()
                },
                None,
            ),
        };
        let wasm = match result {
            Ok(r) => r,
            Err(e) => return Err(self.refuse_run(request, resolved, &run_id, &e)?),
        };
        let _ = out.write_all(&wasm.stdout);
        let _ = err.write_all(&wasm.stderr);
        let logs = host.logs.lock().map(|l| l.clone()).unwrap_or_default();
        for (level, message) in &logs {
            self.audit_event(
                Event::new(self.actor(), "log", Decision::Allow, message.clone())
                    .skill(&request.name)
                    .version(resolved.version.tree_hash)
                    .details(serde_json::json!({ "run": run_id, "level": level })),
            )?;
        }
        let mut report = enforcement_report(
            contract,
            &spec,
            &wasm,
            loaded,
            &module_digest,
            &linked,
            self.landlock().kernel_abi,
        );
        report.timings = vec![
            ("loaded".into(), micros(t_loaded)),
            ("linked".into(), micros(t_linked)),
            ("exited".into(), micros(t_exited)),
        ];
        if let Some(w) = written {
            crate::run::add_egress(&mut report, contract, &egress_summary, w);
        }
        let (decision, reason) = match &report.outcome {
            _ if wasm.interrupted.is_some() => (
                Decision::Deny,
                format!(
                    "interrupted by the caller ({})",
                    wasm.interrupted.as_deref().unwrap_or_default()
                ),
            ),
            Outcome::Exited { code } => (Decision::Allow, format!("exited with {code}")),
            Outcome::Trapped { message } => (Decision::Allow, format!("trapped: {message}")),
            other => (Decision::Deny, format!("{other:?}")),
        };
        self.audit_event(
            Event::new(self.actor(), "run", decision, reason)
                .skill(&request.name)
                .version(resolved.version.tree_hash)
                .details(serde_json::json!({
                    "run": run_id,
                    "seq": resolved.version.seq,
                    "runtime": Runtime::Wasm,
                    "script": script,
                    "args": request.args.len(),
                    "stdin_bytes": request.stdin.len(),
                    "placeholders": request.placeholders.keys().collect::<Vec<_>>(),
                    "wasm": {
                        "module": module_digest.to_string(),
                        "loaded_from": match loaded {
                            Loaded::Artifact => "artifact",
                            Loaded::CompiledAtRun => "compiled_at_run",
                        },
                        "kind": linked.kind,
                        "fuel_used": wasm.fuel_used,
                        "logs": logs.len(),
                    },
                    "egress": egress_summary,
                    "report": report,
                })),
        )?;
        Ok(RunOutcome {
            run_id,
            skill: request.name.clone(),
            seq: resolved.version.seq,
            runtime: Runtime::Wasm,
            script,
            egress: egress_summary,
            report,
        })
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The WASM run's report in the native cell's shape: layers, limits, outcome, the limit that
/// stopped it and a denial a model can act on.
fn enforcement_report(
    contract: &Contract,
    spec: &WasmSpec,
    wasm: &WasmReport,
    loaded: Loaded,
    module: &Digest,
    linked: &skillcell_wasm::LinkedModule,
    landlock_abi: i32,
) -> EnforcementReport {
    let l = &spec.limits;
    let preopens: Vec<String> = spec
        .preopens
        .iter()
        .map(|p| format!("{} ({})", p.guest, if p.writable { "rw" } else { "ro" }))
        .collect();
    let env: Vec<&str> = spec.env.iter().map(|(k, _)| k.as_str()).collect();
    let mut host_fns = vec!["log"];
    if linked.grants.network {
        host_fns.push("http_fetch");
    }
    if linked.grants.calls {
        host_fns.push("call_skill");
    }
    let layer = |name: &str, detail: String| Layer {
        name: name.into(),
        status: "applied".into(),
        detail,
    };
    let layers = vec![
        layer(
            "wasm",
            format!(
                "in-process wasmtime (Cranelift, pooling allocator, {} KiB guest stack); module {} {}; {} entry",
                skillcell_wasm::MAX_WASM_STACK >> 10,
                module.short(),
                match loaded {
                    Loaded::Artifact => "from its artifact compiled at install (digest checked)",
                    Loaded::CompiledAtRun => "compiled at run (no artifact for this engine)",
                },
                match linked.kind {
                    skillcell_wasm::ModuleKind::Command => "command (_start)",
                    skillcell_wasm::ModuleKind::Tool => "tool (skillcell_run, input in memory)",
                },
            ),
        ),
        layer(
            "wasi",
            format!(
                "WASI preview 1; preopens: {}; environment: {}; no sockets, no name lookup",
                preopens.join(", "),
                if env.is_empty() { "none".to_owned() } else { env.join(", ") },
            ),
        ),
        layer(
            "host_functions",
            format!("linked per contract: {}", host_fns.join(", ")),
        ),
        layer(
            "limits",
            format!(
                "memory {} bytes, tables {} elements, fuel {} ({} ms of cpu at {FUEL_PER_MS}/ms), wall {} ms including host calls, output {} bytes",
                l.memory_bytes,
                l.table_elements,
                l.fuel,
                contract.limits.cpu_ms,
                l.wall_ms,
                l.output_bytes
            ),
        ),
        layer(
            "executor_landlock",
            "the executor itself is held by Landlock: it writes only its run and audit dirs and the run's write grants".into(),
        ),
    ];
    let (outcome, limit_hit) = match &wasm.outcome {
        WasmOutcome::Exited { code } => (Outcome::Exited { code: *code }, None),
        WasmOutcome::Trapped { message, limit } => (
            Outcome::Trapped {
                message: message.clone(),
            },
            limit.and_then(|l| match l {
                WasmLimitHit::Fuel => Some(LimitHit::Cpu),
                WasmLimitHit::Wall => Some(LimitHit::Wall),
                WasmLimitHit::Memory | WasmLimitHit::Table => Some(LimitHit::Memory),
                WasmLimitHit::Stack => None,
            }),
        ),
    };
    let mut denials = Vec::new();
    if let Some(hit) = limit_hit {
        denials.push(Denial {
            code: format!("{}_limit", hit.key()),
            what: format!("the run was stopped by its {} limit", hit.key()),
            allow_with: format!("skillcell.limits: {}=<more>", hit.key()),
        });
    }
    if let WasmOutcome::Trapped {
        limit: Some(WasmLimitHit::Stack),
        ..
    } = &wasm.outcome
    {
        denials.push(Denial {
            code: "stack_overflow".into(),
            what: "the module recursed past the guest stack".into(),
            allow_with: String::new(),
        });
    }
    if let Some(signal) = &wasm.interrupted {
        denials.push(Denial {
            code: "interrupted".into(),
            what: format!("the caller interrupted the run ({signal}); the guest was stopped"),
            allow_with: "nothing in the contract: the interruption came from outside".into(),
        });
    }
    for (name, total, kept) in [
        ("stdout", wasm.stdout_bytes, wasm.stdout.len()),
        ("stderr", wasm.stderr_bytes, wasm.stderr.len()),
    ] {
        if total > kept as u64 {
            denials.push(Denial {
                code: "output_truncated".into(),
                what: format!(
                    "{name} was cut at {} bytes ({total} produced)",
                    l.output_bytes
                ),
                allow_with: "skillcell.limits: output=<more>".into(),
            });
        }
    }
    EnforcementReport {
        layers,
        cgroup: CgroupReport {
            version: "none (in-process)".into(),
            controllers: Vec::new(),
        },
        landlock_abi,
        limits: cell_limits(&contract.limits),
        outcome,
        limit_hit,
        denials,
        usage: Usage {
            wall_ms: wasm.wall_us / 1000,
            // One thread runs the guest: its CPU time is at most the wall time.
            cpu_ms: wasm.wall_us / 1000,
            memory_peak_bytes: Some(wasm.memory_peak_bytes),
            stdout_bytes: wasm.stdout_bytes,
            stderr_bytes: wasm.stderr_bytes,
            stdout_truncated: wasm.stdout_bytes > wasm.stdout.len() as u64,
            stderr_truncated: wasm.stderr_bytes > wasm.stderr.len() as u64,
        },
        timings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skillcell_wasm::{NoHost, WasmLimits};
    use std::fs;

    /// Creates `made` in the first preopen (fd 3); exits 100 + errno on failure.
    const CREATE: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "made")
  (func (export "_start") (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 4)
      (i32.const 1) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 200)))
    (if (local.get $e) (then (call $exit (i32.add (i32.const 100) (local.get $e)))))))"#;

    fn grant(base: &Path, rest: &str, writable: bool) -> Mount {
        Mount {
            target: format!("/mnt/{rest}"),
            kind: MountKind::Grant {
                base: base.to_path_buf(),
                rest: rest.into(),
                writable,
            },
        }
    }

    /// The check-then-open race: a grant checked at planning, then swapped for a symlink by a
    /// concurrent run before the guest starts, must still be the directory that was checked.
    #[test]
    fn a_grant_swapped_for_a_symlink_after_planning_stays_the_checked_directory() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().canonicalize().expect("canonical");
        let (ws, outside, data) = (root.join("ws"), root.join("outside"), root.join("data"));
        for d in [ws.join("sub"), outside.clone(), data.clone()] {
            fs::create_dir_all(d).expect("mkdir");
        }
        let preopens = grant_preopens(&[grant(&ws, "sub", true)], &data).expect("planned");
        fs::rename(ws.join("sub"), ws.join("moved")).expect("rename");
        std::os::unix::fs::symlink(&outside, ws.join("sub")).expect("plant");

        let engine = WasmEngine::new().expect("engine");
        let module = engine.compile(CREATE.as_bytes()).expect("compiles");
        let linked = engine.link(&module, Grants::default()).expect("links");
        let spec = WasmSpec {
            args: vec!["skill.wasm".into()],
            preopens,
            limits: WasmLimits::default(),
            ..WasmSpec::default()
        };
        let report = engine.run(&linked, &spec, Arc::new(NoHost)).expect("runs");
        assert_eq!(
            report.outcome,
            WasmOutcome::Exited { code: 0 },
            "{report:?}"
        );
        assert!(
            ws.join("moved/made").exists(),
            "the checked directory took the file"
        );
        assert!(
            !outside.join("made").exists(),
            "the planted symlink redirected the grant"
        );
        // Planted before planning, the same link is refused outright.
        let err = grant_preopens(&[grant(&ws, "sub", true)], &data).expect_err("refused");
        assert!(matches!(err, PlanError::BadGrant { .. }), "{err:?}");
    }

    #[test]
    fn grants_over_the_data_dir_or_not_directories_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().canonicalize().expect("canonical");
        let data = root.join("data");
        fs::create_dir_all(data.join("audit")).expect("mkdir");
        fs::create_dir_all(root.join("ws/ok")).expect("mkdir");
        fs::write(root.join("ws/file"), "x").expect("file");
        // Positive control.
        assert_eq!(
            grant_preopens(&[grant(&root.join("ws"), "ok", false)], &data)
                .expect("planned")
                .len(),
            1
        );
        for (base, rest) in [
            (&root, "data/audit"),
            (&root, ""),
            (&root.join("ws"), "file"),
        ] {
            assert!(
                grant_preopens(&[grant(base, rest, true)], &data).is_err(),
                "{base:?} {rest}"
            );
        }
        // A read-only grant inside a write grant would be writable through the parent.
        let nested = [grant(&root, "ws", true), grant(&root, "ws/ok", false)];
        assert!(matches!(
            grant_preopens(&nested, &data),
            Err(PlanError::BadGrant { .. })
        ));
    }
}
