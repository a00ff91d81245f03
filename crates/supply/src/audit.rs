//! The audit: read the manifests, then judge each dependency by pinning, name and advisories.

use std::collections::BTreeSet;
use std::path::Path;

use skillcell_types::finding::{Finding, Severity};

use crate::db::{Advisory, AdvisoryDb, StoredAffected};
use crate::error::SupplyError;
use crate::interval::Interval;
use crate::manifest::{self, Collector};
use crate::osv::{self, EventKind, EventsDisplay};
use crate::report::{AuditPolicy, Dependency, Ecosystem, SupplyReport};
use crate::{pep440, rules, semver, typosquat};

/// Audits the skill folder `dir`: reads `requirements*.txt` (and their `-r` includes),
/// `pyproject.toml`, PEP 723 blocks in `.py` files and `package.json`, refuses registry
/// overrides and direct references as `policy` says, flags typosquats and unpinned versions,
/// and checks each dependency against `db`. Without a database the report says so with a
/// `dep-no-advisories` finding: it is never a clean bill.
pub fn audit(
    dir: &Path,
    db: Option<&AdvisoryDb>,
    policy: &AuditPolicy,
) -> Result<SupplyReport, SupplyError> {
    let mut c = Collector {
        root: dir.to_owned(),
        policy,
        dependencies: Vec::new(),
        findings: Vec::new(),
        seen_requirements: BTreeSet::new(),
    };
    manifest::collect(&mut c)?;
    let mut findings = std::mem::take(&mut c.findings);
    let mut dependencies = std::mem::take(&mut c.dependencies);
    dependencies.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    for dep in &dependencies {
        judge_name(dep, policy, &mut findings);
        if dep.url.is_some() {
            continue;
        }
        judge_pinning(dep, &mut findings);
        if let Some(db) = db {
            judge_advisories(dep, db, &mut findings)?;
        }
    }
    let db_info = match db {
        Some(db) => Some(db.info()?),
        None => {
            if !dependencies.is_empty() {
                findings.push(Finding {
                    rule: rules::NO_ADVISORIES.to_owned(),
                    severity: Severity::Info,
                    message: format!(
                        "{} dependencies were not checked for known vulnerabilities: no advisory database",
                        dependencies.len()
                    ),
                    file: String::new(),
                    line: 0,
                    col: 0,
                    hint: "import OSV advisories (PyPI/all.zip, npm/all.zip) with `skillcell advisories import` and audit again".to_owned(),
                });
            }
            None
        }
    };
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.col, &a.rule, &a.message)
            .cmp(&(&b.file, b.line, b.col, &b.rule, &b.message))
    });
    findings.dedup();
    Ok(SupplyReport {
        dependencies,
        findings,
        db: db_info,
    })
}

fn finding(
    dep: &Dependency,
    rule: &str,
    severity: Severity,
    message: String,
    hint: String,
) -> Finding {
    Finding {
        rule: rule.to_owned(),
        severity,
        message,
        file: dep.file.clone(),
        line: dep.line,
        col: dep.col,
        hint,
    }
}

fn judge_name(dep: &Dependency, policy: &AuditPolicy, out: &mut Vec<Finding>) {
    if let Some(s) = typosquat::check(dep.ecosystem, &dep.name, &policy.known_names) {
        out.push(finding(
            dep,
            rules::TYPOSQUAT,
            Severity::High,
            format!(
                "`{}` looks like the popular {} package `{}` ({})",
                dep.name, dep.ecosystem, s.target, s.reason
            ),
            format!(
                "if you meant `{}`, fix the name; if `{}` is intended, the operator lists it in known names",
                s.target, dep.name
            ),
        ));
    }
}

fn judge_pinning(dep: &Dependency, out: &mut Vec<Finding>) {
    if dep.pinned.is_some() {
        return;
    }
    let what = if is_unconstrained(dep) {
        "has no version constraint".to_owned()
    } else {
        format!("is constrained (`{}`) but not pinned", dep.spec)
    };
    let example = match dep.ecosystem {
        Ecosystem::PyPI => format!("{}==X.Y.Z", dep.name),
        Ecosystem::Npm => format!("\"{}\": \"X.Y.Z\"", dep.name),
    };
    out.push(finding(
        dep,
        rules::UNPINNED,
        Severity::Low,
        format!("`{}` {what}: the installed version can change", dep.name),
        format!("pin one exact version ({example})"),
    ));
}

fn is_unconstrained(dep: &Dependency) -> bool {
    let s = dep.spec.trim();
    s.is_empty() || matches!(s, "*" | "x" | "X" | "latest")
}

/// What a dependency's constraint admits, in the order of the ecosystem.
enum Admits {
    Pypi(pep440::SpecifierSet),
    Npm(semver::Range),
    /// A constraint we could not read (an npm dist-tag): anything.
    Anything,
}

impl Admits {
    fn of(dep: &Dependency) -> Admits {
        match dep.ecosystem {
            Ecosystem::PyPI => {
                pep440::SpecifierSet::parse(&dep.spec).map_or(Admits::Anything, Admits::Pypi)
            }
            Ecosystem::Npm => semver::Range::parse(&dep.spec).map_or(Admits::Anything, Admits::Npm),
        }
    }
}

/// The outcome of one advisory for one dependency.
enum Hit {
    Pinned,
    MayResolve,
}

fn judge_advisories(
    dep: &Dependency,
    db: &AdvisoryDb,
    out: &mut Vec<Finding>,
) -> Result<(), SupplyError> {
    let admits = Admits::of(dep);
    for adv in db.advisories_for(dep.ecosystem.as_str(), &dep.name)? {
        let hit = adv.affected.iter().find_map(|a| match &dep.pinned {
            Some(v) => pinned_affected(dep.ecosystem, v, a).then_some(Hit::Pinned),
            None => may_resolve(dep.ecosystem, &admits, a).then_some(Hit::MayResolve),
        });
        let Some(hit) = hit else { continue };
        out.push(advisory_finding(dep, &adv, &hit));
    }
    Ok(())
}

fn advisory_finding(dep: &Dependency, adv: &Advisory, hit: &Hit) -> Finding {
    let ids = std::iter::once(adv.id.as_str())
        .chain(adv.aliases.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(", ");
    let summary = if adv.summary.is_empty() {
        String::new()
    } else {
        format!(": {}", adv.summary)
    };
    let fixed: BTreeSet<&str> = adv
        .affected
        .iter()
        .flat_map(|a| &a.ranges)
        .flat_map(|r| &r.events)
        .filter(|(k, _)| *k == EventKind::Fixed)
        .map(|(_, v)| v.as_str())
        .collect();
    let fixed_text = if fixed.is_empty() {
        "no fixed version is recorded".to_owned()
    } else {
        format!(
            "fixed in {}",
            fixed.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    let ranges: Vec<String> = adv
        .affected
        .iter()
        .flat_map(|a| &a.ranges)
        .filter(|r| r.kind != "GIT")
        .map(|r| format!("[{}]", EventsDisplay(&r.events)))
        .collect();
    match hit {
        Hit::Pinned => finding(
            dep,
            rules::VULNERABLE,
            if is_critical(adv) {
                Severity::Critical
            } else {
                Severity::High
            },
            format!(
                "{} {} is affected by {ids}{summary}",
                dep.name,
                dep.pinned.as_deref().unwrap_or("")
            ),
            format!("pin a version outside the affected ranges ({fixed_text})"),
        ),
        Hit::MayResolve => finding(
            dep,
            rules::MAY_BE_VULNERABLE,
            Severity::Medium,
            format!(
                "`{} {}` may resolve to a version affected by {ids}{summary} (affected: {})",
                dep.name,
                if dep.spec.is_empty() {
                    "(any version)"
                } else {
                    &dep.spec
                },
                if ranges.is_empty() {
                    "listed versions".to_owned()
                } else {
                    ranges.join(" ")
                }
            ),
            format!("pin an exact unaffected version or exclude the affected ones ({fixed_text})"),
        ),
    }
}

/// Critical when the database rates it so, or a CVSS v3 vector scores 9.0 or more.
fn is_critical(adv: &Advisory) -> bool {
    adv.db_severity
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("critical"))
        || adv
            .severity
            .iter()
            .filter(|s| s.kind.starts_with("CVSS_V3"))
            .filter_map(|s| osv::cvss3_base_score(&s.score))
            .any(|score| score >= 9.0)
}

fn pep440_parse(s: &str) -> Option<pep440::Version> {
    pep440::Version::parse(s).ok()
}

fn semver_parse(s: &str) -> Option<semver::Version> {
    semver::Version::parse(s).ok()
}

/// Whether one exact version is affected by one `affected[]` entry.
fn pinned_affected(ecosystem: Ecosystem, version: &str, a: &StoredAffected) -> bool {
    let listed = a.versions.iter().any(|l| {
        l == version
            || match ecosystem {
                Ecosystem::PyPI => {
                    pep440_parse(l).is_some_and(|l| Some(l) == pep440_parse(version))
                }
                Ecosystem::Npm => semver_parse(l).is_some_and(|l| Some(l) == semver_parse(version)),
            }
    });
    if listed {
        return true;
    }
    a.ranges.iter().any(|r| match scheme(ecosystem, &r.kind) {
        Some(Scheme::Pep440) => pinned_in(&r.events, version, pep440_parse),
        Some(Scheme::Semver) => pinned_in(&r.events, version, semver_parse),
        None => false,
    })
}

fn pinned_in<V: Ord + Clone>(
    events: &[(EventKind, String)],
    version: &str,
    parse: fn(&str) -> Option<V>,
) -> bool {
    let (Some(v), Some(events)) = (parse(version), osv::parse_events(events, parse)) else {
        return false;
    };
    osv::range_includes(&v, &events)
}

/// Whether a constraint admits any version an `affected[]` entry names.
fn may_resolve(ecosystem: Ecosystem, admits: &Admits, a: &StoredAffected) -> bool {
    let listed = a.versions.iter().any(|l| match admits {
        Admits::Anything => true,
        Admits::Pypi(set) => pep440_parse(l).is_some_and(|v| set.contains(&v)),
        Admits::Npm(range) => semver_parse(l).is_some_and(|v| range.contains(&v)),
    });
    if listed {
        return true;
    }
    a.ranges.iter().any(|r| {
        match (scheme(ecosystem, &r.kind), admits) {
            (Some(Scheme::Pep440), Admits::Pypi(set)) => {
                meets(&r.events, &[set.interval()], pep440_parse)
            }
            (Some(Scheme::Semver), Admits::Npm(range)) => {
                meets(&r.events, &range.alternatives, semver_parse)
            }
            (Some(Scheme::Pep440), Admits::Anything) => {
                meets(&r.events, &[Interval::all()], pep440_parse)
            }
            (Some(Scheme::Semver), Admits::Anything) => {
                meets(&r.events, &[Interval::all()], semver_parse)
            }
            // A SEMVER range on a PyPI package against a PEP 440 constraint: no common order.
            _ => false,
        }
    })
}

fn meets<V: Ord + Clone>(
    events: &[(EventKind, String)],
    admitted: &[Interval<V>],
    parse: fn(&str) -> Option<V>,
) -> bool {
    let Some(events) = osv::parse_events(events, parse) else {
        return false;
    };
    osv::range_intervals(&events)
        .iter()
        .any(|affected| admitted.iter().any(|a| a.meets(affected)))
}

enum Scheme {
    Pep440,
    Semver,
}

/// The order a range's versions are compared in; `None` for `GIT` (commit ranges are not
/// matched against versions) and unknown types.
fn scheme(ecosystem: Ecosystem, range_type: &str) -> Option<Scheme> {
    match (range_type, ecosystem) {
        ("ECOSYSTEM", Ecosystem::PyPI) => Some(Scheme::Pep440),
        ("ECOSYSTEM" | "SEMVER", Ecosystem::Npm) | ("SEMVER", Ecosystem::PyPI) => {
            Some(Scheme::Semver)
        }
        _ => None,
    }
}
