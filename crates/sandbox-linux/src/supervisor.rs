//! The host side of a run: start the cell's init, hand it the spec, feed stdin, cap stdout and
//! stderr, enforce the wall clock and the cell-wide CPU budget, and report.
//!
//! A run is two calls. [`PreparedCell::prepare`] must be called while the process is
//! single-threaded and before it restricts itself: it creates the run's cgroups and clones the
//! init into new user, mount, pid, net, ipc and uts namespaces, where it waits for its spec.
//! The caller may then restrict itself (Landlock forbids mounting, so the mounts must be made by
//! a process that is not yet restricted: the init was cloned before), decide, and call
//! [`PreparedCell::run`]. Dropping a prepared cell kills it.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use skillcell_sandbox::{
    CELL_GID, CELL_UID, CellSpec, Denial, EnforcementReport, Layer, LimitHit, Outcome, Usage,
};

use crate::cgroup::{CgroupError, RunCgroup};
use crate::launch::{self, LinuxCell, fds};
use crate::seccomp;
use crate::sys::cell::{self as sys, ChildStatus, Forked};

/// Why a cell could not be prepared or run. Nothing of the skill ran.
#[derive(Debug, thiserror::Error)]
pub enum CellError {
    #[error("{what} is unavailable ({detail}); the cell cannot be built. Run `skillcell doctor`")]
    Unavailable { what: &'static str, detail: String },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("cell launch failed at {step}: {source}")]
    Io {
        step: &'static str,
        source: io::Error,
    },
    #[error("the cell spec is invalid: {0}")]
    Spec(String),
}

fn io_step(step: &'static str) -> impl FnOnce(io::Error) -> CellError {
    move |source| CellError::Io { step, source }
}

/// Namespaces every cell gets (the cgroup namespace is entered by the init once it is in its
/// run cgroup).
const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

/// Signals that interrupt a run from outside.
const INTERRUPTS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Largest spec the init accepts.
const MAX_SPEC: usize = 16 << 20;

/// Blocks the signals that interrupt a run (SIGINT, SIGTERM, SIGHUP, SIGQUIT) in the calling
/// thread. Call it before starting threads that live during a run (the egress proxy, its audit
/// writer): they inherit the mask, so such a signal reaches the run's signalfd (the cell is
/// killed, the run reported and audited) instead of killing the process in another thread.
pub fn block_interrupts() -> Result<(), CellError> {
    sys::block_signals(&INTERRUPTS).map_err(io_step("block signals"))
}

/// The interrupting signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT) of an in-process run: blocked
/// in the calling thread (and every thread it starts afterwards) and read, without waiting,
/// from a signalfd. Start it before any thread that lives during the run. Dropped, it unblocks
/// them in the calling thread again, whose mask it was: one that arrived and was not read is
/// delivered then (and ends the process, as it would have without the watch).
#[derive(Debug)]
pub struct InterruptWatch {
    fd: OwnedFd,
}

impl Drop for InterruptWatch {
    fn drop(&mut self) {
        let _ = sys::unblock_signals(&INTERRUPTS);
    }
}

impl InterruptWatch {
    pub fn start() -> Result<Self, CellError> {
        let fd = sys::signalfd_for(&INTERRUPTS).map_err(io_step("signalfd"))?;
        Ok(Self { fd })
    }

    /// The name of a signal received since the last call (`SIGINT`), if any.
    pub fn received(&self) -> Option<String> {
        sys::read_signalfd(self.fd.as_raw_fd()).map(sys::signal_name)
    }
}

/// A cell whose init is waiting for its spec.
#[derive(Debug)]
pub struct PreparedCell {
    init: i32,
    pidfd: OwnedFd,
    spec_w: Option<OwnedFd>,
    report_r: OwnedFd,
    stdin_w: Option<OwnedFd>,
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
    /// The supervisor's end of a Unix socket on which the init hands over the egress proxy's
    /// listening socket, made inside the cell's network namespace.
    ctrl: Option<OwnedFd>,
    /// Where that listening socket goes once it arrives.
    listener_to: Option<mpsc::Sender<OwnedFd>>,
    cgroup: Option<RunCgroup>,
    landlock_abi: i32,
    seccomp_summary: String,
    run_id: String,
    /// CLOCK_MONOTONIC µs when `prepare` began, and the supervisor's own marks.
    t0: u64,
    /// The signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) the caller interrupted the run with.
    interrupted: Option<i32>,
    marks: Vec<(String, u64)>,
    done: bool,
}

impl PreparedCell {
    /// Creates the run's cgroups and clones the init. Fails closed when Landlock, seccomp,
    /// namespaces or cgroups are missing. Call while single-threaded.
    pub fn prepare() -> Result<Self, CellError> {
        let t0 = sys::monotonic_us();
        let landlock_abi = crate::sys::landlock_abi().map_err(|e| CellError::Unavailable {
            what: "Landlock",
            detail: e.to_string(),
        })?;
        let programs =
            seccomp::build(seccomp::deny_rules()).map_err(|e| CellError::Unavailable {
                what: "the seccomp filter",
                detail: e.to_string(),
            })?;
        let seccomp_summary = programs.summary().to_string();
        // The supervisor serves the egress proxy: many sockets at once must not exhaust its
        // descriptors (the cell sets its own RLIMIT_NOFILE before exec).
        let _ = sys::raise_nofile_soft_limit();
        let mut nonce = [0u8; 4];
        sys::random_bytes(&mut nonce).map_err(io_step("random"))?;
        let run_id = format!(
            "run-{}-{:08x}",
            std::process::id(),
            u32::from_le_bytes(nonce)
        );
        let cgroup = RunCgroup::create(&run_id)?;
        let (spec_r, spec_w) = sys::pipe().map_err(io_step("pipe"))?;
        let (report_r, report_w) = sys::pipe().map_err(io_step("pipe"))?;
        let (stdin_r, stdin_w) = sys::pipe().map_err(io_step("pipe"))?;
        let (stdout_r, stdout_w) = sys::pipe().map_err(io_step("pipe"))?;
        let (stderr_r, stderr_w) = sys::pipe().map_err(io_step("pipe"))?;
        let (ctrl, ctrl_child) = std::os::unix::net::UnixStream::pair()
            .map(|(a, b)| (OwnedFd::from(a), OwnedFd::from(b)))
            .map_err(io_step("socketpair"))?;
        sys::set_non_dumpable().map_err(io_step("prctl"))?;
        let uid = sys::ids();
        let unavailable = |e: io::Error| CellError::Unavailable {
            what: "user, mount, pid, net, ipc and uts namespaces",
            detail: e.to_string(),
        };
        // Born in the v2 cgroup when there is one (no migration: a v2 migration waits for an
        // RCU grace period), else cloned and moved.
        let unified = match cgroup.unified() {
            Some(d) => Some(std::fs::File::open(d).map_err(io_step("open the run's cgroup"))?),
            None => None,
        };
        // The init joins the other (v1) cgroups itself, first thing: a migration waits for an
        // RCU grace period, and this way it overlaps with the supervisor's resolve and plan.
        let mut join = cgroup.procs_files(unified.is_some());
        let (forked, pidfd) = match &unified {
            Some(dir) => match sys::clone3_into_cgroup(NAMESPACES, dir.as_raw_fd()) {
                Ok((f, pidfd)) => (f, pidfd),
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    join = cgroup.procs_files(false);
                    (
                        sys::clone_into_namespaces(NAMESPACES).map_err(unavailable)?,
                        None,
                    )
                }
                Err(e) => return Err(unavailable(e)),
            },
            None => (
                sys::clone_into_namespaces(NAMESPACES).map_err(unavailable)?,
                None,
            ),
        };
        drop(unified);
        match forked {
            Forked::Child => {
                // The init: keep only its own pipe ends, at fixed numbers, and never return.
                let child_fds = [
                    report_w.into_raw_fd(),
                    stdin_r.into_raw_fd(),
                    stdout_w.into_raw_fd(),
                    stderr_w.into_raw_fd(),
                    spec_r.into_raw_fd(),
                    ctrl_child.into_raw_fd(),
                ];
                for fd in [spec_w, report_r, stdin_w, stdout_r, stderr_r, ctrl] {
                    let _ = fd.into_raw_fd();
                }
                // A panic must never unwind into the caller's frames in this forked copy: it
                // ends the init, and the supervisor reports a cell that could not be built.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    init_main(child_fds, programs, &join)
                }));
                sys::exit_now(125)
            }
            Forked::Parent(pid) => {
                drop((spec_r, report_w, stdin_r, stdout_w, stderr_w, ctrl_child));
                let mut cell = Self {
                    init: pid,
                    pidfd: match pidfd {
                        Some(fd) => fd,
                        None => sys::pidfd_open(pid).map_err(io_step("pidfd_open"))?,
                    },
                    spec_w: Some(spec_w),
                    report_r,
                    stdin_w: Some(stdin_w),
                    stdout_r,
                    stderr_r,
                    ctrl: Some(ctrl),
                    listener_to: None,
                    cgroup: Some(cgroup),
                    landlock_abi,
                    seccomp_summary,
                    run_id,
                    t0,
                    interrupted: None,
                    marks: Vec::new(),
                    done: false,
                };
                cell.map_ids(uid)?;
                cell.mark("prepared");
                Ok(cell)
            }
        }
    }

    /// Maps the caller's uid and gid to [`CELL_UID`]/[`CELL_GID`] inside, and nothing else:
    /// the cell has no root and cannot become anyone else.
    fn map_ids(&mut self, (uid, gid): (u32, u32)) -> Result<(), CellError> {
        let base = format!("/proc/{}", self.init);
        std::fs::write(format!("{base}/setgroups"), "deny").map_err(io_step("setgroups"))?;
        std::fs::write(format!("{base}/uid_map"), format!("{CELL_UID} {uid} 1\n"))
            .map_err(io_step("uid_map"))?;
        std::fs::write(format!("{base}/gid_map"), format!("{CELL_GID} {gid} 1\n"))
            .map_err(io_step("gid_map"))?;
        Ok(())
    }

    /// Paths the caller must keep writable if it restricts itself before [`run`](Self::run).
    pub fn writable_paths(&self) -> Vec<std::path::PathBuf> {
        self.cgroup
            .as_ref()
            .map(RunCgroup::writable_paths)
            .unwrap_or_default()
    }

    /// Directories in which the caller must still be able to remove a directory (the run
    /// cgroups' parents) if it restricts itself before [`run`](Self::run).
    pub fn removable_in(&self) -> Vec<std::path::PathBuf> {
        self.cgroup
            .as_ref()
            .map(RunCgroup::removable_in)
            .unwrap_or_default()
    }

    /// Where the egress proxy's listening socket goes when the spec asks for one
    /// ([`CellSpec::proxy_port`]): the init makes it inside the cell's network namespace after
    /// bringing loopback up, before the skill starts, and the supervisor forwards it here.
    /// Connections the skill makes before anyone accepts wait in the socket's backlog.
    pub fn send_listener_to(&mut self, to: mpsc::Sender<OwnedFd>) {
        self.listener_to = Some(to);
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn mark(&mut self, step: &str) {
        let now = sys::monotonic_us();
        self.marks
            .push((step.to_owned(), now.saturating_sub(self.t0)));
    }

    /// Sends the spec, feeds `stdin`, passes output through (each stream capped at
    /// `spec.limits.output_bytes`), and waits for the end of the run.
    ///
    /// `out` and `err` are written by two threads of their own, so a caller that does not
    /// read its output never stalls the loop that enforces the wall clock and the CPU budget.
    /// The run's report comes back once both have taken everything kept.
    pub fn run(
        self,
        spec: &CellSpec,
        stdin: &[u8],
        out: &mut (dyn Write + Send),
        err: &mut (dyn Write + Send),
    ) -> Result<EnforcementReport, CellError> {
        // Interrupting signals become readable events for the loop (blocked in this thread
        // before the writer threads inherit the mask): the cell is killed and the run still
        // reported and audited, instead of the supervisor dying with nothing written.
        let signals = sys::signalfd_for(&INTERRUPTS).map_err(io_step("signalfd"))?;
        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>();
        let (err_tx, err_rx) = mpsc::channel::<Vec<u8>>();
        std::thread::scope(|scope| {
            fn drain(rx: mpsc::Receiver<Vec<u8>>, sink: &mut (dyn Write + Send)) {
                for chunk in rx {
                    // A sink that fails (a closed terminal) must not stop the draining.
                    let _ = sink.write_all(&chunk);
                }
                let _ = sink.flush();
            }
            scope.spawn(move || drain(out_rx, out));
            scope.spawn(move || drain(err_rx, err));
            // Dropping the senders when `supervise` returns ends both writers.
            self.supervise(spec, stdin, out_tx, err_tx, &signals)
        })
    }

    fn supervise(
        mut self,
        spec: &CellSpec,
        stdin: &[u8],
        out: mpsc::Sender<Vec<u8>>,
        err: mpsc::Sender<Vec<u8>>,
        signals: &OwnedFd,
    ) -> Result<EnforcementReport, CellError> {
        let started = Instant::now();
        if let Some(cg) = &self.cgroup {
            cg.set_limits(&spec.limits)?;
        }
        let json = serde_json::to_vec(spec).map_err(|e| CellError::Spec(e.to_string()))?;
        if json.len() > MAX_SPEC {
            return Err(CellError::Spec("larger than 16 MiB".into()));
        }
        if let Some(w) = self.spec_w.take() {
            sys::write_all(w.as_raw_fd(), &json).map_err(io_step("send the spec"))?;
        }
        self.mark("spec_sent");
        for fd in [&self.stdout_r, &self.stderr_r, &self.report_r] {
            sys::set_nonblocking(fd.as_raw_fd()).map_err(io_step("pipes"))?;
        }
        if let Some(w) = &self.stdin_w {
            sys::set_nonblocking(w.as_raw_fd()).map_err(io_step("pipes"))?;
        }
        let cap = usize::try_from(spec.limits.output_bytes).unwrap_or(usize::MAX);
        let mut stdout = Stream::new(cap);
        let mut stderr = Stream::new(cap);
        let mut report = Vec::new();
        let mut input = stdin;
        if input.is_empty() {
            self.stdin_w = None;
        }
        let deadline = started + Duration::from_millis(spec.limits.wall_ms);
        let mut killed_for: Option<LimitHit> = None;
        let mut init_gone = false;
        let mut buf = vec![0u8; 64 * 1024];
        // The cgroup's CPU time is a file read: every 50 ms, not on every wake-up (an output
        // flood wakes the loop thousands of times a second).
        let mut cpu_checked = started;
        loop {
            let now = Instant::now();
            if killed_for.is_none() {
                let cpu_over = now.duration_since(cpu_checked) >= Duration::from_millis(50) && {
                    cpu_checked = now;
                    self.cgroup
                        .as_ref()
                        .and_then(RunCgroup::cpu_ms)
                        .is_some_and(|ms| ms > spec.limits.cpu_ms)
                };
                if now >= deadline {
                    killed_for = Some(LimitHit::Wall);
                    self.kill();
                } else if cpu_over {
                    killed_for = Some(LimitHit::Cpu);
                    self.kill();
                }
            }
            if init_gone && stdout.eof && stderr.eof {
                break;
            }
            let timeout = if init_gone {
                // Everything in the cell is dead; the pipes are closing.
                200
            } else {
                deadline
                    .saturating_duration_since(now)
                    .as_millis()
                    .clamp(1, 50) as i32
            };
            let mut pfds = vec![
                pollfd(self.pidfd.as_raw_fd(), libc::POLLIN),
                pollfd(
                    if stdout.eof {
                        -1
                    } else {
                        self.stdout_r.as_raw_fd()
                    },
                    libc::POLLIN,
                ),
                pollfd(
                    if stderr.eof {
                        -1
                    } else {
                        self.stderr_r.as_raw_fd()
                    },
                    libc::POLLIN,
                ),
                pollfd(self.report_r.as_raw_fd(), libc::POLLIN),
                pollfd(
                    self.stdin_w.as_ref().map_or(-1, |w| w.as_raw_fd()),
                    libc::POLLOUT,
                ),
                pollfd(signals.as_raw_fd(), libc::POLLIN),
                pollfd(
                    self.ctrl.as_ref().map_or(-1, |c| c.as_raw_fd()),
                    libc::POLLIN,
                ),
            ];
            let ready = sys::poll(&mut pfds, timeout).map_err(io_step("poll"))?;
            if ready == 0 && init_gone {
                // Pipes still open after the init died: something holds them; stop waiting.
                break;
            }
            if pfds[0].revents != 0 && !init_gone {
                init_gone = true;
                self.mark("exited");
            }
            if pfds[5].revents != 0
                && let Some(sig) = sys::read_signalfd(signals.as_raw_fd())
                && self.interrupted.is_none()
            {
                self.interrupted = Some(sig);
                self.kill();
            }
            if pfds[6].revents != 0
                && let Some(ctrl) = self.ctrl.take()
            {
                // One message at most: the listener, or nothing when the init closed its end.
                if let Ok(Some(listener)) = sys::recv_fd(ctrl.as_fd())
                    && let Some(to) = self.listener_to.take()
                {
                    let _ = to.send(listener);
                }
            }
            if pfds[1].revents != 0 {
                stdout.pump(self.stdout_r.as_raw_fd(), &mut buf, &out);
            }
            if pfds[2].revents != 0 {
                stderr.pump(self.stderr_r.as_raw_fd(), &mut buf, &err);
            }
            if pfds[3].revents != 0 {
                while let Ok(n) = sys::read(self.report_r.as_raw_fd(), &mut buf) {
                    if n == 0 {
                        break;
                    }
                    // Kept up to 64 KiB, drained beyond (so poll does not fire forever).
                    if report.len() < 64 * 1024 {
                        report.extend_from_slice(&buf[..n]);
                    }
                }
            }
            if pfds[4].revents != 0 {
                if let Some(w) = &self.stdin_w {
                    match sys::write(w.as_raw_fd(), &input[..input.len().min(64 * 1024)]) {
                        Ok(n) => input = &input[n..],
                        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                        Err(_) => input = &[],
                    }
                }
                if input.is_empty() {
                    self.stdin_w = None;
                }
            }
        }
        let init_status = sys::wait(self.init, false).map_err(io_step("wait"))?;
        self.done = true;
        let wall_ms = started.elapsed().as_millis() as u64;
        Ok(self.finish(
            spec,
            &report,
            init_status,
            killed_for,
            stdout,
            stderr,
            wall_ms,
        ))
    }

    fn kill(&self) {
        sys::kill(self.init, libc::SIGKILL);
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; the pieces of one report"
    )]
    fn finish(
        &mut self,
        spec: &CellSpec,
        report: &[u8],
        init_status: Option<(i32, ChildStatus)>,
        killed_for: Option<LimitHit>,
        stdout: Stream,
        stderr: Stream,
        wall_ms: u64,
    ) -> EnforcementReport {
        let text = String::from_utf8_lossy(report);
        let mut outcome = None;
        let mut landlock_status = "unknown".to_owned();
        for line in text.lines() {
            let mut parts = line.splitn(3, '\t');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("fail"), Some(step), Some(message)) if outcome.is_none() => {
                    outcome = Some(Outcome::SetupFailed {
                        step: step.to_owned(),
                        message: message.to_owned(),
                    });
                }
                (Some("landlock"), Some(status), _) => landlock_status = status.to_owned(),
                (Some("marks"), Some(_), _) => {
                    for m in line.split('\t').skip(1) {
                        if let Some((step, us)) = m.split_once('=')
                            && let Ok(us) = us.parse::<u64>()
                        {
                            self.marks
                                .push((step.to_owned(), us.saturating_sub(self.t0)));
                        }
                    }
                }
                (Some("exit"), Some(code), _) if outcome.is_none() => {
                    outcome = code.parse().ok().map(|code| Outcome::Exited { code });
                }
                (Some("signal"), Some(sig), _) if outcome.is_none() => {
                    outcome = sig.parse().ok().map(|signal| Outcome::Signaled {
                        signal,
                        name: sys::signal_name(signal),
                    });
                }
                _ => {}
            }
        }
        let outcome = outcome.unwrap_or_else(|| match init_status {
            // The init died before reporting: we killed it (a limit), or it crashed.
            Some((_, ChildStatus::Signaled(signal))) => Outcome::Signaled {
                signal,
                name: sys::signal_name(signal),
            },
            Some((_, ChildStatus::Exited(code))) => Outcome::SetupFailed {
                step: "init".into(),
                message: format!("the cell's init exited with {code} before the skill ran"),
            },
            None => Outcome::SetupFailed {
                step: "init".into(),
                message: "the cell's init vanished".into(),
            },
        });
        let cg = self.cgroup.as_ref();
        let cpu_ms = cg.and_then(RunCgroup::cpu_ms).unwrap_or(0);
        let oom = cg.map_or(0, RunCgroup::oom_kills);
        let pids_refused = cg.map_or(0, RunCgroup::pids_refused);
        // Which limit killed the run, judged by what the kernel and the cgroup recorded, never
        // by the signal alone (a skill may SIGKILL itself). The hard RLIMIT_CPU kill comes
        // one second after the soft limit, so a CPU kill always shows the cell over budget.
        let limit_hit = killed_for.or(match &outcome {
            _ if oom > 0 => Some(LimitHit::Memory),
            Outcome::Signaled { signal, .. } if *signal == libc::SIGXCPU => Some(LimitHit::Cpu),
            Outcome::Signaled { signal, .. } if *signal == libc::SIGXFSZ => Some(LimitHit::Fsize),
            Outcome::Signaled { signal, .. }
                if *signal == libc::SIGKILL && cpu_ms >= spec.limits.cpu_ms =>
            {
                Some(LimitHit::Cpu)
            }
            _ => None,
        });
        let mut denials = Vec::new();
        let limits = &spec.limits;
        let mut deny = |code: &str, what: String, allow_with: String| {
            denials.push(Denial {
                code: code.into(),
                what,
                allow_with,
            })
        };
        if let Some(hit) = limit_hit {
            let (what, value) = match hit {
                LimitHit::Memory => ("memory", format!("{}", limits.memory_bytes)),
                LimitHit::Cpu => ("CPU time", format!("{}ms", limits.cpu_ms)),
                LimitHit::Wall => ("wall-clock time", format!("{}ms", limits.wall_ms)),
                LimitHit::Pids => ("processes", format!("{}", limits.pids)),
                LimitHit::Fsize => ("file size", format!("{}", limits.fsize_bytes)),
            };
            deny(
                &format!("{}_limit", hit.key()),
                format!("the run was killed when it exceeded its {what} limit ({value})"),
                format!("skillcell.limits: {}=<more>", hit.key()),
            );
        }
        if oom > 0 && limit_hit != Some(LimitHit::Memory) {
            deny(
                "memory_limit",
                format!(
                    "{oom} process(es) killed at the memory limit ({} bytes)",
                    limits.memory_bytes
                ),
                "skillcell.limits: memory=<more>".into(),
            );
        }
        if let Some(sig) = self.interrupted {
            deny(
                "interrupted",
                format!(
                    "the caller interrupted the run ({}); the cell was killed",
                    sys::signal_name(sig)
                ),
                "nothing in the contract: the interruption came from outside".into(),
            );
        }
        if pids_refused > 0 {
            deny(
                "pids_limit",
                format!(
                    "{pids_refused} fork(s) refused at the process limit ({})",
                    limits.pids
                ),
                "skillcell.limits: pids=<more>".into(),
            );
        }
        for (name, s) in [("stdout", &stdout), ("stderr", &stderr)] {
            if s.truncated {
                deny(
                    "output_truncated",
                    format!(
                        "{name} was cut at {} bytes ({} produced)",
                        limits.output_bytes, s.total
                    ),
                    "skillcell.limits: output=<more>".into(),
                );
            }
        }
        let cgroup = cg.map(RunCgroup::report).unwrap_or_default();
        let layer = |name: &str, detail: String| Layer {
            name: name.into(),
            status: "applied".into(),
            detail,
        };
        let setup_failed = matches!(outcome, Outcome::SetupFailed { .. });
        let layers = if setup_failed {
            Vec::new()
        } else {
            vec![
                layer("namespaces", "user (caller mapped to uid 1000), mount, pid, net (loopback only), ipc, uts, cgroup".into()),
                layer("filesystem", format!("pivot_root into a fresh read-only tmpfs; {} mounts; fresh /proc (pid subset); 5 device nodes; generated /etc", spec.mounts.len())),
                Layer {
                    name: "landlock".into(),
                    status: if landlock_status == "full" { "applied".into() } else { "partial".into() },
                    detail: format!("kernel ABI {}; {landlock_status}; exec allowlist of {} files; TCP bind denied, connect {}; signal and abstract-socket scopes", self.landlock_abi, spec.exec.len(), match spec.proxy_port { Some(p) => format!("only to the egress proxy (127.0.0.1:{p})"), None => "denied".into() }),
                },
                layer("seccomp", self.seccomp_summary.clone()),
                layer("capabilities", "effective, permitted, inheritable, bounding and ambient sets empty".into()),
                layer("no_new_privs", "set".into()),
                layer("session", "setsid: no controlling terminal; every descriptor above 2 closed".into()),
                layer("rlimits", format!("CPU {}s, DATA {}, NPROC {}, NOFILE {}, FSIZE {}, CORE 0", limits.cpu_ms.div_ceil(1000).max(1), limits.memory_bytes, limits.pids, limits.nofile, limits.fsize_bytes)),
                layer("cgroup", format!("{}: memory {}, pids {}", cgroup.version, limits.memory_bytes, limits.pids)),
                layer("environment", format!("{} variables, none inherited", spec.env.len())),
            ]
        };
        let memory_peak_bytes = cg.and_then(RunCgroup::memory_peak);
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.remove(Duration::from_secs(2));
        }
        let mut timings = std::mem::take(&mut self.marks);
        timings.sort_by_key(|(_, us)| *us);
        EnforcementReport {
            timings,
            layers,
            cgroup,
            landlock_abi: self.landlock_abi,
            limits: spec.limits.clone(),
            outcome,
            limit_hit,
            denials,
            usage: Usage {
                wall_ms,
                cpu_ms,
                memory_peak_bytes,
                stdout_bytes: stdout.total,
                stderr_bytes: stderr.total,
                stdout_truncated: stdout.truncated,
                stderr_truncated: stderr.truncated,
            },
        }
    }
}

impl Drop for PreparedCell {
    fn drop(&mut self) {
        if !self.done {
            sys::kill(self.init, libc::SIGKILL);
            let _ = sys::wait(self.init, false);
        }
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// One output stream: passes through up to `cap` bytes, then reads and drops the rest so
/// the cell never blocks on a full pipe.
struct Stream {
    cap: usize,
    total: u64,
    kept: usize,
    truncated: bool,
    eof: bool,
}

impl Stream {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            total: 0,
            kept: 0,
            truncated: false,
            eof: false,
        }
    }

    fn pump(&mut self, fd: RawFd, buf: &mut [u8], sink: &mpsc::Sender<Vec<u8>>) {
        loop {
            match sys::read(fd, buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => {
                    self.total += n as u64;
                    let room = self.cap - self.kept;
                    let keep = n.min(room);
                    if keep < n {
                        self.truncated = true;
                    }
                    if keep > 0 {
                        // The writer thread outlives the loop; a send cannot fail before.
                        let _ = sink.send(buf[..keep].to_vec());
                        self.kept += keep;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => {
                    self.eof = true;
                    return;
                }
            }
        }
    }
}

/// The cell's init (pid 1 of the new pid namespace). Never returns.
fn init_main(child_fds: [RawFd; 6], programs: seccomp::CellFilter, join: &[PathBuf]) -> ! {
    // If the supervisor dies, so does the init, and with it every process of the namespace.
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    // Out of the caller's session: the init never has the caller's terminal either.
    let _ = sys::setsid();
    // The init shares the supervisor's memory image: wipe the caller's command line and
    // environment so the skill cannot read them from /proc/1/cmdline.
    if sys::scrub_args_and_env().is_err() {
        sys::exit_now(125);
    }
    // Move the six descriptors to 3..=8 (through numbers above them, so none overwrites
    // another), then close everything else inherited from the supervisor.
    let mut high = [0; 6];
    for (i, fd) in child_fds.iter().enumerate() {
        match sys::dup_above(*fd, 100 + i as i32) {
            Ok(h) => high[i] = h,
            Err(_) => sys::exit_now(125),
        }
    }
    for (i, h) in high.iter().enumerate() {
        if sys::dup2(*h, 3 + i as i32).is_err() {
            sys::exit_now(125);
        }
    }
    if sys::close_from(9).is_err() {
        sys::exit_now(125);
    }
    const SPEC: RawFd = 7;
    const CTRL: RawFd = 8;
    let fail = |step: &str, message: &str| -> ! {
        let line = format!("fail\t{step}\t{}\n", message.replace(['\n', '\t'], " "));
        let _ = sys::write_all(fds::REPORT, line.as_bytes());
        sys::exit_now(125)
    };
    // Into the run's cgroups before anything of the skill exists ("0" is the writer itself).
    for procs in join {
        if let Err(e) = std::fs::write(procs, "0") {
            fail("cgroup", &format!("join {}: {e}", procs.display()));
        }
    }
    let mut json = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match sys::read(SPEC, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                json.extend_from_slice(&buf[..n]);
                if json.len() > MAX_SPEC {
                    fail("spec", "larger than 16 MiB");
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => fail("spec", &e.to_string()),
        }
    }
    if json.is_empty() {
        // The supervisor gave up before sending a spec (a refusal, or it died).
        sys::exit_now(0);
    }
    let spec: CellSpec = match serde_json::from_slice(&json) {
        Ok(s) => s,
        Err(e) => fail("spec", &e.to_string()),
    };
    let mut cell = LinuxCell::new(Some(programs));
    if let Err(e) = launch::build_cell(&mut cell, &spec) {
        fail(e.step, &e.message);
    }
    // The egress proxy's listener, made here because a socket keeps the network namespace it
    // was created in: the supervisor serves it from outside, and nothing of the proxy runs in
    // the cell. Then the control socket is closed, so the skill never holds either.
    if let Some(port) = spec.proxy_port {
        let listener = match std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)) {
            Ok(l) => l,
            Err(e) => fail("network", &format!("listen on 127.0.0.1:{port}: {e}")),
        };
        if let Err(e) = sys::send_fd_and_close(CTRL, listener.as_fd()) {
            fail("network", &format!("hand the proxy listener over: {e}"));
        }
    } else {
        sys::close_raw(CTRL);
    }
    cell.send_marks();
    if sys::block_all_signals().is_err() {
        fail("signals", "cannot block signals in the init");
    }
    let skill = match sys::fork_single_threaded() {
        Ok(Forked::Child) => {
            let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                launch::enter_and_exec(&mut cell, &spec)
            }));
            match e {
                Ok(e) => fail(e.step, &e.message),
                Err(_) => fail("exec", "the launch panicked before exec"),
            }
        }
        Ok(Forked::Parent(pid)) => pid,
        Err(e) => fail("fork", &e.to_string()),
    };
    // Only the skill holds its stdio pipes now; the init keeps nothing of the caller's either,
    // and from here on needs no privilege: it only waits, forwards signals and kills.
    let _ = sys::close_from(fds::REPORT + 1);
    sys::close_stdio();
    if sys::drop_all_capabilities().is_err() {
        sys::kill(skill, libc::SIGKILL);
        fail("capabilities", "the init could not drop its capabilities");
    }
    let mut skill_status = None;
    // The supervisor kills the cell at the wall limit; should it be stuck, the init does it
    // itself a second later.
    let deadline = sys::monotonic_us().saturating_add(
        spec.limits
            .wall_ms
            .saturating_add(1_000)
            .saturating_mul(1_000),
    );
    loop {
        let left_ms = deadline.saturating_sub(sys::monotonic_us()) / 1_000;
        let sig = match sys::wait_signal_timeout(left_ms) {
            Ok(Some(sig)) => sig,
            Ok(None) => {
                sys::kill(-1, libc::SIGKILL);
                continue;
            }
            Err(_) => continue,
        };
        if sig != libc::SIGCHLD {
            sys::kill(skill, sig);
            continue;
        }
        while let Ok(Some((pid, status))) = sys::wait(-1, true) {
            if pid == skill {
                skill_status = Some(status);
            }
        }
        if let Some(status) = skill_status {
            // The skill is done: nothing else of the cell may outlive it.
            sys::kill(-1, libc::SIGKILL);
            while let Ok(Some(_)) = sys::wait(-1, false) {}
            let line = match status {
                ChildStatus::Exited(code) => format!("exit\t{code}\n"),
                ChildStatus::Signaled(sig) => format!("signal\t{sig}\n"),
            };
            let line = format!("marks\treaped={}\n{line}", sys::monotonic_us());
            let _ = sys::write_all(fds::REPORT, line.as_bytes());
            sys::exit_now(0);
        }
    }
}
