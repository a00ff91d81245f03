//! Raw syscalls of the cell launch: clone, mounts, pivot_root, capabilities, rlimits, the
//! supervisor's pipes and waits.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Kernel constants that not every libc release exports.
mod k {
    pub const OPEN_TREE_CLONE: libc::c_uint = 1;
    pub const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
    pub const AT_RECURSIVE: libc::c_uint = 0x8000;
    pub const AT_EMPTY_PATH: libc::c_uint = 0x1000;
    pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    pub const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
    pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
    pub const MOUNT_ATTR_NODEV: u64 = 0x4;
    pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
    pub const RESOLVE_NO_XDEV: u64 = 0x1;
    pub const RESOLVE_NO_MAGICLINKS: u64 = 0x2;
    pub const RESOLVE_NO_SYMLINKS: u64 = 0x4;
    pub const RESOLVE_BENEATH: u64 = 0x8;
    pub const RESOLVE_IN_ROOT: u64 = 0x10;
    pub const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
}

pub use k::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_i(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// The number of threads of this process, from /proc/self/status.
pub fn thread_count() -> io::Result<usize> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads line in /proc/self/status"))
}

/// Result of [`clone_into_namespaces`].
#[derive(Debug)]
pub enum Forked {
    /// In the parent: the child's pid (in the parent's pid namespace).
    Parent(i32),
    /// In the child.
    Child,
}

/// Forks a child into new namespaces (`flags` are `CLONE_NEW*`), like fork(2): the child
/// continues from here on a copy of this process. Refuses unless the process is
/// single-threaded, because a copy of a multi-threaded process may hold locks (the allocator's)
/// that no thread will ever release.
pub fn clone_into_namespaces(flags: libc::c_int) -> io::Result<Forked> {
    if thread_count()? != 1 {
        return Err(io::Error::other(
            "the cell must be started from a single-threaded process",
        ));
    }
    // SAFETY: raw clone(2) with a null stack behaves like fork(2): the child gets a private copy
    // of the address space and continues on its own copy of the stack. We checked above that
    // this process has one thread, so no lock in the copy can be held by a thread that does not
    // exist in the child. No parent/child tid or TLS arguments are passed (flags contain none of
    // CLONE_SETTLS, CLONE_*TID, CLONE_VM).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match cvt(r)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// As [`clone_into_namespaces`], with clone3(2): the child is born in the cgroup `cgroup` (an
/// open cgroup v2 directory), and its pidfd is returned. `Err(ENOSYS)` on kernels before 5.7.
pub fn clone3_into_cgroup(
    flags: libc::c_int,
    cgroup: RawFd,
) -> io::Result<(Forked, Option<OwnedFd>)> {
    if thread_count()? != 1 {
        return Err(io::Error::other(
            "the cell must be started from a single-threaded process",
        ));
    }
    const CLONE_PIDFD: u64 = 0x1000;
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: flags as u64 | CLONE_PIDFD | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup as u64,
    };
    // SAFETY: as for clone_into_namespaces: no stack (the child continues on a copy of ours,
    // like fork), no CLONE_VM/SETTLS/*TID, and this process is single-threaded. The kernel
    // reads `args` (a live struct clone_args, size passed) and writes the pidfd into `pidfd`,
    // a live local, in the parent only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match cvt(r)? {
        0 => Ok((Forked::Child, None)),
        // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor owned by nobody else.
        pid => Ok((
            Forked::Parent(pid as i32),
            Some(unsafe { OwnedFd::from_raw_fd(pidfd) }),
        )),
    }
}

/// Plain fork(2), in a process known to be single-threaded (the cell's init).
pub fn fork_single_threaded() -> io::Result<Forked> {
    clone_into_namespaces(0)
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes exactly two ints into the array we pass, which has room for two.
    cvt_i(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: on success both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets O_NONBLOCK on a descriptor.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_GETFL/F_SETFL only reads and sets the file status flags of `fd`.
    unsafe {
        let flags = cvt_i(libc::fcntl(fd, libc::F_GETFL))?;
        cvt_i(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: the kernel sends `sig` when the parent thread dies.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value and touches no memory.
    cvt_i(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// `prctl(PR_SET_DUMPABLE, 0)`: no core dumps, and same-uid processes cannot ptrace us or read
/// our /proc files.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes an integer by value and touches no memory.
    cvt_i(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

pub use super::set_no_new_privs;

/// Empties the bounding and ambient capability sets, then the effective, permitted and
/// inheritable sets.
pub fn drop_all_capabilities() -> io::Result<()> {
    let last = last_cap();
    for cap in 0..=last {
        // SAFETY: PR_CAPBSET_DROP takes a capability number by value; EINVAL for numbers the
        // kernel does not know is ignored below.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integers by value and touches no memory.
    cvt_i(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads one header and, for version 3, two data structs; both are live,
    // correctly laid out (#[repr(C)], matching linux/capability.h) and outlive the call.
    cvt(unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) })?;
    Ok(())
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// unshare(2).
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes flags by value and touches no memory of this process.
    cvt_i(unsafe { libc::unshare(flags) })?;
    Ok(())
}

/// mount(2) with optional source, fstype and data.
pub fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.map(cstr).transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null (allowed by mount(2) for source, fstype and data) or
    // points at a NUL-terminated CString that lives until the end of this function.
    cvt_i(unsafe {
        libc::mount(
            p(&source),
            target.as_ptr(),
            p(&fstype),
            flags,
            p(&data).cast(),
        )
    })?;
    Ok(())
}

/// openat2(2): opens `path` relative to `dirfd` with the given open flags and `RESOLVE_*`
/// flags. The result is close-on-exec.
pub fn openat2(dirfd: RawFd, path: &str, flags: u64, resolve: u64) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: flags | libc::O_CLOEXEC as u64,
        mode: 0,
        resolve,
    };
    let path = cstr(path)?;
    // SAFETY: `path` is NUL-terminated and `how` is a live struct open_how (three u64, as in
    // linux/openat2.h) whose size we pass; the kernel only reads both.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })?;
    // SAFETY: the descriptor is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `RESOLVE_*` sets used by the cell.
pub mod resolve {
    use super::k;
    /// A path that must contain no symbolic link at all (trusted host paths, grant bases).
    pub const NO_LINKS: u64 = k::RESOLVE_NO_SYMLINKS | k::RESOLVE_NO_MAGICLINKS;
    /// Beneath a directory, no symbolic link at all (grant remainders).
    pub const BENEATH_NO_LINKS: u64 =
        k::RESOLVE_BENEATH | k::RESOLVE_NO_SYMLINKS | k::RESOLVE_NO_MAGICLINKS;
    /// Inside the new root, as if it were `/`, following no symlink at all: a mount point is
    /// never reached through a link, not even one a concurrent cell planted in a shared write
    /// grant between capture and placement (the spec's own symlinks are only leaves).
    pub const IN_ROOT: u64 = k::RESOLVE_IN_ROOT | k::RESOLVE_NO_SYMLINKS | k::RESOLVE_NO_MAGICLINKS;
    #[allow(dead_code, reason = "documented for completeness of the resolve set")]
    pub const NO_XDEV: u64 = k::RESOLVE_NO_XDEV;
}

/// open_tree(2) with `OPEN_TREE_CLONE | AT_RECURSIVE`: a detached copy of the mount tree at
/// `fd` (which was opened with `O_PATH`).
pub fn clone_tree(fd: RawFd) -> io::Result<OwnedFd> {
    let empty = c"";
    // SAFETY: `empty` is a NUL-terminated static string; with AT_EMPTY_PATH the kernel uses `fd`
    // itself. The returned descriptor is new.
    let r = cvt(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd,
            empty.as_ptr(),
            k::OPEN_TREE_CLONE | k::OPEN_TREE_CLOEXEC | k::AT_RECURSIVE | k::AT_EMPTY_PATH,
        )
    })?;
    // SAFETY: the descriptor is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// mount_setattr(2) on a detached tree, recursively: sets `set` and clears `clear`.
pub fn set_mount_attrs(tree: RawFd, set: u64, clear: u64) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: `attr` is a live struct mount_attr (four u64, linux/mount.h) whose size we pass;
    // `empty` is NUL-terminated and AT_EMPTY_PATH makes the kernel act on `tree` itself.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree,
            empty.as_ptr(),
            k::AT_EMPTY_PATH | k::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// move_mount(2): attaches the detached tree `tree` on the mount point `target` (an `O_PATH`
/// descriptor of an existing file or directory).
pub fn attach_tree(tree: RawFd, target: RawFd) -> io::Result<()> {
    let empty = c"";
    // SAFETY: both paths are the NUL-terminated empty string and the EMPTY_PATH flags make the
    // kernel use the two descriptors themselves; nothing else is read or written.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            empty.as_ptr(),
            target,
            empty.as_ptr(),
            k::MOVE_MOUNT_F_EMPTY_PATH | k::MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// Whether `fd` (possibly `O_PATH`) is a directory, by fstat(2).
pub fn is_dir(fd: RawFd) -> io::Result<bool> {
    // SAFETY: stat is plain data; fstat fills the live struct we pass.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is live and writable; fstat accepts O_PATH descriptors since Linux 3.6.
    cvt_i(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// mkdirat(2).
pub fn mkdirat(dirfd: RawFd, path: &str, mode: u32) -> io::Result<()> {
    let path = cstr(path)?;
    // SAFETY: `path` is NUL-terminated and lives through the call.
    cvt_i(unsafe { libc::mkdirat(dirfd, path.as_ptr(), mode) })?;
    Ok(())
}

/// symlinkat(2).
pub fn symlinkat(target: &str, dirfd: RawFd, path: &str) -> io::Result<()> {
    let target = cstr(target)?;
    let path = cstr(path)?;
    // SAFETY: both strings are NUL-terminated and live through the call.
    cvt_i(unsafe { libc::symlinkat(target.as_ptr(), dirfd, path.as_ptr()) })?;
    Ok(())
}

/// Creates (exclusively) a regular file relative to `dirfd` and returns it open for writing.
pub fn create_file_at(dirfd: RawFd, path: &str, mode: u32) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    // SAFETY: `path` is NUL-terminated; the mode argument is passed as the variadic int openat
    // expects with O_CREAT.
    let fd = cvt_i(unsafe {
        libc::openat(
            dirfd,
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: the descriptor is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// fchdir(2).
pub fn fchdir(fd: RawFd) -> io::Result<()> {
    // SAFETY: fchdir takes a descriptor by value.
    cvt_i(unsafe { libc::fchdir(fd) })?;
    Ok(())
}

/// chdir(2).
pub fn chdir(path: &str) -> io::Result<()> {
    let path = cstr(path)?;
    // SAFETY: `path` is NUL-terminated and lives through the call.
    cvt_i(unsafe { libc::chdir(path.as_ptr()) })?;
    Ok(())
}

/// pivot_root(".", "."), then detaches the old root stacked underneath: the calling process
/// must have its working directory at the new root.
pub fn pivot_to_cwd() -> io::Result<()> {
    let dot = c".";
    // SAFETY: both arguments are the NUL-terminated static string ".".
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) })?;
    // SAFETY: `dot` is NUL-terminated; MNT_DETACH lazily unmounts the old root, which after
    // pivot_root(".", ".") is mounted on top of the new one at ".".
    cvt_i(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })?;
    chdir("/")
}

/// sethostname(2).
pub fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe the bytes of `name`, which live through the call.
    cvt_i(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })?;
    Ok(())
}

/// Brings the loopback interface of the current network namespace up.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket takes integers by value; the descriptor is wrapped right away.
    let sock =
        cvt_i(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: the descriptor is new and owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the interface name from `req` and writes its flags into the
    // union; `req` is live and writable.
    cvt_i(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: ifru_flags is the union member SIOCGIFFLAGS just filled.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the name and flags from the live `req`.
    cvt_i(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// setsid(2).
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    cvt_i(unsafe { libc::setsid() })?;
    Ok(())
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit.
pub fn raise_nofile_soft_limit() -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct into the live local.
    cvt_i(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the live local.
        cvt_i(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(())
}

/// setrlimit(2) with soft and hard values.
pub fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one live rlimit struct.
    cvt_i(unsafe { libc::setrlimit(resource, &lim) })?;
    Ok(())
}

/// dup2(2).
pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes two descriptors by value; if `to` was open it is closed atomically.
    cvt_i(unsafe { libc::dup2(from, to) })?;
    Ok(())
}

/// Duplicates `fd` to the lowest number ≥ `min`, close-on-exec.
pub fn dup_above(fd: RawFd, min: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes descriptors by value and returns a new one.
    cvt_i(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// Closes every descriptor from `first` up.
pub fn close_from(first: RawFd) -> io::Result<()> {
    // SAFETY: close_range takes integers by value. Descriptors owned by Rust objects in this
    // (forked) process are not used again afterwards: the caller only calls this right before
    // exec or when it owns every live descriptor it still needs below `first`.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        )
    })?;
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec.
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets descriptor flags.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            k::CLOSE_RANGE_CLOEXEC,
        )
    })?;
    Ok(())
}

/// Blocks every signal in this thread; returns nothing on success.
pub fn block_all_signals() -> io::Result<()> {
    // SAFETY: sigset_t is plain data; sigfillset initializes it; sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        cvt_i(libc::sigprocmask(
            libc::SIG_SETMASK,
            &set,
            std::ptr::null_mut(),
        ))?;
    }
    Ok(())
}

/// Unblocks every signal and resets every disposition to the default (ignored signals stay
/// ignored across execve otherwise: Rust ignores SIGPIPE).
pub fn reset_signals() -> io::Result<()> {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is a valid disposition for every catchable signal; errors (signals
        // the kernel reserves) are ignored.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // SAFETY: sigemptyset initializes the set; sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        cvt_i(libc::sigprocmask(
            libc::SIG_SETMASK,
            &set,
            std::ptr::null_mut(),
        ))?;
    }
    Ok(())
}

/// Waits for any signal (all must be blocked) for at most `ms` milliseconds; `Ok(None)` when
/// the time ran out.
pub fn wait_signal_timeout(ms: u64) -> io::Result<Option<libc::c_int>> {
    let ts = libc::timespec {
        tv_sec: (ms / 1_000) as libc::time_t,
        tv_nsec: ((ms % 1_000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: sigfillset initializes `set`; sigtimedwait reads `set` and `ts` and fills `info`,
    // all live locals.
    let r = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::sigtimedwait(&set, &mut info, &ts)
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            Some(libc::EINTR) => Ok(Some(0)),
            _ => Err(e),
        };
    }
    Ok(Some(r))
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStatus {
    Exited(i32),
    Signaled(i32),
}

/// waitpid(2). `Ok(None)` with `WNOHANG` when nothing changed, `Err` with ECHILD when there is
/// no child left.
pub fn wait(pid: i32, nohang: bool) -> io::Result<Option<(i32, ChildStatus)>> {
    let mut status: libc::c_int = 0;
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: waitpid writes one int into `status`, which is live.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Ok(None);
        }
        let st = if libc::WIFEXITED(status) {
            ChildStatus::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            ChildStatus::Signaled(libc::WTERMSIG(status))
        } else {
            continue;
        };
        return Ok(Some((r, st)));
    }
}

/// kill(2); errors are ignored (the process may be gone).
pub fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill takes integers by value.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// pidfd_open(2): a descriptor that becomes readable when `pid` exits.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes integers by value and returns a new descriptor.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the descriptor is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// poll(2) over `fds`; returns the number ready (0 on time-out). EINTR counts as 0.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live, writable slice.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(r as usize)
}

/// read(2) into `buf`; `Ok(0)` at end of file.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live, writable buffer.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// write(2) from `buf`.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live buffer.
    let r = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// Writes all of `buf`, retrying on EINTR.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// execve(2). Returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: `path` and every string are NUL-terminated and live; both arrays are
    // null-terminated and live through the call, as execve requires.
    unsafe {
        libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr());
    }
    io::Error::last_os_error()
}

/// _exit(2): ends the process without running destructors or atexit handlers (a forked copy
/// must not flush buffers it shares with its parent).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of this process.
    unsafe { libc::_exit(code) }
}

/// The signal's name, for reports.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {sig}"),
    };
    name.to_owned()
}

/// Random bytes from the kernel (getrandom(2)).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe the live, writable remainder of `buf`.
        let r = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        filled += r as usize;
    }
    Ok(())
}

/// The real uid and gid of this process.
pub fn ids() -> (u32, u32) {
    // SAFETY: getuid and getgid take no arguments and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Closes descriptors 0, 1 and 2.
pub fn close_stdio() {
    for fd in 0..3 {
        // SAFETY: close takes a descriptor by value; no Rust object owns 0-2 in the init.
        unsafe {
            libc::close(fd);
        }
    }
}

/// Zeroes this process's argument and environment strings (the areas /proc/PID/cmdline and
/// /proc/PID/environ show). The cell's init is a fork of the supervisor: without this, a skill
/// could read the caller's command line (host paths, `--input`) from /proc/1/cmdline.
pub fn scrub_args_and_env() -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("unexpected /proc/self/stat"))?;
    // `rest` starts at field 3 (state); arg_start is field 48.
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    for (start, end) in [(field(48), field(49)), (field(50), field(51))] {
        if start == 0 || end <= start || end - start > (1 << 24) {
            return Err(io::Error::other("no argument or environment area"));
        }
        // SAFETY: [start, end) is the argument (or environment) area the kernel set up for
        // this process at exec and reports in /proc/self/stat; it is mapped and writable (it
        // is on the initial stack). Nothing in the init reads it afterwards: Rust keeps
        // pointers into it only for std::env::args/vars, which the init no longer calls, and
        // they would then see empty strings, not invalid memory.
        unsafe {
            std::ptr::write_bytes(start as usize as *mut u8, 0, (end - start) as usize);
        }
    }
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds: the same clock in every process of a run.
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the live local `ts`.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// The set of `signals`.
fn sigset_of(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialize and fill the local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `signals` in the calling thread (threads it starts later inherit the mask).
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<()> {
    let set = sigset_of(signals);
    // SAFETY: pthread_sigmask reads the live local set.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Unblocks `signals` in the calling thread: one pending now is delivered.
pub fn unblock_signals(signals: &[libc::c_int]) -> io::Result<()> {
    let set = sigset_of(signals);
    // SAFETY: pthread_sigmask reads the live local set.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Blocks `signals` in the calling thread (threads it starts inherit the mask) and returns a
/// signalfd that becomes readable when one arrives.
pub fn signalfd_for(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    block_signals(signals)?;
    let set = sigset_of(signals);
    // SAFETY: signalfd reads the live local set and returns a new descriptor, wrapped right
    // away.
    unsafe {
        let fd = cvt_i(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The signal number of the next pending event on a signalfd, if any.
pub fn read_signalfd(fd: RawFd) -> Option<libc::c_int> {
    // SAFETY: signalfd_siginfo is plain data; read fills at most its size into the live local.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let n = read(fd, {
        // SAFETY: viewing the live local as bytes of exactly its size for read(2) to fill.
        unsafe {
            std::slice::from_raw_parts_mut(
                (&mut info as *mut libc::signalfd_siginfo).cast::<u8>(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            )
        }
    })
    .ok()?;
    (n == std::mem::size_of::<libc::signalfd_siginfo>()).then_some(info.ssi_signo as libc::c_int)
}

/// Sends `fd` over the init's fixed control socket `sock` (SCM_RIGHTS), with a one-byte
/// message, then closes `sock`.
pub fn send_fd_and_close(sock: RawFd, fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `sock` is one of the init's fixed descriptors, open until the close below, and
    // no Rust object owns it; the borrow ends before that close.
    let result = send_fd(unsafe { BorrowedFd::borrow_raw(sock) }, fd);
    close_raw(sock);
    result
}

/// close(2) of a descriptor no Rust object owns (the init's fixed numbers).
pub fn close_raw(fd: RawFd) {
    // SAFETY: close takes a descriptor by value; the caller guarantees nothing owns it.
    unsafe {
        libc::close(fd);
    }
}

/// Sends one descriptor over a Unix socket (SCM_RIGHTS), with a one-byte message.
fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for the descriptor"));
    }
    sendmsg(
        sock,
        &[io::IoSlice::new(b"L")],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// Receives one descriptor sent by [`send_fd`] (close-on-exec). `Ok(None)`: the peer closed
/// the socket without sending one.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = recvmsg(
        sock,
        &mut [io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    )?;
    let mut received = None;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            for fd in fds {
                // The first one is ours; any other is dropped (closed) here.
                if received.is_none() {
                    received = Some(fd);
                }
            }
        }
    }
    if got.bytes == 0 && received.is_none() {
        return Ok(None);
    }
    received
        .map(Some)
        .ok_or_else(|| io::Error::other("a message without a descriptor"))
}
