//! Landlock inside the cell: the last word on files, TCP and cross-domain IPC.
//!
//! Applied by the skill's process right before exec. Handles every filesystem right the
//! kernel knows, TCP bind and connect, and the signal and abstract-unix-socket scopes; then
//! allows only: reading everything mounted in the cell (the mounts are the first filter),
//! executing the files in [`CellSpec::exec`] (this is the exec allowlist: the kernel checks
//! `EXECUTE` on every execve, and on the ELF interpreter it loads), writing the scratch tmpfs,
//! writing files and directories (no FIFOs, sockets, devices or symlinks) in write grants,
//! and reading/writing the five device nodes. TCP bind is denied everywhere, TCP connect
//! everywhere but the egress proxy's port ([`CellSpec::proxy_port`]) when the cell has one.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use skillcell_sandbox::{CellSpec, MountKind};

use crate::launch::DEVICES;

/// The ABI whose rights the cell asks for: V6 adds the signal and abstract-socket scopes.
const TARGET_ABI: ABI = ABI::V6;

/// `full` or `partial` (the kernel lacks some rights of the target ABI).
pub fn restrict(spec: &CellSpec) -> Result<&'static str, String> {
    let fs_all = AccessFs::from_all(TARGET_ABI);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let write = fs_all & !BitFlags::from(AccessFs::Execute);
    // A write grant is a host directory the caller (or the caller's agent) uses after the run:
    // no FIFOs (a reader hangs), sockets, device nodes, or symlinks (`summary.md ->
    // ~/.ssh/id_rsa`, followed later by whoever reads the file) may be left there.
    let grant_write = write
        & !(AccessFs::MakeFifo
            | AccessFs::MakeSock
            | AccessFs::MakeChar
            | AccessFs::MakeBlock
            | AccessFs::MakeSym);
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: landlock::RulesetError| format!("{what}: {e}")
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(fs_all)
        .map_err(err("handle filesystem rights"))?
        .handle_access(AccessNet::from_all(TARGET_ABI))
        .map_err(err("handle network rights"))?
        .scope(Scope::from_all(TARGET_ABI))
        .map_err(err("handle scopes"))?
        .create()
        .map_err(err("create the ruleset"))?;
    let mut grants: Vec<(String, BitFlags<AccessFs>)> = vec![("/".into(), read)];
    for p in &spec.exec {
        grants.push((p.clone(), AccessFs::Execute | AccessFs::ReadFile));
    }
    for m in &spec.mounts {
        match m.kind {
            MountKind::Tmpfs { .. } => grants.push((m.target.clone(), write)),
            MountKind::Grant { writable: true, .. } => {
                grants.push((m.target.clone(), grant_write));
            }
            _ => {}
        }
    }
    for d in DEVICES {
        grants.push((
            format!("/dev/{d}"),
            AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate,
        ));
    }
    for (path, access) in &grants {
        for rule in path_beneath_rules([path], *access) {
            let rule = rule.map_err(|e| format!("rule for {path}: {e}"))?;
            ruleset = ruleset
                .add_rule(rule)
                .map_err(|e| format!("rule for {path}: {e}"))?;
        }
    }
    if let Some(port) = spec.proxy_port {
        ruleset = ruleset
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(|e| format!("rule for the proxy port {port}: {e}"))?;
    }
    let status = ruleset
        .restrict_self()
        .map_err(|e| format!("restrict: {e}"))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok("full"),
        RulesetStatus::PartiallyEnforced => Ok("partial"),
        RulesetStatus::NotEnforced => {
            Err("the kernel enforced nothing (Landlock unavailable); run `skillcell doctor`".into())
        }
    }
}
