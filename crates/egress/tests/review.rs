//! Security review of the egress proxy: each test drives the real proxy over loopback, with a
//! fake DNS server so that nothing touches real DNS.
//!
//! Tests named `finding_*` reproduce a problem (they fail until it is fixed); the others pin
//! behaviour that was checked and found sound.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use skillcell_egress::{
    ConnectionRecord, EgressConfig, EgressSummary, MAX_CONCURRENT, Policy, Proxy, ProxyConfig,
    Recorder,
};
use skillcell_types::{HostPattern, NetRule};

// ---------------------------------------------------------------------------------------------
// Harness

#[derive(Default)]
struct Records(Mutex<Vec<ConnectionRecord>>);

impl Recorder for Records {
    fn record(&self, record: ConnectionRecord) {
        self.0.lock().expect("lock").push(record);
    }
}

/// A fake DNS server: answers A/AAAA for the names it knows (optionally behind a CNAME), and
/// remembers every name it was asked.
struct Dns {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
}

fn fake_dns(answers: HashMap<String, Vec<IpAddr>>) -> Dns {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("dns bind");
    let port = sock.local_addr().expect("addr").port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            let q = &buf[..n];
            if q.len() < 12 {
                continue;
            }
            // The question: labels, then type and class.
            let mut i = 12;
            let mut labels = Vec::new();
            while i < q.len() && q[i] != 0 {
                let l = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + l]).into_owned());
                i += 1 + l;
            }
            let qend = i + 5;
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let name = labels.join(".").to_ascii_lowercase();
            log.lock().expect("lock").push(name.clone());
            let mut resp = Vec::new();
            resp.extend_from_slice(&q[..2]);
            resp.extend_from_slice(&[0x81, 0x80]);
            resp.extend_from_slice(&[0, 1]);
            let addrs: Vec<IpAddr> = answers
                .get(&name)
                .map(|v| {
                    v.iter()
                        .copied()
                        .filter(|a| match a {
                            IpAddr::V4(_) => qtype == 1,
                            IpAddr::V6(_) => qtype == 28,
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !answers.contains_key(&name) {
                // NXDOMAIN
                resp[3] = 0x83;
            }
            resp.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
            resp.extend_from_slice(&[0, 0, 0, 0]);
            resp.extend_from_slice(&q[12..qend]);
            for a in addrs {
                resp.extend_from_slice(&[0xc0, 0x0c]);
                match a {
                    IpAddr::V4(v4) => {
                        resp.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                        resp.extend_from_slice(&v4.octets());
                    }
                    IpAddr::V6(v6) => {
                        resp.extend_from_slice(&[0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
                        resp.extend_from_slice(&v6.octets());
                    }
                }
            }
            let _ = sock.send_to(&resp, from);
        }
    });
    Dns { port, asked }
}

struct Running {
    proxy: Option<Proxy>,
    addr: SocketAddr,
    records: Arc<Records>,
}

impl Running {
    fn finish(mut self) -> (EgressSummary, Vec<ConnectionRecord>) {
        let summary = self.proxy.take().expect("proxy").finish();
        let records = std::mem::take(&mut *self.records.0.lock().expect("lock"));
        (summary, records)
    }
}

fn rule(host: HostPattern, port: u16) -> NetRule {
    NetRule { host, port }
}

fn exact(name: &str, port: u16) -> NetRule {
    rule(HostPattern::Exact(name.into()), port)
}

fn start(rules: Vec<NetRule>, budget: u64, conf: &str) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let records = Arc::new(Records::default());
    let config = ProxyConfig {
        policy: Policy::new(rules),
        budget_bytes: budget,
        egress: EgressConfig::parse(conf, "t").expect("conf"),
    };
    let (proxy, tx) =
        Proxy::start(config, Arc::clone(&records) as Arc<dyn Recorder>).expect("start");
    tx.send(OwnedFd::from(listener)).expect("send");
    Running {
        proxy: Some(proxy),
        addr,
        records,
    }
}

/// Sends `head` (and `body`) to the proxy, returns the response head's status line.
fn send(proxy: SocketAddr, head: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(proxy).expect("connect proxy");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("write");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut status = String::new();
    r.read_line(&mut status).expect("status");
    // Skip the rest of the head.
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).expect("line") == 0 || l == "\r\n" {
            break;
        }
    }
    (s, status.trim_end().to_owned())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fds").count()
}

/// An HTTP server that answers every request with `200 OK` and `hello`, and counts requests.
fn http_upstream(bind: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind(bind).expect("upstream bind");
    let addr = l.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                );
            });
        }
    });
    (addr, hits)
}

// ---------------------------------------------------------------------------------------------
// Findings

/// MAX_CONCURRENT (256) is meant to bound the client connections the proxy serves at once, but
/// the permit is released as soon as hyper hands a CONNECT over to the upgrade: the tunnel task
/// that `handle` spawns holds no permit, and a tunnel has no idle timeout. When the skill closes
/// its end, `copy_bidirectional` half-closes the upstream and keeps waiting for it, so both
/// descriptors stay open in the supervisor until the run ends. A skill (one descriptor of its
/// own at a time) can so make the supervisor hold 2 descriptors per tunnel, up to 4096
/// tunnels: 8192 descriptors, far past a default soft RLIMIT_NOFILE of 1024.
#[test]
fn tunnels_whose_client_left_release_their_descriptors() {
    const TUNNELS: usize = 400;
    // An allowed upstream that accepts and then just holds its sockets (as any server that
    // waits for a TLS ClientHello or tolerates a half-close does).
    let up = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = up.local_addr().expect("addr").port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&held);
    thread::spawn(move || {
        for s in up.incoming().flatten() {
            h.lock().expect("lock").push(s);
        }
    });
    let dns = fake_dns(HashMap::new());
    let p = start(
        vec![exact("svc.test", port)],
        64 << 20,
        &format!(
            "map svc.test 127.0.0.1\nnameserver 127.0.0.1:{}\n",
            dns.port
        ),
    );
    let before = open_fds();
    for _ in 0..TUNNELS {
        let (s, status) = send(p.addr, &format!("CONNECT svc.test:{port} HTTP/1.1\r\n\r\n"));
        assert!(status.contains(" 200"), "{status}");
        // The skill closes its end at once: it needs one descriptor at a time.
        drop(s);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.lock().expect("lock").len() < TUNNELS && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(500));
    let upstream_held = held.lock().expect("lock").len();
    // What the proxy holds: all new descriptors but the test upstream's own.
    let proxy_held = open_fds().saturating_sub(before + upstream_held);
    let (_, records) = p.finish();
    eprintln!(
        "{upstream_held} upstream connections; the proxy holds {proxy_held} descriptors for tunnels whose client is gone; {} records",
        records.len()
    );
    assert!(
        proxy_held <= 2 * MAX_CONCURRENT,
        "the proxy holds {proxy_held} descriptors for {TUNNELS} tunnels whose client has closed (cap {MAX_CONCURRENT} connections)"
    );
}

/// The proxy runs in the host's network namespace, and `special_use` only knows address
/// *ranges*. An address that is assigned to one of the host's own interfaces but lies in public
/// space (a server's public IPv4, and above all the global IPv6 address every dual-stack host
/// has, which the skill learns from the source address of any allowed connection) passes the
/// check: a declared name whose DNS (controlled by whoever controls the declared domain)
/// answers with it reaches every service the host binds on 0.0.0.0 / [::], from inside, past
/// any firewall rule that only filters traffic arriving from outside.
///
/// Needs a public-looking address on a local interface, so the test runs itself again in a
/// user and network namespace of its own (`unshare -rn`) where 1.2.3.4 is on `lo`.
#[test]
fn a_dns_answer_naming_this_hosts_own_address_is_refused() {
    if std::env::var_os("SKILLCELL_REVIEW_NETNS").is_some() {
        return inside_a_netns_with_a_public_address();
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new("unshare")
        .args([
            "-rn",
            "sh",
            "-c",
            "ip link set lo up && ip addr add 1.2.3.4/32 dev lo && exec \"$0\" --exact a_dns_answer_naming_this_hosts_own_address_is_refused --nocapture",
        ])
        .arg(&exe)
        .env("SKILLCELL_REVIEW_NETNS", "1")
        .output()
        .expect("unshare (util-linux) and ip (iproute2) are needed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

fn inside_a_netns_with_a_public_address() {
    let local: IpAddr = Ipv4Addr::new(1, 2, 3, 4).into();
    let (up, hits) = http_upstream(SocketAddr::new(local, 0));
    let dns = fake_dns(HashMap::from([("api.evil.test".to_owned(), vec![local])]));
    let get = format!(
        "GET http://api.evil.test:{}/ HTTP/1.1\r\nHost: api.evil.test:{}\r\n\r\n",
        up.port(),
        up.port()
    );
    // Positive control: when the contract names the address itself, it is reached.
    let p = start(
        vec![
            exact("api.evil.test", up.port()),
            rule(HostPattern::Ip(local), up.port()),
        ],
        64 << 20,
        &format!("nameserver 127.0.0.1:{}\n", dns.port),
    );
    let (_s, status) = send(p.addr, &get);
    assert!(status.contains(" 200"), "{status}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the control did not reach the server"
    );
    drop(p.finish());
    let p = start(
        vec![exact("api.evil.test", up.port())],
        64 << 20,
        &format!("nameserver 127.0.0.1:{}\n", dns.port),
    );
    let (_s, status) = send(p.addr, &get);
    let (_, records) = p.finish();
    eprintln!("{status}; records: {records:?}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a service on the host's own address {local} was reached through DNS ({status})"
    );
    assert!(status.contains(" 403"), "{status}");
    assert!(
        records.iter().any(|r| r.code == "special_address"),
        "{records:?}"
    );
}

/// `0.0.0.0` and `[::]` are not loopback by range, but on Linux a TCP connect to them reaches
/// the host's own loopback. The manifest accepts them as address rules (`0.0.0.0:5432`), the
/// proxy dials them as written, and so a contract line that does not read as "localhost"
/// reaches the host's 127.0.0.1 / ::1 services (the docs promise that loopback needs
/// `127.0.0.1:port` named exactly).
#[test]
fn unspecified_address_rules_never_reach_host_loopback() {
    let (v4, hits4) = http_upstream("127.0.0.1:0".parse().expect("addr"));
    let v6 = http_upstream("[::1]:0".parse().expect("addr"));
    let dns = fake_dns(HashMap::new());
    let p = start(
        vec![
            rule(HostPattern::Ip(Ipv4Addr::UNSPECIFIED.into()), v4.port()),
            rule(HostPattern::Ip(Ipv6Addr::UNSPECIFIED.into()), v6.0.port()),
        ],
        64 << 20,
        &format!("nameserver 127.0.0.1:{}\n", dns.port),
    );
    let (_a, s4) = send(
        p.addr,
        &format!("GET http://0.0.0.0:{}/ HTTP/1.1\r\n\r\n", v4.port()),
    );
    let (_b, s6) = send(
        p.addr,
        &format!("GET http://[::]:{}/ HTTP/1.1\r\n\r\n", v6.0.port()),
    );
    let (_, records) = p.finish();
    eprintln!("{s4} / {s6}; {records:?}");
    let reached = hits4.load(Ordering::SeqCst) + v6.1.load(Ordering::SeqCst);
    assert_eq!(
        reached, 0,
        "0.0.0.0 / [::] reached the host's loopback ({s4}; {s6})"
    );
}

/// The record of a forwarded request is written when the *response* body ends (`Recorded`),
/// but the request body keeps flowing upstream after that when the upstream answers early.
/// Those bytes count against the budget, yet appear neither in the connection's audit record
/// nor in the run's totals (`bytes_up` of the summary is summed from the records).
#[test]
fn an_upload_after_an_early_response_is_in_the_audit() {
    const BODY: usize = 512 * 1024;
    let up = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = up.local_addr().expect("addr").port();
    let received = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&received);
    thread::spawn(move || {
        let Ok((mut s, _)) = up.accept() else { return };
        let mut buf = [0u8; 65536];
        let mut got = 0usize;
        let mut answered = false;
        let mut head = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got += n;
                    r.store(got, Ordering::SeqCst);
                    if !answered {
                        head.extend_from_slice(&buf[..n]);
                        if head.windows(4).any(|w| w == b"\r\n\r\n") {
                            // Answer at once, then keep reading the body.
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                            answered = true;
                        }
                    }
                }
            }
        }
    });
    let dns = fake_dns(HashMap::new());
    let p = start(
        vec![exact("svc.test", port)],
        64 << 20,
        &format!(
            "map svc.test 127.0.0.1\nnameserver 127.0.0.1:{}\n",
            dns.port
        ),
    );
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.write_all(
        format!(
            "POST http://svc.test:{port}/ HTTP/1.1\r\nHost: svc.test:{port}\r\nContent-Length: {BODY}\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("head");
    // Send the body slowly, after the response has come back.
    thread::sleep(Duration::from_millis(300));
    let chunk = vec![b'x'; 16 * 1024];
    for _ in 0..BODY / chunk.len() {
        if s.write_all(&chunk).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(2));
    }
    thread::sleep(Duration::from_millis(500));
    let upstream_got = received.load(Ordering::SeqCst);
    drop(s);
    let (summary, records) = p.finish();
    let recorded: u64 = records.iter().map(|r| r.bytes_up).sum();
    eprintln!(
        "upstream received {upstream_got} bytes; records say {recorded}; summary {summary:?}"
    );
    assert!(
        upstream_got > BODY / 2,
        "the body was not forwarded at all ({upstream_got})"
    );
    assert!(
        recorded as usize >= upstream_got,
        "upstream received {upstream_got} bytes, the audit records {recorded}"
    );
    assert!(
        summary.bytes_up as usize >= upstream_got,
        "summary: {summary:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Checked and found sound

/// DNS answers that hide special addresses (IPv4-mapped and compatible AAAA, NAT64, 6to4) are
/// refused, and nothing is dialed; an undeclared name is never sent to DNS; a declared name
/// goes out exactly once per type, fully qualified (no search domain).
#[test]
fn sound_dns_answers_are_checked_and_only_declared_names_are_asked() {
    let (up, hits) = http_upstream("127.0.0.1:0".parse().expect("addr"));
    let port = up.port();
    let hidden: [(&str, IpAddr); 5] = [
        ("mapped.test", "::ffff:127.0.0.1".parse().expect("ip")),
        ("compat.test", "::127.0.0.1".parse().expect("ip")),
        ("nat64.test", "64:ff9b::7f00:1".parse().expect("ip")),
        ("sixtofour.test", "2002:7f00:1::1".parse().expect("ip")),
        ("meta.test", "169.254.169.254".parse().expect("ip")),
    ];
    let dns = fake_dns(
        hidden
            .iter()
            .map(|(n, a)| ((*n).to_owned(), vec![*a]))
            .collect(),
    );
    let p = start(
        hidden.iter().map(|(n, _)| exact(n, port)).collect(),
        64 << 20,
        &format!("nameserver 127.0.0.1:{}\n", dns.port),
    );
    for (name, _) in hidden {
        let (_s, status) = send(
            p.addr,
            &format!("GET http://{name}:{port}/ HTTP/1.1\r\n\r\n"),
        );
        assert!(status.contains(" 403"), "{name}: {status}");
    }
    for name in ["undeclared.test", "x.mapped.test"] {
        let (_s, status) = send(p.addr, &format!("CONNECT {name}:{port} HTTP/1.1\r\n\r\n"));
        assert!(status.contains(" 403"), "{name}: {status}");
    }
    let (_, records) = p.finish();
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert!(records.iter().all(|r| r.address.is_none()), "{records:?}");
    let asked = dns.asked.lock().expect("lock").clone();
    assert!(
        asked.iter().all(|n| hidden.iter().any(|(h, _)| h == n)),
        "DNS was asked {asked:?}"
    );
}

/// A second request to another host on a keep-alive connection is judged on its own, and a
/// Host header that disagrees with the absolute URI is refused.
#[test]
fn sound_pipelined_and_mismatched_requests_are_refused() {
    let (up, hits) = http_upstream("127.0.0.1:0".parse().expect("addr"));
    let port = up.port();
    let dns = fake_dns(HashMap::new());
    let p = start(
        vec![exact("svc.test", port)],
        64 << 20,
        &format!(
            "map svc.test 127.0.0.1\nnameserver 127.0.0.1:{}\n",
            dns.port
        ),
    );
    let (_s, status) = send(
        p.addr,
        &format!("GET http://svc.test:{port}/ HTTP/1.1\r\nHost: evil.test:{port}\r\n\r\n"),
    );
    assert!(status.contains(" 403"), "{status}");
    let (_s, status) = send(
        p.addr,
        &format!("GET / HTTP/1.1\r\nHost: svc.test:{port}\r\nHost: evil.test\r\n\r\n"),
    );
    assert!(status.contains(" 400"), "{status}");
    // Two requests in one write: the second names an undeclared host.
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(
        format!(
            "GET http://svc.test:{port}/ HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("write");
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.contains("undeclared_address"), "{all}");
    let (_, _records) = p.finish();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// A run whose traffic lands exactly on the budget: later requests are refused with
/// `egress_budget`, but the summary says the budget was not exhausted, so the run's report has
/// no `egress_limit` denial (`budget_exhausted` is only set by a read or write that found
/// nothing left, never by the refusal before a dial).
#[test]
fn a_budget_used_up_exactly_is_reported() {
    let (up, _hits) = http_upstream("127.0.0.1:0".parse().expect("addr"));
    let port = up.port();
    let conf = "map svc.test 127.0.0.1\nnameserver 127.0.0.1:9\n".to_owned();
    let req = format!("GET http://svc.test:{port}/ HTTP/1.1\r\n\r\n");
    // Measure one exchange, then give a run exactly that much.
    let p = start(vec![exact("svc.test", port)], 1 << 20, &conf);
    let _ = send(p.addr, &req);
    let (first, _) = p.finish();
    let exact_budget = first.bytes_up + first.bytes_down;
    let p = start(vec![exact("svc.test", port)], exact_budget, &conf);
    let (_a, s1) = send(p.addr, &req);
    let (_b, s2) = send(p.addr, &req);
    let (summary, records) = p.finish();
    eprintln!("{s1} / {s2}; {summary:?}; {records:?}");
    assert!(s1.contains(" 200"), "{s1}");
    assert!(
        records.iter().any(|r| r.code == "egress_budget"),
        "{records:?}"
    );
    assert!(
        summary.budget_exhausted,
        "requests were refused with egress_budget, yet budget_exhausted is false: {summary:?}"
    );
}

/// Two tunnels at once share one budget: what the client gets back is cut at it exactly, the
/// summary says so, and a later request is refused before any dial.
#[test]
fn sound_tunnels_share_one_budget() {
    const BUDGET: u64 = 100_000;
    let up = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = up.local_addr().expect("addr").port();
    thread::spawn(move || {
        for s in up.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                // Stream only once the client has spoken, so both tunnels are open first.
                let mut go = [0u8; 2];
                if s.read_exact(&mut go).is_err() {
                    return;
                }
                let chunk = [b'y'; 4096];
                while s.write_all(&chunk).is_ok() {}
            });
        }
    });
    let p = start(
        vec![exact("svc.test", port)],
        BUDGET,
        "map svc.test 127.0.0.1\nnameserver 127.0.0.1:9\n",
    );
    let tunnels: Vec<TcpStream> = (0..2)
        .map(|_| {
            let (s, status) = send(p.addr, &format!("CONNECT svc.test:{port} HTTP/1.1\r\n\r\n"));
            assert!(status.contains(" 200"), "{status}");
            s
        })
        .collect();
    let readers: Vec<_> = tunnels
        .into_iter()
        .map(|mut s| {
            let _ = s.write_all(b"go");
            thread::spawn(move || {
                let mut got = 0u64;
                let mut buf = [0u8; 8192];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got += n as u64;
                }
                got
            })
        })
        .collect();
    let got: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    let (_s, status) = send(p.addr, &format!("CONNECT svc.test:{port} HTTP/1.1\r\n\r\n"));
    let (summary, records) = p.finish();
    assert!(status.contains(" 403"), "{status}");
    assert_eq!(got, summary.bytes_down, "{summary:?}");
    assert_eq!(summary.bytes_up + summary.bytes_down, BUDGET, "{summary:?}");
    assert!(summary.budget_exhausted);
    assert!(
        records.iter().filter(|r| r.code == "egress_budget").count() >= 3,
        "{records:?}"
    );
}
