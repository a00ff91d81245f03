//! A run in the WASM cell: the contract becomes preopens, environment, limits and the host
//! functions linked; the module is the approved bytes (its digest checked against the tree
//! listing the gate just hashed), loaded from the artifact compiled at install when its
//! recorded digest matches; the run is audited with the same enforcement report as a native
//! cell's.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use skillcell_audit::Event;
use skillcell_egress::{Connector, EgressSummary, FetchFailure};
use skillcell_sandbox::{
    CgroupReport, Denial, EnforcementReport, Layer, LimitHit, MountKind, Outcome, SKILL_DIR, Usage,
};
use skillcell_types::{Contract, Decision, Digest, Runtime};
use skillcell_wasm::Module;
use skillcell_wasm::host::BoxFuture;
use skillcell_wasm::{
    FetchError, FetchResponse, Grants, HostCalls, MAX_FETCH_RESPONSE, MAX_MODULE_BYTES, Preopen,
    WasmEngine, WasmError, WasmLimitHit, WasmLimits, WasmOutcome, WasmReport, WasmSpec, artifact,
};

use crate::egress::{RunEgress, Subject};
use crate::run::{PlanError, RunOutcome, RunRequest, cell_limits, check_grants, grant_mounts};
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
/// at `/skill`; each fs grant at the path a native cell would mount it, after checking that no
/// component beneath the grant's base is a symlink.
pub fn plan_wasm(
    resolved: &Resolved,
    contract: &Contract,
    request: &RunRequest,
    data_dir: &Path,
    script: &str,
) -> Result<WasmSpec, PlanError> {
    let (mounts, placeholder_env) = grant_mounts(contract, &request.placeholders)?;
    check_grants(&mounts, data_dir)?;
    let mut preopens = vec![Preopen {
        host: resolved.dir.clone(),
        guest: SKILL_DIR.into(),
        writable: false,
    }];
    for m in &mounts {
        let MountKind::Grant {
            base,
            rest,
            writable,
        } = &m.kind
        else {
            continue;
        };
        let host = beneath_without_symlinks(base, rest).map_err(|why| PlanError::BadGrant {
            grant: m.target.clone(),
            why,
        })?;
        preopens.push(Preopen {
            host,
            guest: m.target.clone(),
            writable: *writable,
        });
    }
    // Each preopen is a capability of its own: a read-only grant nested in a write grant would
    // still be writable through the parent (a native cell mounts the child read-only on top).
    for child in preopens
        .iter()
        .filter(|p| !p.writable && p.guest != SKILL_DIR)
    {
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

/// `base/rest` when it is a directory reached without any symlink beneath `base` (a link
/// planted by an earlier run cannot redirect a grant).
fn beneath_without_symlinks(base: &Path, rest: &str) -> Result<PathBuf, String> {
    let mut path = base.to_path_buf();
    for c in Path::new(rest).components() {
        match c {
            Component::Normal(p) => path.push(p),
            Component::CurDir => continue,
            _ => return Err("the grant path must be a plain relative path".into()),
        }
        let meta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.file_type().is_symlink() {
            return Err(format!("{} is a symlink", path.display()));
        }
    }
    if !fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
        return Err(format!("{} is not a directory", path.display()));
    }
    Ok(path)
}

/// The host paths a WASM run of `request` would write through (its write grants), for the
/// executor's own Landlock: `None` when the run is not a WASM run (or cannot be planned, in
/// which case the run itself reports why).
pub fn wasm_write_paths(
    skill_dir: &Path,
    contract: &Contract,
    request: &RunRequest,
    data_dir: &Path,
) -> Option<Vec<PathBuf>> {
    let (_, runtime) = crate::run::choose_script(skill_dir, contract, request).ok()?;
    if runtime != Runtime::Wasm {
        return None;
    }
    // Grants the run would refuse (over the data dir, say) stay read-only here too.
    let Ok((mounts, _)) = grant_mounts(contract, &request.placeholders) else {
        return Some(Vec::new());
    };
    if check_grants(&mounts, data_dir).is_err() {
        return Some(Vec::new());
    }
    Some(
        mounts
            .iter()
            .filter_map(|m| match &m.kind {
                MountKind::Grant {
                    base,
                    rest,
                    writable: true,
                } => beneath_without_symlinks(base, rest).ok(),
                _ => None,
            })
            .collect(),
    )
}

/// What the guest's host functions do in a run: logs kept for the audit trail, fetches sent
/// through the run's in-process egress proxy.
struct RunHost {
    logs: Mutex<Vec<(i32, String)>>,
    connector: Option<Connector>,
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
        // takes a SIGINT meant for the run.
        if let Err(e) = skillcell_sandbox_linux::block_interrupts() {
            self.audit_event(
                Event::new(self.actor(), "run", Decision::Deny, e.to_string())
                    .skill(&request.name)
                    .version(resolved.version.tree_hash)
                    .details(serde_json::json!({ "code": "cell_failed", "run": run_id })),
            )?;
            return Err(e.into());
        }
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

    #[test]
    fn grants_beneath_their_base_refuse_symlinks_and_dot_dot() {
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path();
        fs::create_dir_all(base.join("a/b")).expect("mkdir");
        fs::create_dir_all(base.join("outside")).expect("mkdir");
        std::os::unix::fs::symlink(base.join("outside"), base.join("a/link")).expect("symlink");
        // Positive controls: the base itself and a plain subdirectory.
        assert_eq!(beneath_without_symlinks(base, "").as_deref(), Ok(base));
        assert_eq!(beneath_without_symlinks(base, "a/b"), Ok(base.join("a/b")));
        assert!(beneath_without_symlinks(base, "a/link").is_err());
        assert!(beneath_without_symlinks(base, "a/link/x").is_err());
        assert!(beneath_without_symlinks(base, "a/../outside").is_err());
        assert!(beneath_without_symlinks(base, "missing").is_err());
    }
}
