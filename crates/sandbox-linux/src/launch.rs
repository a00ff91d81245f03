//! The launch steps, in order, behind a trait.
//!
//! [`build_cell`] runs in the cell's init (pid 1 of the new pid namespace, already in new user,
//! mount, net, ipc and uts namespaces): it assembles the filesystem and pivots into it.
//! [`enter_and_exec`] runs in the skill's process, forked by the init: it drops everything and
//! executes the program. Both only call [`CellSys`] methods, so the order is a unit test with
//! a recording fake ([`tests`]); [`LinuxCell`] is the real implementation. docs/cell.md lists
//! the same steps for people.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use sha2::{Digest as _, Sha256};
use skillcell_sandbox::{CellSpec, Mount, MountKind, VerifiedFile};

use crate::grant::GrantFd;
use crate::sys::cell::{self as sys, resolve};

/// A launch step that failed: which one, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    pub step: &'static str,
    pub message: String,
}

impl StepError {
    fn io(step: &'static str, what: impl std::fmt::Display, e: io::Error) -> Self {
        Self {
            step,
            message: format!("{what}: {e}"),
        }
    }
}

/// Where the device nodes every cell gets come from.
pub const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Every privileged operation of a launch, in the words of the steps.
pub trait CellSys {
    // In the init, before pivot_root.
    fn unshare_cgroup(&mut self) -> Result<(), StepError>;
    fn make_mounts_private(&mut self) -> Result<(), StepError>;
    /// Opens the source of mount `index` (refusing symlinks) and clones it as a detached tree.
    fn capture(&mut self, index: usize, mount: &Mount) -> Result<(), StepError>;
    fn capture_devices(&mut self) -> Result<(), StepError>;
    fn mount_root(&mut self) -> Result<(), StepError>;
    fn place(&mut self, index: usize, mount: &Mount) -> Result<(), StepError>;
    fn populate_dev(&mut self) -> Result<(), StepError>;
    fn write_etc(&mut self, hostname: &str) -> Result<(), StepError>;
    fn mount_proc(&mut self) -> Result<(), StepError>;
    fn pivot_root(&mut self) -> Result<(), StepError>;
    fn seal_root(&mut self) -> Result<(), StepError>;
    fn set_hostname(&mut self, name: &str) -> Result<(), StepError>;
    fn loopback_up(&mut self) -> Result<(), StepError>;
    // In the skill's process.
    fn new_session(&mut self) -> Result<(), StepError>;
    fn wire_stdio(&mut self) -> Result<(), StepError>;
    fn set_rlimits(&mut self, spec: &CellSpec) -> Result<(), StepError>;
    fn chdir(&mut self, cwd: &str) -> Result<(), StepError>;
    fn no_new_privs(&mut self) -> Result<(), StepError>;
    fn landlock(&mut self, spec: &CellSpec) -> Result<(), StepError>;
    fn drop_capabilities(&mut self) -> Result<(), StepError>;
    fn seccomp(&mut self) -> Result<(), StepError>;
    /// Replaces the process; returns only on failure.
    fn exec(&mut self, spec: &CellSpec) -> StepError;
    /// Notes that `step` is done, for the report's launch timings.
    fn mark(&mut self, _step: &'static str) {}
}

/// Builds the cell's filesystem and identity, in the init process. The order matters:
/// sources are captured before the root tmpfs can hide them; nothing is mounted after the
/// pivot but the read-only seal; the hostname and loopback need the namespaces the clone made.
pub fn build_cell<S: CellSys>(sys: &mut S, spec: &CellSpec) -> Result<(), StepError> {
    sys.unshare_cgroup()?;
    sys.make_mounts_private()?;
    for (i, m) in spec.mounts.iter().enumerate() {
        sys.capture(i, m)?;
    }
    sys.capture_devices()?;
    sys.mark("captured");
    sys.mount_root()?;
    for (i, m) in spec.mounts.iter().enumerate() {
        sys.place(i, m)?;
    }
    sys.mark("placed");
    sys.populate_dev()?;
    sys.write_etc(&spec.hostname)?;
    sys.mount_proc()?;
    sys.pivot_root()?;
    sys.seal_root()?;
    sys.set_hostname(&spec.hostname)?;
    sys.loopback_up()?;
    sys.mark("built");
    Ok(())
}

/// Turns the forked process into the skill: new session, stdio, limits, then the restrictions
/// from the widest to the narrowest (Landlock needs no_new_privs; capabilities go after
/// Landlock, which is allowed without them; seccomp last, because it forbids nothing the
/// earlier steps need but would be the first thing an attacker wants gone), then execve.
pub fn enter_and_exec<S: CellSys>(sys: &mut S, spec: &CellSpec) -> StepError {
    let mut steps = || -> Result<(), StepError> {
        sys.mark("forked");
        sys.new_session()?;
        sys.wire_stdio()?;
        sys.set_rlimits(spec)?;
        sys.chdir(&spec.cwd)?;
        sys.no_new_privs()?;
        sys.landlock(spec)?;
        sys.mark("landlocked");
        sys.drop_capabilities()?;
        sys.seccomp()?;
        sys.mark("filtered");
        Ok(())
    };
    match steps() {
        Ok(()) => sys.exec(spec),
        Err(e) => e,
    }
}

/// Descriptor numbers the init arranges before forking the skill.
pub mod fds {
    /// Messages to the supervisor (close-on-exec in the skill).
    pub const REPORT: i32 = 3;
    pub const STDIN: i32 = 4;
    pub const STDOUT: i32 = 5;
    pub const STDERR: i32 = 6;
}

/// What a captured source is.
#[derive(Debug)]
struct Captured {
    tree: OwnedFd,
    is_dir: bool,
}

/// The real launch steps.
#[derive(Debug)]
pub struct LinuxCell {
    /// Where the root tmpfs is mounted before the pivot (in the cell's private mount
    /// namespace, so the host never sees it).
    staging: &'static str,
    root: Option<OwnedFd>,
    captured: HashMap<usize, Captured>,
    /// The host directories of verified copies, opened at capture.
    sources: HashMap<usize, OwnedFd>,
    devices: Vec<(&'static str, OwnedFd)>,
    seccomp: Option<crate::seccomp::CellFilter>,
    /// (step, CLOCK_MONOTONIC µs) for the report's launch timings.
    marks: Vec<(&'static str, u64)>,
}

impl LinuxCell {
    /// Sends the marks so far to the supervisor as one `marks` line, and forgets them.
    pub fn send_marks(&mut self) {
        let mut line = String::from("marks");
        for (step, us) in self.marks.drain(..) {
            line.push_str(&format!("\t{step}={us}"));
        }
        line.push('\n');
        let _ = sys::write_all(fds::REPORT, line.as_bytes());
    }

    /// `seccomp` is built by the caller before forking (building allocates; the skill's process
    /// should only install).
    pub fn new(seccomp: Option<crate::seccomp::CellFilter>) -> Self {
        Self {
            staging: "/tmp",
            root: None,
            captured: HashMap::new(),
            sources: HashMap::new(),
            devices: Vec::new(),
            seccomp,
            marks: Vec::with_capacity(16),
        }
    }

    fn root(&self, step: &'static str) -> Result<RawFd, StepError> {
        self.root.as_ref().map(|f| f.as_raw_fd()).ok_or(StepError {
            step,
            message: "the root is not mounted yet".into(),
        })
    }

    /// Opens (creating as directories what is missing) the directory `path` inside the root,
    /// resolving symlinks as the cell will see them.
    fn ensure_dir(&self, step: &'static str, path: &str) -> Result<OwnedFd, StepError> {
        let root = self.root(step)?;
        let flags = libc::O_PATH as u64 | libc::O_DIRECTORY as u64;
        // Most mount points share parents that exist already: one lookup.
        if let Ok(fd) = sys::openat2(root, path, flags, resolve::IN_ROOT) {
            return Ok(fd);
        }
        let mut prefix = String::new();
        let mut fd = sys::openat2(root, ".", libc::O_PATH as u64 | libc::O_DIRECTORY as u64, 0)
            .map_err(|e| StepError::io(step, "open the root", e))?;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            prefix.push('/');
            prefix.push_str(comp);
            match sys::openat2(root, &prefix, flags, resolve::IN_ROOT) {
                Ok(next) => fd = next,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // `fd` is the parent, opened with O_PATH: mkdirat works on it.
                    sys::mkdirat(fd.as_raw_fd(), comp, 0o755)
                        .or_else(|e| {
                            if e.raw_os_error() == Some(libc::EEXIST) {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })
                        .map_err(|e| StepError::io(step, format!("mkdir {prefix}"), e))?;
                    fd = sys::openat2(root, &prefix, flags, resolve::IN_ROOT)
                        .map_err(|e| StepError::io(step, format!("open {prefix}"), e))?;
                }
                Err(e) => return Err(StepError::io(step, format!("open {prefix}"), e)),
            }
        }
        Ok(fd)
    }

    /// Splits `/a/b/c` into (`/a/b`, `c`).
    fn split(step: &'static str, target: &str) -> Result<(String, String), StepError> {
        let t = target.trim_end_matches('/');
        match t.rsplit_once('/') {
            Some((parent, name)) if !name.is_empty() && name != "." && name != ".." => {
                Ok((parent.to_owned(), name.to_owned()))
            }
            _ => Err(StepError {
                step,
                message: format!("invalid mount target {target:?}"),
            }),
        }
    }

    /// Creates the mount point `target` (a directory or an empty file) and opens it `O_PATH`.
    fn mount_point(
        &self,
        step: &'static str,
        target: &str,
        is_dir: bool,
    ) -> Result<OwnedFd, StepError> {
        if is_dir {
            return self.ensure_dir(step, target);
        }
        let (parent, name) = Self::split(step, target)?;
        let dir = self.ensure_dir(step, &parent)?;
        match sys::create_file_at(dir.as_raw_fd(), &name, 0o444) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(StepError::io(step, format!("create {target}"), e)),
        }
        sys::openat2(
            self.root(step)?,
            target,
            libc::O_PATH as u64 | libc::O_NOFOLLOW as u64,
            resolve::IN_ROOT,
        )
        .map_err(|e| StepError::io(step, format!("open {target}"), e))
    }

    fn write_file(
        &self,
        step: &'static str,
        target: &str,
        contents: &str,
    ) -> Result<(), StepError> {
        let (parent, name) = Self::split(step, target)?;
        let dir = self.ensure_dir(step, &parent)?;
        // The O_PATH parent cannot be used for openat with O_CREAT; reopen it as a directory.
        let dir = sys::openat2(
            dir.as_raw_fd(),
            ".",
            libc::O_DIRECTORY as u64 | libc::O_RDONLY as u64,
            0,
        )
        .map_err(|e| StepError::io(step, format!("open {parent}"), e))?;
        let f = sys::create_file_at(dir.as_raw_fd(), &name, 0o444)
            .map_err(|e| StepError::io(step, format!("create {target}"), e))?;
        sys::write_all(f.as_raw_fd(), contents.as_bytes())
            .map_err(|e| StepError::io(step, format!("write {target}"), e))
    }

    /// mount(2) on an `O_PATH` descriptor through its /proc/self/fd magic link (the host's
    /// /proc is still mounted until the pivot).
    fn mount_on(
        step: &'static str,
        fstype: &str,
        target: &OwnedFd,
        flags: libc::c_ulong,
        data: &str,
    ) -> Result<(), StepError> {
        let path = format!("/proc/self/fd/{}", target.as_raw_fd());
        sys::mount(Some(fstype), &path, Some(fstype), flags, Some(data))
            .map_err(|e| StepError::io(step, format!("mount {fstype}"), e))
    }
}

const MS_SAFE: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;

/// Copies `f` from beneath `source` (no symlink followed, nothing outside it) into `dest`,
/// hashing it on the way: a file whose bytes are not the approved ones fails the launch.
fn copy_verified(source: &OwnedFd, dest: &OwnedFd, f: &VerifiedFile) -> Result<(), StepError> {
    const STEP: &str = "verify";
    let changed = |why: &str| StepError {
        step: STEP,
        message: format!(
            "the skill's file {} {why} since its version was approved: refusing to run it (skillcell verify quarantines a tampered version)",
            f.path
        ),
    };
    let parts: Vec<&str> = f.path.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(StepError {
            step: STEP,
            message: format!("invalid file path {:?}", f.path),
        });
    }
    let (dirs, name) = parts.split_at(parts.len() - 1);
    let dir_flags = libc::O_DIRECTORY as u64 | libc::O_RDONLY as u64;
    let mut dir = sys::openat2(dest.as_raw_fd(), ".", dir_flags, 0)
        .map_err(|e| StepError::io(STEP, "open the copy", e))?;
    for d in dirs {
        match sys::mkdirat(dir.as_raw_fd(), d, 0o755) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(StepError::io(STEP, format!("mkdir for {}", f.path), e)),
        }
        dir = sys::openat2(dir.as_raw_fd(), d, dir_flags, resolve::BENEATH_NO_LINKS)
            .map_err(|e| StepError::io(STEP, format!("open the directory of {}", f.path), e))?;
    }
    // O_NONBLOCK: a FIFO swapped into the store opens at once and reads as empty (a
    // mismatch) instead of holding the launch; regular files ignore the flag.
    let src = sys::openat2(
        source.as_raw_fd(),
        &f.path,
        libc::O_RDONLY as u64
            | libc::O_CLOEXEC as u64
            | libc::O_NOFOLLOW as u64
            | libc::O_NONBLOCK as u64,
        resolve::BENEATH_NO_LINKS,
    )
    .map_err(|_| changed("is gone or is no longer a plain file"))?;
    let mode = if f.executable { 0o555 } else { 0o444 };
    let dst = sys::create_file_at(dir.as_raw_fd(), name[0], mode)
        .map_err(|e| StepError::io(STEP, format!("create {}", f.path), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total: u64 = 0;
    loop {
        let n = sys::read(src.as_raw_fd(), &mut buf)
            .map_err(|e| StepError::io(STEP, format!("read {}", f.path), e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > f.size {
            return Err(changed("grew"));
        }
        hasher.update(&buf[..n]);
        sys::write_all(dst.as_raw_fd(), &buf[..n])
            .map_err(|e| StepError::io(STEP, format!("copy {}", f.path), e))?;
    }
    if total != f.size || hex::encode(hasher.finalize()) != f.sha256 {
        return Err(changed("changed"));
    }
    Ok(())
}

impl CellSys for LinuxCell {
    fn unshare_cgroup(&mut self) -> Result<(), StepError> {
        sys::unshare(libc::CLONE_NEWCGROUP)
            .map_err(|e| StepError::io("unshare", "cgroup namespace", e))
    }

    fn make_mounts_private(&mut self) -> Result<(), StepError> {
        sys::mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)
            .map_err(|e| StepError::io("mounts", "make / private", e))
    }

    fn capture(&mut self, index: usize, mount: &Mount) -> Result<(), StepError> {
        const STEP: &str = "capture";
        let (fd, attrs, what) = match &mount.kind {
            MountKind::System { host, exec } => {
                let host_s = host.to_str().ok_or(StepError {
                    step: STEP,
                    message: format!("{} is not UTF-8", host.display()),
                })?;
                let fd = sys::openat2(
                    libc::AT_FDCWD,
                    host_s,
                    libc::O_PATH as u64,
                    resolve::NO_LINKS,
                )
                .map_err(|e| {
                    StepError::io(
                        STEP,
                        format!("open {host_s} (it must exist and contain no symlink)"),
                        e,
                    )
                })?;
                let mut attrs =
                    sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
                if !exec {
                    attrs |= sys::MOUNT_ATTR_NOEXEC;
                }
                (fd, attrs, host_s.to_owned())
            }
            MountKind::Grant {
                base,
                rest,
                writable,
            } => {
                let grant =
                    GrantFd::open(base, rest).map_err(|e| StepError::io(STEP, e.what, e.source))?;
                let shown = grant.shown().display().to_string();
                let fd = grant.into_fd();
                let mut attrs =
                    sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;
                if !writable {
                    attrs |= sys::MOUNT_ATTR_RDONLY;
                }
                (fd, attrs, shown)
            }
            MountKind::VerifiedCopy { host, .. } => {
                let host_s = host.to_str().ok_or(StepError {
                    step: STEP,
                    message: format!("{} is not UTF-8", host.display()),
                })?;
                let fd = sys::openat2(
                    libc::AT_FDCWD,
                    host_s,
                    libc::O_PATH as u64 | libc::O_DIRECTORY as u64,
                    resolve::NO_LINKS,
                )
                .map_err(|e| {
                    StepError::io(
                        STEP,
                        format!("open {host_s} (it must be a directory and contain no symlink)"),
                        e,
                    )
                })?;
                self.sources.insert(index, fd);
                return Ok(());
            }
            MountKind::Tmpfs { .. }
            | MountKind::File { .. }
            | MountKind::Symlink { .. }
            | MountKind::Dir => {
                return Ok(());
            }
        };
        let is_dir = sys::is_dir(fd.as_raw_fd())
            .map_err(|e| StepError::io(STEP, format!("stat {what}"), e))?;
        let tree = sys::clone_tree(fd.as_raw_fd())
            .map_err(|e| StepError::io(STEP, format!("clone {what}"), e))?;
        sys::set_mount_attrs(tree.as_raw_fd(), attrs, 0)
            .map_err(|e| StepError::io(STEP, format!("set flags on {what}"), e))?;
        self.captured.insert(index, Captured { tree, is_dir });
        Ok(())
    }

    fn capture_devices(&mut self) -> Result<(), StepError> {
        for name in DEVICES {
            let path = format!("/dev/{name}");
            let fd = sys::openat2(
                libc::AT_FDCWD,
                &path,
                libc::O_PATH as u64,
                resolve::NO_LINKS,
            )
            .map_err(|e| StepError::io("devices", format!("open {path}"), e))?;
            let tree = sys::clone_tree(fd.as_raw_fd())
                .map_err(|e| StepError::io("devices", format!("clone {path}"), e))?;
            // Read-only: the device still reads and writes, but its inode (the host's own,
            // owned by the cell's uid outside when the caller is root) cannot be chmod'ed.
            sys::set_mount_attrs(
                tree.as_raw_fd(),
                sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
                0,
            )
            .map_err(|e| StepError::io("devices", format!("set flags on {path}"), e))?;
            self.devices.push((name, tree));
        }
        Ok(())
    }

    fn mount_root(&mut self) -> Result<(), StepError> {
        sys::mount(
            Some("tmpfs"),
            self.staging,
            Some("tmpfs"),
            MS_SAFE,
            Some("mode=0755,size=1m,nr_inodes=4096"),
        )
        .map_err(|e| StepError::io("root", "mount the root tmpfs", e))?;
        let fd = sys::openat2(
            libc::AT_FDCWD,
            self.staging,
            libc::O_PATH as u64 | libc::O_DIRECTORY as u64,
            resolve::NO_LINKS,
        )
        .map_err(|e| StepError::io("root", "open the root", e))?;
        self.root = Some(fd);
        Ok(())
    }

    fn place(&mut self, index: usize, mount: &Mount) -> Result<(), StepError> {
        const STEP: &str = "mounts";
        let target = mount.target.as_str();
        match &mount.kind {
            MountKind::System { .. } | MountKind::Grant { .. } => {
                let cap = self.captured.remove(&index).ok_or(StepError {
                    step: STEP,
                    message: format!("{target} was not captured"),
                })?;
                let point = self.mount_point(STEP, target, cap.is_dir)?;
                sys::attach_tree(cap.tree.as_raw_fd(), point.as_raw_fd())
                    .map_err(|e| StepError::io(STEP, format!("attach {target}"), e))
            }
            MountKind::VerifiedCopy { files, .. } => {
                let source = self.sources.remove(&index).ok_or(StepError {
                    step: STEP,
                    message: format!("{target} was not captured"),
                })?;
                let point = self.ensure_dir(STEP, target)?;
                // tmpfs counts whole pages per file, and an inode per file and directory.
                let pages: u64 = files.iter().map(|f| f.size.div_ceil(4096) + 1).sum();
                let size = (pages + 16) * 4096;
                let inodes = files.len() as u64 * 2 + 16;
                Self::mount_on(
                    STEP,
                    "tmpfs",
                    &point,
                    MS_SAFE | libc::MS_NOEXEC,
                    &format!("mode=0755,size={size},nr_inodes={inodes}"),
                )?;
                let dest = sys::openat2(
                    self.root(STEP)?,
                    target,
                    libc::O_DIRECTORY as u64 | libc::O_RDONLY as u64,
                    resolve::IN_ROOT,
                )
                .map_err(|e| StepError::io(STEP, format!("open {target}"), e))?;
                for f in files {
                    copy_verified(&source, &dest, f)?;
                }
                let path = format!("/proc/self/fd/{}", dest.as_raw_fd());
                sys::mount(
                    None,
                    &path,
                    None,
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | MS_SAFE | libc::MS_NOEXEC,
                    None,
                )
                .map_err(|e| StepError::io(STEP, format!("make {target} read-only"), e))
            }
            MountKind::Tmpfs { size_bytes } => {
                let point = self.ensure_dir(STEP, target)?;
                let inodes = (size_bytes / 4096).clamp(256, 1 << 20);
                Self::mount_on(
                    STEP,
                    "tmpfs",
                    &point,
                    MS_SAFE | libc::MS_NOEXEC,
                    &format!("mode=1777,size={size_bytes},nr_inodes={inodes}"),
                )
            }
            MountKind::File { contents } => self.write_file(STEP, target, contents),
            MountKind::Symlink { link_target } => {
                let (parent, name) = Self::split(STEP, target)?;
                let dir = self.ensure_dir(STEP, &parent)?;
                let dir = sys::openat2(
                    dir.as_raw_fd(),
                    ".",
                    libc::O_DIRECTORY as u64 | libc::O_RDONLY as u64,
                    0,
                )
                .map_err(|e| StepError::io(STEP, format!("open {parent}"), e))?;
                match sys::symlinkat(link_target, dir.as_raw_fd(), &name) {
                    Ok(()) => Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                    Err(e) => Err(StepError::io(STEP, format!("symlink {target}"), e)),
                }
            }
            MountKind::Dir => self.ensure_dir(STEP, target).map(drop),
        }
    }

    fn populate_dev(&mut self) -> Result<(), StepError> {
        for (name, tree) in std::mem::take(&mut self.devices) {
            let point = self.mount_point("devices", &format!("/dev/{name}"), false)?;
            sys::attach_tree(tree.as_raw_fd(), point.as_raw_fd())
                .map_err(|e| StepError::io("devices", format!("attach /dev/{name}"), e))?;
        }
        let dev = self.ensure_dir("devices", "/dev")?;
        let dev = sys::openat2(
            dev.as_raw_fd(),
            ".",
            libc::O_DIRECTORY as u64 | libc::O_RDONLY as u64,
            0,
        )
        .map_err(|e| StepError::io("devices", "open /dev", e))?;
        for (link, to) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            sys::symlinkat(to, dev.as_raw_fd(), link)
                .map_err(|e| StepError::io("devices", format!("symlink /dev/{link}"), e))?;
        }
        Ok(())
    }

    fn write_etc(&mut self, hostname: &str) -> Result<(), StepError> {
        let uid = skillcell_sandbox::CELL_UID;
        let gid = skillcell_sandbox::CELL_GID;
        let home = skillcell_sandbox::HOME_DIR;
        self.write_file(
            "etc",
            "/etc/passwd",
            &format!("skill:x:{uid}:{gid}:skill:{home}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        )?;
        self.write_file(
            "etc",
            "/etc/group",
            &format!("skill:x:{gid}:\nnogroup:x:65534:\n"),
        )?;
        self.write_file(
            "etc",
            "/etc/hosts",
            &format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost\n"),
        )
    }

    fn mount_proc(&mut self) -> Result<(), StepError> {
        let point = self.ensure_dir("proc", "/proc")?;
        // subset=pid: only process directories, no /proc/sys, kcore, kmsg or sysrq-trigger.
        Self::mount_on(
            "proc",
            "proc",
            &point,
            MS_SAFE | libc::MS_NOEXEC,
            "subset=pid",
        )
    }

    fn pivot_root(&mut self) -> Result<(), StepError> {
        let root = self.root("pivot_root")?;
        sys::fchdir(root).map_err(|e| StepError::io("pivot_root", "chdir to the new root", e))?;
        sys::pivot_to_cwd().map_err(|e| StepError::io("pivot_root", "pivot", e))?;
        self.root = None;
        Ok(())
    }

    fn seal_root(&mut self) -> Result<(), StepError> {
        sys::mount(
            None,
            "/",
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | MS_SAFE,
            None,
        )
        .map_err(|e| StepError::io("seal", "remount / read-only", e))
    }

    fn set_hostname(&mut self, name: &str) -> Result<(), StepError> {
        sys::set_hostname(name).map_err(|e| StepError::io("hostname", name, e))
    }

    fn loopback_up(&mut self) -> Result<(), StepError> {
        sys::loopback_up().map_err(|e| StepError::io("network", "bring lo up", e))
    }

    fn new_session(&mut self) -> Result<(), StepError> {
        sys::reset_signals().map_err(|e| StepError::io("session", "reset signals", e))?;
        sys::setsid().map_err(|e| StepError::io("session", "setsid", e))
    }

    fn wire_stdio(&mut self) -> Result<(), StepError> {
        for (from, to) in [(fds::STDIN, 0), (fds::STDOUT, 1), (fds::STDERR, 2)] {
            sys::dup2(from, to)
                .map_err(|e| StepError::io("stdio", format!("dup2 {from} to {to}"), e))?;
        }
        // Every descriptor but 0-2 and the report pipe goes; the report pipe closes at exec.
        sys::close_from(fds::REPORT + 1)
            .map_err(|e| StepError::io("stdio", "close descriptors", e))?;
        sys::cloexec_from(fds::REPORT).map_err(|e| StepError::io("stdio", "close-on-exec", e))
    }

    fn set_rlimits(&mut self, spec: &CellSpec) -> Result<(), StepError> {
        let l = &spec.limits;
        let cpu_s = l.cpu_ms.div_ceil(1000).max(1);
        let table: [(libc::__rlimit_resource_t, &str, u64, u64); 11] = [
            // Soft limit sends SIGXCPU; the hard limit one second later kills for sure.
            (libc::RLIMIT_CPU, "RLIMIT_CPU", cpu_s, cpu_s + 1),
            (
                libc::RLIMIT_DATA,
                "RLIMIT_DATA",
                l.memory_bytes,
                l.memory_bytes,
            ),
            (libc::RLIMIT_NPROC, "RLIMIT_NPROC", l.pids, l.pids),
            (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", l.nofile, l.nofile),
            (
                libc::RLIMIT_FSIZE,
                "RLIMIT_FSIZE",
                l.fsize_bytes,
                l.fsize_bytes,
            ),
            (libc::RLIMIT_CORE, "RLIMIT_CORE", 0, 0),
            // Nothing else is inherited from the caller: no real-time scheduling (cpu.max does
            // not throttle SCHED_FIFO), no raised priority, little locked memory and queues.
            (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO", 0, 0),
            (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME", 0, 0),
            (libc::RLIMIT_NICE, "RLIMIT_NICE", 0, 0),
            (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK", 64 << 10, 64 << 10),
            (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE", 0, 0),
        ];
        for (res, name, soft, hard) in table {
            sys::set_rlimit(res, soft, hard).map_err(|e| StepError::io("rlimits", name, e))?;
        }
        Ok(())
    }

    fn chdir(&mut self, cwd: &str) -> Result<(), StepError> {
        sys::chdir(cwd).map_err(|e| StepError::io("chdir", cwd, e))
    }

    fn no_new_privs(&mut self) -> Result<(), StepError> {
        sys::set_no_new_privs().map_err(|e| StepError::io("no_new_privs", "prctl", e))
    }

    fn landlock(&mut self, spec: &CellSpec) -> Result<(), StepError> {
        let status = crate::landlock_cell::restrict(spec).map_err(|message| StepError {
            step: "landlock",
            message,
        })?;
        // The supervisor learns whether the kernel enforced every right asked for.
        let _ = sys::write_all(fds::REPORT, format!("landlock\t{status}\n").as_bytes());
        Ok(())
    }

    fn drop_capabilities(&mut self) -> Result<(), StepError> {
        sys::drop_all_capabilities().map_err(|e| StepError::io("capabilities", "drop", e))
    }

    fn seccomp(&mut self) -> Result<(), StepError> {
        let programs = self.seccomp.as_ref().ok_or(StepError {
            step: "seccomp",
            message: "no filter was built".into(),
        })?;
        crate::seccomp::install(programs).map_err(|e| StepError {
            step: "seccomp",
            message: e.to_string(),
        })
    }

    fn mark(&mut self, step: &'static str) {
        self.marks.push((step, sys::monotonic_us()));
    }

    fn exec(&mut self, spec: &CellSpec) -> StepError {
        self.mark("exec");
        self.send_marks();
        let to_c = |s: &str| {
            CString::new(s).map_err(|_| StepError {
                step: "exec",
                message: format!("{s:?} contains NUL"),
            })
        };
        let prepared = (|| -> Result<(CString, Vec<CString>, Vec<CString>), StepError> {
            let program = spec.argv.first().ok_or(StepError {
                step: "exec",
                message: "empty argv".into(),
            })?;
            let argv = spec
                .argv
                .iter()
                .map(|a| to_c(a))
                .collect::<Result<Vec<_>, _>>()?;
            let env = spec
                .env
                .iter()
                .map(|(k, v)| to_c(&format!("{k}={v}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((to_c(program)?, argv, env))
        })();
        match prepared {
            Ok((program, argv, env)) => {
                let e = sys::execve(&program, &argv, &env);
                StepError::io("exec", &spec.argv[0], e)
            }
            Err(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skillcell_sandbox::CellLimits;

    /// Records the steps instead of calling the kernel; can be told to fail one step.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail_at: Option<&'static str>,
    }

    impl Recorder {
        fn step(&mut self, name: &'static str, detail: String) -> Result<(), StepError> {
            self.calls.push(if detail.is_empty() {
                name.to_owned()
            } else {
                format!("{name} {detail}")
            });
            if self.fail_at == Some(name) {
                return Err(StepError {
                    step: name,
                    message: "injected".into(),
                });
            }
            Ok(())
        }
    }

    impl CellSys for Recorder {
        fn unshare_cgroup(&mut self) -> Result<(), StepError> {
            self.step("unshare_cgroup", String::new())
        }
        fn make_mounts_private(&mut self) -> Result<(), StepError> {
            self.step("private", String::new())
        }
        fn capture(&mut self, _: usize, m: &Mount) -> Result<(), StepError> {
            self.step("capture", m.target.clone())
        }
        fn capture_devices(&mut self) -> Result<(), StepError> {
            self.step("capture_devices", String::new())
        }
        fn mount_root(&mut self) -> Result<(), StepError> {
            self.step("mount_root", String::new())
        }
        fn place(&mut self, _: usize, m: &Mount) -> Result<(), StepError> {
            self.step("place", m.target.clone())
        }
        fn populate_dev(&mut self) -> Result<(), StepError> {
            self.step("dev", String::new())
        }
        fn write_etc(&mut self, _: &str) -> Result<(), StepError> {
            self.step("etc", String::new())
        }
        fn mount_proc(&mut self) -> Result<(), StepError> {
            self.step("proc", String::new())
        }
        fn pivot_root(&mut self) -> Result<(), StepError> {
            self.step("pivot_root", String::new())
        }
        fn seal_root(&mut self) -> Result<(), StepError> {
            self.step("seal", String::new())
        }
        fn set_hostname(&mut self, n: &str) -> Result<(), StepError> {
            self.step("hostname", n.to_owned())
        }
        fn loopback_up(&mut self) -> Result<(), StepError> {
            self.step("lo", String::new())
        }
        fn new_session(&mut self) -> Result<(), StepError> {
            self.step("setsid", String::new())
        }
        fn wire_stdio(&mut self) -> Result<(), StepError> {
            self.step("stdio", String::new())
        }
        fn set_rlimits(&mut self, _: &CellSpec) -> Result<(), StepError> {
            self.step("rlimits", String::new())
        }
        fn chdir(&mut self, cwd: &str) -> Result<(), StepError> {
            self.step("chdir", cwd.to_owned())
        }
        fn no_new_privs(&mut self) -> Result<(), StepError> {
            self.step("no_new_privs", String::new())
        }
        fn landlock(&mut self, _: &CellSpec) -> Result<(), StepError> {
            self.step("landlock", String::new())
        }
        fn drop_capabilities(&mut self) -> Result<(), StepError> {
            self.step("drop_caps", String::new())
        }
        fn seccomp(&mut self) -> Result<(), StepError> {
            self.step("seccomp", String::new())
        }
        fn exec(&mut self, spec: &CellSpec) -> StepError {
            let _ = self.step("exec", spec.argv.join(" "));
            StepError {
                step: "exec",
                message: "recorded".into(),
            }
        }
    }

    fn spec() -> CellSpec {
        CellSpec {
            argv: vec!["/usr/bin/python3".into(), "-I".into()],
            env: vec![],
            cwd: "/skill".into(),
            hostname: "cell-1".into(),
            mounts: vec![
                Mount {
                    target: "/usr/bin/python3".into(),
                    kind: MountKind::System {
                        host: "/usr/bin/python3".into(),
                        exec: true,
                    },
                },
                Mount {
                    target: "/tmp".into(),
                    kind: MountKind::Tmpfs {
                        size_bytes: 1 << 20,
                    },
                },
            ],
            exec: vec!["/usr/bin/python3".into()],
            limits: CellLimits {
                memory_bytes: 1 << 26,
                cpu_ms: 1000,
                wall_ms: 1000,
                pids: 8,
                fsize_bytes: 1 << 20,
                nofile: 64,
                output_bytes: 1 << 20,
                tmp_bytes: 1 << 20,
            },
            proxy_port: None,
        }
    }

    #[test]
    fn init_steps_run_in_order() {
        let mut r = Recorder::default();
        build_cell(&mut r, &spec()).expect("build");
        assert_eq!(
            r.calls,
            [
                "unshare_cgroup",
                "private",
                "capture /usr/bin/python3",
                "capture /tmp",
                "capture_devices",
                "mount_root",
                "place /usr/bin/python3",
                "place /tmp",
                "dev",
                "etc",
                "proc",
                "pivot_root",
                "seal",
                "hostname cell-1",
                "lo",
            ]
        );
    }

    #[test]
    fn skill_steps_drop_everything_before_exec() {
        let mut r = Recorder::default();
        let e = enter_and_exec(&mut r, &spec());
        assert_eq!(e.message, "recorded");
        assert_eq!(
            r.calls,
            [
                "setsid",
                "stdio",
                "rlimits",
                "chdir /skill",
                "no_new_privs",
                "landlock",
                "drop_caps",
                "seccomp",
                "exec /usr/bin/python3 -I",
            ]
        );
    }

    #[test]
    fn a_failed_layer_stops_the_launch_before_exec() {
        for layer in [
            "landlock",
            "seccomp",
            "drop_caps",
            "no_new_privs",
            "rlimits",
        ] {
            let mut r = Recorder {
                fail_at: Some(layer),
                ..Recorder::default()
            };
            let e = enter_and_exec(&mut r, &spec());
            assert_eq!(e.step, layer);
            assert!(
                !r.calls.iter().any(|c| c.starts_with("exec")),
                "{layer} failed but exec ran: {:?}",
                r.calls
            );
        }
        let mut r = Recorder {
            fail_at: Some("pivot_root"),
            ..Recorder::default()
        };
        assert_eq!(
            build_cell(&mut r, &spec()).expect_err("fails").step,
            "pivot_root"
        );
        assert_eq!(r.calls.last().map(String::as_str), Some("pivot_root"));
    }
}
