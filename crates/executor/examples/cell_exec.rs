//! Runs one program in a skillcell cell, without a data dir: the benchmark's "our cell"
//! (`bench/cell.sh`). `cell_exec PROGRAM ARGS…` binds the program and its libraries;
//! `cell_exec --python ARGS…` binds the host's Python 3 as `skillcell run` does. Every layer
//! of a real run is applied (namespaces, pivot_root, Landlock, seccomp, cgroups, rlimits).
//! The discovery cache lives in `$CELL_EXEC_CACHE` (default: the system temp dir).

use std::path::PathBuf;

use skillcell_executor::runtimes;
use skillcell_sandbox::{CellLimits, CellSpec, Mount, MountKind};
use skillcell_sandbox_linux::PreparedCell;
use skillcell_types::{Executable, Runtime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return Err("usage: cell_exec [--python] PROGRAM ARGS…".into());
    }
    // Before anything that could start a thread.
    let cell = PreparedCell::prepare()?;
    let cache = std::env::var_os("CELL_EXEC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let (program, mut mounts, exec) = if args[0] == "--python" {
        args.remove(0);
        let i = runtimes::discover(Runtime::Python3, &cache)?;
        (i.program, i.mounts, i.exec)
    } else {
        let p = runtimes::resolve_executable(&Executable::Path(args.remove(0)), &cache)?;
        (p.program, p.mounts, p.exec)
    };
    mounts.push(Mount {
        target: "/tmp".into(),
        kind: MountKind::Tmpfs {
            size_bytes: 16 << 20,
        },
    });
    let mut argv = vec![
        program
            .to_str()
            .ok_or("program path is not UTF-8")?
            .to_owned(),
    ];
    argv.extend(args);
    let spec = CellSpec {
        argv,
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: "/".into(),
        hostname: "cell-bench".into(),
        mounts,
        exec,
        limits: CellLimits {
            memory_bytes: 512 << 20,
            cpu_ms: 10_000,
            wall_ms: 30_000,
            pids: 64,
            fsize_bytes: 16 << 20,
            nofile: 256,
            output_bytes: 1 << 20,
            tmp_bytes: 16 << 20,
        },
        proxy_port: None,
    };
    let report = cell.run(&spec, &[], &mut std::io::stdout(), &mut std::io::stderr())?;
    if let skillcell_sandbox::Outcome::SetupFailed { step, message } = &report.outcome {
        return Err(format!("cell failed at {step}: {message}").into());
    }
    if std::env::var_os("CELL_EXEC_TIMINGS").is_some() {
        let steps: Vec<String> = report
            .timings
            .iter()
            .map(|(s, us)| format!("{s}={us}"))
            .collect();
        eprintln!("timings {}", steps.join(" "));
    }
    std::process::exit(report.exit_code());
}
