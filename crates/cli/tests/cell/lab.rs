//! The lab: a private data dir, a workspace, canaries, and helpers that judge a run from the
//! host (the files, the process table, /proc of the cell's processes), never from what the
//! skill says.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_skillcell");

/// A secret no cell may ever see; tests look for it in every channel a skill has.
pub const SECRET: &str = "canary-7f3d9a1c-secret";

pub struct Lab {
    pub home: tempfile::TempDir,
    /// Scratch for the test: workspace, loot, canaries, control dir.
    pub dir: tempfile::TempDir,
}

/// One finished `skillcell run --json`.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The JSON document `run --json` printed (a run or an error).
    pub json: serde_json::Value,
}

impl Run {
    /// Everything the skill could use to leak: its stdout and stderr as the caller saw them.
    pub fn channels(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.stdout,
            self.stderr,
            self.json["stdout"].as_str().unwrap_or_default(),
            self.json["stderr"].as_str().unwrap_or_default()
        )
    }

    pub fn report(&self) -> &serde_json::Value {
        &self.json["report"]
    }

    pub fn outcome(&self) -> (&str, i64) {
        let o = &self.report()["outcome"];
        let kind = o["kind"].as_str().unwrap_or("?");
        let v = o["code"].as_i64().or(o["signal"].as_i64()).unwrap_or(-1);
        (kind, v)
    }

    pub fn limit_hit(&self) -> Option<&str> {
        self.report()["limit_hit"].as_str()
    }
}

impl Lab {
    pub fn new() -> Self {
        let lab = Self {
            home: tempfile::tempdir().expect("home"),
            dir: tempfile::Builder::new()
                .prefix("skillcell-lab-")
                .tempdir()
                .expect("dir"),
        };
        for d in ["ws", "loot", "ctl", "canary", "skills"] {
            fs::create_dir_all(lab.path(d)).expect("mkdir");
        }
        fs::write(lab.path("canary/secret.txt"), SECRET).expect("canary");
        lab
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn s(&self, rel: &str) -> String {
        self.path(rel).to_str().expect("utf8").to_owned()
    }

    /// Writes a skill folder (`SKILL.md` with `metadata` lines under `metadata:`, plus files),
    /// installs it and approves it. Panics if either fails.
    pub fn install(&self, name: &str, metadata: &[&str], files: &[(&str, &str)]) {
        self.install_pending(name, metadata, files);
        self.approve(name);
    }

    /// [`Lab::install`] without the approval: the version stays pending.
    pub fn install_pending(&self, name: &str, metadata: &[&str], files: &[(&str, &str)]) {
        let dir = self.path("skills").join(name);
        fs::create_dir_all(&dir).expect("mkdir");
        let mut md = format!(
            "---\nname: {name}\ndescription: Test skill {name} for the cell's security tests.\nmetadata:\n  author: tests\n"
        );
        for m in metadata {
            md.push_str("  ");
            md.push_str(m);
            md.push('\n');
        }
        md.push_str("---\n\nTest skill.\n");
        fs::write(dir.join("SKILL.md"), md).expect("SKILL.md");
        for (rel, body) in files {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, body).expect("write");
        }
        let out = self
            .cmd(&["install", dir.to_str().expect("utf8")])
            .output()
            .expect("install");
        assert!(
            out.status.success(),
            "install {name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Approves the current version of `name` as a person would: `skillcell approve` on a
    /// pseudo-terminal (util-linux `script`), the name typed as the confirmation.
    pub fn approve(&self, name: &str) {
        let out = approve_on_a_terminal(self.home.path(), name, &[]);
        assert!(out.status.success(), "approve {name} failed: {out:?}");
    }

    /// A one-file Python skill whose entry is `main.py`.
    pub fn python(&self, name: &str, metadata: &[&str], body: &str) {
        let mut m = vec!["skillcell.entry: main.py"];
        m.extend_from_slice(metadata);
        self.install(name, &m, &[("main.py", body)]);
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("SKILLCELL_HOME", self.home.path())
            .env("SECRET_API_KEY", SECRET)
            .env("GITHUB_TOKEN", SECRET)
            .stdin(Stdio::null());
        c
    }

    /// `skillcell run --json ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["run", "--json"];
        all.extend_from_slice(args);
        let out: Output = self.cmd(&all).output().expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            json,
        }
    }

    /// Every regular file under `dir` (recursively, not following links) as one string, for
    /// leak checks.
    pub fn slurp(&self, rel: &str) -> String {
        fn walk(p: &Path, out: &mut String) {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    let p = e.path();
                    // Links are not followed: a link the host planted to a canary is not a leak.
                    if p.is_symlink() {
                        continue;
                    }
                    if p.is_dir() {
                        walk(&p, out);
                    } else if let Ok(b) = fs::read(&p) {
                        out.push_str(&String::from_utf8_lossy(&b));
                        out.push('\n');
                    }
                }
            }
        }
        let mut s = String::new();
        walk(&self.path(rel), &mut s);
        s
    }

    /// Records of the audit trail, as JSON.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let log = self.home.path().join("audit/audit.log");
        fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The last `run` record about `skill`.
    pub fn last_run_record(&self, skill: &str) -> serde_json::Value {
        self.audit()
            .into_iter()
            .rev()
            .find(|r| r["op"] == "run" && r["skill"] == skill)
            .unwrap_or_else(|| panic!("no run record for {skill}"))
    }

    /// Starts `skillcell run NAME -- TOKEN …` for a probe skill (see [`PROBE_WAIT`]), waits
    /// for it to print READY, and returns the probe with the pid of the skill's process.
    pub fn probe(&self, name: &str, extra: &[&str], token: &str) -> Probe {
        let ctl = self.s("ctl");
        let mut args = vec!["run", name, "--path"];
        let ctl_arg = format!("CTL={ctl}");
        args.push(&ctl_arg);
        args.extend_from_slice(extra);
        args.push("--");
        args.push(token);
        let mut child = self
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        wait_ready(&mut child, &format!("probe {name}"));
        let pid = find_pid(token, child.id()).expect("the probe's process");
        Probe {
            child,
            pid,
            go: self.path("ctl").join(format!("go-{token}")),
        }
    }
}

/// Reads `child`'s stdout until the skill prints READY (at most 20 s; panics with its stderr
/// if it ends first), then keeps draining it in the background so the skill never blocks or
/// fails writing.
pub fn wait_ready(child: &mut Child, what: &str) {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match lines.next() {
            Some(Ok(l)) if l.trim() == "READY" => break,
            Some(Ok(_)) => {}
            _ => {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                let _ = child.wait();
                panic!("{what} never got ready: {err}");
            }
        }
        assert!(Instant::now() < deadline, "{what} not ready in 20 s");
    }
    std::thread::spawn(move || lines.for_each(drop));
}

/// The body every probe skill starts with: print READY, then wait until the host creates
/// `$CTL/go-<token>` (at most 30 s). Probes need `skillcell.fs.read: $CTL`.
pub const PROBE_WAIT: &str = r#"
import os, sys, time
def wait_for_host():
    print("READY", flush=True)
    go = os.path.join(os.environ["SKILLCELL_PATH_CTL"], "go-" + sys.argv[1])
    for _ in range(3000):
        if os.path.exists(go):
            return
        time.sleep(0.01)
"#;

pub struct Probe {
    pub child: Child,
    /// The skill's process, as the host sees it.
    pub pid: u32,
    go: PathBuf,
}

impl Probe {
    /// Lets the probe finish and returns its output.
    pub fn finish(self) -> Output {
        fs::write(&self.go, "").expect("go");
        self.child.wait_with_output().expect("wait")
    }

    pub fn proc(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/{rel}", self.pid))
    }

    /// A field of /proc/PID/status.
    pub fn status(&self, field: &str) -> String {
        fs::read_to_string(self.proc("status"))
            .expect("status")
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{field}:"))
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {field} in status"))
    }
}

/// The pid of the skill's process: its command line contains `token`, and it is not the
/// supervisor nor the cell's init (both run the skillcell binary, with the same arguments).
pub fn find_pid(token: &str, supervisor: u32) -> Option<u32> {
    let bin = fs::canonicalize(BIN).ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for e in fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == supervisor {
                continue;
            }
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let is_skillcell = fs::read_link(format!("/proc/{pid}/exe")).ok() == Some(bin.clone());
            if !is_skillcell
                && String::from_utf8_lossy(&cmd)
                    .split('\0')
                    .any(|a| a == token)
            {
                return Some(pid);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Host processes whose command line contains `token`.
pub fn processes_with(token: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(token) {
            v.push(pid);
        }
    }
    v
}

/// A token unique to this test run.
pub fn token(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "tok-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Runs `skillcell approve NAME EXTRA…` for the data dir `home` on a pseudo-terminal made by
/// util-linux `script`, typing `name` as the confirmation.
pub fn approve_on_a_terminal(home: &Path, name: &str, extra: &[&str]) -> std::process::Output {
    use std::io::Write as _;
    let mut line = format!("{BIN} approve {name}");
    for e in extra {
        line.push(' ');
        line.push_str(e);
    }
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("SKILLCELL_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{name}\n").as_bytes())
        .expect("type the confirmation");
    child.wait_with_output().expect("approve")
}
