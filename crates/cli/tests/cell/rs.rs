//! Section RS of ../shared/security-cases.md: resources. A skill that tries to starve the host
//! (memory, processes, threads, descriptors, CPU, time, disk, inodes, output) is stopped at the
//! limits its contract names. Every case is judged from the host: the usage the supervisor
//! read from the run's cgroups (`usage.memory_peak_bytes`, `usage.cpu_ms`), the host's process
//! table and /proc of the cell's processes while they run, `statfs` of the cell's scratch
//! tmpfs through /proc/PID/root, files in a write grant, the outcome and `limit_hit` the
//! supervisor reports, and the audit trail. Each category has a positive control: the same
//! skill within its limits succeeds.
//!
//! A zip bomb as the package itself is refused at install: `zip_bombs_are_refused` in
//! crates/developer/tests/refusals.rs.

use std::fs;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::lab::{BIN, Lab, PROBE_WAIT, Run, processes_with, token};

const MIB: u64 = 1 << 20;

/// How far above the memory limit the cgroup's peak may be read (page and kernel accounting
/// rounding); a broken limit overshoots by far more than this.
const MEMORY_SLACK: u64 = 2 * MIB;

fn usage(r: &Run) -> &serde_json::Value {
    &r.report()["usage"]
}

fn u64_of(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The codes of the report's denials.
fn denial_codes(report: &serde_json::Value) -> Vec<String> {
    report["denials"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The cell's processes other than its init: command line holds `token`, and the program is
/// not the skillcell binary (the supervisor and the init run it; the init's command line is
/// wiped anyway).
fn cell_processes(token: &str) -> Vec<u32> {
    let bin = fs::canonicalize(BIN).ok();
    processes_with(token)
        .into_iter()
        .filter(|pid| fs::read_link(format!("/proc/{pid}/exe")).ok() != bin)
        .collect()
}

/// Threads of one process, from /proc/PID/status (0 if it is gone).
fn threads_of(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Tasks (processes and threads) the cell holds as the host sees them: its init plus every
/// thread of the processes running the skill.
fn cell_tasks(token: &str) -> u64 {
    let skill: u64 = cell_processes(token).into_iter().map(threads_of).sum();
    if skill == 0 { 0 } else { skill + 1 }
}

/// Polls [`cell_tasks`] from the host until stopped, and returns the most it saw.
struct TaskWatch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl TaskWatch {
    fn start(token: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, t) = (stop.clone(), token.to_owned());
        let handle = thread::spawn(move || {
            let mut max = 0;
            while !s.load(Ordering::Relaxed) {
                max = max.max(cell_tasks(&t));
                thread::sleep(Duration::from_millis(5));
            }
            max
        });
        Self { stop, handle }
    }

    fn max(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("watch thread")
    }
}

/// `statfs` of a path, read by the host: (block size, blocks, free blocks, inodes, free inodes).
fn statfs(path: &str) -> (u64, u64, u64, u64, u64) {
    let out = Command::new("stat")
        .args(["-f", "-c", "%S %b %f %c %d", path])
        .output()
        .expect("stat -f");
    assert!(out.status.success(), "stat -f {path}: {out:?}");
    let v: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect();
    assert_eq!(v.len(), 5, "{out:?}");
    (v[0], v[1], v[2], v[3], v[4])
}

/// Free bytes of the host's /tmp.
/// The cell's `/tmp` (seen through the process `pid`) is a filesystem of its own, not the
/// host's `/tmp` (the device differs), and the host's `/tmp` holds nothing named `name`:
/// what the skill wrote there cannot have landed on the host. (A free-space comparison of
/// the host's `/tmp` is noise on a shared machine.)
fn assert_tmp_is_the_cells_own(pid: u32, name: &str) {
    use std::os::unix::fs::MetadataExt;
    let cell = fs::metadata(format!("/proc/{pid}/root/tmp")).expect("the cell's /tmp");
    let host = fs::metadata("/tmp").expect("the host's /tmp");
    assert_ne!(cell.dev(), host.dev(), "the cell's /tmp is the host's");
    assert!(
        fs::symlink_metadata(format!("/proc/{pid}/root/tmp/{name}")).is_ok(),
        "positive control: the cell's /tmp has {name}"
    );
    assert!(
        fs::symlink_metadata(format!("/tmp/{name}")).is_err(),
        "the host's /tmp got {name}"
    );
}

/// The run was stopped by the memory cgroup: the OOM killer's SIGKILL, reported as the memory
/// limit, and the peak the supervisor read from the cgroup never passed the limit.
fn assert_killed_at_memory_limit(r: &Run, limit: u64) {
    assert_eq!(r.outcome(), ("signaled", 9), "{r:?}");
    assert_eq!(r.limit_hit(), Some("memory"), "{r:?}");
    assert!(
        denial_codes(r.report()).contains(&"memory_limit".to_owned()),
        "{r:?}"
    );
    let peak = u64_of(&usage(r)["memory_peak_bytes"]);
    assert!(
        peak <= limit + MEMORY_SLACK,
        "peak {peak} above the limit {limit}"
    );
    // The bomb really pressed against the limit (the cgroup is what stopped it).
    assert!(
        peak >= limit - 8 * MIB,
        "peak {peak}: the bomb never reached the limit"
    );
}

// --- Memory ---------------------------------------------------------------------------------

/// 1 GiB in 16 MiB steps, every page touched.
const MEMORY_BOMB: &str = r#"
chunks = []
for _ in range(64):
    b = bytearray(16 << 20)
    for j in range(0, len(b), 4096):
        b[j] = 1
    chunks.append(b)
"#;

#[test]
fn a_memory_bomb_far_above_the_limit_is_refused_and_never_exceeds_it() {
    let lab = Lab::new();
    lab.python(
        "mem-bomb",
        &["skillcell.limits: memory=64M wall=20s"],
        MEMORY_BOMB,
    );
    let r = lab.run(&["mem-bomb"]);
    // RLIMIT_DATA (= memory) refuses the allocation that would cross it: malloc fails and
    // Python raises MemoryError, uncaught, so the interpreter exits with 1. Neither the cgroup
    // nor the wall clock had to step in.
    assert_eq!(r.outcome(), ("exited", 1), "{r:?}");
    assert_eq!(r.limit_hit(), None, "{r:?}");
    assert!(
        r.json["stderr"]
            .as_str()
            .unwrap_or_default()
            .trim_end()
            .ends_with("MemoryError"),
        "the interpreter should report the refused allocation: {r:?}"
    );
    let peak = u64_of(&usage(&r)["memory_peak_bytes"]);
    assert!(
        peak <= 64 * MIB + MEMORY_SLACK,
        "peak {peak} above the 64M limit"
    );
    assert!(peak >= 32 * MIB, "peak {peak}: the bomb never allocated");
}

#[test]
fn sixteen_megabytes_under_a_64m_limit_are_allocated() {
    let lab = Lab::new();
    lab.python(
        "mem-ok",
        &["skillcell.limits: memory=64M wall=20s"],
        "b = bytearray(16 << 20)\nfor j in range(0, len(b), 4096):\n    b[j] = 1\n",
    );
    let r = lab.run(&["mem-ok"]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    assert_eq!(r.limit_hit(), None, "{r:?}");
    let peak = u64_of(&usage(&r)["memory_peak_bytes"]);
    assert!(
        peak >= 16 * MIB,
        "peak {peak}: the 16 MiB were not counted by the cgroup"
    );
    assert!(peak <= 64 * MIB, "peak {peak}");
}

#[test]
fn shared_anonymous_memory_that_dodges_rlimit_data_is_killed_at_the_cgroup_limit() {
    // MAP_SHARED anonymous memory is shmem: RLIMIT_DATA does not count it, the cgroup does.
    let lab = Lab::new();
    lab.python(
        "shm-bomb",
        &["skillcell.limits: memory=64M wall=20s"],
        "import mmap\nm = mmap.mmap(-1, 256 << 20, flags=mmap.MAP_SHARED)\nfor j in range(0, len(m), 4096):\n    m[j] = 1\n",
    );
    let r = lab.run(&["shm-bomb"]);
    assert_killed_at_memory_limit(&r, 64 * MIB);
}

#[test]
fn memory_spread_over_four_processes_is_capped_by_the_cell_wide_cgroup() {
    // Each child stays under RLIMIT_DATA (64M per process) with 40M; the four together would
    // hold 160M. The parent holds nothing, so the OOM killer picks a child and the parent, which
    // waits for them, exits normally.
    let lab = Lab::new();
    lab.python(
        "mem-spread",
        &["skillcell.limits: memory=64M wall=20s"],
        r#"
import os, time
kids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        b = bytearray(40 << 20)
        for j in range(0, len(b), 4096):
            b[j] = 1
        time.sleep(1)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
"#,
    );
    let r = lab.run(&["mem-spread"]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    assert_eq!(r.limit_hit(), Some("memory"), "{r:?}");
    assert!(
        denial_codes(r.report()).contains(&"memory_limit".to_owned()),
        "{r:?}"
    );
    let peak = u64_of(&usage(&r)["memory_peak_bytes"]);
    assert!(
        peak <= 64 * MIB + MEMORY_SLACK,
        "peak {peak} above the 64M limit"
    );
}

#[test]
fn filling_a_scratch_tmpfs_larger_than_memory_is_killed_at_the_memory_limit() {
    // tmpfs pages are charged to the writer's memory cgroup and are not data of any process.
    // 32 files of 8 MiB (each under the default fsize of 16M) into a 512M scratch dir.
    let lab = Lab::new();
    lab.python(
        "tmpfs-bomb",
        &["skillcell.limits: memory=64M tmp=512M wall=20s"],
        "chunk = b'x' * (1 << 20)\nfor i in range(32):\n    with open(f'/tmp/fill-{i}', 'wb') as f:\n        for _ in range(8):\n            f.write(chunk)\n",
    );
    let r = lab.run(&["tmpfs-bomb"]);
    assert_killed_at_memory_limit(&r, 64 * MIB);
}

#[test]
fn a_memfd_bomb_is_refused_at_memfd_create() {
    // memfd_create is tmpfs without a mount (32 memfds of 8 MiB, all kept open, would dodge
    // RLIMIT_DATA like the scratch dir above). The cell's seccomp filter denies memfd_create
    // with ENOSYS (crates/sandbox-linux/src/seccomp.rs: a memfd could also be executed), so
    // the first call fails, Python raises OSError, uncaught, and exits with 1 before it holds
    // any memory. Were memfd_create allowed again, this case must become the OOM kill of
    // `assert_killed_at_memory_limit`, like MAP_SHARED and the scratch dir.
    let lab = Lab::new();
    lab.python(
        "memfd-bomb",
        &["skillcell.limits: memory=64M wall=20s"],
        "import os\nchunk = b'x' * (1 << 20)\nfds = []\nfor i in range(32):\n    fd = os.memfd_create(f'bomb-{i}')\n    fds.append(fd)\n    for _ in range(8):\n        os.write(fd, chunk)\n",
    );
    let r = lab.run(&["memfd-bomb"]);
    assert_eq!(r.outcome(), ("exited", 1), "{r:?}");
    assert_eq!(r.limit_hit(), None, "{r:?}");
    assert!(
        r.json["stderr"]
            .as_str()
            .unwrap_or_default()
            .trim_end()
            .ends_with("OSError: [Errno 38] Function not implemented"),
        "memfd_create should fail with ENOSYS: {r:?}"
    );
    let peak = u64_of(&usage(&r)["memory_peak_bytes"]);
    assert!(
        peak < 32 * MIB,
        "peak {peak}: memory was filled before the refusal"
    );
}

// --- Processes, threads, descriptors --------------------------------------------------------

/// Runs a probe that starts `bomb` (which stops trying after many refusals), prints READY and
/// waits; the host counts the cell's tasks during the whole run and checks it can still fork.
/// Returns the most tasks seen and the probe's report from the audit trail.
fn run_bomb(lab: &Lab, name: &str, limits: &str, bomb: &str) -> (u64, serde_json::Value) {
    lab.python(
        name,
        &["skillcell.fs.read: $CTL", limits],
        &format!("{PROBE_WAIT}\n{bomb}\nwait_for_host()\nos._exit(0)\n"),
    );
    let t = token(name);
    let watch = TaskWatch::start(&t);
    let p = lab.probe(name, &[], &t);
    // The host stays responsive: it can still start a process while the bomb holds its cap.
    let ok = Command::new("true").status().expect("the host can fork");
    assert!(ok.success());
    let at_cap = cell_tasks(&t);
    let out = p.finish();
    let max = watch.max().max(at_cap);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        cell_processes(&t).is_empty(),
        "{name}: processes left behind"
    );
    let report = lab.last_run_record(name)["details"]["report"].clone();
    // The bomb ended on its own once the host had looked: no time limit had to step in.
    assert_eq!(report["outcome"]["kind"], "exited", "{report}");
    assert_eq!(report["outcome"]["code"], 0, "{report}");
    assert!(report["limit_hit"].is_null(), "{report}");
    (max, report)
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit_and_the_host_stays_responsive() {
    let (max, report) = run_bomb(
        &Lab::new(),
        "fork-bomb",
        "skillcell.limits: pids=16 nofile=64 wall=20s",
        r#"
fails = 0
for _ in range(100000):
    try:
        pid = os.fork()
    except OSError:
        fails += 1
        if fails >= 200:
            break
        continue
    if pid == 0:
        time.sleep(60)
        os._exit(0)
"#,
    );
    assert!(max <= 16, "{max} tasks in a cell limited to 16");
    assert!(max >= 12, "{max} tasks: the bomb never forked");
    assert!(
        denial_codes(&report).contains(&"pids_limit".to_owned()),
        "{report}"
    );
}

#[test]
fn a_thread_bomb_stops_at_the_pids_limit() {
    let (max, report) = run_bomb(
        &Lab::new(),
        "thread-bomb",
        "skillcell.limits: pids=16 nofile=64 wall=20s",
        r#"
import threading
threading.stack_size(256 << 10)
fails = 0
for _ in range(100000):
    try:
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    except RuntimeError:
        fails += 1
        if fails >= 200:
            break
"#,
    );
    assert!(max <= 16, "{max} tasks in a cell limited to 16");
    assert!(max >= 12, "{max} tasks: the bomb never started threads");
    assert!(
        denial_codes(&report).contains(&"pids_limit".to_owned()),
        "{report}"
    );
}

#[test]
fn an_fd_bomb_stops_at_the_nofile_limit() {
    let lab = Lab::new();
    lab.python(
        "fd-bomb",
        &["skillcell.fs.read: $CTL", "skillcell.limits: pids=16 nofile=64 wall=20s"],
        &format!(
            "{PROBE_WAIT}\nfds = []\nwhile True:\n    try:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\n    except OSError:\n        break\nwait_for_host()\n"
        ),
    );
    let t = token("fd-bomb");
    let p = lab.probe("fd-bomb", &[], &t);
    let open = fs::read_dir(p.proc("fd")).expect("fd dir").count();
    let limits = fs::read_to_string(p.proc("limits")).expect("limits");
    let out = p.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(open <= 64, "{open} descriptors open with nofile=64");
    assert!(open >= 60, "{open} descriptors: the bomb never opened any");
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    assert_eq!(
        nofile
            .split_whitespace()
            .skip(3)
            .take(2)
            .collect::<Vec<_>>(),
        ["64", "64"],
        "{nofile}"
    );
}

#[test]
fn three_children_fork_under_a_pids_limit_of_16() {
    let lab = Lab::new();
    lab.python(
        "fork-ok",
        &[
            "skillcell.fs.write: $LOOT",
            "skillcell.limits: pids=16 wall=20s",
        ],
        r#"
import os
loot = os.environ["SKILLCELL_PATH_LOOT"]
kids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        open(os.path.join(loot, f"child-{i}"), "w").write(str(os.getpid()))
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
"#,
    );
    let loot = format!("LOOT={}", lab.s("loot"));
    let r = lab.run(&["fork-ok", "--path", &loot]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    for i in 0..3 {
        assert!(
            lab.path(&format!("loot/child-{i}")).exists(),
            "child {i} did not run"
        );
    }
    assert!(
        !denial_codes(r.report()).contains(&"pids_limit".to_owned()),
        "{r:?}"
    );
}

// --- CPU and time ---------------------------------------------------------------------------

#[test]
fn a_cpu_spin_ignoring_sigxcpu_is_killed_at_the_cpu_limit() {
    let lab = Lab::new();
    lab.python(
        "spin",
        &["skillcell.limits: cpu=1s wall=20s"],
        "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n",
    );
    let r = lab.run(&["spin"]);
    assert_eq!(r.outcome(), ("signaled", 9), "{r:?}");
    assert_eq!(r.limit_hit(), Some("cpu"), "{r:?}");
    let wall = u64_of(&usage(&r)["wall_ms"]);
    let cpu = u64_of(&usage(&r)["cpu_ms"]);
    // The CPU budget, not the wall clock (20 s), ended it.
    assert!(wall < 8_000, "wall {wall} ms: not stopped by the CPU limit");
    assert!((1_000..2_500).contains(&cpu), "cpu {cpu} ms");
}

#[test]
fn four_spinning_processes_are_stopped_by_the_cell_wide_cpu_budget() {
    // Each process's RLIMIT_CPU is 1 s (soft, ignored) and 2 s (hard): without the cgroup's
    // accounting the four together would burn 4 to 8 s of CPU before the kernel stepped in.
    let lab = Lab::new();
    lab.python(
        "spin4",
        &["skillcell.limits: cpu=1s wall=20s"],
        "import os, signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nfor _ in range(3):\n    if os.fork() == 0:\n        break\nwhile True:\n    pass\n",
    );
    let r = lab.run(&["spin4"]);
    assert_eq!(r.outcome(), ("signaled", 9), "{r:?}");
    assert_eq!(r.limit_hit(), Some("cpu"), "{r:?}");
    let wall = u64_of(&usage(&r)["wall_ms"]);
    let cpu = u64_of(&usage(&r)["cpu_ms"]);
    assert!(
        (1_000..2_500).contains(&cpu),
        "cpu {cpu} ms over all four processes"
    );
    assert!(wall < 8_000, "wall {wall} ms");
}

#[test]
fn an_oom_kill_under_a_one_second_cpu_limit_is_reported_as_memory_not_cpu() {
    // The report must name the limit that stopped the run, whatever the other limits are.
    let lab = Lab::new();
    lab.python(
        "shm-bomb-cpu1",
        &["skillcell.limits: memory=64M cpu=1s wall=20s"],
        "import mmap\nm = mmap.mmap(-1, 256 << 20, flags=mmap.MAP_SHARED)\nfor j in range(0, len(m), 4096):\n    m[j] = 1\n",
    );
    let r = lab.run(&["shm-bomb-cpu1"]);
    let cpu = u64_of(&usage(&r)["cpu_ms"]);
    assert!(
        cpu < 1_000,
        "cpu {cpu} ms: the bomb used its whole CPU budget"
    );
    assert!(
        !denial_codes(r.report()).contains(&"cpu_limit".to_owned()),
        "a run that used {cpu} ms of a 1 s budget is reported as killed at the CPU limit: {r:?}"
    );
    assert_killed_at_memory_limit(&r, 64 * MIB);
}

#[test]
fn a_skill_that_kills_itself_is_not_reported_as_hitting_the_cpu_limit() {
    let lab = Lab::new();
    lab.python(
        "self-kill",
        &["skillcell.limits: cpu=1s wall=20s"],
        "import os\nos.kill(os.getpid(), 9)\n",
    );
    let r = lab.run(&["self-kill"]);
    assert_eq!(r.outcome(), ("signaled", 9), "{r:?}");
    let cpu = u64_of(&usage(&r)["cpu_ms"]);
    assert!(cpu < 1_000, "cpu {cpu} ms");
    assert_eq!(
        r.limit_hit(),
        None,
        "a skill that used {cpu} ms of a 1 s budget and killed itself: {r:?}"
    );
    assert!(
        r.report()["denials"].as_array().is_some_and(Vec::is_empty),
        "{r:?}"
    );
}

#[test]
fn sleeping_forever_is_killed_at_the_wall_limit() {
    let lab = Lab::new();
    lab.python(
        "sleeper",
        &["skillcell.limits: wall=1s"],
        "import time\ntime.sleep(1e9)\n",
    );
    let r = lab.run(&["sleeper"]);
    assert_eq!(r.outcome(), ("signaled", 9), "{r:?}");
    assert_eq!(r.limit_hit(), Some("wall"), "{r:?}");
    let wall = u64_of(&usage(&r)["wall_ms"]);
    assert!((1_000..3_000).contains(&wall), "wall {wall} ms");
}

// --- Disk, inodes, file size ----------------------------------------------------------------

#[test]
fn filling_the_scratch_dir_stops_at_its_size_and_the_host_tmp_is_untouched() {
    let lab = Lab::new();
    lab.python(
        "disk-fill",
        &["skillcell.fs.read: $CTL", "skillcell.limits: tmp=8M wall=20s"],
        &format!(
            "{PROBE_WAIT}\nchunk = b'x' * (64 << 10)\nfd = os.open('/tmp/fill', os.O_WRONLY | os.O_CREAT)\ntry:\n    while True:\n        os.write(fd, chunk)\nexcept OSError:\n    pass\nwait_for_host()\n"
        ),
    );
    let t = token("disk-fill");
    let p = lab.probe("disk-fill", &[], &t);
    let (bsize, blocks, free, _, _) = statfs(&format!("/proc/{}/root/tmp", p.pid));
    assert_tmp_is_the_cells_own(p.pid, "fill");
    let out = p.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(bsize * blocks, 8 * MIB, "the scratch tmpfs is not 8M");
    assert_eq!(
        free, 0,
        "the writer stopped before the scratch dir was full"
    );
}

#[test]
fn creating_empty_files_stops_at_the_inode_cap() {
    let lab = Lab::new();
    lab.python(
        "inode-fill",
        &["skillcell.fs.read: $CTL", "skillcell.limits: tmp=8M wall=20s"],
        &format!(
            "{PROBE_WAIT}\ni = 0\ntry:\n    while True:\n        os.close(os.open(f'/tmp/e{{i}}', os.O_WRONLY | os.O_CREAT))\n        i += 1\nexcept OSError:\n    pass\nwait_for_host()\n"
        ),
    );
    let t = token("inode-fill");
    let p = lab.probe("inode-fill", &[], &t);
    let (_, _, _, inodes, free_inodes) = statfs(&format!("/proc/{}/root/tmp", p.pid));
    assert_tmp_is_the_cells_own(p.pid, "e0");
    let out = p.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The cell caps inodes at one per 4 KiB of tmp: 2048 for 8M.
    assert_eq!(inodes, 2048, "inode cap of an 8M scratch dir");
    assert_eq!(free_inodes, 0, "the loop stopped before the inodes ran out");
}

#[test]
fn python_writing_past_fsize_gets_efbig_and_the_file_stops_at_the_limit() {
    // Python ignores SIGXFSZ (the interpreter sets it to SIG_IGN at startup), so the kernel
    // answers EFBIG: the write that would cross 1M is cut at 1M, the next fails.
    let lab = Lab::new();
    lab.python(
        "fsize-py",
        &["skillcell.fs.read: $CTL", "skillcell.limits: fsize=1M wall=20s"],
        &format!(
            "{PROBE_WAIT}\nchunk = b'x' * (64 << 10)\nfd = os.open('/tmp/big', os.O_WRONLY | os.O_CREAT)\ntry:\n    for _ in range(32):\n        os.write(fd, chunk)\nexcept OSError:\n    pass\nwait_for_host()\n"
        ),
    );
    let t = token("fsize-py");
    let p = lab.probe("fsize-py", &[], &t);
    let size = fs::metadata(p.proc("root/tmp/big"))
        .expect("the file in the cell")
        .len();
    let out = p.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(size, MIB, "a 2M write under fsize=1M");
    // Not killed, so no limit was hit: the run went on and ended on its own.
    let rec = lab.last_run_record("fsize-py");
    assert_eq!(
        rec["details"]["report"]["outcome"]["kind"], "exited",
        "{rec}"
    );
    assert!(rec["details"]["report"]["limit_hit"].is_null(), "{rec}");
}

#[test]
fn a_shell_writing_past_fsize_is_killed_by_sigxfsz() {
    // bash keeps SIGXFSZ's default action: the kernel kills it at the limit.
    let lab = Lab::new();
    lab.install(
        "fsize-sh",
        &[
            "skillcell.entry: main.bash",
            "skillcell.fs.write: $LOOT",
            "skillcell.limits: fsize=1M wall=20s",
        ],
        &[(
            "main.bash",
            "s=$(printf '%65536s' '')\nfor ((i = 0; i < 32; i++)); do printf '%s' \"$s\"; done > \"$SKILLCELL_PATH_LOOT/big\"\n",
        )],
    );
    let loot = format!("LOOT={}", lab.s("loot"));
    let r = lab.run(&["fsize-sh", "--path", &loot]);
    assert_eq!(r.outcome(), ("signaled", 25), "{r:?}");
    assert_eq!(r.limit_hit(), Some("fsize"), "{r:?}");
    assert!(
        denial_codes(r.report()).contains(&"fsize_limit".to_owned()),
        "{r:?}"
    );
    let size = fs::metadata(lab.path("loot/big")).expect("big").len();
    assert_eq!(size, MIB, "the file grew past fsize=1M");
}

#[test]
fn a_file_under_fsize_is_written_whole() {
    let lab = Lab::new();
    lab.python(
        "fsize-ok",
        &["skillcell.fs.write: $LOOT", "skillcell.limits: fsize=1M wall=20s"],
        "import os\nwith open(os.path.join(os.environ['SKILLCELL_PATH_LOOT'], 'half'), 'wb') as f:\n    f.write(b'x' * (512 << 10))\n",
    );
    let loot = format!("LOOT={}", lab.s("loot"));
    let r = lab.run(&["fsize-ok", "--path", &loot]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    assert_eq!(
        fs::metadata(lab.path("loot/half")).expect("half").len(),
        512 << 10
    );
}

// --- Output -------------------------------------------------------------------------------

#[test]
fn a_gigabyte_on_stdout_and_stderr_at_once_is_capped_without_deadlock() {
    // One thread, alternating streams: if the supervisor stopped reading either pipe once it
    // had its 64K, the skill would block on that pipe for good.
    let lab = Lab::new();
    lab.python(
        "flood",
        &["skillcell.limits: output=64K wall=30s"],
        r#"
import os
chunks = {1: b"o" * (1 << 20), 2: b"e" * (1 << 20)}
for _ in range(1024):
    for fd, chunk in chunks.items():
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
"#,
    );
    let r = lab.run(&["flood"]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    assert_eq!(r.limit_hit(), None);
    let u = usage(&r);
    assert!(u64_of(&u["wall_ms"]) < 20_000, "{u}");
    for (stream, byte) in [("stdout", 'o'), ("stderr", 'e')] {
        let kept = r.json[stream].as_str().expect(stream);
        assert!(
            kept.len() <= 64 << 10,
            "{stream}: {} bytes kept",
            kept.len()
        );
        assert!(
            kept.chars().all(|c| c == byte),
            "{stream} holds something else"
        );
        assert_eq!(u[format!("{stream}_truncated")], true, "{u}");
        assert_eq!(u64_of(&u[format!("{stream}_bytes")]), 1 << 30, "{u}");
    }
    let codes = denial_codes(r.report());
    assert_eq!(
        codes.iter().filter(|c| *c == "output_truncated").count(),
        2,
        "{codes:?}"
    );
    // The caller's own output stays bounded too: the JSON document is the report plus 2×64K.
    assert!(
        r.stdout.len() < 256 << 10,
        "{} bytes printed",
        r.stdout.len()
    );
}

#[test]
fn a_small_output_passes_through_whole() {
    let lab = Lab::new();
    lab.python(
        "small-out",
        &["skillcell.limits: output=64K wall=20s"],
        "import sys\nsys.stdout.write('o' * 1000)\nsys.stderr.write('e' * 1000)\n",
    );
    let r = lab.run(&["small-out"]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    assert_eq!(r.json["stdout"].as_str(), Some("o".repeat(1000).as_str()));
    assert_eq!(r.json["stderr"].as_str(), Some("e".repeat(1000).as_str()));
    let u = usage(&r);
    assert_eq!(u["stdout_truncated"], false, "{u}");
    assert_eq!(u["stderr_truncated"], false, "{u}");
    assert_eq!(u64_of(&u["stdout_bytes"]), 1000);
    assert_eq!(u64_of(&u["stderr_bytes"]), 1000);
}
