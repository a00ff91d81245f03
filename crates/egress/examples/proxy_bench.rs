//! The egress proxy's overhead against a direct connection to the same local server, side by
//! side in one run: `cargo run --release -p skillcell-egress --example proxy_bench`
//! (`bench/egress.sh` runs it and keeps the result).
//!
//! A small HTTP/1.1 keep-alive server (hyper, one thread) on loopback answers every request
//! with a 13-byte body. The real [`Proxy`] serves a listener on loopback with the operator map
//! `map svc.test 127.0.0.1` and a contract allowing `svc.test:<server port>`; a recorder
//! counts its records. Blocking clients (std threads, hand-written HTTP/1.1, one write per
//! request) measure each request from its first byte written to its last byte read:
//!
//! - direct, keep-alive: one connection, sequential GETs;
//! - proxy, absolute URI: `GET http://svc.test:PORT/` on one keep-alive connection to the
//!   proxy (which dials the server afresh for every request);
//! - proxy, CONNECT tunnel: one tunnel, sequential GETs inside it;
//! - direct, new connection per request; proxy, new connection per request (what one urllib
//!   call in a skill does); proxy, new connection and CONNECT per request (one HTTPS call,
//!   without TLS);
//! - throughput: several concurrent clients, each with its own connection, direct and
//!   proxied.
//!
//! The sequential modes run in interleaved rounds (the order rotates every round), so drift
//! on the machine lands on every mode alike. A proxy runs for one batch at most (one run's
//! proxy records at most [`MAX_RECORDS`] connections); starting and finishing it is not
//! measured.
//!
//! Environment: `ROUNDS` (default 20), `BATCH` requests per mode and round (500), `CLIENTS`
//! concurrent clients (8), `PER_CLIENT` requests per concurrent client (400), `TROUNDS`
//! throughput rounds (5).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use skillcell_egress::{
    ConnectionRecord, EgressConfig, MAX_RECORDS, Policy, Proxy, ProxyConfig, Recorder,
};
use skillcell_types::{Decision, HostPattern, NetRule};

const BODY: &[u8] = b"hello, world\n";
const NAME: &str = "svc.test";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The upstream server: hyper's HTTP/1.1 server on a current-thread runtime, keep-alive.
fn start_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the server");
    let addr = listener.local_addr().expect("server address");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let svc = service_fn(|_req| async {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        })
        .expect("server thread");
    addr
}

/// Counts the proxy's records.
#[derive(Debug, Default)]
struct Counter {
    allowed: AtomicU64,
    denied: AtomicU64,
}

impl Recorder for Counter {
    fn record(&self, record: ConnectionRecord) {
        match record.decision {
            Decision::Allow => self.allowed.fetch_add(1, Ordering::Relaxed),
            Decision::Deny | Decision::Prompt => {
                eprintln!("proxy refused: {} {}", record.code, record.reason);
                self.denied.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// One run's proxy.
struct RunningProxy {
    proxy: Proxy,
    addr: SocketAddr,
    counter: Arc<Counter>,
}

impl RunningProxy {
    fn start(server_port: u16) -> Self {
        let egress = EgressConfig::parse(&format!("map {NAME} 127.0.0.1\n"), "bench")
            .expect("egress config");
        let policy = Policy::new(vec![NetRule {
            host: HostPattern::Exact(NAME.into()),
            port: server_port,
        }]);
        let counter = Arc::new(Counter::default());
        let (proxy, tx) = Proxy::start(
            ProxyConfig {
                policy,
                budget_bytes: u64::MAX,
                egress,
            },
            Arc::clone(&counter) as Arc<dyn Recorder>,
        )
        .expect("start the proxy");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy's listener");
        let addr = listener.local_addr().expect("proxy address");
        tx.send(OwnedFd::from(listener))
            .expect("hand the listener over");
        Self {
            proxy,
            addr,
            counter,
        }
    }

    /// Stops the proxy; checks that it wrote one allowed record per upstream connection.
    fn finish(self, expected: u64) -> u64 {
        let summary = self.proxy.finish();
        assert!(summary.failed.is_none(), "proxy failed: {summary:?}");
        let allowed = self.counter.allowed.load(Ordering::Relaxed);
        let denied = self.counter.denied.load(Ordering::Relaxed);
        assert_eq!(denied, 0, "the proxy refused requests");
        assert_eq!(allowed, expected, "records written");
        allowed
    }
}

/// A blocking HTTP/1.1 client connection.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one request (one write) and reads its whole response; returns the status.
    fn request(&mut self, req: &[u8], body_expected: bool) -> u16 {
        self.stream.write_all(req).expect("write the request");
        self.read_response(body_expected)
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).expect("read the response");
        assert!(n > 0, "connection closed in the middle of a response");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn read_response(&mut self, body_expected: bool) -> u16 {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).expect("ASCII response head");
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        let len = if body_expected {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or_else(|| panic!("no content-length in {head:?}"))
        } else {
            0
        };
        while self.buf.len() < head_end + len {
            self.fill();
        }
        self.buf.drain(..head_end + len);
        status
    }

    /// `CONNECT svc.test:PORT`; the connection is a tunnel to the server afterwards.
    fn tunnel(&mut self, port: u16) {
        let req = format!("CONNECT {NAME}:{port} HTTP/1.1\r\nHost: {NAME}:{port}\r\n\r\n");
        assert_eq!(self.request(req.as_bytes(), false), 200, "CONNECT");
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    DirectKeepAlive,
    ProxyAbsolute,
    ProxyTunnel,
    DirectNewConn,
    ProxyNewConn,
    ProxyNewTunnel,
}

impl Mode {
    const ALL: [Self; 6] = [
        Self::DirectKeepAlive,
        Self::ProxyAbsolute,
        Self::ProxyTunnel,
        Self::DirectNewConn,
        Self::ProxyNewConn,
        Self::ProxyNewTunnel,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::DirectKeepAlive => "direct, keep-alive",
            Self::ProxyAbsolute => "proxy, absolute URI, keep-alive client connection",
            Self::ProxyTunnel => "proxy, inside one CONNECT tunnel",
            Self::DirectNewConn => "direct, new connection per request",
            Self::ProxyNewConn => "proxy, absolute URI, new connection per request",
            Self::ProxyNewTunnel => "proxy, new connection + CONNECT per request",
        }
    }

    fn proxied(self) -> bool {
        !matches!(self, Self::DirectKeepAlive | Self::DirectNewConn)
    }

    /// The direct mode with the same connection pattern.
    fn baseline(self) -> Self {
        match self {
            Self::DirectKeepAlive | Self::ProxyAbsolute | Self::ProxyTunnel => {
                Self::DirectKeepAlive
            }
            Self::DirectNewConn | Self::ProxyNewConn | Self::ProxyNewTunnel => Self::DirectNewConn,
        }
    }

    /// Upstream connections (= proxy records) for `n` timed requests on one client (a
    /// keep-alive client sends one more, untimed, first).
    fn records(self, n: usize) -> u64 {
        match self {
            Self::DirectKeepAlive | Self::DirectNewConn => 0,
            Self::ProxyTunnel => 1,
            Self::ProxyAbsolute => n as u64 + 1,
            Self::ProxyNewConn | Self::ProxyNewTunnel => n as u64,
        }
    }
}

/// What one client does: `n` requests, each timed; returns the latencies in nanoseconds.
/// `ready` is waited on after the client's connection is set up (keep-alive modes).
fn client_run(
    mode: Mode,
    n: usize,
    server: SocketAddr,
    proxy: Option<SocketAddr>,
    ready: &Barrier,
) -> Vec<u64> {
    let port = server.port();
    let direct_ka = format!("GET / HTTP/1.1\r\nHost: {NAME}:{port}\r\n\r\n");
    let direct_close =
        format!("GET / HTTP/1.1\r\nHost: {NAME}:{port}\r\nConnection: close\r\n\r\n");
    let absolute = format!("GET http://{NAME}:{port}/ HTTP/1.1\r\nHost: {NAME}:{port}\r\n\r\n");
    let absolute_close = format!(
        "GET http://{NAME}:{port}/ HTTP/1.1\r\nHost: {NAME}:{port}\r\nConnection: close\r\n\r\n"
    );
    let proxy_addr = || proxy.expect("a proxy");
    let mut lat = Vec::with_capacity(n);
    let mut timed = |f: &mut dyn FnMut() -> u16| {
        let t = Instant::now();
        let status = f();
        lat.push(t.elapsed().as_nanos() as u64);
        assert_eq!(status, 200, "{mode:?}");
    };
    match mode {
        Mode::DirectKeepAlive | Mode::ProxyAbsolute | Mode::ProxyTunnel => {
            let (mut c, req) = match mode {
                Mode::DirectKeepAlive => (Client::connect(server), &direct_ka),
                Mode::ProxyAbsolute => (Client::connect(proxy_addr()), &absolute),
                _ => {
                    let mut c = Client::connect(proxy_addr());
                    c.tunnel(port);
                    (c, &direct_ka)
                }
            };
            // One request before timing, so that connection set-up is in no sample.
            assert_eq!(c.request(req.as_bytes(), true), 200, "{mode:?} warm-up");
            ready.wait();
            for _ in 0..n {
                timed(&mut || c.request(req.as_bytes(), true));
            }
        }
        Mode::DirectNewConn | Mode::ProxyNewConn | Mode::ProxyNewTunnel => {
            ready.wait();
            for _ in 0..n {
                timed(&mut || match mode {
                    Mode::DirectNewConn => {
                        Client::connect(server).request(direct_close.as_bytes(), true)
                    }
                    Mode::ProxyNewConn => {
                        Client::connect(proxy_addr()).request(absolute_close.as_bytes(), true)
                    }
                    _ => {
                        let mut c = Client::connect(proxy_addr());
                        c.tunnel(port);
                        c.request(direct_close.as_bytes(), true)
                    }
                });
            }
        }
    }
    lat
}

/// `clients` concurrent clients doing `n` requests each (on a fresh proxy when proxied);
/// returns all latencies and the wall time from the start signal to the last response.
fn batch(mode: Mode, clients: usize, n: usize, server: SocketAddr) -> (Vec<u64>, Duration) {
    let proxy = mode.proxied().then(|| RunningProxy::start(server.port()));
    let proxy_addr = proxy.as_ref().map(|p| p.addr);
    let ready = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let ready = Arc::clone(&ready);
            std::thread::spawn(move || client_run(mode, n, server, proxy_addr, &ready))
        })
        .collect();
    ready.wait();
    let start = Instant::now();
    let mut all = Vec::with_capacity(clients * n);
    for t in threads {
        all.extend(t.join().expect("client thread"));
    }
    let wall = start.elapsed();
    if let Some(p) = proxy {
        p.finish(mode.records(n) * clients as u64);
    }
    (all, wall)
}

#[derive(Default)]
struct Stats {
    lat: Vec<u64>,
    wall: Duration,
    /// Each round's median, µs.
    round_p50: Vec<f64>,
}

impl Stats {
    fn add(&mut self, (mut lat, wall): (Vec<u64>, Duration)) {
        lat.sort_unstable();
        self.round_p50.push(lat[lat.len() / 2] as f64 / 1000.0);
        self.lat.extend(lat);
        self.wall += wall;
    }
    /// The lowest and highest of the rounds' medians.
    fn p50_spread(&self) -> String {
        let lo = self.round_p50.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.round_p50.iter().copied().fold(0.0, f64::max);
        format!("{lo:.0}–{hi:.0}")
    }
    fn sorted(&mut self) {
        self.lat.sort_unstable();
    }
    fn pct(&self, p: usize) -> f64 {
        let i = (self.lat.len() * p / 100).min(self.lat.len() - 1);
        self.lat[i] as f64 / 1000.0
    }
    fn mean(&self) -> f64 {
        self.lat.iter().sum::<u64>() as f64 / self.lat.len() as f64 / 1000.0
    }
    fn rps(&self) -> f64 {
        self.lat.len() as f64 / self.wall.as_secs_f64()
    }
}

fn main() {
    let rounds = env("ROUNDS", 20);
    let batch_n = env("BATCH", 500);
    let clients = env("CLIENTS", 8);
    let per_client = env("PER_CLIENT", 400);
    let trounds = env("TROUNDS", 5);
    assert!(
        Mode::ProxyAbsolute.records(batch_n) <= MAX_RECORDS
            && Mode::ProxyAbsolute.records(per_client) * clients as u64 <= MAX_RECORDS,
        "a proxy records at most {MAX_RECORDS} connections: lower BATCH or CLIENTS × PER_CLIENT"
    );
    let server = start_server();

    // Warm-up: every mode once, not counted.
    for mode in Mode::ALL {
        batch(mode, 1, 50, server);
    }

    let mut seq: BTreeMap<Mode, Stats> = BTreeMap::new();
    let mut order = Mode::ALL;
    for _ in 0..rounds {
        for mode in order {
            seq.entry(mode)
                .or_default()
                .add(batch(mode, 1, batch_n, server));
        }
        order.rotate_left(1);
    }

    let tmodes = [
        Mode::DirectKeepAlive,
        Mode::ProxyAbsolute,
        Mode::ProxyTunnel,
        Mode::DirectNewConn,
        Mode::ProxyNewConn,
    ];
    let mut par: BTreeMap<Mode, Stats> = BTreeMap::new();
    let mut torder = tmodes;
    for _ in 0..trounds {
        for mode in torder {
            par.entry(mode)
                .or_default()
                .add(batch(mode, clients, per_client, server));
        }
        torder.rotate_left(1);
    }
    for s in seq.values_mut().chain(par.values_mut()) {
        s.sorted();
    }

    println!(
        "## One client, sequential requests\n\n{} requests per path, in {rounds} interleaved rounds of {batch_n} \
         (the order rotates every round). Latency: first byte of the request written to last byte \
         of the response read, µs; \"rounds' p50\" is the lowest and highest median of one round. \
         \"Added\" compares with the direct path of the same connection \
         pattern (keep-alive with direct keep-alive, a new connection per request with a direct new \
         connection per request).\n",
        rounds * batch_n
    );
    println!(
        "| path | p50 µs | rounds' p50 µs | p99 µs | mean µs | req/s | added p50 | added mean | × direct (mean) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for mode in Mode::ALL {
        let s = &seq[&mode];
        let b = &seq[&mode.baseline()];
        let (added50, added_mean, ratio) = if mode.proxied() {
            (
                format!("+{:.1} µs", s.pct(50) - b.pct(50)),
                format!("+{:.1} µs", s.mean() - b.mean()),
                format!("{:.2}×", s.mean() / b.mean()),
            )
        } else {
            ("—".into(), "—".into(), "1.00×".into())
        };
        println!(
            "| {} | {:.1} | {} | {:.1} | {:.1} | {:.0} | {added50} | {added_mean} | {ratio} |",
            mode.label(),
            s.pct(50),
            s.p50_spread(),
            s.pct(99),
            s.mean(),
            s.rps()
        );
    }
    let ka = &seq[&Mode::DirectKeepAlive];
    let one_call = &seq[&Mode::ProxyNewConn];
    println!(
        "\nA skill's single urllib call through the proxy (new connection, absolute URI) costs \
         {:.1} µs at the median, {:.1} µs more than one request on a warm direct keep-alive \
         connection.\n",
        one_call.pct(50),
        one_call.pct(50) - ka.pct(50)
    );

    println!(
        "## Throughput, {clients} concurrent clients\n\n{clients} clients × {per_client} requests each, \
         each client on its own connection(s), {trounds} interleaved rounds; req/s = all requests / \
         wall time of the rounds.\n"
    );
    println!("| path | req/s | × direct | wall µs per request | p50 µs | p99 µs |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for mode in tmodes {
        let s = &par[&mode];
        let b = &par[&mode.baseline()];
        println!(
            "| {} | {:.0} | {:.2}× | {:.1} | {:.1} | {:.1} |",
            mode.label(),
            s.rps(),
            s.rps() / b.rps(),
            1e6 / s.rps(),
            s.pct(50),
            s.pct(99)
        );
    }
}
