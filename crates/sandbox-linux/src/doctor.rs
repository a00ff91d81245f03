//! Probes of the kernel features a cell needs, each with what it means and how to fix it.
//! Reads `/proc` and `/sys/fs/cgroup`; the only side effects are a short-lived child in new
//! namespaces and an empty probe cgroup that is removed at once.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The verdict of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Stable identifier.
    pub id: &'static str,
    pub status: Status,
    /// What was found.
    pub found: String,
    /// Why the cell needs it.
    pub meaning: &'static str,
    /// How to fix it, when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Where a cgroup controller is available.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ControllerHome {
    V2,
    V1,
    Missing,
}

/// The host's cgroup layout.
#[derive(Clone, Debug, Serialize)]
pub struct CgroupLayout {
    /// `unified` (v2 only), `hybrid` (v1 and v2) or `legacy` (v1 only), or `none`.
    pub mode: &'static str,
    pub v2_mount: Option<PathBuf>,
    pub v2_controllers: Vec<String>,
    /// v1 controllers and where each hierarchy is mounted.
    pub v1_mounts: Vec<(String, PathBuf)>,
    /// For memory, pids and cpu: v2 when the v2 hierarchy offers it, else v1 if mounted.
    pub plan: Vec<(String, ControllerHome)>,
}

/// Everything `skillcell doctor` reports.
#[derive(Clone, Debug, Serialize)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
    pub cgroups: CgroupLayout,
}

impl DoctorReport {
    /// The worst status of all checks.
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }
}

/// Runs every probe.
pub fn run() -> DoctorReport {
    let cgroups = cgroup_layout();
    let checks = vec![
        kernel(),
        namespaces(),
        landlock(),
        seccomp(),
        cgroup_controllers(&cgroups),
        cgroup_delegation(&cgroups),
    ];
    DoctorReport { checks, cgroups }
}

fn read(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn kernel() -> Check {
    let release = read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
    let arch = std::env::consts::ARCH;
    Check {
        id: "kernel",
        status: if arch == "x86_64" {
            Status::Ok
        } else {
            Status::Fail
        },
        found: format!("Linux {release} on {arch}"),
        meaning: "the cell's seccomp filter is written for x86_64; elsewhere no cell starts",
        fix: (arch != "x86_64").then(|| "run skillcell on x86_64".to_owned()),
    }
}

fn namespaces() -> Check {
    let meaning = "each run gets its own user, mount, pid, network, ipc and uts namespaces";
    match crate::sys::probe_namespaces() {
        Ok(()) => Check {
            id: "namespaces",
            status: Status::Ok,
            found: "user, mount, pid, net, ipc and uts namespaces can be created".into(),
            meaning,
            fix: None,
        },
        Err(e) => {
            let mut fix = Vec::new();
            if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
                fix.push("sysctl -w user.max_user_namespaces=15000");
            }
            if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
                fix.push("sysctl -w kernel.unprivileged_userns_clone=1");
            }
            if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref()
                == Some("1")
            {
                fix.push("allow user namespaces for skillcell in AppArmor (or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)");
            }
            if fix.is_empty() {
                fix.push("enable CONFIG_USER_NS and namespaces in the kernel; inside a container, run it with user namespaces allowed (e.g. seccomp profile permitting unshare)");
            }
            Check {
                id: "namespaces",
                status: Status::Fail,
                found: format!("creating namespaces failed: {e}"),
                meaning,
                fix: Some(fix.join("; ")),
            }
        }
    }
}

fn landlock() -> Check {
    let meaning = "Landlock holds the executor read-only on the store and gives each cell its file, exec and TCP rights (ABI 4: TCP, ABI 6: signal and abstract-socket scopes)";
    match crate::sys::landlock_abi() {
        Ok(abi) if abi >= 6 => Check {
            id: "landlock",
            status: Status::Ok,
            found: format!("Landlock ABI {abi}"),
            meaning,
            fix: None,
        },
        Ok(abi) => Check {
            id: "landlock",
            status: Status::Warn,
            found: format!(
                "Landlock ABI {abi}: some rights are not enforced (TCP needs 4, scopes need 6)"
            ),
            meaning,
            fix: Some("use a kernel of 6.12 or newer for ABI 6".into()),
        },
        Err(e) => Check {
            id: "landlock",
            status: Status::Fail,
            found: format!("Landlock unavailable: {e}"),
            meaning,
            fix: Some(
                "enable CONFIG_SECURITY_LANDLOCK and add `landlock` to the lsm= boot parameter"
                    .into(),
            ),
        },
    }
}

fn seccomp() -> Check {
    let meaning = "seccomp-bpf filters the syscalls a cell may make; user-notify lets the supervisor broker some of them";
    let in_status =
        read("/proc/self/status").is_some_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")));
    let actions = read("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let has = |a: &str| actions.split_whitespace().any(|x| x == a);
    if !in_status || !has("kill_process") || !has("errno") {
        return Check {
            id: "seccomp",
            status: Status::Fail,
            found: format!("seccomp filter actions: {actions:?}"),
            meaning,
            fix: Some("enable CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER".into()),
        };
    }
    if !has("user_notif") {
        return Check {
            id: "seccomp",
            status: Status::Warn,
            found: format!("seccomp without user-notify (actions: {actions})"),
            meaning,
            fix: Some("use a kernel of 5.0 or newer".into()),
        };
    }
    Check {
        id: "seccomp",
        status: Status::Ok,
        found: format!("seccomp filters with actions {actions}"),
        meaning,
        fix: None,
    }
}

/// Reads the cgroup mounts from /proc/self/mountinfo.
pub fn cgroup_layout() -> CgroupLayout {
    let info = read("/proc/self/mountinfo").unwrap_or_default();
    let mut v2_mount = None;
    let mut v1_mounts = Vec::new();
    for line in info.lines() {
        // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mountpoint = left.split(' ').nth(4).unwrap_or_default();
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or_default();
        let superopts = r.nth(1).unwrap_or_default();
        match fstype {
            "cgroup2" if v2_mount.is_none() => v2_mount = Some(PathBuf::from(mountpoint)),
            "cgroup" => {
                for opt in superopts.split(',') {
                    if matches!(
                        opt,
                        "memory" | "pids" | "cpu" | "cpuacct" | "cpuset" | "freezer"
                    ) {
                        v1_mounts.push((opt.to_owned(), PathBuf::from(mountpoint)));
                    }
                }
            }
            _ => {}
        }
    }
    let v2_controllers: Vec<String> = v2_mount
        .as_ref()
        .and_then(|m| fs::read_to_string(m.join("cgroup.controllers")).ok())
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let mode = match (v2_mount.is_some(), !v1_mounts.is_empty()) {
        (true, false) => "unified",
        (true, true) => "hybrid",
        (false, true) => "legacy",
        (false, false) => "none",
    };
    let plan = ["memory", "pids", "cpu"]
        .iter()
        .map(|c| {
            let home = if v2_controllers.iter().any(|x| x == c) {
                ControllerHome::V2
            } else if v1_mounts.iter().any(|(x, _)| x == c) {
                ControllerHome::V1
            } else {
                ControllerHome::Missing
            };
            ((*c).to_owned(), home)
        })
        .collect();
    CgroupLayout {
        mode,
        v2_mount,
        v2_controllers,
        v1_mounts,
        plan,
    }
}

fn cgroup_controllers(layout: &CgroupLayout) -> Check {
    let meaning = "a cgroup per run caps memory (including tmpfs and memfd), process count and CPU for the whole cell";
    let plan: Vec<String> = layout
        .plan
        .iter()
        .map(|(c, home)| {
            format!(
                "{c}: {}",
                match home {
                    ControllerHome::V2 => "v2",
                    ControllerHome::V1 => "v1",
                    ControllerHome::Missing => "missing",
                }
            )
        })
        .collect();
    let missing: Vec<&str> = layout
        .plan
        .iter()
        .filter(|(_, h)| *h == ControllerHome::Missing)
        .map(|(c, _)| c.as_str())
        .collect();
    let found = format!("cgroups {} ({})", layout.mode, plan.join(", "));
    if missing.iter().any(|c| *c == "memory" || *c == "pids") {
        return Check {
            id: "cgroups",
            status: Status::Fail,
            found,
            meaning,
            fix: Some(format!(
                "enable the {} controller(s): on cgroup v2, add them to cgroup.subtree_control of the parent cgroup; on v1, mount the hierarchy",
                missing.join(", ")
            )),
        };
    }
    Check {
        id: "cgroups",
        status: if missing.is_empty() {
            Status::Ok
        } else {
            Status::Warn
        },
        found,
        meaning,
        fix: (!missing.is_empty()).then(|| {
            format!(
                "enable the {} controller to cap CPU by cgroup; RLIMIT_CPU still applies",
                missing.join(", ")
            )
        }),
    }
}

/// The cgroup directory of this process in the hierarchy mounted at `mount`.
pub(crate) fn own_cgroup(mount: &Path, v1_controller: Option<&str>) -> Option<PathBuf> {
    let text = read("/proc/self/cgroup")?;
    let rel = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match v1_controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.trim_start_matches('/').to_owned())
    })?;
    Some(mount.join(rel))
}

fn cgroup_delegation(layout: &CgroupLayout) -> Check {
    let meaning = "skillcell must be able to create a child cgroup for each run where the memory controller lives";
    let target = layout
        .plan
        .iter()
        .find(|(c, _)| c == "memory")
        .and_then(|(_, home)| match home {
            ControllerHome::V2 => layout.v2_mount.as_deref().and_then(|m| own_cgroup(m, None)),
            ControllerHome::V1 => layout
                .v1_mounts
                .iter()
                .find(|(c, _)| c == "memory")
                .and_then(|(_, m)| own_cgroup(m, Some("memory"))),
            ControllerHome::Missing => None,
        });
    let Some(parent) = target else {
        return Check {
            id: "cgroup_delegation",
            status: Status::Fail,
            found: "no cgroup hierarchy with the memory controller to delegate from".into(),
            meaning,
            fix: Some("see the cgroups check".into()),
        };
    };
    let probe = parent.join(format!("skillcell-doctor-{}", std::process::id()));
    match fs::create_dir(&probe) {
        Ok(()) => {
            let removed = fs::remove_dir(&probe);
            Check {
                id: "cgroup_delegation",
                status: if removed.is_ok() {
                    Status::Ok
                } else {
                    Status::Warn
                },
                found: format!("can create child cgroups under {}", parent.display()),
                meaning,
                fix: removed
                    .err()
                    .map(|e| format!("remove {} by hand: {e}", probe.display())),
            }
        }
        Err(e) => Check {
            id: "cgroup_delegation",
            status: Status::Fail,
            found: format!("cannot create a cgroup under {}: {e}", parent.display()),
            meaning,
            fix: Some(
                "run as root, or in a delegated cgroup: `systemd-run --user --scope -p Delegate=yes skillcell ...`"
                    .into(),
            ),
        },
    }
}
