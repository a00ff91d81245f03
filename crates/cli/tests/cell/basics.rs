//! The cell runs skills at all: tool skills get JSON on stdin, script skills arguments, the
//! exit code comes back, and every run is audited with its enforcement report.

use super::lab::{Lab, PROBE_WAIT, token};

#[test]
fn a_tool_skill_reads_json_on_stdin_and_its_exit_code_comes_back() {
    let lab = Lab::new();
    lab.python(
        "echo-tool",
        &[],
        "import json, sys\nv = json.load(sys.stdin)\nprint(json.dumps({'sum': sum(v['n'])}))\nsys.exit(7)\n",
    );
    let r = lab.run(&["echo-tool", "--input", r#"{"n":[1,2,3]}"#]);
    assert_eq!(r.code, 7, "{r:?}");
    assert_eq!(
        r.json["stdout"].as_str().map(str::trim),
        Some(r#"{"sum": 6}"#)
    );
    assert_eq!(r.outcome(), ("exited", 7));
    let rec = lab.last_run_record("echo-tool");
    assert_eq!(rec["decision"], "allow");
    assert_eq!(rec["details"]["report"]["outcome"]["code"], 7);
    let layers: Vec<&str> = rec["details"]["report"]["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    for want in [
        "namespaces",
        "filesystem",
        "landlock",
        "seccomp",
        "capabilities",
        "rlimits",
        "cgroup",
    ] {
        assert!(layers.contains(&want), "{want} missing from {layers:?}");
    }
}

#[test]
fn script_skills_get_arguments_and_each_runtime_runs() {
    let lab = Lab::new();
    lab.install(
        "multi",
        &[],
        &[
            ("a.py", "import sys\nprint('py', *sys.argv[1:])\n"),
            ("b.sh", "echo sh \"$@\"\n"),
            ("c.bash", "echo bash \"${@}\"\n"),
        ],
    );
    for (script, want) in [
        ("a.py", "py x y"),
        ("b.sh", "sh x y"),
        ("c.bash", "bash x y"),
    ] {
        let r = lab.run(&["multi", script, "--", "x", "y"]);
        assert_eq!(r.code, 0, "{script}: {r:?}");
        assert_eq!(
            r.json["stdout"].as_str().map(str::trim),
            Some(want),
            "{script}"
        );
    }
}

#[test]
fn the_skill_process_has_no_capabilities_no_new_privs_and_a_filter() {
    let lab = Lab::new();
    lab.python(
        "caps-probe",
        &["skillcell.fs.read: $CTL"],
        &format!("{PROBE_WAIT}\nwait_for_host()\n"),
    );
    let t = token("caps");
    let p = lab.probe("caps-probe", &[], &t);
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(p.status(set), "0000000000000000", "{set}");
    }
    assert_eq!(p.status("NoNewPrivs"), "1");
    assert_eq!(p.status("Seccomp"), "2");
    // Inside, the skill is uid 1000 and pid 2 of its own namespace.
    let nspid = p.status("NSpid");
    assert_eq!(nspid.split_whitespace().last(), Some("2"), "{nspid}");
    let out = p.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The operator's egress configuration is read at every run; a line it cannot understand
/// refuses the run (fail closed), audited, and nothing of the skill runs.
#[test]
fn a_broken_egress_configuration_refuses_the_run() {
    let lab = Lab::new();
    lab.python(
        "marks",
        &["skillcell.fs.write: $WORKSPACE"],
        "import os\nopen(os.environ['SKILLCELL_PATH_WORKSPACE'] + '/ran', 'w').close()\n",
    );
    let ws = lab.s("ws");
    // Positive control: with a valid configuration the skill runs and leaves its mark.
    std::fs::create_dir_all(lab.home.path().join("config")).expect("config dir");
    std::fs::write(
        lab.home.path().join("config/egress.conf"),
        "map svc.test 127.0.0.1\n",
    )
    .expect("conf");
    let r = lab.run(&["marks", "--workspace", &ws]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(lab.path("ws/ran").exists(), "the control run left no mark");
    std::fs::remove_file(lab.path("ws/ran")).expect("rm");

    std::fs::write(
        lab.home.path().join("config/egress.conf"),
        "map svc.test 127.0.0.1\nproxy 10.0.0.1\n",
    )
    .expect("conf");
    let r = lab.run(&["marks", "--workspace", &ws]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stdout.contains("egress.conf:2"), "{r:?}");
    assert!(!lab.path("ws/ran").exists(), "the skill ran anyway");
    let rec = lab.last_run_record("marks");
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["details"]["code"], "egress_unavailable");
}
