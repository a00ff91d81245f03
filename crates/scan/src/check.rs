//! Declared vs used: what the code was seen to use, against what the contract grants; and
//! the least-privilege contract lines that would declare it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use skillcell_manifest::{RESERVED_ENV, dangerous_env, parse_grant_path, parse_net_rule};
use skillcell_types::{Access, Contract, Executable, GrantPath, HostPattern, NetRule};

use crate::UsedCapabilities;
use crate::lang::basename;
use crate::out::{Out, Usage};
use crate::rules::R;

fn split_host_port(hp: &str) -> Option<(&str, u16)> {
    let (h, p) = hp.rsplit_once(':')?;
    Some((h, p.parse().ok()?))
}

/// Whether a `host:port` is matched by one of the rules.
pub(crate) fn host_allowed(hp: &str, rules: &[NetRule]) -> bool {
    let Some((host, port)) = split_host_port(hp) else {
        return false;
    };
    rules.iter().any(|r| {
        r.port == port
            && match &r.host {
                HostPattern::Exact(h) => h == host,
                HostPattern::Wildcard { suffix } => host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                HostPattern::Ip(ip) => host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|a| a == *ip),
            }
    })
}

/// Whether the contract lets the skill start `program`.
pub(crate) fn exec_allowed(program: &str, exec: &[Executable]) -> bool {
    exec.iter().any(|e| match e {
        Executable::Name(n) => basename(program) == n,
        Executable::Path(p) => p == program || (!program.contains('/') && basename(p) == program),
    })
}

/// The interpreter that runs the file `file`: starting it again is not an extra program.
fn own_interpreter(program: &str, file: &str) -> bool {
    let b = basename(program);
    let ext = file.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "py" | "pyw" => b == "python3" || b == "python",
        "js" | "mjs" | "cjs" | "ts" | "mts" | "cts" | "tsx" | "jsx" => b == "node",
        "sh" | "bash" => b == "bash" || b == "sh",
        _ => false,
    }
}

fn write_allowed(path: &str, contract: &Contract) -> bool {
    if !path.starts_with('/') {
        // Relative to the working directory, or under HOME: the cell's own scratch.
        return true;
    }
    if path == "/tmp" || path.starts_with("/tmp/") || path.starts_with("/dev/") {
        return true;
    }
    contract.fs.iter().any(|g| {
        g.access == Access::Write
            && match &g.path {
                GrantPath::Absolute(p) => {
                    path == p
                        || path
                            .strip_prefix(p.as_str())
                            .is_some_and(|r| r.starts_with('/'))
                }
                GrantPath::Placeholder { .. } => false,
            }
    })
}

/// `SKILLCELL_PATH_<NAME>`, which the cell sets for each declared placeholder.
fn placeholder_var(name: &str, contract: &Contract) -> bool {
    let Some(p) = name.strip_prefix("SKILLCELL_PATH_") else {
        return false;
    };
    contract.placeholders().contains(&p)
}

/// Compares usage with the contract and emits the declared-vs-used findings.
pub(crate) fn compare(contract: &Contract, out: &mut Out) {
    let usage = std::mem::take(&mut out.usage);
    let Usage {
        network,
        hosts,
        env,
        exec,
        writes,
    } = &usage;

    let declared_hosts: Vec<String> = contract.network.iter().map(ToString::to_string).collect();
    if let Some(at) = network
        && contract.network.is_empty()
    {
        let example = hosts
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let example = if example.is_empty() {
            "HOST:443".to_owned()
        } else {
            example
        };
        out.emit_hint(
            R::UndeclaredNetwork,
            at,
            "uses the network, but the contract declares no network access",
            format!("declare the hosts it contacts: `skillcell.network: {example}`"),
        );
    }
    for (hp, u) in hosts {
        if host_allowed(hp, &contract.network) {
            continue;
        }
        let hint = if declared_hosts.is_empty() {
            format!("declare it: `skillcell.network: {hp}`")
        } else {
            format!(
                "declare it: `skillcell.network: {} {hp}`",
                declared_hosts.join(" ")
            )
        };
        if u.call_site || network.is_some() {
            out.emit_hint(
                R::UndeclaredHost,
                &u.loc,
                format!("contacts `{hp}`, which no `skillcell.network` rule matches"),
                hint,
            );
        } else {
            out.emit_hint(
                R::UrlUndeclared,
                &u.loc,
                format!("names `{hp}`, which no `skillcell.network` rule matches"),
                hint,
            );
        }
    }
    for (p, at) in exec {
        if exec_allowed(p, &contract.exec) || own_interpreter(p, &at.file) {
            continue;
        }
        let mut names: Vec<String> = contract.exec.iter().map(ToString::to_string).collect();
        names.push(p.clone());
        out.emit_hint(
            R::UndeclaredExec,
            at,
            format!("starts `{p}`, which `skillcell.exec` does not list"),
            format!("declare it: `skillcell.exec: {}`", names.join(" ")),
        );
    }
    for (name, at) in env {
        if RESERVED_ENV.contains(&name.as_str())
            || contract.env.iter().any(|e| &e.0 == name)
            || placeholder_var(name, contract)
        {
            continue;
        }
        let hint = match dangerous_env(name) {
            Some(why) => format!("`{name}` cannot be declared ({why}); do not read it"),
            None => {
                let mut names: Vec<&str> = contract.env.iter().map(|e| e.0.as_str()).collect();
                names.push(name);
                format!(
                    "declare it: `skillcell.env: {}` (the cell passes only declared variables)",
                    names.join(" ")
                )
            }
        };
        out.emit_hint(
            R::UndeclaredEnv,
            at,
            format!("reads `{name}`, which `skillcell.env` does not list"),
            hint,
        );
    }
    for (path, at) in writes {
        if write_allowed(path, contract) {
            continue;
        }
        out.emit_hint(
            R::UndeclaredWrite,
            at,
            format!("writes `{path}`, which no `skillcell.fs.write` grant covers"),
            format!("write under $TMPDIR, or declare `skillcell.fs.write: {path}`"),
        );
    }

    // Least privilege: grants nothing was seen to use.
    let whole = crate::out::Loc {
        file: "SKILL.md".to_owned(),
        line: 0,
        col: 0,
    };
    for r in &contract.network {
        if !hosts
            .keys()
            .any(|hp| host_allowed(hp, std::slice::from_ref(r)))
        {
            out.emit(
                R::UnusedGrant,
                &whole,
                format!("`skillcell.network: {r}` is granted, but no use of it was seen"),
            );
        }
    }
    for e in &contract.exec {
        if !exec
            .keys()
            .any(|p| exec_allowed(p, std::slice::from_ref(e)))
        {
            out.emit(
                R::UnusedGrant,
                &whole,
                format!("`skillcell.exec: {e}` is granted, but the code was not seen to start it"),
            );
        }
    }
    for e in &contract.env {
        if !env.contains_key(&e.0) {
            out.emit(
                R::UnusedGrant,
                &whole,
                format!(
                    "`skillcell.env: {}` is granted, but the code was not seen to read it",
                    e.0
                ),
            );
        }
    }
    out.usage = usage;
}

/// The public summary of usage.
pub(crate) fn used(usage: &Usage) -> UsedCapabilities {
    UsedCapabilities {
        network: usage.network.is_some(),
        hosts: usage.hosts.keys().cloned().collect(),
        env: usage.env.keys().cloned().collect(),
        exec: usage
            .exec
            .iter()
            .filter(|(p, at)| !own_interpreter(p, &at.file))
            .map(|(p, _)| p.clone())
            .collect(),
        paths_written: usage.writes.keys().cloned().collect(),
    }
}

/// Least-privilege `skillcell.*` lines for what the code was seen to use, indented to paste
/// under `metadata:` in SKILL.md. Values that a contract cannot hold (a reserved or dangerous
/// variable, a relative or scratch path) are left out, with a comment saying so.
pub fn suggest(used: &UsedCapabilities) -> String {
    let mut lines = String::new();
    let mut notes: Vec<String> = Vec::new();

    let hosts: BTreeSet<String> = used
        .hosts
        .iter()
        .filter_map(|h| match parse_net_rule(h) {
            Ok(r) => Some(r.to_string()),
            Err(_) => {
                notes.push(format!("{h} is not a valid network rule"));
                None
            }
        })
        .collect();
    let env: Vec<&str> = used
        .env
        .iter()
        .map(String::as_str)
        .filter(|n| {
            let ok = !RESERVED_ENV.contains(n) && dangerous_env(n).is_none() && valid_env(n);
            if !ok && !RESERVED_ENV.contains(n) {
                notes.push(format!("{n} cannot be declared"));
            }
            ok
        })
        .collect();
    let exec: BTreeSet<&str> = used
        .exec
        .iter()
        .map(String::as_str)
        .filter(|p| valid_exec(p))
        .collect();
    let writes: Vec<String> = used
        .paths_written
        .iter()
        .filter(|p| p.starts_with('/') && !p.starts_with("/tmp/") && !p.starts_with("/dev/"))
        .filter_map(|p| parse_grant_path(p).ok().map(|g| g.to_string()))
        .collect();

    let mut line = |key: &str, values: Vec<String>| {
        if !values.is_empty() {
            let _ = writeln!(lines, "  skillcell.{key}: {}", values.join(" "));
        }
    };
    if used.network && hosts.is_empty() {
        notes.push("network use was seen, but no host literal: name the hosts by hand".to_owned());
    }
    line("network", hosts.into_iter().collect());
    line("env", env.into_iter().map(str::to_owned).collect());
    line("exec", exec.into_iter().map(str::to_owned).collect());
    line("fs.write", writes);
    for n in notes {
        let _ = writeln!(lines, "  # {n}");
    }
    if lines.is_empty() {
        lines.push_str("  # nothing to declare: the default-blind profile covers what was seen\n");
    }
    lines
}

fn valid_env(n: &str) -> bool {
    n.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_exec(p: &str) -> bool {
    if p.starts_with('/') {
        return parse_grant_path(p).is_ok();
    }
    p.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> NetRule {
        parse_net_rule(s).expect("test rule is valid")
    }

    #[test]
    fn host_matching_follows_the_contract_grammar() {
        let rules = [
            rule("api.example.com:443"),
            rule("*.tiles.example.org"),
            rule("192.0.2.10:8080"),
        ];
        assert!(host_allowed("api.example.com:443", &rules));
        assert!(!host_allowed("api.example.com:80", &rules));
        assert!(!host_allowed("example.com:443", &rules));
        assert!(host_allowed("a.tiles.example.org:443", &rules));
        assert!(!host_allowed("tiles.example.org:443", &rules));
        assert!(!host_allowed("eviltiles.example.org:443", &rules));
        assert!(host_allowed("192.0.2.10:8080", &rules));
    }

    #[test]
    fn exec_matching_by_name_or_path() {
        let exec = [
            Executable::Name("git".into()),
            Executable::Path("/usr/bin/jq".into()),
        ];
        assert!(exec_allowed("git", &exec));
        assert!(exec_allowed("/usr/bin/git", &exec));
        assert!(exec_allowed("jq", &exec));
        assert!(exec_allowed("/usr/bin/jq", &exec));
        assert!(!exec_allowed("/tmp/jq", &exec));
        assert!(!exec_allowed("curl", &exec));
    }

    #[test]
    fn suggest_lists_only_declarable_values() {
        let used = UsedCapabilities {
            network: true,
            hosts: ["api.example.com:443".to_owned()].into(),
            env: [
                "API_TOKEN".to_owned(),
                "HOME".to_owned(),
                "LD_PRELOAD".to_owned(),
            ]
            .into(),
            exec: ["git".to_owned(), "sh -c".to_owned()].into(),
            paths_written: [
                "/srv/out/x.json".to_owned(),
                "/tmp/a".to_owned(),
                "rel.txt".to_owned(),
            ]
            .into(),
        };
        assert_eq!(
            suggest(&used),
            "  skillcell.network: api.example.com:443\n  skillcell.env: API_TOKEN\n  skillcell.exec: git\n  skillcell.fs.write: /srv/out/x.json\n  # LD_PRELOAD cannot be declared\n"
        );
        assert!(suggest(&UsedCapabilities::default()).contains("nothing to declare"));
    }
}
