//! Raw syscalls. The only module of skillcell with `unsafe` code.
#![allow(
    unsafe_code,
    reason = "the one place where skillcell calls the kernel directly"
)]

pub mod cell;

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The Landlock ABI version the running kernel reports, or the error (`ENOSYS`: not built in;
/// `EOPNOTSUPP`: built in but disabled at boot).
pub fn landlock_abi() -> io::Result<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: landlock_create_ruleset with a null attribute pointer, size 0 and the VERSION flag
    // only returns the ABI version (or -1 with errno); it reads no memory and creates no fd.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        return Err(io::Error::last_os_error());
    }
    i32::try_from(v).map_err(|_| io::Error::other("ABI version out of range"))
}

/// Starts `/bin/true` in new user, mount, pid, net, ipc and uts namespaces; `Ok` if the kernel
/// allowed it. The unshare happens in the forked child, never in this process.
pub fn probe_namespaces() -> io::Result<()> {
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    let mut cmd = Command::new("/bin/true");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed; unshare(2) is a plain syscall that allocates nothing in this process
    // and touches no lock. last_os_error only reads errno.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(flags) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "probe child exited with {status}"
        )))
    }
}

// Children, probes and prctl bits for the seccomp filter and its tests. Everything below is
// re-exported to tests through `seccomp::testing`.

/// How a child started by [`run_in_child`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with this code (only the low 8 bits survive `_exit`).
    Exited(i32),
    /// This signal killed it.
    Signaled(i32),
}

/// The exit code of a child whose closure panicked.
pub const CHILD_PANICKED: i32 = 101;

/// How long [`run_in_child`] waits before it kills the child and reports a time-out.
const CHILD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Forks, runs `f` in the child and `_exit`s with its return value ([`CHILD_PANICKED`] if it
/// panics); the parent waits and reports how the child ended. A child still running after 20
/// seconds is killed and reported as an error.
///
/// The child is a copy of this process with only the calling thread. A lock that another
/// thread held at the fork stays held forever in the child, so in a multi-threaded process `f`
/// should not allocate, print or take locks: plain syscalls only. Breaking that rule can
/// deadlock the child (then the time-out kills it); it cannot reach the parent's memory.
pub fn run_in_child(f: impl FnOnce() -> i32) -> io::Result<ChildExit> {
    // SAFETY: fork(2) copies the address space, so nothing the child does reaches this
    // process's memory. The child never returns into the caller's frames: it runs `f`, a panic
    // is caught before it could unwind into them, and it leaves through `_exit`. So destructors
    // of values the parent owns (buffers, fds, the test harness) never run twice. The copy has
    // only this thread; the contract above tells callers what that means for locks.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(CHILD_PANICKED);
        // SAFETY: _exit(2) ends the child at once: no atexit handlers, no flushing of stdio
        // buffers copied from the parent (their contents would be written twice), no return
        // into frames that belong to the parent.
        unsafe { libc::_exit(code) }
    }
    wait_child(pid)
}

/// Waits for our child `pid`, killing it after [`CHILD_TIMEOUT`].
fn wait_child(pid: libc::pid_t) -> io::Result<ChildExit> {
    let deadline = std::time::Instant::now() + CHILD_TIMEOUT;
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes only into `status`, a live local; `pid` is our own unreaped
        // child, so no other process can be reaped by mistake; WNOHANG returns at once.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: `pid` is our child and not reaped yet (waitpid just returned 0), so the
            // number cannot have been reused: the signal reaches that child and nothing else.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above: a blocking wait for our own child, writing only into `status`.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("child {pid} still ran after {CHILD_TIMEOUT:?} and was killed"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if libc::WIFEXITED(status) {
        Ok(ChildExit::Exited(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Ok(ChildExit::Signaled(libc::WTERMSIG(status)))
    } else {
        Err(io::Error::other(format!(
            "child {pid} reported wait status {status:#x}, neither an exit nor a signal"
        )))
    }
}

/// Sets no_new_privs on the calling thread (inherited by its children and kept across
/// execve): from now on execve cannot grant privileges (setuid bits, file capabilities).
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) only sets a flag on the calling thread;
    // it takes no pointers.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether no_new_privs is set on the calling thread.
pub fn no_new_privs() -> io::Result<bool> {
    // SAFETY: prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) only returns the flag; no pointers.
    let r = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r == 1)
}

/// The seccomp mode of the calling thread: 0 none, 2 filter (mode 1, strict, would have
/// killed the caller of prctl).
pub fn seccomp_mode() -> io::Result<i32> {
    // SAFETY: prctl(PR_GET_SECCOMP, 0, 0, 0, 0) only returns the mode; no pointers.
    let r = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// A syscall the seccomp tests make. Every pointer argument is either null or points into
/// this function's own locals, so none of them can read or write memory the caller owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `clone3(NULL, 0)`. Without a filter the kernel refuses the size with `EINVAL` before it
    /// reads anything, so no process is created either way.
    Clone3,
    /// `unshare(flags)`: changes only the calling process.
    Unshare(libc::c_int),
    /// `mount(NULL, NULL, NULL, 0, NULL)`. Without a filter: `EFAULT` (no target), so nothing
    /// is mounted even if the filter failed.
    Mount,
    /// `socket(family, kind, protocol)`; a socket it gets is closed at once.
    Socket {
        family: libc::c_int,
        kind: libc::c_int,
        protocol: libc::c_int,
    },
    /// `socketpair(family, SOCK_STREAM, 0, fds)`; sockets it gets are closed at once.
    Socketpair { family: libc::c_int },
    /// `ioctl(fd, request, NULL)`, with all 64 bits of `request` in the register.
    Ioctl { fd: libc::c_int, request: u64 },
    /// getpid through the x32 ABI: the x86_64 `syscall` instruction with number
    /// `39 | 0x40000000`.
    #[cfg(target_arch = "x86_64")]
    X32Getpid,
    /// getpid through the 32-bit ABI: `int 0x80` with eax = 20 (the i386 number).
    #[cfg(target_arch = "x86_64")]
    Int80Getpid,
    /// fork(3) (glibc: `clone` with SIGCHLD and the child-tid flags); the child exits 0.
    Fork,
}

/// Makes the syscall of `p`: `Ok(return value)` or `Err(errno)`.
pub fn probe(p: Probe) -> Result<i64, i32> {
    let null = std::ptr::null::<libc::c_void>();
    let ret: libc::c_long = match p {
        // SAFETY: clone3 with a null pointer and size 0: the kernel checks the size before it
        // reads the argument struct and fails with EINVAL; no memory is read or written.
        Probe::Clone3 => unsafe { libc::syscall(libc::SYS_clone3, null, 0 as libc::c_long) },
        // SAFETY: unshare takes one integer; it changes only this process's namespaces and
        // shared tables, never its memory.
        Probe::Unshare(flags) => unsafe {
            libc::syscall(libc::SYS_unshare, libc::c_long::from(flags))
        },
        // SAFETY: every pointer argument of mount is null, so the kernel reads no memory of
        // ours (it fails with EFAULT on the null target when no filter intervenes).
        Probe::Mount => unsafe {
            libc::syscall(libc::SYS_mount, null, null, null, 0 as libc::c_long, null)
        },
        Probe::Socket {
            family,
            kind,
            protocol,
        } => {
            // SAFETY: socket takes three integers and returns a new fd or -1; no memory.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_socket,
                    libc::c_long::from(family),
                    libc::c_long::from(kind),
                    libc::c_long::from(protocol),
                )
            };
            if fd >= 0 {
                close_raw(fd);
            }
            fd
        }
        Probe::Socketpair { family } => {
            let mut fds: [libc::c_int; 2] = [-1, -1];
            // SAFETY: the kernel writes two ints into `fds`, a live local array of two ints.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_socketpair,
                    libc::c_long::from(family),
                    libc::c_long::from(libc::SOCK_STREAM),
                    0 as libc::c_long,
                    fds.as_mut_ptr(),
                )
            };
            if r == 0 {
                for fd in fds {
                    close_raw(libc::c_long::from(fd));
                }
            }
            r
        }
        // SAFETY: the third argument is null: requests that read or write through it fail with
        // EFAULT, so no memory of ours is touched; `fd` is the caller's choice (the tests pass
        // -1, which the kernel refuses with EBADF).
        Probe::Ioctl { fd, request } => unsafe {
            libc::syscall(
                libc::SYS_ioctl,
                libc::c_long::from(fd),
                request as libc::c_ulong,
                null,
            )
        },
        // SAFETY: getpid takes no arguments; the x32 bit only changes the table the kernel
        // looks it up in (or makes it ENOSYS when the kernel has no x32 support).
        #[cfg(target_arch = "x86_64")]
        Probe::X32Getpid => unsafe { libc::syscall(libc::SYS_getpid | 0x4000_0000) },
        #[cfg(target_arch = "x86_64")]
        Probe::Int80Getpid => {
            // The raw kernel answer: errno is not involved.
            let r = int80_getpid();
            return if r < 0 {
                Err(i32::try_from(-r).unwrap_or(libc::EIO))
            } else {
                Ok(r)
            };
        }
        Probe::Fork => match run_in_child(|| 0) {
            Ok(ChildExit::Exited(0)) => 0,
            Ok(_) => return Err(libc::ECHILD),
            Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
        },
    };
    if ret < 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(ret)
}

/// Closes a descriptor [`probe`] just received from the kernel.
fn close_raw(fd: libc::c_long) {
    if let Ok(fd) = libc::c_int::try_from(fd) {
        // SAFETY: `fd` was returned by the kernel to `probe` a moment ago and nothing else
        // has seen it, so closing it cannot pull an fd from under other code.
        unsafe { libc::close(fd) };
    }
}

/// getpid through `int 0x80`, the 32-bit syscall entry, from this 64-bit process. Returns the
/// pid, or -errno like the raw kernel interface.
#[cfg(target_arch = "x86_64")]
fn int80_getpid() -> libc::c_long {
    /// getpid in the i386 syscall table (arch/x86/entry/syscalls/syscall_32.tbl).
    const I386_NR_GETPID: u32 = 20;
    let ret: u32;
    // SAFETY: `int 0x80` enters the kernel's 32-bit syscall path with the number in eax and
    // the result returned in eax. getpid reads no arguments (ebx, ecx, ... are ignored) and
    // touches no memory of ours. The interrupt switches to the kernel stack, so our stack is
    // untouched. r8-r11 are declared clobbered because older kernels zeroed them on this
    // path; flags are treated as clobbered (no `preserves_flags`). Without IA-32 emulation the
    // instruction raises SIGSEGV, which kills the process instead of corrupting it.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("eax") I386_NR_GETPID => ret,
            lateout("r8") _,
            lateout("r9") _,
            lateout("r10") _,
            lateout("r11") _,
        );
    }
    // eax holds an i32: a pid or -errno.
    libc::c_long::from(ret as i32)
}

/// The argument vector of a program, prepared before a fork so that [`exec`] in the child
/// does not allocate.
#[derive(Debug)]
pub struct ExecArgv {
    /// Owns the strings that `ptrs` points into. A `CString` keeps its bytes on the heap, so
    /// moving it (into this struct) does not move them.
    _strings: Vec<std::ffi::CString>,
    /// One pointer per string, then null, as execv(3) wants.
    ptrs: Vec<*const libc::c_char>,
}

impl ExecArgv {
    /// `args[0]` is the program's path, also passed as its argv\[0\].
    pub fn new(args: &[&std::ffi::OsStr]) -> io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        if args.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "exec needs at least the program path",
            ));
        }
        let strings = args
            .iter()
            .map(|a| std::ffi::CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(Self {
            _strings: strings,
            ptrs,
        })
    }
}

/// Replaces this process's program with `argv` (environment inherited). Returns only on
/// failure, with the error.
pub fn exec(argv: &ExecArgv) -> io::Error {
    // SAFETY: `argv.ptrs` holds at least one pointer to a NUL-terminated string owned by
    // `argv._strings` (alive for this call) and ends with null, as execv requires. On success
    // execv does not return; on failure it has changed nothing in this process.
    unsafe { libc::execv(argv.ptrs[0], argv.ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// How many seccomp filters the calling thread has: the `Seccomp_filters:` line of
/// `/proc/thread-self/status` (Linux 5.9+; `NotFound` without it). Reads into a stack buffer
/// and allocates nothing, so a child of [`run_in_child`] may call it.
pub fn seccomp_filter_count() -> io::Result<u32> {
    const KEY: &[u8] = b"\nSeccomp_filters:";
    let mut buf = [0u8; 8192];
    // SAFETY: the path is a NUL-terminated literal that outlives the call; open reads only it
    // and returns a new descriptor or -1.
    let fd = unsafe {
        libc::open(
            c"/proc/thread-self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut len = 0;
    let read = loop {
        let free = &mut buf[len..];
        if free.is_empty() {
            break Ok(());
        }
        // SAFETY: the kernel writes at most `free.len()` bytes into `free`, the unused tail of
        // a live local buffer; `fd` is the descriptor opened above.
        let n = unsafe { libc::read(fd, free.as_mut_ptr().cast(), free.len()) };
        match usize::try_from(n) {
            Ok(0) => break Ok(()),
            Ok(n) => len += n,
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    break Err(e);
                }
            }
        }
    };
    // SAFETY: `fd` was opened above, nothing else has seen it, and it is closed once.
    unsafe { libc::close(fd) };
    read?;
    let text = &buf[..len];
    let value = text
        .windows(KEY.len())
        .position(|w| w == KEY)
        .map(|at| &text[at + KEY.len()..])
        .ok_or(io::ErrorKind::NotFound)?;
    let digits = value
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit());
    let mut count: u32 = 0;
    let mut any = false;
    for d in digits {
        any = true;
        count = count
            .checked_mul(10)
            .and_then(|c| c.checked_add(u32::from(d - b'0')))
            .ok_or(io::ErrorKind::InvalidData)?;
    }
    if !any {
        return Err(io::ErrorKind::InvalidData.into());
    }
    Ok(count)
}
