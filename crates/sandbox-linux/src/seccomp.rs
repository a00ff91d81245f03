//! The cell's seccomp-bpf filter: a deny list over the x86_64 syscall table.
//!
//! What it refuses:
//! - every syscall entered through another ABI than native x86_64, which kills the whole
//!   process (`SECCOMP_RET_KILL_PROCESS`): the 32-bit `int 0x80` entry and the x32 entry;
//! - the syscalls of [`deny_rules`] (some only with certain arguments), which fail with an
//!   errno, so that a program probing for a feature sees "not available" and carries on.
//!
//! Everything else is allowed. The other layers of the cell (namespaces, Landlock, dropped
//! capabilities, cgroups) confine what allowed syscalls can reach; this filter removes kernel
//! attack surface and the ways around those layers (new namespaces, mounts, ptrace, kernel
//! modules, ...). A deny list cannot know syscalls added to later kernels: a new one of a
//! denied family has to be added to the table.
//!
//! Three steps, kept apart so that the first two are pure and unit-tested:
//! 1. [`deny_rules`]: the table, data with a reason per entry;
//! 2. [`build`]: rules → [`CellFilter`], one classic BPF program compiled here (the layout is
//!    described at `x86_64::compile`): the ABI checks, a binary search on the syscall number,
//!    the argument checks;
//! 3. [`install`]: loads it into the kernel for the calling thread, with one seccomp() call.
//!
//! One program rather than one per errno: the kernel verifies, translates and JIT-compiles
//! every program at install time, and runs every installed program on each syscall it cannot
//! answer from its per-syscall cache (kernels since 5.11 skip the filters for a syscall number
//! that every filter allows without looking at the arguments; the syscalls that have argument
//! rules, openat and ioctl among them, always run them). A single program does the work once,
//! and finds any syscall number in about log2(number of rules) comparisons instead of walking
//! a list per errno.
//!
//! Only x86_64 is written. On any other architecture [`build`] returns an error, so a cell
//! that needs this filter refuses to start rather than run without it.
//!
//! Argument conditions ([`ArgMatch`]) always compare the low 32 bits of an argument. Every
//! argument the table inspects is a 32-bit value in the kernel (socket's `int family`,
//! ioctl's `unsigned int cmd`, the clone flags the kernel reads through `lower_32_bits`,
//! and the namespace bits of unshare's flags), so a 64-bit comparison could be dodged by
//! setting the high half, which the kernel ignores.

use std::fmt;

use seccompiler::sock_filter;
use serde::Serialize;

/// The most instructions the kernel accepts in one classic BPF program (`BPF_MAXINSNS`).
const BPF_MAXINSNS: usize = 4096;

/// What a denied syscall returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum DenyAction {
    /// `EPERM`: the operation is not permitted here.
    #[serde(rename = "EPERM")]
    Eperm,
    /// `ENOSYS`: the kernel seems not to have the syscall, so libc falls back to an older one.
    #[serde(rename = "ENOSYS")]
    Enosys,
    /// `EAFNOSUPPORT`: the address family is not supported, what the kernel itself answers for
    /// a family it was built without, so programs treat it as "not available".
    #[serde(rename = "EAFNOSUPPORT")]
    Eafnosupport,
}

impl DenyAction {
    /// The errno the syscall fails with.
    pub const fn errno(self) -> i32 {
        match self {
            Self::Eperm => libc::EPERM,
            Self::Enosys => libc::ENOSYS,
            Self::Eafnosupport => libc::EAFNOSUPPORT,
        }
    }

    /// The errno's name, e.g. `EPERM`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Eperm => "EPERM",
            Self::Enosys => "ENOSYS",
            Self::Eafnosupport => "EAFNOSUPPORT",
        }
    }
}

/// A condition on the low 32 bits of one syscall argument (`arg` is its index, 0 to 5); see
/// the module documentation for why 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ArgMatch {
    /// At least one bit of `mask` is set.
    AnyBit { arg: u8, mask: u32 },
    /// The argument equals `value`.
    Equals { arg: u8, value: u32 },
    /// The argument is none of `values`.
    NoneOf { arg: u8, values: &'static [u32] },
}

impl ArgMatch {
    /// Whether syscall arguments `args` match, in plain Rust: the meaning the compiled BPF must
    /// have (the unit tests compare the two). An index beyond 5 matches nothing.
    pub fn matches(&self, args: &[u64; 6]) -> bool {
        // The low half, as the kernel reads a 32-bit argument.
        let low = |arg: u8| args.get(usize::from(arg)).map(|&v| v as u32);
        match *self {
            Self::AnyBit { arg, mask } => low(arg).is_some_and(|v| v & mask != 0),
            Self::Equals { arg, value } => low(arg) == Some(value),
            Self::NoneOf { arg, values } => low(arg).is_some_and(|v| !values.contains(&v)),
        }
    }
}

/// One entry of the deny list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DenyRule {
    /// The syscall's name, e.g. `mount`.
    pub syscall: &'static str,
    /// Its number in the native x86_64 table.
    pub nr: i64,
    pub action: DenyAction,
    /// `None`: every call is denied; otherwise only calls whose arguments match.
    pub when: Option<ArgMatch>,
    /// Why it is denied.
    pub reason: &'static str,
}

/// Why the filter could not be built or installed. Either way the caller must refuse the run:
/// a cell without its filter is weaker than promised.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error(
        "the cell's seccomp filter is written for x86_64 only and this is {arch}; a cell cannot run here without it"
    )]
    UnsupportedArch { arch: &'static str },
    #[error("no deny rules given; build the filter from seccomp::deny_rules()")]
    NoRules,
    #[error(
        "rule for {syscall} has syscall number {nr}, outside the native x86_64 range 0 to 0x3fffffff"
    )]
    BadNumber { syscall: &'static str, nr: i64 },
    #[error("syscall number {nr} is listed both as {first} and as {second}")]
    NameClash {
        nr: i64,
        first: &'static str,
        second: &'static str,
    },
    #[error(
        "{syscall} is listed with two actions, {first} and {second}; give each syscall one action"
    )]
    ConflictingActions {
        syscall: &'static str,
        first: &'static str,
        second: &'static str,
    },
    #[error("rule for {syscall} has an empty bit mask and would never match")]
    EmptyMask { syscall: &'static str },
    #[error(
        "rule for {syscall} has an empty NoneOf list, which matches every call; write `when: None` to deny it outright"
    )]
    EmptyValues { syscall: &'static str },
    #[error("rule for {syscall} tests argument {arg}; syscall arguments are numbered 0 to 5")]
    BadArgument { syscall: &'static str, arg: u8 },
    #[error(
        "the seccomp program has {len} instructions; the kernel takes 1 to 4096, so the deny list must shrink"
    )]
    ProgramLength { len: usize },
    #[error("installing the seccomp program failed: {source}; this process must not run the skill")]
    Install { source: seccompiler::Error },
}

/// The compiled filter: one BPF program. Only [`build`] makes one.
#[derive(Clone, Debug)]
pub struct CellFilter {
    program: Vec<sock_filter>,
    summary: FilterSummary,
}

impl CellFilter {
    /// The program, as [`install`] hands it to the kernel.
    pub fn program(&self) -> &[sock_filter] {
        &self.program
    }

    /// What the filter enforces, for the enforcement report.
    pub fn summary(&self) -> &FilterSummary {
        &self.summary
    }
}

/// What a [`CellFilter`] enforces. Its `Display` is one line for the `seccomp` layer of an
/// enforcement report, e.g. `x86_64; 72 rules on 71 syscalls (EPERM 67, ENOSYS 3,
/// EAFNOSUPPORT 2); kill on 32-bit and x32 entry; 1 program, 107 instructions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FilterSummary {
    pub arch: &'static str,
    /// Deny rules compiled (a syscall with several conditions counts once per rule).
    pub rules: usize,
    /// Distinct syscalls the rules name.
    pub syscalls: usize,
    /// How many rules answer with each errno, in [`DenyAction`] order.
    pub errno_rules: Vec<ActionCount>,
    /// Syscall entry ABIs that kill the process.
    pub kill_on: &'static [&'static str],
    /// BPF programs installed: always 1 now that the filter is compiled here.
    pub programs: usize,
    /// BPF instructions in the program.
    pub instructions: usize,
}

/// How many rules answer with `errno`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionCount {
    pub errno: &'static str,
    pub rules: usize,
}

impl fmt::Display for FilterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; {} rules on {} syscalls (",
            self.arch, self.rules, self.syscalls
        )?;
        for (i, c) in self.errno_rules.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{} {}", c.errno, c.rules)?;
        }
        let programs = if self.programs == 1 {
            "program"
        } else {
            "programs"
        };
        write!(
            f,
            "); kill on {} entry; {} {programs}, {} instructions",
            self.kill_on.join(" and "),
            self.programs,
            self.instructions
        )
    }
}

/// The cell's deny list. Empty on architectures other than x86_64, where [`build`] fails.
pub fn deny_rules() -> &'static [DenyRule] {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::RULES
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        &[]
    }
}

/// Compiles `rules` into the cell's filter, one BPF program. Pure: no syscalls. Refuses an
/// empty list, a syscall number outside the native table, a number listed under two names, a
/// syscall listed with two actions, an empty bit mask or value list, an argument index
/// beyond 5, and a program longer than the kernel takes.
///
/// A syscall with several conditional rules is denied when any of them matches; a syscall
/// that also has a rule without condition is denied outright.
pub fn build(rules: &[DenyRule]) -> Result<CellFilter, SeccompError> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::build(rules)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = rules;
        Err(SeccompError::UnsupportedArch {
            arch: std::env::consts::ARCH,
        })
    }
}

/// Installs `filter` on the calling thread. The thread keeps it for good, and so do the
/// processes it starts, across execve.
///
/// Call it last before execve, in the single thread that will exec the skill: it covers only
/// the calling thread (no `SECCOMP_FILTER_FLAG_TSYNC`), and afterwards mount, unshare and the
/// rest of the list are gone for this thread too.
///
/// The program goes through `seccompiler::apply_filter` (seccompiler 0.5), which refuses an
/// empty program, calls `prctl(PR_SET_NO_NEW_PRIVS, 1)` (so this sets no_new_privs itself,
/// which unprivileged seccomp requires anyway), then `seccomp(SECCOMP_SET_MODE_FILTER, 0,
/// prog)`: one call, which is all a single program needs, and no new `unsafe` block of ours
/// for what a maintained crate already does. It casts the program length to `u16` unchecked,
/// so the length is checked here first: a truncated length would load a prefix of the
/// program.
///
/// Fails closed: the kernel loads a program whole or not at all, so on an error no filter is
/// installed (no_new_privs may be set); the caller must not run the skill in this process.
pub fn install(filter: &CellFilter) -> Result<(), SeccompError> {
    let program = filter.program();
    if program.is_empty() || program.len() > BPF_MAXINSNS {
        return Err(SeccompError::ProgramLength { len: program.len() });
    }
    seccompiler::apply_filter(program).map_err(|source| SeccompError::Install { source })
}

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use std::collections::{BTreeMap, BTreeSet};

    use seccompiler::sock_filter;

    use super::{
        ActionCount, ArgMatch, BPF_MAXINSNS, CellFilter, DenyAction, DenyRule, FilterSummary,
        SeccompError,
    };

    /// Syscall numbers: libc's `SYS_*`, plus the ones this libc does not have yet.
    mod nr {
        pub use libc::*;

        /// open_tree_attr (Linux 6.15), in the mount family.
        #[allow(non_upper_case_globals, reason = "named like libc's SYS_* constants")]
        pub const SYS_open_tree_attr: libc::c_long = 467;
        /// fchmodat2 (Linux 6.6): fchmodat with flags.
        #[allow(non_upper_case_globals, reason = "named like libc's SYS_* constants")]
        pub const SYS_fchmodat2: libc::c_long = 452;
    }

    /// `struct seccomp_data` (linux/seccomp.h): `int nr` at 0, `__u32 arch` at 4, the
    /// instruction pointer at 8, then the six 64-bit arguments from 16.
    pub(super) const OFFSET_NR: u32 = 0;
    pub(super) const OFFSET_ARCH: u32 = 4;
    const OFFSET_ARGS: u32 = 16;

    /// The offset of the low 32 bits of argument `arg`: x86_64 is little-endian, so the low
    /// word of `args[arg]` comes first and the high one (never loaded) at 4 more.
    pub(super) const fn arg_low_word(arg: u8) -> u32 {
        OFFSET_ARGS + 8 * arg as u32
    }

    /// linux/audit.h: `EM_X86_64 (62) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
    pub(super) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    /// Set in the syscall number of every x32 syscall (`__X32_SYSCALL_BIT`).
    pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

    // Classic BPF opcodes (linux/bpf_common.h), only those the compiler emits. All of them
    // are also understood by the kernel's seccomp cache emulator (`seccomp_is_const_allow`),
    // so a syscall number the program allows without loading an argument is cached as
    // allowed and never runs the program.
    /// `BPF_LD | BPF_W | BPF_ABS`: A = the 32-bit word at offset k of `seccomp_data`.
    pub(super) const LD_W_ABS: u16 = 0x20;
    /// `BPF_JMP | BPF_JA`: skip k instructions (32-bit k: the only far jump).
    pub(super) const JA: u16 = 0x05;
    /// `BPF_JMP | BPF_JEQ | BPF_K`: if A == k skip jt instructions, else skip jf.
    pub(super) const JEQ_K: u16 = 0x15;
    /// `BPF_JMP | BPF_JGE | BPF_K`: if A >= k (unsigned) skip jt instructions, else skip jf.
    pub(super) const JGE_K: u16 = 0x35;
    /// `BPF_JMP | BPF_JSET | BPF_K`: if A & k != 0 skip jt instructions, else skip jf.
    pub(super) const JSET_K: u16 = 0x45;
    /// `BPF_RET | BPF_K`: return k as the filter's answer.
    pub(super) const RET_K: u16 = 0x06;

    /// Every `CLONE_NEW*` flag. In clone's flags `CLONE_NEWTIME` (0x80) lies in the exit-signal
    /// byte (`CSIGNAL`) and the kernel ignores it there; no valid signal has that bit, so
    /// denying it costs nothing and one mask serves clone and unshare.
    const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWTIME) as u32;

    /// The families `socket` may create: IPv4 and IPv6 (Landlock and the network namespace
    /// decide where they may go). No AF_UNIX: connecting to a pathname socket is not a
    /// filesystem right before Landlock ABI 9, so a read-only grant of a directory holding a
    /// service's socket (docker.sock, an agent, git's fsmonitor) would open that service to
    /// the skill.
    const SOCKET_FAMILIES: &[u32] = &[libc::AF_INET as u32, libc::AF_INET6 as u32];

    /// The families `socketpair` may create: AF_UNIX only (pairs connect nothing outside
    /// the process; Python's asyncio and multiprocessing use them).
    const SOCKETPAIR_FAMILIES: &[u32] = &[libc::AF_UNIX as u32];

    /// `personality(0xffffffff)` only reads the current persona.
    const PERSONALITY_QUERY: u32 = 0xffff_ffff;

    /// `SYS_mount` → `mount`, at compile time.
    const fn strip_sys(sys: &'static str) -> &'static str {
        let b = sys.as_bytes();
        assert!(b.len() > 4 && b[0] == b'S' && b[1] == b'Y' && b[2] == b'S' && b[3] == b'_');
        sys.split_at(4).1
    }

    /// `deny!(SYS_x, Action, [condition,] "reason")`: name and number come from one
    /// identifier, so they cannot disagree.
    macro_rules! deny {
        ($sys:ident, $action:ident, $reason:literal) => {
            deny!(@rule $sys, $action, None, $reason)
        };
        ($sys:ident, $action:ident, $when:expr, $reason:literal) => {
            deny!(@rule $sys, $action, Some($when), $reason)
        };
        (@rule $sys:ident, $action:ident, $when:expr, $reason:literal) => {
            DenyRule {
                syscall: strip_sys(stringify!($sys)),
                nr: nr::$sys,
                action: DenyAction::$action,
                when: $when,
                reason: $reason,
            }
        };
    }

    const NEW_NAMESPACE: ArgMatch = ArgMatch::AnyBit {
        arg: 0,
        mask: NAMESPACE_FLAGS,
    };
    /// S_ISUID | S_ISGID.
    const SET_ID_BITS: u32 = 0o6000;
    const fn set_id_mode(arg: u8) -> ArgMatch {
        ArgMatch::AnyBit {
            arg,
            mask: SET_ID_BITS,
        }
    }
    const OTHER_SOCKET_FAMILY: ArgMatch = ArgMatch::NoneOf {
        arg: 0,
        values: SOCKET_FAMILIES,
    };
    const OTHER_SOCKETPAIR_FAMILY: ArgMatch = ArgMatch::NoneOf {
        arg: 0,
        values: SOCKETPAIR_FAMILIES,
    };

    pub(super) static RULES: &[DenyRule] = &[
        // Processes and namespaces.
        deny!(
            SYS_clone3,
            Enosys,
            "its flags sit in a struct in memory, which seccomp cannot read, so namespace flags could not be checked; ENOSYS makes libc fall back to clone, whose flags are checked"
        ),
        deny!(
            SYS_clone,
            Eperm,
            NEW_NAMESPACE,
            "new namespaces: the cell's are made by the supervisor, and a new user namespace would give the skill a full set of capabilities inside it; fork and threads carry no namespace flag"
        ),
        deny!(
            SYS_unshare,
            Eperm,
            NEW_NAMESPACE,
            "moves the caller into new namespaces (see clone); unsharing files or fs state stays allowed"
        ),
        deny!(
            SYS_setns,
            Eperm,
            "joins another namespace through a namespace or pidfd, for example the host's through an inherited descriptor"
        ),
        // The mount family: inside its own user namespace the skill could remount its view.
        deny!(SYS_mount, Eperm, "changes the cell's mount table"),
        deny!(
            SYS_umount2,
            Eperm,
            "removes mounts, which could uncover what they hide"
        ),
        deny!(
            SYS_pivot_root,
            Eperm,
            "changes the root of the mount namespace"
        ),
        deny!(
            SYS_chroot,
            Eperm,
            "changes the root directory; nested chroots are an old escape route"
        ),
        deny!(
            SYS_move_mount,
            Eperm,
            "attaches or moves mounts (new mount API)"
        ),
        deny!(
            SYS_open_tree,
            Eperm,
            "clones a mount tree into a detached mount (new mount API)"
        ),
        deny!(
            SYS_open_tree_attr,
            Eperm,
            "clones a mount tree with new attributes (new mount API, Linux 6.15)"
        ),
        deny!(
            SYS_fsopen,
            Eperm,
            "opens a filesystem context to create a mount (new mount API)"
        ),
        deny!(
            SYS_fsconfig,
            Eperm,
            "configures a filesystem context (new mount API)"
        ),
        deny!(
            SYS_fsmount,
            Eperm,
            "turns a filesystem context into a mount (new mount API)"
        ),
        deny!(
            SYS_fspick,
            Eperm,
            "reopens an existing mount's superblock for reconfiguration (new mount API)"
        ),
        deny!(
            SYS_mount_setattr,
            Eperm,
            "changes mount attributes such as read-only or nosuid"
        ),
        // Other processes' memory and descriptors.
        deny!(
            SYS_ptrace,
            Eperm,
            "reads and writes other processes' memory and registers"
        ),
        deny!(
            SYS_process_vm_readv,
            Eperm,
            "reads another process's memory"
        ),
        deny!(
            SYS_process_vm_writev,
            Eperm,
            "writes another process's memory"
        ),
        deny!(
            SYS_kcmp,
            Eperm,
            "compares kernel objects of two processes, leaking kernel pointer order"
        ),
        deny!(
            SYS_pidfd_getfd,
            Eperm,
            "copies a descriptor out of another process"
        ),
        // Large kernel attack surfaces that skills do not need.
        deny!(
            SYS_io_uring_setup,
            Eperm,
            "io_uring runs syscalls from a ring that seccomp never sees, and has been a rich source of kernel bugs"
        ),
        deny!(SYS_io_uring_enter, Eperm, "io_uring (see io_uring_setup)"),
        deny!(
            SYS_io_uring_register,
            Eperm,
            "io_uring (see io_uring_setup)"
        ),
        // Set-user-ID and set-group-ID bits. The cell's uid is the caller's outside: a
        // setuid file left in a write grant would run as the caller (root, if the caller is)
        // for whoever executes it later on the host. `nosuid` covers only the cell's view.
        deny!(
            SYS_chmod,
            Eperm,
            set_id_mode(1),
            "a setuid or setgid file left in a write grant runs with the caller's identity for whoever executes it on the host"
        ),
        deny!(SYS_fchmod, Eperm, set_id_mode(1), "see chmod"),
        deny!(SYS_fchmodat, Eperm, set_id_mode(2), "see chmod"),
        deny!(SYS_fchmodat2, Eperm, set_id_mode(2), "see chmod"),
        deny!(
            SYS_open,
            Eperm,
            set_id_mode(2),
            "creating a file with setuid or setgid bits (see chmod)"
        ),
        deny!(
            SYS_openat,
            Eperm,
            set_id_mode(3),
            "creating a file with setuid or setgid bits (see chmod)"
        ),
        deny!(
            SYS_creat,
            Eperm,
            set_id_mode(1),
            "creating a file with setuid or setgid bits (see chmod)"
        ),
        deny!(
            SYS_mknod,
            Eperm,
            set_id_mode(1),
            "creating a file with setuid or setgid bits (see chmod)"
        ),
        deny!(
            SYS_mknodat,
            Eperm,
            set_id_mode(2),
            "creating a file with setuid or setgid bits (see chmod)"
        ),
        deny!(
            SYS_mkdir,
            Eperm,
            set_id_mode(1),
            "a setgid directory left in a write grant hands its group to every file created in it later"
        ),
        deny!(SYS_mkdirat, Eperm, set_id_mode(2), "see mkdir"),
        deny!(
            SYS_openat2,
            Enosys,
            "its mode sits in a struct in memory, which seccomp cannot read, so setuid bits could not be checked; ENOSYS makes libc fall back to openat"
        ),
        deny!(
            SYS_memfd_create,
            Enosys,
            "a memfd lives on the kernel's internal shmem mount, which is neither noexec nor under Landlock's EXECUTE right: an ELF written into one could be executed (fexecve, /proc/self/fd) or mapped by the dynamic loader, bypassing the exec allowlist; ENOSYS lets libraries fall back"
        ),
        deny!(
            SYS_userfaultfd,
            Eperm,
            "lets a process stall kernel accesses to its memory at will, the usual tool to win kernel races"
        ),
        deny!(
            SYS_bpf,
            Eperm,
            "loads eBPF programs and maps into the kernel"
        ),
        deny!(
            SYS_perf_event_open,
            Eperm,
            "performance monitoring: side channels and a history of kernel bugs"
        ),
        deny!(
            SYS_keyctl,
            Eperm,
            "the kernel keyring holds credentials and is not namespaced"
        ),
        deny!(
            SYS_add_key,
            Eperm,
            "adds a key to the kernel keyring (see keyctl)"
        ),
        deny!(
            SYS_request_key,
            Eperm,
            "requests a key from the kernel keyring (see keyctl)"
        ),
        deny!(
            SYS_lookup_dcookie,
            Eperm,
            "resolves kernel directory-entry cookies (profiling)"
        ),
        // The whole machine.
        deny!(SYS_kexec_load, Eperm, "loads a new kernel to boot"),
        deny!(SYS_kexec_file_load, Eperm, "loads a new kernel to boot"),
        deny!(SYS_init_module, Eperm, "loads a kernel module"),
        deny!(SYS_finit_module, Eperm, "loads a kernel module"),
        deny!(SYS_delete_module, Eperm, "unloads a kernel module"),
        deny!(SYS_swapon, Eperm, "changes the machine's swap"),
        deny!(SYS_swapoff, Eperm, "changes the machine's swap"),
        deny!(SYS_reboot, Eperm, "reboots or halts the machine"),
        deny!(
            SYS_clock_settime,
            Eperm,
            "sets the system clock, which is not namespaced"
        ),
        deny!(SYS_clock_adjtime, Eperm, "adjusts the system clock"),
        deny!(SYS_settimeofday, Eperm, "sets the system clock"),
        deny!(SYS_adjtimex, Eperm, "adjusts the system clock"),
        deny!(
            SYS_acct,
            Eperm,
            "switches process accounting for the machine"
        ),
        deny!(SYS_quotactl, Eperm, "manages disk quotas"),
        deny!(SYS_quotactl_fd, Eperm, "manages disk quotas"),
        deny!(
            SYS_syslog,
            Eperm,
            "reads or clears the kernel log, which leaks kernel addresses and host activity"
        ),
        deny!(SYS_vhangup, Eperm, "hangs up the controlling terminal"),
        // Files by handle: open_by_handle_at bypasses paths, and with them the mount view.
        deny!(
            SYS_open_by_handle_at,
            Eperm,
            "opens a file by handle with no path lookup, escaping the mount view (the \"shocker\" container escape)"
        ),
        deny!(
            SYS_name_to_handle_at,
            Eperm,
            "makes the file handles open_by_handle_at takes"
        ),
        // x86 hardware and legacy interfaces.
        deny!(
            SYS_iopl,
            Eperm,
            "raises the I/O privilege level for direct port access"
        ),
        deny!(SYS_ioperm, Eperm, "grants direct access to I/O ports"),
        deny!(
            SYS_modify_ldt,
            Eperm,
            "installs 16-bit segments, needed only by Wine and DOS emulators, and a recurring source of kernel bugs"
        ),
        deny!(
            SYS_uselib,
            Eperm,
            "loads an a.out library, a legacy kernel loader"
        ),
        deny!(
            SYS_personality,
            Eperm,
            ArgMatch::NoneOf {
                arg: 0,
                values: &[PERSONALITY_QUERY]
            },
            "changing the execution domain can, among other things, turn off address-space randomisation; the query personality(0xffffffff) stays allowed"
        ),
        // Terminals.
        deny!(
            SYS_ioctl,
            Eperm,
            ArgMatch::Equals {
                arg: 1,
                value: libc::TIOCSTI as u32
            },
            "TIOCSTI pushes characters into a terminal's input, so they run in the shell that owns the terminal"
        ),
        deny!(
            SYS_ioctl,
            Eperm,
            ArgMatch::Equals {
                arg: 1,
                value: libc::TIOCLINUX as u32
            },
            "TIOCLINUX can paste the console selection into a terminal's input, like TIOCSTI"
        ),
        // Sockets.
        deny!(
            SYS_socket,
            Eafnosupport,
            OTHER_SOCKET_FAMILY,
            "families other than AF_INET and AF_INET6: netlink, packet, vsock, bluetooth... reach kernel interfaces the network policy does not cover, and AF_UNIX could connect to host services whose sockets sit in a granted directory"
        ),
        deny!(
            SYS_socketpair,
            Eafnosupport,
            OTHER_SOCKETPAIR_FAMILY,
            "socket pairs of any family but AF_UNIX (see socket)"
        ),
        deny!(
            SYS_listen,
            Eperm,
            "listening serves no one (nothing outside the cell can reach it), and listen() on an unbound TCP socket binds an ephemeral port without the bind hook Landlock checks; the egress proxy's listener is made by the init before the filter"
        ),
    ];

    pub(super) fn build(rules: &[DenyRule]) -> Result<CellFilter, SeccompError> {
        if rules.is_empty() {
            return Err(SeccompError::NoRules);
        }
        check_consistent(rules)?;
        let program = compile(&plan(rules));
        if program.is_empty() || program.len() > BPF_MAXINSNS {
            return Err(SeccompError::ProgramLength { len: program.len() });
        }
        let summary = summarize(rules, &program);
        Ok(CellFilter { program, summary })
    }

    /// Numbers in range, one name per number, one action per syscall; conditions on
    /// arguments 0 to 5, with a mask or value list that is not empty.
    fn check_consistent(rules: &[DenyRule]) -> Result<(), SeccompError> {
        let mut seen: BTreeMap<i64, &DenyRule> = BTreeMap::new();
        for rule in rules {
            if !(0..i64::from(X32_SYSCALL_BIT)).contains(&rule.nr) {
                return Err(SeccompError::BadNumber {
                    syscall: rule.syscall,
                    nr: rule.nr,
                });
            }
            if let Some(when) = rule.when {
                check_condition(rule.syscall, when)?;
            }
            let Some(first) = seen.get(&rule.nr) else {
                seen.insert(rule.nr, rule);
                continue;
            };
            if first.syscall != rule.syscall {
                return Err(SeccompError::NameClash {
                    nr: rule.nr,
                    first: first.syscall,
                    second: rule.syscall,
                });
            }
            if first.action != rule.action {
                return Err(SeccompError::ConflictingActions {
                    syscall: rule.syscall,
                    first: first.action.name(),
                    second: rule.action.name(),
                });
            }
        }
        Ok(())
    }

    fn check_condition(syscall: &'static str, when: ArgMatch) -> Result<(), SeccompError> {
        let arg = arg_of(when);
        if arg > 5 {
            return Err(SeccompError::BadArgument { syscall, arg });
        }
        match when {
            ArgMatch::AnyBit { mask: 0, .. } => Err(SeccompError::EmptyMask { syscall }),
            ArgMatch::NoneOf { values: [], .. } => Err(SeccompError::EmptyValues { syscall }),
            _ => Ok(()),
        }
    }

    fn arg_of(when: ArgMatch) -> u8 {
        match when {
            ArgMatch::AnyBit { arg, .. }
            | ArgMatch::Equals { arg, .. }
            | ArgMatch::NoneOf { arg, .. } => arg,
        }
    }

    /// What the program does with one (denied) syscall number.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Outcome {
        /// Denied whatever the arguments.
        Deny(DenyAction),
        /// Denied when at least one of the conditions holds, allowed otherwise.
        DenyWhen(DenyAction, Vec<ArgMatch>),
    }

    impl Outcome {
        fn action(&self) -> DenyAction {
            match self {
                Self::Deny(action) | Self::DenyWhen(action, _) => *action,
            }
        }
    }

    /// The checked rules by syscall number. A rule without condition makes the syscall's
    /// other rules moot.
    fn plan(rules: &[DenyRule]) -> BTreeMap<u32, Outcome> {
        let mut plan: BTreeMap<u32, Outcome> = BTreeMap::new();
        for rule in rules {
            // check_consistent keeps every number in 0..0x40000000.
            let nr = rule.nr as u32;
            let outcome = plan
                .entry(nr)
                .or_insert(Outcome::DenyWhen(rule.action, Vec::new()));
            match (rule.when, &mut *outcome) {
                (None, _) => *outcome = Outcome::Deny(rule.action),
                (Some(when), Outcome::DenyWhen(_, conditions)) => conditions.push(when),
                (Some(_), Outcome::Deny(_)) => {}
            }
        }
        plan
    }

    /// Compiles the plan into one classic BPF program (`A` is the accumulator; `ret` answers;
    /// every jump goes forward):
    ///
    /// ```text
    /// 0   ld   [4]                        A = arch
    /// 1   jeq  #AUDIT_ARCH_X86_64, 3, 2
    /// 2   ret  #KILL_PROCESS              int 0x80 (i386) or any other ABI
    /// 3   ld   [0]                        A = nr, kept through the search
    /// 4   jset #0x40000000, 5, 6
    /// 5   ret  #KILL_PROCESS              x32
    /// 6   the search: a balanced binary tree of `jge #n`. The numbers 0 to 2^32-1 are cut
    ///     into ranges of numbers with the same target (allow, an errno, or an argument
    ///     check); each node splits the ranges left to tell apart in two halves, and a leaf
    ///     is no instruction but the jump to its range's target. Any number costs
    ///     ⌈log2(ranges)⌉ or one fewer jumps (the table: 80 ranges, 6 or 7).
    ///     the argument checks, one block per distinct set of conditions (chmod, fchmod,
    ///     creat, mknod and mkdir share one; clone and unshare another), each condition on
    ///     the low word of an argument; conditions on the same argument share its load:
    ///       AnyBit  ld [16+8i]; jset #mask, deny, next
    ///       Equals  ld [16+8i]; jeq #value, deny, next
    ///       NoneOf  ld [16+8i]; jeq #v1, next, +0; ...; jeq #vn, next, deny
    ///     where `next` is the syscall's next condition, or allow after its last one
    ///     ret  #ERRNO | e                 one per errno the rules use
    ///     ret  #ALLOW
    /// ```
    ///
    /// So an allowed syscall without argument rules runs 4 + the search + 1 instructions (12
    /// at most for the table), and never loads an argument: the kernel's cache then answers
    /// for it without running the program. jt and jf are 8 bits, so a target more than 255
    /// instructions ahead is reached through a hop placed right after the jump: a copy of the
    /// target when that is a `ret` (one instruction either way, and none more run), else
    /// `ja`, whose offset is 32 bits. The table's program (107 instructions) needs none.
    fn compile(plan: &BTreeMap<u32, Outcome>) -> Vec<sock_filter> {
        // Built back to front (see `Backwards`), so the blocks come in the reverse of the
        // order above.
        let mut b = Backwards::default();
        let allow = b.ret(libc::SECCOMP_RET_ALLOW);
        let mut deny: BTreeMap<DenyAction, Label> = BTreeMap::new();
        for action in plan.values().map(Outcome::action) {
            deny.entry(action).or_insert_with(|| {
                b.ret(libc::SECCOMP_RET_ERRNO | (action.errno() as u32 & libc::SECCOMP_RET_DATA))
            });
        }
        let mut checks: Vec<(&Outcome, Label)> = Vec::new();
        let mut targets: Vec<(u32, Label)> = Vec::new();
        for (&nr, outcome) in plan {
            let denied = deny[&outcome.action()];
            let target = match outcome {
                Outcome::Deny(_) => denied,
                Outcome::DenyWhen(_, conditions) => {
                    match checks.iter().find(|(o, _)| *o == outcome) {
                        Some(&(_, shared)) => shared,
                        None => {
                            let block = emit_checks(&mut b, conditions, denied, allow);
                            checks.push((outcome, block));
                            block
                        }
                    }
                }
            };
            targets.push((nr, target));
        }
        let (first, cuts) = ranges(&targets, allow);
        let search = emit_search(&mut b, first, &cuts);
        emit_prologue(&mut b, search);
        b.finish()
    }

    /// The ABI checks, lines 0 to 5 of the layout. A syscall passes only if it came in
    /// through the native x86_64 entry with a native number.
    ///
    /// Why x32 matters: x32 syscalls report `AUDIT_ARCH_X86_64` like native ones, with the
    /// number ORed with 0x40000000. Without the bit test, `mount | 0x40000000` would fall in
    /// the search's last range (allowed) on a kernel built with x32 support. (Some negative
    /// numbers, -1 among them, have the bit too and are killed; the kernel would answer
    /// ENOSYS to those anyway.)
    fn emit_prologue(b: &mut Backwards, search: Label) -> Label {
        let kill = libc::SECCOMP_RET_KILL_PROCESS;
        let x32 = b.ret(kill);
        let _ = b.jump(JSET_K, X32_SYSCALL_BIT, x32, search);
        let load_nr = b.load(OFFSET_NR);
        let other_abi = b.ret(kill);
        let _ = b.jump(JEQ_K, AUDIT_ARCH_X86_64, load_nr, other_abi);
        b.load(OFFSET_ARCH)
    }

    /// The number line 0 to 2^32-1 cut into ranges of numbers with the same target: the
    /// target of the range that starts at 0, then the `(first number, target)` of each
    /// other range in increasing order. Neighbours have different targets; numbers without
    /// a rule go to `allow`.
    fn ranges(targets: &[(u32, Label)], allow: Label) -> (Label, Vec<(u32, Label)>) {
        let mut ranges: Vec<(u32, Label)> = vec![(0, allow)];
        let mut start = |first: u32, target: Label| match ranges.last_mut() {
            // The previous range would be empty: it gives way.
            Some(last) if last.0 == first => last.1 = target,
            _ => ranges.push((first, target)),
        };
        for &(nr, target) in targets {
            start(nr, target);
            // nr < 0x40000000: no overflow.
            start(nr + 1, allow);
        }
        ranges.dedup_by(|later, earlier| later.1 == earlier.1);
        let cuts = ranges.split_off(1);
        (ranges.first().map_or(allow, |r| r.1), cuts)
    }

    /// The search among a range whose target is `first` and the ranges that follow it,
    /// starting at the numbers of `cuts`; returns its first instruction (or, with no cut,
    /// `first` itself).
    fn emit_search(b: &mut Backwards, first: Label, cuts: &[(u32, Label)]) -> Label {
        let (below, rest) = cuts.split_at(cuts.len() / 2);
        let Some((&(middle, target), above)) = rest.split_first() else {
            return first;
        };
        // The node falls through to the lower half and jumps over it to the upper half.
        let upper = emit_search(b, target, above);
        let lower = emit_search(b, first, below);
        b.jump(JGE_K, middle, upper, lower)
    }

    /// The argument checks of one syscall: `deny` when any condition holds, else `allow`.
    fn emit_checks(b: &mut Backwards, conditions: &[ArgMatch], deny: Label, allow: Label) -> Label {
        let mut by_arg: BTreeMap<u8, Vec<ArgMatch>> = BTreeMap::new();
        for &c in conditions {
            by_arg.entry(arg_of(c)).or_default().push(c);
        }
        let mut next = allow;
        for (&arg, conditions) in by_arg.iter().rev() {
            for &c in conditions.iter().rev() {
                next = emit_condition(b, c, deny, next);
            }
            next = b.load(arg_low_word(arg));
        }
        next
    }

    /// One condition on the argument in A: to `deny` if it holds, else on to `next`.
    fn emit_condition(b: &mut Backwards, when: ArgMatch, deny: Label, next: Label) -> Label {
        match when {
            ArgMatch::AnyBit { mask, .. } => b.jump(JSET_K, mask, deny, next),
            ArgMatch::Equals { value, .. } => b.jump(JEQ_K, value, deny, next),
            ArgMatch::NoneOf { values, .. } => {
                // A listed value goes on to `next`; after the last comparison, deny.
                let mut otherwise = deny;
                for &v in values.iter().rev() {
                    otherwise = b.jump(JEQ_K, v, next, otherwise);
                }
                otherwise
            }
        }
    }

    /// An instruction of a program under construction: its index in `Backwards::reversed`,
    /// fixed once emitted.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Label(usize);

    /// A program built from its last instruction to its first. Classic BPF only jumps
    /// forward, so every target already exists when a jump to it is emitted, and its offset
    /// is known then and never changes: no second pass, no fix-ups.
    #[derive(Debug, Default)]
    struct Backwards {
        reversed: Vec<sock_filter>,
    }

    impl Backwards {
        fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> Label {
            self.reversed.push(sock_filter { code, jt, jf, k });
            Label(self.reversed.len() - 1)
        }

        fn ret(&mut self, k: u32) -> Label {
            self.push(RET_K, 0, 0, k)
        }

        fn load(&mut self, offset: u32) -> Label {
            self.push(LD_W_ABS, 0, 0, offset)
        }

        /// How many instructions the next one emitted must skip to reach `to`.
        fn distance(&self, to: Label) -> usize {
            self.reversed.len() - 1 - to.0
        }

        /// A conditional jump: to `jt` if the test holds, else to `jf`.
        fn jump(&mut self, code: u16, k: u32, mut jt: Label, mut jf: Label) -> Label {
            loop {
                match (
                    u8::try_from(self.distance(jt)),
                    u8::try_from(self.distance(jf)),
                ) {
                    (Ok(t), Ok(f)) => return self.push(code, t, f, k),
                    // A hop lands right after the jump; it moves the other target one
                    // further, which the next round checks.
                    (Err(_), _) => jt = self.hop(jt),
                    (_, Err(_)) => jf = self.hop(jf),
                }
            }
        }

        /// An instruction that leads to `to`: a copy of it if it is a `ret`, else `ja`.
        fn hop(&mut self, to: Label) -> Label {
            let target = &self.reversed[to.0];
            if target.code == RET_K {
                let k = target.k;
                return self.ret(k);
            }
            // Beyond u32 the program is far over BPF_MAXINSNS, which build refuses.
            let k = u32::try_from(self.distance(to)).unwrap_or(u32::MAX);
            self.push(JA, 0, 0, k)
        }

        fn finish(mut self) -> Vec<sock_filter> {
            self.reversed.reverse();
            self.reversed
        }
    }

    /// Counts for the summary, from the rules as given.
    fn summarize(rules: &[DenyRule], program: &[sock_filter]) -> FilterSummary {
        let mut per_action: BTreeMap<DenyAction, usize> = BTreeMap::new();
        for r in rules {
            *per_action.entry(r.action).or_default() += 1;
        }
        FilterSummary {
            arch: "x86_64",
            rules: rules.len(),
            syscalls: rules.iter().map(|r| r.nr).collect::<BTreeSet<_>>().len(),
            errno_rules: per_action
                .into_iter()
                .map(|(action, rules)| ActionCount {
                    errno: action.name(),
                    rules,
                })
                .collect(),
            kill_on: &["32-bit", "x32"],
            programs: 1,
            instructions: program.len(),
        }
    }
}

/// What the integration tests need from the crate's `sys` module: forking, probing syscalls,
/// exec. Not part of the API.
#[doc(hidden)]
pub mod testing {
    pub use crate::sys::{
        CHILD_PANICKED, ChildExit, ExecArgv, Probe, exec, no_new_privs, probe, run_in_child,
        seccomp_filter_count, seccomp_mode, set_no_new_privs,
    };
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::x86_64::{
        AUDIT_ARCH_X86_64, JA, JEQ_K, JGE_K, JSET_K, LD_W_ABS, OFFSET_ARCH, OFFSET_NR, RET_K,
        X32_SYSCALL_BIT, arg_low_word,
    };
    use super::*;

    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    /// linux/audit.h: `EM_386 (3) | __AUDIT_ARCH_LE`, what `int 0x80` reports.
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;

    fn errno(e: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e as u32
    }

    /// A fake `struct seccomp_data`.
    #[derive(Clone, Copy, Debug)]
    struct Data {
        nr: i32,
        arch: u32,
        ip: u64,
        args: [u64; 6],
    }

    impl Data {
        fn native(nr: i64, args: [u64; 6]) -> Self {
            Self {
                nr: nr as i32,
                arch: AUDIT_ARCH_X86_64,
                ip: 0x7fff_dead_beef,
                args,
            }
        }

        /// The 32-bit word at byte offset `k`, as `BPF_LD | BPF_W | BPF_ABS` loads it (host
        /// order, little-endian here).
        fn word(&self, k: u32) -> u32 {
            assert!(
                k.is_multiple_of(4) && k < 64,
                "load at {k}: the kernel only allows aligned loads inside seccomp_data"
            );
            let half = |v: u64, high: bool| if high { (v >> 32) as u32 } else { v as u32 };
            match k {
                0 => self.nr as u32,
                4 => self.arch,
                8 | 12 => half(self.ip, k == 12),
                _ => {
                    let off = k - 16;
                    half(self.args[(off / 8) as usize], off % 8 == 4)
                }
            }
        }
    }

    /// What one run of a program did.
    #[derive(Clone, Copy, Debug)]
    struct Trace {
        answer: u32,
        /// Instructions executed, the `ret` included.
        steps: usize,
        /// Whether it loaded anything but nr and arch. A run that did not cannot depend on
        /// the arguments, so the kernel's cache can answer for it.
        read_args: bool,
    }

    /// Runs one classic BPF program over `d`, as the kernel would. Supports the opcodes the
    /// compiler emits; any other opcode fails the test, and so does running off the end.
    fn trace(program: &[sock_filter], d: &Data) -> Trace {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        let mut read_args = false;
        for steps in 1.. {
            let ins = &program[pc];
            pc += 1;
            let skip = |cond: bool| usize::from(if cond { ins.jt } else { ins.jf });
            match ins.code {
                LD_W_ABS => {
                    read_args |= ins.k >= 8;
                    a = d.word(ins.k);
                }
                JA => pc += ins.k as usize,
                JEQ_K => pc += skip(a == ins.k),
                JGE_K => pc += skip(a >= ins.k),
                JSET_K => pc += skip(a & ins.k != 0),
                RET_K => {
                    return Trace {
                        answer: ins.k,
                        steps,
                        read_args,
                    };
                }
                code => panic!("opcode {code:#x} at {} is not supported here", pc - 1),
            }
        }
        unreachable!("a program has fewer than usize::MAX instructions")
    }

    fn run(program: &[sock_filter], d: &Data) -> u32 {
        trace(program, d).answer
    }

    /// What the filter should answer, straight from the table.
    fn expected(rules: &[DenyRule], d: &Data) -> u32 {
        if d.arch != AUDIT_ARCH_X86_64 || d.nr as u32 & X32_SYSCALL_BIT != 0 {
            return KILL;
        }
        rules
            .iter()
            .find(|r| r.nr == i64::from(d.nr) && r.when.is_none_or(|w| w.matches(&d.args)))
            .map_or(ALLOW, |r| errno(r.action.errno()))
    }

    fn filter() -> CellFilter {
        build(deny_rules()).expect("the cell's filter builds")
    }

    fn answer(nr: i64, args: [u64; 6]) -> u32 {
        run(filter().program(), &Data::native(nr, args))
    }

    fn rules_for(name: &str) -> Vec<&'static DenyRule> {
        deny_rules().iter().filter(|r| r.syscall == name).collect()
    }

    /// The syscalls the issue lists, each of which must be in the table.
    const ISSUE_LIST: &[&str] = &[
        "clone3",
        "clone",
        "unshare",
        "setns",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "userfaultfd",
        "memfd_create",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "request_key",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "swapon",
        "swapoff",
        "reboot",
        "clock_settime",
        "clock_adjtime",
        "settimeofday",
        "adjtimex",
        "personality",
        "acct",
        "quotactl",
        "quotactl_fd",
        "open_by_handle_at",
        "name_to_handle_at",
        "syslog",
        "iopl",
        "ioperm",
        "vhangup",
        "uselib",
        "lookup_dcookie",
        "kcmp",
        "pidfd_getfd",
        "ioctl",
        "socket",
        "socketpair",
    ];

    #[test]
    fn every_listed_syscall_is_in_the_table_with_a_reason() {
        for name in ISSUE_LIST {
            assert!(
                !rules_for(name).is_empty(),
                "{name} is not in the deny list"
            );
        }
        for r in deny_rules() {
            assert!(!r.reason.trim().is_empty(), "{} has no reason", r.syscall);
            assert!(!r.syscall.starts_with("SYS_") && !r.syscall.is_empty());
        }
        // Spot-check that names and numbers come from the same identifier.
        assert_eq!(rules_for("mount")[0].nr, libc::SYS_mount);
        assert_eq!(rules_for("open_tree_attr")[0].nr, 467);
    }

    #[test]
    fn no_syscall_has_two_actions_or_duplicate_rules() {
        let mut seen: Vec<&DenyRule> = Vec::new();
        for r in deny_rules() {
            for s in &seen {
                if s.nr == r.nr {
                    assert_eq!(s.syscall, r.syscall, "number {} has two names", r.nr);
                    assert_eq!(s.action, r.action, "{} has two actions", r.syscall);
                    assert_ne!(s.when, r.when, "{} is listed twice", r.syscall);
                    assert!(
                        s.when.is_some() && r.when.is_some(),
                        "{} is denied outright and also conditionally",
                        r.syscall
                    );
                }
            }
            seen.push(r);
        }
    }

    #[test]
    fn clone3_fails_with_enosys_so_libc_falls_back_to_clone() {
        let rules = rules_for("clone3");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].action, DenyAction::Enosys);
        assert_eq!(rules[0].when, None);
        assert_eq!(answer(libc::SYS_clone3, [0; 6]), errno(libc::ENOSYS));
    }

    #[test]
    fn ioctl_rules_compare_only_the_low_32_bits() {
        let rules = rules_for("ioctl");
        let values: Vec<_> = rules.iter().map(|r| r.when).collect();
        assert_eq!(
            values,
            [
                Some(ArgMatch::Equals {
                    arg: 1,
                    value: libc::TIOCSTI as u32
                }),
                Some(ArgMatch::Equals {
                    arg: 1,
                    value: libc::TIOCLINUX as u32
                }),
            ]
        );
        // The compiled program loads only the low word of the request (offset 16 + 8 = 24),
        // never the high one (28).
        let filter = filter();
        let p = filter.program();
        assert!(p.iter().any(|i| i.code == LD_W_ABS && i.k == 24));
        assert!(!p.iter().any(|i| i.code == LD_W_ABS && i.k == 28));
        for high in [0u64, 1 << 32, 0xffff_ffff_0000_0000] {
            for req in [libc::TIOCSTI, libc::TIOCLINUX] {
                assert_eq!(
                    answer(libc::SYS_ioctl, [0, high | req, 0, 0, 0, 0]),
                    errno(libc::EPERM),
                    "ioctl {req:#x} with high bits {high:#x}"
                );
            }
            assert_eq!(
                answer(libc::SYS_ioctl, [0, high | libc::TCGETS, 0, 0, 0, 0]),
                ALLOW
            );
        }
    }

    #[test]
    fn clone_and_unshare_deny_each_namespace_flag_and_nothing_else() {
        let ns = [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWTIME,
        ];
        let fork = libc::SIGCHLD | libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID;
        let thread = libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID;
        for nr in [libc::SYS_clone, libc::SYS_unshare] {
            for flag in ns {
                for base in [0, fork, thread] {
                    let flags = (base | flag) as u64;
                    assert_eq!(answer(nr, [flags, 0, 0, 0, 0, 0]), errno(libc::EPERM));
                    // High bits do not hide the flag.
                    let flags = flags | 0xffff_0000_0000_0000;
                    assert_eq!(answer(nr, [flags, 0, 0, 0, 0, 0]), errno(libc::EPERM));
                }
            }
            for flags in [0, fork, thread, libc::CLONE_FILES | libc::CLONE_FS] {
                assert_eq!(
                    answer(nr, [flags as u64, 0, 0, 0, 0, 0]),
                    ALLOW,
                    "{flags:#x}"
                );
            }
        }
    }

    #[test]
    fn listen_is_refused() {
        assert_eq!(
            answer(libc::SYS_listen, [3, 128, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
    }

    #[test]
    fn sockets_only_of_inet_and_inet6_pairs_only_of_unix() {
        for (nr, allowed, denied) in [
            (
                libc::SYS_socket,
                &[libc::AF_INET, libc::AF_INET6][..],
                libc::AF_UNIX,
            ),
            (libc::SYS_socketpair, &[libc::AF_UNIX][..], libc::AF_INET),
        ] {
            assert_eq!(
                answer(nr, [denied as u64, 1, 0, 0, 0, 0]),
                errno(libc::EAFNOSUPPORT),
                "{nr} {denied}"
            );
            for &family in allowed {
                let family = family as u64;
                assert_eq!(answer(nr, [family, 1, 0, 0, 0, 0]), ALLOW);
                // The kernel reads an int; high bits change nothing.
                assert_eq!(answer(nr, [family | 1 << 40, 1, 0, 0, 0, 0]), ALLOW);
            }
            for family in [
                libc::AF_UNSPEC,
                libc::AF_NETLINK,
                libc::AF_PACKET,
                libc::AF_VSOCK,
                libc::AF_ALG,
                libc::AF_BLUETOOTH,
                libc::AF_KEY,
                libc::AF_XDP,
            ] {
                assert_eq!(
                    answer(nr, [family as u64, 3, 0, 0, 0, 0]),
                    errno(libc::EAFNOSUPPORT),
                    "family {family}"
                );
            }
        }
    }

    #[test]
    fn personality_query_allowed_changes_denied() {
        let nr = libc::SYS_personality;
        assert_eq!(answer(nr, [0xffff_ffff, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(answer(nr, [0x0040_0000, 0, 0, 0, 0, 0]), errno(libc::EPERM)); // ADDR_NO_RANDOMIZE
        assert_eq!(answer(nr, [0, 0, 0, 0, 0, 0]), errno(libc::EPERM));
    }

    #[test]
    fn program_starts_with_the_abi_checks() {
        let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
        let filter = filter();
        assert_eq!(
            filter.program()[..6],
            [
                ins(LD_W_ABS, 0, 0, OFFSET_ARCH),
                ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
                ins(RET_K, 0, 0, KILL),
                ins(LD_W_ABS, 0, 0, OFFSET_NR),
                ins(JSET_K, 0, 1, X32_SYSCALL_BIT),
                ins(RET_K, 0, 0, KILL),
            ]
        );
    }

    #[test]
    fn abi_checks_kill_32_bit_and_x32_entry() {
        let filter = filter();
        let p = filter.program();
        let native = Data::native(libc::SYS_getpid, [0; 6]);
        assert_eq!(run(p, &native), ALLOW);
        // int 0x80: the i386 ABI, whatever the number (mount among them).
        for nr in [20, 0, 1, 11, 26, libc::SYS_mount as i32, 0x7fff_ffff] {
            let d = Data {
                arch: AUDIT_ARCH_I386,
                nr,
                ..native
            };
            assert_eq!(run(p, &d), KILL, "i386 syscall {nr}");
        }
        // Any arch value but native x86_64.
        for arch in [
            0,
            AUDIT_ARCH_X86_64 ^ 1,
            0xc000_00b7, /* aarch64 */
            u32::MAX,
        ] {
            assert_eq!(run(p, &Data { arch, ..native }), KILL);
        }
        // x32: native arch, number with bit 30 set; kill wins over the errno mount would get.
        for nr in [39, 0, libc::SYS_mount as i32, 512, 547] {
            let d = Data {
                nr: nr | X32_SYSCALL_BIT as i32,
                ..native
            };
            assert_eq!(run(p, &d), KILL, "x32 syscall {nr}");
        }
        assert_eq!(run(p, &Data { nr: -1, ..native }), KILL);
    }

    /// The checks of the kernel's `bpf_check_classic` and `seccomp_check_filter` that apply
    /// to our programs: length, jumps inside the program, a return at the end, aligned
    /// loads inside `seccomp_data`; and only opcodes the kernel's seccomp cache emulator
    /// knows.
    fn assert_loadable(p: &[sock_filter]) {
        assert!(
            (1..=BPF_MAXINSNS).contains(&p.len()),
            "{} instructions",
            p.len()
        );
        assert_eq!(p[p.len() - 1].code, RET_K, "the program ends without ret");
        for (pc, i) in p.iter().enumerate() {
            let next = pc + 1;
            match i.code {
                JA => assert!(next + (i.k as usize) < p.len(), "ja out of range at {pc}"),
                JEQ_K | JGE_K | JSET_K => {
                    assert!(
                        next + usize::from(i.jt) < p.len(),
                        "jt out of range at {pc}"
                    );
                    assert!(
                        next + usize::from(i.jf) < p.len(),
                        "jf out of range at {pc}"
                    );
                }
                LD_W_ABS => assert!(i.k.is_multiple_of(4) && i.k < 64, "load at {}", i.k),
                RET_K => {}
                code => panic!("opcode {code:#x} at {pc}"),
            }
        }
    }

    #[test]
    fn program_passes_the_kernel_loader_checks() {
        assert_loadable(filter().program());
        assert_loadable(build(&synthetic_rules()).expect("builds").program());
    }

    /// Argument vectors that exercise every condition of `rules`: each value a condition
    /// tests, its neighbours, each bit of a mask alone, the mask's complement; with and
    /// without the high half set, the other arguments all zero or all ones.
    fn argument_patterns(rules: &[DenyRule]) -> Vec<[u64; 6]> {
        let mut values: Vec<(u8, u32)> = Vec::new();
        for when in rules.iter().filter_map(|r| r.when) {
            match when {
                ArgMatch::AnyBit { arg, mask } => {
                    values.extend(
                        (0..32)
                            .map(|i| 1u32 << i)
                            .filter(|b| mask & b != 0)
                            .map(|b| (arg, b)),
                    );
                    values.extend([(arg, mask), (arg, !mask)]);
                }
                ArgMatch::Equals { arg, value } => values.extend(
                    [
                        value,
                        value ^ 1,
                        value.wrapping_add(1),
                        value.wrapping_sub(1),
                    ]
                    .map(|v| (arg, v)),
                ),
                ArgMatch::NoneOf {
                    arg,
                    values: listed,
                } => {
                    for &v in listed {
                        values.extend([v, v ^ 1, v.wrapping_add(1)].map(|v| (arg, v)));
                    }
                }
            }
        }
        let mut patterns = vec![[0; 6], [u64::MAX; 6]];
        for (arg, v) in values {
            for high in [0, 0xffff_ffff_0000_0000, 1 << 32] {
                for others in [0, u64::MAX] {
                    let mut args = [others; 6];
                    args[usize::from(arg)] = high | u64::from(v);
                    patterns.push(args);
                }
            }
        }
        patterns
    }

    /// Every syscall number 0 to 599 with every argument pattern, through the native, x32 and
    /// i386 entries.
    fn assert_agrees_on_every_number(rules: &[DenyRule], program: &[sock_filter]) -> usize {
        let patterns = argument_patterns(rules);
        let mut runs = 0;
        for nr in 0..600 {
            for &args in &patterns {
                let native = Data::native(nr, args);
                let x32 = Data {
                    nr: native.nr | X32_SYSCALL_BIT as i32,
                    ..native
                };
                let i386 = Data {
                    arch: AUDIT_ARCH_I386,
                    ..native
                };
                for d in [native, x32, i386] {
                    assert_eq!(run(program, &d), expected(rules, &d), "{d:?}");
                    runs += 1;
                }
            }
        }
        runs
    }

    /// The compiled program against the table read as plain Rust: every native syscall
    /// number with arguments that exercise each rule, and many pseudo-random `seccomp_data`.
    #[test]
    fn compiled_program_agrees_with_the_table() {
        let rules = deny_rules();
        let filter = filter();
        let program = filter.program();
        let runs = assert_agrees_on_every_number(rules, program);
        assert!(runs > 100_000, "{runs} runs");
        // xorshift64*, fixed seed: reproducible.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let interesting = [
            libc::TIOCSTI,
            libc::TIOCLINUX,
            libc::TCGETS,
            libc::AF_UNIX as u64,
            libc::AF_INET as u64,
            libc::AF_INET6 as u64,
            libc::AF_NETLINK as u64,
            libc::CLONE_NEWUSER as u64,
            libc::CLONE_NEWTIME as u64,
            libc::SIGCHLD as u64,
            0o6000,
            0o4755,
            0o2755,
            0o644,
            0xffff_ffff,
            0,
        ];
        for _ in 0..200_000 {
            let r = next();
            let nr = match r % 4 {
                0 => rules[(r >> 8) as usize % rules.len()].nr as i32,
                1 => (r >> 8) as i32 & 0x1ff,
                2 => (r >> 8) as i32,
                _ => rules[(r >> 8) as usize % rules.len()].nr as i32 | X32_SYSCALL_BIT as i32,
            };
            let arch = if r >> 60 == 0 {
                AUDIT_ARCH_I386
            } else {
                AUDIT_ARCH_X86_64
            };
            let mut args = [0u64; 6];
            for a in &mut args {
                let v = next();
                *a = match v % 3 {
                    0 => interesting[(v >> 8) as usize % interesting.len()] | (v >> 40 << 32),
                    1 => v >> 32,
                    _ => v,
                };
            }
            let d = Data {
                nr,
                arch,
                ip: next(),
                args,
            };
            assert_eq!(run(program, &d), expected(rules, &d), "{d:?}");
        }
    }

    /// 400 syscalls with two conditions each, all different: a program of more than 1,000
    /// instructions, whose search jumps to argument checks far beyond jt/jf's 255.
    fn synthetic_rules() -> Vec<DenyRule> {
        let actions = [
            DenyAction::Eperm,
            DenyAction::Enosys,
            DenyAction::Eafnosupport,
        ];
        let mut rules = Vec::new();
        for nr in 0..400u32 {
            let base = DenyRule {
                syscall: "synthetic",
                nr: i64::from(nr) * 3 / 2,
                action: actions[nr as usize % 3],
                when: None,
                reason: "test",
            };
            let arg = (nr % 6) as u8;
            rules.push(DenyRule {
                when: Some(ArgMatch::Equals { arg, value: nr }),
                ..base
            });
            rules.push(DenyRule {
                when: Some(ArgMatch::AnyBit {
                    arg: (arg + 1) % 6,
                    mask: 1 << (nr % 32),
                }),
                ..base
            });
        }
        rules
    }

    #[test]
    fn far_targets_are_reached_through_hops() {
        let rules = synthetic_rules();
        let filter = build(&rules).expect("builds");
        let p = filter.program();
        assert!(p.len() > 1000, "{} instructions", p.len());
        assert!(
            p.iter().any(|i| i.code == JA),
            "no ja: the test no longer needs a far jump"
        );
        assert_loadable(p);
        for nr in 0..600 {
            for arg in 0..6 {
                for v in [0u64, 1, 2, 399, 400, 1 << 5, 1 << 31, 0x1_0000_0007] {
                    let mut args = [0; 6];
                    args[arg] = v;
                    let d = Data::native(nr, args);
                    assert_eq!(run(p, &d), expected(&rules, &d), "{d:?}");
                }
            }
        }
    }

    #[test]
    fn build_refuses_bad_tables() {
        let mount = *rules_for("mount")[0];
        assert!(matches!(build(&[]), Err(SeccompError::NoRules)));
        let other = DenyRule {
            action: DenyAction::Enosys,
            ..mount
        };
        assert!(matches!(
            build(&[mount, other]),
            Err(SeccompError::ConflictingActions { .. })
        ));
        let renamed = DenyRule {
            syscall: "not_mount",
            ..mount
        };
        assert!(matches!(
            build(&[mount, renamed]),
            Err(SeccompError::NameClash { .. })
        ));
        for nr in [-1, i64::from(X32_SYSCALL_BIT) | 165, 1 << 40] {
            assert!(matches!(
                build(&[DenyRule { nr, ..mount }]),
                Err(SeccompError::BadNumber { .. })
            ));
        }
        let empty = DenyRule {
            when: Some(ArgMatch::AnyBit { arg: 0, mask: 0 }),
            ..mount
        };
        assert!(matches!(
            build(&[empty]),
            Err(SeccompError::EmptyMask { .. })
        ));
        let no_values = DenyRule {
            when: Some(ArgMatch::NoneOf {
                arg: 0,
                values: &[],
            }),
            ..mount
        };
        assert!(matches!(
            build(&[no_values]),
            Err(SeccompError::EmptyValues { .. })
        ));
        let bad_arg = DenyRule {
            when: Some(ArgMatch::Equals { arg: 6, value: 1 }),
            ..mount
        };
        assert!(matches!(
            build(&[bad_arg]),
            Err(SeccompError::BadArgument { arg: 6, .. })
        ));
    }

    #[test]
    fn unconditional_rule_wins_over_a_conditional_one_for_the_same_syscall() {
        let mount = *rules_for("mount")[0];
        let narrow = DenyRule {
            when: Some(ArgMatch::Equals { arg: 3, value: 7 }),
            ..mount
        };
        for rules in [[narrow, mount], [mount, narrow]] {
            let f = build(&rules).expect("builds");
            let d = Data::native(libc::SYS_mount, [0; 6]);
            assert_eq!(run(f.program(), &d), errno(libc::EPERM));
        }
    }

    #[test]
    fn a_syscall_with_several_rules_is_allowed_only_when_none_matches() {
        // openat's mode (arg 3) and a made-up flags rule (arg 2), ioctl's two requests.
        let openat = *rules_for("openat")[0];
        let flags = DenyRule {
            when: Some(ArgMatch::Equals {
                arg: 2,
                value: 0o100,
            }),
            ..openat
        };
        let filter = build(&[openat, flags]).expect("builds");
        let p = filter.program();
        let nr = libc::SYS_openat;
        assert_eq!(run(p, &Data::native(nr, [0, 0, 0, 0o644, 0, 0])), ALLOW);
        assert_eq!(
            run(p, &Data::native(nr, [0, 0, 0o100, 0o644, 0, 0])),
            errno(libc::EPERM)
        );
        assert_eq!(
            run(p, &Data::native(nr, [0, 0, 0, 0o4755, 0, 0])),
            errno(libc::EPERM)
        );
        assert_eq!(
            run(p, &Data::native(nr, [0, 0, 0o100, 0o2755, 0, 0])),
            errno(libc::EPERM)
        );
        let nr = libc::SYS_ioctl;
        for (request, want) in [
            (libc::TIOCSTI, errno(libc::EPERM)),
            (libc::TIOCLINUX, errno(libc::EPERM)),
            (libc::TCGETS, ALLOW),
        ] {
            assert_eq!(answer(nr, [0, request, 0, 0, 0, 0]), want, "{request:#x}");
        }
    }

    #[test]
    fn no_argument_high_word_is_ever_loaded() {
        let filter = filter();
        for ins in filter.program().iter().filter(|i| i.code == LD_W_ABS) {
            assert!(
                [OFFSET_NR, OFFSET_ARCH].contains(&ins.k)
                    || (0..6).any(|a| ins.k == arg_low_word(a)),
                "load at {}",
                ins.k
            );
        }
    }

    /// Instructions run per syscall, printed (`cargo test -p skillcell-sandbox-linux
    /// hot_path -- --nocapture`): 4 for the ABI checks, the search, then the `ret`, plus the
    /// argument checks for the few syscalls that have them. Syscalls without argument rules
    /// never load an argument, so the kernel's cache (Linux 5.11+) answers them without
    /// running the program at all.
    #[test]
    fn hot_path_instruction_counts() {
        let filter = filter();
        let p = filter.program();
        let count = |nr: i64, args: [u64; 6]| trace(p, &Data::native(nr, args)).steps;
        let conditional: Vec<i64> = deny_rules()
            .iter()
            .filter(|r| r.when.is_some())
            .map(|r| r.nr)
            .collect();
        let mut worst = 0;
        for nr in 0..600 {
            let t = trace(p, &Data::native(nr, [0; 6]));
            if !conditional.contains(&nr) {
                assert!(!t.read_args, "syscall {nr} loads an argument");
                worst = worst.max(t.steps);
            }
        }
        let read = count(libc::SYS_read, [0; 6]);
        let getppid = count(libc::SYS_getppid, [0; 6]);
        let openat = count(libc::SYS_openat, [0, 0, 0, 0o644, 0, 0]);
        let ioctl = count(libc::SYS_ioctl, [1, libc::TCGETS, 0, 0, 0, 0]);
        let fork = count(libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]);
        let socket = count(libc::SYS_socket, [libc::AF_INET6 as u64, 1, 0, 0, 0, 0]);
        println!(
            "{} instructions; run per call: read {read}, getppid {getppid}, openat {openat}, \
             ioctl(TCGETS) {ioctl}, clone(fork) {fork}, socket(AF_INET6) {socket}; \
             worst syscall without argument rules {worst}",
            p.len()
        );
        assert!(worst <= 12, "{worst} instructions on the hot path");
        assert!(openat <= worst + 2 && ioctl <= worst + 3);
    }

    #[test]
    fn summary_says_what_is_enforced() {
        let f = filter();
        let s = f.summary();
        assert_eq!(s.rules, deny_rules().len());
        assert_eq!(s.programs, 1);
        assert_eq!(s.instructions, f.program().len());
        let line = s.to_string();
        assert!(line.starts_with(&format!(
            "x86_64; {} rules on {} syscalls (EPERM ",
            s.rules, s.syscalls
        )));
        assert!(line.ends_with(&format!(
            "ENOSYS 3, EAFNOSUPPORT 2); kill on 32-bit and x32 entry; 1 program, {} instructions",
            s.instructions
        )));
    }
}
