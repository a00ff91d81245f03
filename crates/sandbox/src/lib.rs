//! What a cell is asked to enforce, and what it reports back.
//!
//! A [`CellSpec`] is finished policy: concrete paths, argv, environment and limits. The Linux
//! cell (`skillcell-sandbox-linux`) and, later, the WASM cell receive one and know nothing of
//! contracts, approvals or the store; `skillcell-executor` is the only crate that turns a
//! contract into a spec. An [`EnforcementReport`] says which layers were applied, what the
//! limits were, how the run ended and what it used.
//!
//! This crate does no I/O and makes no decisions.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the skill's own (immutable, read-only) folder is mounted inside a cell.
pub const SKILL_DIR: &str = "/skill";
/// The private, size-capped scratch tmpfs inside a cell.
pub const SCRATCH_DIR: &str = "/tmp";
/// `HOME` inside a cell: a directory on the scratch tmpfs.
pub const HOME_DIR: &str = "/tmp/home";
/// Where caller-supplied placeholder paths are mounted: `$WORKSPACE` → `/mnt/workspace`.
pub const PLACEHOLDER_ROOT: &str = "/mnt";
/// The uid and gid the skill runs as inside the cell (mapped to the caller's outside).
pub const CELL_UID: u32 = 1000;
pub const CELL_GID: u32 = 1000;
/// The port of the egress proxy's listener on `127.0.0.1` inside a cell's network namespace.
pub const PROXY_PORT: u16 = 3128;

/// Everything a cell needs to run one program. Paths in `target`, `argv[0]`, `cwd` and `exec`
/// are paths *inside* the cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellSpec {
    /// `argv[0]` is the absolute path of the program inside the cell.
    pub argv: Vec<String>,
    /// The complete environment; nothing of the caller's is inherited.
    pub env: Vec<(String, String)>,
    /// Working directory inside the cell.
    pub cwd: String,
    /// The cell's UTS hostname.
    pub hostname: String,
    /// Mounts, applied in order on top of an empty tmpfs root (before `/proc` and `/dev`,
    /// which every cell gets).
    pub mounts: Vec<Mount>,
    /// Files the skill may execute (Landlock `EXECUTE`): its interpreter, the dynamic loader and
    /// declared executables. Nothing else can be passed to `execve`.
    pub exec: Vec<String>,
    pub limits: CellLimits,
    /// When set, the cell's init listens on `127.0.0.1:<port>` inside the cell's network
    /// namespace (a socket keeps the namespace it was made in) and hands the listening socket
    /// to the supervisor, which serves it from outside; Landlock lets the skill connect to this
    /// one port and nothing else. No process of the proxy runs inside the cell.
    #[serde(default)]
    pub proxy_port: Option<u16>,
}

/// One mount inside the cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the cell.
    pub target: String,
    pub kind: MountKind,
}

/// What is mounted. Every mount is `nosuid` and `nodev`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MountKind {
    /// A host file or directory the operator trusts (interpreter, libraries, the skill's store
    /// folder), bound read-only. `host` must be canonical: the cell opens it refusing every
    /// symlink, so a path that is not canonical fails the launch. `exec: false` adds `noexec`.
    System { host: PathBuf, exec: bool },
    /// A contract grant: `rest` (relative, may be empty) resolved beneath `base` (a canonical
    /// directory chosen by the caller or the operator) without following any symlink, so a link
    /// planted by an earlier run cannot redirect it. Always `noexec`.
    Grant {
        base: PathBuf,
        rest: String,
        writable: bool,
    },
    /// A read-only, `noexec` tmpfs holding a copy of `files` from the host directory `host`
    /// (canonical, opened refusing symlinks, each file opened beneath it refusing symlinks),
    /// each file hashed while it is copied and compared with its approved digest: the cell
    /// holds exactly the approved bytes, or does not start. Whoever changes the host folder
    /// after the check cannot change what the run reads.
    VerifiedCopy {
        host: PathBuf,
        files: Vec<VerifiedFile>,
    },
    /// A private tmpfs capped at `size_bytes`; `noexec`.
    Tmpfs { size_bytes: u64 },
    /// A generated read-only file (e.g. `/etc/passwd`).
    File { contents: String },
    /// A symbolic link (e.g. `/lib64` → `usr/lib64`), so host paths compiled into programs
    /// still resolve.
    Symlink { link_target: String },
    /// An empty directory owned by the cell's user, made on the mount below it (e.g. `HOME` on
    /// the scratch tmpfs).
    Dir,
}

/// One file of a [`MountKind::VerifiedCopy`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedFile {
    /// `/`-separated, relative, without `.` or `..` components.
    pub path: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    pub size: u64,
    pub executable: bool,
}

/// Limits a cell enforces. Zero never means "unlimited": the runtime always fills them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellLimits {
    /// Memory of the whole cell (cgroup), also RLIMIT_DATA per process.
    pub memory_bytes: u64,
    /// CPU time of the whole cell (cgroup accounting), also RLIMIT_CPU per process.
    pub cpu_ms: u64,
    /// Wall-clock time from start to kill.
    pub wall_ms: u64,
    /// Processes and threads in the cell (cgroup `pids`, RLIMIT_NPROC).
    pub pids: u64,
    /// Largest file the skill may write (RLIMIT_FSIZE).
    pub fsize_bytes: u64,
    /// Open file descriptors per process (RLIMIT_NOFILE).
    pub nofile: u64,
    /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub output_bytes: u64,
    /// Size of the scratch tmpfs.
    pub tmp_bytes: u64,
}

/// Which limit ended a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitHit {
    Memory,
    Cpu,
    Wall,
    Pids,
    Fsize,
}

impl LimitHit {
    /// The `skillcell.limits` key that raises this limit.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Cpu => "cpu",
            Self::Wall => "wall",
            Self::Pids => "pids",
            Self::Fsize => "fsize",
        }
    }
}

/// How the program in the cell ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Outcome {
    /// It exited with this code.
    Exited { code: i32 },
    /// It was killed by this signal.
    Signaled { signal: i32, name: String },
    /// The cell could not be built; nothing of the skill ran.
    SetupFailed { step: String, message: String },
    /// A WASM module trapped (a limit, or a fault of its own); reported as exit code 134,
    /// as an abort would be.
    Trapped { message: String },
}

/// One enforcement layer and how it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// `namespaces`, `filesystem`, `landlock`, `seccomp`, `capabilities`, `rlimits`, `cgroup`,
    /// `no_new_privs`, `session`, `environment`.
    pub name: String,
    /// `applied` or `partial` (the detail says what is missing).
    pub status: String,
    pub detail: String,
}

/// What a run used, measured from outside the cell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub wall_ms: u64,
    /// CPU time of every process of the cell (cgroup accounting).
    pub cpu_ms: u64,
    /// Peak memory of the cell (cgroup), when the kernel reports it.
    pub memory_peak_bytes: Option<u64>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

/// Everything a cell enforced, and how the run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementReport {
    pub layers: Vec<Layer>,
    /// `v1`, `v2`, or `v1+v2` on hybrid hosts, with the controller each limit used.
    pub cgroup: CgroupReport,
    pub landlock_abi: i32,
    pub limits: CellLimits,
    pub outcome: Outcome,
    /// The limit that killed the run, if one did.
    pub limit_hit: Option<LimitHit>,
    /// What a layer refused that the cell could see from outside, each with the contract line
    /// that would allow it.
    pub denials: Vec<Denial>,
    pub usage: Usage,
    /// Launch steps and when they ended, in µs since the supervisor started preparing the
    /// cell (`prepared`, `spec_sent`, `captured`, `placed`, `built`, `forked`, `landlocked`,
    /// `filtered`, `exec`, `exited`): where start-up time goes.
    pub timings: Vec<(String, u64)>,
}

/// Something a layer refused, in words a model can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// Stable code: `memory_limit`, `cpu_limit`, `wall_limit`, `pids_limit`, `fsize_limit`,
    /// `output_truncated`.
    pub code: String,
    /// What was denied.
    pub what: String,
    /// The `skillcell.*` line that would allow it.
    pub allow_with: String,
}

/// Which cgroup hierarchy enforced each limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupReport {
    /// `v1`, `v2` or `v1+v2`.
    pub version: String,
    /// Controller → the directory of this run's cgroup for it.
    pub controllers: Vec<(String, PathBuf)>,
}

impl EnforcementReport {
    /// The exit code a caller of `skillcell run` gets: the program's own code, 128 + signal
    /// when it was killed, 126 when the cell could not be built.
    pub fn exit_code(&self) -> i32 {
        match &self.outcome {
            Outcome::Exited { code } => *code,
            Outcome::Signaled { signal, .. } => 128 + signal,
            Outcome::SetupFailed { .. } => 126,
            Outcome::Trapped { .. } => 134,
        }
    }
}

/// Placeholder mount point inside the cell: `WORKSPACE` → `/mnt/workspace`.
pub fn placeholder_target(name: &str) -> String {
    format!("{PLACEHOLDER_ROOT}/{}", name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_targets_are_lower_case_under_mnt() {
        assert_eq!(placeholder_target("WORKSPACE"), "/mnt/workspace");
        assert_eq!(placeholder_target("DATA_2"), "/mnt/data_2");
    }

    #[test]
    fn exit_code_of_a_signal_is_128_plus() {
        let mut r = EnforcementReport {
            layers: vec![],
            cgroup: CgroupReport::default(),
            landlock_abi: 7,
            limits: CellLimits {
                memory_bytes: 1,
                cpu_ms: 1,
                wall_ms: 1,
                pids: 1,
                fsize_bytes: 1,
                nofile: 1,
                output_bytes: 1,
                tmp_bytes: 1,
            },
            outcome: Outcome::Signaled {
                signal: 9,
                name: "SIGKILL".into(),
            },
            limit_hit: None,
            denials: vec![],
            usage: Usage::default(),
            timings: vec![],
        };
        assert_eq!(r.exit_code(), 137);
        r.outcome = Outcome::Exited { code: 3 };
        assert_eq!(r.exit_code(), 3);
        let json = serde_json::to_string(&r).expect("json");
        let back: EnforcementReport = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
    }
}
