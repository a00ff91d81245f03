//! Facts about IP addresses that the contract parser and the egress proxy must agree on: which
//! IPv6 addresses carry an IPv4 address, and which addresses are not public internet hosts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IPv4 address an IPv6 address carries, in any of the well-known forms that reach IPv4
/// hosts: mapped (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96` and
/// `64:ff9b:1::/48`), 6to4 (`2002::/16`) and Teredo (`2001::/32`). Operator-chosen NAT64
/// prefixes cannot be recognized here; the egress proxy judges the address it dials.
pub fn embedded_ipv4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let low = |a: u16, b: u16| Ipv4Addr::from((u32::from(a) << 16) | u32::from(b));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if seg[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(low(seg[6], seg[7]));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low(seg[6], seg[7]));
    }
    // Local-use NAT64 (RFC 8215): the IPv4 address sits in the low 32 bits for a /96.
    if seg[..3] == [0x64, 0xff9b, 1] {
        return Some(low(seg[6], seg[7]));
    }
    // Teredo: the client's IPv4 address, inverted, in the last 32 bits.
    if seg[..2] == [0x2001, 0] {
        return Some(low(!seg[6], !seg[7]));
    }
    if seg[0] == 0x2002 {
        return Some(low(seg[1], seg[2]));
    }
    None
}

/// The IPv4 address that an IPv6 address *is*, for judging and dialing: mapped, compatible
/// and NAT64 forms reach exactly that IPv4 host. (6to4 and Teredo embed a relay or a client
/// address, not the destination; [`special_use`] still looks inside them.)
pub fn as_ipv4_destination(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let is_nat64 = seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || seg[..3] == [0x64, 0xff9b, 1];
    let is_compat = seg[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified();
    if ip.to_ipv4_mapped().is_some() || is_nat64 || is_compat {
        embedded_ipv4(ip)
    } else {
        None
    }
}

/// Why `ip` is not a public unicast internet host, or `None` if it is one. The egress proxy
/// refuses to dial these unless the contract names the address itself.
pub fn special_use(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(&v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    let why = match (a, b, c, d) {
        (169, 254, 169, 254) => "the cloud metadata address",
        (0, ..) => "a \"this network\" address (0.0.0.0/8)",
        (10, ..) => "a private address (10.0.0.0/8)",
        (100, 64..=127, ..) => "a shared carrier-grade NAT address (100.64.0.0/10)",
        (127, ..) => "a loopback address",
        (169, 254, ..) => "a link-local address",
        (172, 16..=31, ..) => "a private address (172.16.0.0/12)",
        (192, 0, 0, _) => "an IETF protocol address (192.0.0.0/24)",
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => "a documentation address",
        (192, 168, ..) => "a private address (192.168.0.0/16)",
        (198, 18..=19, ..) => "a benchmarking address (198.18.0.0/15)",
        (224..=239, ..) => "a multicast address",
        (255, 255, 255, 255) => "the broadcast address",
        (240..=255, ..) => "a reserved address (240.0.0.0/4)",
        _ => return None,
    };
    Some(why)
}

fn special_v6(ip: &Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_ipv4(ip)
        && let Some(why) = special_v4(v4)
    {
        return Some(why);
    }
    let seg = ip.segments();
    let why = if ip.is_unspecified() {
        "the unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if seg[0] & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if seg[0] & 0xffc0 == 0xfec0 {
        "a site-local address"
    } else if seg[0] & 0xfe00 == 0xfc00 {
        "a unique-local address (fc00::/7)"
    } else if seg[0] & 0xff00 == 0xff00 {
        "a multicast address"
    } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        "a documentation address"
    } else if seg[..4] == [0x0100, 0, 0, 0] {
        "a discard-only address (100::/64)"
    } else if seg[..6] == [0; 6] || ip.to_ipv4_mapped().is_some() {
        // Compatible and mapped forms of a public IPv4 address are judged as it (above);
        // what is left here is reserved space.
        return None;
    } else {
        return None;
    };
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().expect("v4"))
    }
    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().expect("v6"))
    }

    #[test]
    fn special_ranges() {
        for s in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.100.100.200",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.192",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(special_use(v4(s)).is_some(), "{s}");
        }
        for s in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "8.8.8.8",
        ] {
            assert_eq!(special_use(v4(s)), None, "{s}");
        }
        assert_eq!(
            special_use(v4("169.254.169.254")),
            Some("the cloud metadata address")
        );
    }

    #[test]
    fn special_v6_ranges_and_hidden_v4() {
        for s in [
            "::",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(special_use(v6(s)).is_some(), "{s}");
        }
        for s in [
            "2606:4700::1111",
            "::ffff:93.184.216.34",
            "64:ff9b::808:808",
        ] {
            assert_eq!(special_use(v6(s)), None, "{s}");
        }
    }

    #[test]
    fn destinations_inside_v6() {
        let dest = |s: &str| as_ipv4_destination(&s.parse().expect("v6"));
        assert_eq!(dest("::ffff:127.0.0.1"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(dest("::127.0.0.1"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(dest("64:ff9b::7f00:1"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(dest("2002:7f00:1::"), None);
        assert_eq!(dest("::1"), None);
        assert_eq!(dest("2606:4700::1111"), None);
    }
}
