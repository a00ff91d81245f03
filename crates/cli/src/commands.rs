//! One function per command.

use std::io::IsTerminal;
use std::path::Path;

use serde::Serialize;
use skillcell_audit::AuditLog;
use skillcell_developer::{DevError, Developer};
use skillcell_manifest::Report;
use skillcell_sandbox_linux::doctor::{self, Status};
use skillcell_store::{Home, RegistryError, RegistryReader};
use skillcell_types::text::escape;

use crate::outln;
use crate::output::{Failure, Table, escape_multiline, finding_line, print_json};
use crate::{AuditAction, Cli, Command, exit};

pub fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let json = cli.json;
    match &cli.command {
        Command::New { name, dir } => new(name, dir, json),
        Command::Lint { path } => lint(path, json),
        Command::Doctor => doctor(cli.home().ok().as_ref(), json),
        Command::Install { path } => install(&cli.home()?, path, json),
        Command::List => list(&cli.home()?, json),
        Command::Show { name } => show(&cli.home()?, name, json),
        Command::Remove { name } => remove(&cli.home()?, name, json),
        Command::Rollback { name } => rollback(&cli.home()?, name, json),
        Command::Approve {
            name,
            seq,
            accept_risk,
        } => crate::approve::approve(&cli.home()?, name, *seq, accept_risk, json),
        Command::Reject { name, seq, reason } => {
            crate::approve::reject(&cli.home()?, name, *seq, reason, json)
        }
        Command::Keygen { out } => crate::keys::keygen(&cli.home()?, out.as_ref(), json),
        Command::Sign { path, key } => crate::keys::sign(&cli.home()?, path, key.as_ref(), json),
        Command::Trust { action } => crate::keys::trust(&cli.home()?, action, json),
        Command::Policy { action } => crate::keys::policy(&cli.home()?, action.as_ref(), json),
        Command::Advisories { action } => {
            crate::keys::advisories(&cli.home()?, action.as_ref(), json)
        }
        Command::Verify => verify(&cli.home()?, json),
        Command::Audit {
            action: Some(AuditAction::Verify),
            ..
        } => audit_verify(&cli.home()?, json),
        Command::Audit {
            action: None,
            skill,
            op,
            decision,
            last,
        } => audit_list(&cli.home()?, skill, op, decision, *last, json),
        Command::Run {
            name,
            script,
            input,
            workspace,
            paths,
            report,
            args,
        } => crate::run::run(
            &cli.home()?,
            &crate::run::RunArgs {
                name,
                script: script.as_deref(),
                input: input.as_deref(),
                workspace: workspace.as_ref(),
                paths,
                report: *report,
                args,
            },
            json,
        ),
    }
}

pub(crate) fn dev_failure(e: DevError) -> Failure {
    match e {
        DevError::Refused(r) => {
            Failure::new(exit::REFUSED, "refused", format!("install refused: {r}")).with_detail(r)
        }
        DevError::Manifest(report) => Failure::new(
            exit::REFUSED,
            "invalid_skill",
            format!("SKILL.md refused:\n{report}"),
        )
        .with_detail(report),
        e @ DevError::UnknownSkill(_) => Failure::new(exit::NOT_FOUND, "not_found", e.to_string()),
        e @ DevError::Registry(RegistryError::UnknownSkill(_)) => {
            Failure::new(exit::NOT_FOUND, "not_found", e.to_string())
        }
        e @ DevError::NoPrevious { .. } => {
            Failure::new(exit::REFUSED, "no_previous_version", e.to_string())
        }
        e @ DevError::UnknownVersion { .. } => {
            Failure::new(exit::NOT_FOUND, "not_found", e.to_string())
        }
        e @ DevError::NotApprovable { .. } => {
            Failure::new(exit::REFUSED, "not_approvable", e.to_string())
        }
        DevError::Inadmissible { findings } => Failure::new(
            exit::REFUSED,
            "inadmissible",
            format!(
                "install refused: {} critical finding(s):\n{}",
                findings.len(),
                findings
                    .iter()
                    .map(|f| format!("{}\n    fix: {}", finding_line(f), escape(&f.hint)))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        )
        .with_detail(findings),
        e @ DevError::Sign(_) => Failure::new(exit::REFUSED, "admission_config", e.to_string()),
        e => Failure::internal("developer", e.to_string()),
    }
}

fn registry_failure(e: RegistryError) -> Failure {
    match e {
        e @ RegistryError::UnknownSkill(_) => {
            Failure::new(exit::NOT_FOUND, "not_found", e.to_string())
        }
        e => Failure::internal("registry", e.to_string()),
    }
}

pub(crate) fn open_dev(home: &Home) -> Result<Developer, Failure> {
    Developer::open(home.clone()).map_err(dev_failure)
}

/// The registry, read-only; `None` if nothing was ever installed.
fn open_reader(home: &Home) -> Result<Option<RegistryReader>, Failure> {
    match RegistryReader::open(&home.registry_db()) {
        Ok(r) => Ok(Some(r)),
        Err(RegistryError::Missing { .. }) => Ok(None),
        Err(e) => Err(registry_failure(e)),
    }
}

fn print_report(report: &Report) {
    for d in &report.0 {
        eprintln!("{d}");
    }
}

fn new(name: &str, dir: &Path, json: bool) -> Result<u8, Failure> {
    let path = skillcell_developer::scaffold(dir, name)
        .map_err(|e| Failure::new(exit::REFUSED, "scaffold", e.to_string()))?;
    // What we scaffold must lint clean; if it does not, that is our bug, said loudly.
    if let Err(report) = skillcell_manifest::load_dir(&path) {
        return Err(Failure::internal(
            "scaffold_invalid",
            format!("the scaffold does not lint clean (a skillcell bug):\n{report}"),
        ));
    }
    if json {
        print_json(&serde_json::json!({ "created": path }))?;
    } else {
        outln!("created {}", path.display());
        outln!(
            "next: edit {}/SKILL.md, then `skillcell lint {}`",
            path.display(),
            path.display()
        );
    }
    Ok(exit::OK)
}

#[derive(Serialize)]
struct LintOutput<'a> {
    ok: bool,
    path: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contract: Option<&'a skillcell_types::Contract>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contract_hash: Option<String>,
    diagnostics: &'a Report,
}

fn lint(path: &Path, json: bool) -> Result<u8, Failure> {
    match skillcell_manifest::load_dir(path) {
        Ok(skill) => {
            let c = &skill.manifest.contract;
            if json {
                print_json(&LintOutput {
                    ok: true,
                    path,
                    name: Some(skill.manifest.name.to_string()),
                    contract: Some(c),
                    contract_hash: Some(c.digest().to_string()),
                    diagnostics: &skill.report,
                })?;
            } else {
                print_report(&skill.report);
                outln!(
                    "ok: {} ({} warning(s))",
                    skill.manifest.name,
                    skill.report.warnings().count()
                );
                outln!("it will be able to:");
                for line in c.describe() {
                    outln!("  - {}", escape(&line));
                }
            }
            Ok(exit::OK)
        }
        Err(report) => {
            if json {
                print_json(&LintOutput {
                    ok: false,
                    path,
                    name: None,
                    contract: None,
                    contract_hash: None,
                    diagnostics: &report,
                })?;
            } else {
                print_report(&report);
                eprintln!("refused: {} error(s)", report.errors().count());
            }
            Ok(exit::REFUSED)
        }
    }
}

fn install(home: &Home, path: &Path, json: bool) -> Result<u8, Failure> {
    let mut dev = open_dev(home)?;
    let out = dev.install(path).map_err(dev_failure)?;
    if json {
        print_json(&out)?;
        return Ok(exit::OK);
    }
    print_report(&out.warnings);
    if out.unchanged {
        outln!(
            "{} is already installed as version {} (tree {}, {}); nothing changed",
            out.name,
            out.seq,
            out.tree_hash.short(),
            out.state
        );
        return Ok(exit::OK);
    }
    outln!(
        "installed {} version {} (tree {}, contract {}, {} files, {} bytes)",
        out.name,
        out.seq,
        out.tree_hash.short(),
        out.contract_hash.short(),
        out.files,
        out.bytes
    );
    outln!("it will be able to:");
    for line in out.contract.describe() {
        outln!("  - {}", escape(&line));
    }
    for f in &out.findings {
        outln!("{}", finding_line(f));
    }
    outln!(
        "it is pending: it runs once a person approves it with `skillcell approve {}` at a terminal",
        out.name
    );
    Ok(exit::OK)
}

fn list(home: &Home, json: bool) -> Result<u8, Failure> {
    let skills = match open_reader(home)? {
        Some(r) => r.list().map_err(registry_failure)?,
        None => Vec::new(),
    };
    if json {
        print_json(&skills)?;
        return Ok(exit::OK);
    }
    if skills.is_empty() {
        outln!("no skills installed (install one with `skillcell install PATH`)");
        return Ok(exit::OK);
    }
    let mut t = Table::new(&["NAME", "VERSION", "STATE", "PROFILE", "TREE", "INSTALLED"]);
    for s in &skills {
        match &s.current {
            Some(v) => t.row(vec![
                s.name.to_string(),
                format!("{}/{}", v.seq, s.versions),
                v.state.to_string(),
                profile_word(&v.contract),
                v.tree_hash.short(),
                v.installed_at.clone(),
            ]),
            None => t.row(vec![
                s.name.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
        }
    }
    t.print();
    Ok(exit::OK)
}

fn profile_word(c: &skillcell_types::Contract) -> String {
    match c.profile {
        skillcell_types::Profile::DefaultBlind => "default-blind".into(),
        skillcell_types::Profile::Declared => "declared".into(),
    }
}

fn show(home: &Home, name: &str, json: bool) -> Result<u8, Failure> {
    let reader = open_reader(home)?
        .ok_or_else(|| registry_failure(RegistryError::UnknownSkill(name.to_owned())))?;
    let versions = reader.versions(name).map_err(registry_failure)?;
    let history = reader.history(name).map_err(registry_failure)?;
    if json {
        print_json(&serde_json::json!({ "name": name, "versions": versions, "history": history }))?;
        return Ok(exit::OK);
    }
    let current = versions.iter().find(|v| v.current);
    outln!("{}", escape(name));
    if let Some(v) = current {
        outln!("  {}", escape_multiline(&v.description));
        outln!(
            "  current: version {} ({}), tree {}, contract {}",
            v.seq,
            v.state,
            v.tree_hash,
            v.contract_hash
        );
        if let Some(r) = &v.state_reason {
            outln!("  state reason: {}", escape(r));
        }
        outln!("  store: {}", home.tree_dir(&v.tree_hash).display());
        outln!("  it can:");
        for line in v.contract.describe() {
            outln!("    - {}", escape(&line));
        }
    }
    outln!("");
    let mut t = Table::new(&[
        "VERSION",
        "STATE",
        "TREE",
        "CONTRACT",
        "INSTALLED",
        "SOURCE",
    ]);
    for v in &versions {
        let mark = if v.current { "*" } else { " " };
        t.row(vec![
            format!("{}{mark}", v.seq),
            v.state.to_string(),
            v.tree_hash.short(),
            v.contract_hash.short(),
            v.installed_at.clone(),
            v.source.clone(),
        ]);
    }
    t.print();
    outln!("");
    let mut h = Table::new(&["WHEN", "EVENT", "BY", "DETAIL"]);
    for e in &history {
        h.row(vec![
            e.at.clone(),
            e.event.clone(),
            e.actor.clone(),
            e.detail.clone(),
        ]);
    }
    h.print();
    Ok(exit::OK)
}

fn remove(home: &Home, name: &str, json: bool) -> Result<u8, Failure> {
    let mut dev = open_dev(home)?;
    let removed = dev.remove(name).map_err(dev_failure)?;
    if json {
        print_json(&serde_json::json!({ "removed": name, "trees_deleted": removed }))?;
    } else {
        outln!(
            "removed {} ({} tree(s) deleted)",
            escape(name),
            removed.len()
        );
    }
    Ok(exit::OK)
}

fn rollback(home: &Home, name: &str, json: bool) -> Result<u8, Failure> {
    let mut dev = open_dev(home)?;
    let out = dev.rollback(name).map_err(dev_failure)?;
    if json {
        print_json(&out)?;
    } else {
        outln!(
            "{}: version {} -> version {} (tree {})",
            escape(name),
            out.from_seq,
            out.to_seq,
            out.tree_hash.short()
        );
    }
    Ok(exit::OK)
}

fn verify(home: &Home, json: bool) -> Result<u8, Failure> {
    if open_reader(home)?.is_none() {
        if json {
            print_json(&serde_json::json!({ "versions": [], "orphan_trees": [] }))?;
        } else {
            outln!("nothing installed, nothing to verify");
        }
        return Ok(exit::OK);
    }
    let mut dev = open_dev(home)?;
    let bar = indicatif::ProgressBar::new(0);
    if json || !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let report = dev
        .verify_with_progress(&mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .map_err(dev_failure)?;
    bar.finish_and_clear();
    let bad = report.versions.iter().filter(|v| v.outcome != "ok").count();
    if json {
        print_json(&report)?;
    } else {
        let mut t = Table::new(&["NAME", "VERSION", "TREE", "RESULT", "REASON"]);
        for v in &report.versions {
            t.row(vec![
                v.name.clone(),
                v.seq.to_string(),
                v.tree_hash.short(),
                v.outcome.to_string(),
                v.reason.clone().unwrap_or_default(),
            ]);
        }
        t.print();
        for o in &report.orphan_trees {
            outln!("note: store tree {} belongs to no version", escape(o));
        }
        outln!(
            "{} version(s) checked, {} tampered ({} newly quarantined)",
            report.versions.len(),
            bad,
            report.newly_quarantined()
        );
    }
    Ok(if bad > 0 { exit::INTEGRITY } else { exit::OK })
}

fn audit_list(
    home: &Home,
    skill: &Option<String>,
    op: &Option<String>,
    decision: &Option<String>,
    last: Option<usize>,
    json: bool,
) -> Result<u8, Failure> {
    let log = AuditLog::new(home.audit_dir());
    let records = log
        .read_all()
        .map_err(|e| Failure::new(exit::INTEGRITY, "audit_unreadable", e.to_string()))?;
    let mut selected: Vec<_> = records
        .into_iter()
        .filter(|r| {
            skill
                .as_ref()
                .is_none_or(|s| r.event.skill.as_ref() == Some(s))
        })
        .filter(|r| op.as_ref().is_none_or(|o| &r.event.op == o))
        .filter(|r| {
            decision
                .as_ref()
                .is_none_or(|d| r.event.decision.to_string() == *d)
        })
        .collect();
    if let Some(n) = last {
        let skip = selected.len().saturating_sub(n);
        selected.drain(..skip);
    }
    if json {
        print_json(&selected)?;
        return Ok(exit::OK);
    }
    let mut t = Table::new(&[
        "SEQ", "TIME", "ROLE", "USER", "OP", "SKILL", "VERSION", "DECISION", "REASON",
    ]);
    for r in &selected {
        let role = serde_json::to_value(r.event.actor.role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        t.row(vec![
            r.seq.to_string(),
            r.ts.clone(),
            role,
            r.event.actor.user.clone(),
            r.event.op.clone(),
            r.event.skill.clone().unwrap_or_else(|| "-".into()),
            r.event.version.map_or("-".into(), |v| v.short()),
            r.event.decision.to_string(),
            r.event.reason.clone(),
        ]);
    }
    if t.is_empty() {
        outln!("no audit records match");
    } else {
        t.print();
    }
    Ok(exit::OK)
}

fn audit_verify(home: &Home, json: bool) -> Result<u8, Failure> {
    let log = AuditLog::new(home.audit_dir());
    let mut v = log
        .verify()
        .map_err(|e| Failure::internal("audit", e.to_string()))?;
    // Every registry history row was written with an audit record whose hash it keeps: the
    // executor can rewrite the trail, not the registry.
    if let Some(reader) = open_reader(home)? {
        match log.read_all() {
            Ok(records) => v.problems.extend(
                skillcell_developer::audit_anchor_problems(&reader, &records)
                    .map_err(dev_failure)?,
            ),
            Err(_) if !v.ok() => {} // already reported line by line
            Err(e) => return Err(Failure::internal("audit", e.to_string())),
        }
    }
    if json {
        print_json(&serde_json::json!({
            "ok": v.ok(),
            "records": v.records,
            "head": v.head,
            "problems": v.problems,
        }))?;
    } else {
        for p in &v.problems {
            let place = if p.line == 0 {
                "audit.head".to_owned()
            } else {
                format!("audit.log:{}", p.line)
            };
            outln!("{place}: {}: {}", p.code, escape(&p.detail));
        }
        match (v.ok(), v.head) {
            (true, Some(h)) => outln!("ok: {} record(s), chain intact, head {h}", v.records),
            (true, None) => outln!("ok: the audit trail is empty"),
            (false, _) => outln!(
                "TAMPERED: {} problem(s) in {} record(s)",
                v.problems.len(),
                v.records
            ),
        }
    }
    Ok(if v.ok() { exit::OK } else { exit::INTEGRITY })
}

/// The end-to-end check: `/bin/true` in a real cell, every layer `run` applies.
fn cell_check() -> doctor::Check {
    let meaning = "every layer of `skillcell run` applied together: a real cell runs /bin/true";
    let started = std::time::Instant::now();
    let outcome = (|| -> Result<(), String> {
        let cell = skillcell_sandbox_linux::PreparedCell::prepare().map_err(|e| e.to_string())?;
        let cache = std::env::temp_dir().join(format!("skillcell-doctor-{}", std::process::id()));
        std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
        let program = skillcell_executor::runtimes::resolve_executable(
            &skillcell_types::Executable::Path("/bin/true".into()),
            &cache,
        );
        let _ = std::fs::remove_dir_all(&cache);
        let program = program.map_err(|e| e.to_string())?;
        let mut mounts = program.mounts;
        mounts.push(skillcell_sandbox::Mount {
            target: "/tmp".into(),
            kind: skillcell_sandbox::MountKind::Tmpfs {
                size_bytes: 1 << 20,
            },
        });
        let spec = skillcell_sandbox::CellSpec {
            argv: vec![program.program.to_string_lossy().into_owned()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/".into(),
            hostname: "cell-doctor".into(),
            mounts,
            exec: program.exec,
            limits: skillcell_sandbox::CellLimits {
                memory_bytes: 64 << 20,
                cpu_ms: 5_000,
                wall_ms: 10_000,
                pids: 8,
                fsize_bytes: 1 << 20,
                nofile: 64,
                output_bytes: 64 << 10,
                tmp_bytes: 1 << 20,
            },
            proxy_port: None,
        };
        let report = cell
            .run(&spec, &[], &mut std::io::sink(), &mut std::io::sink())
            .map_err(|e| e.to_string())?;
        match report.outcome {
            skillcell_sandbox::Outcome::Exited { code: 0 } => Ok(()),
            skillcell_sandbox::Outcome::SetupFailed { step, message } => {
                Err(format!("the cell failed at {step}: {message}"))
            }
            other => Err(format!("/bin/true ended with {other:?}")),
        }
    })();
    match outcome {
        Ok(()) => doctor::Check {
            id: "cell",
            status: Status::Ok,
            found: format!(
                "/bin/true ran in a cell in {} ms",
                started.elapsed().as_millis()
            ),
            meaning,
            fix: None,
        },
        Err(e) => doctor::Check {
            id: "cell",
            status: Status::Fail,
            found: e,
            meaning,
            fix: Some(
                "the step named is the layer that could not be applied; see the checks above"
                    .into(),
            ),
        },
    }
}

/// The operator's egress configuration, and where allowed names will be resolved.
fn egress_check(home: Option<&skillcell_store::Home>) -> doctor::Check {
    let meaning =
        "the egress proxy resolves declared names with these servers; a bad line refuses every run";
    let Some(home) = home else {
        return doctor::Check {
            id: "egress",
            status: Status::Warn,
            found: "no data dir (set SKILLCELL_HOME or --home) to read config/egress.conf from"
                .into(),
            meaning,
            fix: None,
        };
    };
    let path = home.egress_config();
    match skillcell_egress::EgressConfig::load(&path) {
        Err(e) => doctor::Check {
            id: "egress",
            status: Status::Fail,
            found: e.to_string(),
            meaning,
            fix: Some(format!(
                "correct {} (docs/egress.md lists its directives)",
                path.display()
            )),
        },
        Ok(c) if !c.nameservers.is_empty() => doctor::Check {
            id: "egress",
            status: Status::Ok,
            found: format!(
                "{}: nameservers {}; {} mapped names",
                path.display(),
                c.nameservers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                c.map.len()
            ),
            meaning,
            fix: None,
        },
        Ok(c) => {
            let servers: Vec<String> = std::fs::read_to_string("/etc/resolv.conf")
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .map(|s| s.trim().to_owned())
                .collect();
            doctor::Check {
                id: "egress",
                status: if servers.is_empty() {
                    Status::Warn
                } else {
                    Status::Ok
                },
                found: if servers.is_empty() {
                    format!(
                        "no nameserver in /etc/resolv.conf nor {}: only mapped names resolve ({} mapped)",
                        path.display(),
                        c.map.len()
                    )
                } else {
                    format!(
                        "the host's resolvers ({}); {} mapped names",
                        servers.join(", "),
                        c.map.len()
                    )
                },
                meaning,
                fix: servers
                    .is_empty()
                    .then(|| format!("add `nameserver ADDRESS` to {}", path.display())),
            }
        }
    }
}

/// The WASM cell: an engine as runs make it, and a module run under it.
fn wasm_check() -> doctor::Check {
    let meaning = "WASM skills run in-process in wasmtime with the pooling allocator, which reserves address space for its instance slots";
    let started = std::time::Instant::now();
    let probe = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;
    let result = skillcell_wasm::WasmEngine::new().and_then(|engine| {
        let module = engine.compile(probe.as_bytes())?;
        let linked = engine.link(&module, skillcell_wasm::Grants::default())?;
        engine.run(
            &linked,
            &skillcell_wasm::WasmSpec::default(),
            std::sync::Arc::new(skillcell_wasm::NoHost),
        )
    });
    match result {
        Ok(r) if r.outcome == (skillcell_wasm::WasmOutcome::Exited { code: 0 }) => doctor::Check {
            id: "wasm",
            status: Status::Ok,
            found: format!(
                "engine made, a module compiled and run in {} ms",
                started.elapsed().as_millis()
            ),
            meaning,
            fix: None,
        },
        Ok(r) => doctor::Check {
            id: "wasm",
            status: Status::Fail,
            found: format!("the probe module ended with {:?}", r.outcome),
            meaning,
            fix: None,
        },
        Err(e) => doctor::Check {
            id: "wasm",
            status: Status::Fail,
            found: e.to_string(),
            meaning,
            fix: Some(
                "WASM skills cannot run; check `ulimit -v` (the pool reserves virtual memory) and vm.overcommit settings".into(),
            ),
        },
    }
}

fn doctor(home: Option<&skillcell_store::Home>, json: bool) -> Result<u8, Failure> {
    let mut report = doctor::run();
    report.checks.push(egress_check(home));
    // Single-threaded here, as a cell launch requires.
    report.checks.push(cell_check());
    // After the cell check: the engine starts threads.
    report.checks.push(wasm_check());
    let code = if report.worst() == Status::Fail {
        exit::ENVIRONMENT
    } else {
        exit::OK
    };
    if json {
        print_json(&report)?;
        return Ok(code);
    }
    for c in &report.checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        outln!("[{mark}] {:<18} {}", c.id, c.found);
        outln!("       {}", c.meaning);
        if let Some(fix) = &c.fix {
            outln!("       fix: {fix}");
        }
    }
    outln!(
        "\ncgroups: {} mode; runs will use {}",
        report.cgroups.mode,
        report
            .cgroups
            .plan
            .iter()
            .map(|(c, h)| format!(
                "{c} from {}",
                serde_json::to_value(h)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(code)
}
