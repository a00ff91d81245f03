//! `skillcell run`: one skill, one fresh cell.
//!
//! Order matters: the cell's init is cloned (and its cgroups made) while this process is
//! single-threaded and unrestricted; then the executor role restricts itself with Landlock
//! (the cell's mounts are made by the init, which Landlock does not bind); then the skill is
//! resolved, planned and run.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use serde::Serialize;
use skillcell_executor::run::RunRequest;
use skillcell_executor::{CellKind, ExecError, Executor};
use skillcell_sandbox::{EnforcementReport, Outcome};
use skillcell_sandbox_linux::PreparedCell;
use skillcell_store::Home;
use skillcell_types::text::escape;

use crate::output::{Failure, print_json};

/// Exit codes of `run` (docker's convention): the skill's own status when it ran (128 + the
/// signal when it was killed), else one of these.
pub mod code {
    /// skillcell refused before the cell started (not installed, not usable, tampered, bad
    /// request); the message says which.
    pub const REFUSED: u8 = 125;
    /// The cell could not be built: a mandatory layer failed to apply, so nothing ran.
    pub const CELL_FAILED: u8 = 126;
}

/// Largest `--input`.
const MAX_INPUT: u64 = 64 << 20;

/// Arguments of `run`, as parsed by clap.
#[derive(Debug)]
pub struct RunArgs<'a> {
    pub name: &'a str,
    pub script: Option<&'a str>,
    pub input: Option<&'a str>,
    pub workspace: Option<&'a PathBuf>,
    pub paths: &'a [String],
    pub report: bool,
    pub args: &'a [String],
}

#[derive(Serialize)]
struct JsonRun<'a> {
    run: &'a str,
    skill: &'a str,
    version: u32,
    script: &'a str,
    exit_code: i32,
    stdout: String,
    stderr: String,
    /// What went through the egress proxy.
    egress: &'a skillcell_egress::EgressSummary,
    report: &'a EnforcementReport,
}

fn refused(kind: &'static str, message: impl Into<String>) -> Failure {
    Failure::new(code::REFUSED, kind, message)
}

fn read_input(spec: &str) -> Result<Vec<u8>, Failure> {
    let bytes = match spec.strip_prefix('@') {
        Some("-") => {
            let mut v = Vec::new();
            std::io::stdin()
                .take(MAX_INPUT + 1)
                .read_to_end(&mut v)
                .map_err(|e| refused("bad_input", format!("cannot read stdin: {e}")))?;
            v
        }
        Some(path) => {
            let mut v = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut v))
                .map_err(|e| refused("bad_input", format!("cannot read {path}: {e}")))?;
            v
        }
        None => spec.as_bytes().to_vec(),
    };
    if bytes.len() as u64 > MAX_INPUT {
        return Err(refused("bad_input", "--input is larger than 64 MiB"));
    }
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .map_err(|e| refused("bad_input", format!("--input is not valid JSON: {e}")))?;
    Ok(bytes)
}

fn placeholders(args: &RunArgs<'_>) -> Result<BTreeMap<String, PathBuf>, Failure> {
    let mut map = BTreeMap::new();
    if let Some(w) = args.workspace {
        map.insert("WORKSPACE".to_owned(), w.clone());
    }
    for p in args.paths {
        let Some((name, dir)) = p.split_once('=') else {
            return Err(Failure::usage(format!("--path {p:?}: expected NAME=DIR")));
        };
        let valid = name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Failure::usage(format!(
                "--path {p:?}: NAME must be upper case letters, digits and _"
            )));
        }
        if map.insert(name.to_owned(), PathBuf::from(dir)).is_some() {
            return Err(Failure::usage(format!("${name} given twice")));
        }
    }
    Ok(map)
}

fn exec_failure(e: ExecError) -> Failure {
    match e {
        ExecError::Refused { code, reason, name } => {
            refused(code, format!("refused to run `{name}`: {reason}"))
        }
        e @ ExecError::Cell(_) => Failure::new(code::CELL_FAILED, "cell_failed", e.to_string()),
        e @ ExecError::Landlock(_) => Failure::new(code::CELL_FAILED, "landlock", e.to_string()),
        e => refused("executor", e.to_string()),
    }
}

pub fn run(home: &Home, args: &RunArgs<'_>, json: bool) -> Result<u8, Failure> {
    let stdin = match args.input {
        Some(i) => read_input(i)?,
        None => Vec::new(),
    };
    let request = RunRequest {
        name: args.name.to_owned(),
        script: args.script.map(str::to_owned),
        stdin,
        args: args.args.to_vec(),
        placeholders: placeholders(args)?,
        caller_env: std::env::vars_os().collect(),
    };
    // A native cell is prepared before anything else can start a thread, and before Landlock;
    // a WASM run needs none, but the executor must keep its write grants writable.
    let (cell, writable, grants, removable) = match skillcell_executor::cell_kind(home, &request) {
        CellKind::Wasm { writable } => (None, Vec::new(), writable, Vec::new()),
        CellKind::Native => {
            let cell = PreparedCell::prepare()
                .map_err(|e| Failure::new(code::CELL_FAILED, "cell_failed", e.to_string()))?;
            let (w, r) = (cell.writable_paths(), cell.removable_in());
            (Some(cell), w, Vec::new(), r)
        }
    };
    let exec =
        Executor::enter_with(home.clone(), &writable, &grants, &removable).map_err(exec_failure)?;
    // The executor's Landlock holds the directories now; the run opens its grants afresh.
    drop(grants);
    let outcome = if json {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let o = exec
            .run(cell, &request, &mut out, &mut err)
            .map_err(exec_failure)?;
        print_json(&JsonRun {
            run: &o.run_id,
            skill: &o.skill,
            version: o.seq,
            script: &o.script,
            exit_code: o.report.exit_code(),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            egress: &o.egress,
            report: &o.report,
        })?;
        o
    } else {
        let o = exec
            .run(
                cell,
                &request,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )
            .map_err(exec_failure)?;
        explain(&o.report, args.report);
        o
    };
    match &outcome.report.outcome {
        // With --json the run document above already says so, and is the only document.
        Outcome::SetupFailed { .. } if json => Ok(code::CELL_FAILED),
        Outcome::SetupFailed { step, message } => Err(Failure::new(
            code::CELL_FAILED,
            "cell_failed",
            format!(
                "the cell could not be built at {step}: {message}; nothing of the skill ran. Run `skillcell doctor`"
            ),
        )),
        _ => Ok(u8::try_from(outcome.report.exit_code().clamp(0, 255)).unwrap_or(255)),
    }
}

/// After a run, tells the person (on stderr) what a layer stopped, and how to allow it.
fn explain(report: &EnforcementReport, full: bool) {
    let mut err = std::io::stderr().lock();
    for d in &report.denials {
        let _ = if d.allow_with.is_empty() {
            writeln!(err, "skillcell: {} ({})", escape(&d.what), escape(&d.code))
        } else {
            writeln!(
                err,
                "skillcell: {} (to allow: {})",
                escape(&d.what),
                escape(&d.allow_with)
            )
        };
    }
    if full {
        let _ = writeln!(
            err,
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    }
}
