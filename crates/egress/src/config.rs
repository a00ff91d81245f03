//! The operator's egress configuration, and the proxy's resolver built from it.
//!
//! `$SKILLCELL_HOME/config/egress.conf` (operator-owned: skills never see it, the executor only
//! reads it). One directive per line, `#` starts a comment:
//!
//! ```text
//! nameserver 192.0.2.53          # DNS servers the proxy asks (repeatable; port 53 unless
//! nameserver [2001:db8::53]:5353 #   given); default: the host's /etc/resolv.conf
//! map api.internal.test 127.0.0.1 ::1   # answer this name with these addresses, no DNS
//! ```
//!
//! A `map` line is a statement of trust by the operator: its addresses are dialed as written,
//! even loopback or private ones, for the names it lists (and only when a contract declares
//! the name). That is how tests and operators serve a real declared name from a local server.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::host::Host;
use crate::policy::AddressSource;

/// The parsed configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressConfig {
    pub nameservers: Vec<SocketAddr>,
    /// Normalized name → addresses.
    pub map: BTreeMap<String, Vec<IpAddr>>,
}

/// A configuration line that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

impl EgressConfig {
    /// Reads the file; a missing file is the default configuration.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Parses the text of the file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let err = |message: String| ConfigError::Line {
                path: origin.to_owned(),
                line: i + 1,
                message,
            };
            let line = raw.split('#').next().unwrap_or_default().trim();
            let mut words = line.split_whitespace();
            let Some(directive) = words.next() else {
                continue;
            };
            match directive {
                "nameserver" => {
                    let addr = words
                        .next()
                        .ok_or_else(|| err("`nameserver` needs an address".into()))?;
                    if words.next().is_some() {
                        return Err(err("one address per `nameserver` line".into()));
                    }
                    let sock = addr
                        .parse::<SocketAddr>()
                        .or_else(|_| addr.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                        .map_err(|_| {
                            err(format!(
                                "`{addr}` is not an address (write 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53)"
                            ))
                        })?;
                    config.nameservers.push(sock);
                }
                "map" => {
                    let name = words
                        .next()
                        .ok_or_else(|| err("`map` needs a name and addresses".into()))?;
                    let Ok(Host::Name(name)) = Host::parse(name) else {
                        return Err(err(format!("`{name}` is not a host name")));
                    };
                    let mut addrs = Vec::new();
                    for a in words {
                        let ip = a
                            .parse::<IpAddr>()
                            .map_err(|_| err(format!("`{a}` is not an IP address")))?;
                        addrs.push(ip);
                    }
                    if addrs.is_empty() {
                        return Err(err(format!("`map {name}` lists no address")));
                    }
                    config.map.entry(name).or_default().extend(addrs);
                }
                other => {
                    return Err(err(format!(
                        "unknown directive `{other}` (known: nameserver, map)"
                    )));
                }
            }
        }
        Ok(config)
    }
}

/// Answers names for the proxy: the operator's map first, then DNS. Names are only ever
/// passed here after a rule allowed them.
#[derive(Debug)]
pub struct Resolver {
    map: BTreeMap<String, Vec<IpAddr>>,
    /// The DNS client, or why there is none (then only mapped names resolve).
    dns: Result<TokioResolver, String>,
}

impl Resolver {
    /// Builds the DNS client (inside the proxy's runtime). Without one (no usable
    /// resolv.conf), only the operator's mapped names resolve; lookups of others fail with the
    /// reason.
    pub fn new(config: &EgressConfig) -> Self {
        Self {
            map: config.map.clone(),
            dns: Self::dns(config),
        }
    }

    fn dns(config: &EgressConfig) -> Result<TokioResolver, String> {
        let (dns_config, mut opts) = if config.nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read the host's resolver configuration: {e}"))?
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|s| {
                    let conn = |mut c: ConnectionConfig| {
                        c.port = s.port();
                        c
                    };
                    NameServerConfig::new(
                        s.ip(),
                        true,
                        vec![conn(ConnectionConfig::udp()), conn(ConnectionConfig::tcp())],
                    )
                })
                .collect();
            (
                ResolverConfig::from_parts(None, vec![], servers),
                ResolverOpts::default(),
            )
        };
        // Names go out fully qualified (no search domains), A and AAAA, no hosts file (the
        // operator's map is the one override), short timeouts.
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.ndots = 0;
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        hickory_resolver::Resolver::builder_with_config(dns_config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| format!("cannot build the DNS client: {e}"))
    }

    /// The addresses of `name` (normalized), and where they came from.
    pub async fn lookup(&self, name: &str) -> Result<(Vec<IpAddr>, AddressSource), String> {
        if let Some(addrs) = self.map.get(name) {
            return Ok((addrs.clone(), AddressSource::OperatorMap));
        }
        let fqdn = format!("{name}.");
        let dns = self
            .dns
            .as_ref()
            .map_err(|e| format!("cannot resolve {name}: {e}"))?;
        let answer = dns
            .lookup_ip(fqdn.as_str())
            .await
            .map_err(|e| format!("cannot resolve {name}: {e}"))?;
        let addrs: Vec<IpAddr> = answer.iter().collect();
        if addrs.is_empty() {
            return Err(format!("{name} has no address"));
        }
        Ok((addrs, AddressSource::Dns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directives() {
        let c = EgressConfig::parse(
            "# comment\nnameserver 127.0.0.1:5353\nnameserver 10.0.0.1\n\nmap API.Test. 127.0.0.1 ::1 # local\n",
            "egress.conf",
        )
        .expect("parses");
        assert_eq!(
            c.nameservers,
            vec![
                "127.0.0.1:5353".parse().expect("addr"),
                "10.0.0.1:53".parse().expect("addr")
            ]
        );
        assert_eq!(
            c.map.get("api.test"),
            Some(&vec![
                "127.0.0.1".parse().expect("ip"),
                "::1".parse().expect("ip")
            ])
        );
    }

    #[test]
    fn refuses_bad_lines_with_their_number() {
        for (text, line) in [
            ("nameserver\n", 1),
            ("\nnameserver example.com\n", 2),
            ("map x.test\n", 1),
            ("map x.test 1.2.3\n", 1),
            ("map 127.0.0.1 127.0.0.1\n", 1),
            ("proxy 1.2.3.4\n", 1),
        ] {
            match EgressConfig::parse(text, "f") {
                Err(ConfigError::Line { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
