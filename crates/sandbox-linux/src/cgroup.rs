//! A cgroup per run: memory, pids and CPU limits for the whole cell, usage read from outside,
//! and a way to kill every process in it.
//!
//! Each controller is taken from cgroup v2 when the v2 hierarchy offers it, else from its v1
//! hierarchy (hosts like ours are hybrids: v2 is mounted but memory and pids live in v1). A v2
//! cgroup is also made whenever v2 is mounted, for `cgroup.kill` and `cpu.stat`, which v2 has
//! without any controller. Run cgroups are `<base>/skillcell/run-<pid>-<nonce>` in each
//! hierarchy, where `<base>` is this process's own cgroup, except on v2 when running as root:
//! there it is the hierarchy's root, because a v2 cgroup that holds processes (ours holds at
//! least this one) cannot enable controllers for its children. Unprivileged users need a
//! delegated v2 cgroup (`systemd-run --user --scope -p Delegate=yes`). The parent `skillcell`
//! directory is shared by all runs and never removed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skillcell_sandbox::{CellLimits, CgroupReport};

use crate::doctor::{CgroupLayout, ControllerHome, cgroup_layout, own_cgroup};

/// Errors creating or driving a run cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no cgroup hierarchy offers the {controller} controller; the cell cannot cap {what}. Run `skillcell doctor`"
    )]
    Missing {
        controller: &'static str,
        what: &'static str,
    },
    #[error("cannot find this process's cgroup in {mount}")]
    OwnCgroup { mount: PathBuf },
    #[error("cannot {action} {path}: {source}. Run `skillcell doctor` (cgroup_delegation)")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError + use<> {
    let path = path.to_path_buf();
    move |source| CgroupError::Io {
        action,
        path,
        source,
    }
}

/// Which hierarchy a directory belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The cgroups of one run.
#[derive(Debug)]
pub struct RunCgroup {
    /// Every directory created for this run, with its hierarchy version and controller name
    /// (`unified` for the v2 directory).
    dirs: Vec<(String, Version, PathBuf)>,
    memory: (Version, PathBuf),
    pids: (Version, PathBuf),
    /// Where CPU is limited (`cpu.max` / `cpu.cfs_quota_us`), if any hierarchy offers it.
    cpu: Option<(Version, PathBuf)>,
    /// Where CPU time is read: v2 `cpu.stat`, else v1 `cpuacct.usage`.
    cpu_usage: Option<(Version, PathBuf)>,
    /// The v2 directory, for `cgroup.kill`.
    unified: Option<PathBuf>,
    layout_mode: &'static str,
    removed: bool,
}

impl RunCgroup {
    /// Creates this run's cgroups. Fails when memory or pids cannot be capped; whatever was
    /// created before a failure is removed.
    pub fn create(run_id: &str) -> Result<Self, CgroupError> {
        let layout = cgroup_layout();
        gc_stale(&layout);
        let mut cg = Self {
            dirs: Vec::new(),
            memory: (Version::V2, PathBuf::new()),
            pids: (Version::V2, PathBuf::new()),
            cpu: None,
            cpu_usage: None,
            unified: None,
            layout_mode: layout.mode,
            removed: false,
        };
        // From here on, dropping `cg` removes what was created.
        if let Some(m) = &layout.v2_mount {
            cg.unified = Some(cg.make("unified", Version::V2, m, None, run_id)?);
        }
        cg.memory = cg
            .pick(&layout, "memory", run_id)?
            .ok_or(CgroupError::Missing {
                controller: "memory",
                what: "memory",
            })?;
        cg.pids = cg
            .pick(&layout, "pids", run_id)?
            .ok_or(CgroupError::Missing {
                controller: "pids",
                what: "the number of processes",
            })?;
        cg.cpu = cg.pick(&layout, "cpu", run_id)?;
        cg.cpu_usage = match (&cg.unified, v1_mount(&layout, "cpuacct")) {
            (Some(u), _) => Some((Version::V2, u.clone())),
            (None, Some(m)) => Some((
                Version::V1,
                cg.make("cpuacct", Version::V1, &m, Some("cpuacct"), run_id)?,
            )),
            (None, None) => None,
        };
        Ok(cg)
    }

    /// The directory for `controller`: the v2 one when v2 offers it, else a v1 one.
    fn pick(
        &mut self,
        layout: &CgroupLayout,
        controller: &'static str,
        run_id: &str,
    ) -> Result<Option<(Version, PathBuf)>, CgroupError> {
        match home(layout, controller) {
            ControllerHome::V2 => Ok(self.unified.clone().map(|d| (Version::V2, d))),
            ControllerHome::V1 => match v1_mount(layout, controller) {
                Some(m) => Ok(Some((
                    Version::V1,
                    self.make(controller, Version::V1, &m, Some(controller), run_id)?,
                ))),
                None => Ok(None),
            },
            ControllerHome::Missing => Ok(None),
        }
    }

    /// Creates `<own cgroup>/skillcell/<run_id>` in the hierarchy mounted at `mount` (once per
    /// hierarchy: v1 controllers may share one).
    fn make(
        &mut self,
        name: &str,
        version: Version,
        mount: &Path,
        v1: Option<&str>,
        run_id: &str,
    ) -> Result<PathBuf, CgroupError> {
        // On v2, a cgroup with processes cannot enable controllers for its children (the
        // "no internal processes" rule), and ours has at least this process. Root puts runs
        // under the hierarchy's root, which is exempt; others need a delegated cgroup.
        let own = if version == Version::V2 && crate::sys::cell::ids().0 == 0 {
            mount.to_path_buf()
        } else {
            own_cgroup(mount, v1).ok_or_else(|| CgroupError::OwnCgroup {
                mount: mount.to_path_buf(),
            })?
        };
        let parent = own.join("skillcell");
        let dir = parent.join(run_id);
        if self.dirs.iter().any(|(_, _, d)| *d == dir) {
            return Ok(dir);
        }
        match fs::create_dir(&parent) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create", &parent)(e)),
        }
        if version == Version::V2 {
            enable_v2_controllers(&own, &parent)?;
        }
        fs::create_dir(&dir).map_err(io_err("create", &dir))?;
        self.dirs.push((name.to_owned(), version, dir.clone()));
        Ok(dir)
    }

    /// Directories the supervisor must still write after restricting itself: each run
    /// directory (limits, `cgroup.procs`, `cgroup.kill`).
    pub fn writable_paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, _, d)| d.clone()).collect()
    }

    /// The shared parents of the run's directories: removing a run directory is a right on
    /// its parent, and that is the only right the supervisor keeps there (it cannot write
    /// other runs' limits).
    pub fn removable_in(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter_map(|(_, _, d)| d.parent().map(Path::to_path_buf))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The run's v2 directory, for `clone3(CLONE_INTO_CGROUP)`: a process born there never
    /// migrates, and a v2 migration costs an RCU grace period (milliseconds).
    pub fn unified(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// The `cgroup.procs` files a process must join to be in every cgroup of this run (but
    /// the v2 one when it is born there).
    pub fn procs_files(&self, born_in_unified: bool) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .filter(|(_, version, _)| !(born_in_unified && *version == Version::V2))
            .map(|(_, _, d)| d.join("cgroup.procs"))
            .collect()
    }

    /// Writes the limits. Memory has no swap escape: v2 `memory.swap.max` is 0, and v1
    /// `memory.memsw.limit_in_bytes` equals the memory limit where swap accounting exists.
    pub fn set_limits(&self, limits: &CellLimits) -> Result<(), CgroupError> {
        let (mv, md) = &self.memory;
        match mv {
            Version::V2 => {
                write(md, "memory.max", &limits.memory_bytes.to_string())?;
                write_optional(md, "memory.swap.max", "0")?;
            }
            Version::V1 => {
                write(
                    md,
                    "memory.limit_in_bytes",
                    &limits.memory_bytes.to_string(),
                )?;
                write_optional(
                    md,
                    "memory.memsw.limit_in_bytes",
                    &limits.memory_bytes.to_string(),
                )?;
                write_optional(md, "memory.swappiness", "0")?;
            }
        }
        let (_, pd) = &self.pids;
        write(pd, "pids.max", &limits.pids.to_string())?;
        // One CPU at most, so a spinning cell cannot take the whole host.
        match &self.cpu {
            Some((Version::V2, d)) => write(d, "cpu.max", "100000 100000")?,
            Some((Version::V1, d)) => {
                write(d, "cpu.cfs_period_us", "100000")?;
                write(d, "cpu.cfs_quota_us", "100000")?;
            }
            None => {}
        }
        Ok(())
    }

    /// CPU time used by every process of the run, in milliseconds.
    pub fn cpu_ms(&self) -> Option<u64> {
        match &self.cpu_usage {
            Some((Version::V2, d)) => {
                let s = fs::read_to_string(d.join("cpu.stat")).ok()?;
                let usec = s
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))?
                    .trim()
                    .parse::<u64>()
                    .ok()?;
                Some(usec / 1000)
            }
            Some((Version::V1, d)) => {
                let ns = fs::read_to_string(d.join("cpuacct.usage"))
                    .ok()?
                    .trim()
                    .parse::<u64>()
                    .ok()?;
                Some(ns / 1_000_000)
            }
            None => None,
        }
    }

    /// Peak memory of the run, when the kernel reports it.
    pub fn memory_peak(&self) -> Option<u64> {
        let (v, d) = &self.memory;
        let file = match v {
            Version::V2 => "memory.peak",
            Version::V1 => "memory.max_usage_in_bytes",
        };
        fs::read_to_string(d.join(file)).ok()?.trim().parse().ok()
    }

    /// How many times the kernel's OOM killer killed a process of this run.
    pub fn oom_kills(&self) -> u64 {
        let (v, d) = &self.memory;
        let (file, key) = match v {
            Version::V2 => ("memory.events", "oom_kill "),
            Version::V1 => ("memory.oom_control", "oom_kill "),
        };
        fs::read_to_string(d.join(file))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// How many times a fork failed because the pids limit was reached.
    pub fn pids_refused(&self) -> u64 {
        let (_, d) = &self.pids;
        fs::read_to_string(d.join("pids.events"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("max "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Kills every process of the run: `cgroup.kill` on v2, else SIGKILL to each pid listed.
    pub fn kill_all(&self) {
        if let Some(u) = &self.unified
            && fs::write(u.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        for (_, _, d) in &self.dirs {
            if let Ok(s) = fs::read_to_string(d.join("cgroup.procs")) {
                for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    crate::sys::cell::kill(pid, libc::SIGKILL);
                }
            }
        }
    }

    /// Whether any process is left in the run's cgroups.
    pub fn is_empty(&self) -> bool {
        self.dirs.iter().all(|(_, _, d)| {
            fs::read_to_string(d.join("cgroup.procs"))
                .map(|s| s.trim().is_empty())
                .unwrap_or(true)
        })
    }

    /// Kills what is left, then removes the run's directories (waiting up to `patience` for the
    /// kernel to finish tearing processes down).
    pub fn remove(mut self, patience: Duration) -> Result<(), CgroupError> {
        self.remove_inner(patience)
    }

    fn remove_inner(&mut self, patience: Duration) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        let deadline = Instant::now() + patience;
        let mut first_error = None;
        for (_, _, d) in &self.dirs {
            loop {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        self.kill_all_in(d);
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => {
                        first_error.get_or_insert(io_err("remove", d)(e));
                        break;
                    }
                }
            }
        }
        self.removed = true;
        first_error.map_or(Ok(()), Err)
    }

    fn kill_all_in(&self, d: &Path) {
        if let Ok(s) = fs::read_to_string(d.join("cgroup.procs")) {
            for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                crate::sys::cell::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// What the report says about cgroups.
    pub fn report(&self) -> CgroupReport {
        let versions: Vec<Version> = [Some(&self.memory), Some(&self.pids), self.cpu.as_ref()]
            .into_iter()
            .flatten()
            .map(|(v, _)| *v)
            .collect();
        let v1 = versions.contains(&Version::V1);
        let v2 = versions.contains(&Version::V2) || self.unified.is_some();
        let version = match (v1, v2) {
            (true, true) => "v1+v2",
            (true, false) => "v1",
            _ => "v2",
        };
        let mut controllers = vec![
            ("memory".to_owned(), self.memory.1.clone()),
            ("pids".to_owned(), self.pids.1.clone()),
        ];
        if let Some((_, d)) = &self.cpu {
            controllers.push(("cpu".into(), d.clone()));
        }
        if let Some(u) = &self.unified {
            controllers.push(("kill".into(), u.clone()));
        }
        CgroupReport {
            version: format!("{version} (host {})", self.layout_mode),
            controllers,
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        let _ = self.remove_inner(Duration::from_millis(500));
    }
}

fn home(layout: &CgroupLayout, controller: &str) -> ControllerHome {
    layout
        .plan
        .iter()
        .find(|(c, _)| c == controller)
        .map(|(_, h)| h.clone())
        .unwrap_or(ControllerHome::Missing)
}

fn v1_mount(layout: &CgroupLayout, controller: &str) -> Option<PathBuf> {
    layout
        .v1_mounts
        .iter()
        .find(|(c, _)| c == controller)
        .map(|(_, m)| m.clone())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let p = dir.join(file);
    fs::write(&p, value).map_err(io_err("write", &p))
}

/// Writes a file that only some kernels have (swap accounting, for instance).
fn write_optional(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let p = dir.join(file);
    match fs::write(&p, value) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(io_err("write", &p)),
    }
}

/// On v2, controllers must be enabled top-down: in our own cgroup's `subtree_control` (for the
/// `skillcell` directory) and in `skillcell`'s (for the runs).
fn enable_v2_controllers(own: &Path, parent: &Path) -> Result<(), CgroupError> {
    let available = fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<&str> = ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|c| available.split_whitespace().any(|a| a == *c))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let line: String = wanted
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    for dir in [own, parent] {
        let f = dir.join("cgroup.subtree_control");
        let current = fs::read_to_string(&f).unwrap_or_default();
        if wanted
            .iter()
            .all(|c| current.split_whitespace().any(|x| x == *c))
        {
            continue;
        }
        fs::write(&f, &line).map_err(io_err("enable controllers in", &f))?;
    }
    Ok(())
}

/// Removes run cgroups that a killed supervisor left behind (empty ones only; the kernel
/// refuses to remove a cgroup with processes).
fn gc_stale(layout: &CgroupLayout) {
    let mut parents = Vec::new();
    if let Some(m) = &layout.v2_mount {
        if crate::sys::cell::ids().0 == 0 {
            parents.push(m.clone());
        } else {
            parents.extend(own_cgroup(m, None));
        }
    }
    for (c, m) in &layout.v1_mounts {
        parents.extend(own_cgroup(m, Some(c)));
    }
    for p in parents {
        let Ok(entries) = fs::read_dir(p.join("skillcell")) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(pid) = name
                .strip_prefix("run-")
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A live supervisor owns its run; leave it alone.
            if Path::new(&format!("/proc/{pid}")).exists() && pid != std::process::id() {
                continue;
            }
            let _ = fs::remove_dir(e.path());
        }
    }
}
