//! The contract's `skillcell.network` rules, applied to normalized hosts and to the addresses
//! a name resolves to. Pure functions: no I/O, no DNS.

use std::net::IpAddr;

use skillcell_types::net::special_use;
use skillcell_types::{HostPattern, NetRule};

use crate::host::Host;

/// Why the proxy refused something, in words a model can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Stable code: `undeclared_host`, `undeclared_port`, `undeclared_address`,
    /// `special_address`, `bad_request`, `host_mismatch`, `egress_budget`,
    /// `too_many_connections`.
    pub code: &'static str,
    /// What was wrong, one sentence.
    pub reason: String,
    /// The `skillcell.network` (or `skillcell.limits`) line that would allow it, if any.
    pub allow_with: Option<String>,
}

impl Refusal {
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            allow_with: None,
        }
    }

    fn allow_with(mut self, line: String) -> Self {
        self.allow_with = Some(line);
        self
    }
}

/// Where an address came from: the operator's map is trusted as written; DNS answers are
/// checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSource {
    OperatorMap,
    Dns,
}

/// The network rules of one run.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    rules: Vec<NetRule>,
}

impl Policy {
    pub fn new(rules: Vec<NetRule>) -> Self {
        Self { rules }
    }

    pub fn rules(&self) -> &[NetRule] {
        &self.rules
    }

    /// The rule that allows `host:port`, judged before any DNS query: a name is matched only
    /// against name rules, an address only against address rules.
    pub fn judge(&self, host: &Host, port: u16) -> Result<&NetRule, Refusal> {
        let matches_host = |r: &NetRule| match (&r.host, host) {
            (HostPattern::Exact(n), Host::Name(h)) => n == h,
            (HostPattern::Wildcard { suffix }, Host::Name(h)) => h
                .strip_suffix(suffix.as_str())
                .is_some_and(|front| front.len() > 1 && front.ends_with('.')),
            (HostPattern::Ip(a), Host::Ip(b)) => a == b,
            _ => false,
        };
        if let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.port == port && matches_host(r))
        {
            return Ok(rule);
        }
        let line = format!("skillcell.network: {host}:{port}");
        let ports: Vec<String> = self
            .rules
            .iter()
            .filter(|r| matches_host(r))
            .map(|r| r.port.to_string())
            .collect();
        if !ports.is_empty() {
            return Err(Refusal::new(
                "undeclared_port",
                format!(
                    "{host} is declared for port {} only, not {port}",
                    ports.join(", ")
                ),
            )
            .allow_with(line));
        }
        Err(match host {
            Host::Name(_) => Refusal::new(
                "undeclared_host",
                format!("no skillcell.network entry names {host}:{port}"),
            ),
            Host::Ip(ip) => Refusal::new(
                "undeclared_address",
                match special_use(*ip) {
                    Some(why) => format!(
                        "{host} is {why}, and no skillcell.network entry names it"
                    ),
                    None => format!(
                        "the address {host}:{port} is not declared; use the host's name, or declare the address"
                    ),
                },
            ),
        }
        .allow_with(line))
    }

    /// Whether an address rule names exactly `ip:port`.
    pub fn names_address(&self, ip: IpAddr, port: u16) -> bool {
        self.rules
            .iter()
            .any(|r| r.port == port && r.host == HostPattern::Ip(ip))
    }

    /// Whether the proxy may dial `ip` for a request to a name that `rule` allowed. Addresses
    /// that are not public internet hosts (loopback, private, link-local, CGNAT, unique-local,
    /// the cloud metadata address …) are refused when they come from DNS, unless the contract
    /// names that address and port itself.
    pub fn check_address(
        &self,
        name: &Host,
        ip: IpAddr,
        port: u16,
        source: AddressSource,
    ) -> Result<(), Refusal> {
        if source == AddressSource::OperatorMap {
            return Ok(());
        }
        let Some(why) = special_use(ip) else {
            return Ok(());
        };
        if self.names_address(ip, port) {
            return Ok(());
        }
        let shown = Host::Ip(ip);
        Err(Refusal::new(
            "special_address",
            format!("{name} resolves to {shown}, {why}"),
        )
        .allow_with(format!(
            "skillcell.network: {shown}:{port} (only if the skill really must reach that address)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str]) -> Policy {
        Policy::new(rules.iter().map(|r| skillcell_manifest_like(r)).collect())
    }

    /// A tiny rule parser for tests (the real one lives in skillcell-manifest).
    fn skillcell_manifest_like(r: &str) -> NetRule {
        let (h, p) = r.rsplit_once(':').expect("host:port");
        let port = p.parse().expect("port");
        let host = if let Some(s) = h.strip_prefix("*.") {
            HostPattern::Wildcard {
                suffix: s.to_owned(),
            }
        } else if let Ok(ip) = h.trim_matches(['[', ']']).parse::<IpAddr>() {
            HostPattern::Ip(ip)
        } else {
            HostPattern::Exact(h.to_owned())
        };
        NetRule { host, port }
    }

    fn host(s: &str) -> Host {
        Host::parse(s).expect("host")
    }

    #[test]
    fn names_ports_and_wildcards() {
        let p = policy(&["api.example.com:443", "*.tiles.example.org:443"]);
        assert!(p.judge(&host("API.example.com."), 443).is_ok());
        assert_eq!(
            p.judge(&host("api.example.com"), 80).map_err(|r| r.code),
            Err("undeclared_port")
        );
        assert!(p.judge(&host("a.tiles.example.org"), 443).is_ok());
        assert!(p.judge(&host("a.b.tiles.example.org"), 443).is_ok());
        assert_eq!(
            p.judge(&host("tiles.example.org"), 443).map_err(|r| r.code),
            Err("undeclared_host")
        );
        assert_eq!(
            p.judge(&host("eviltiles.example.org"), 443)
                .map_err(|r| r.code),
            Err("undeclared_host")
        );
        let r = p.judge(&host("evil.example"), 443).expect_err("denied");
        assert_eq!(
            r.allow_with.as_deref(),
            Some("skillcell.network: evil.example:443")
        );
    }

    #[test]
    fn addresses_match_only_address_rules() {
        let p = policy(&["api.example.com:443", "127.0.0.1:8080"]);
        assert!(p.judge(&host("127.1"), 8080).is_ok());
        assert!(p.judge(&host("[::ffff:127.0.0.1]"), 8080).is_ok());
        assert_eq!(
            p.judge(&host("127.0.0.1"), 8081).map_err(|r| r.code),
            Err("undeclared_port")
        );
        assert_eq!(
            p.judge(&host("2130706434"), 8080).map_err(|r| r.code),
            Err("undeclared_address")
        );
        // A name never matches an address rule, nor an address a name rule.
        assert_eq!(
            p.judge(&host("localhost"), 8080).map_err(|r| r.code),
            Err("undeclared_host")
        );
    }

    #[test]
    fn special_addresses_from_dns_need_an_explicit_rule() {
        let p = policy(&["svc.test:8080", "127.0.0.1:8080"]);
        let name = host("svc.test");
        let lo = "127.0.0.1".parse().expect("ip");
        let meta = "169.254.169.254".parse().expect("ip");
        let public = "93.184.216.34".parse().expect("ip");
        assert!(p.check_address(&name, lo, 8080, AddressSource::Dns).is_ok());
        assert_eq!(
            p.check_address(&name, lo, 9090, AddressSource::Dns)
                .map_err(|r| r.code),
            Err("special_address")
        );
        assert_eq!(
            p.check_address(&name, meta, 8080, AddressSource::Dns)
                .map_err(|r| r.code),
            Err("special_address")
        );
        assert!(
            p.check_address(&name, public, 8080, AddressSource::Dns)
                .is_ok()
        );
        assert!(
            p.check_address(&name, meta, 8080, AddressSource::OperatorMap)
                .is_ok()
        );
    }
}
