//! Host interpreter discovery: which host program runs a runtime (`python3`, `bash`, `sh`,
//! `node`) or a declared executable, and the smallest set of host paths a cell must bind
//! read-only for it to start.
//!
//! A cell's root is an empty tmpfs: only what is bound appears. For a program this module lists
//! - the program itself, canonical, and every shared library the dynamic loader maps for it,
//!   each *file* bound on its own with `exec: true`. Mounts with `exec: false` are `noexec`, and
//!   `noexec` also refuses `mmap(PROT_EXEC)`, so a library on such a mount cannot be loaded;
//!   binding the files one by one keeps the rest of `/usr/lib` out of the cell;
//! - the ELF interpreter named by `PT_INTERP` (`/lib64/ld-linux-x86-64.so.2`), bound the same
//!   way, and `/etc/ld.so.cache` (`noexec`), so the loader looks libraries up at the paths it
//!   used on the host;
//! - for Python, the directories the interpreter puts on `sys.path` before `site` runs and the
//!   sysconfig install dirs (`stdlib`, `platstdlib`, `purelib`, `platlib`) that exist, bound
//!   `noexec`; each directory inside them that directly holds a shared object (`lib-dynload`,
//!   a package with an extension module) is bound again on top with `exec: true`, and the
//!   libraries those modules need are bound like the program's (so `ssl`, `sqlite3`, `ctypes`
//!   and `zlib` import), except those of the few modules in `SKIPPED_MODULES` (`_tkinter`,
//!   `nis`), which a cell could not use anyway: importing them fails with `ImportError`;
//! - for a Python in an install prefix of its own (pyenv's `~/.pyenv/versions/3.11.7`, a build
//!   in `/opt/python3.12`: `sys.base_prefix`, canonical, holds the program and is not a shared
//!   hierarchy such as `/usr`; see `own_prefix`), that prefix as *one* directory with
//!   `exec: true`, instead of the program, `libpython`, the standard library, `lib-dynload`
//!   and `site-packages` one by one. Each bind costs the cell about 50 µs at launch (pyenv's
//!   3.11 here: 22 binds instead of 53). The trade-off: everything under the prefix (its `bin/`
//!   scripts, headers, `share/`, the test suite) is readable in the cell and can be mapped as
//!   code, where the per-directory layout kept the `.py` trees `noexec`; an ELF program there
//!   other than the interpreter (conda ships many) cannot be `execve`d (the `exec` list does
//!   not change), but the dynamic loader, which is on it, can run one inside the skill's own
//!   process, as it can the C library. That is no more than a skill can do with machine code
//!   it carries (see `docs/cell.md`, known limits): such code is under every layer. The prefix
//!   is the interpreter's own install, put there by the operator, and bound read-only.
//!   Directories on `sys.path` outside the prefix (a virtual environment's `site-packages`)
//!   keep the per-directory layout, and so does a Python whose prefix is `/usr` (Debian's
//!   `python3`);
//! - a [`MountKind::Symlink`] for every symbolic link met on the way to any of those paths
//!   (`/lib64` → `usr/lib64` on merged-/usr systems, `/usr/bin/sh` → `dash`), so paths compiled
//!   into programs, such as `PT_INTERP` or those in `ld.so.cache`, resolve inside the cell as
//!   they do outside.
//!
//! Every [`MountKind::System`] mount has `target == host`, a canonical path. Mounts are sorted
//! by target, so a directory comes before anything beneath it: a symlink's parent exists before
//! it, and a later mount never hides an earlier one. A path already visible through a bound
//! directory (with at least the `exec` it needs) gets no mount of its own. No whole system
//! directory such as `/usr`, `/usr/lib` or `/usr/local` is ever bound. The `exec` list (what
//! Landlock lets the cell `execve`) holds the program and its ELF interpreter, canonical;
//! `exec: true` on a read-only mount of operator-installed files only lets them be mapped as
//! code, it does not make them executable.
//!
//! Shared libraries are listed by the system `ldd` (`/usr/bin/ldd`), run with a cleared
//! environment, rather than by parsing `DT_NEEDED` ourselves: the answer then comes from the
//! loader that will run the program, with its search rules (`ld.so.cache`, hwcaps
//! subdirectories, `RUNPATH` with `$ORIGIN`, defaults) that a reimplementation would have to
//! track. glibc's `ldd` asks the loader to trace (`LD_TRACE_LOADED_OBJECTS`), which maps the
//! objects but runs none of their code; and the objects are interpreters and programs the
//! operator installed, or approved by naming them in a contract. `PT_INTERP` is read from the
//! ELF program headers directly (a few lines, no dependency).
//!
//! Discovery runs programs (Python: itself, then `ldd` on its extension modules; a declared
//! executable: `ldd`) and takes from a few milliseconds to half a second, so [`discover`] and
//! [`resolve_executable`] cache their results in `<cache dir>/runtimes.json`, keyed by what
//! was asked (the runtime and the environment it was asked in, or the declared executable) and
//! the program found for it, and checked against the (device, inode, size, mtime) of every path
//! bound, and of every path a bound install prefix stands for (the program, `libpython`, the
//! Python directories and those holding extension modules), so that an upgrade or a `pip
//! install` inside the prefix is noticed as before. A stale or unreadable entry is ignored and
//! rewritten (temp file + rename); a warm call costs a few stats and starts no process.
//!
//! This module refuses: the caller's `PATH` for declared executables (a fixed
//! [`FIXED_PATH`] is searched), relative `PATH` entries, non-UTF-8 paths (cell specs name paths
//! as strings), and programs that are neither ELF binaries nor `#!` scripts.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skillcell_sandbox::{Mount, MountKind};
use skillcell_types::{Executable, Runtime};

/// The fixed search path for declared executables, `bash`, and the fallback for `python3` and
/// `node`. The caller's `PATH` is never used for declared executables.
pub const FIXED_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Environment variable with which the operator names the Python interpreter to use.
pub const PYTHON_ENV: &str = "SKILLCELL_PYTHON";
/// The cache file, inside the cache directory given to [`discover`] and
/// [`resolve_executable`].
pub const CACHE_FILE: &str = "runtimes.json";

const LD_SO_CACHE: &str = "/etc/ld.so.cache";
const LDD: [&str; 2] = ["/usr/bin/ldd", "/bin/ldd"];
/// Environment variables passed to an interpreter asked about itself (a pyenv or nodenv shim
/// needs them to pick a version); everything else is cleared.
const PROBE_ENV_NAMES: [&str; 2] = ["PATH", "HOME"];
const PROBE_ENV_PREFIXES: [&str; 5] = ["PYENV_", "NODENV_", "ASDF_", "VOLTA_", "MISE_"];
/// How long a probe (an interpreter or `ldd`) may run.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a probe's output may stay open after it exited (held by a process it started).
const OUTPUT_GRACE: Duration = Duration::from_secs(5);
/// How often a probe whose output is still open is checked for having exited; its end of file
/// ends the wait at once, this only bounds how late a stuck pipe is noticed.
const EXIT_CHECK: Duration = Duration::from_millis(100);
/// Output kept of a probe, per stream.
const PROBE_OUTPUT_CAP: u64 = 4 << 20;
/// The cache file is ignored beyond this size.
const CACHE_CAP: u64 = 8 << 20;
/// Entries kept in the cache file (interpreters and declared executables); the oldest go
/// first.
const CACHE_ENTRIES: usize = 64;
/// 2: entries are keyed by a runtime or a declared executable. 3: a Python in an install
/// prefix of its own is bound as that one directory, and the libraries of [`SKIPPED_MODULES`]
/// are left out (a format-2 entry would still bind them one by one).
const CACHE_FORMAT: u32 = 3;
/// Symbolic links followed resolving one path (the kernel's limit).
const MAX_SYMLINKS: u32 = 40;
/// `#!` interpreters nested in a declared executable (the kernel allows 4).
const MAX_SHEBANG_DEPTH: u32 = 4;
/// Objects given to one `ldd` run.
const LDD_BATCH: usize = 128;
/// Top-level Python extension modules whose shared libraries are not bound, each with the
/// reason: a cell could not use them, and their libraries are most of a Python's binds
/// (pyenv's 3.11 on Debian 12 with Tk installed: 27 of its 46 library files). The module
/// file itself stays (its directory is bound), so `import` fails with `ImportError` naming
/// the missing library. A module of the same name inside a package is not one of these and
/// keeps its libraries.
const SKIPPED_MODULES: [(&str, &str); 2] = [
    (
        "_tkinter",
        "Tk draws on an X display and a cell has none; it brings Tcl/Tk, X11, xcb, Xft, \
         fontconfig, freetype, png and brotli",
    ),
    (
        "nis",
        "NIS (YP) asks a server over RPC and a cell has no network; it brings libnsl, libtirpc \
         and Kerberos",
    ),
];
/// Install prefixes a Python may report as its own that are never bound whole: hierarchies
/// shared with other software (`make install` defaults to `/usr/local`), so a Python there
/// gets the per-directory layout. See [`own_prefix`] for the other refusals.
const SHARED_PREFIXES: [&str; 4] = ["/", "/usr", "/usr/local", "/opt"];

/// Asks Python where it lives and what it is: `sys.executable`, the version, its install
/// prefix, and the directories of its standard library and install scheme (run with `-I -S`,
/// so `sys.path` holds only the interpreter's own entries).
const PYTHON_PROBE: &str = "import sys, sysconfig, json
p = sysconfig.get_paths()
d = [p[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib') if k in p]
print(json.dumps({'executable': sys.executable,
                  'version': '%d.%d.%d' % sys.version_info[:3],
                  'base_prefix': sys.base_prefix,
                  'dirs': d + [e for e in sys.path if e]}))";
const NODE_PROBE: &str =
    "console.log(JSON.stringify({executable: process.execPath, version: process.version}))";

/// A runtime's interpreter on this host, and what a cell needs to run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    pub runtime: Runtime,
    /// Canonical host path (no symbolic link in it), and `argv[0]` inside the cell, where it is
    /// bound at the same path.
    pub program: PathBuf,
    /// `Python 3.11.7`, `bash 5.2.15(1)-release`, `Node.js v20.11.1`, `sh (dash)`.
    pub version: String,
    /// Read-only binds (`target == host`, canonical) and symbolic links, sorted by target; see
    /// the module documentation.
    pub mounts: Vec<Mount>,
    /// What the cell lets `execve`: the program and its ELF interpreter, canonical.
    pub exec: Vec<String>,
}

/// A declared executable on this host, and what a cell needs to run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProgram {
    /// Canonical host path, bound at the same path inside the cell.
    pub program: PathBuf,
    /// Like [`Interpreter::mounts`]. For a `#!` script, its interpreter's too.
    pub mounts: Vec<Mount>,
    /// The program, its ELF interpreter and, for a script, its `#!` interpreter chain.
    pub exec: Vec<String>,
}

/// Why a runtime or an executable cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{what} not found {searched}; {fix}")]
    NotFound {
        what: String,
        /// `on PATH or in /usr/local/bin:/usr/bin:/bin`, …
        searched: String,
        fix: String,
    },
    #[error("the wasm runtime has no host interpreter; wasm skills run in the wasm cell")]
    NoHostInterpreter { runtime: Runtime },
    #[error(
        "`{name}` is not a bare program name; name a program without `/`, or declare its absolute path"
    )]
    BadName { name: String },
    #[error("{path} cannot be run: {reason}")]
    NotExecutable { path: PathBuf, reason: String },
    #[error("cannot inspect {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not valid UTF-8; cells name paths as UTF-8 strings")]
    NotUtf8 { path: PathBuf },
    #[error("{path}: more than {MAX_SYMLINKS} symbolic links to follow")]
    SymlinkLoop { path: PathBuf },
    #[error("running {program} to ask where it lives failed: {detail}")]
    Probe { program: PathBuf, detail: String },
    #[error("listing the shared libraries of {object} failed: {detail}")]
    Ldd { object: PathBuf, detail: String },
    #[error(
        "{object} needs {library}, which the dynamic loader cannot find; install the package that provides it"
    )]
    MissingLibrary { object: PathBuf, library: String },
    #[error("cannot write the runtime cache {path}: {source}; make the directory writable")]
    Cache { path: PathBuf, source: io::Error },
}

/// Finds the interpreter of `runtime` and what a cell must bind for it, using the cache in
/// `cache_dir` (created if missing).
///
/// - `python3`: the path in `SKILLCELL_PYTHON` if set, else `python3` on the caller's `PATH`
///   (absolute entries only), then on [`FIXED_PATH`]. The program found (often a pyenv shim) is
///   run once as `-I -S -c …` in `/`, with only `PATH`, `HOME` and version-manager variables
///   (`PYENV_*`, …), to learn `sys.executable`, the version and the library directories.
/// - `node`: `node` on the caller's `PATH`, then on [`FIXED_PATH`]; asked the same way.
/// - `bash`: `bash` on [`FIXED_PATH`]. `sh`: `/bin/sh`.
/// - `wasm`: refused, it has no host interpreter.
pub fn discover(runtime: Runtime, cache_dir: &Path) -> Result<Interpreter, RuntimeError> {
    discover_with(runtime, cache_dir, &HostEnv::from_process())
}

/// Resolves an executable a contract declares, using the cache in `cache_dir` (created if
/// missing) like [`discover`]. A path must name a regular file with an execute bit; a name is
/// searched on [`FIXED_PATH`] only (both checked on every call, a few stats). ELF binaries and
/// `#!` scripts are accepted (for a script, its interpreter chain is bound and executable too;
/// an interpreter that needs more than its binary and libraries, such as Python's standard
/// library, gets only those).
pub fn resolve_executable(exe: &Executable, cache_dir: &Path) -> Result<HostProgram, RuntimeError> {
    let found = match exe {
        Executable::Path(p) => {
            let path = PathBuf::from(p);
            if !path.is_absolute() {
                return Err(RuntimeError::NotExecutable {
                    path,
                    reason: "it is not an absolute path".into(),
                });
            }
            check_executable(&path)?;
            path
        }
        Executable::Name(name) => find_fixed(name)?,
    };
    let key = CacheKey::Executable {
        requested: exe.clone(),
        found: found.clone(),
    };
    let cache_path = cache_dir.join(CACHE_FILE);
    if let Some(hit) = cache_lookup(&cache_path, &key) {
        return Ok(hit.into_host_program());
    }
    let mut plan = Plan::default();
    let program = plan.program(&found, MAX_SHEBANG_DEPTH)?;
    let Planned { mounts, exec, .. } = plan.finish()?;
    let entry = Entry {
        program,
        version: String::new(),
        mounts,
        exec,
    };
    cache_store(cache_dir, &cache_path, key, &entry, vec![found])?;
    Ok(entry.into_host_program())
}

/// Merges mount lists produced by this module (an interpreter's and declared executables') into
/// one list with the same guarantees: sorted, no duplicate target, nothing beneath a bound
/// directory that the directory already provides. Mounts of other kinds, or `System` mounts
/// whose target is not their host path, are kept unchanged after the others.
pub fn merge_mounts<'a>(lists: impl IntoIterator<Item = &'a [Mount]>) -> Vec<Mount> {
    let mut layout = Layout::default();
    let mut rest = Vec::new();
    for mount in lists.into_iter().flatten() {
        match &mount.kind {
            MountKind::System { host, exec } if host.as_os_str() == mount.target.as_str() => {
                layout.bind(host.clone(), host.is_dir(), *exec);
            }
            MountKind::Symlink { link_target } => {
                layout.link(PathBuf::from(&mount.target), link_target.clone());
            }
            _ => rest.push(mount.clone()),
        }
    }
    let mut out = layout.into_mounts();
    out.extend(rest);
    out
}

/// What discovery reads of the process environment (a value, so tests need not mutate it).
#[derive(Clone, Debug, Default)]
struct HostEnv {
    path: Option<OsString>,
    python: Option<OsString>,
    /// Variables passed to a probed interpreter (`PATH`, `HOME`, `PYENV_*`, …), sorted.
    probe: Vec<(OsString, OsString)>,
}

impl HostEnv {
    fn from_process() -> Self {
        let mut probe: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| {
                let k = k.to_string_lossy();
                PROBE_ENV_NAMES.contains(&k.as_ref())
                    || PROBE_ENV_PREFIXES.iter().any(|p| k.starts_with(p))
            })
            .collect();
        probe.sort();
        Self {
            path: std::env::var_os("PATH"),
            python: std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()),
            probe,
        }
    }
}

fn discover_with(
    runtime: Runtime,
    cache_dir: &Path,
    env: &HostEnv,
) -> Result<Interpreter, RuntimeError> {
    let found = locate(runtime, env)?;
    let probed = matches!(runtime, Runtime::Python3 | Runtime::Node);
    let key = CacheKey::Runtime {
        runtime,
        found: found.clone(),
        env: if probed {
            env.probe
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        },
    };
    let cache_path = cache_dir.join(CACHE_FILE);
    if let Some(hit) = cache_lookup(&cache_path, &key) {
        return Ok(hit.into_interpreter(runtime));
    }
    let (entry, covered) = inspect(runtime, &found, env, cache_dir)?;
    let mut watched: Vec<PathBuf> = vec![found.clone()];
    if probed && !is_elf(&found) {
        // A shim picks a version from files we cannot list in general; these are pyenv's
        // global and (as probes run in `/`) local choice.
        if let Some(root) = found.parent().and_then(Path::parent) {
            watched.push(root.join("version"));
        }
        watched.push(PathBuf::from("/.python-version"));
    }
    // What a bound install prefix stands for is stamped as if it were bound.
    for path in covered {
        push_unique(&mut watched, path);
    }
    cache_store(cache_dir, &cache_path, key, &entry, watched)?;
    Ok(entry.into_interpreter(runtime))
}

/// The program a runtime starts from, before any probing: cheap, done on every call.
fn locate(runtime: Runtime, env: &HostEnv) -> Result<PathBuf, RuntimeError> {
    match runtime {
        Runtime::Python3 => {
            if let Some(p) = &env.python {
                let path = PathBuf::from(p);
                if !path.is_absolute() {
                    return Err(RuntimeError::NotExecutable {
                        path,
                        reason: format!("{PYTHON_ENV} must be an absolute path"),
                    });
                }
                if !path.exists() {
                    return Err(RuntimeError::NotFound {
                        what: path.display().to_string(),
                        searched: format!("(named by {PYTHON_ENV})"),
                        fix: format!("install Python 3 there or fix {PYTHON_ENV}"),
                    });
                }
                check_executable(&path)?;
                return Ok(path);
            }
            find_on_paths("python3", env.path.as_deref()).ok_or_else(|| RuntimeError::NotFound {
                what: "python3".into(),
                searched: format!("on PATH or in {FIXED_PATH}"),
                fix: format!("install Python 3 or set {PYTHON_ENV}"),
            })
        }
        Runtime::Node => {
            find_on_paths("node", env.path.as_deref()).ok_or_else(|| RuntimeError::NotFound {
                what: "node".into(),
                searched: format!("on PATH or in {FIXED_PATH}"),
                fix: "Node.js is not installed; install it (e.g. apt-get install nodejs)".into(),
            })
        }
        Runtime::Bash => find_fixed("bash").map_err(|_| RuntimeError::NotFound {
            what: "bash".into(),
            searched: format!("in {FIXED_PATH}"),
            fix: "install bash".into(),
        }),
        Runtime::Sh => {
            let sh = PathBuf::from("/bin/sh");
            if !sh.exists() {
                return Err(RuntimeError::NotFound {
                    what: "/bin/sh".into(),
                    searched: "on this host".into(),
                    fix: "install a POSIX shell (dash or bash) as /bin/sh".into(),
                });
            }
            check_executable(&sh)?;
            Ok(sh)
        }
        Runtime::Wasm => Err(RuntimeError::NoHostInterpreter { runtime }),
    }
}

/// The slow part: probe the program, resolve it, list its libraries. Returns the entry and the
/// paths a bound install prefix stands for (see [`Planned::covered`]).
fn inspect(
    runtime: Runtime,
    found: &Path,
    env: &HostEnv,
    cache_dir: &Path,
) -> Result<(Entry, Vec<PathBuf>), RuntimeError> {
    let mut plan = Plan::default();
    let (program, version) = match runtime {
        Runtime::Python3 => {
            let report: ProbeReport = probe(found, &["-I", "-S", "-c", PYTHON_PROBE], env)?;
            if !report.version.starts_with("3.") {
                return Err(RuntimeError::Probe {
                    program: found.to_owned(),
                    detail: format!(
                        "it is Python {}; install Python 3 or set {PYTHON_ENV}",
                        report.version
                    ),
                });
            }
            let exe = absolute_from_probe(found, &report.executable)?;
            let program = plan.program(&exe, MAX_SHEBANG_DEPTH)?;
            let mut dirs = Vec::new();
            for dir in &report.dirs {
                let dir = Path::new(dir);
                if dir.is_absolute() && dir.is_dir() {
                    dirs.push(plan.layout.trace(dir)?);
                }
            }
            // `stdlib` and `platstdlib` are often one dir, and `purelib` lies inside it: walk
            // each tree once.
            dirs.sort();
            dirs.dedup();
            plan.top_level.clone_from(&dirs);
            let home = env
                .probe
                .iter()
                .find(|(k, _)| k == "HOME")
                .map(|(_, v)| Path::new(v));
            plan.prefix = own_prefix(&report.base_prefix, &program, home, cache_dir);
            let mut walked: Vec<PathBuf> = Vec::new();
            for dir in dirs {
                if !walked.iter().any(|w| dir.starts_with(w)) {
                    plan.python_dir(&dir)?;
                    walked.push(dir);
                }
            }
            (program, format!("Python {}", report.version))
        }
        Runtime::Node => {
            let report: ProbeReport = probe(found, &["-e", NODE_PROBE], env)?;
            let exe = absolute_from_probe(found, &report.executable)?;
            let program = plan.program(&exe, MAX_SHEBANG_DEPTH)?;
            (program, format!("Node.js {}", report.version))
        }
        Runtime::Bash => {
            let program = plan.program(found, MAX_SHEBANG_DEPTH)?;
            let version = bash_version(&program)?;
            (program, version)
        }
        Runtime::Sh => {
            let program = plan.program(found, MAX_SHEBANG_DEPTH)?;
            let name = program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (program, format!("sh ({name})"))
        }
        Runtime::Wasm => return Err(RuntimeError::NoHostInterpreter { runtime }),
    };
    let Planned {
        mounts,
        exec,
        covered,
    } = plan.finish()?;
    let entry = Entry {
        program,
        version,
        mounts,
        exec,
    };
    Ok((entry, covered))
}

/// The canonical install prefix to bind whole for a Python whose `sys.base_prefix` is
/// `base_prefix` and whose program is `program` (canonical), or `None` for the per-directory
/// layout. It is the interpreter's own install when, canonical, it holds the program, is none of
/// [`SHARED_PREFIXES`], not named `.local` (`~/.local` also holds the user's application data,
/// keyrings included), and holds neither the caller's home directory nor `cache_dir`
/// (skillcell's own state).
fn own_prefix(
    base_prefix: &str,
    program: &Path,
    home: Option<&Path>,
    cache_dir: &Path,
) -> Option<PathBuf> {
    let prefix = Path::new(base_prefix);
    if !prefix.is_absolute() {
        return None;
    }
    // Canonical (the links on the way are not needed in the cell: Python finds its prefix from
    // its canonical program), and UTF-8.
    let prefix = Layout::default().trace(prefix).ok()?;
    let canonical = |p: &Path| {
        fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_owned())
    };
    let home = home.map(canonical);
    is_own_prefix(&prefix, program, home.as_deref(), &canonical(cache_dir)).then_some(prefix)
}

/// The rule of [`own_prefix`], on canonical paths.
fn is_own_prefix(prefix: &Path, program: &Path, home: Option<&Path>, cache_dir: &Path) -> bool {
    program.starts_with(prefix)
        && program != prefix
        && !SHARED_PREFIXES.iter().any(|s| prefix == Path::new(s))
        && prefix.file_name() != Some(OsStr::new(".local"))
        && !home.is_some_and(|h| h.starts_with(prefix))
        && !cache_dir.starts_with(prefix)
}

/// What a probed interpreter says about itself.
#[derive(Debug, Deserialize)]
struct ProbeReport {
    executable: String,
    version: String,
    /// Python's `sys.base_prefix` (empty for Node).
    #[serde(default)]
    base_prefix: String,
    #[serde(default)]
    dirs: Vec<String>,
}

fn absolute_from_probe(found: &Path, executable: &str) -> Result<PathBuf, RuntimeError> {
    let exe = PathBuf::from(executable);
    if exe.is_absolute() {
        Ok(exe)
    } else {
        Err(RuntimeError::Probe {
            program: found.to_owned(),
            detail: format!("it reports its executable as `{executable}`, not an absolute path"),
        })
    }
}

/// Runs `program args` in `/` with only the probe variables, and parses its stdout as JSON.
fn probe(program: &Path, args: &[&str], env: &HostEnv) -> Result<ProbeReport, RuntimeError> {
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().current_dir("/");
    for (k, v) in &env.probe {
        cmd.env(k, v);
    }
    if !env.probe.iter().any(|(k, _)| k == "PATH") {
        cmd.env("PATH", FIXED_PATH);
    }
    let out = run_bounded(&mut cmd).map_err(|detail| RuntimeError::Probe {
        program: program.to_owned(),
        detail,
    })?;
    if !out.success {
        return Err(RuntimeError::Probe {
            program: program.to_owned(),
            detail: format!("it exited with {}: {}", out.status, tail(&out.stderr)),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| RuntimeError::Probe {
        program: program.to_owned(),
        detail: format!(
            "its answer is not the expected JSON ({e}): {}",
            tail(&out.stdout)
        ),
    })
}

fn bash_version(program: &Path) -> Result<String, RuntimeError> {
    let mut cmd = Command::new(program);
    cmd.arg("--version")
        .env_clear()
        .env("PATH", FIXED_PATH)
        .env("LC_ALL", "C")
        .current_dir("/");
    let out = run_bounded(&mut cmd).map_err(|detail| RuntimeError::Probe {
        program: program.to_owned(),
        detail,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    // "GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)"
    Ok(match first.split_once("version ") {
        Some((_, rest)) => format!("bash {}", rest.split(' ').next().unwrap_or(rest)),
        None if !first.is_empty() => first.to_owned(),
        None => "bash".to_owned(),
    })
}

/// The end of a probe's output, for an error message.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let start = text.char_indices().rev().nth(400).map_or(0, |(i, _)| i);
    text[start..].to_owned()
}

struct Finished {
    success: bool,
    status: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs a command with no stdin, capturing (capped) stdout and stderr, killing it after
/// [`PROBE_TIMEOUT`].
fn run_bounded(cmd: &mut Command) -> Result<Finished, String> {
    run_within(cmd, PROBE_TIMEOUT, OUTPUT_GRACE)
}

/// [`run_bounded`] with the time-out and the grace for output held open after the exit.
///
/// Two threads read the streams to their end; the kernel closes a process's files as it exits,
/// so their end of file is what wakes this thread (no polling), and the child is reaped right
/// after. A child still running after it closed both streams is waited for until the deadline.
/// A process the child started that keeps a stream open after the child exited gets `grace`,
/// counted from when the exit is noticed (checked every [`EXIT_CHECK`]).
fn run_within(cmd: &mut Command, timeout: Duration, grace: Duration) -> Result<Finished, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    for (is_out, stream) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(s) = stream {
                // A read error leaves what was read; the exit status tells the rest.
                let _ = s.take(PROBE_OUTPUT_CAP).read_to_end(&mut buf);
            }
            let _ = tx.send((is_out, buf));
        });
    }
    drop(tx);
    let (mut stdout, mut stderr) = (None, None);
    // Set when the child is seen to have exited while a stream is still open.
    let mut exited: Option<(ExitStatus, Instant)> = None;
    while stdout.is_none() || stderr.is_none() {
        let until = exited.map_or(deadline, |(_, at)| at + grace);
        let now = Instant::now();
        if now >= until {
            if exited.is_some() {
                return Err("a process it started still holds its output open".into());
            }
            return Err(kill_late(&mut child, timeout));
        }
        match rx.recv_timeout((until - now).min(EXIT_CHECK)) {
            Ok((true, bytes)) => stdout = Some(bytes),
            Ok((false, bytes)) => stderr = Some(bytes),
            Err(RecvTimeoutError::Timeout) => {
                if exited.is_none()
                    && let Some(status) = child
                        .try_wait()
                        .map_err(|e| format!("cannot wait for it: {e}"))?
                {
                    exited = Some((status, Instant::now()));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Each reader sends before it ends; only a panic could get here.
                let _ = child.kill();
                let _ = child.wait();
                return Err("reading its output failed".into());
            }
        }
    }
    let status = match exited {
        Some((status, _)) => status,
        None => reap(&mut child, deadline, timeout)?,
    };
    Ok(Finished {
        success: status.success(),
        status: status.to_string(),
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    })
}

/// Waits for a child that closed its output, which it normally does by exiting: the kernel
/// closes an exiting process's files a few microseconds before the process can be waited for,
/// so the first or second look finds it. One that keeps running is looked at less and less
/// often (at most every 10 ms) and killed at `deadline`, `timeout` after it started.
fn reap(child: &mut Child, deadline: Instant, timeout: Duration) -> Result<ExitStatus, String> {
    let mut pause = Duration::from_micros(20);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => return Err(kill_late(child, timeout)),
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    }
}

/// Kills and reaps a child that ran past its `timeout`, and says so.
fn kill_late(child: &mut Child, timeout: Duration) -> String {
    let _ = child.kill();
    let _ = child.wait();
    format!(
        "it did not finish within {} s and was killed",
        timeout.as_secs()
    )
}

/// `name` on the absolute entries of `path`, then on [`FIXED_PATH`].
fn find_on_paths(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    let caller = path.map(std::env::split_paths).into_iter().flatten();
    let fixed = std::env::split_paths(FIXED_PATH);
    caller
        .chain(fixed)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| is_executable_file(p))
}

/// `name` on [`FIXED_PATH`] only.
fn find_fixed(name: &str) -> Result<PathBuf, RuntimeError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(RuntimeError::BadName { name: name.into() });
    }
    std::env::split_paths(FIXED_PATH)
        .map(|dir| dir.join(name))
        .find(|p| is_executable_file(p))
        .ok_or_else(|| RuntimeError::NotFound {
            what: format!("`{name}`"),
            searched: format!("in {FIXED_PATH}"),
            fix: "install it, or declare its absolute path".into(),
        })
}

fn is_executable_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn check_executable(path: &Path) -> Result<(), RuntimeError> {
    let meta = fs::metadata(path).map_err(|source| RuntimeError::Io {
        path: path.to_owned(),
        source,
    })?;
    let reason = if !meta.is_file() {
        "it is not a regular file"
    } else if meta.permissions().mode() & 0o111 == 0 {
        "it has no execute permission bit"
    } else {
        return Ok(());
    };
    Err(RuntimeError::NotExecutable {
        path: path.to_owned(),
        reason: reason.into(),
    })
}

/// The binds and links being collected for one program, and what it may execute.
#[derive(Default)]
struct Plan {
    layout: Layout,
    exec: Vec<PathBuf>,
    /// ELF programs whose shared libraries must all be found.
    objects: Vec<PathBuf>,
    /// Extension modules: their libraries are bound when found; one that cannot load (an
    /// optional library not installed, another architecture) fails on the host too, so it does
    /// not fail discovery. The modules of [`SKIPPED_MODULES`] are not listed.
    modules: Vec<PathBuf>,
    /// Python: the canonical directories on `sys.path` and of its install scheme, whose
    /// modules are the top-level ones [`SKIPPED_MODULES`] names.
    top_level: Vec<PathBuf>,
    /// Python: its own install prefix (see [`own_prefix`]), bound whole at the end in place of
    /// everything beneath it.
    prefix: Option<PathBuf>,
}

/// What a [`Plan`] comes to.
struct Planned {
    /// Sorted; see the module documentation.
    mounts: Vec<Mount>,
    exec: Vec<String>,
    /// The paths a bound install prefix stands for (the program, `libpython`, the Python
    /// directories, those holding extension modules): not mounted on their own, but watched by
    /// the cache as if they were.
    covered: Vec<PathBuf>,
}

impl Plan {
    /// Adds a program: its symlink chain, the canonical file (bound exec), its ELF interpreter
    /// or, for a script, its `#!` interpreter. Returns the canonical path. `depth` counts the
    /// `#!` interpreters still allowed.
    fn program(&mut self, found: &Path, depth: u32) -> Result<PathBuf, RuntimeError> {
        let canonical = self.layout.trace(found)?;
        check_executable(&canonical)?;
        self.layout.bind(canonical.clone(), false, true);
        push_unique(&mut self.exec, canonical.clone());
        match read_header(&canonical)? {
            Header::Elf { interp } => {
                if let Some(interp) = interp {
                    let ld = self.layout.trace(&interp)?;
                    self.layout.bind(ld.clone(), false, true);
                    push_unique(&mut self.exec, ld);
                }
                push_unique(&mut self.objects, canonical.clone());
            }
            Header::Script { interpreter, arg } => {
                if depth == 0 {
                    return Err(RuntimeError::NotExecutable {
                        path: canonical,
                        reason: format!(
                            "its #! interpreters nest more than {MAX_SHEBANG_DEPTH} deep"
                        ),
                    });
                }
                if !interpreter.is_absolute() {
                    return Err(RuntimeError::NotExecutable {
                        path: canonical,
                        reason: format!(
                            "its #! interpreter `{}` is not an absolute path",
                            interpreter.display()
                        ),
                    });
                }
                let interp = self.program(&interpreter, depth - 1)?;
                // `#!/usr/bin/env prog`: `env` looks `prog` up at run time; bind the one on the
                // fixed path.
                if interp.file_name() == Some(OsStr::new("env"))
                    && let Some(arg) = arg.filter(|a| !a.starts_with('-') && !a.contains(' '))
                {
                    let target = if arg.starts_with('/') {
                        PathBuf::from(&arg)
                    } else {
                        find_fixed(&arg)?
                    };
                    self.program(&target, depth - 1)?;
                }
            }
            Header::Other => {
                return Err(RuntimeError::NotExecutable {
                    path: canonical,
                    reason: "it is neither an ELF binary nor a #! script".into(),
                });
            }
        }
        Ok(canonical)
    }

    /// Adds a canonical Python library directory (noexec) and, exec, each directory in it that
    /// directly holds a shared object; the shared objects' libraries are listed later.
    /// Symbolic links inside are not followed.
    fn python_dir(&mut self, canonical: &Path) -> Result<(), RuntimeError> {
        self.layout.bind(canonical.to_owned(), true, false);
        let mut stack = vec![canonical.to_owned()];
        while let Some(dir) = stack.pop() {
            let entries = fs::read_dir(&dir).map_err(|source| RuntimeError::Io {
                path: dir.clone(),
                source,
            })?;
            let mut holds_object = false;
            for entry in entries {
                let entry = entry.map_err(|source| RuntimeError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file()
                    && is_shared_object_name(&entry.file_name())
                    && is_elf(&path)
                {
                    holds_object = true;
                    if skipped_module(&path, &self.top_level).is_none() {
                        push_unique(&mut self.modules, path);
                    }
                }
            }
            if holds_object {
                self.layout.bind(dir, true, true);
            }
        }
        Ok(())
    }

    /// Lists the libraries of every object, binds them, binds the install prefix if there is
    /// one, and returns the sorted mounts, the exec list and what the prefix stands for.
    fn finish(mut self) -> Result<Planned, RuntimeError> {
        if !self.objects.is_empty() || !self.modules.is_empty() {
            let mut libs = ldd(&self.objects, true)?;
            libs.extend(ldd(&self.modules, false)?);
            for lib in libs {
                let canonical = self.layout.trace(Path::new(&lib))?;
                self.layout.bind(canonical, false, true);
            }
            let cache = Path::new(LD_SO_CACHE);
            if cache.is_file() {
                let canonical = self.layout.trace(cache)?;
                self.layout.bind(canonical, false, false);
            }
        }
        let mut covered = Vec::new();
        if let Some(prefix) = self.prefix.take() {
            covered = self
                .layout
                .binds
                .keys()
                .filter(|p| p.starts_with(&prefix) && **p != prefix)
                .cloned()
                .collect();
            self.layout.bind(prefix, true, true);
        }
        let exec = self
            .exec
            .iter()
            .map(|p| utf8(p).map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Planned {
            mounts: self.layout.into_mounts(),
            exec,
            covered,
        })
    }
}

/// The reason `module`, an extension module's canonical path, is one of [`SKIPPED_MODULES`]:
/// it lies directly in one of the `top_level` directories, and its name (the file name up to
/// the first `.`: `_tkinter.cpython-311-x86_64-linux-gnu.so` is `_tkinter`) is listed.
fn skipped_module(module: &Path, top_level: &[PathBuf]) -> Option<&'static str> {
    let dir = module.parent()?;
    if !top_level.iter().any(|d| d == dir) {
        return None;
    }
    let name = module.file_name()?.to_str()?.split('.').next()?;
    SKIPPED_MODULES
        .iter()
        .find(|(m, _)| *m == name)
        .map(|(_, why)| *why)
}

fn push_unique(list: &mut Vec<PathBuf>, path: PathBuf) {
    if !list.contains(&path) {
        list.push(path);
    }
}

fn is_shared_object_name(name: &OsStr) -> bool {
    let name = name.as_bytes();
    name.ends_with(b".so") || name.windows(4).any(|w| w == b".so.")
}

fn utf8(path: &Path) -> Result<&str, RuntimeError> {
    path.to_str().ok_or_else(|| RuntimeError::NotUtf8 {
        path: path.to_owned(),
    })
}

/// Canonical binds and the symbolic links met on the way to them.
#[derive(Debug, Default)]
struct Layout {
    /// Canonical host path → (is a directory, exec).
    binds: BTreeMap<PathBuf, (bool, bool)>,
    /// Path of a link (its parent canonical) → the link's text.
    links: BTreeMap<PathBuf, String>,
}

impl Layout {
    fn bind(&mut self, canonical: PathBuf, dir: bool, exec: bool) {
        let slot = self.binds.entry(canonical).or_insert((dir, exec));
        slot.1 |= exec;
    }

    fn link(&mut self, at: PathBuf, text: String) {
        self.links.entry(at).or_insert(text);
    }

    /// Resolves `path` one component at a time like the kernel, recording each symbolic link
    /// met (at its canonical parent, with its text), and returns the canonical path.
    fn trace(&mut self, path: &Path) -> Result<PathBuf, RuntimeError> {
        if !path.is_absolute() {
            return Err(RuntimeError::NotExecutable {
                path: path.to_owned(),
                reason: "it is not an absolute path".into(),
            });
        }
        let mut resolved = PathBuf::from("/");
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, path);
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == "/" {
                resolved = PathBuf::from("/");
                continue;
            }
            if part == "." {
                continue;
            }
            if part == ".." {
                // `resolved` is canonical, so its parent is the physical parent.
                resolved.pop();
                continue;
            }
            let candidate = resolved.join(&part);
            let meta = fs::symlink_metadata(&candidate).map_err(|source| RuntimeError::Io {
                path: candidate.clone(),
                source,
            })?;
            if !meta.file_type().is_symlink() {
                resolved = candidate;
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(RuntimeError::SymlinkLoop {
                    path: path.to_owned(),
                });
            }
            let text = fs::read_link(&candidate).map_err(|source| RuntimeError::Io {
                path: candidate.clone(),
                source,
            })?;
            utf8(&candidate)?;
            let text_str = utf8(&text)?.to_owned();
            self.link(candidate, text_str);
            push_components(&mut pending, &text);
        }
        utf8(&resolved)?;
        Ok(resolved)
    }

    /// Sorted mounts: a directory before anything beneath it; entries a bound directory already
    /// provides (with enough `exec`) are left out.
    fn into_mounts(self) -> Vec<Mount> {
        enum Entry {
            Bind { dir: bool, exec: bool },
            Link(String),
        }
        let mut entries: Vec<(PathBuf, Entry)> = self
            .binds
            .into_iter()
            .map(|(p, (dir, exec))| (p, Entry::Bind { dir, exec }))
            .chain(self.links.into_iter().map(|(p, t)| (p, Entry::Link(t))))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(entries.len());
        // Bound directories enclosing the current entry, outermost first.
        let mut open: Vec<(PathBuf, bool)> = Vec::new();
        for (path, entry) in entries {
            while open.last().is_some_and(|(d, _)| !path.starts_with(d)) {
                open.pop();
            }
            let enclosing_exec = open.last().map(|(_, exec)| *exec);
            // Every path was checked to be UTF-8 when it was traced or merged.
            let target = path.to_string_lossy().into_owned();
            match entry {
                Entry::Bind { dir, exec } => {
                    if enclosing_exec.is_some_and(|e| e || !exec) {
                        continue;
                    }
                    out.push(Mount {
                        target,
                        kind: MountKind::System {
                            host: path.clone(),
                            exec,
                        },
                    });
                    if dir {
                        open.push((path, exec));
                    }
                }
                Entry::Link(link_target) => {
                    if enclosing_exec.is_some() {
                        continue;
                    }
                    out.push(Mount {
                        target,
                        kind: MountKind::Symlink { link_target },
                    });
                }
            }
        }
        out
    }
}

/// Pushes the components of `path` so that popping yields them in order.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .map(|c| match c {
            Component::RootDir => OsString::from("/"),
            Component::CurDir => OsString::from("."),
            Component::ParentDir => OsString::from(".."),
            Component::Normal(n) => n.to_owned(),
            Component::Prefix(p) => p.as_os_str().to_owned(),
        })
        .collect();
    pending.extend(parts.into_iter().rev());
}

/// What the first bytes of a program say it is.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// An ELF file; `interp` is its `PT_INTERP`, if any.
    Elf {
        interp: Option<PathBuf>,
    },
    /// `#!interpreter [arg]`.
    Script {
        interpreter: PathBuf,
        arg: Option<String>,
    },
    Other,
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path).is_ok_and(|f| read_full(&f, &mut magic, 0).is_ok_and(|n| n == 4))
        && magic == *b"\x7fELF"
}

/// Reads into `buf` from `offset` until it is full or the file ends.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn read_header(path: &Path) -> Result<Header, RuntimeError> {
    let io_err = |source| RuntimeError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut head = [0u8; 256];
    let n = read_full(&file, &mut head, 0).map_err(io_err)?;
    let head = &head[..n];
    if head.starts_with(b"\x7fELF") {
        let interp = elf_interp(&file, head).map_err(io_err)?.ok_or_else(|| {
            RuntimeError::NotExecutable {
                path: path.to_owned(),
                reason: "its ELF program headers are malformed".into(),
            }
        })?;
        return Ok(Header::Elf { interp });
    }
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        let (interpreter, arg) = match line.split_once([' ', '\t']) {
            Some((i, a)) if !a.trim().is_empty() => (i, Some(a.trim().to_owned())),
            Some((i, _)) => (i, None),
            None => (line, None),
        };
        if interpreter.is_empty() {
            return Ok(Header::Other);
        }
        return Ok(Header::Script {
            interpreter: PathBuf::from(interpreter),
            arg,
        });
    }
    Ok(Header::Other)
}

/// `PT_INTERP` of an ELF file: `Ok(None)` when the headers are malformed, `Ok(Some(None))` when
/// there is none (a static binary, a shared library).
fn elf_interp(file: &File, head: &[u8]) -> io::Result<Option<Option<PathBuf>>> {
    const PT_INTERP: u64 = 3;
    let little = match head.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Ok(None),
    };
    let field = |bytes: &[u8], at: usize, len: usize| -> Option<u64> {
        let b = bytes.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if little { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    // (phoff at, phoff len, phentsize at, phnum at, p_offset at, p_filesz at, word, min entry)
    let (phoff, phentsize, phnum, p_offset, p_filesz, word, min_entry) = match head.get(4) {
        Some(2) => (
            field(head, 32, 8),
            field(head, 54, 2),
            field(head, 56, 2),
            8,
            32,
            8,
            56,
        ),
        Some(1) => (
            field(head, 28, 4),
            field(head, 42, 2),
            field(head, 44, 2),
            4,
            16,
            4,
            32,
        ),
        _ => return Ok(None),
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return Ok(None);
    };
    let (Ok(phentsize), Ok(phnum)) = (usize::try_from(phentsize), usize::try_from(phnum)) else {
        return Ok(None);
    };
    if phentsize < min_entry || phnum > 4096 {
        return Ok(None);
    }
    let mut table = vec![0u8; phentsize * phnum];
    if read_full(file, &mut table, phoff)? != table.len() {
        return Ok(None);
    }
    for entry in table.chunks_exact(phentsize) {
        if field(entry, 0, 4) != Some(PT_INTERP) {
            continue;
        }
        let (Some(offset), Some(size)) =
            (field(entry, p_offset, word), field(entry, p_filesz, word))
        else {
            return Ok(None);
        };
        let Ok(size) = usize::try_from(size) else {
            return Ok(None);
        };
        if size == 0 || size > 4096 {
            return Ok(None);
        }
        let mut text = vec![0u8; size];
        if read_full(file, &mut text, offset)? != size {
            return Ok(None);
        }
        let end = text.iter().position(|b| *b == 0).unwrap_or(size);
        text.truncate(end);
        return Ok(Some(Some(PathBuf::from(OsStr::from_bytes(&text)))));
    }
    Ok(Some(None))
}

/// The paths of the shared libraries (and ELF interpreters) the loader maps for `objects`, as
/// `ldd` prints them (not canonical), deduplicated. `strict`: a library the loader cannot find
/// is an error, else it is skipped.
fn ldd(objects: &[PathBuf], strict: bool) -> Result<Vec<String>, RuntimeError> {
    let Some(first) = objects.first().cloned() else {
        return Ok(Vec::new());
    };
    let Some(ldd) = LDD.iter().map(Path::new).find(|p| p.is_file()) else {
        return Err(RuntimeError::Ldd {
            object: first,
            detail: format!(
                "ldd is not in {}; install it (libc-bin on Debian)",
                LDD.join(" or ")
            ),
        });
    };
    let mut libs: Vec<String> = Vec::new();
    for batch in objects.chunks(LDD_BATCH) {
        let mut cmd = Command::new(ldd);
        cmd.args(batch)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .current_dir("/");
        let out = run_bounded(&mut cmd).map_err(|detail| RuntimeError::Ldd {
            object: batch.first().cloned().unwrap_or_default(),
            detail,
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        for (object, lib) in parse_ldd(&text, batch, strict)? {
            if lib.is_empty() && strict {
                return Err(RuntimeError::Ldd {
                    object,
                    detail: format!("ldd printed nothing for it: {}", tail(&out.stderr)),
                });
            }
            if !lib.is_empty() && !libs.contains(&lib) {
                libs.push(lib);
            }
        }
    }
    Ok(libs)
}

/// Parses `ldd` output for `batch` into (object, library path) pairs. An object that needs an
/// ELF interpreter but got no line at all yields an empty library path (an error for the
/// caller); a `not found` library is an error when `strict`, else skipped.
fn parse_ldd(
    text: &str,
    batch: &[PathBuf],
    strict: bool,
) -> Result<Vec<(PathBuf, String)>, RuntimeError> {
    let mut out = Vec::new();
    let mut current: Option<&PathBuf> = if batch.len() == 1 {
        batch.first()
    } else {
        None
    };
    let mut lines_for: BTreeMap<&PathBuf, usize> = BTreeMap::new();
    for line in text.lines() {
        if !line.starts_with('\t') && !line.starts_with(' ') {
            if let Some(header) = line.strip_suffix(':')
                && let Some(obj) = batch.iter().find(|o| o.as_os_str() == header)
            {
                current = Some(obj);
            }
            continue;
        }
        let Some(object) = current else { continue };
        *lines_for.entry(object).or_default() += 1;
        let line = line.trim();
        let path = match line.split_once(" => ") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest == "not found" {
                    if !strict {
                        continue;
                    }
                    return Err(RuntimeError::MissingLibrary {
                        object: object.clone(),
                        library: name.to_owned(),
                    });
                }
                rest.rsplit_once(" (0x").map_or(rest, |(p, _)| p).trim()
            }
            None => line.rsplit_once(" (0x").map_or("", |(p, _)| p).trim(),
        };
        // `linux-vdso.so.1 (0x…)` has no path; `statically linked` and the like have no address.
        if path.starts_with('/') {
            out.push((object.clone(), path.to_owned()));
        }
    }
    for object in batch {
        let needs_loader = File::open(object)
            .ok()
            .and_then(|f| {
                let mut head = [0u8; 256];
                let n = read_full(&f, &mut head, 0).ok()?;
                elf_interp(&f, &head[..n]).ok().flatten().flatten()
            })
            .is_some();
        if needs_loader && !lines_for.contains_key(object) {
            out.push((object.clone(), String::new()));
        }
    }
    Ok(out)
}

/// Identity of a cache entry: what was asked, and the program found for it before resolution
/// (looked up again on every call, so a program that appears earlier on the path is noticed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CacheKey {
    /// An interpreter, asked of [`discover`].
    Runtime {
        runtime: Runtime,
        /// The program found on the path (or named by `SKILLCELL_PYTHON`).
        found: PathBuf,
        /// The variables a probed interpreter was run with.
        env: Vec<(String, String)>,
    },
    /// A declared executable, asked of [`resolve_executable`].
    Executable {
        requested: Executable,
        /// The path named, or the program found on [`FIXED_PATH`].
        found: PathBuf,
    },
}

/// What discovery found, cached or not: an [`Interpreter`] or a [`HostProgram`] (whose
/// `version` is empty).
#[derive(Debug)]
struct Entry {
    program: PathBuf,
    version: String,
    mounts: Vec<Mount>,
    exec: Vec<String>,
}

impl Entry {
    fn into_interpreter(self, runtime: Runtime) -> Interpreter {
        Interpreter {
            runtime,
            program: self.program,
            version: self.version,
            mounts: self.mounts,
            exec: self.exec,
        }
    }

    fn into_host_program(self) -> HostProgram {
        HostProgram {
            program: self.program,
            mounts: self.mounts,
            exec: self.exec,
        }
    }
}

/// Folds what `paths` look like now (`lstat`: device, inode, size, mtime; or absence) into one
/// FNV-1a digest, so an entry stores one number rather than a stamp per path.
fn stamps<'a>(paths: impl IntoIterator<Item = &'a Path>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |v: u64| {
        for b in v.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for path in paths {
        match fs::symlink_metadata(path) {
            Ok(m) => {
                feed(1);
                feed(m.dev());
                feed(m.ino());
                feed(m.size());
                feed(m.mtime().cast_unsigned());
                feed(m.mtime_nsec().cast_unsigned());
            }
            Err(_) => feed(0),
        }
    }
    h
}

/// An [`Entry`] as stored; [`RawEntry::into_fresh`] is the only way out of it. Mounts are rows
/// `[target, how]`, `how` being `x` (bind, exec), `r` (bind, noexec) or `@` and the link's text,
/// not [`Mount`]s: a warm lookup must be fast, and serde reads an internally tagged enum
/// slowly.
#[derive(Debug, Serialize, Deserialize)]
struct RawEntry {
    key: CacheKey,
    /// Paths watched besides the binds: the program found, a shim's version files.
    watched: Vec<PathBuf>,
    /// [`stamps`] of `watched`, then of every bound path in order. Links are not stamped: the
    /// cell recreates them from this entry, which stays consistent while the files they lead
    /// to are unchanged.
    stamps: u64,
    program: PathBuf,
    /// Empty for a declared executable.
    version: String,
    exec: Vec<String>,
    mounts: Vec<(String, String)>,
}

impl RawEntry {
    fn new(key: CacheKey, entry: &Entry, watched: Vec<PathBuf>) -> Self {
        let mounts: Vec<(String, String)> = entry
            .mounts
            .iter()
            .filter_map(|m| {
                let how = match &m.kind {
                    MountKind::System { exec: true, .. } => "x".to_owned(),
                    MountKind::System { exec: false, .. } => "r".to_owned(),
                    MountKind::Symlink { link_target } => format!("@{link_target}"),
                    _ => return None,
                };
                Some((m.target.clone(), how))
            })
            .collect();
        let stamps = stamps(watched.iter().map(PathBuf::as_path).chain(bound(&mounts)));
        Self {
            key,
            watched,
            stamps,
            program: entry.program.clone(),
            version: entry.version.clone(),
            exec: entry.exec.clone(),
            mounts,
        }
    }

    /// The entry, if every watched and bound path is unchanged and every row is well formed.
    fn into_fresh(self) -> Option<Entry> {
        if self.watched.is_empty()
            || !self.program.is_absolute()
            || stamps(
                self.watched
                    .iter()
                    .map(PathBuf::as_path)
                    .chain(bound(&self.mounts)),
            ) != self.stamps
        {
            return None;
        }
        let mut mounts = Vec::with_capacity(self.mounts.len());
        for (target, how) in self.mounts {
            if !target.starts_with('/') {
                return None;
            }
            let kind = match how.as_str() {
                "x" | "r" => MountKind::System {
                    host: PathBuf::from(&target),
                    exec: how == "x",
                },
                _ => MountKind::Symlink {
                    link_target: how.strip_prefix('@')?.to_owned(),
                },
            };
            mounts.push(Mount { target, kind });
        }
        Some(Entry {
            program: self.program,
            version: self.version,
            mounts,
            exec: self.exec,
        })
    }
}

/// The bound paths among cache rows.
fn bound(rows: &[(String, String)]) -> impl Iterator<Item = &Path> {
    rows.iter()
        .filter(|(_, how)| !how.starts_with('@'))
        .map(|(target, _)| Path::new(target))
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    entries: Vec<RawEntry>,
}

fn read_cache(path: &Path) -> Option<CacheFile> {
    let file = File::open(path).ok()?;
    // Sized from the file, so that it is read in one call rather than in growing chunks.
    let len = file.metadata().ok()?.len().min(CACHE_CAP);
    let mut bytes = Vec::with_capacity(usize::try_from(len).ok()?.saturating_add(1));
    file.take(CACHE_CAP + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > CACHE_CAP {
        return None;
    }
    let cache: CacheFile = serde_json::from_slice(&bytes).ok()?;
    (cache.format == CACHE_FORMAT).then_some(cache)
}

/// The cached entry for `key`, if its every watched and mounted path is unchanged.
fn cache_lookup(path: &Path, key: &CacheKey) -> Option<Entry> {
    let cache = read_cache(path)?;
    cache
        .entries
        .into_iter()
        .find(|e| e.key == *key)?
        .into_fresh()
}

fn cache_store(
    dir: &Path,
    path: &Path,
    key: CacheKey,
    entry: &Entry,
    watched: Vec<PathBuf>,
) -> Result<(), RuntimeError> {
    let err = |source| RuntimeError::Cache {
        path: path.to_owned(),
        source,
    };
    let mut cache = read_cache(path).unwrap_or(CacheFile {
        format: CACHE_FORMAT,
        entries: Vec::new(),
    });
    cache.entries.retain(|e| e.key != key);
    cache.entries.push(RawEntry::new(key, entry, watched));
    let excess = cache.entries.len().saturating_sub(CACHE_ENTRIES);
    cache.entries.drain(..excess);
    let bytes = serde_json::to_vec(&cache).map_err(|e| err(io::Error::other(e)))?;
    fs::create_dir_all(dir).map_err(err)?;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{CACHE_FILE}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::write(&tmp, &bytes).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(err)
}

#[cfg(test)]
mod tests {
    use skillcell_sandbox::{CellLimits, CellSpec};

    use super::*;

    fn python() -> Interpreter {
        let dir = tempfile::tempdir().expect("tempdir");
        discover(Runtime::Python3, dir.path()).expect("python3 is installed on this host")
    }

    /// Every System mount is `target == host`, canonical and existing; every Symlink's parent
    /// is canonical; sorted; no target twice; nothing beneath a symlink; a file or link beneath
    /// a bound directory only when it adds `exec`.
    fn check_layout(mounts: &[Mount]) {
        let mut seen: Vec<&str> = Vec::new();
        let mut dirs: Vec<(&Path, bool)> = Vec::new();
        let mut links: Vec<&str> = Vec::new();
        for pair in mounts.windows(2) {
            assert!(
                Path::new(&pair[0].target) < Path::new(&pair[1].target),
                "not sorted: {} then {}",
                pair[0].target,
                pair[1].target
            );
        }
        for m in mounts {
            assert!(!seen.contains(&m.target.as_str()), "twice: {}", m.target);
            seen.push(&m.target);
            let target = Path::new(&m.target);
            for l in &links {
                assert!(!target.starts_with(l), "{} beneath symlink {l}", m.target);
            }
            let parent = target.parent().expect("absolute");
            assert_eq!(
                fs::canonicalize(parent).expect("parent exists"),
                parent,
                "parent of {} is not canonical",
                m.target
            );
            let enclosing = dirs.iter().rev().find(|(d, _)| target.starts_with(d));
            match &m.kind {
                MountKind::System { host, exec } => {
                    assert_eq!(host.as_os_str(), m.target.as_str());
                    assert_eq!(&fs::canonicalize(host).expect("exists"), host);
                    if let Some((d, e)) = enclosing {
                        assert!(
                            *exec && !e,
                            "{} needlessly beneath {}",
                            m.target,
                            d.display()
                        );
                    }
                    if host.is_dir() {
                        dirs.push((host, *exec));
                    }
                }
                MountKind::Symlink { link_target } => {
                    assert!(enclosing.is_none(), "link {} beneath a bind", m.target);
                    assert_eq!(
                        fs::read_link(target).expect("is a link on the host"),
                        Path::new(link_target)
                    );
                    links.push(&m.target);
                }
                other => panic!("unexpected mount kind {other:?}"),
            }
        }
    }

    fn system(mounts: &[Mount]) -> Vec<(&Path, bool)> {
        mounts
            .iter()
            .filter_map(|m| match &m.kind {
                MountKind::System { host, exec } => Some((host.as_path(), *exec)),
                _ => None,
            })
            .collect()
    }

    /// The canonical path of a library the loader finds for `name`, per `ldd` of `program`.
    fn host_lib(program: &Path, name: &str) -> PathBuf {
        let libs = ldd(&[program.to_owned()], true).expect("ldd");
        let lib = libs
            .iter()
            .find(|l| {
                Path::new(l)
                    .file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(name))
            })
            .unwrap_or_else(|| panic!("{name} in {libs:?}"));
        fs::canonicalize(lib).expect("canonical")
    }

    /// What a Python says of its install: `sys.base_prefix`, the `stdlib` directory and where
    /// its extension modules are (`DESTSHARED`: `lib-dynload`), canonical; and whether it
    /// imports `_tkinter` and `nis` on the host.
    struct HostPython {
        base_prefix: PathBuf,
        stdlib: PathBuf,
        dynload: PathBuf,
        tkinter: bool,
        nis: bool,
    }

    fn host_python(program: &Path) -> HostPython {
        let out = Command::new(program)
            .args([
                "-I",
                "-S",
                "-W",
                "ignore",
                "-c",
                "import sys, sysconfig, importlib\n\
                 print(sys.base_prefix)\n\
                 print(sysconfig.get_paths()['stdlib'])\n\
                 print(sysconfig.get_config_var('DESTSHARED'))\n\
                 for m in ('_tkinter', 'nis'):\n\
                 \ttry:\n\
                 \t\timportlib.import_module(m)\n\
                 \t\tprint('yes')\n\
                 \texcept ImportError:\n\
                 \t\tprint('no')",
            ])
            .env_clear()
            .output()
            .expect("python runs");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        let canonical = |p: &str| fs::canonicalize(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        HostPython {
            base_prefix: canonical(lines[0]),
            stdlib: canonical(lines[1]),
            dynload: canonical(lines[2]),
            tkinter: lines[3] == "yes",
            nis: lines[4] == "yes",
        }
    }

    /// The innermost System mount that shows `path` (the path itself or a directory above it).
    fn provider<'a>(binds: &[(&'a Path, bool)], path: &Path) -> Option<(&'a Path, bool)> {
        binds
            .iter()
            .filter(|(p, _)| path.starts_with(p))
            .max_by_key(|(p, _)| p.components().count())
            .copied()
    }

    /// The per-directory layout or the prefix bound whole, each where it belongs, and no
    /// library that only a skipped module needs.
    fn check_python_layout(py: &Interpreter, cache_dir: &Path) {
        check_layout(&py.mounts);
        let host = host_python(&py.program);
        let binds = system(&py.mounts);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let own = own_prefix(
            utf8(&host.base_prefix).expect("utf8"),
            &py.program,
            home.as_deref(),
            cache_dir,
        );
        if let Some(prefix) = &own {
            // One bind, exec, shows the program, the stdlib and lib-dynload; nothing beneath it
            // has a mount of its own (check_layout: only what adds exec could, and it has all).
            assert_eq!(prefix, &host.base_prefix);
            for path in [&py.program, &host.stdlib, &host.dynload] {
                assert_eq!(
                    provider(&binds, path),
                    Some((prefix.as_path(), true)),
                    "{} through the prefix",
                    path.display()
                );
            }
            assert!(
                !py.mounts
                    .iter()
                    .any(|m| Path::new(&m.target).starts_with(prefix)
                        && Path::new(&m.target) != prefix),
                "a mount beneath the bound prefix"
            );
        } else {
            // The standard library noexec, lib-dynload exec on top.
            assert_eq!(
                provider(&binds, &host.stdlib),
                Some((host.stdlib.as_path(), false)),
                "stdlib bound noexec"
            );
            assert_eq!(
                provider(&binds, &host.dynload).map(|(_, exec)| exec),
                Some(true),
                "lib-dynload bound exec"
            );
            assert_eq!(
                provider(&binds, &py.program),
                Some((py.program.as_path(), true))
            );
        }
        // No directory as broad as /usr, /usr/lib or /usr/local; a prefix only when it is the
        // interpreter's own.
        for (p, _) in &binds {
            assert!(
                !p.is_dir() || p.components().count() > 3 || own.as_deref() == Some(*p),
                "too broad: {}",
                p.display()
            );
            assert!(
                !SHARED_PREFIXES.iter().any(|s| Path::new(s) == *p),
                "shared prefix bound: {}",
                p.display()
            );
            // Only `_tkinter` (Tk, X11) and `nis` (libnsl, Kerberos) need these.
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            for only_skipped in ["libtk", "libtcl", "libX11", "libxcb", "libnsl", "libkrb5"] {
                assert!(!name.starts_with(only_skipped), "bound: {}", p.display());
            }
        }
    }

    #[test]
    fn python3_is_found_with_libc_the_loader_and_its_stdlib() {
        let py = python();
        eprintln!("{} at {}", py.version, py.program.display());
        for m in &py.mounts {
            eprintln!("  {m:?}");
        }
        assert!(py.version.starts_with("Python 3."), "{}", py.version);
        assert_eq!(fs::canonicalize(&py.program).expect("exists"), py.program);
        assert!(is_elf(&py.program));
        check_layout(&py.mounts);
        let binds = system(&py.mounts);
        // Bound exec, on its own or through its install prefix.
        assert_eq!(
            provider(&binds, &py.program).map(|(_, exec)| exec),
            Some(true)
        );
        let libc = host_lib(&py.program, "libc.so");
        assert!(binds.contains(&(libc.as_path(), true)), "libc {libc:?}");
        // The loader: bound exec, and allowed to execve.
        let Header::Elf {
            interp: Some(interp),
        } = read_header(&py.program).expect("header")
        else {
            panic!("python3 is not a dynamic ELF binary")
        };
        let ld = fs::canonicalize(&interp).expect("ld.so");
        assert!(binds.contains(&(ld.as_path(), true)));
        let exec: Vec<&str> = py.exec.iter().map(String::as_str).collect();
        assert_eq!(
            exec,
            [utf8(&py.program).expect("utf8"), utf8(&ld).expect("utf8")]
        );
        assert!(binds.contains(&(Path::new(LD_SO_CACHE), false)));
        let cache = tempfile::tempdir().expect("tempdir");
        check_python_layout(&py, cache.path());
        eprintln!("{} mounts, {} binds", py.mounts.len(), binds.len());
    }

    #[test]
    fn a_bound_prefix_is_watched_as_what_it_stands_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let py = discover(Runtime::Python3, dir.path()).expect("python");
        let host = host_python(&py.program);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let base = utf8(&host.base_prefix).expect("utf8");
        let Some(prefix) = own_prefix(base, &py.program, home.as_deref(), dir.path()) else {
            eprintln!(
                "{} is not in a prefix of its own; nothing to check",
                py.version
            );
            return;
        };
        let file = read_cache(&dir.path().join(CACHE_FILE)).expect("cache");
        let entry = file.entries.first().expect("entry");
        assert_eq!(
            entry
                .mounts
                .iter()
                .filter(|(t, _)| Path::new(t) == prefix)
                .count(),
            1
        );
        // The program, the standard library and lib-dynload are stamped, though not bound.
        for path in [&py.program, &host.stdlib, &host.dynload] {
            assert!(entry.watched.contains(path), "{} watched", path.display());
        }
    }

    #[test]
    fn a_warm_cache_answers_the_same_in_well_under_a_millisecond() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        let cold = discover(Runtime::Python3, dir.path()).expect("cold");
        let cold_time = t.elapsed();
        assert!(dir.path().join(CACHE_FILE).is_file());
        let warm = discover(Runtime::Python3, dir.path()).expect("warm");
        assert_eq!(warm, cold);
        let mut times: Vec<Duration> = (0..200)
            .map(|_| {
                let t = Instant::now();
                let again = discover(Runtime::Python3, dir.path()).expect("warm");
                let took = t.elapsed();
                assert_eq!(again.program, cold.program);
                took
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        let mean = times.iter().sum::<Duration>() / 200;
        let bytes = fs::metadata(dir.path().join(CACHE_FILE))
            .expect("cache")
            .len();
        let build = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        eprintln!(
            "python3 discovery ({build} build): cold {cold_time:?}; warm median {median:?}, \
             mean {mean:?} ({} mounts, cache {bytes} bytes)",
            cold.mounts.len()
        );
        // A debug build parses JSON several times slower; leave it room under a loaded machine.
        let bound = Duration::from_millis(if cfg!(debug_assertions) { 3 } else { 1 });
        assert!(median < bound, "a warm call took {median:?}");
    }

    #[test]
    fn a_corrupt_or_stale_cache_is_ignored_and_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join(CACHE_FILE);
        fs::write(&cache, b"{\"format\": 1, \"entries\": [tru").expect("write");
        let first = discover(Runtime::Sh, dir.path()).expect("discover over garbage");
        assert!(read_cache(&cache).is_some(), "rewritten as valid JSON");
        // A stale entry: same key, but a watched path no longer matches its stamp.
        let mut file = read_cache(&cache).expect("cache");
        let entry = file.entries.first_mut().expect("entry");
        entry.stamps ^= 1;
        entry.version = "forged".into();
        fs::write(&cache, serde_json::to_vec(&file).expect("json")).expect("write");
        let second = discover(Runtime::Sh, dir.path()).expect("discover over stale");
        assert_eq!(second, first);
        let file = read_cache(&cache).expect("cache");
        assert_eq!(file.entries.len(), 1);
        assert_eq!(file.entries[0].version, first.version);
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [OsString::from(CACHE_FILE)]);
    }

    /// Restricts the calling thread, and whatever it starts, with the cell's Landlock rules and
    /// an empty exec list: it can read everything, and execute and write nothing. Other threads
    /// keep their rights (Landlock binds one thread).
    fn forbid_exec_and_writes_on_this_thread() {
        let spec = CellSpec {
            argv: Vec::new(),
            env: Vec::new(),
            cwd: "/".into(),
            hostname: String::new(),
            mounts: Vec::new(),
            exec: Vec::new(),
            limits: CellLimits {
                memory_bytes: 0,
                cpu_ms: 0,
                wall_ms: 0,
                pids: 0,
                fsize_bytes: 0,
                nofile: 0,
                output_bytes: 0,
                tmp_bytes: 0,
            },
            proxy_port: None,
        };
        if let Err(e) = skillcell_sandbox_linux::landlock_cell::restrict(&spec) {
            panic!(
                "this test needs Landlock to forbid execve on one thread, and it is missing: {e}; \
                 run it on Linux 5.13 or later with landlock in the lsm= boot list"
            );
        }
    }

    #[test]
    fn a_warm_call_starts_no_process() {
        let cache = tempfile::tempdir().expect("tempdir");
        let cold_cache = tempfile::tempdir().expect("tempdir");
        let scripts = tempfile::tempdir().expect("tempdir");
        let script = scripts.path().join("hello");
        fs::write(&script, "#!/usr/bin/env bash\necho hi\n").expect("write");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
        let asked = [
            Executable::Name("ls".into()),
            Executable::Path(script.to_str().expect("utf8").to_owned()),
        ];
        let warmed: Vec<HostProgram> = asked
            .iter()
            .map(|e| resolve_executable(e, cache.path()).expect("cold"))
            .collect();
        let py = discover(Runtime::Python3, cache.path()).expect("python");
        let sh = discover(Runtime::Sh, cache.path()).expect("sh");
        let (cache_dir, cold_dir) = (cache.path().to_owned(), cold_cache.path().to_owned());
        let restricted = std::thread::spawn(move || {
            forbid_exec_and_writes_on_this_thread();
            // The control: a cold call must run ldd, and on this thread it cannot.
            let err = resolve_executable(&asked[0], &cold_dir).expect_err("ldd cannot start");
            assert!(err.to_string().contains("cannot start it"), "{err}");
            for (exe, want) in asked.iter().zip(&warmed) {
                let got = resolve_executable(exe, &cache_dir)
                    .unwrap_or_else(|e| panic!("warm {exe} without starting a process: {e}"));
                assert_eq!(&got, want);
            }
            let got = discover(Runtime::Python3, &cache_dir)
                .unwrap_or_else(|e| panic!("warm python3 without starting a process: {e}"));
            assert_eq!(got, py);
            assert_eq!(discover(Runtime::Sh, &cache_dir).expect("warm sh"), sh);
        });
        if let Err(panic) = restricted.join() {
            std::panic::resume_unwind(panic);
        }
    }

    /// Sets the exec list of every cached declared executable to `[marker]`, stamps untouched,
    /// so that an answer taken from the cache shows.
    fn mark_cached_executables(cache_dir: &Path, marker: &str) {
        let path = cache_dir.join(CACHE_FILE);
        let mut file = read_cache(&path).expect("cache");
        for e in &mut file.entries {
            if matches!(e.key, CacheKey::Executable { .. }) {
                e.exec = vec![marker.to_owned()];
            }
        }
        fs::write(&path, serde_json::to_vec(&file).expect("json")).expect("write");
    }

    #[test]
    fn a_changed_executable_is_rediscovered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = tempfile::tempdir().expect("tempdir");
        let tool = dir.path().join("tool");
        fs::copy(find_fixed("ls").expect("ls"), &tool).expect("copy");
        let exe = Executable::Path(tool.to_str().expect("utf8").to_owned());
        let elf = resolve_executable(&exe, cache.path()).expect("cold");
        assert_eq!(elf.exec.len(), 2, "the tool and the loader: {:?}", elf.exec);

        mark_cached_executables(cache.path(), "/marked");
        let warm = resolve_executable(&exe, cache.path()).expect("warm");
        assert_eq!(warm.exec, ["/marked"], "a warm call answers from the cache");

        // The same bytes with another mtime: stale, rediscovered, and stored again.
        File::options()
            .write(true)
            .open(&tool)
            .and_then(|f| f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)))
            .expect("set mtime");
        assert_eq!(
            resolve_executable(&exe, cache.path()).expect("touched"),
            elf
        );
        assert_eq!(resolve_executable(&exe, cache.path()).expect("warm"), elf);

        // Other bytes in the same file (same inode): now a script, which brings /bin/sh.
        mark_cached_executables(cache.path(), "/marked");
        fs::write(&tool, "#!/bin/sh\necho changed\n").expect("write");
        let script = resolve_executable(&exe, cache.path()).expect("rewritten");
        let sh = fs::canonicalize("/bin/sh").expect("sh");
        assert!(
            script.exec.iter().any(|e| Path::new(e) == sh),
            "{:?}",
            script.exec
        );
        assert_eq!(
            script.exec.len(),
            3,
            "script, sh, loader: {:?}",
            script.exec
        );

        // A name and a path to the same program are separate entries; the cache keeps both
        // beside the interpreters.
        let by_name = resolve_executable(&Executable::Name("ls".into()), cache.path()).expect("ls");
        let ls = find_fixed("ls").expect("ls");
        let by_path = resolve_executable(
            &Executable::Path(ls.to_str().expect("utf8").to_owned()),
            cache.path(),
        )
        .expect("ls");
        assert_eq!(by_name, by_path);
        discover(Runtime::Sh, cache.path()).expect("sh");
        let file = read_cache(&cache.path().join(CACHE_FILE)).expect("cache");
        assert_eq!(file.entries.len(), 4);
    }

    #[test]
    fn a_declared_executable_warms_in_well_under_a_millisecond() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = Executable::Name("ls".into());
        let t = Instant::now();
        let cold = resolve_executable(&exe, dir.path()).expect("cold");
        let cold_time = t.elapsed();
        let mut times: Vec<Duration> = (0..200)
            .map(|_| {
                let t = Instant::now();
                let warm = resolve_executable(&exe, dir.path()).expect("warm");
                let took = t.elapsed();
                assert_eq!(warm, cold);
                took
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        let build = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        eprintln!(
            "ls resolution ({build} build): cold {cold_time:?}; warm median {median:?} ({} mounts)",
            cold.mounts.len()
        );
        let bound = Duration::from_millis(if cfg!(debug_assertions) { 2 } else { 1 });
        assert!(median < bound, "a warm call took {median:?}");
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]).env_clear().env("PATH", FIXED_PATH);
        cmd
    }

    #[test]
    fn a_probe_is_reaped_when_it_exits_and_killed_when_late() {
        let out = run_bounded(&mut sh("echo out; echo err >&2; exit 3")).expect("runs");
        assert!(!out.success);
        assert!(out.status.contains('3'), "{}", out.status);
        assert_eq!(
            (&out.stdout[..], &out.stderr[..]),
            (&b"out\n"[..], &b"err\n"[..])
        );

        // Closing its output early does not end the wait; its exit does.
        let t = Instant::now();
        let out = run_bounded(&mut sh("exec >&- 2>&-; sleep 0.3; exit 4")).expect("runs");
        assert!(out.status.contains('4'), "{}", out.status);
        assert!(t.elapsed() >= Duration::from_millis(300));

        let t = Instant::now();
        let err = run_within(
            &mut sh("sleep 20"),
            Duration::from_millis(300),
            OUTPUT_GRACE,
        )
        .err()
        .expect("late");
        assert_eq!(err, "it did not finish within 0 s and was killed");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

        let t = Instant::now();
        let err = run_within(
            &mut sh("sleep 20 & echo started"),
            PROBE_TIMEOUT,
            Duration::from_millis(300),
        )
        .err()
        .expect("held");
        assert_eq!(err, "a process it started still holds its output open");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    /// Median time of `run_bounded` on `/bin/true` and on `ldd` of `ls`, for the record.
    #[test]
    fn a_probe_costs_no_more_than_its_run() {
        let ls = find_fixed("ls").expect("ls");
        for (name, argv) in [
            ("true", vec!["/bin/true".to_owned()]),
            (
                "ldd ls",
                vec![LDD[0].to_owned(), ls.to_str().expect("utf8").to_owned()],
            ),
        ] {
            let mut times: Vec<Duration> = (0..30)
                .map(|_| {
                    let mut cmd = Command::new(&argv[0]);
                    cmd.args(&argv[1..]);
                    let t = Instant::now();
                    let out = run_bounded(&mut cmd).expect("runs");
                    assert!(out.success, "{name}: {}", out.status);
                    t.elapsed()
                })
                .collect();
            times.sort();
            eprintln!("run_bounded({name}): median {:?}", times[times.len() / 2]);
        }
    }

    #[test]
    fn bash_and_sh_are_found_on_the_fixed_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bash = discover(Runtime::Bash, dir.path()).expect("bash");
        eprintln!(
            "{} at {}: {:?}",
            bash.version,
            bash.program.display(),
            bash.mounts
        );
        assert!(bash.version.starts_with("bash "), "{}", bash.version);
        assert_eq!(
            fs::canonicalize(&bash.program).expect("exists"),
            bash.program
        );
        check_layout(&bash.mounts);

        let sh = discover(Runtime::Sh, dir.path()).expect("sh");
        eprintln!(
            "{} at {}: {:?}",
            sh.version,
            sh.program.display(),
            sh.mounts
        );
        check_layout(&sh.mounts);
        let real = fs::canonicalize("/bin/sh").expect("/bin/sh");
        assert_eq!(sh.program, real);
        assert!(system(&sh.mounts).contains(&(real.as_path(), true)));
        // Each symlink on the way from /bin/sh to the real file is recreated.
        let mut layout = Layout::default();
        layout.trace(Path::new("/bin/sh")).expect("trace");
        for link in layout.links.keys() {
            assert!(
                sh.mounts
                    .iter()
                    .any(|m| Path::new(&m.target) == link
                        && matches!(m.kind, MountKind::Symlink { .. })),
                "{} recreated",
                link.display()
            );
        }
    }

    #[test]
    fn node_is_found_or_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        match discover(Runtime::Node, dir.path()) {
            Ok(node) => {
                eprintln!("{} at {}", node.version, node.program.display());
                assert!(node.version.starts_with("Node.js v"), "{}", node.version);
                check_layout(&node.mounts);
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("Node.js is not installed"), "{msg}");
            }
        }
        let env = HostEnv {
            path: Some("/nonexistent".into()),
            ..HostEnv::default()
        };
        if find_on_paths("node", None).is_none() {
            let err = discover_with(Runtime::Node, dir.path(), &env).expect_err("no node");
            assert!(
                err.to_string().starts_with("node not found on PATH or in"),
                "{err}"
            );
        }
    }

    #[test]
    fn skillcell_python_names_the_interpreter() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The distribution's Python, where it differs from the one on PATH (pyenv).
        let system_python = Path::new("/usr/bin/python3");
        if system_python.exists() {
            let env = HostEnv {
                python: Some(system_python.into()),
                path: Some("/nonexistent".into()),
                probe: vec![("PATH".into(), "/usr/bin:/bin".into())],
            };
            let py = discover_with(Runtime::Python3, dir.path(), &env).expect("system python");
            let binds = system(&py.mounts);
            eprintln!(
                "{} at {}: {} mounts, {} binds",
                py.version,
                py.program.display(),
                py.mounts.len(),
                binds.len()
            );
            check_python_layout(&py, dir.path());
            assert_eq!(
                py.program,
                fs::canonicalize(system_python).expect("canonical")
            );
            // Debian's prefix is /usr: the per-directory layout.
            if host_python(&py.program).base_prefix == Path::new("/usr") {
                assert!(binds.contains(&(py.program.as_path(), true)));
                assert!(!binds.iter().any(|(p, _)| *p == Path::new("/usr")));
            }
        }
        let env = HostEnv {
            python: Some("/nonexistent/python3".into()),
            ..HostEnv::default()
        };
        let err = discover_with(Runtime::Python3, dir.path(), &env).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "/nonexistent/python3 not found (named by SKILLCELL_PYTHON); install Python 3 there \
             or fix SKILLCELL_PYTHON"
        );
        let env = HostEnv {
            python: Some("/etc/passwd".into()),
            ..HostEnv::default()
        };
        let err = discover_with(Runtime::Python3, dir.path(), &env).expect_err("not a program");
        assert!(err.to_string().contains("no execute permission"), "{err}");
    }

    #[test]
    fn python3_not_found_says_how_to_fix_it() {
        let err = locate(
            Runtime::Python3,
            &HostEnv {
                path: Some("/nonexistent".into()),
                ..HostEnv::default()
            },
        );
        if find_on_paths("python3", None).is_none() {
            assert_eq!(
                err.expect_err("absent").to_string(),
                "python3 not found on PATH or in /usr/local/bin:/usr/bin:/bin; install Python 3 \
                 or set SKILLCELL_PYTHON"
            );
        }
    }

    #[test]
    fn wasm_has_no_host_interpreter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = discover(Runtime::Wasm, dir.path()).expect_err("wasm");
        assert!(err.to_string().contains("wasm cell"), "{err}");
        assert!(!dir.path().join(CACHE_FILE).exists());
    }

    #[test]
    fn declared_executables_resolve_on_the_fixed_path_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ls = resolve_executable(&Executable::Name("ls".into()), dir.path()).expect("ls");
        assert_eq!(fs::canonicalize(&ls.program).expect("exists"), ls.program);
        check_layout(&ls.mounts);
        assert!(system(&ls.mounts).contains(&(ls.program.as_path(), true)));
        assert_eq!(ls.exec.len(), 2, "ls and the loader: {:?}", ls.exec);

        let err = resolve_executable(
            &Executable::Name("definitely-not-a-program".into()),
            dir.path(),
        )
        .expect_err("absent");
        assert_eq!(
            err.to_string(),
            "`definitely-not-a-program` not found in /usr/local/bin:/usr/bin:/bin; install it, \
             or declare its absolute path"
        );
        let err = resolve_executable(&Executable::Name("../bin/ls".into()), dir.path())
            .expect_err("path");
        assert!(matches!(err, RuntimeError::BadName { .. }), "{err}");
        let err = resolve_executable(&Executable::Path("/etc/passwd".into()), dir.path())
            .expect_err("no x");
        assert_eq!(
            err.to_string(),
            "/etc/passwd cannot be run: it has no execute permission bit"
        );
        let err =
            resolve_executable(&Executable::Path("/etc".into()), dir.path()).expect_err("dir");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = resolve_executable(&Executable::Path("bin/ls".into()), dir.path())
            .expect_err("relative");
        assert!(err.to_string().contains("not an absolute path"), "{err}");
        let err = resolve_executable(&Executable::Path("/nonexistent/x".into()), dir.path())
            .expect_err("absent");
        assert!(matches!(err, RuntimeError::Io { .. }), "{err}");
    }

    #[test]
    fn a_script_brings_its_interpreter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("hello");
        fs::write(&script, "#!/bin/sh -e\necho hello from a script\n").expect("write");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
        let prog = resolve_executable(
            &Executable::Path(script.to_string_lossy().into_owned()),
            dir.path(),
        )
        .expect("script");
        let sh = fs::canonicalize("/bin/sh").expect("sh");
        assert!(
            prog.exec.iter().any(|e| Path::new(e) == sh),
            "{:?}",
            prog.exec
        );
        assert_eq!(prog.exec.len(), 3, "script, sh, loader: {:?}", prog.exec);
        check_layout(&prog.mounts);

        let env_script = dir.path().join("via-env");
        fs::write(&env_script, "#!/usr/bin/env bash\necho hi\n").expect("write");
        fs::set_permissions(&env_script, fs::Permissions::from_mode(0o755)).expect("chmod");
        let prog = resolve_executable(
            &Executable::Path(env_script.to_string_lossy().into_owned()),
            dir.path(),
        )
        .expect("env script");
        let bash = fs::canonicalize(find_fixed("bash").expect("bash")).expect("bash");
        assert!(
            prog.exec.iter().any(|e| Path::new(e) == bash),
            "{:?}",
            prog.exec
        );

        let data = dir.path().join("data");
        fs::write(&data, "just text\n").expect("write");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = resolve_executable(
            &Executable::Path(data.to_string_lossy().into_owned()),
            dir.path(),
        )
        .expect_err("text");
        assert!(
            err.to_string()
                .contains("neither an ELF binary nor a #! script"),
            "{err}"
        );
    }

    #[test]
    fn elf_headers_give_the_loader_or_none() {
        let ls = find_fixed("ls").expect("ls");
        let Header::Elf {
            interp: Some(interp),
        } = read_header(&ls).expect("ls")
        else {
            panic!("ls is a dynamic ELF binary")
        };
        assert!(
            interp.is_absolute() && interp.exists(),
            "{}",
            interp.display()
        );
        // Shared libraries have no PT_INTERP (but glibc's libc.so.6, which can be run).
        let libs = ldd(&[ls], true).expect("ldd");
        assert!(
            libs.iter()
                .any(|l| read_header(Path::new(l)).expect("lib") == Header::Elf { interp: None }),
            "{libs:?}"
        );
        assert_eq!(
            read_header(Path::new("/etc/passwd")).expect("text"),
            Header::Other
        );
    }

    #[test]
    fn ldd_output_is_parsed() {
        let a = PathBuf::from("/x/a.so");
        let b = PathBuf::from("/x/b");
        let text = "/x/a.so:\n\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f77e08cb000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f77e09be000)\n\
                    /x/b:\n\tstatically linked\n";
        let got = parse_ldd(text, &[a.clone(), b.clone()], true).expect("parse");
        assert_eq!(
            got,
            [
                (a.clone(), "/lib/x86_64-linux-gnu/libssl.so.3".to_owned()),
                (a.clone(), "/lib64/ld-linux-x86-64.so.2".to_owned()),
            ]
        );
        let text = "\tlibgone.so.1 => not found\n";
        assert_eq!(
            parse_ldd(text, std::slice::from_ref(&b), false).expect("lenient"),
            []
        );
        let err = parse_ldd(text, std::slice::from_ref(&b), true).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "/x/b needs libgone.so.1, which the dynamic loader cannot find; install the package \
             that provides it"
        );
    }

    #[test]
    fn an_install_prefix_is_bound_whole_only_when_it_is_the_interpreters_own() {
        let home = Some(Path::new("/home/alice"));
        let cache = Path::new("/home/alice/.local/share/skillcell/run");
        for (prefix, program, own) in [
            (
                "/home/alice/.pyenv/versions/3.11.7",
                "/home/alice/.pyenv/versions/3.11.7/bin/python3.11",
                true,
            ),
            ("/opt/python3.12", "/opt/python3.12/bin/python3.12", true),
            (
                "/usr/local/python3.12",
                "/usr/local/python3.12/bin/python3.12",
                true,
            ),
            // Shared hierarchies.
            ("/usr", "/usr/bin/python3.11", false),
            ("/", "/python3", false),
            ("/usr/local", "/usr/local/bin/python3.12", false),
            ("/opt", "/opt/bin/python3", false),
            // The user's prefix, with their application data.
            (
                "/home/alice/.local",
                "/home/alice/.local/bin/python3.12",
                false,
            ),
            // The home directory itself, or above it.
            ("/home/alice", "/home/alice/bin/python3", false),
            ("/home", "/home/py/bin/python3", false),
            // The program elsewhere (a venv made with --copies), or a prefix that is a
            // sibling with a longer name.
            ("/opt/py", "/srv/venv/bin/python3", false),
            ("/opt/py", "/opt/py3/bin/python3", false),
            ("/opt/py/bin/python3", "/opt/py/bin/python3", false),
        ] {
            assert_eq!(
                is_own_prefix(Path::new(prefix), Path::new(program), home, cache),
                own,
                "{prefix} for {program}"
            );
        }
        // The prefix holding skillcell's own state.
        assert!(!is_own_prefix(
            Path::new("/srv/py"),
            Path::new("/srv/py/bin/python3"),
            None,
            Path::new("/srv/py/skillcell/run"),
        ));
        let tmp = Path::new("/tmp");
        assert_eq!(own_prefix("", Path::new("/x/bin/py"), None, tmp), None);
        assert_eq!(
            own_prefix("relative", Path::new("relative/py"), None, tmp),
            None
        );
        assert_eq!(
            own_prefix(
                "/nonexistent/prefix",
                Path::new("/nonexistent/prefix/py"),
                None,
                tmp
            ),
            None
        );
    }

    #[test]
    fn only_the_listed_top_level_modules_are_skipped() {
        let top = [PathBuf::from("/p/lib-dynload"), PathBuf::from("/p/site")];
        for (module, skipped) in [
            (
                "/p/lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so",
                true,
            ),
            ("/p/lib-dynload/nis.cpython-311-x86_64-linux-gnu.so", true),
            ("/p/lib-dynload/_tkinter.so", true),
            ("/p/site/nis.abi3.so", true),
            ("/p/lib-dynload/zlib.cpython-311-x86_64-linux-gnu.so", false),
            (
                "/p/lib-dynload/_tkinter_ext.cpython-311-x86_64-linux-gnu.so",
                false,
            ),
            ("/p/lib-dynload/nisx.so", false),
            // In a package, not the standard library's module.
            (
                "/p/site/pkg/_tkinter.cpython-311-x86_64-linux-gnu.so",
                false,
            ),
            ("/q/_tkinter.so", false),
        ] {
            assert_eq!(
                skipped_module(Path::new(module), &top).is_some(),
                skipped,
                "{module}"
            );
        }
        for (name, why) in SKIPPED_MODULES {
            assert!(!name.contains('.') && why.len() > 20, "{name}: {why}");
        }
    }

    #[test]
    fn layout_orders_parents_first_and_drops_what_a_directory_provides() {
        let mut layout = Layout::default();
        layout.bind("/p/lib/python3/lib-dynload/x.so".into(), false, true);
        layout.bind("/p/lib/python3/lib-dynload".into(), true, true);
        layout.bind("/p/lib/python3".into(), true, false);
        layout.bind("/p/lib/python3/site-packages/m.so".into(), false, true);
        layout.bind("/p/lib/python3/os.py".into(), false, false);
        layout.bind("/p/lib/libpython3.so".into(), false, true);
        layout.link("/p/lib/python3/lib-dynload/y.so".into(), "x.so".into());
        layout.link("/lib64".into(), "usr/lib64".into());
        let got: Vec<(String, String)> = layout
            .into_mounts()
            .into_iter()
            .map(|m| {
                let kind = match m.kind {
                    MountKind::System { exec, .. } => format!("bind exec={exec}"),
                    MountKind::Symlink { link_target } => format!("-> {link_target}"),
                    other => format!("{other:?}"),
                };
                (m.target, kind)
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("/lib64", "-> usr/lib64"),
            ("/p/lib/libpython3.so", "bind exec=true"),
            ("/p/lib/python3", "bind exec=false"),
            ("/p/lib/python3/lib-dynload", "bind exec=true"),
            ("/p/lib/python3/site-packages/m.so", "bind exec=true"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn merged_lists_keep_the_guarantees() {
        let dir = tempfile::tempdir().expect("tempdir");
        let py = discover(Runtime::Python3, dir.path()).expect("python");
        let sh = discover(Runtime::Sh, dir.path()).expect("sh");
        let ls = resolve_executable(&Executable::Name("ls".into()), dir.path()).expect("ls");
        let merged = merge_mounts([&py.mounts[..], &sh.mounts[..], &ls.mounts[..]]);
        check_layout(&merged);
        for m in py.mounts.iter().chain(&sh.mounts).chain(&ls.mounts) {
            let covered = merged.iter().any(|n| {
                n == m
                    || matches!(&n.kind, MountKind::System { host, exec }
                        if host.is_dir() && Path::new(&m.target).starts_with(host)
                            && (*exec || !matches!(m.kind, MountKind::System { exec: true, .. })))
            });
            assert!(covered, "{m:?} lost in the merge");
        }
    }

    /// Quotes for `sh`.
    fn q(s: &str) -> String {
        format!("'{}'", s.replace('\'', r"'\''"))
    }

    /// Builds a root like the cell does (an empty tmpfs; read-only, nosuid, nodev binds that are
    /// noexec unless `exec`; symlinks; `/dev/null`), in a private mount namespace, and runs
    /// `argv` chrooted into it. Panics when this host cannot create a mount namespace: the test
    /// needs root (or CAP_SYS_ADMIN) and `unshare`, and fails rather than pass untested.
    fn run_in_root(mounts: &[Mount], argv: &[&str]) -> std::process::Output {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_str().expect("utf8");
        let mut script = format!(
            "set -e\nR={}\nmount -t tmpfs -o mode=0755 cell \"$R\"\n",
            q(root)
        );
        for m in mounts {
            let t = q(&m.target);
            let parent = q(&Path::new(&m.target)
                .parent()
                .expect("parent")
                .to_string_lossy());
            match &m.kind {
                MountKind::System { host, exec } => {
                    let h = q(&host.to_string_lossy());
                    if host.is_dir() {
                        script += &format!("mkdir -p \"$R\"{t}\n");
                    } else {
                        script += &format!(
                            "mkdir -p \"$R\"{parent}\n[ -e \"$R\"{t} ] || : > \"$R\"{t}\n"
                        );
                    }
                    let flags = if *exec { "" } else { ",noexec" };
                    script += &format!(
                        "mount --bind {h} \"$R\"{t}\n\
                         mount -o remount,bind,ro,nosuid,nodev{flags} \"$R\"{t}\n"
                    );
                }
                MountKind::Symlink { link_target } => {
                    script += &format!(
                        "mkdir -p \"$R\"{parent}\nln -s {} \"$R\"{t}\n",
                        q(link_target)
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        script +=
            "mkdir -p \"$R/dev\"\n: > \"$R/dev/null\"\nmount --bind /dev/null \"$R/dev/null\"\n";
        script += "mount -o remount,ro,nosuid,nodev,noexec \"$R\"\n";
        script += "C=$(PATH=/usr/sbin:/sbin:/usr/bin:/bin command -v chroot)\nexec env -i LANG=C.UTF-8 PATH=/usr/bin:/bin \"$C\" \"$R\"";
        for a in argv {
            script += &format!(" {}", q(a));
        }
        let probe = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "this test needs a private mount namespace, and `unshare --mount` failed ({}: {}); \
                 run it as root (or with CAP_SYS_ADMIN) on a kernel with mount namespaces",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!(
                "this test needs a private mount namespace, and `unshare` cannot be started \
                 ({e}); install util-linux and run it as root"
            ),
        }
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .output()
            .expect("unshare");
        if !out.status.success() {
            eprintln!("script:\n{script}");
        }
        out
    }

    fn assert_runs(mounts: &[Mount], argv: &[&str], expect: &str) {
        let out = run_in_root(mounts, argv);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(expect) && out.stderr.is_empty(),
            "{argv:?} in a root of only the listed mounts: {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Imports that must work in a cell, and the skipped modules that must not.
    const PYTHON_CHECK: &str = "\
         import json, ssl, sqlite3, zlib, ctypes, hashlib, decimal, lzma, bz2\n\
         import datetime, socket, select, struct, uuid, pyexpat, unicodedata, csv\n\
         ctypes.CDLL(None)\n\
         sqlite3.connect(':memory:').execute('select 1')\n\
         lzma.compress(b'x'); bz2.compress(b'x'); zlib.compress(b'x')\n\
         for name in ('_tkinter', 'nis'):\n\
         \ttry:\n\
         \t\t__import__(name)\n\
         \texcept ImportError as e:\n\
         \t\tprint('no', name, e)\n\
         \telse:\n\
         \t\traise SystemExit(name + ' imported: its libraries were bound')\n\
         print('python ok', ssl.OPENSSL_VERSION)";

    /// Runs [`PYTHON_CHECK`] and `site` with only `py`'s mounts, and the control: the same root
    /// with lib-dynload `noexec` cannot load an extension module, so the root really enforced
    /// `noexec`, and `exec: true` is what made the rest work.
    fn assert_python_runs(py: &Interpreter) {
        let program = py.program.to_str().expect("utf8");
        let host = host_python(&py.program);
        let out = run_in_root(&py.mounts, &[program, "-I", "-S", "-c", PYTHON_CHECK]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("python ok") && out.stderr.is_empty(),
            "{} in a root of only its mounts: {}\nstdout: {stdout}\nstderr: {}",
            py.version,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // A skipped module that imports on the host fails for want of its libraries: proof
        // that they were left out, and not that the module is missing.
        for (name, on_host) in [("_tkinter", host.tkinter), ("nis", host.nis)] {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("no {name} ")))
                .unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
            eprintln!("{} in a cell: {line}", py.version);
            if on_host {
                assert!(
                    line.contains("cannot open shared object file"),
                    "{name} imports on the host, and fails otherwise in a cell: {line}"
                );
            }
        }

        let dynload = utf8(&host.dynload).expect("utf8").to_owned();
        let mut noexec: Vec<Mount> = py
            .mounts
            .iter()
            .filter(|m| m.target != dynload)
            .cloned()
            .collect();
        noexec.push(Mount {
            target: dynload.clone(),
            kind: MountKind::System {
                host: host.dynload.clone(),
                exec: false,
            },
        });
        noexec.sort_by(|a, b| Path::new(&a.target).cmp(Path::new(&b.target)));
        let out = run_in_root(&noexec, &[program, "-I", "-S", "-c", "import _ctypes"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "_ctypes loaded from a noexec mount");
        assert!(stderr.contains("failed to map segment"), "{stderr}");

        // With `site`, so site-packages and its .pth files load too.
        assert_runs(
            &py.mounts,
            &[program, "-I", "-c", "import site; print('site ok')"],
            "site ok",
        );
    }

    #[test]
    fn the_listed_mounts_are_enough_to_run_each_interpreter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let py = discover(Runtime::Python3, dir.path()).expect("python");
        assert_python_runs(&py);
        // The distribution's Python, where it differs from the one on PATH (pyenv): the
        // per-directory layout.
        let system_python = Path::new("/usr/bin/python3");
        if system_python.exists() && fs::canonicalize(system_python).ok() != Some(py.program) {
            let env = HostEnv {
                python: Some(system_python.into()),
                path: Some("/nonexistent".into()),
                probe: vec![("PATH".into(), "/usr/bin:/bin".into())],
            };
            let py = discover_with(Runtime::Python3, dir.path(), &env).expect("system python");
            assert_python_runs(&py);
        }

        let bash = discover(Runtime::Bash, dir.path()).expect("bash");
        let program = bash.program.to_str().expect("utf8");
        assert_runs(&bash.mounts, &[program, "-c", "echo bash ok"], "bash ok");

        let sh = discover(Runtime::Sh, dir.path()).expect("sh");
        let program = sh.program.to_str().expect("utf8");
        assert_runs(&sh.mounts, &[program, "-c", "echo sh ok"], "sh ok");
        // `#!/bin/sh` scripts find it by its usual name.
        assert_runs(
            &sh.mounts,
            &["/bin/sh", "-c", "echo bin-sh ok"],
            "bin-sh ok",
        );

        if let Ok(node) = discover(Runtime::Node, dir.path()) {
            let program = node.program.to_str().expect("utf8");
            assert_runs(
                &node.mounts,
                &[
                    program,
                    "-e",
                    "console.log('node ok', require('crypto').createHash('sha256').digest('hex'))",
                ],
                "node ok",
            );
        }

        let ls = resolve_executable(&Executable::Name("ls".into()), dir.path()).expect("ls");
        let program = ls.program.to_str().expect("utf8");
        assert_runs(&ls.mounts, &[program, "-d", "/"], "/");
    }
}
