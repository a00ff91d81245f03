//! What one proxy request asks for: a pure function of its method, request target and `Host`
//! headers, shared by the server and the fuzz target.

use hyper::{HeaderMap, Method, Uri, header};

use crate::host::Host;
use crate::policy::Refusal;

/// How the client named the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `CONNECT host:port`: a tunnel.
    Connect,
    /// `GET http://host[:port]/path`: forwarding.
    Absolute,
    /// `GET /path` with a `Host` header (a client that treats the proxy as the server).
    Origin,
}

/// The destination of a request, normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
    pub form: Form,
    /// The `Host` header to send upstream (the client's own, when it sent one: it was checked
    /// to name the same host and port).
    pub host_header: String,
    /// The origin-form target to send upstream (`/path?query`; `/` when the URL has no path),
    /// already checked to parse. Empty for CONNECT.
    pub path: String,
}

fn bad(reason: impl Into<String>) -> Refusal {
    Refusal::new("bad_request", reason)
}

/// Reads the destination out of a request, refusing every ambiguity: userinfo, a `Host`
/// header naming another host or port than the request target, several `Host` headers,
/// `https://` targets for plain forwarding (those go through CONNECT), a target without a
/// host.
pub fn judge(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Target, Refusal> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host_header = match (hosts.next(), hosts.next()) {
        (None, _) => None,
        (Some(h), None) => Some(
            h.to_str()
                .map_err(|_| bad("the Host header is not ASCII"))?
                .to_owned(),
        ),
        (Some(_), Some(_)) => return Err(bad("more than one Host header")),
    };
    let default_port = 80;
    let (host, port, form) = if method == Method::CONNECT {
        let authority = match (uri.scheme(), uri.authority(), uri.path_and_query()) {
            (None, Some(a), _) => a.as_str(),
            _ => return Err(bad("CONNECT needs host:port as its target")),
        };
        let (host, port) = Host::parse_authority(authority).map_err(|e| bad(e.to_string()))?;
        (host, port, Form::Connect)
    } else if let Some(scheme) = uri.scheme_str() {
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(bad(format!(
                "{scheme}:// URLs cannot be forwarded; HTTPS goes through CONNECT (set HTTPS_PROXY)"
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| bad("the URL has no host"))?
            .as_str();
        let (host, port) = Host::parse_with_default_port(authority, default_port)
            .map_err(|e| bad(e.to_string()))?;
        (host, port, Form::Absolute)
    } else {
        if uri.authority().is_some() || !uri.path().starts_with('/') {
            return Err(bad("the request target is neither a URL nor a path"));
        }
        let h = host_header
            .as_deref()
            .ok_or_else(|| bad("a request without a URL or a Host header"))?;
        let (host, port) =
            Host::parse_with_default_port(h, default_port).map_err(|e| bad(e.to_string()))?;
        (host, port, Form::Origin)
    };
    let host_header = match host_header {
        Some(h) => {
            let (hh, hp) = Host::parse_with_default_port(
                &h,
                if form == Form::Connect {
                    port
                } else {
                    default_port
                },
            )
            .map_err(|e| Refusal::new("host_mismatch", format!("Host header: {e}")))?;
            if hh != host || hp != port {
                return Err(Refusal::new(
                    "host_mismatch",
                    format!(
                        "the request goes to {host}:{port} but its Host header names {hh}:{hp}"
                    ),
                ));
            }
            h
        }
        None if port == default_port => host.to_string(),
        None => format!("{host}:{port}"),
    };
    let path = if form == Form::Connect {
        String::new()
    } else {
        let p = match uri.path() {
            "" => "/",
            p => p,
        };
        let path = match uri.query() {
            Some(q) => format!("{p}?{q}"),
            None => p.to_owned(),
        };
        // Checked before anything is dialed: what goes upstream must be a plain path.
        match path.parse::<Uri>() {
            Ok(u) if u.scheme().is_none() && u.authority().is_none() => path,
            _ => return Err(bad(format!("the path {path:?} cannot be forwarded"))),
        }
    };
    Ok(Target {
        host,
        port,
        form,
        host_header,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, hosts: &[&str]) -> Result<Target, &'static str> {
        let method: Method = method.parse().expect("method");
        let uri: Uri = target.parse().expect("uri");
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(header::HOST, h.parse().expect("header"));
        }
        judge(&method, &uri, &headers).map_err(|r| r.code)
    }

    #[test]
    fn connect_takes_host_and_port() {
        let t = req("CONNECT", "api.test:443", &["api.test:443"]).expect("ok");
        assert_eq!(
            (t.host.to_string(), t.port, t.form),
            ("api.test".into(), 443, Form::Connect)
        );
        assert!(req("CONNECT", "api.test:443", &[]).is_ok());
        assert_eq!(
            req("CONNECT", "api.test:443", &["evil.test:443"]),
            Err("host_mismatch")
        );
        assert_eq!(req("CONNECT", "api.test", &[]), Err("bad_request"));
    }

    #[test]
    fn absolute_uri_must_agree_with_host() {
        let t = req("GET", "http://API.test/x", &["api.test"]).expect("ok");
        assert_eq!((t.port, t.form), (80, Form::Absolute));
        assert_eq!(t.host_header, "api.test");
        assert!(req("GET", "http://api.test:80/x", &["api.test"]).is_ok());
        assert_eq!(
            req("GET", "http://api.test/x", &["evil.test"]),
            Err("host_mismatch")
        );
        assert_eq!(
            req("GET", "http://api.test/x", &["api.test:8080"]),
            Err("host_mismatch")
        );
        assert_eq!(
            req("GET", "http://api.test/x", &["api.test", "api.test"]),
            Err("bad_request")
        );
        assert_eq!(req("GET", "https://api.test/x", &[]), Err("bad_request"));
        assert_eq!(
            req("GET", "http://user@evil.test/x", &[]),
            Err("bad_request")
        );
        let t = req("GET", "http://api.test:8080/x", &[]).expect("ok");
        assert_eq!(t.host_header, "api.test:8080");
        let t = req("GET", "http://0x7f.1:8080/", &[]).expect("ok");
        assert_eq!(t.host.to_string(), "127.0.0.1");
        // A URL with a query and no path goes upstream as `/?query` (urllib sends these).
        let t = req("GET", "http://api.test?q=1", &[]).expect("ok");
        assert_eq!(t.path, "/?q=1");
        let t = req("GET", "http://api.test", &[]).expect("ok");
        assert_eq!(t.path, "/");
        let t = req("GET", "/a/b?c", &["api.test"]).expect("ok");
        assert_eq!(t.path, "/a/b?c");
    }

    #[test]
    fn origin_form_uses_the_host_header() {
        let t = req("GET", "/x", &["api.test:8080"]).expect("ok");
        assert_eq!(
            (t.host.to_string(), t.port, t.form),
            ("api.test".into(), 8080, Form::Origin)
        );
        assert_eq!(req("GET", "/x", &[]), Err("bad_request"));
        assert_eq!(req("OPTIONS", "*", &["api.test"]), Err("bad_request"));
    }
}
