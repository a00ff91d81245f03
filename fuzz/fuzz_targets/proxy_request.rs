//! Fuzzes what the egress proxy reads out of a request: arbitrary bytes are parsed as HTTP/1.1
//! request heads the way hyper's server parses them (httparse with hyper's defaults, then
//! hyper's `Method`, `Uri` and `HeaderMap`, and hyper's own refusals: bad `Content-Length`,
//! a `Transfer-Encoding` that does not end in `chunked` …), pipelined heads included, and
//! each head goes through `skillcell_egress::request::judge`.
//!
//! Beyond "no crash", an accepted target must be sound:
//! - its host is normalized: it re-parses to itself; a name is lower-case ASCII LDH labels,
//!   no trailing dot, at most 253 characters, not ending in a numeric label; an IPv6 address
//!   is not an IPv4 address in disguise;
//! - its port is not 0;
//! - a CONNECT target came from an authority (`host:port`, no scheme) and is that authority;
//!   an absolute-form target is its URL's authority; an origin-form target had a path and a
//!   single `Host` header;
//! - when the client sent a `Host` header, it names the same host and port, and is the one
//!   sent upstream; the `Host` header sent upstream always names the target and is a valid
//!   header value;
//! - the origin-form path the proxy forwards upstream parses as a request target.
//!
//! The raw input, as text, also goes through `Host::parse` and `parse_ipv4_loose` (first
//! line) and the authority parsers (second line), which must be idempotent and agree.
#![no_main]

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Uri};
use libfuzzer_sys::fuzz_target;
use skillcell_egress::request::{Form, judge};
use skillcell_egress::{Host, parse_ipv4_loose};
use skillcell_types::net::as_ipv4_destination;

/// Heads looked at in one input (pipelined requests).
const MAX_PIPELINED: usize = 8;
/// hyper's default header count limit.
const MAX_HEADERS: usize = 100;
/// The proxy's `max_buf_size` (crates/egress/src/server.rs `MAX_HEAD`).
const MAX_HEAD: usize = 64 * 1024;
/// `http::Uri`'s length limit.
const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;
/// A body of known length is skipped to reach the next head; longer ones end the pipeline.
const MAX_BODY_LEN: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    requests(data);
    hosts(data);
});

/// One request head as hyper's server hands it to the proxy's service.
struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    /// Bytes of the head.
    len: usize,
    body: Body,
}

enum Body {
    Length(u64),
    Chunked,
}

/// Every head in `data`, one after the other, as long as what follows a head is the next one
/// (a body of known length is skipped; a chunked body or a CONNECT ends the pipeline).
fn requests(data: &[u8]) {
    let mut rest = data;
    for _ in 0..MAX_PIPELINED {
        let Some(head) = parse_head(rest) else {
            return;
        };
        check(&head.method, &head.uri, &head.headers);
        if head.method == Method::CONNECT {
            return;
        }
        let Body::Length(n) = head.body else {
            return;
        };
        let Some(next) = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_add(head.len))
            .and_then(|end| rest.get(end..))
        else {
            return;
        };
        rest = next;
    }
}

/// hyper 1.x `proto::h1::role::Server::parse`, minus what cannot change the head: `None`
/// where hyper would answer 400 (or wait for more bytes).
fn parse_head(buf: &[u8]) -> Option<Head> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let len = match httparse::ParserConfig::default().parse_request(&mut req, buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) | Err(_) => return None,
    };
    if len > MAX_HEAD {
        return None;
    }
    let path = req.path?;
    if path.len() > MAX_URI_LEN {
        return None;
    }
    let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
    let http11 = req.version? == 1;
    let mut headers = HeaderMap::new();
    let (mut is_te, mut is_te_chunked, mut is_cl) = (false, false, false);
    let mut con_len = None;
    let mut body = Body::Length(0);
    for h in req.headers.iter() {
        if h.name.len() >= 1 << 16 {
            return None;
        }
        // hyper builds these unchecked (and panics in debug builds if they are invalid):
        // httparse's token and value rules must be within http's.
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .unwrap_or_else(|e| panic!("httparse accepted header name {:?}: {e}", h.name));
        let value = HeaderValue::from_bytes(h.value)
            .unwrap_or_else(|e| panic!("httparse accepted header value {:?}: {e}", h.value));
        match name {
            header::TRANSFER_ENCODING => {
                if !http11 {
                    return None;
                }
                is_te = true;
                if is_cl && con_len.take().is_some() {
                    headers.remove(header::CONTENT_LENGTH);
                }
                is_te_chunked = is_chunked(&value);
                if is_te_chunked {
                    body = Body::Chunked;
                }
            }
            header::CONTENT_LENGTH => {
                is_cl = true;
                if is_te {
                    continue;
                }
                let n = from_digits(value.as_bytes())?;
                if let Some(prev) = con_len {
                    if prev != n {
                        return None;
                    }
                    continue;
                }
                if n > MAX_BODY_LEN {
                    return None;
                }
                body = Body::Length(n);
                con_len = Some(n);
            }
            _ => {}
        }
        headers.append(name, value);
    }
    if is_te && !is_te_chunked {
        return None;
    }
    // hyper: `http::Uri::from_maybe_shared(bytes)` of the request target.
    let uri = Uri::try_from(path.as_bytes()).ok()?;
    Some(Head {
        method,
        uri,
        headers,
        len,
        body,
    })
}

/// hyper's `headers::is_chunked_`.
fn is_chunked(value: &HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|s| s.rsplit(',').next())
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("chunked"))
}

/// hyper's `headers::from_digits`.
fn from_digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then_some(())
            .and_then(|()| n.checked_mul(10))
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
    })
}

fn check(method: &Method, uri: &Uri, headers: &HeaderMap) {
    let verdict = judge(method, uri, headers);
    assert_eq!(
        verdict,
        judge(method, uri, headers),
        "judge is not deterministic"
    );
    let Ok(t) = verdict else {
        return;
    };
    let shown = format!("{method} {uri} {headers:?} -> {t:?}");
    check_host(&t.host);
    assert_ne!(t.port, 0, "port 0: {shown}");
    let target = Ok((t.host.clone(), t.port));
    let sent: Vec<&HeaderValue> = headers.get_all(header::HOST).iter().collect();
    assert!(sent.len() <= 1, "several Host headers accepted: {shown}");
    let default_port = match t.form {
        Form::Connect => {
            assert_eq!(*method, Method::CONNECT, "{shown}");
            assert!(uri.scheme().is_none(), "CONNECT to a URL: {shown}");
            let authority = uri
                .authority()
                .unwrap_or_else(|| panic!("CONNECT without an authority: {shown}"));
            assert_eq!(Host::parse_authority(authority.as_str()), target, "{shown}");
            t.port
        }
        Form::Absolute => {
            assert_ne!(*method, Method::CONNECT, "{shown}");
            assert!(
                uri.scheme_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("http")),
                "{shown}"
            );
            let authority = uri
                .authority()
                .unwrap_or_else(|| panic!("a URL without a host: {shown}"));
            assert_eq!(
                Host::parse_with_default_port(authority.as_str(), 80),
                target,
                "{shown}"
            );
            80
        }
        Form::Origin => {
            assert_ne!(*method, Method::CONNECT, "{shown}");
            assert!(
                uri.scheme().is_none() && uri.authority().is_none(),
                "{shown}"
            );
            assert!(uri.path().starts_with('/'), "{shown}");
            assert_eq!(sent.len(), 1, "origin form without a Host header: {shown}");
            80
        }
    };
    if let Some(h) = sent.first() {
        let h = h
            .to_str()
            .unwrap_or_else(|_| panic!("a non-ASCII Host header accepted: {shown}"));
        assert_eq!(
            Host::parse_with_default_port(h, default_port),
            target,
            "the Host header names another host or port: {shown}"
        );
        assert_eq!(
            t.host_header, h,
            "the client's Host header is not sent on: {shown}"
        );
    }
    assert_eq!(
        Host::parse_with_default_port(&t.host_header, default_port),
        target,
        "the Host header sent upstream names another host or port: {shown}"
    );
    assert!(
        HeaderValue::from_str(&t.host_header).is_ok(),
        "the Host header sent upstream is not a header value: {shown}"
    );
    if t.form != Form::Connect {
        // What `server::forward` sends upstream as the request target.
        let path = t.path.as_str();
        assert!(
            path.starts_with('/')
                && path
                    .parse::<Uri>()
                    .is_ok_and(|u| u.scheme().is_none() && u.authority().is_none()),
            "the proxy cannot forward the accepted target (its path {path:?} is not a request target): {shown}"
        );
    }
}

/// A normalized host is what the module documents, and re-parses to itself.
fn check_host(host: &Host) {
    match host {
        Host::Name(n) => {
            assert!(
                !n.is_empty() && n.len() <= 253,
                "name length {}: {n:?}",
                n.len()
            );
            assert!(!n.ends_with('.'), "trailing dot: {n:?}");
            for label in n.split('.') {
                assert!(
                    !label.is_empty() && label.len() <= 63,
                    "label {label:?} in {n:?}"
                );
                assert!(
                    label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    "not lower-case LDH: {n:?}"
                );
                assert!(
                    !label.starts_with('-') && !label.ends_with('-'),
                    "hyphen at a label's edge: {n:?}"
                );
            }
            let last = n.rsplit('.').next().unwrap_or_default();
            let numeric = last.bytes().all(|b| b.is_ascii_digit())
                || last
                    .strip_prefix("0x")
                    .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(!numeric, "a name that is an IPv4 address: {n:?}");
        }
        Host::Ip(IpAddr::V6(v6)) => {
            assert_eq!(
                as_ipv4_destination(v6),
                None,
                "an IPv4 address kept as IPv6: {v6}"
            );
        }
        Host::Ip(IpAddr::V4(_)) => {}
    }
    let shown = host.to_string();
    assert_eq!(
        Host::parse(&shown),
        Ok(host.clone()),
        "{shown:?} does not re-parse to itself"
    );
}

fn hosts(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(h) = Host::parse(first) {
        check_host(&h);
    }
    if let Some(ip) = parse_ipv4_loose(first) {
        assert_eq!(parse_ipv4_loose(&ip.to_string()), Some(ip), "{first:?}");
        // Host::parse reads every spelling parse_ipv4_loose does as that address.
        assert_eq!(
            Host::parse(first),
            Ok(Host::Ip(IpAddr::V4(ip))),
            "parse_ipv4_loose and Host::parse disagree on {first:?}"
        );
    }
    let second = rest.split('\n').next().unwrap_or_default();
    for line in [first, second] {
        if let Ok((h, p)) = Host::parse_authority(line) {
            check_host(&h);
            assert_ne!(p, 0, "{line:?}");
            assert_eq!(
                Host::parse_authority(&format!("{h}:{p}")),
                Ok((h.clone(), p)),
                "{line:?}"
            );
            assert_eq!(
                Host::parse_with_default_port(line, 1),
                Ok((h, p)),
                "{line:?}"
            );
        }
        if let Ok((h, p)) = Host::parse_with_default_port(line, 80) {
            check_host(&h);
            assert_ne!(p, 0, "{line:?}");
            let again = if p == 80 {
                h.to_string()
            } else {
                format!("{h}:{p}")
            };
            assert_eq!(
                Host::parse_with_default_port(&again, 80),
                Ok((h, p)),
                "{line:?}"
            );
        }
    }
}
