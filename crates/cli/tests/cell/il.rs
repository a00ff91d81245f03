//! Section IL of ../shared/security-cases.md: information leakage. The caller's environment
//! (API keys, tokens, the SSH agent) never reaches the cell, not in the skill's environment and
//! not through `/proc/*/environ` or the memory of the cell's init (a fork of the supervisor);
//! only declared variables pass. The host's identity stays outside: a random hostname per run,
//! no machine-id, no MAC address, no `/sys`, no kernel log, no kernel or hardware files of
//! `/proc`. Judged from the host (`/proc/<pid>/environ`, `nsenter` into the cell's namespaces,
//! `/proc/<pid>/root`) and by looking for the secrets in every channel the skill has.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use super::lab::{Lab, PROBE_WAIT, Run, SECRET, find_pid, token, wait_ready};

/// Secrets of the caller besides the lab's `SECRET_API_KEY` and `GITHUB_TOKEN`; every value
/// contains [`SECRET`].
fn caller_secrets() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_SECRET_ACCESS_KEY", format!("{SECRET}-aws")),
        ("OPENAI_API_KEY", format!("sk-{SECRET}")),
        ("SSH_AUTH_SOCK", format!("/tmp/ssh-{SECRET}/agent.4242")),
        ("ACME_DEPLOY_PASSWORD", format!("{SECRET}-custom")),
    ]
}

/// A running probe skill started with extra caller variables (the lab's `probe` takes none).
struct Cell {
    child: Child,
    /// The skill's process, as the host sees it.
    pid: u32,
    go: PathBuf,
}

impl Cell {
    fn proc(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/{rel}", self.pid))
    }

    fn finish(self) -> Output {
        fs::write(&self.go, "").expect("go");
        self.child.wait_with_output().expect("wait")
    }
}

/// `skillcell run NAME --path CTL=… EXTRA -- TOKEN` with the lab's environment, the caller
/// secrets and `env`; waits for READY.
fn start(lab: &Lab, name: &str, extra: &[&str], tok: &str, env: &[(&str, &str)]) -> Cell {
    let ctl = format!("CTL={}", lab.s("ctl"));
    let mut args = vec!["run", name, "--path", &ctl];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", tok]);
    let mut cmd = lab.cmd(&args);
    for (k, v) in caller_secrets() {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_ready(&mut child, &format!("probe {name}"));
    let pid = find_pid(tok, child.id()).expect("the probe's process");
    Cell {
        child,
        pid,
        go: lab.path("ctl").join(format!("go-{tok}")),
    }
}

/// `skillcell run --json NAME ARGS` with the caller secrets in the environment.
fn run_with_secrets(lab: &Lab, args: &[&str]) -> Run {
    let mut all = vec!["run", "--json"];
    all.extend_from_slice(args);
    let mut cmd = lab.cmd(&all);
    for (k, v) in caller_secrets() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn loot_arg(lab: &Lab) -> String {
    format!("LOOT={}", lab.s("loot"))
}

/// Asserts that none of `needles` is in the run's channels or the loot dir.
fn assert_absent(lab: &Lab, channels: &str, needles: &[(&str, String)]) {
    let loot = lab.slurp("loot");
    for (what, n) in needles {
        assert!(!n.is_empty(), "empty needle for {what}");
        assert!(
            !channels.contains(n.as_str()),
            "{what} ({n}) leaked to stdout/stderr:\n{channels}"
        );
        assert!(
            !loot.contains(n.as_str()),
            "{what} ({n}) leaked to the loot dir"
        );
    }
}

/// Python helpers: `grab(label, f)` records what `f` returns (or the error) into
/// `$LOOT/<label>` and into one dump printed at the end.
const GRAB: &str = r#"
import os, sys, ctypes, ctypes.util, subprocess
LOOT = os.environ["SKILLCELL_PATH_LOOT"]
DUMP = []
def grab(label, f):
    try:
        data = f()
    except BaseException as e:
        data = "ERR " + repr(e)
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    DUMP.append(b"== " + label.encode() + b"\n" + data + b"\n")
    name = label.strip("/").replace("/", "_") or "root"
    with open(os.path.join(LOOT, name), "wb") as fh:
        fh.write(data)
def rd(path, limit=1 << 20):
    with open(path, "rb") as fh:
        return fh.read(limit)
def dump():
    sys.stdout.buffer.write(b"".join(DUMP))
    sys.stdout.flush()
"#;

/// Every way the skill has to read an environment: its own, its init's (a fork of the
/// supervisor, which held the caller's environment), every process of its /proc, and the
/// init's memory (`/proc/1/mem`, `process_vm_readv`, `ptrace`) at the addresses where the
/// environment was.
const ENV_THIEF: &str = r#"
grab("os.environ", lambda: "\n".join("%s=%s" % kv for kv in os.environ.items()))
libc = ctypes.CDLL(None, use_errno=True)
libc.getenv.restype = ctypes.c_char_p
NAMES = ["SECRET_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY",
         "SSH_AUTH_SOCK", "ACME_DEPLOY_PASSWORD", "SKILLCELL_HOME"]
grab("libc-getenv", lambda: repr([libc.getenv(n.encode()) for n in NAMES]))
for entry in sorted(os.listdir("/proc")):
    base = "/proc/" + entry
    for f in ["environ", "cmdline", "stat", "status", "auxv", "comm", "maps"]:
        grab(base + "/" + f, lambda p=base + "/" + f: rd(p))
    try:
        tasks = os.listdir(base + "/task")
    except OSError:
        tasks = []
    for t in tasks:
        grab(base + "/task/" + t + "/environ", lambda p=base + "/task/" + t + "/environ": rd(p))

def init_env_area():
    # Fields 48-51 of /proc/1/stat: arg_start, arg_end, env_start, env_end (zeroed by the
    # kernel for a reader without ptrace access).
    rest = rd("/proc/1/stat").decode().rsplit(")", 1)[1].split()
    f = lambda n: int(rest[n - 3])
    return f(48), f(51)
def ranges():
    out = []
    try:
        lo, hi = init_env_area()
        if lo and hi > lo:
            out.append((lo, hi))
    except Exception:
        pass
    try:
        for line in rd("/proc/1/maps").decode().splitlines():
            a, b = line.split()[0].split("-")
            if "rw" in line.split()[1]:
                out.append((int(a, 16), int(b, 16)))
    except Exception:
        pass
    return out
def mem_read():
    got = []
    with open("/proc/1/mem", "rb") as m:
        for a, b in ranges():
            try:
                m.seek(a)
                got.append(m.read(min(b - a, 8 << 20)))
            except OSError as e:
                got.append(("ERR %r at %x" % (e, a)).encode())
    return b"".join(got) or b"no range"
grab("init-mem", mem_read)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
def vm_read():
    got = []
    for a, b in ranges() or [(0x400000, 0x401000)]:
        n = min(b - a, 8 << 20)
        buf = ctypes.create_string_buffer(n)
        local = iovec(ctypes.cast(buf, ctypes.c_void_p), n)
        remote = iovec(a, n)
        r = libc.process_vm_readv(1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        got.append(buf.raw[:r] if r > 0 else ("ERR errno %d" % ctypes.get_errno()).encode())
    return b"".join(got)
grab("init-process_vm_readv", vm_read)
def ptrace_read():
    libc.ptrace.restype = ctypes.c_long
    r = libc.ptrace(16, 1, None, None)  # PTRACE_ATTACH
    if r != 0:
        return "ERR attach errno %d" % ctypes.get_errno()
    got = []
    for a, b in ranges()[:1]:
        for off in range(a, min(b, a + 65536), 8):
            got.append(ctypes.c_long(libc.ptrace(2, 1, ctypes.c_void_p(off), None)).value.to_bytes(8, "little", signed=True))
    return b"".join(got)
grab("init-ptrace", ptrace_read)
# A child of the skill: its environment is the skill's.
grab("child-env", lambda: subprocess.run([sys.executable, "-I", "-c",
     "import os; print(dict(os.environ))"], capture_output=True).stdout)
dump()
"#;

#[test]
fn the_callers_secrets_reach_no_environment_the_skill_can_read() {
    let lab = Lab::new();
    lab.python(
        "env-thief",
        &["skillcell.fs.write: $LOOT"],
        &format!("{GRAB}{ENV_THIEF}"),
    );
    let r = run_with_secrets(&lab, &["env-thief", "--path", &loot_arg(&lab)]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    // Positive controls: the channels work and the reads succeeded where they may.
    let own = fs::read_to_string(lab.path("loot/proc_self_environ")).expect("self environ");
    assert!(
        own.contains("TMPDIR=/tmp\0") && own.contains("SKILLCELL_PATH_LOOT=/mnt/loot\0"),
        "the skill could not read its own environment: {own:?}"
    );
    assert!(r.stdout.contains("== /proc/1/environ"), "{r:?}");
    let child = fs::read_to_string(lab.path("loot/child-env")).expect("child-env");
    assert!(child.contains("'TMPDIR': '/tmp'"), "child: {child}");
    // The init is a fork of the supervisor: its argument and environment area held the
    // caller's command line (with host paths) and environment (with SKILLCELL_HOME).
    let home = lab.home.path().to_str().expect("utf8").to_owned();
    let lab_dir = lab.dir.path().to_str().expect("utf8").to_owned();
    let mut needles = vec![
        ("SECRET", SECRET.to_owned()),
        ("SKILLCELL_HOME of the caller", home),
        ("a host path from the caller's command line", lab_dir),
    ];
    for (k, v) in caller_secrets() {
        needles.push((k, v));
    }
    assert_absent(&lab, &r.channels(), &needles);
}

/// A probe that records its declared variable into the loot dir, then waits.
const DECLARED_PROBE: &str = r#"
import os
with open(os.path.join(os.environ["SKILLCELL_PATH_LOOT"], "declared"), "w") as fh:
    fh.write(os.environ.get("DECLARED_VAR", "<unset>"))
wait_for_host()
"#;

#[test]
fn the_skill_environ_holds_only_the_cell_variables_and_the_declared_one() {
    let lab = Lab::new();
    lab.python(
        "env-probe",
        &[
            "skillcell.fs.read: $CTL",
            "skillcell.fs.write: $LOOT",
            "skillcell.env: DECLARED_VAR",
        ],
        &format!("{PROBE_WAIT}{DECLARED_PROBE}"),
    );
    let tok = token("environ");
    let declared = format!("declared-{tok}");
    let loot = loot_arg(&lab);
    let cell = start(
        &lab,
        "env-probe",
        &["--path", &loot],
        &tok,
        &[("DECLARED_VAR", &declared), ("UNDECLARED_VAR", SECRET)],
    );
    let raw = fs::read(cell.proc("environ")).expect("environ of the skill");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let env: BTreeMap<&str, &str> = text
        .split('\0')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    let want: BTreeMap<&str, &str> = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/tmp/home"),
        ("LANG", "C.UTF-8"),
        ("TMPDIR", "/tmp"),
        ("SKILLCELL_PATH_CTL", "/mnt/ctl"),
        ("SKILLCELL_PATH_LOOT", "/mnt/loot"),
        // Positive control: the declared variable passes, with the caller's value.
        ("DECLARED_VAR", declared.as_str()),
        // The one way out, in every spelling clients read (docs/egress.md).
        ("HTTP_PROXY", "http://127.0.0.1:3128"),
        ("HTTPS_PROXY", "http://127.0.0.1:3128"),
        ("ALL_PROXY", "http://127.0.0.1:3128"),
        ("http_proxy", "http://127.0.0.1:3128"),
        ("https_proxy", "http://127.0.0.1:3128"),
        ("all_proxy", "http://127.0.0.1:3128"),
    ]
    .into_iter()
    .collect();
    assert_eq!(env, want, "the skill's environment, as the host reads it");
    assert!(!text.contains(SECRET));
    let out = cell.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Positive control from the skill's side: it read the declared value itself.
    assert_eq!(
        fs::read_to_string(lab.path("loot/declared")).expect("declared"),
        declared
    );
}

/// `nsenter --<ns>=/proc/PID/ns/<ns> ARGV…` from the host; its stdout.
fn nsenter(pid: u32, ns: &str, argv: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--{ns}=/proc/{pid}/ns/{ns}"))
        .args(argv)
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "nsenter --{ns} {argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A probe that writes its hostname (as the skill sees it) into `$LOOT/hostname-<token>`.
const HOSTNAME_PROBE: &str = r#"
import os, socket
with open(os.path.join(os.environ["SKILLCELL_PATH_LOOT"], "hostname-" + sys.argv[1]), "w") as fh:
    fh.write(socket.gethostname())
wait_for_host()
"#;

#[test]
fn each_run_gets_a_random_hostname_that_is_not_the_hosts() {
    let lab = Lab::new();
    lab.python(
        "hostname-probe",
        &["skillcell.fs.read: $CTL", "skillcell.fs.write: $LOOT"],
        &format!("{PROBE_WAIT}{HOSTNAME_PROBE}"),
    );
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("host hostname")
        .trim()
        .to_owned();
    let loot = loot_arg(&lab);
    let (t1, t2) = (token("host"), token("host"));
    let a = start(&lab, "hostname-probe", &["--path", &loot], &t1, &[]);
    let b = start(&lab, "hostname-probe", &["--path", &loot], &t2, &[]);
    let mut names = Vec::new();
    for (cell, t) in [(&a, &t1), (&b, &t2)] {
        let name = nsenter(cell.pid, "uts", &["hostname"]);
        let hex = name.strip_prefix("cell-").unwrap_or_else(|| {
            panic!("the cell's hostname {name:?} does not start with cell-");
        });
        assert!(
            hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
        assert_ne!(name, host, "the cell has the host's hostname");
        // Positive control: the skill's own view is what the host sees in its namespace.
        let seen = fs::read_to_string(lab.path(&format!("loot/hostname-{t}"))).expect("loot");
        assert_eq!(seen, name, "the skill's hostname vs nsenter");
        // /etc/hosts names the cell, never the host.
        let hosts = fs::read_to_string(cell.proc("root/etc/hosts")).expect("hosts");
        assert!(hosts.contains(&name), "{hosts}");
        assert!(
            !hosts.split_whitespace().any(|w| w == host),
            "the host's name in the cell's /etc/hosts: {hosts}"
        );
        names.push(name);
    }
    assert_ne!(names[0], names[1], "two runs share a hostname");
    for cell in [a, b] {
        let out = cell.finish();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The host's MAC addresses (but the all-zero one of loopback).
fn host_macs() -> Vec<String> {
    fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path().join("address")).ok())
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty() && m != "00:00:00:00:00:00")
        .collect()
}

/// Every identity source the skill could try: machine ids, /sys, kernel and hardware files of
/// /proc, network interfaces and their hardware addresses (through ioctl too).
const FINGERPRINT: &str = r#"
import socket, fcntl, struct, glob
for p in ["/etc/machine-id", "/var/lib/dbus/machine-id", "/etc/hostname", "/proc/version",
          "/proc/cpuinfo", "/proc/meminfo", "/proc/sys/kernel/random/boot_id",
          "/proc/sys/kernel/hostname", "/sys/class/dmi/id/product_uuid", "/proc/net/dev",
          "/proc/self/net/dev", "/proc/self/net/arp", "/proc/modules", "/proc/cmdline"]:
    grab(p, lambda p=p: rd(p))
grab("sys-net", lambda: "\n".join(g + " " + rd(g).decode()
     for g in glob.glob("/sys/class/net/*/address")))
grab("if_nameindex", lambda: repr(socket.if_nameindex()))
def ifaces():
    # Every interface by index (SIOCGIFNAME), then its hardware address (SIOCGIFHWADDR).
    out = []
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for idx in range(1, 64):
        try:
            r = fcntl.ioctl(s.fileno(), 0x8910, struct.pack("16si20x", b"", idx))
        except OSError:
            continue
        name = r[:16].split(b"\0")[0]
        try:
            r = fcntl.ioctl(s.fileno(), 0x8927, struct.pack("16s24x", name))
            mac = ":".join("%02x" % b for b in r[18:24])
        except OSError as e:
            mac = "ERR %r" % e
        out.append(name.decode() + " " + mac)
    return "\n".join(out)
grab("ifaces", ifaces)
grab("uname", lambda: repr(os.uname()))
dump()
"#;

#[test]
fn the_skill_finds_no_machine_id_mac_address_or_host_kernel_details() {
    let lab = Lab::new();
    lab.python(
        "fingerprint",
        &["skillcell.fs.write: $LOOT"],
        &format!("{GRAB}{FINGERPRINT}"),
    );
    let r = lab.run(&["fingerprint", "--path", &loot_arg(&lab)]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    // Positive control: the probe ran to its end and its interface listing worked (the cell
    // has a loopback interface).
    let ifaces = fs::read_to_string(lab.path("loot/ifaces")).expect("ifaces");
    assert_eq!(ifaces.trim(), "lo 00:00:00:00:00:00", "{ifaces}");
    let mut needles = Vec::new();
    for p in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(id) = fs::read_to_string(p) {
            needles.push(("the host's machine-id", id.trim().to_owned()));
        }
    }
    assert!(!needles.is_empty(), "the host has no machine-id to protect");
    for mac in host_macs() {
        needles.push(("a host MAC address", mac));
    }
    let version = fs::read_to_string("/proc/version").expect("version");
    needles.push(("the host's /proc/version", version.trim().to_owned()));
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot_id");
    needles.push(("the host's boot_id", boot_id.trim().to_owned()));
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    needles.push(("the host's hostname", hostname.trim().to_owned()));
    assert_absent(&lab, &r.channels(), &needles);
}

#[test]
fn the_cell_has_no_machine_id_sys_kmsg_kernel_files_or_network_hardware() {
    let lab = Lab::new();
    lab.python(
        "identity-probe",
        &["skillcell.fs.read: $CTL"],
        &format!("{PROBE_WAIT}\nwait_for_host()\n"),
    );
    let tok = token("identity");
    let cell = start(&lab, "identity-probe", &[], &tok, &[]);
    // Positive controls: the host can see into the cell's root and its /proc.
    assert!(cell.proc("root/etc/passwd").is_file());
    assert!(
        cell.proc("root/proc/2/status").is_file(),
        "the cell's /proc"
    );
    let etc: Vec<String> = fs::read_dir(cell.proc("root/etc"))
        .expect("etc")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!etc.iter().any(|n| n == "machine-id"), "{etc:?}");
    for rel in [
        "root/etc/machine-id",
        "root/var/lib/dbus/machine-id",
        "root/sys",
        "root/dev/kmsg",
        "root/proc/kmsg",
        "root/proc/version",
        "root/proc/cpuinfo",
        "root/proc/meminfo",
        "root/proc/sys",
        "root/proc/kallsyms",
        "root/proc/cmdline",
    ] {
        let p = cell.proc(rel);
        assert!(
            fs::symlink_metadata(&p).is_err(),
            "{} exists in the cell",
            p.display()
        );
    }
    // The cell's network namespace has loopback and nothing else.
    let links = nsenter(cell.pid, "net", &["ip", "-o", "link"]);
    let lines: Vec<&str> = links.lines().collect();
    assert_eq!(lines.len(), 1, "{links}");
    assert!(
        lines[0].contains(": lo:") && lines[0].contains("link/loopback 00:00:00:00:00:00"),
        "{links}"
    );
    let out = cell.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every way to read the kernel log: /dev/kmsg, /proc/kmsg, syslog(2) through glibc's klogctl
/// and the raw syscall, and the `dmesg` program itself (declared, so it can run).
const KLOG_THIEF: &str = r#"
libc = ctypes.CDLL(None, use_errno=True)
def klog(fn):
    n = 1 << 20
    buf = ctypes.create_string_buffer(n)
    r = fn(3, buf, n)  # SYSLOG_ACTION_READ_ALL
    return buf.raw[:r] if r > 0 else "ERR %d errno %d" % (r, ctypes.get_errno())
grab("klogctl", lambda: klog(libc.klogctl))
grab("syslog-syscall", lambda: klog(lambda a, b, c: libc.syscall(103, a, b, c)))
grab("/dev/kmsg", lambda: os.read(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK), 1 << 16))
grab("/proc/kmsg", lambda: os.read(os.open("/proc/kmsg", os.O_RDONLY | os.O_NONBLOCK), 1 << 16))
def dmesg():
    p = subprocess.run(["dmesg"], capture_output=True)
    return b"rc %d\n" % p.returncode + p.stdout + p.stderr
grab("dmesg", dmesg)
dump()
"#;

#[test]
fn the_host_kernel_log_is_unreadable_from_the_cell() {
    let lab = Lab::new();
    lab.python(
        "klog-thief",
        &["skillcell.fs.write: $LOOT", "skillcell.exec: dmesg"],
        &format!("{GRAB}{KLOG_THIEF}"),
    );
    let tok = token("kmsg");
    fs::write("/dev/kmsg", format!("skillcell il test {tok}\n")).expect("write /dev/kmsg (root)");
    // Positive control: the line is in the host's kernel log, where a working read would
    // find it.
    let host = Command::new("dmesg").output().expect("dmesg");
    assert!(
        String::from_utf8_lossy(&host.stdout).contains(&tok),
        "the host's dmesg does not show the test line"
    );
    let r = lab.run(&["klog-thief", "--path", &loot_arg(&lab)]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    // Positive control: the declared dmesg ran (its status is recorded), and so did the rest.
    let d = fs::read_to_string(lab.path("loot/dmesg")).expect("dmesg loot");
    assert!(d.starts_with("rc "), "dmesg did not run: {d}");
    assert!(lab.path("loot/proc_kmsg").exists(), "{r:?}");
    assert_absent(&lab, &r.channels(), &[("the host's kernel log", tok)]);
}

/// Reads the mount table from inside: `mountinfo` names the source of every bind mount as a
/// path on the host's filesystem.
const MOUNT_READER: &str = r#"
for p in ["/proc/self/mountinfo", "/proc/1/mountinfo", "/proc/self/mounts"]:
    grab(p, lambda p=p: rd(p))
dump()
"#;

/// The skill is told where its grants are mounted (`/mnt/<name>`), not where they live on the
/// host: the host path of a grant (the caller's project, with the user's name in it) and the
/// data dir (with the skill store) are host information.
///
/// Known limitation, kept as a failing test: field 4 ("root") of `/proc/self/mountinfo` is
/// the bind source's path on its filesystem, e.g. `/home/alice/acme-project /mnt/workspace`
/// and `/home/alice/.local/share/skillcell/store/trees/<hash> /skill`. The kernel prints it
/// for every bind mount; Landlock cannot take `/proc/<pid>/mountinfo` back out of a readable
/// `/proc` (rules only add, and pid directories appear at run time), and the cell needs
/// `/proc/self`. docs/cell.md lists it under "what the cell does not hide".
#[test]
#[ignore = "known limitation: bind-mount source paths show in /proc/self/mountinfo (docs/cell.md)"]
fn the_mount_table_does_not_reveal_host_paths_of_grants_or_the_store() {
    let lab = Lab::new();
    lab.python(
        "mount-reader",
        &["skillcell.fs.write: $LOOT"],
        &format!("{GRAB}{MOUNT_READER}"),
    );
    let r = lab.run(&["mount-reader", "--path", &loot_arg(&lab)]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    // Positive control: the skill reads its mount table (its own grant is in it).
    let mi = fs::read_to_string(lab.path("loot/proc_self_mountinfo")).expect("mountinfo");
    assert!(mi.contains(" /mnt/loot "), "{mi}");
    let loot_host = fs::canonicalize(lab.path("loot")).expect("canonical");
    let home = fs::canonicalize(lab.home.path()).expect("canonical");
    assert_absent(
        &lab,
        &r.channels(),
        &[
            (
                "the host path of the $LOOT grant",
                loot_host.to_str().expect("utf8").to_owned(),
            ),
            (
                "the host path of the data dir",
                home.to_str().expect("utf8").to_owned(),
            ),
        ],
    );
}
