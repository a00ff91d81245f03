//! Cleanup (the "done when"): many runs in a loop, some killed by limits, some by the
//! wall clock, some leaving children behind, leave no process, mount, cgroup or temp dir
//! behind; killing the supervisor mid-run leaves no process behind either, and the next run
//! collects the cgroups the killed one could not remove. Judged from the host: the process
//! table, the pid namespace of the cell, /sys/fs/cgroup, the host's mount table, /tmp and the
//! data dir.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::lab::{Lab, find_pid, processes_with, token, wait_ready};

/// One kind of run in the loop: a `sh` skill, its limits, its body, and what the JSON report
/// must say about it.
struct Case {
    name: &'static str,
    limits: &'static str,
    body: &'static str,
    /// `(outcome kind, exit code or signal)`.
    outcome: (&'static str, i64),
    limit_hit: Option<&'static str>,
    /// A denial code the report must carry.
    denial: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "c-ok",
        limits: "wall=10s",
        body: "echo ok\n",
        outcome: ("exited", 0),
        limit_hit: None,
        denial: None,
    },
    Case {
        name: "c-exit3",
        limits: "wall=10s",
        body: "echo failing >&2\nexit 3\n",
        outcome: ("exited", 3),
        limit_hit: None,
        denial: None,
    },
    // The string doubles until the cgroup's OOM killer takes the shell (16M is the whole
    // cell's memory; the shell alone is far below it when it starts).
    Case {
        name: "c-memory",
        limits: "memory=16M wall=10s",
        body: "x=a\nwhile :; do x=\"$x$x\"; done\n",
        outcome: ("signaled", 9),
        limit_hit: Some("memory"),
        denial: Some("memory_limit"),
    },
    Case {
        name: "c-cpu",
        limits: "cpu=100ms wall=10s",
        body: "while :; do :; done\n",
        outcome: ("signaled", 9),
        limit_hit: Some("cpu"),
        denial: Some("cpu_limit"),
    },
    Case {
        name: "c-wall",
        limits: "wall=100ms",
        body: "sleep 5\n",
        outcome: ("signaled", 9),
        limit_hit: Some("wall"),
        denial: Some("wall_limit"),
    },
    // A real fork bomb: every process forks forever. The first refused fork makes the shell
    // exit 2 ("Cannot fork"); the report counts the refused forks.
    Case {
        name: "c-bomb",
        limits: "pids=4 wall=10s",
        body: "f() { f & f; }\nf\n",
        outcome: ("exited", 2),
        limit_hit: None,
        denial: Some("pids_limit"),
    },
    // Children left behind, one of them double-forked: the subshells are forks of the shell,
    // so their command line carries the loop's token.
    Case {
        name: "c-orphans",
        limits: "wall=10s",
        body: "(sleep 100; :) &\n(sleep 100; :) &\n( (sleep 100; :) & ) &\necho left\n",
        outcome: ("exited", 0),
        limit_hit: None,
        denial: None,
    },
];

fn install_sh(lab: &Lab, name: &str, limits: &str, body: &str) {
    let limits = format!("skillcell.limits: {limits}");
    lab.install(
        name,
        &[
            "skillcell.entry: main.sh",
            "skillcell.runtime: sh",
            "skillcell.exec: sleep",
            &limits,
        ],
        &[("main.sh", body)],
    );
}

/// Every `skillcell` directory (the parent of run cgroups) in every hierarchy.
fn skillcell_cgroup_parents() -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
        if depth > 6 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name();
            if name == "skillcell" {
                out.push(p);
            } else if !name.to_string_lossy().starts_with("run-") {
                walk(&p, depth + 1, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 0, &mut v);
    v
}

/// Run cgroup directories (`run-<supervisor pid>-<nonce>`) of supervisor `pid`, in any
/// hierarchy.
fn run_cgroups_of(parents: &[PathBuf], pid: u32) -> Vec<PathBuf> {
    let prefix = format!("run-{pid}-");
    parents
        .iter()
        .filter_map(|p| fs::read_dir(p).ok())
        .flat_map(|rd| rd.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// The host's mounts, as `root mountpoint fstype source` (ids left out).
fn host_mounts() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-").unwrap_or(f.len());
            format!(
                "{} {} {} {}",
                f.get(3).unwrap_or(&""),
                f.get(4).unwrap_or(&""),
                f.get(sep + 1).unwrap_or(&""),
                f.get(sep + 2).unwrap_or(&"")
            )
        })
        .collect()
}

/// Entries of /tmp, but the scratch dirs of the tests themselves (`tempfile`'s `.tmp*` and
/// the lab's `skillcell-lab-*`), which parallel tests create and remove all the time.
fn tmp_entries() -> BTreeSet<String> {
    fs::read_dir("/tmp")
        .expect("/tmp")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".tmp") && !n.starts_with("skillcell-lab-"))
        .collect()
}

/// One `skillcell run --json NAME -- TOKEN`, with the supervisor's pid.
fn run_once(lab: &Lab, name: &str, tok: &str) -> (u32, i32, serde_json::Value, String) {
    let child = lab
        .cmd(&["run", "--json", name, "--", tok])
        .env("TMPDIR", lab.path("tmpdir"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (pid, out.status.code().unwrap_or(-1), json, all)
}

fn check_outcome(case: &Case, code: i32, json: &serde_json::Value, all: &str, i: usize) {
    let report = &json["report"];
    let o = &report["outcome"];
    let got = (
        o["kind"].as_str().unwrap_or("?"),
        o["code"].as_i64().or(o["signal"].as_i64()).unwrap_or(-1),
    );
    assert_eq!(got, case.outcome, "run {i} ({}): {all}", case.name);
    let want_code = match case.outcome {
        ("signaled", s) => 128 + s,
        (_, c) => c,
    };
    assert_eq!(i64::from(code), want_code, "run {i} ({}): {all}", case.name);
    assert_eq!(
        report["limit_hit"].as_str(),
        case.limit_hit,
        "run {i} ({}): {all}",
        case.name
    );
    if let Some(d) = case.denial {
        let codes: Vec<&str> = report["denials"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d["code"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            codes.contains(&d),
            "run {i} ({}): no {d} in {codes:?}: {all}",
            case.name
        );
    }
}

/// The run's own cgroup directories, as its report names them.
fn reported_cgroups(json: &serde_json::Value) -> Vec<PathBuf> {
    json["report"]["cgroup"]["controllers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c[1].as_str().or(c["path"].as_str()))
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the cases round-robin `n` times, checking each outcome and, after each run, that its
/// cgroups are gone and none of its processes is left; then judges the host as a whole.
fn loop_of_runs(n: usize) {
    let lab = Lab::new();
    for c in CASES {
        install_sh(&lab, c.name, c.limits, c.body);
    }
    let tok = token("loop");
    // skillcell's own temp files (if it ever makes any) land in a private TMPDIR, which must
    // stay empty; /tmp itself is compared too, for code that ignores TMPDIR.
    fs::create_dir(lab.path("tmpdir")).expect("tmpdir");
    let mounts_before = host_mounts();
    let tmp_before = tmp_entries();
    let started = Instant::now();
    let mut run_ids = BTreeSet::new();
    for i in 0..n {
        let case = &CASES[i % CASES.len()];
        let (pid, code, json, all) = run_once(&lab, case.name, &tok);
        run_ids.insert(json["run"].as_str().unwrap_or_default().to_owned());
        check_outcome(case, code, &json, &all, i);
        if case.name == "c-ok" {
            assert_eq!(json["stdout"].as_str(), Some("ok\n"), "run {i}: {all}");
        }
        // The run's cgroups exist while it runs (the report names them) and are removed by
        // the supervisor itself before it exits: not left for the next run to collect.
        let reported = reported_cgroups(&json);
        assert!(!reported.is_empty(), "run {i}: no cgroup in the report");
        for d in &reported {
            assert!(!d.exists(), "run {i} ({}) left {}", case.name, d.display());
        }
        let left = run_cgroups_of(&skillcell_cgroup_parents(), pid);
        assert!(left.is_empty(), "run {i} ({}) left {left:?}", case.name);
        let procs = processes_with(&tok);
        assert!(
            procs.is_empty(),
            "run {i} ({}) left processes {procs:?}",
            case.name
        );
    }
    let elapsed = started.elapsed();
    eprintln!(
        "cleanup loop: {n} runs in {:.1} s, {:.1} runs/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );

    // The host as a whole.
    assert_eq!(processes_with(&tok), Vec::<u32>::new(), "processes left");
    // By run id, not by supervisor pid: over 1,000 runs, another test's supervisor may well
    // get one of those pids again and be running now.
    let stale: Vec<PathBuf> = skillcell_cgroup_parents()
        .iter()
        .filter_map(|p| fs::read_dir(p).ok())
        .flat_map(|rd| rd.flatten())
        .filter(|e| run_ids.contains(e.file_name().to_string_lossy().as_ref()))
        .map(|e| e.path())
        .collect();
    assert!(stale.is_empty(), "run cgroups left: {stale:?}");
    let new_mounts: Vec<String> = host_mounts().difference(&mounts_before).cloned().collect();
    assert!(new_mounts.is_empty(), "mounts left: {new_mounts:?}");
    let private_tmp: Vec<_> = fs::read_dir(lab.path("tmpdir"))
        .expect("tmpdir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(private_tmp.is_empty(), "left in TMPDIR: {private_tmp:?}");
    // /tmp is shared with whatever else runs on the machine, so an entry that appeared during
    // the loop is counted as ours when it looks like skillcell's, or when there are so many
    // that some case must have left one per run.
    let new_tmp: Vec<String> = tmp_entries().difference(&tmp_before).cloned().collect();
    let ours: Vec<&String> = new_tmp
        .iter()
        .filter(|n| n.contains("skillcell") || n.contains("cell") || n.starts_with("run-"))
        .collect();
    assert!(
        ours.is_empty() && new_tmp.len() < n / CASES.len(),
        "new entries in /tmp after {n} runs: {new_tmp:?}"
    );
    let run_dir: Vec<String> = fs::read_dir(lab.home.path().join("run"))
        .expect("run/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(run_dir, ["runtimes.json"], "the data dir's run/");
    // Every run is in the audit trail, with its report.
    let runs = lab
        .audit()
        .into_iter()
        .filter(|r| r["op"] == "run" && r["decision"] == "allow")
        .count();
    assert_eq!(runs, n, "run records in the audit trail");
}

#[test]
fn a_thousand_runs_killed_or_not_leave_no_process_cgroup_mount_or_temp_dir() {
    // About 2 minutes in a debug build on 2 cores: the issue asks for 1,000, CI runs 1,000.
    loop_of_runs(1000);
}

// ---- killing the supervisor mid-run ----

/// Processes (on the host) whose pid namespace is `ns` (a `pid:[…]` link).
fn processes_in_pidns(ns: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l.to_string_lossy() == ns) {
            v.push(pid);
        }
    }
    v
}

/// Installs a skill whose shell forks three children (each a subshell carrying the token,
/// each with a `sleep` child), prints READY and waits for them.
fn start_family(lab: &Lab, tok: &str) -> Child {
    install_sh(
        lab,
        "family",
        "wall=30s pids=16",
        "[ \"$1\" = quick ] && exit 0\n(sleep 100; :) &\n(sleep 100; :) &\n(sleep 100; :) &\necho READY\nwait\n",
    );
    let mut child = lab
        .cmd(&["run", "family", "--", tok])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_ready(&mut child, "the family");
    child
}

/// Starts the family, kills the supervisor with `signal`, and checks that every process of
/// the cell is gone within 2 s, that the next run succeeds, and that it collected the killed
/// supervisor's run cgroups.
fn kill_supervisor_mid_run(signal: &str) {
    let lab = Lab::new();
    let tok = token(&format!("kill-{signal}"));
    let mut sup = start_family(&lab, &tok);
    let sup_pid = sup.id();
    let skill = find_pid(&tok, sup_pid).expect("the skill's shell");
    let ns = fs::read_link(format!("/proc/{skill}/ns/pid"))
        .expect("pid ns")
        .to_string_lossy()
        .into_owned();
    // Positive control: the host sees the whole family (init, shell, 3 subshells, 3 sleeps)
    // before the kill, in the cell's pid namespace and by the token.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let in_ns = processes_in_pidns(&ns).len();
        // The supervisor, the shell and the three subshells carry the token.
        let with_tok = processes_with(&tok).len();
        if in_ns >= 8 && with_tok >= 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the family never appeared: {in_ns} in the namespace, {with_tok} with the token"
        );
        sleep(Duration::from_millis(10));
    }
    let parents = skillcell_cgroup_parents();
    assert!(
        !run_cgroups_of(&parents, sup_pid).is_empty(),
        "the running supervisor has no run cgroup"
    );

    let st = Command::new("kill")
        .args(["-s", signal, &sup_pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -s {signal} {sup_pid}");
    let killed = Instant::now();
    let status = sup.wait().expect("wait");
    // SIGKILL cannot be handled; TERM and INT may one day be (a clean exit is fine too).
    assert!(
        !status.success() && (signal != "KILL" || status.code().is_none()),
        "the supervisor did not die of SIG{signal}: {status}"
    );
    let (mut in_ns, mut with_tok);
    loop {
        in_ns = processes_in_pidns(&ns);
        with_tok = processes_with(&tok);
        if (in_ns.is_empty() && with_tok.is_empty()) || killed.elapsed() > Duration::from_secs(2) {
            break;
        }
        sleep(Duration::from_millis(10));
    }
    assert!(
        in_ns.is_empty() && with_tok.is_empty(),
        "2 s after SIG{signal} to the supervisor, processes remain: {in_ns:?} in the cell's pid \
         namespace, {with_tok:?} with the token"
    );

    // An interruption the supervisor can handle still leaves its record: the run, killed,
    // with an `interrupted` denial.
    if signal != "KILL" {
        let rec = lab.last_run_record("family");
        let denials = rec["details"]["report"]["denials"].to_string();
        assert!(denials.contains("\"interrupted\""), "{rec}");
    }

    // The next run on the same data dir works and collects the dead supervisor's cgroups.
    let r = lab.run(&["family", "--", "quick"]);
    assert_eq!(r.outcome(), ("exited", 0), "{r:?}");
    let left = run_cgroups_of(&skillcell_cgroup_parents(), sup_pid);
    assert!(
        left.is_empty(),
        "run cgroups of the killed supervisor left after the next run: {left:?}"
    );
}

#[test]
fn sigkill_to_the_supervisor_mid_run_leaves_no_process_and_the_next_run_collects_its_cgroups() {
    kill_supervisor_mid_run("KILL");
}

#[test]
fn sigterm_to_the_supervisor_mid_run_leaves_no_process_and_the_next_run_collects_its_cgroups() {
    kill_supervisor_mid_run("TERM");
}

#[test]
fn sigint_to_the_supervisor_mid_run_leaves_no_process_and_the_next_run_collects_its_cgroups() {
    kill_supervisor_mid_run("INT");
}
