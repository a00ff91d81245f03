//! Section PR of ../shared/security-cases.md: processes. A skill may run its interpreter and the
//! programs its contract declares, see and signal only the processes of its own cell, and
//! nothing it starts outlives the run. Every attack is judged from the host: marker files the
//! forbidden program would have created in a write-granted workspace, the host's process table,
//! /proc of the cell's processes, and the run's outcome.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::lab::{Lab, PROBE_WAIT, SECRET, processes_with, token};

/// Files in the lab's workspace, by name.
fn workspace(lab: &Lab) -> BTreeSet<String> {
    fs::read_dir(lab.path("ws"))
        .expect("ws")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The marker files (`m-*`) a forbidden program would have created.
fn markers(lab: &Lab) -> Vec<String> {
    workspace(lab)
        .into_iter()
        .filter(|n| n.starts_with("m-"))
        .collect()
}

/// Copies the host's `touch` into the folder of skill `name` as `touchbin`, before it is
/// installed: an ELF program the skill brings with it.
fn ship_touch(lab: &Lab, name: &str) {
    let dir = lab.path("skills").join(name);
    fs::create_dir_all(&dir).expect("mkdir");
    let touch = fs::canonicalize("/usr/bin/touch").expect("the host has /usr/bin/touch");
    fs::copy(touch, dir.join("touchbin")).expect("copy touch");
}

fn ws_arg(lab: &Lab) -> String {
    lab.s("ws")
}

/// Python helpers every skill of this file starts with: the workspace, a marker path, and
/// `attempt`, which swallows every failure (the verdict comes from the host, not from here).
const HELPERS: &str = r#"
import os, sys, subprocess
WS = os.environ["SKILLCELL_PATH_WORKSPACE"]
def m(name):
    return os.path.join(WS, "m-" + name)
def attempt(f):
    try:
        f()
    except BaseException:
        pass
def run(argv, **kw):
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5, **kw)
def exec_in_child(path, argv):
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(path, argv)
        finally:
            os._exit(127)
    os.waitpid(pid, 0)
def loader():
    # The dynamic loader as the cell maps it (its exec allowlist holds it).
    for line in open("/proc/self/maps"):
        if "ld-linux" in line:
            return line.split()[-1]
    return "/lib64/ld-linux-x86-64.so.2"
def done():
    # Written by Python itself: proves the write grant works and the script reached its end.
    open(os.path.join(WS, "done"), "w").close()
"#;

#[test]
fn python_cannot_start_a_program_the_contract_did_not_grant() {
    let lab = Lab::new();
    let body = format!(
        "{HELPERS}{}",
        r#"
attempt(lambda: os.system("/usr/bin/touch " + m("system")))
attempt(lambda: os.system("echo x > " + m("system-sh")))
attempt(lambda: __import__("os").system("echo x > " + m("dunder-import")))
attempt(lambda: eval("__import__('os').system('echo x > %s')" % m("eval")))
attempt(lambda: exec("import subprocess\nsubprocess.run(['/usr/bin/touch', %r])" % m("exec")))
attempt(lambda: run(["/usr/bin/touch", m("run")]))
attempt(lambda: run(["touch", m("run-path")]))
attempt(lambda: run("echo x > " + m("run-shell"), shell=True))
attempt(lambda: os.waitpid(os.posix_spawn("/usr/bin/touch", ["touch", m("posix-spawn")], {}), 0))
attempt(lambda: os.waitpid(os.posix_spawnp("sh", ["sh", "-c", "echo x > " + m("posix-spawnp")], {}), 0))
attempt(lambda: os.spawnv(os.P_WAIT, "/bin/sh", ["sh", "-c", "echo x > " + m("spawnv")]))
attempt(lambda: exec_in_child("/bin/sh", ["sh", "-c", "echo x > " + m("execv-sh")]))
attempt(lambda: exec_in_child("/usr/bin/touch", ["touch", m("execv-touch")]))
done()
"#
    );
    lab.python("no-exec", &["skillcell.fs.write: $WORKSPACE"], &body);
    let r = lab.run(&["no-exec", "--workspace", &ws_arg(&lab)]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    assert!(workspace(&lab).contains("done"), "positive control: {r:?}");
    assert_eq!(
        markers(&lab),
        Vec::<String>::new(),
        "an ungranted program ran"
    );
}

#[test]
fn a_binary_the_skill_brings_or_copies_cannot_be_executed_or_loaded() {
    let lab = Lab::new();
    ship_touch(&lab, "own-binary");
    let body = format!(
        "{HELPERS}{}",
        r#"
import shutil
copies = {"skill": "/skill/touchbin", "tmp": "/tmp/touchbin", "home": "/tmp/home/touchbin", "ws": os.path.join(WS, "touchbin")}
for tag, path in copies.items():
    if tag != "skill":
        attempt(lambda: shutil.copy("/skill/touchbin", path))
        attempt(lambda: os.chmod(path, 0o755))
for tag, path in copies.items():
    attempt(lambda: run([path, m(tag + "-exec")]))
    attempt(lambda: exec_in_child(path, ["touchbin", m(tag + "-execv")]))
    attempt(lambda: run([loader(), path, m(tag + "-loader")]))
    attempt(lambda: run(["/lib64/ld-linux-x86-64.so.2", path, m(tag + "-lib64-loader")]))
    def fexec():
        fd = os.open(path, os.O_RDONLY)
        pid = os.fork()
        if pid == 0:
            try:
                os.execve(fd, ["touchbin", m(tag + "-fexecve")], {})
            finally:
                os._exit(127)
        os.waitpid(pid, 0)
    attempt(fexec)
# A file on a mount that allows mapping code but is not on the exec allowlist (the C library,
# which prints a banner when run as a program): only Landlock's EXECUTE right stands between.
libc = next(l.split()[-1] for l in open("/proc/self/maps") if "libc.so" in l)
def run_libc():
    with open(os.path.join(WS, "libc-banner"), "wb") as out:
        subprocess.run([libc], stdout=out, stderr=subprocess.DEVNULL, timeout=5)
attempt(run_libc)
done()
"#
    );
    lab.python("own-binary", &["skillcell.fs.write: $WORKSPACE"], &body);
    let r = lab.run(&["own-binary", "--workspace", &ws_arg(&lab)]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    let ws = workspace(&lab);
    assert!(ws.contains("done"), "positive control: {r:?}");
    assert!(
        ws.contains("touchbin"),
        "the copy into the write grant is allowed: {ws:?}"
    );
    assert_eq!(markers(&lab), Vec::<String>::new(), "a brought binary ran");
    let banner = fs::read(lab.path("ws/libc-banner")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&banner).contains("GNU C Library"),
        "the C library ran as a program: {}",
        String::from_utf8_lossy(&banner)
    );
}

/// A memfd is an anonymous file on the kernel's internal shmem mount, which is neither
/// `noexec` nor reachable by a path Landlock has rules for. If the cell lets a skill execute
/// one, the exec allowlist does not hold: any ELF the skill carries (or downloads, or writes
/// byte by byte) runs.
#[test]
fn an_elf_written_to_a_memfd_cannot_be_executed() {
    let lab = Lab::new();
    ship_touch(&lab, "memfd-exec");
    let body = format!(
        "{HELPERS}{}",
        r#"
data = open("/skill/touchbin", "rb").read()
def memfd():
    fd = os.memfd_create("x", 0)
    os.write(fd, data)
    return fd
def by_path():
    fd = memfd()
    subprocess.run(["/proc/self/fd/%d" % fd, m("memfd-path")], pass_fds=(fd,), timeout=5)
def by_fexecve():
    fd = memfd()
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(fd, ["touchbin", m("memfd-fexecve")], {})
        finally:
            os._exit(127)
    os.waitpid(pid, 0)
def by_loader():
    fd = memfd()
    subprocess.run([loader(), "/proc/self/fd/%d" % fd, m("memfd-loader")], pass_fds=(fd,), timeout=5)
attempt(by_path)
attempt(by_fexecve)
attempt(by_loader)
done()
"#
    );
    lab.python("memfd-exec", &["skillcell.fs.write: $WORKSPACE"], &body);
    let r = lab.run(&["memfd-exec", "--workspace", &ws_arg(&lab)]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    assert!(workspace(&lab).contains("done"), "positive control: {r:?}");
    assert_eq!(
        markers(&lab),
        Vec::<String>::new(),
        "an ELF the skill wrote into a memfd ran (each marker names how it was started)"
    );
}

#[test]
fn a_granted_program_cannot_launch_an_ungranted_one() {
    let lab = Lab::new();
    ship_touch(&lab, "launcher");
    let body = format!(
        "{HELPERS}{}",
        r#"
import shutil
for path in ("/tmp/touchbin", os.path.join(WS, "touchbin")):
    attempt(lambda: shutil.copy("/skill/touchbin", path))
    attempt(lambda: os.chmod(path, 0o755))
targets = {"usr": "/usr/bin/touch", "skill": "/skill/touchbin", "tmp": "/tmp/touchbin", "ws": os.path.join(WS, "touchbin")}
for tag, path in targets.items():
    attempt(lambda: run(["env", path, m("env-" + tag)]))
    attempt(lambda: run(["find", "/skill", "-maxdepth", "0", "-exec", path, m("find-" + tag), ";"]))
    attempt(lambda: run(["find", "/skill", "-maxdepth", "0", "-exec", loader(), path, m("find-loader-" + tag), ";"]))
    attempt(lambda: run(["xargs", path], input=m("xargs-" + tag).encode()))
    attempt(lambda: run(["sh", "-c", path + " " + m("sh-" + tag)]))
    attempt(lambda: run(["sh", "-c", "exec " + path + " " + m("sh-exec-" + tag)]))
    attempt(lambda: run(["env", loader(), path, m("env-loader-" + tag)]))
attempt(lambda: run(["env", "touch", m("env-name")]))
attempt(lambda: run(["find", "/skill", "-maxdepth", "0", "-execdir", "touch", m("find-execdir"), ";"]))
# Positive controls: each launcher does start a granted program.
attempt(lambda: run(["env", "sh", "-c", "echo x > " + os.path.join(WS, "env-ran")]))
attempt(lambda: run(["find", "/skill", "-maxdepth", "0", "-exec", "sh", "-c", 'echo x > "$0"', os.path.join(WS, "find-ran"), ";"]))
attempt(lambda: run(["xargs", "sh", "-c", 'echo x > "$0"'], input=os.path.join(WS, "xargs-ran").encode()))
done()
"#
    );
    lab.python(
        "launcher",
        &[
            "skillcell.exec: find env xargs sh",
            "skillcell.fs.write: $WORKSPACE",
        ],
        &body,
    );
    let r = lab.run(&["launcher", "--workspace", &ws_arg(&lab)]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    let ws = workspace(&lab);
    for control in ["done", "env-ran", "find-ran", "xargs-ran"] {
        assert!(
            ws.contains(control),
            "positive control {control} missing: {ws:?} {r:?}"
        );
    }
    assert_eq!(
        markers(&lab),
        Vec::<String>::new(),
        "a granted program launched an ungranted one"
    );
}

#[test]
fn a_declared_program_runs() {
    let lab = Lab::new();
    let body = format!(
        "{HELPERS}{}",
        r#"
subprocess.run(["touch", os.path.join(WS, "touched")], check=True)
os.system("touch " + os.path.join(WS, "system-touched"))
"#
    );
    lab.python(
        "declared",
        &[
            "skillcell.exec: touch /bin/sh",
            "skillcell.fs.write: $WORKSPACE",
        ],
        &body,
    );
    let r = lab.run(&["declared", "--workspace", &ws_arg(&lab)]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    let ws = workspace(&lab);
    assert!(ws.contains("touched"), "{ws:?} {r:?}");
    assert!(ws.contains("system-touched"), "{ws:?} {r:?}");
}

/// A host process the cell must neither see nor touch: `sleep 60` whose argv[0] and
/// environment carry unique tokens. Killed when dropped.
struct HostCanary {
    child: Child,
    token: String,
    env_token: String,
}

impl HostCanary {
    fn start(tag: &str) -> Self {
        let token = token(tag);
        let env_token = format!("{token}-environ");
        let child = Command::new("sleep")
            .arg0(&token)
            .arg("60")
            .env("SKILLCELL_CANARY", &env_token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the host canary");
        let canary = Self {
            child,
            token,
            env_token,
        };
        // The host itself sees the canary, token and all: the tokens are findable.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_with(&canary.token).contains(&canary.child.id()) {
            assert!(Instant::now() < deadline, "the canary never showed up");
            sleep(Duration::from_millis(5));
        }
        let environ = fs::read(format!("/proc/{}/environ", canary.child.id())).expect("environ");
        assert!(String::from_utf8_lossy(&environ).contains(&canary.env_token));
        canary
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for HostCanary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_skill_sees_only_its_own_cells_processes() {
    let lab = Lab::new();
    let canary = HostCanary::start("pr-enum");
    let body = format!(
        "{PROBE_WAIT}{}",
        r#"
import glob, json
host = json.load(sys.stdin)["pid"]
loot = os.environ["SKILLCELL_PATH_LOOT"]
dirs = glob.glob("/proc/[0-9]*") + glob.glob("/proc/[0-9]*/task/[0-9]*")
dirs += ["/proc/self", "/proc/thread-self", "/proc/%d" % host]
dirs += ["/proc/%d" % n for n in range(1, 4097) if os.path.exists("/proc/%d" % n)]
seen = []
for d in dirs:
    for f in ("cmdline", "environ", "status", "comm"):
        try:
            with open(os.path.join(d, f), "rb") as fh:
                data = fh.read()
        except OSError as e:
            data = repr(e).encode()
        seen.append(d.encode() + b"/" + f.encode() + b": " + data.replace(b"\0", b" "))
blob = b"\n".join(seen)
with open(os.path.join(loot, "proc.txt"), "wb") as out:
    out.write(blob)
sys.stdout.buffer.write(blob + b"\n")
sys.stdout.flush()
wait_for_host()
"#
    );
    lab.python(
        "proc-enum",
        &["skillcell.fs.read: $CTL", "skillcell.fs.write: $LOOT"],
        &body,
    );
    let t = token("pr-enum-skill");
    let loot = format!("LOOT={}", lab.s("loot"));
    let input = format!(r#"{{"pid": {}}}"#, canary.pid());
    let p = lab.probe("proc-enum", &["--path", &loot, "--input", &input], &t);
    // From the host: the /proc the skill sees holds the cell's init and the skill, nothing else.
    let pids: BTreeSet<String> = fs::read_dir(p.proc("root/proc"))
        .expect("the cell's /proc, seen from the host")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(
        pids,
        BTreeSet::from(["1".to_owned(), "2".to_owned()]),
        "the cell's /proc lists other processes"
    );
    let out = p.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loot = lab.slurp("loot");
    let all = format!(
        "{loot}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Positive control: the skill did read /proc, its own command line included.
    assert!(
        loot.contains(&t),
        "the skill's own cmdline is not in the loot"
    );
    for leak in [canary.token.as_str(), canary.env_token.as_str(), SECRET] {
        assert!(!all.contains(leak), "{leak} reached the skill");
    }
}

#[test]
fn the_skill_cannot_signal_or_trace_the_cells_init_or_a_host_process() {
    let lab = Lab::new();
    let mut canary = HostCanary::start("pr-signal");
    let body = r#"
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.syscall.restype = ctypes.c_long
host = int(sys.argv[1])
def attempt(f):
    try:
        f()
    except OSError:
        pass
# Positive control: the skill can kill its own child. If it could not, the run would wait
# 60 s for it and end at the wall limit instead of exiting with 42.
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
os.kill(child, signal.SIGKILL)
os.waitpid(child, 0)
for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
    attempt(lambda: os.kill(host, sig))
# The init forwards the signals it gets to the skill: if SIGTERM or SIGINT reached it, the
# skill would die of it and the run would not end with 42.
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGSTOP, signal.SIGKILL):
    attempt(lambda: os.kill(1, sig))
attempt(lambda: os.kill(-1, signal.SIGKILL))
for pid in (1, host):
    for req in (16, 0x4206):  # PTRACE_ATTACH, PTRACE_SEIZE
        libc.ptrace(req, pid, None, None)
    try:
        fd = os.pidfd_open(pid)
        libc.syscall(424, fd, signal.SIGKILL, None, 0)  # pidfd_send_signal
    except OSError:
        pass
    attempt(lambda: open("/proc/%d/mem" % pid, "r+b").write(b"\0"))
# The init is a clone of the supervisor, whose environment holds the caller's secrets.
for f in ("cmdline", "environ", "status", "maps"):
    try:
        sys.stdout.buffer.write(open("/proc/1/" + f, "rb").read())
    except OSError:
        pass
sys.exit(42)
"#;
    lab.python("signals", &["skillcell.limits: wall=5s"], body);
    let r = lab.run(&["signals", "--", &canary.pid().to_string()]);
    assert_eq!(
        r.outcome(),
        ("exited", 42),
        "the init or the skill was hit: {r:?}"
    );
    assert_eq!(r.limit_hit(), None, "{r:?}");
    assert!(
        !r.channels().contains(SECRET),
        "the supervisor's environment leaked"
    );
    assert!(canary.alive(), "the host canary was killed");
    let state = fs::read_to_string(format!("/proc/{}/stat", canary.pid())).expect("stat");
    let state = state.rsplit_once(") ").map(|(_, s)| &s[..1]);
    assert_eq!(state, Some("S"), "the host canary was stopped or traced");
}

#[test]
fn nothing_the_skill_starts_outlives_the_run() {
    let lab = Lab::new();
    let t = token("pr-outlive");
    let body = r#"
import ctypes, os, signal, sys, time
WS = os.environ["SKILLCELL_PATH_WORKSPACE"]
def touch(name):
    open(os.path.join(WS, name), "w").close()
def later(name):
    touch(name + "-started")
    time.sleep(1.5)
    touch(name + "-late")
# Positive control: a background child the skill waits for does its work.
pid = os.fork()
if pid == 0:
    time.sleep(0.2)
    touch("waited")
    os._exit(0)
os.waitpid(pid, 0)
# A daemon: double fork and a new session.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        later("daemon")
        os._exit(0)
    os._exit(0)
# A child subreaper, with an orphaned grandchild reparented to it.
if os.fork() == 0:
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    os.setsid()
    if os.fork() == 0:
        if os.fork() == 0:
            later("orphan")
            os._exit(0)
        os._exit(0)
    later("subreaper")
    os._exit(0)
# A process that ignores every signal it can, in its own process group.
if os.fork() == 0:
    for s in range(1, signal.NSIG):
        try:
            signal.signal(s, signal.SIG_IGN)
        except (OSError, ValueError):
            pass
    os.setpgid(0, 0)
    later("ignorer")
    os._exit(0)
names = ("daemon", "orphan", "subreaper", "ignorer")
deadline = time.time() + 3
while time.time() < deadline and not all(os.path.exists(os.path.join(WS, n + "-started")) for n in names):
    time.sleep(0.01)
"#;
    lab.python("outlive", &["skillcell.fs.write: $WORKSPACE"], body);
    let r = lab.run(&["outlive", "--workspace", &ws_arg(&lab), "--", &t]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    let ws = workspace(&lab);
    assert!(ws.contains("waited"), "positive control: {ws:?}");
    let names = ["daemon", "orphan", "subreaper", "ignorer"];
    for n in names {
        assert!(
            ws.contains(&format!("{n}-started")),
            "{n} never started, the case proves nothing: {ws:?} {r:?}"
        );
    }
    assert_eq!(processes_with(&t), Vec::<u32>::new(), "left running");
    // Everything left would write its late marker 1.5 s after it started.
    sleep(Duration::from_secs(2));
    assert_eq!(processes_with(&t), Vec::<u32>::new(), "left running");
    let ws = workspace(&lab);
    for n in names {
        assert!(
            !ws.contains(&format!("{n}-late")),
            "{n} outlived the run and wrote its marker"
        );
    }
}

/// A field of /proc/PID/status.
fn status_of(pid: u32, field: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {field} in status of {pid}"))
}

#[test]
fn a_declared_setuid_program_gains_no_privilege() {
    let lab = Lab::new();
    // su stays alive long enough to be judged: its stderr is a full pipe, so it blocks in the
    // write of its first message, after its execve committed its credentials.
    let body = format!(
        "{PROBE_WAIT}{}",
        r#"
import fcntl, subprocess
r, w = os.pipe()
os.write(w, b"x" * fcntl.fcntl(w, 1032))  # F_GETPIPE_SZ: fill it exactly
su = subprocess.Popen(["su", sys.argv[1]], stdin=subprocess.PIPE, stdout=w, stderr=w)
wait_for_host()
su.kill()
su.wait()
"#
    );
    lab.python(
        "setuid",
        &["skillcell.exec: su", "skillcell.fs.read: $CTL"],
        &body,
    );
    let t = token("pr-setuid");
    let p = lab.probe("setuid", &[], &t);
    let deadline = Instant::now() + Duration::from_secs(5);
    let su = loop {
        let found = processes_with(&t).into_iter().find(|pid| {
            fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|e| e.file_name().is_some_and(|n| n == "su"))
        });
        if let Some(pid) = found {
            break pid;
        }
        assert!(Instant::now() < deadline, "su never ran in the cell");
        sleep(Duration::from_millis(10));
    };
    // Positive control: what runs is the host's setuid-root su, and the cell sees its bit.
    let host_su = fs::metadata("/usr/bin/su").expect("host su");
    assert_ne!(
        host_su.permissions().mode() & 0o4000,
        0,
        "host su is not setuid"
    );
    let in_cell = fs::metadata(format!("/proc/{su}/root/usr/bin/su")).expect("su in the cell");
    assert_ne!(
        in_cell.permissions().mode() & 0o4000,
        0,
        "su lost its bit in the cell"
    );
    // Its credentials are the skill's, unchanged by the setuid bit.
    for field in ["Uid", "Gid", "Groups"] {
        assert_eq!(status_of(su, field), p.status(field), "{field}");
    }
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_of(su, set), "0000000000000000", "{set} of su");
    }
    assert_eq!(status_of(su, "NoNewPrivs"), "1");
    // No uid of the cell maps to root: the namespace maps exactly one uid, the skill's.
    let map = fs::read_to_string(format!("/proc/{su}/uid_map")).expect("uid_map");
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 1, "{map}");
    assert_eq!((lines[0][0], lines[0][2]), ("1000", "1"), "{map}");
    // And su's mount does not honour the bit.
    let mountinfo = fs::read_to_string(format!("/proc/{su}/mountinfo")).expect("mountinfo");
    let su_mount = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/usr/bin/su"))
        .unwrap_or_else(|| panic!("no mount for /usr/bin/su: {mountinfo}"));
    assert!(
        su_mount
            .split_whitespace()
            .nth(5)
            .is_some_and(|o| o.split(',').any(|f| f == "nosuid")),
        "{su_mount}"
    );
    let out = p.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
