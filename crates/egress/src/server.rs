//! Serving the cell's listener: accept, judge every request, dial a checked address, tunnel or
//! forward, count the bytes, record the connection.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use skillcell_types::Decision;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};

use crate::host::Host;
use crate::policy::{AddressSource, Refusal};
use crate::request::{self, Form, Target};
use crate::{
    ConnectionRecord, EgressSummary, FINISH_GRACE, MAX_CONCURRENT, MAX_RECORDS, MAX_UPSTREAMS,
    ProxyConfig, Recorder, Resolver, Shared,
};

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// How long a request waits for one of the [`MAX_UPSTREAMS`] slots before it is refused.
const SLOT_WAIT: Duration = Duration::from_secs(10);
/// After one side of a tunnel has ended, how long the other may still run.
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long a dial may take, per address.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the accept loop waits after `accept` failed (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Where a proxy's clients come from.
pub(crate) enum Source {
    /// The listening socket a cell makes and sends (it may never come, if the cell failed).
    Listener(mpsc::Receiver<OwnedFd>),
    /// One end of a socket pair per request, from [`Connector`](crate::Connector) (the
    /// in-process WASM cell).
    Streams(tokio::sync::mpsc::UnboundedReceiver<std::os::unix::net::UnixStream>),
}

/// The proxy thread's body.
pub(crate) fn run(
    config: ProxyConfig,
    recorder: Arc<dyn Recorder>,
    source: Source,
    stop: watch::Receiver<bool>,
) -> EgressSummary {
    let failed = |e: String| EgressSummary {
        failed: Some(e),
        budget_bytes: config.budget_bytes,
        ..EgressSummary::default()
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failed(format!("cannot start the proxy's runtime: {e}")),
    };
    let resolver = {
        let _inside = rt.enter();
        Resolver::new(&config.egress)
    };
    let shared = Arc::new(Shared {
        policy: config.policy,
        resolver,
        recorder,
        budget: config.budget_bytes,
        used: AtomicU64::new(0),
        budget_exhausted: Default::default(),
        records: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        bytes_up: AtomicU64::new(0),
        bytes_down: AtomicU64::new(0),
        over_cap: AtomicU64::new(0),
        started: AtomicU64::new(0),
        open: AtomicUsize::new(0),
        idle: Notify::new(),
        upstreams: Arc::new(Semaphore::new(MAX_UPSTREAMS)),
    });
    match source {
        Source::Listener(listener) => {
            // The cell's listener, or nothing when the cell failed before making one.
            let Ok(fd) = listener.recv() else {
                return shared.summary();
            };
            rt.block_on(serve(fd, Arc::clone(&shared), stop));
        }
        Source::Streams(streams) => rt.block_on(serve_streams(streams, Arc::clone(&shared), stop)),
    }
    // Dropping the runtime drops every task still open; each one's record is written as it
    // drops.
    drop(rt);
    shared.summary()
}

async fn serve(fd: OwnedFd, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let std_listener = std::net::TcpListener::from(fd);
    if std_listener.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(listener) = TcpListener::from_std(std_listener) else {
        return;
    };
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                // Out of descriptors (EMFILE) or memory: the pending connection keeps the
                // listener readable, so retrying at once would spin. Back off.
                Err(_) => {
                    drop(permit);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_client(stream, shared).await;
            drop(permit);
        });
    }
    drop(listener);
    // The cell is gone: give tunnels and responses a moment to finish, then stop.
    drain(&shared).await;
}

/// Gives open tunnels and responses [`FINISH_GRACE`] to finish once no client can come.
async fn drain(shared: &Shared) {
    let _ = tokio::time::timeout(FINISH_GRACE, async {
        while shared.open.load(Ordering::Acquire) > 0 {
            shared.idle.notified().await;
        }
    })
    .await;
}

async fn serve_streams(
    mut streams: tokio::sync::mpsc::UnboundedReceiver<std::os::unix::net::UnixStream>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = stop.changed() => break,
            s = streams.recv() => match s {
                Some(s) => s,
                None => break,
            },
        };
        let Ok(stream) = stream
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(stream))
        else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_client(stream, shared).await;
            drop(permit);
        });
    }
    drain(&shared).await;
}

async fn serve_client<S>(stream: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let for_service = Arc::clone(&shared);
    let svc = service_fn(move |req| {
        let shared = Arc::clone(&for_service);
        async move { Ok::<_, Infallible>(handle(req, shared).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades()
        .await;
    // Bytes that never became a request (hyper answered 400 itself) are a refusal too.
    if let Err(e) = served
        && e.is_parse()
        && shared.started.fetch_add(1, Ordering::Relaxed) < MAX_RECORDS
    {
        let mut pending = Pending::new(&shared, &Method::GET, String::new(), 0);
        pending.record.method = "?".into();
        pending.refuse(&Refusal::new(
            "bad_request",
            format!("bytes that are not an HTTP request: {e}"),
        ));
    }
}

/// Bytes of one upstream connection.
#[derive(Debug, Default)]
struct Counters {
    up: AtomicU64,
    down: AtomicU64,
    /// A read or write was refused because the run's budget was used up.
    cut: std::sync::atomic::AtomicBool,
}

/// One record in the making: written when dropped, whatever ended the connection.
struct Pending {
    shared: Arc<Shared>,
    record: ConnectionRecord,
    counters: Arc<Counters>,
    started: Instant,
    /// The upstream slot, released with the record.
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Pending {
    fn new(shared: &Arc<Shared>, method: &Method, host: String, port: u16) -> Self {
        shared.open.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: Arc::clone(shared),
            record: blank_record(method.as_str().to_owned(), host, port),
            counters: Arc::new(Counters::default()),
            started: Instant::now(),
            slot: None,
        }
    }

    fn refuse(&mut self, refusal: &Refusal) {
        self.record.decision = Decision::Deny;
        self.record.code = refusal.code.to_owned();
        self.record.reason = refusal.reason.clone();
        self.record.allow_with = refusal.allow_with.clone();
    }

    fn fail(&mut self, code: &str, reason: String) {
        self.record.decision = Decision::Deny;
        self.record.code = code.to_owned();
        self.record.reason = reason;
    }
}

/// A record that refuses until told otherwise (`bad_request`, nothing dialed).
fn blank_record(method: String, host: String, port: u16) -> ConnectionRecord {
    ConnectionRecord {
        method,
        host,
        port,
        address: None,
        decision: Decision::Deny,
        code: "bad_request".into(),
        rule: None,
        reason: String::new(),
        allow_with: None,
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: 0,
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut record = std::mem::replace(
            &mut self.record,
            blank_record(String::new(), String::new(), 0),
        );
        if self.counters.cut.load(Ordering::Relaxed) && record.code == "allowed" {
            record.code = "egress_budget".into();
            record.reason = format!(
                "{}: cut at the egress budget of {} bytes",
                record.reason, self.shared.budget
            );
        }
        record.bytes_up = self.counters.up.load(Ordering::Relaxed);
        record.bytes_down = self.counters.down.load(Ordering::Relaxed);
        record.duration_ms = self.started.elapsed().as_millis() as u64;
        let s = &self.shared;
        s.records.fetch_add(1, Ordering::Relaxed);
        if record.decision == Decision::Deny {
            s.refused.fetch_add(1, Ordering::Relaxed);
        }
        s.bytes_up.fetch_add(record.bytes_up, Ordering::Relaxed);
        s.bytes_down.fetch_add(record.bytes_down, Ordering::Relaxed);
        s.recorder.record(record);
        if s.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.idle.notify_waiters();
        }
    }
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Response<ProxyBody> {
    let method = req.method().clone();
    if shared.started.fetch_add(1, Ordering::Relaxed) >= MAX_RECORDS {
        shared.over_cap.fetch_add(1, Ordering::Relaxed);
        let refusal = Refusal::new(
            "too_many_connections",
            format!(
                "this run has made {MAX_RECORDS} connections through the proxy, the most one run may"
            ),
        );
        return refuse(StatusCode::FORBIDDEN, "this request", &refusal);
    }
    let target = match request::judge(&method, req.uri(), req.headers()) {
        Ok(t) => t,
        Err(refusal) => {
            let mut pending = Pending::new(&shared, &method, raw_host(req.uri(), req.headers()), 0);
            pending.refuse(&refusal);
            let status = if refusal.code == "host_mismatch" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_REQUEST
            };
            return refuse(status, "this request", &refusal);
        }
    };
    let what = describe(&method, &target);
    let mut pending = Pending::new(&shared, &method, target.host.to_string(), target.port);
    let rule = match shared.policy.judge(&target.host, target.port) {
        Ok(rule) => rule.to_string(),
        Err(refusal) => {
            pending.refuse(&refusal);
            return refuse(StatusCode::FORBIDDEN, &what, &refusal);
        }
    };
    pending.record.rule = Some(rule);
    if shared.used.load(Ordering::Relaxed) >= shared.budget {
        // The budget may have been used up exactly, with no read or write refused yet: this
        // refusal is what makes it exhausted then.
        shared.budget_exhausted.store(true, Ordering::Relaxed);
        let refusal = budget_refusal(shared.budget);
        pending.refuse(&refusal);
        return refuse(StatusCode::FORBIDDEN, &what, &refusal);
    }
    let candidates = match addresses(&shared, &target).await {
        Ok(c) => c,
        Err(Lookup::Refused(refusal)) => {
            pending.refuse(&refusal);
            return refuse(StatusCode::FORBIDDEN, &what, &refusal);
        }
        Err(Lookup::Failed(reason)) => {
            pending.fail("resolve_failed", reason.clone());
            return failure(&what, &reason);
        }
    };
    let slot = match tokio::time::timeout(SLOT_WAIT, Arc::clone(&shared.upstreams).acquire_owned())
        .await
    {
        Ok(Ok(slot)) => slot,
        _ => {
            let refusal = Refusal::new(
                "too_many_open",
                format!(
                    "{MAX_UPSTREAMS} connections through the proxy are open already; close some"
                ),
            );
            pending.refuse(&refusal);
            return refuse(StatusCode::FORBIDDEN, &what, &refusal);
        }
    };
    pending.slot = Some(slot);
    let (stream, addr) = match dial(&candidates, target.port).await {
        Ok(s) => s,
        Err(Dial::Refused(refusal)) => {
            pending.refuse(&refusal);
            return refuse(StatusCode::FORBIDDEN, &what, &refusal);
        }
        Err(Dial::Failed(reason)) => {
            pending.record.address = candidates
                .first()
                .map(|c| SocketAddr::new(c.ip, target.port).to_string());
            pending.fail("connect_failed", reason.clone());
            return failure(&what, &reason);
        }
    };
    pending.record.address = Some(addr.to_string());
    pending.record.decision = Decision::Allow;
    pending.record.code = "allowed".into();
    pending.record.reason = what.clone();
    let upstream = Counted {
        inner: stream,
        counters: Arc::clone(&pending.counters),
        shared: Arc::clone(&shared),
    };
    match target.form {
        Form::Connect => {
            tokio::spawn(async move {
                let mut pending = pending;
                match hyper::upgrade::on(req).await {
                    // A budget cut is marked on the counters and recorded by `pending`.
                    Ok(upgraded) => tunnel(TokioIo::new(upgraded), upstream).await,
                    Err(e) => pending.fail("tunnel_failed", e.to_string()),
                }
                drop(pending);
            });
            Response::new(empty())
        }
        Form::Absolute | Form::Origin => forward(req, &target, upstream, pending, &what).await,
    }
}

/// Copies both ways until both are done, but once one side has ended (the skill closed its
/// end, or the server its), the other gets [`HALF_CLOSE_GRACE`]: a tunnel whose client is gone
/// must not hold its descriptors and its slot for the rest of the run.
async fn tunnel(client: TokioIo<hyper::upgrade::Upgraded>, upstream: Counted) {
    use tokio::io::AsyncWriteExt;
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut up_r, mut up_w) = tokio::io::split(upstream);
    let to_upstream = async {
        let _ = tokio::io::copy(&mut client_r, &mut up_w).await;
        let _ = up_w.shutdown().await;
    };
    let to_client = async {
        let _ = tokio::io::copy(&mut up_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
    };
    tokio::pin!(to_upstream, to_client);
    tokio::select! {
        () = &mut to_upstream => {
            let _ = tokio::time::timeout(HALF_CLOSE_GRACE, to_client).await;
        }
        () = &mut to_client => {
            let _ = tokio::time::timeout(HALF_CLOSE_GRACE, to_upstream).await;
        }
    }
}

/// Forwards one plain-HTTP request over a fresh connection to the checked address.
async fn forward(
    req: Request<Incoming>,
    target: &Target,
    upstream: Counted,
    mut pending: Pending,
    what: &str,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    parts.uri = match target.path.parse::<Uri>() {
        Ok(u) => u,
        Err(e) => {
            // `request::judge` checked it; kept as a guard.
            let refusal = Refusal::new("bad_request", format!("bad path: {e}"));
            pending.refuse(&refusal);
            return refuse(StatusCode::BAD_REQUEST, what, &refusal);
        }
    };
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::EXPECT);
    match HeaderValue::from_str(&target.host_header) {
        Ok(v) => {
            parts.headers.insert(header::HOST, v);
        }
        Err(_) => {
            let refusal = Refusal::new("bad_request", "the Host header is not valid");
            pending.refuse(&refusal);
            return refuse(StatusCode::BAD_REQUEST, what, &refusal);
        }
    }
    let (mut sender, conn) =
        match hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await {
            Ok(x) => x,
            Err(e) => {
                pending.fail("upstream_failed", e.to_string());
                return failure(what, &e.to_string());
            }
        };
    // The record is written when both the response has been passed on and the upstream
    // connection has ended: a request body can still be uploading after an early response.
    let pending: SharedPending = Arc::new(std::sync::Mutex::new(pending));
    let held = Arc::clone(&pending);
    tokio::spawn(async move {
        let _ = conn.await;
        drop(held);
    });
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(
                parts,
                Recorded {
                    inner: body,
                    pending: Some(pending),
                }
                .boxed(),
            )
        }
        Err(e) => {
            let reason = match pending.lock() {
                Ok(p) if p.counters.cut.load(Ordering::Relaxed) => {
                    format!("cut at the egress budget of {} bytes", p.shared.budget)
                }
                Ok(mut p) => {
                    p.fail("upstream_failed", e.to_string());
                    e.to_string()
                }
                Err(_) => e.to_string(),
            };
            failure(what, &reason)
        }
    }
}

enum Lookup {
    Refused(Refusal),
    Failed(String),
}

/// An address that may be dialed, and whether it must not turn out to be this host's own.
struct Candidate {
    ip: IpAddr,
    /// From DNS and not named by the contract: refused if it is an address of this host (a
    /// public address of the machine reaches services bound to all interfaces).
    not_local: bool,
}

/// The addresses that may be dialed for `target`, in the resolver's order.
async fn addresses(shared: &Shared, target: &Target) -> Result<Vec<Candidate>, Lookup> {
    let name = match &target.host {
        // The address rule that allowed it named this very address.
        Host::Ip(ip) => {
            if let Some(r) = never_dialed(&target.host, *ip) {
                return Err(Lookup::Refused(r));
            }
            return Ok(vec![Candidate {
                ip: *ip,
                not_local: false,
            }]);
        }
        Host::Name(n) => n,
    };
    let (addrs, source) = shared.resolver.lookup(name).await.map_err(Lookup::Failed)?;
    let mut ok = Vec::new();
    let mut first_refusal = None;
    for a in addrs {
        // An IPv6 form of an IPv4 address is dialed (and judged) as the IPv4 address.
        let a = match a {
            IpAddr::V6(v6) => skillcell_types::net::as_ipv4_destination(&v6).map_or(a, IpAddr::V4),
            v4 => v4,
        };
        let checked = match never_dialed(&target.host, a) {
            Some(r) => Err(r),
            None => shared
                .policy
                .check_address(&target.host, a, target.port, source),
        };
        match checked {
            Ok(()) => ok.push(Candidate {
                ip: a,
                not_local: source == AddressSource::Dns
                    && !shared.policy.names_address(a, target.port),
            }),
            Err(r) => {
                first_refusal.get_or_insert(r);
            }
        }
    }
    match (ok.is_empty(), first_refusal) {
        (false, _) => Ok(ok),
        (true, Some(r)) => Err(Lookup::Refused(r)),
        (true, None) => Err(Lookup::Failed(format!("{name} has no address"))),
    }
}

/// Addresses no rule can open: a TCP connect to `0.0.0.0` or `::` reaches this host's own
/// loopback, and multicast or broadcast are not hosts.
fn never_dialed(host: &Host, ip: IpAddr) -> Option<Refusal> {
    let why = match ip {
        IpAddr::V4(v4) if v4.octets()[0] == 0 => {
            "an unspecified address (it reaches this host's loopback)"
        }
        IpAddr::V6(v6) if v6.is_unspecified() => {
            "an unspecified address (it reaches this host's loopback)"
        }
        IpAddr::V4(v4) if v4.is_multicast() || v4.is_broadcast() => "not a host address",
        IpAddr::V6(v6) if v6.is_multicast() => "not a host address",
        _ => return None,
    };
    let shown = Host::Ip(ip);
    Some(Refusal::new(
        "special_address",
        if *host == shown {
            format!("{shown} is {why}")
        } else {
            format!("{host} resolves to {shown}, {why}")
        },
    ))
}

enum Dial {
    Refused(Refusal),
    Failed(String),
}

async fn dial(candidates: &[Candidate], port: u16) -> Result<(TcpStream, SocketAddr), Dial> {
    let mut last = String::from("no address to dial");
    let mut local_refusal = None;
    for c in candidates {
        let addr = SocketAddr::new(c.ip, port);
        match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                // A connection to an address of this host leaves from that same address.
                if c.not_local && s.local_addr().is_ok_and(|l| l.ip() == c.ip) {
                    drop(s);
                    local_refusal.get_or_insert(Refusal {
                        code: "special_address",
                        reason: format!("{} is an address of this host", Host::Ip(c.ip)),
                        allow_with: Some(format!(
                            "skillcell.network: {}:{port} (only if the skill really must reach this host)",
                            Host::Ip(c.ip)
                        )),
                    });
                    continue;
                }
                let _ = s.set_nodelay(true);
                return Ok((s, addr));
            }
            Ok(Err(e)) => last = format!("cannot connect to {addr}: {e}"),
            Err(_) => last = format!("connecting to {addr} timed out"),
        }
    }
    Err(match local_refusal {
        Some(r) => Dial::Refused(r),
        None => Dial::Failed(last),
    })
}

/// Headers that describe one hop and are never forwarded, plus whatever `Connection` lists.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

fn describe(method: &Method, target: &Target) -> String {
    match target.form {
        Form::Connect => format!("CONNECT {}:{}", target.host, target.port),
        Form::Absolute | Form::Origin => {
            format!("{method} http://{}:{}", target.host, target.port)
        }
    }
}

/// The host text of a request that could not be understood, for the record (bounded).
fn raw_host(uri: &Uri, headers: &HeaderMap) -> String {
    let raw = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        })
        .unwrap_or_else(|| uri.to_string());
    raw.chars().take(255).collect()
}

fn budget_refusal(budget: u64) -> Refusal {
    Refusal {
        code: "egress_budget",
        reason: format!("this run has used its egress budget of {budget} bytes"),
        allow_with: Some(format!(
            "skillcell.limits: egress={} (or more)",
            skillcell_types::LimitKind::Egress.render(budget.saturating_mul(2))
        )),
    }
}

fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn text_response(status: StatusCode, code: &str, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert("x-skillcell-denial", v);
    }
    resp
}

/// A refusal a model can act on: what, why, and the contract line that would allow it.
fn refuse(status: StatusCode, what: &str, r: &Refusal) -> Response<ProxyBody> {
    let mut body = format!(
        "skillcell egress proxy: {what} was denied ({}).\nWhy: {}\n",
        r.code, r.reason
    );
    if let Some(line) = &r.allow_with {
        body.push_str(&format!(
            "To allow it, the skill's SKILL.md metadata needs: {line}\n"
        ));
    }
    text_response(status, r.code, body)
}

fn failure(what: &str, reason: &str) -> Response<ProxyBody> {
    text_response(
        StatusCode::BAD_GATEWAY,
        "upstream_failed",
        format!("skillcell egress proxy: {what} was allowed but failed: {reason}\n"),
    )
}

/// A response body that writes its connection's record when it ends.
struct Recorded {
    inner: Incoming,
    pending: Option<SharedPending>,
}

/// A record shared by a response body and the upstream connection's task.
type SharedPending = Arc<std::sync::Mutex<Pending>>;

impl Body for Recorded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = &polled {
            self.pending = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream socket, counting bytes each way and enforcing the run's budget: a read or
/// write that would pass it is cut to what is left, then fails.
struct Counted {
    inner: TcpStream,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
}

impl Counted {
    /// Reserves up to `want` bytes of the run's budget (exactly, across concurrent
    /// connections); 0 when it is used up.
    fn reserve(&self, want: usize) -> usize {
        let budget = self.shared.budget;
        let mut got = 0u64;
        let _ = self
            .shared
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                got = budget.saturating_sub(used).min(want as u64);
                Some(used + got)
            });
        if got == 0 && want > 0 {
            self.shared.budget_exhausted.store(true, Ordering::Relaxed);
            self.counters.cut.store(true, Ordering::Relaxed);
        }
        usize::try_from(got).unwrap_or(want)
    }

    /// Settles a reservation: `used` bytes really moved, the rest goes back.
    fn settle(&self, reserved: usize, used: usize, up: bool) {
        let back = reserved.saturating_sub(used) as u64;
        if back > 0 {
            self.shared.used.fetch_sub(back, Ordering::AcqRel);
        }
        let c = if up {
            &self.counters.up
        } else {
            &self.counters.down
        };
        c.fetch_add(used as u64, Ordering::Relaxed);
    }

    fn exhausted() -> io::Error {
        io::Error::other("the run's egress budget is used up")
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let allowed = this.reserve(buf.remaining());
        if allowed == 0 {
            return Poll::Ready(Err(Self::exhausted()));
        }
        let dst = buf.initialize_unfilled_to(allowed);
        let mut limited = ReadBuf::new(dst);
        let polled = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
        let n = match polled {
            Poll::Ready(Ok(())) => limited.filled().len(),
            _ => 0,
        };
        this.settle(allowed, n, false);
        if n > 0 {
            buf.advance(n);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let allowed = this.reserve(data.len());
        if allowed == 0 {
            return Poll::Ready(Err(Self::exhausted()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, &data[..allowed]);
        let n = match polled {
            Poll::Ready(Ok(n)) => n,
            _ => 0,
        };
        this.settle(allowed, n, true);
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
