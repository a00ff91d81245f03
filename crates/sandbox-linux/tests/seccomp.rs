//! The cell's seccomp filter in the running kernel.
//!
//! Each probe is one syscall made in a forked child, twice: once without the filter (the
//! control: the kernel itself allows the call or answers differently, so the filtered answer
//! is the filter's doing and the test can fail) and once after installing it. The filter is
//! built before forking; the child only installs it and makes raw syscalls.
//!
//! Needs root, user namespaces, IA-32 emulation, AF_PACKET and IPv6. A missing feature makes
//! a control fail with a note saying what it needs; nothing is skipped.

#![cfg(target_arch = "x86_64")]

use std::ffi::OsStr;

use skillcell_sandbox_linux::seccomp::testing::{
    ChildExit, ExecArgv, Probe, exec, no_new_privs, probe, run_in_child, seccomp_filter_count,
    seccomp_mode, set_no_new_privs,
};
use skillcell_sandbox_linux::seccomp::{self, CellFilter};

use ChildExit::{Exited, Signaled};

/// Child exit codes for setup failures, above every errno.
const NNP_FAILED: i32 = 200;
const INSTALL_FAILED: i32 = 201;
const EXEC_FAILED: i32 = 202;

const OK: ChildExit = Exited(0);

/// Marks the exec'd run of [`inner_threads_probe`]. A positional argument, so libtest takes it
/// as one more (non-matching) test name filter.
const INNER_MARKER: &str = "skillcell_inner_seccomp_probe";

fn filter() -> CellFilter {
    seccomp::build(seccomp::deny_rules()).expect("the cell's filter builds")
}

/// 0 for success, the errno otherwise.
fn code(r: Result<i64, i32>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(errno) => errno,
    }
}

fn unfiltered(p: Probe) -> ChildExit {
    run_in_child(|| code(probe(p))).expect("fork a probe child")
}

/// As the cell will do it: no_new_privs, the filter, then the syscall.
fn filtered(filter: &CellFilter, p: Probe) -> ChildExit {
    run_in_child(|| {
        if set_no_new_privs().is_err() {
            return NNP_FAILED;
        }
        if seccomp::install(filter).is_err() {
            return INSTALL_FAILED;
        }
        code(probe(p))
    })
    .expect("fork a probe child")
}

struct Case {
    what: &'static str,
    probe: Probe,
    /// What the kernel answers without the filter (any of these).
    without: &'static [ChildExit],
    /// What the filter makes of it.
    with: ChildExit,
    /// What the control needs from the kernel.
    needs: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "clone3 fails with ENOSYS so libc falls back to clone",
        probe: Probe::Clone3,
        without: &[Exited(libc::EINVAL)],
        with: Exited(libc::ENOSYS),
        needs: "clone3 (Linux 5.3)",
    },
    Case {
        what: "unshare(CLONE_NEWUSER) is denied",
        probe: Probe::Unshare(libc::CLONE_NEWUSER),
        without: &[OK],
        with: Exited(libc::EPERM),
        needs: "user namespaces (CONFIG_USER_NS, not disabled by sysctl)",
    },
    Case {
        what: "unshare(CLONE_NEWNET | CLONE_NEWNS) is denied",
        probe: Probe::Unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS),
        without: &[OK],
        with: Exited(libc::EPERM),
        needs: "root and network namespaces",
    },
    Case {
        what: "unshare(CLONE_FILES) carries no namespace flag and stays allowed",
        probe: Probe::Unshare(libc::CLONE_FILES),
        without: &[OK],
        with: OK,
        needs: "nothing special",
    },
    Case {
        what: "mount is denied",
        probe: Probe::Mount,
        without: &[Exited(libc::EFAULT)],
        with: Exited(libc::EPERM),
        needs: "root (a null target then fails with EFAULT, not EPERM)",
    },
    Case {
        what: "socket(AF_PACKET) is denied",
        probe: Probe::Socket {
            family: libc::AF_PACKET,
            kind: libc::SOCK_RAW,
            protocol: 0,
        },
        without: &[OK],
        with: Exited(libc::EAFNOSUPPORT),
        needs: "root and CONFIG_PACKET",
    },
    Case {
        what: "socket(AF_NETLINK) is denied",
        probe: Probe::Socket {
            family: libc::AF_NETLINK,
            kind: libc::SOCK_RAW,
            protocol: libc::NETLINK_ROUTE,
        },
        without: &[OK],
        with: Exited(libc::EAFNOSUPPORT),
        needs: "netlink",
    },
    Case {
        what: "socket(AF_INET) works",
        probe: Probe::Socket {
            family: libc::AF_INET,
            kind: libc::SOCK_STREAM,
            protocol: 0,
        },
        without: &[OK],
        with: OK,
        needs: "IPv4",
    },
    Case {
        what: "socket(AF_INET6) works",
        probe: Probe::Socket {
            family: libc::AF_INET6,
            kind: libc::SOCK_DGRAM,
            protocol: 0,
        },
        without: &[OK],
        with: OK,
        needs: "IPv6",
    },
    Case {
        what: "socket(AF_UNIX) is denied (a pathname socket in a granted directory would be reachable)",
        probe: Probe::Socket {
            family: libc::AF_UNIX,
            kind: libc::SOCK_STREAM,
            protocol: 0,
        },
        without: &[OK],
        with: Exited(libc::EAFNOSUPPORT),
        needs: "nothing special",
    },
    Case {
        what: "socketpair(AF_UNIX) works",
        probe: Probe::Socketpair {
            family: libc::AF_UNIX,
        },
        without: &[OK],
        with: OK,
        needs: "nothing special",
    },
    Case {
        what: "socketpair(AF_NETLINK) is denied by the filter, not by netlink",
        probe: Probe::Socketpair {
            family: libc::AF_NETLINK,
        },
        // Netlink has no SOCK_STREAM, the type socketpair asks for.
        without: &[Exited(libc::ESOCKTNOSUPPORT)],
        with: Exited(libc::EAFNOSUPPORT),
        needs: "netlink",
    },
    // fd -1 rather than 0: were the filter to let TIOCSTI through, the kernel answers EBADF
    // instead of pushing a character into the terminal that runs the tests.
    Case {
        what: "ioctl(TIOCSTI) with high bits set in the request is still denied",
        probe: Probe::Ioctl {
            fd: -1,
            request: libc::TIOCSTI | 1 << 32,
        },
        without: &[Exited(libc::EBADF)],
        with: Exited(libc::EPERM),
        needs: "nothing special",
    },
    Case {
        what: "ioctl(TIOCSTI) is denied",
        probe: Probe::Ioctl {
            fd: -1,
            request: libc::TIOCSTI,
        },
        without: &[Exited(libc::EBADF)],
        with: Exited(libc::EPERM),
        needs: "nothing special",
    },
    Case {
        what: "ioctl(TIOCLINUX) is denied",
        probe: Probe::Ioctl {
            fd: -1,
            request: libc::TIOCLINUX,
        },
        without: &[Exited(libc::EBADF)],
        with: Exited(libc::EPERM),
        needs: "nothing special",
    },
    Case {
        what: "other ioctls reach the kernel",
        probe: Probe::Ioctl {
            fd: -1,
            request: libc::TCGETS,
        },
        without: &[Exited(libc::EBADF)],
        with: Exited(libc::EBADF),
        needs: "nothing special",
    },
    Case {
        what: "fork (clone without namespace flags) works",
        probe: Probe::Fork,
        without: &[OK],
        with: OK,
        needs: "nothing special",
    },
    Case {
        what: "an x32 syscall kills the process",
        probe: Probe::X32Getpid,
        // The pid with CONFIG_X86_X32_ABI, ENOSYS without; never a signal.
        without: &[OK, Exited(libc::ENOSYS)],
        with: Signaled(libc::SIGSYS),
        needs: "nothing special",
    },
    Case {
        what: "a 32-bit int 0x80 syscall kills the process",
        probe: Probe::Int80Getpid,
        without: &[OK],
        with: Signaled(libc::SIGSYS),
        needs: "IA-32 emulation (CONFIG_IA32_EMULATION, not ia32_emulation=0); without it int 0x80 raises SIGSEGV",
    },
];

#[test]
fn each_probe_without_and_with_the_filter() {
    let filter = filter();
    let mut failures = Vec::new();
    for case in CASES {
        let without = unfiltered(case.probe);
        if !case.without.contains(&without) {
            failures.push(format!(
                "control for \"{}\": without the filter {:?} gave {without:?}, expected one of {:?}; this needs {}",
                case.what, case.probe, case.without, case.needs
            ));
        }
        let with = filtered(&filter, case.probe);
        if with != case.with {
            failures.push(format!(
                "\"{}\": with the filter {:?} gave {with:?}, expected {:?}",
                case.what, case.probe, case.with
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn install_sets_no_new_privs_itself_and_enters_filter_mode() {
    let filter = filter();
    let exit = run_in_child(|| {
        if seccomp::install(&filter).is_err() {
            return INSTALL_FAILED;
        }
        match (no_new_privs(), seccomp_mode()) {
            (Ok(true), Ok(2)) => 0,
            (Ok(false), _) => 1,
            _ => 2,
        }
    })
    .expect("fork");
    assert_eq!(
        exit, OK,
        "1: no_new_privs not set, 2: not in seccomp filter mode"
    );
}

/// One seccomp() call, one filter for the kernel to run on each syscall (counted from
/// outside the filter code: the thread's `Seccomp_filters` in /proc, Linux 5.9+).
#[test]
fn install_adds_exactly_one_filter() {
    let filter = filter();
    let exit = run_in_child(|| {
        // The test may itself run under a container's filter: count from there.
        let Ok(before) = seccomp_filter_count() else {
            return 3;
        };
        if seccomp::install(&filter).is_err() {
            return INSTALL_FAILED;
        }
        match seccomp_filter_count() {
            Ok(after) if after == before + 1 => 0,
            Ok(_) => 1,
            Err(_) => 2,
        }
    })
    .expect("fork");
    assert_eq!(
        exit, OK,
        "1: install added other than one filter, 2 or 3: no Seccomp_filters line in /proc/thread-self/status (Linux 5.9+)"
    );
}

#[test]
fn filter_is_inherited_by_forked_children() {
    let filter = filter();
    let exit = run_in_child(|| {
        if seccomp::install(&filter).is_err() {
            return INSTALL_FAILED;
        }
        let grandchild =
            run_in_child(
                || match (seccomp_mode(), probe(Probe::Unshare(libc::CLONE_NEWUSER))) {
                    (Ok(2), Err(libc::EPERM)) => 0,
                    _ => 1,
                },
            );
        match grandchild {
            Ok(ChildExit::Exited(code)) => code,
            _ => 3,
        }
    })
    .expect("fork");
    assert_eq!(exit, OK);
}

/// Execs this test binary under the filter to run [`inner_threads_probe`]: the Rust runtime,
/// libtest and `std::thread::spawn` (glibc tries clone3 first, gets ENOSYS, uses clone) must
/// all work in a filtered process, and the filter must survive execve.
#[test]
fn threads_and_exec_work_under_the_filter() {
    let filter = filter();
    let exe = std::env::current_exe().expect("path of this test binary");
    let argv = ExecArgv::new(&[
        exe.as_os_str(),
        OsStr::new("--exact"),
        OsStr::new("inner_threads_probe"),
        OsStr::new("--quiet"),
        OsStr::new("--test-threads=1"),
        OsStr::new(INNER_MARKER),
    ])
    .expect("argv");
    let exit = run_in_child(|| {
        if set_no_new_privs().is_err() {
            return NNP_FAILED;
        }
        if seccomp::install(&filter).is_err() {
            return INSTALL_FAILED;
        }
        let _ = exec(&argv);
        EXEC_FAILED
    })
    .expect("fork");
    assert_eq!(
        exit, OK,
        "the test binary under the filter failed (101: inner_threads_probe failed, {EXEC_FAILED}: exec failed)"
    );
}

/// Does its work only when [`threads_and_exec_work_under_the_filter`] runs this binary with
/// [`INNER_MARKER`]; in an ordinary run it returns at once.
#[test]
fn inner_threads_probe() {
    if !std::env::args().any(|a| a == INNER_MARKER) {
        return;
    }
    assert_eq!(seccomp_mode().expect("prctl"), 2, "not under the filter");
    assert_eq!(probe(Probe::Clone3), Err(libc::ENOSYS));
    let worker = std::thread::spawn(|| (1..=10u32).sum::<u32>());
    assert_eq!(worker.join().expect("thread"), 55);
    let workers: Vec<_> = (0..4).map(|i| std::thread::spawn(move || i * 2)).collect();
    let sum: i32 = workers.into_iter().map(|w| w.join().expect("thread")).sum();
    assert_eq!(sum, 12);
}
