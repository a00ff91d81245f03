//! Hosts as a client writes them, normalized into what they are: a DNS name in canonical ASCII
//! form, or an IP address however oddly it was spelled.
//!
//! Every host the proxy sees (a CONNECT authority, an absolute URI, a `Host` header) passes
//! through [`Host::parse`] before any rule is consulted, so that `API.Example.COM.`,
//! `api.example.com` and its Unicode form are one name, and `2130706433`, `0x7f.1`, `127.1`,
//! `0177.0.0.1` and `[::ffff:127.0.0.1]` are all 127.0.0.1.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use skillcell_types::net::as_ipv4_destination;

/// A host after normalization.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// Lower-case ASCII (IDNA `xn--` form for international names), no trailing dot, labels
    /// of letters, digits and hyphens.
    Name(String),
    /// An address. IPv6 forms that reach an IPv4 host (mapped, compatible, NAT64) are that
    /// IPv4 address.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// Why a host could not be understood. The proxy refuses such requests outright.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the host is empty")]
    Empty,
    #[error("the host is longer than 253 characters")]
    TooLong,
    #[error("`{0}` is not a valid IPv6 address")]
    BadIpv6(String),
    #[error("`{0}` looks like an IP address but is not a valid one")]
    BadIpv4(String),
    #[error("`{0}` is not a valid host name ({1})")]
    BadName(String, &'static str),
    #[error("`{0}` is not a valid authority (write host:port)")]
    BadAuthority(String),
    #[error("`{0}` is not a valid port")]
    BadPort(String),
}

/// Longest host text looked at (a DNS name is at most 253 characters; IDNA input may be
/// longer before mapping, but not by this much).
const MAX_HOST_INPUT: usize = 1024;

impl Host {
    /// Parses a host as it appears in a URI authority or a `Host` header, without the port:
    /// `[v6]`, an IPv4 address in any spelling `inet_aton` accepts, or a DNS name.
    pub fn parse(raw: &str) -> Result<Self, HostError> {
        if raw.is_empty() {
            return Err(HostError::Empty);
        }
        if raw.len() > MAX_HOST_INPUT {
            return Err(HostError::TooLong);
        }
        if let Some(inner) = raw.strip_prefix('[') {
            let v6 = inner
                .strip_suffix(']')
                .and_then(|s| s.parse::<Ipv6Addr>().ok())
                .ok_or_else(|| HostError::BadIpv6(raw.to_owned()))?;
            return Ok(Self::Ip(match as_ipv4_destination(&v6) {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }));
        }
        // UTS 46 mapping first (case, full-width digits and dots, Unicode to xn--), so that
        // what is judged below is what a resolver would be asked.
        let ascii = Uts46::new()
            .to_ascii(
                raw.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Check,
                DnsLength::VerifyAllowRootDot,
            )
            .map_err(|_| HostError::BadName(raw.to_owned(), "IDNA processing refused it"))?;
        let name = ascii.strip_suffix('.').unwrap_or(&ascii);
        if name.is_empty() {
            return Err(HostError::Empty);
        }
        if name.len() > 253 {
            return Err(HostError::TooLong);
        }
        // As the URL standard does: a name whose last label is numeric is an IPv4 address,
        // never a name to resolve.
        let last = name.rsplit('.').next().unwrap_or_default();
        if ends_in_number(last) {
            return parse_ipv4_loose(name)
                .map(|ip| Self::Ip(IpAddr::V4(ip)))
                .ok_or_else(|| HostError::BadIpv4(raw.to_owned()));
        }
        for label in name.split('.') {
            let why = if label.is_empty() {
                "an empty label"
            } else if label.len() > 63 {
                "a label longer than 63 characters"
            } else if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                "only letters, digits and hyphens are allowed"
            } else if label.starts_with('-') || label.ends_with('-') {
                "a label starts or ends with a hyphen"
            } else {
                continue;
            };
            return Err(HostError::BadName(raw.to_owned(), why));
        }
        Ok(Self::Name(name.to_owned()))
    }

    /// Parses `host:port` (CONNECT's authority form; a port is required).
    pub fn parse_authority(raw: &str) -> Result<(Self, u16), HostError> {
        let (host, port) =
            split_host_port(raw).ok_or_else(|| HostError::BadAuthority(raw.to_owned()))?;
        let port = port.ok_or_else(|| HostError::BadAuthority(raw.to_owned()))?;
        Ok((Self::parse(host)?, parse_port(port)?))
    }

    /// Parses `host[:port]` with a default port (an absolute URI's authority, a `Host`
    /// header). Userinfo (`user@host`) is refused: it is how `http://allowed@evil/` hides
    /// the real host from a reader.
    pub fn parse_with_default_port(raw: &str, default: u16) -> Result<(Self, u16), HostError> {
        let (host, port) =
            split_host_port(raw).ok_or_else(|| HostError::BadAuthority(raw.to_owned()))?;
        let port = match port {
            Some(p) => parse_port(p)?,
            None => default,
        };
        Ok((Self::parse(host)?, port))
    }
}

/// Splits `host[:port]` / `[v6][:port]`. `None` when the shape is wrong (userinfo, an empty
/// port, text after `]`).
fn split_host_port(raw: &str) -> Option<(&str, Option<&str>)> {
    if raw.contains('@') {
        return None;
    }
    if raw.starts_with('[') {
        let close = raw.find(']')?;
        let (host, rest) = raw.split_at(close + 1);
        return match rest {
            "" => Some((host, None)),
            r => r.strip_prefix(':').map(|p| (host, Some(p))),
        };
    }
    match raw.rsplit_once(':') {
        // A second colon outside brackets: an IPv6 address without them, or garbage.
        Some((h, _)) if h.contains(':') => None,
        Some((h, p)) => Some((h, Some(p))),
        None => Some((raw, None)),
    }
}

/// Decimal digits only (no sign, no spaces), 1 to 65535. Leading zeros are the same number.
fn parse_port(p: &str) -> Result<u16, HostError> {
    let bad = || HostError::BadPort(p.to_owned());
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(n),
    }
}

/// The URL standard's "ends in a number": the last label is all decimal digits, or `0x`
/// followed by hex digits.
fn ends_in_number(label: &str) -> bool {
    if !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    label
        .strip_prefix("0x")
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// IPv4 in every spelling `inet_aton` accepts: one to four parts, each decimal, octal (a
/// leading `0`) or hex (`0x`); the last part fills the remaining bytes.
pub fn parse_ipv4_loose(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        nums.push(parse_ipv4_number(p)?);
    }
    let (last, init) = nums.split_last()?;
    if init.iter().any(|n| *n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - init.len() as u32);
    if rest_bits < 32 && *last >= (1u64 << rest_bits) {
        return None;
    }
    if *last > u64::from(u32::MAX) {
        return None;
    }
    let mut v: u64 = *last;
    for (i, n) in init.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    u32::try_from(v).ok().map(Ipv4Addr::from)
}

fn parse_ipv4_number(p: &str) -> Option<u64> {
    if p.is_empty() || p.len() > 40 {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x") {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        // `0x` alone is zero, as inet_aton reads it.
        return (radix == 16).then_some(0);
    }
    // Digits only: `from_str_radix` alone would also take a leading `+`.
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().expect("ip"))
    }
    fn name(s: &str) -> Host {
        Host::Name(s.to_owned())
    }

    #[test]
    fn odd_ipv4_spellings_are_the_address_they_are() {
        for s in [
            "127.0.0.1",
            "2130706433",
            "0x7f.1",
            "127.1",
            "0177.0.0.1",
            "0x7f000001",
            "127.0.1",
            "0x7F.0.0.1",
            "127.0.0.1.",
            "１２７．０．０．１",
        ] {
            assert_eq!(Host::parse(s), Ok(ip("127.0.0.1")), "{s}");
        }
        assert_eq!(
            Host::parse("0251.0376.0251.0376"),
            Ok(ip("169.254.169.254"))
        );
        for s in [
            "256.0.0.1",
            "1.2.3.4.5",
            "0x100000000",
            "1.2.3.08",
            "1.2.65536",
        ] {
            assert!(matches!(Host::parse(s), Err(HostError::BadIpv4(_))), "{s}");
        }
        // Signs are not digits (found by the proxy_request fuzz target).
        for s in ["120.+1", "+1", "0x+1", "0+1", "1.2.3.+4", "-1"] {
            assert_eq!(parse_ipv4_loose(s), None, "{s}");
        }
    }

    #[test]
    fn ipv4_hidden_in_ipv6_is_ipv4() {
        for s in [
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[::127.0.0.1]",
            "[64:ff9b::7f00:1]",
        ] {
            assert_eq!(Host::parse(s), Ok(ip("127.0.0.1")), "{s}");
        }
        assert_eq!(Host::parse("[::1]"), Ok(ip("::1")));
        assert!(Host::parse("[fe80::1%eth0]").is_err());
        assert!(Host::parse("[::1").is_err());
    }

    #[test]
    fn names_are_normalized() {
        for s in ["API.Example.COM", "api.example.com.", "api.example.com"] {
            assert_eq!(Host::parse(s), Ok(name("api.example.com")), "{s}");
        }
        assert_eq!(
            Host::parse("bücher.example"),
            Ok(name("xn--bcher-kva.example"))
        );
        assert_eq!(
            Host::parse("BÜCHER.example"),
            Ok(name("xn--bcher-kva.example"))
        );
        for s in [
            "",
            ".",
            "a..b",
            "api.example.com..",
            "-a.example",
            "a_b.example",
            "a b",
            "a%2eb",
            "ex ample.com",
        ] {
            assert!(Host::parse(s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn authorities() {
        assert_eq!(
            Host::parse_authority("api.example.com:443"),
            Ok((name("api.example.com"), 443))
        );
        assert_eq!(
            Host::parse_authority("[::ffff:127.0.0.1]:8080"),
            Ok((ip("127.0.0.1"), 8080))
        );
        assert_eq!(
            Host::parse_with_default_port("example.com", 80),
            Ok((name("example.com"), 80))
        );
        assert_eq!(
            Host::parse_with_default_port("example.com:0080", 80),
            Ok((name("example.com"), 80))
        );
        for s in [
            "api.example.com",
            "api.example.com:",
            "api.example.com:+443",
            "api.example.com:0",
            "api.example.com:65536",
            "user@api.example.com:443",
            "allowed.com:443@evil.com:443",
            "::1:443",
            "[::1]x:443",
        ] {
            assert!(Host::parse_authority(s).is_err(), "{s:?} accepted");
        }
    }
}
