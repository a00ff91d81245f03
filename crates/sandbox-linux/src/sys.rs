//! Raw syscalls. The only module of skillcell with `unsafe` code.
#![allow(
    unsafe_code,
    reason = "the one place where skillcell calls the kernel directly"
)]

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
