//! From a resolved skill and a caller's request to a [`CellSpec`], and the audited run.
//!
//! This is the only place where policy (the contract) becomes a cell spec: which script, which
//! interpreter, which mounts, which environment, which limits. The Linux cell receives the spec
//! and knows nothing of contracts.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use skillcell_audit::Event;
use skillcell_egress::EgressSummary;
use skillcell_sandbox::{
    CellLimits, CellSpec, Denial, EnforcementReport, HOME_DIR, Layer, Mount, MountKind, Outcome,
    PROXY_PORT, SCRATCH_DIR, SKILL_DIR, VerifiedFile, placeholder_target,
};
use skillcell_sandbox_linux::PreparedCell;
use skillcell_sandbox_linux::grant::{GrantFd, Overlap};
use skillcell_types::{Access, Contract, Decision, GrantPath, Limits, Runtime};

use crate::egress::RunEgress;
use crate::runtimes::{self, Interpreter};
use crate::{ExecError, Executor, Resolved};

/// The fixed `PATH` inside every cell (never the caller's).
pub const CELL_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Variables that point clients at the egress proxy, in the spellings programs read
/// (curl reads only the lower-case `http_proxy`; Python and Go read either).
pub const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// What the caller asks for.
#[derive(Clone, Debug, Default)]
pub struct RunRequest {
    pub name: String,
    /// The script, relative to the skill folder; `None` uses `skillcell.entry`.
    pub script: Option<String>,
    /// Bytes for the skill's stdin (tool skills take JSON there).
    pub stdin: Vec<u8>,
    pub args: Vec<String>,
    /// Concrete host directories for the contract's placeholders (`WORKSPACE` → a path).
    pub placeholders: BTreeMap<String, PathBuf>,
    /// The caller's environment, from which only the contract's declared names are taken.
    pub caller_env: Vec<(OsString, OsString)>,
}

/// A finished run.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    pub run_id: String,
    pub skill: String,
    pub seq: u32,
    pub runtime: Runtime,
    pub script: String,
    /// What went through the egress proxy.
    pub egress: EgressSummary,
    pub report: EnforcementReport,
}

/// Why a request could not become a spec. Stable codes for the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "`{name}` declares no entry point; name the script to run (e.g. `skillcell run {name} scripts/main.py`)"
    )]
    NoEntry { name: String },
    #[error("script {script:?} is not a file inside the skill folder ({why})")]
    BadScript { script: String, why: String },
    #[error(
        "cannot tell which runtime runs {script}: add `skillcell.runtime` (python3, bash, sh, node), a shebang, or a known extension"
    )]
    UnknownRuntime { script: String },
    #[error("a WASM module runs in the WASM cell, not in a native cell")]
    Wasm,
    #[error(
        "a native run needs a prepared cell; the skill changed between the check and the run, run it again"
    )]
    NoCell,
    #[error("the contract needs ${name}: pass {flag}")]
    MissingPlaceholder { name: String, flag: String },
    #[error("${name} is {path}: {why}")]
    BadPlaceholder {
        name: String,
        path: PathBuf,
        why: String,
    },
    #[error("the grant {grant} cannot be opened: {why}")]
    BadGrant { grant: String, why: String },
    #[error("`--path {name}=…` was given but the contract has no ${name} grant")]
    UnusedPlaceholder { name: String },
    #[error(
        "the grant {grant} ({path}) {how} skillcell's data dir {data}: a skill could read or rewrite the registry, the audit trail or other skills; grant a directory that does not overlap it"
    )]
    GrantCoversDataDir {
        grant: String,
        path: PathBuf,
        how: &'static str,
        data: PathBuf,
    },
    #[error(
        "the executable {exe} lies inside the write grant {grant}: one run could rewrite what the next one may execute"
    )]
    ExecInWriteGrant { exe: PathBuf, grant: String },
    #[error(transparent)]
    Runtime(#[from] runtimes::RuntimeError),
}

/// An error with a stable code, as refusals are audited.
pub(crate) trait RefusalCode: std::fmt::Display {
    fn code(&self) -> &'static str;
}

/// A refusal made of a stable code and a sentence.
pub(crate) struct Refusal(pub &'static str, pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl RefusalCode for Refusal {
    fn code(&self) -> &'static str {
        self.0
    }
}

impl RefusalCode for PlanError {
    fn code(&self) -> &'static str {
        PlanError::code(self)
    }
}

impl RefusalCode for skillcell_wasm::WasmError {
    fn code(&self) -> &'static str {
        skillcell_wasm::WasmError::code(self)
    }
}

impl PlanError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoEntry { .. } => "no_entry",
            Self::BadScript { .. } => "bad_script",
            Self::UnknownRuntime { .. } => "unknown_runtime",
            Self::Wasm => "wasm_in_native_cell",
            Self::NoCell => "changed_during_run",
            Self::MissingPlaceholder { .. } => "missing_placeholder",
            Self::BadPlaceholder { .. } => "bad_placeholder",
            Self::UnusedPlaceholder { .. } => "unused_placeholder",
            Self::BadGrant { .. } => "bad_grant",
            Self::GrantCoversDataDir { .. } => "grant_covers_data_dir",
            Self::ExecInWriteGrant { .. } => "exec_in_write_grant",
            Self::Runtime(_) => "runtime_unavailable",
        }
    }
}

/// Python starts isolated (-I: no PYTHON* variables, no user site, no script or current
/// directory on sys.path) and writes no bytecode (-B). This bootstrap then puts the script's
/// directory on sys.path with an importer that compiles the skill's modules from their source
/// and never loads a `.pyc` or a native module from the skill folder: the bytes that run are
/// the approved source. The script itself is read and compiled as source (a file that is really
/// bytecode or a zip archive fails to compile: runpy would have run it) and executed in a fresh
/// `__main__` module.
const PYTHON_BOOT: &str = "\
import sys, importlib.machinery as m
class _SourceOnly(m.SourceFileLoader):
    def get_code(self, fullname):
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, 'exec', dont_inherit=True)
_skill_finder = m.FileFinder.path_hook((_SourceOnly, m.SOURCE_SUFFIXES))
def _skill_hook(path, _root=sys.argv[1], _finder=_skill_finder):
    if path == _root or path.startswith(_root + '/'):
        return _finder(path)
    raise ImportError('not the skill folder')
sys.path_hooks.insert(0, _skill_hook)
sys.path_importer_cache.clear()
_script = sys.argv[2]
sys.argv = sys.argv[2:]
sys.path.insert(0, _script.rsplit('/', 1)[0])
del m, _SourceOnly, _skill_finder, _skill_hook
import types
with open(_script, 'rb') as _f:
    _code = compile(_f.read(), _script, 'exec', dont_inherit=True)
_main = types.ModuleType('__main__')
_main.__file__ = _script
_main.__builtins__ = __builtins__
sys.modules['__main__'] = _main
del types, _f
exec(_code, _main.__dict__)
";

/// Builds the cell spec for `request` against the resolved version. Pure apart from reading
/// the script's first line, discovering interpreters and canonicalizing placeholder paths.
pub fn plan(
    resolved: &Resolved,
    contract: &Contract,
    request: &RunRequest,
    cache_dir: &Path,
    data_dir: &Path,
    hostname: String,
) -> Result<(CellSpec, Runtime, String), PlanError> {
    let (script, runtime) = choose_script(&resolved.dir, contract, request)?;
    if runtime == Runtime::Wasm {
        return Err(PlanError::Wasm);
    }
    let interpreter: Interpreter = runtimes::discover(runtime, cache_dir)?;
    let mut system_lists: Vec<Vec<Mount>> = vec![interpreter.mounts.clone(), merged_usr_links()];
    let (grant_mounts, placeholder_env) = grant_mounts(contract, &request.placeholders)?;
    check_grants(&grant_mounts, data_dir)?;
    let mut exec = interpreter.exec.clone();
    for e in &contract.exec {
        let p = runtimes::resolve_executable(e, cache_dir)?;
        for g in &grant_mounts {
            if let MountKind::Grant {
                base,
                rest,
                writable: true,
            } = &g.kind
            {
                let host = base.join(rest);
                if p.program.starts_with(&host) {
                    return Err(PlanError::ExecInWriteGrant {
                        exe: p.program,
                        grant: g.target.clone(),
                    });
                }
            }
        }
        system_lists.push(p.mounts);
        exec.extend(p.exec);
    }
    exec.sort();
    exec.dedup();
    let mut mounts = runtimes::merge_mounts(system_lists.iter().map(Vec::as_slice));
    // A copy of exactly the files the gate hashed, each re-hashed while the cell copies it:
    // a store file changed after the check is refused, not run.
    mounts.push(Mount {
        target: SKILL_DIR.into(),
        kind: MountKind::VerifiedCopy {
            host: resolved.dir.clone(),
            files: resolved
                .files
                .iter()
                .map(|f| VerifiedFile {
                    path: f.path.clone(),
                    sha256: f.digest.to_string(),
                    size: f.size,
                    executable: f.executable,
                })
                .collect(),
        },
    });
    mounts.push(Mount {
        target: SCRATCH_DIR.into(),
        kind: MountKind::Tmpfs {
            size_bytes: contract.limits.tmp,
        },
    });
    mounts.push(Mount {
        target: HOME_DIR.into(),
        kind: MountKind::Dir,
    });
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), CELL_PATH.into()),
        ("HOME".into(), HOME_DIR.into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TMPDIR".into(), SCRATCH_DIR.into()),
    ];
    mounts.extend(grant_mounts);
    env.extend(placeholder_env);
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
    let program = interpreter
        .program
        .to_str()
        .ok_or_else(|| PlanError::BadScript {
            script: script.clone(),
            why: "interpreter path is not UTF-8".into(),
        })?
        .to_owned();
    let in_cell = format!("{SKILL_DIR}/{script}");
    let mut argv = match runtime {
        Runtime::Python3 => vec![
            program,
            "-I".into(),
            "-B".into(),
            "-c".into(),
            PYTHON_BOOT.into(),
            SKILL_DIR.into(),
            in_cell,
        ],
        Runtime::Bash => vec![program, "--noprofile".into(), "--norc".into(), in_cell],
        Runtime::Sh | Runtime::Node => vec![program, in_cell],
        Runtime::Wasm => return Err(PlanError::Wasm),
    };
    argv.extend(request.args.iter().cloned());
    // The one way out: the egress proxy. Set last and in both cases, replacing anything of the
    // same name (the contract cannot declare these; this keeps it so).
    let proxy = format!("http://127.0.0.1:{PROXY_PORT}");
    env.retain(|(k, _)| !PROXY_VARS.iter().any(|p| p.eq_ignore_ascii_case(k)));
    for var in PROXY_VARS {
        env.push((var.to_owned(), proxy.clone()));
    }
    if runtime == Runtime::Node {
        // Node 24 and later honour the proxy variables only when asked to.
        env.retain(|(k, _)| k != "NODE_USE_ENV_PROXY");
        env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    }
    let spec = CellSpec {
        argv,
        env,
        cwd: SKILL_DIR.into(),
        hostname,
        mounts,
        exec,
        limits: cell_limits(&contract.limits),
        proxy_port: Some(PROXY_PORT),
    };
    Ok((spec, runtime, script))
}

/// The script to run (relative to the skill folder, normalized) and its runtime: the
/// request's script or the contract's entry; the contract's runtime, else the shebang or the
/// extension.
pub fn choose_script(
    skill_dir: &Path,
    contract: &Contract,
    request: &RunRequest,
) -> Result<(String, Runtime), PlanError> {
    let script = match (&request.script, &contract.entry) {
        (Some(s), _) => s.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => {
            return Err(PlanError::NoEntry {
                name: request.name.clone(),
            });
        }
    };
    let script = normalize_script(&script)?;
    let host_script = skill_dir.join(&script);
    let meta = fs::symlink_metadata(&host_script).map_err(|e| PlanError::BadScript {
        script: script.clone(),
        why: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(PlanError::BadScript {
            script,
            why: "not a regular file".into(),
        });
    }
    let runtime = match contract.runtime {
        Some(r) => r,
        None => runtime_of(&host_script, &script)?,
    };
    Ok((script, runtime))
}

/// The host's top-level symlinks of a merged `/usr` (`/bin` → `usr/bin`…), so that paths
/// compiled into programs (`/bin/sh` in `os.system`) name the files the cell binds.
fn merged_usr_links() -> Vec<Mount> {
    ["/bin", "/sbin", "/lib", "/lib64"]
        .into_iter()
        .filter_map(|p| {
            let meta = fs::symlink_metadata(p).ok()?;
            if !meta.file_type().is_symlink() {
                return None;
            }
            let link_target = fs::read_link(p).ok()?.to_str()?.to_owned();
            Some(Mount {
                target: p.to_owned(),
                kind: MountKind::Symlink { link_target },
            })
        })
        .collect()
}

pub(crate) fn cell_limits(l: &Limits) -> CellLimits {
    CellLimits {
        memory_bytes: l.memory,
        cpu_ms: l.cpu_ms,
        wall_ms: l.wall_ms,
        pids: l.pids,
        fsize_bytes: l.fsize,
        nofile: l.nofile,
        output_bytes: l.output,
        tmp_bytes: l.tmp,
    }
}

/// A script path must be relative, normalized and free of `..`.
fn normalize_script(s: &str) -> Result<String, PlanError> {
    let bad = |why: &str| PlanError::BadScript {
        script: s.to_owned(),
        why: why.to_owned(),
    };
    let s2 = s.strip_prefix("./").unwrap_or(s);
    if s2.is_empty() || s2.starts_with('/') {
        return Err(bad("it must be a path relative to the skill folder"));
    }
    let mut parts = Vec::new();
    for c in Path::new(s2).components() {
        match c {
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| bad("the path is not UTF-8"))?
                    .to_owned(),
            ),
            Component::CurDir => {}
            _ => return Err(bad("`..` and absolute paths are not allowed")),
        }
    }
    if s2.contains('\0') {
        return Err(bad("NUL in the path"));
    }
    Ok(parts.join("/"))
}

/// The runtime from the shebang line, else from the extension.
fn runtime_of(host_script: &Path, script: &str) -> Result<Runtime, PlanError> {
    let mut first = [0u8; 256];
    let n = fs::File::open(host_script)
        .and_then(|mut f| f.read(&mut first))
        .unwrap_or(0);
    let line = String::from_utf8_lossy(&first[..n]);
    if let Some(shebang) = line.lines().next().and_then(|l| l.strip_prefix("#!")) {
        let mut words = shebang.split_whitespace();
        let mut prog = words.next().unwrap_or_default();
        if prog.ends_with("/env") {
            prog = words.find(|w| !w.starts_with('-')).unwrap_or_default();
        }
        let base = prog.rsplit('/').next().unwrap_or_default();
        let r = match base {
            b if b == "python3" || b == "python" || b.starts_with("python3.") => {
                Some(Runtime::Python3)
            }
            "bash" => Some(Runtime::Bash),
            "sh" | "dash" => Some(Runtime::Sh),
            "node" | "nodejs" => Some(Runtime::Node),
            _ => None,
        };
        if let Some(r) = r {
            return Ok(r);
        }
    }
    let ext = script.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match ext {
        "py" => Ok(Runtime::Python3),
        "sh" => Ok(Runtime::Sh),
        "bash" => Ok(Runtime::Bash),
        "js" | "mjs" | "cjs" => Ok(Runtime::Node),
        "wasm" | "wat" => Ok(Runtime::Wasm),
        _ => Err(PlanError::UnknownRuntime {
            script: script.to_owned(),
        }),
    }
}

/// Refuses grants that overlap skillcell's data dir, either way: a write grant over it would
/// let a skill rewrite its own contract in the registry or the audit trail, a read grant
/// would show it other skills and the trail. A grant that cannot be opened is left to the
/// launcher, which opens it again and refuses the run with the reason.
pub(crate) fn check_grants(grants: &[Mount], data_dir: &Path) -> Result<(), PlanError> {
    for g in grants {
        let MountKind::Grant { base, rest, .. } = &g.kind else {
            continue;
        };
        if let Ok(grant) = GrantFd::open(base, rest) {
            check_grant_host(&g.target, &grant, data_dir)?;
        }
    }
    Ok(())
}

/// Refuses `grant` when it contains or lies inside the data dir, judged by identity (a bind
/// mount or another path to it counts). A data dir that cannot be opened refuses every grant.
pub(crate) fn check_grant_host(
    target: &str,
    grant: &GrantFd,
    data: &Path,
) -> Result<(), PlanError> {
    let how = match grant.overlap_with(data) {
        Ok(None) => return Ok(()),
        Ok(Some(Overlap::Contains)) => "contains",
        Ok(Some(Overlap::Inside)) => "lies inside",
        Err(e) => {
            return Err(PlanError::BadGrant {
                grant: target.to_owned(),
                why: format!(
                    "cannot tell whether it overlaps the data dir {}: {e}",
                    data.display()
                ),
            });
        }
    };
    Err(PlanError::GrantCoversDataDir {
        grant: target.to_owned(),
        path: grant
            .real_path()
            .unwrap_or_else(|_| grant.shown().to_path_buf()),
        how,
        data: data.to_path_buf(),
    })
}

/// Environment variables as name/value pairs.
type EnvPairs = Vec<(String, String)>;

/// Mounts for the contract's fs grants, parents before children, and the
/// `SKILLCELL_PATH_<NAME>` variables for placeholders.
pub(crate) fn grant_mounts(
    contract: &Contract,
    given: &BTreeMap<String, PathBuf>,
) -> Result<(Vec<Mount>, EnvPairs), PlanError> {
    let mut bases: BTreeMap<String, PathBuf> = BTreeMap::new();
    for name in contract.placeholders() {
        let Some(path) = given.get(name) else {
            return Err(PlanError::MissingPlaceholder {
                name: name.to_owned(),
                flag: if name == "WORKSPACE" {
                    "--workspace DIR".into()
                } else {
                    format!("--path {name}=DIR")
                },
            });
        };
        let canonical = fs::canonicalize(path).map_err(|e| PlanError::BadPlaceholder {
            name: name.to_owned(),
            path: path.clone(),
            why: e.to_string(),
        })?;
        if !canonical.is_dir() {
            return Err(PlanError::BadPlaceholder {
                name: name.to_owned(),
                path: path.clone(),
                why: "not a directory".into(),
            });
        }
        bases.insert(name.to_owned(), canonical);
    }
    if let Some(name) = given.keys().find(|k| !bases.contains_key(*k)) {
        return Err(PlanError::UnusedPlaceholder { name: name.clone() });
    }
    let mut mounts: Vec<Mount> = contract
        .fs
        .iter()
        .map(|g| {
            let writable = g.access == Access::Write;
            match &g.path {
                GrantPath::Absolute(p) => Mount {
                    target: p.clone(),
                    kind: MountKind::Grant {
                        base: PathBuf::from("/"),
                        rest: p.trim_start_matches('/').to_owned(),
                        writable,
                    },
                },
                GrantPath::Placeholder { name, rest } => Mount {
                    target: if rest.is_empty() {
                        placeholder_target(name)
                    } else {
                        format!("{}/{rest}", placeholder_target(name))
                    },
                    kind: MountKind::Grant {
                        base: bases.get(name).cloned().unwrap_or_default(),
                        rest: rest.clone(),
                        writable,
                    },
                },
            }
        })
        .collect();
    // Parents first, so a child grant is mounted on top of its parent's mount.
    mounts.sort_by(|a, b| {
        a.target
            .matches('/')
            .count()
            .cmp(&b.target.matches('/').count())
            .then_with(|| a.target.cmp(&b.target))
    });
    let env = bases
        .keys()
        .map(|n| (format!("SKILLCELL_PATH_{n}"), placeholder_target(n)))
        .collect();
    Ok((mounts, env))
}

/// A hostname no two cells share and that tells nothing of the host.
fn random_hostname() -> String {
    format!("cell-{}", random_hex())
}

/// Eight random hex digits.
fn random_hex() -> String {
    let mut b = [0u8; 4];
    let _ = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    hex_lower(&b)
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Executor {
    /// Audits a run refused before anything started; the error to return.
    pub(crate) fn refuse_run(
        &self,
        request: &RunRequest,
        resolved: &Resolved,
        run_id: &str,
        e: &dyn RefusalCode,
    ) -> Result<ExecError, ExecError> {
        self.audit_event(
            Event::new(self.actor(), "run", Decision::Deny, e.to_string())
                .skill(&request.name)
                .version(resolved.version.tree_hash)
                .details(serde_json::json!({ "code": e.code(), "run": run_id })),
        )?;
        Ok(ExecError::Refused {
            name: request.name.clone(),
            code: e.code(),
            reason: e.to_string(),
        })
    }

    /// Resolves the skill, plans its cell, runs it in `cell` and audits the run with its
    /// enforcement report. Refusals (not usable, tampered, bad request) are audited too.
    pub fn run(
        &self,
        cell: Option<PreparedCell>,
        request: &RunRequest,
        out: &mut (dyn Write + Send),
        err: &mut (dyn Write + Send),
    ) -> Result<RunOutcome, ExecError> {
        let resolved = self.resolve(&request.name)?;
        let contract = resolved.version.contract.clone();
        let run_id = match &cell {
            Some(c) => c.run_id().to_owned(),
            None => format!("wasm-{}-{}", std::process::id(), random_hex()),
        };
        let chosen = choose_script(&resolved.dir, &contract, request);
        if let Ok((script, Runtime::Wasm)) = chosen {
            // An in-process run: a prepared native cell is not needed (dropping it ends its
            // init and removes its cgroups).
            drop(cell);
            return self.run_wasm(&resolved, request, script, run_id, out, err);
        }
        let planned = match (chosen, cell) {
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(PlanError::NoCell),
            (Ok(_), Some(cell)) => plan(
                &resolved,
                &contract,
                request,
                &self.home().run_dir(),
                self.home().root(),
                random_hostname(),
            )
            .map(|p| (p, cell)),
        };
        let ((spec, runtime, script), cell) = match planned {
            Ok(p) => p,
            Err(e) => return Err(self.refuse_run(request, &resolved, &run_id, &e)?),
        };
        let subject = crate::egress::Subject {
            actor: self.actor(),
            skill: &request.name,
            version: resolved.version.tree_hash,
            run_id: &run_id,
        };
        // The proxy's threads must not take a SIGINT meant for the run (it would kill the
        // process before the run is reported): they inherit this thread's mask.
        skillcell_sandbox_linux::block_interrupts()?;
        let (egress, listener_to) = match RunEgress::start(self.home(), &contract, subject) {
            Ok(x) => x,
            Err(reason) => {
                let refusal = Refusal("egress_unavailable", reason);
                return Err(self.refuse_run(request, &resolved, &run_id, &refusal)?);
            }
        };
        let mut cell = cell;
        cell.send_listener_to(listener_to);
        let report = cell.run(&spec, &request.stdin, out, err);
        let (egress_summary, written) = egress.finish();
        let report = match report {
            Ok(mut r) => {
                add_egress(&mut r, &contract, &egress_summary, written);
                r
            }
            Err(e) => {
                self.audit_event(
                    Event::new(self.actor(), "run", Decision::Deny, e.to_string())
                        .skill(&request.name)
                        .version(resolved.version.tree_hash)
                        .details(serde_json::json!({ "code": "cell_failed", "run": run_id })),
                )?;
                return Err(ExecError::Cell(e));
            }
        };
        let (decision, reason) = match &report.outcome {
            Outcome::SetupFailed { step, message } => (
                Decision::Deny,
                format!("the cell could not be built at {step}: {message}"),
            ),
            Outcome::Exited { code } => (Decision::Allow, format!("exited with {code}")),
            Outcome::Signaled { name, .. } => (Decision::Allow, format!("killed by {name}")),
            Outcome::Trapped { message } => (Decision::Allow, format!("trapped: {message}")),
        };
        self.audit_event(
            Event::new(self.actor(), "run", decision, reason)
                .skill(&request.name)
                .version(resolved.version.tree_hash)
                .details(serde_json::json!({
                    "run": run_id,
                    "seq": resolved.version.seq,
                    "runtime": runtime,
                    "script": script,
                    "args": request.args.len(),
                    "stdin_bytes": request.stdin.len(),
                    "placeholders": request.placeholders.keys().collect::<Vec<_>>(),
                    "egress": egress_summary,
                    "report": report,
                })),
        )?;
        Ok(RunOutcome {
            run_id,
            skill: request.name.clone(),
            seq: resolved.version.seq,
            runtime,
            script,
            egress: egress_summary,
            report,
        })
    }
}

/// The egress layer and the proxy's refusals, into the run's report.
pub(crate) fn add_egress(
    report: &mut EnforcementReport,
    contract: &Contract,
    summary: &EgressSummary,
    written: crate::egress::Written,
) {
    if !report.layers.is_empty() {
        let rules: Vec<String> = contract.network.iter().map(ToString::to_string).collect();
        report.layers.push(Layer {
            name: "egress".into(),
            status: if summary.failed.is_some() || written.lost > 0 {
                "partial".into()
            } else {
                "applied".into()
            },
            detail: format!(
                "loopback-only network; the one way out is the audited proxy at 127.0.0.1:{PROXY_PORT} ({}); {} connections, {} refused, {} bytes up, {} down, budget {}{}{}",
                if rules.is_empty() { "no host allowed".to_owned() } else { format!("allows {}", rules.join(" ")) },
                summary.connections,
                summary.refused,
                summary.bytes_up,
                summary.bytes_down,
                summary.budget_bytes,
                summary.failed.as_deref().map(|e| format!("; proxy failed: {e}")).unwrap_or_default(),
                if written.lost > 0 { format!("; {} records could not be audited", written.lost) } else { String::new() },
            ),
        });
    }
    report.denials.extend(written.denials);
    if summary.budget_exhausted {
        report.denials.push(Denial {
            code: "egress_limit".into(),
            what: format!(
                "the egress budget of {} bytes was used up",
                summary.budget_bytes
            ),
            allow_with: "skillcell.limits: egress=<more>".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_must_stay_inside_the_folder() {
        assert_eq!(
            normalize_script("./scripts/a.py").expect("ok"),
            "scripts/a.py"
        );
        assert_eq!(
            normalize_script("scripts//a.py").expect("ok"),
            "scripts/a.py"
        );
        for bad in ["", "/etc/passwd", "../x.py", "scripts/../../x.py"] {
            assert!(normalize_script(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn runtime_from_shebang_then_extension() {
        let dir = tempfile::tempdir().expect("tmp");
        let cases = [
            ("a", "#!/usr/bin/env python3\n", Some(Runtime::Python3)),
            ("b", "#!/bin/bash\n", Some(Runtime::Bash)),
            ("c", "#!/usr/bin/env -S node --foo\n", Some(Runtime::Node)),
            ("d.py", "print(1)\n", Some(Runtime::Python3)),
            ("e.sh", "echo\n", Some(Runtime::Sh)),
            ("f.txt", "hello\n", None),
            ("g.sh", "#!/usr/bin/python3.11\n", Some(Runtime::Python3)),
        ];
        for (name, body, want) in cases {
            let p = dir.path().join(name);
            fs::write(&p, body).expect("write");
            assert_eq!(runtime_of(&p, name).ok(), want, "{name}");
        }
    }
}
