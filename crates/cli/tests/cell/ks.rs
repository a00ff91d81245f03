//! Section KS of ../shared/security-cases.md: the kernel attack surface. A probe skill calls
//! the syscalls the cell's seccomp filter denies (new user namespaces through unshare, clone
//! and clone3; mount and fsopen; setns; io_uring, bpf, perf_event_open, userfaultfd; the
//! keyring; kexec, modules, the clock) and keeps whatever it obtains; the host then compares
//! the namespaces and the mount table of every process of the cell with those of the cell's
//! init, reads their descriptors and the host's keyring. Another skill enters the kernel through the 32-bit and
//! x32 syscall entries from machine code and must be killed with SIGSYS, as the supervisor
//! reports it.
//!
//! "The filter failing to load must stop the run" is covered by the unit test
//! `a_failed_layer_stops_the_launch_before_exec` in crates/sandbox-linux/src/launch.rs (a
//! recording fake fails each layer and checks exec never runs).
//!
//! The syscalls the probe tries were checked outside any cell, as an unprivileged user without
//! capabilities: there the clone, clone3 and unshare into a new user namespace, the mount and
//! fsopen inside it, io_uring_setup, perf_event_open, userfaultfd, add_key and keyctl all succeed, so
//! their arguments are valid and the probe would hold the evidence if the filter let them
//! through. bpf (unprivileged_bpf_disabled), setns, kexec_load, init_module and clock_settime
//! fail there too (no capability in the initial user namespace); they are tried with harmless
//! arguments (clock_settime sets the clock to the time it just read), so the host's clock is
//! not compared: nothing the probe could do to it would be visible without harming the host.

use std::fs;

use super::lab::{BIN, Lab, PROBE_WAIT, processes_with, token};

const NAMESPACES: [&str; 7] = ["user", "mnt", "net", "pid", "uts", "ipc", "cgroup"];

/// What a denied call would leave in a descriptor link, were it let through.
const FORBIDDEN_FDS: [&str; 5] = ["io_uring", "bpf", "perf_event", "userfaultfd", "fscontext"];

/// The attacks, after `PROBE_WAIT`. Every result goes to stderr for the failure message only;
/// the verdict is the host's.
const ATTACKS: &str = r#"
import ctypes, socket, struct

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
TOKEN = sys.argv[1]
held = []

def sc(name, nr, *args):
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *conv)
    print(name, r, os.strerror(ctypes.get_errno()) if r < 0 else "", file=sys.stderr, flush=True)
    return r

def linger(r):
    # A clone that went through: the child stays where the host can see it.
    if r == 0:
        time.sleep(30)
        os._exit(0)

CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17
# A new user namespace (clone3, clone, unshare), then a mount namespace and a mount in it.
clone_args = struct.pack("QQQQQQQQ", CLONE_NEWUSER, 0, 0, 0, SIGCHLD, 0, 0, 0)
linger(sc("clone3", 435, clone_args, len(clone_args)))
linger(sc("clone", 56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0))
sc("unshare", 272, CLONE_NEWUSER)
sc("unshare", 272, CLONE_NEWNS)
sc("mount", 165, b"tmpfs", b"/tmp", b"tmpfs", 0, 0)
held.append(sc("fsopen", 430, b"tmpfs", 0))
ns = os.open("/proc/self/ns/net", os.O_RDONLY)
sc("setns", 308, ns, 0)
os.close(ns)
# Descriptors into large kernel interfaces, kept open if obtained.
held.append(sc("io_uring_setup", 425, 8, ctypes.create_string_buffer(120)))
bpf_attr = ctypes.create_string_buffer(struct.pack("IIII", 2, 4, 4, 1), 128)
held.append(sc("bpf", 321, 0, bpf_attr, 128))
# PERF_TYPE_SOFTWARE, CPU clock, this process, exclude_kernel and exclude_hv.
perf_attr = ctypes.create_string_buffer(struct.pack("IIQQQQQ", 1, 128, 0, 0, 0, 0, 0x60), 128)
held.append(sc("perf_event_open", 298, perf_attr, 0, -1, -1, 0))
# O_CLOEXEC | UFFD_USER_MODE_ONLY: what an unprivileged process may open.
held.append(sc("userfaultfd", 323, os.O_CLOEXEC | 1))
# The kernel keyring: a key in the session keyring (the caller's, inherited) and a new
# session keyring, both named after the token.
sc("add_key", 248, b"user", TOKEN.encode(), b"v", 1, -3)
sc("keyctl", 250, 1, (TOKEN + "-ring").encode())
# The whole machine, with harmless arguments.
sc("kexec_load", 246, 0, 0, 0, 0)
sc("init_module", 175, 0, 0, b"")
now = ctypes.create_string_buffer(16)
libc.clock_gettime(0, now)
sc("clock_settime", 227, 0, now)
# Positive control: descriptors the cell allows, held the same way.
held.append(os.eventfd(0))
pair = socket.socketpair()
"#;

fn link(path: String) -> String {
    fs::read_link(&path)
        .unwrap_or_else(|e| panic!("readlink {path}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// The links of /proc/PID/fd/*.
fn fd_links(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

fn fd_links_of(fds: &[(u32, Vec<String>)], pid: u32) -> &[String] {
    fds.iter()
        .find(|(p, _)| *p == pid)
        .map_or(&[], |(_, l)| l.as_slice())
}

/// The cell's processes other than its init (which runs the skillcell binary).
fn cell_processes(token: &str) -> Vec<u32> {
    let bin = fs::canonicalize(BIN).ok();
    processes_with(token)
        .into_iter()
        .filter(|pid| fs::read_link(format!("/proc/{pid}/exe")).ok() != bin)
        .collect()
}

#[test]
fn denied_syscalls_leave_namespaces_mounts_descriptors_and_keyring_as_they_were() {
    let lab = Lab::new();
    lab.python(
        "ks-probe",
        &["skillcell.fs.read: $CTL"],
        &format!("{PROBE_WAIT}\n{ATTACKS}\nwait_for_host()\n"),
    );
    let t = token("ks");
    let p = lab.probe("ks-probe", &[], &t);
    let init: u32 = p.status("PPid").parse().expect("PPid");
    // The init is the cell's pid 1, running the skillcell binary.
    assert_eq!(
        fs::read_link(format!("/proc/{init}/exe")).ok(),
        fs::canonicalize(BIN).ok()
    );
    let skill = p.pid;
    let procs = cell_processes(&t);
    let keys = fs::read_to_string("/proc/keys").expect("/proc/keys");
    let init_mounts = fs::read_to_string(format!("/proc/{init}/mountinfo")).expect("mountinfo");
    let mut checks = Vec::new();
    for &pid in &procs {
        for ns in NAMESPACES {
            checks.push((
                pid,
                ns,
                link(format!("/proc/{pid}/ns/{ns}")),
                link(format!("/proc/{init}/ns/{ns}")),
                link(format!("/proc/self/ns/{ns}")),
            ));
        }
    }
    let mounts = fs::read_to_string(p.proc("mountinfo")).expect("mountinfo");
    let fds: Vec<(u32, Vec<String>)> = procs.iter().map(|&pid| (pid, fd_links(pid))).collect();
    let out = p.finish();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");

    // clone and clone3 made no process: the skill is alone in its cell.
    assert_eq!(procs, [skill], "processes of the cell\n{said}");
    for (pid, ns, own, of_init, of_host) in &checks {
        assert_eq!(
            own, of_init,
            "{ns} namespace of {pid} is not the cell's\n{said}"
        );
        // Positive control: the comparison means something, the cell's are not the host's.
        assert_ne!(own, of_host, "{ns} namespace of {pid} is the host's");
    }
    assert_eq!(
        mounts, init_mounts,
        "the skill changed its mount table\n{said}"
    );
    for (pid, links) in &fds {
        for l in links {
            assert!(
                !FORBIDDEN_FDS.iter().any(|f| l.contains(f)),
                "process {pid} holds {l}\n{said}"
            );
        }
    }
    // Positive control: descriptors the probe obtained are held and visible to the host.
    let links = fd_links_of(&fds, skill);
    assert!(
        links.iter().any(|l| l == "anon_inode:[eventfd]"),
        "the probe's eventfd is not held: {links:?}\n{said}"
    );
    assert!(
        links.iter().filter(|l| l.starts_with("socket:[")).count() >= 2,
        "the probe's socket pair is not held: {links:?}"
    );
    assert!(
        !keys.contains(&t),
        "the cell reached the kernel keyring: {keys}"
    );
    let keys_after = fs::read_to_string("/proc/keys").expect("/proc/keys");
    assert!(
        !keys_after.contains(&t),
        "a key outlived the cell: {keys_after}"
    );
}

/// Runs machine code from anonymous executable memory and exits with what it returns in
/// `rax` (low byte). The code comes as hex in argv[1].
const TRAMPOLINE: &str = r#"
import ctypes, mmap, sys
code = bytes.fromhex(sys.argv[1])
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
f = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
sys.exit(f() & 0xff)
"#;

/// `mov eax, 39 (getpid); syscall; ret`: the native 64-bit entry.
const NATIVE_GETPID: &str = "b8270000000f05c3";
/// `mov eax, 20 (getpid in the i386 table); int 0x80; ret`: the 32-bit entry.
const INT80_GETPID: &str = "b814000000cd80c3";
/// `mov eax, 39 | 0x40000000 (__X32_SYSCALL_BIT); syscall; ret`: the x32 entry.
const X32_GETPID: &str = "b8270000400f05c3";

fn trampoline(code: &str) -> (Lab, super::lab::Run) {
    let lab = Lab::new();
    lab.python("trampoline", &["skillcell.limits: wall=20s"], TRAMPOLINE);
    let r = lab.run(&["trampoline", "--", code]);
    (lab, r)
}

fn assert_killed_by_sigsys(code: &str) {
    let (lab, r) = trampoline(code);
    assert_eq!(r.outcome(), ("signaled", 31), "{r:?}");
    assert_eq!(r.report()["outcome"]["name"], "SIGSYS", "{r:?}");
    assert_eq!(r.limit_hit(), None, "{r:?}");
    assert_eq!(r.code, 128 + 31, "{r:?}");
    let rec = lab.last_run_record("trampoline");
    assert_eq!(
        rec["details"]["report"]["outcome"]["kind"], "signaled",
        "{rec}"
    );
    assert_eq!(rec["details"]["report"]["outcome"]["signal"], 31, "{rec}");
}

#[test]
fn the_32_bit_int_0x80_entry_is_killed_with_sigsys() {
    assert_killed_by_sigsys(INT80_GETPID);
}

#[test]
fn the_x32_syscall_entry_is_killed_with_sigsys() {
    assert_killed_by_sigsys(X32_GETPID);
}

#[test]
fn the_same_trampoline_with_a_native_syscall_returns() {
    // Positive control: the machine code runs and its syscall returns, so the SIGSYS above is
    // the filter's doing. getpid in the cell's pid namespace is 2 (the init is 1).
    let (_, r) = trampoline(NATIVE_GETPID);
    assert_eq!(r.outcome(), ("exited", 2), "{r:?}");
}
