//! Section NW of ../shared/security-cases.md: network. The cell's network namespace has only
//! loopback; the one way out is the egress proxy the supervisor serves on a socket made inside
//! the cell (127.0.0.1:3128). Each case is judged from the host: loopback listeners that count
//! connections and record every HTTP request they get, a canary DNS server (the proxy's only
//! nameserver, see `egress.conf`) that records every name it is asked, a packet sniffer on the
//! host's interfaces and a raw ICMP socket (we are root), the skill's network namespace seen
//! through `/proc/<pid>/net`, and the audit trail, where every refusal must be. Never by what
//! the skill prints.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Lines, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, sleep};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::lab::{Lab, PROBE_WAIT, Run, token};

// ---------------------------------------------------------------------------------------------
// A loopback HTTP server that is also the canary listener

/// One request a [`Server`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    host: Option<String>,
}

/// A listener on 127.0.0.1 (random port) that counts the connections it accepts and answers
/// every HTTP request on them (keep-alive, pipelined ones included) with 200 and a body;
/// `…/big` gets 1 MiB. Each request's method, target and `Host` header are recorded.
struct Server {
    port: u16,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s, st) = (accepted.clone(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        let s = s.clone();
                        std::thread::spawn(move || serve_http(conn, &s));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        sleep(Duration::from_millis(5));
                    }
                    Err(_) => sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            accepted,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far, after giving queued ones time to be accepted.
    fn accepted(&self) -> usize {
        sleep(Duration::from_millis(150));
        self.accepted.load(Ordering::SeqCst)
    }

    /// Requests received so far (after the same grace).
    fn seen(&self) -> Vec<Seen> {
        sleep(Duration::from_millis(150));
        self.seen.lock().expect("lock").clone()
    }

    /// The targets of the requests received, sorted.
    fn targets(&self) -> Vec<String> {
        let mut v: Vec<String> = self.seen().into_iter().map(|s| s.target).collect();
        v.sort();
        v
    }

    /// Waits up to 2 s for at least `n` accepted connections.
    fn wait_for(&self, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.accepted.load(Ordering::SeqCst) < n && Instant::now() < deadline {
            sleep(Duration::from_millis(10));
        }
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Serves one connection of a [`Server`]: every complete request in the stream is recorded
/// and answered, until the peer closes or is idle for 5 s.
fn serve_http(mut conn: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf: Vec<u8> = Vec::new();
    loop {
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap_or_default().split(' ');
            let method = first.next().unwrap_or_default().to_owned();
            let target = first.next().unwrap_or_default().to_owned();
            let mut host = None;
            let mut len = 0usize;
            for l in lines {
                if let Some((k, v)) = l.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "host" => host = Some(v.trim().to_owned()),
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            if buf.len() < end + 4 + len {
                break;
            }
            buf.drain(..end + 4 + len);
            let body = if target.contains("big") {
                vec![b'x'; 1 << 20]
            } else {
                format!("skillcell-nw-test-server {method} {target}\n").into_bytes()
            };
            seen.lock().expect("lock").push(Seen {
                method,
                target,
                host,
            });
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&body).is_err() {
                return;
            }
        }
        let mut chunk = [0u8; 16384];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 1 << 20 {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A canary DNS server

/// A DNS server on 127.0.0.1 (the same random port over UDP and TCP) that records the name of
/// every query and answers A and AAAA records from its table, NXDOMAIN for names not in it.
struct Dns {
    port: u16,
    /// (name, query type), names in lower case without the final dot.
    queries: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Dns {
    /// `table`: (name, address) pairs; a name may be listed more than once.
    fn start(table: &[(&str, &str)]) -> Self {
        let mut map: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for (n, a) in table {
            map.entry(n.to_ascii_lowercase())
                .or_default()
                .push(a.parse().expect("an address"));
        }
        let map = Arc::new(map);
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let port = udp.local_addr().ok()?.port();
                let tcp = TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some((udp, tcp))
            })
            .expect("a port free for both UDP and TCP");
        let port = udp.local_addr().expect("addr").port();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        tcp.set_nonblocking(true).expect("nonblocking");
        let (q, m, s) = (queries.clone(), map.clone(), stop.clone());
        let udp_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::SeqCst) {
                let Ok((n, from)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                if let Some((name, qtype, reply)) = dns_answer(&buf[..n], &m) {
                    q.lock().expect("lock").push((name, qtype));
                    let _ = udp.send_to(&reply, from);
                }
            }
        });
        let (q, m, s) = (queries.clone(), map, stop.clone());
        let tcp_thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match tcp.accept() {
                    Ok((mut conn, _)) => {
                        let (q, m) = (q.clone(), m.clone());
                        std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                            loop {
                                let mut len = [0u8; 2];
                                if conn.read_exact(&mut len).is_err() {
                                    return;
                                }
                                let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                                if conn.read_exact(&mut msg).is_err() {
                                    return;
                                }
                                let Some((name, qtype, reply)) = dns_answer(&msg, &m) else {
                                    return;
                                };
                                q.lock().expect("lock").push((name, qtype));
                                let len = u16::try_from(reply.len()).unwrap_or(0).to_be_bytes();
                                if conn.write_all(&len).is_err() || conn.write_all(&reply).is_err()
                                {
                                    return;
                                }
                            }
                        });
                    }
                    Err(_) => sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            queries,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// Every name asked so far.
    fn names(&self) -> Vec<String> {
        sleep(Duration::from_millis(100));
        let mut v: Vec<String> = self
            .queries
            .lock()
            .expect("lock")
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Names asked that contain `needle`.
    fn asked_about(&self, needle: &str) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|n| n.contains(needle))
            .collect()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Parses the question of a DNS query and builds the answer: the name (lower case), the
/// query type and the reply. `None` for what is not a query.
fn dns_answer(q: &[u8], table: &BTreeMap<String, Vec<IpAddr>>) -> Option<(String, u16, Vec<u8>)> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let n = usize::from(*q.get(i)?);
        i += 1;
        if n == 0 {
            break;
        }
        if n & 0xC0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + n)?).to_ascii_lowercase());
        i += n;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let qend = i + 4;
    q.get(..qend)?;
    let name = labels.join(".");
    let found = table.get(&name);
    let answers: Vec<Vec<u8>> = found
        .map(|addrs| {
            addrs
                .iter()
                .filter_map(|a| match (a, qtype) {
                    (IpAddr::V4(v4), 1) => Some(v4.octets().to_vec()),
                    (IpAddr::V6(v6), 28) => Some(v6.octets().to_vec()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let rcode: u16 = if found.is_some() { 0 } else { 3 };
    let flags = 0x8000 | 0x0400 | 0x0080 | (u16::from_be_bytes([q[2], q[3]]) & 0x7900) | rcode;
    let mut r = Vec::with_capacity(512);
    r.extend_from_slice(&q[..2]);
    r.extend_from_slice(&flags.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&u16::try_from(answers.len()).ok()?.to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..qend]);
    for a in answers {
        r.extend_from_slice(&[0xC0, 0x0C]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&60u32.to_be_bytes());
        r.extend_from_slice(&u16::try_from(a.len()).ok()?.to_be_bytes());
        r.extend_from_slice(&a);
    }
    Some((name, qtype, r))
}

/// A DNS query for `name` (type A), as the host sends it for positive controls.
fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x13, 0x37, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(u8::try_from(l.len()).expect("label"));
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

// ---------------------------------------------------------------------------------------------
// A packet sniffer on the host

/// Watches every interface of the host (AF_PACKET, all protocols, both directions) and every
/// ICMP/ICMPv6 packet delivered to the host (raw sockets). Each argument is a thing to count:
/// `tok:X` frames containing X, `tcp:IP:PORT` / `udp:IP:PORT` packets to that destination,
/// `icmp:X` ICMP packets (from the raw ICMP sockets) containing X. Commands on stdin:
/// `report` prints the counts as one JSON line (after draining what is queued),
/// `echo ADDR TOKEN` sends an ICMP echo request carrying TOKEN to ADDR.
const SNIFFER: &str = r#"
import json, os, select, socket, struct, sys, time
specs = sys.argv[1:]
hits = {s: 0 for s in specs}
pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
pkt.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
icmp = [socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)]
try:
    icmp.append(socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6))
except OSError:
    pass
socks = [pkt] + icmp
for s in socks:
    s.setblocking(False)
parsed = [(s,) + tuple(s.split(":", 1)) for s in specs]
def on_frame(data, addr):
    proto, hatype = addr[1], addr[3]
    ip = data[14:] if hatype in (1, 772) else data
    kind, dst, l4 = None, None, b""
    if proto == 0x0800 and len(ip) >= 20 and ip[0] >> 4 == 4:
        kind = {6: "tcp", 17: "udp"}.get(ip[9])
        dst = socket.inet_ntop(socket.AF_INET, ip[16:20])
        l4 = ip[(ip[0] & 15) * 4:]
    elif proto == 0x86DD and len(ip) >= 40:
        kind = {6: "tcp", 17: "udp"}.get(ip[6])
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
        l4 = ip[40:]
    for spec, k, v in parsed:
        if k == "tok" and v.encode() in data:
            hits[spec] += 1
        elif k == kind and len(l4) >= 4:
            host, _, port = v.rpartition(":")
            if dst == host and struct.unpack("!H", l4[2:4])[0] == int(port):
                hits[spec] += 1
def on_icmp(data):
    for spec, k, v in parsed:
        if k == "icmp" and v.encode() in data:
            hits[spec] += 1
def drain():
    for s in socks:
        while True:
            try:
                data, addr = s.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            if s is pkt:
                on_frame(data, addr)
            else:
                on_icmp(data)
def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF
def echo(addr, tok):
    payload = tok.encode()
    if ":" in addr:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x5c5c, 1) + payload, (addr, 0))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        c = checksum(struct.pack("!BBHHH", 8, 0, 0, 0x5c5c, 1) + payload)
        s.sendto(struct.pack("!BBHHH", 8, 0, c, 0x5c5c, 1) + payload, (addr, 0))
    s.close()
print("READY", flush=True)
buf = b""
while True:
    r, _, _ = select.select(socks + [0], [], [], 1)
    drain()
    if 0 not in r:
        continue
    chunk = os.read(0, 4096)
    if not chunk:
        break
    buf += chunk
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        cmd = line.decode().split()
        if cmd and cmd[0] == "echo":
            echo(cmd[1], cmd[2])
        elif cmd and cmd[0] == "report":
            time.sleep(0.3)
            drain()
            print(json.dumps(hits), flush=True)
"#;

struct Sniffer {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Lines<BufReader<ChildStdout>>,
}

impl Sniffer {
    fn start(specs: &[String]) -> Self {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SNIFFER)
            .args(specs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 on the host runs the sniffer");
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        match out.next() {
            Some(Ok(l)) if l.trim() == "READY" => {}
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the host sniffer (AF_PACKET and raw ICMP sockets, needs root) did not start: {other:?}"
                );
            }
        }
        Self { child, stdin, out }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("talk to the sniffer");
    }

    /// The counts so far, per spec.
    fn report(&mut self) -> BTreeMap<String, u64> {
        self.send("report");
        let line = self
            .out
            .next()
            .expect("a report")
            .expect("the sniffer's report");
        serde_json::from_str(&line).expect("a JSON report")
    }

    fn echo(&mut self, addr: &str, tok: &str) {
        self.send(&format!("echo {addr} {tok}"));
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Specs of `report` whose count is not zero.
fn nonzero(report: &BTreeMap<String, u64>) -> Vec<(&String, &u64)> {
    report.iter().filter(|(_, n)| **n > 0).collect()
}

// ---------------------------------------------------------------------------------------------
// The lab's network side

/// The host's own address on its default route (no packet is sent to learn it), or 127.0.0.1
/// when the host has no route.
fn host_address() -> String {
    let found = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("8.8.8.8:53")?;
            s.local_addr()
        })
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    match found {
        Some(ip) => ip.to_string(),
        None => {
            eprintln!("note: the host has no default route; its 'own address' is 127.0.0.1 here");
            Ipv4Addr::LOCALHOST.to_string()
        }
    }
}

/// Writes the operator's `egress.conf`: the canary DNS server as the proxy's only
/// nameserver, and `map` lines.
fn egress_conf(lab: &Lab, dns: &Dns, maps: &[(&str, &str)]) {
    let mut text = format!("nameserver 127.0.0.1:{}\n", dns.port);
    for (name, addr) in maps {
        text.push_str(&format!("map {name} {addr}\n"));
    }
    let dir = lab.home.path().join("config");
    fs::create_dir_all(&dir).expect("config dir");
    fs::write(dir.join("egress.conf"), text).expect("egress.conf");
}

/// The `egress` audit records about `skill`.
fn egress_records(lab: &Lab, skill: &str) -> Vec<Value> {
    lab.audit()
        .into_iter()
        .filter(|r| r["op"] == "egress" && r["skill"] == skill)
        .collect()
}

fn code(r: &Value) -> &str {
    r["details"]["code"].as_str().unwrap_or_default()
}

/// A short line per record, for failure messages.
fn show(records: &[Value]) -> String {
    records
        .iter()
        .map(|r| {
            let d = &r["details"];
            format!(
                "{} {} {}:{} -> {} ({}) addr={} up={} down={}\n",
                r["decision"],
                d["method"],
                d["host"],
                d["port"],
                d["code"],
                d["reason"],
                d["address"],
                d["bytes_up"],
                d["bytes_down"]
            )
        })
        .collect()
}

/// Whether a denial with `code` about `host` (and `port`, unless 0) and `method` is in
/// `records`.
fn denied(records: &[Value], method: &str, host: &str, port: u16, code_: &str) -> bool {
    records.iter().any(|r| {
        let d = &r["details"];
        r["decision"] == "deny"
            && d["decision"] == "deny"
            && d["method"] == method
            && d["host"] == host
            && (port == 0 || d["port"] == port)
            && d["code"] == code_
    })
}

fn assert_ran(r: &Run) {
    assert_eq!(
        r.outcome(),
        ("exited", 0),
        "the skill did not run to the end: {r:?}"
    );
}

/// Python for skills that talk HTTP to the proxy byte by byte.
const PROXY_TALK: &str = r#"
import socket, sys
def talk(data, wait=3.0):
    """Sends `data` to the proxy in one write; returns all it answers until it closes."""
    out = b""
    try:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=wait)
        s.sendall(data)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError as e:
        print("talk:", e, file=sys.stderr)
    return out
def tunnel(host, port, path, wait=3.0):
    """http.client through a CONNECT tunnel."""
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=wait)
        c.set_tunnel(host, port)
        c.request("GET", path)
        return c.getresponse().read()
    except Exception as e:
        print("tunnel:", host, port, e, file=sys.stderr)
def get(url, wait=10):
    """urllib, which takes the proxy from http_proxy."""
    import urllib.request
    try:
        return urllib.request.urlopen(url, timeout=wait).read()
    except Exception as e:
        print("get:", url, e, file=sys.stderr)
"#;

// ---------------------------------------------------------------------------------------------
// Undeclared hosts and DNS

/// The skill asks the proxy for hosts no contract line names (plain HTTP, CONNECT, odd
/// spellings of the name). Each is refused before any DNS query: the canary DNS server, the
/// proxy's only nameserver, never hears the name. Positive control in the same run: a name the
/// contract does declare (but nothing maps) does reach the canary DNS server.
#[test]
fn http_to_an_undeclared_host_is_refused_before_any_dns_query() {
    let lab = Lab::new();
    let t = token("nw-host");
    let dns = Dns::start(&[]);
    let server = Server::start();
    egress_conf(&lab, &dns, &[]);
    let (evil, known) = (format!("evil-{t}.test"), format!("known-{t}.test"));
    let net = format!("skillcell.network: {known}:{}", server.port);
    lab.python(
        "undeclared",
        &[&net],
        &format!(
            "{PROXY_TALK}\n{}",
            r#"
evil, known, port = sys.argv[1], sys.argv[2], sys.argv[3]
get(f"http://{evil}:{port}/plain")
get(f"http://{evil.upper()}.:{port}/dotted")
get(f"https://{evil}/tls")
tunnel(evil, int(port), "/tunnel")
talk(f"GET /origin HTTP/1.1\r\nHost: {evil}:{port}\r\n\r\n".encode())
get(f"http://{known}:{port}/control")
"#
        ),
    );
    let port = server.port.to_string();
    let r = lab.run(&["undeclared", "--", &evil, &known, &port]);
    assert_ran(&r);
    let recs = egress_records(&lab, "undeclared");
    for (method, p) in [
        ("GET", server.port),
        ("CONNECT", 443),
        ("CONNECT", server.port),
    ] {
        assert!(
            denied(&recs, method, &evil, p, "undeclared_host"),
            "no undeclared_host denial for {method} {evil}:{p}:\n{}",
            show(&recs)
        );
    }
    let gets = recs
        .iter()
        .filter(|r| r["details"]["host"] == evil.as_str() && code(r) == "undeclared_host")
        .count();
    assert_eq!(gets, 5, "every request is audited:\n{}", show(&recs));
    assert!(
        recs.iter()
            .all(|r| r["details"]["host"] != evil.as_str() || r["decision"] == "deny"),
        "{}",
        show(&recs)
    );
    assert_eq!(
        dns.asked_about(&format!("evil-{t}")),
        Vec::<String>::new(),
        "an undeclared name was sent to DNS"
    );
    assert_eq!(server.accepted(), 0, "something reached the server");
    // Positive control: the declared name was looked up (NXDOMAIN, so it failed to resolve).
    assert_eq!(
        dns.asked_about(&known),
        vec![known.clone()],
        "{}",
        show(&recs)
    );
    assert!(
        denied(&recs, "GET", &known, server.port, "resolve_failed"),
        "{}",
        show(&recs)
    );
    let denials: Vec<&str> = r.report()["denials"]
        .as_array()
        .expect("denials")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert!(
        denials.contains(&"network_undeclared_host"),
        "the run report misses the refusal: {denials:?}"
    );
}

/// Resolving from inside the cell: the C library's resolver (there is no resolv.conf), a
/// hand-made query straight to the canary DNS server's address, to a public resolver and to
/// the host's own address, over UDP and TCP. The canary DNS server hears nothing and no
/// packet carrying the names shows up on any interface of the host.
#[test]
fn dns_lookups_from_inside_the_cell_reach_no_resolver() {
    let lab = Lab::new();
    let t = token("nw-dns");
    let dns = Dns::start(&[]);
    egress_conf(&lab, &dns, &[]);
    let host = host_address();
    // Not containing `t`: the control must not count as the skill's.
    let ctl = token("nw-dns-ctl");
    let mut sniffer = Sniffer::start(&[format!("tok:{t}"), format!("tok:{ctl}")]);
    lab.python(
        "resolver",
        &[],
        &format!(
            "{PROXY_TALK}\n{}",
            r#"
tok, dns_port, host = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def query(name):
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"
for fn in (lambda n: socket.getaddrinfo(n, 80), socket.gethostbyname, socket.gethostbyname_ex):
    try:
        fn("gai-" + tok + ".test")
    except OSError:
        pass
targets = [("127.0.0.1", dns_port), ("127.0.0.1", 53), (host, dns_port), (host, 53),
           ("8.8.8.8", 53), ("1.1.1.1", 53), ("::1", dns_port), ("2001:4860:4860::8888", 53)]
for i, (addr, port) in enumerate(targets):
    name = "raw%d-%s.test" % (i, tok)
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.settimeout(0.5)
        u.sendto(query(name), (addr, port))
        u.recv(512)
    except OSError:
        pass
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(0.5)
        s.connect((addr, port))
        q = query("tcp" + name)
        s.sendall(len(q).to_bytes(2, "big") + q)
        s.recv(512)
    except OSError:
        pass
# A resolver through the proxy: the address of a public one.
talk(b"CONNECT 8.8.8.8:53 HTTP/1.1\r\nHost: 8.8.8.8:53\r\n\r\n")
"#
        ),
    );
    let port = dns.port.to_string();
    let r = lab.run(&["resolver", "--", &t, &port, &host]);
    assert_ran(&r);
    assert_eq!(
        dns.asked_about(&t),
        Vec::<String>::new(),
        "a query from the cell reached the canary DNS server"
    );
    let report = sniffer.report();
    assert_eq!(
        nonzero(&report),
        Vec::<(&String, &u64)>::new(),
        "a DNS query from the cell left it"
    );
    let recs = egress_records(&lab, "resolver");
    assert!(
        denied(&recs, "CONNECT", "8.8.8.8", 53, "undeclared_address"),
        "{}",
        show(&recs)
    );
    // Positive controls: a query from the host reaches the canary DNS server and the sniffer.
    let u = UdpSocket::bind("127.0.0.1:0").expect("bind");
    u.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    u.send_to(&dns_query(&format!("{ctl}.test")), ("127.0.0.1", dns.port))
        .expect("send");
    let mut buf = [0u8; 512];
    let (n, _) = u
        .recv_from(&mut buf)
        .expect("the canary DNS server answers");
    assert_eq!(buf[3] & 0x0F, 3, "NXDOMAIN for a name not in the table");
    assert!(n > 12);
    assert_eq!(dns.asked_about(&ctl), vec![format!("{ctl}.test")]);
    let report = sniffer.report();
    assert!(
        report[&format!("tok:{ctl}")] > 0,
        "the sniffer is blind: {report:?}"
    );
    assert_eq!(report[&format!("tok:{t}")], 0, "{report:?}");
}

// ---------------------------------------------------------------------------------------------
// Raw sockets

/// The skill ignores the proxy variables and connects straight to a canary listener on the
/// host's loopback, to the host's own address and to public addresses (IPv4, IPv6, IPv4 in
/// IPv6), sending a token, over TCP and UDP. The canary accepts nothing and no packet to those
/// destinations, nor any packet with the token, appears on the host.
#[test]
fn raw_tcp_and_udp_ignoring_the_proxy_reach_nothing() {
    let lab = Lab::new();
    let t = token("nw-raw");
    let dns = Dns::start(&[]);
    egress_conf(&lab, &dns, &[]);
    let canary = Server::start();
    let host = host_address();
    let cport = canary.port;
    let ctl = token("nw-raw-ctl");
    let specs: Vec<String> = [
        format!("tok:{t}"),
        format!("tcp:127.0.0.1:{cport}"),
        format!("tcp:{host}:{cport}"),
        format!("tcp:1.1.1.1:{cport}"),
        format!("tcp:8.8.8.8:{cport}"),
        format!("udp:1.1.1.1:{cport}"),
        format!("tcp:2606:4700:4700::1111:{cport}"),
        format!("tok:{ctl}"),
        format!("udp:203.0.113.1:{cport}"),
    ]
    .into_iter()
    .collect();
    let mut sniffer = Sniffer::start(&specs);
    lab.python(
        "raw-tcp",
        &[],
        r#"
import socket, sys
tok, port, host = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for k in [k for k in list(__import__("os").environ) if k.lower().endswith("_proxy")]:
    del __import__("os").environ[k]
targets = ["127.0.0.1", host, "1.1.1.1", "8.8.8.8", "0.0.0.0", "::1", "::ffff:127.0.0.1",
           "2606:4700:4700::1111", "::"]
for addr in targets:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect((addr, port))
        s.sendall(tok.encode())
    except OSError:
        pass
    try:
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.sendto(tok.encode(), (addr, port))
    except OSError:
        pass
# The same with the connection made non-blocking, and through create_connection.
for addr in ("127.0.0.1", "1.1.1.1"):
    try:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((addr, port))
    except OSError:
        pass
    try:
        socket.create_connection((addr, port), timeout=1).sendall(tok.encode())
    except OSError:
        pass
"#,
    );
    let port = cport.to_string();
    let r = lab.run(&["raw-tcp", "--", &t, &port, &host]);
    assert_ran(&r);
    assert_eq!(
        canary.accepted(),
        0,
        "the skill reached the host's listener"
    );
    let report = sniffer.report();
    assert_eq!(
        nonzero(&report),
        Vec::<(&String, &u64)>::new(),
        "packets of the skill reached the host"
    );
    // Positive controls: the host reaches the canary, and the sniffer sees that connection and
    // a datagram carrying a token.
    let mut c = TcpStream::connect(("127.0.0.1", cport)).expect("host connects to the canary");
    c.write_all(ctl.as_bytes()).expect("write");
    assert_eq!(canary.wait_for(1), 1, "the canary records nothing");
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .send_to(ctl.as_bytes(), ("127.0.0.1", 9))
        .expect("send");
    // The sniffer sees the interface of the default route too: a datagram to a documentation
    // address (TEST-NET-3, delivered nowhere) leaves through it.
    let routed = host != "127.0.0.1";
    if routed {
        UdpSocket::bind("0.0.0.0:0")
            .expect("bind")
            .send_to(ctl.as_bytes(), ("203.0.113.1", cport))
            .expect("send out of the default route");
    }
    let report = sniffer.report();
    assert!(
        report[&format!("tcp:127.0.0.1:{cport}")] > 0 && report[&format!("tok:{ctl}")] > 0,
        "the sniffer is blind: {report:?}"
    );
    assert!(
        !routed || report[&format!("udp:203.0.113.1:{cport}")] > 0,
        "the sniffer does not see the default route's interface: {report:?}"
    );
}

/// ICMP: ping sockets and raw sockets (ICMP, ICMPv6, IPPROTO_RAW) to the host's loopback and
/// own address, the payload carrying a token. The host's raw ICMP sockets and its packet
/// sniffer never see the token. Positive control: an echo the host sends itself is seen.
#[test]
fn icmp_from_the_cell_never_reaches_the_host() {
    let lab = Lab::new();
    let t = token("nw-icmp");
    let dns = Dns::start(&[]);
    egress_conf(&lab, &dns, &[]);
    let host = host_address();
    let skill_tok = format!("{t}-skill");
    let host_tok = format!("{t}-host");
    let mut sniffer = Sniffer::start(&[
        format!("icmp:{skill_tok}"),
        format!("tok:{skill_tok}"),
        format!("icmp:{host_tok}"),
    ]);
    lab.python(
        "pinger",
        &[],
        r#"
import socket, struct, sys
tok, host = sys.argv[1].encode(), sys.argv[2]
def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF
def echo4():
    c = checksum(struct.pack("!BBHHH", 8, 0, 0, 0x7a7a, 1) + tok)
    return struct.pack("!BBHHH", 8, 0, c, 0x7a7a, 1) + tok
def echo6():
    return struct.pack("!BBHHH", 128, 0, 0, 0x7a7a, 1) + tok
def ip_packet(dst):
    # A whole IPv4 packet for IPPROTO_RAW (the kernel fills in the checksum and source).
    body = echo4()
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 1, 0,
                      b"\0\0\0\0", socket.inet_aton(dst))
    return hdr + body
tries = []
for dst in ("127.0.0.1", host):
    tries += [(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP, echo4(), dst),
              (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP, echo4(), dst),
              (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW, ip_packet(dst), dst)]
tries += [(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6, echo6(), "::1"),
          (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6, echo6(), "::1")]
for fam, kind, proto, data, dst in tries:
    try:
        s = socket.socket(fam, kind, proto)
        s.settimeout(0.3)
        s.sendto(data, (dst, 0))
        s.recv(1024)
    except OSError:
        pass
"#,
    );
    let r = lab.run(&["pinger", "--", &skill_tok, &host]);
    assert_ran(&r);
    let report = sniffer.report();
    assert_eq!(
        nonzero(&report),
        Vec::<(&String, &u64)>::new(),
        "ICMP from the cell reached the host"
    );
    // Positive control: the host pings itself (loopback and its own address) with a token.
    sniffer.echo("127.0.0.1", &host_tok);
    sniffer.echo(&host, &host_tok);
    let report = sniffer.report();
    assert!(
        report[&format!("icmp:{host_tok}")] >= 2,
        "the raw ICMP socket does not see the host's own echo: {report:?}"
    );
    assert_eq!(report[&format!("icmp:{skill_tok}")], 0, "{report:?}");
}

// ---------------------------------------------------------------------------------------------
// Ports, IP spellings, special addresses

/// The contract names `svc.test` on the test server's port; the skill asks for the same name
/// on the port of a canary listener (plain HTTP, CONNECT with and without `Host`, origin
/// form). All refused with `undeclared_port`; the canary accepts nothing; the declared port
/// works in the same run.
#[test]
fn a_declared_host_on_another_port_is_refused() {
    let lab = Lab::new();
    let t = token("nw-port");
    let dns = Dns::start(&[]);
    let server = Server::start();
    let canary = Server::start();
    egress_conf(&lab, &dns, &[("svc.test", "127.0.0.1")]);
    let net = format!("skillcell.network: svc.test:{}", server.port);
    lab.python(
        "other-port",
        &[&net],
        &format!(
            "{PROXY_TALK}\n{}",
            r#"
ok, other = int(sys.argv[1]), int(sys.argv[2])
get(f"http://svc.test:{other}/plain")
tunnel("svc.test", other, "/tunnel")
talk(f"CONNECT svc.test:{other} HTTP/1.1\r\n\r\n".encode())
talk(f"GET /origin HTTP/1.1\r\nHost: svc.test:{other}\r\n\r\n".encode())
talk(f"GET http://SVC.test.:{other}/dotted HTTP/1.1\r\n\r\n".encode())
get(f"http://svc.test:{ok}/control")
"#
        ),
    );
    let (ok, other) = (server.port.to_string(), canary.port.to_string());
    let r = lab.run(&["other-port", "--", &ok, &other, &t]);
    assert_ran(&r);
    assert_eq!(
        canary.accepted(),
        0,
        "a request reached the undeclared port"
    );
    let recs = egress_records(&lab, "other-port");
    for method in ["GET", "CONNECT"] {
        assert!(
            denied(&recs, method, "svc.test", canary.port, "undeclared_port"),
            "no undeclared_port denial for {method}:\n{}",
            show(&recs)
        );
    }
    let refused = recs
        .iter()
        .filter(|r| r["details"]["port"] == canary.port && code(r) == "undeclared_port")
        .count();
    assert_eq!(refused, 5, "every request is audited:\n{}", show(&recs));
    // Positive control: the declared port works, through the map (no DNS query).
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}\n{}", show(&recs));
    assert_eq!(seen[0].target, "/control");
    assert_eq!(dns.names(), Vec::<String>::new());
}

/// The contract declares a NAME for the test server's address (127.0.0.1:PORT); the skill
/// asks for that address in every spelling `inet_aton` and IPv6 allow (and 0.0.0.0, which
/// Linux dials as the local host), as absolute URIs, CONNECT targets and `Host` headers. An IP
/// literal matches only address rules, so all are refused before anything is dialed: the
/// server sees only the request made by name, over one connection.
#[test]
fn ip_literals_in_any_spelling_match_only_address_rules() {
    let lab = Lab::new();
    let dns = Dns::start(&[]);
    let server = Server::start();
    egress_conf(&lab, &dns, &[("svc.test", "127.0.0.1")]);
    let net = format!("skillcell.network: svc.test:{}", server.port);
    let spellings = [
        "2130706433",
        "0x7f.1",
        "127.1",
        "0177.0.0.1",
        "0x7f000001",
        "0x7F.0.0.1",
        "127.0.0.1",
        "127.0.0.1.",
        "017700000001",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[::1]",
        "0.0.0.0",
        "0",
    ];
    lab.python(
        "ip-literals",
        &[&net],
        &format!(
            "{PROXY_TALK}\n{}",
            r#"
port, spellings = int(sys.argv[1]), sys.argv[2:]
for i, h in enumerate(spellings):
    talk(f"GET http://{h}:{port}/abs-{i} HTTP/1.1\r\nHost: {h}:{port}\r\n\r\n".encode())
    talk(f"CONNECT {h}:{port} HTTP/1.1\r\nHost: {h}:{port}\r\n\r\nGET /tunnel-{i} HTTP/1.1\r\nHost: svc.test\r\n\r\n".encode())
    talk(f"GET /origin-{i} HTTP/1.1\r\nHost: {h}:{port}\r\n\r\n".encode())
get(f"http://svc.test:{port}/by-name")
"#
        ),
    );
    let port = server.port.to_string();
    let mut args = vec!["ip-literals", "--", &port];
    args.extend_from_slice(&spellings);
    let r = lab.run(&args);
    assert_ran(&r);
    let recs = egress_records(&lab, "ip-literals");
    let seen = server.seen();
    assert_eq!(
        seen.iter().map(|s| s.target.as_str()).collect::<Vec<_>>(),
        ["/by-name"],
        "an IP literal got through:\n{}",
        show(&recs)
    );
    assert_eq!(server.accepted(), 1, "{}", show(&recs));
    // Every attempt is a denial in the audit trail, judged as the address it spells.
    let denials: Vec<&Value> = recs.iter().filter(|r| r["decision"] == "deny").collect();
    assert_eq!(
        denials.len(),
        3 * spellings.len(),
        "not every attempt was audited:\n{}",
        show(&recs)
    );
    for d in &denials {
        let host = d["details"]["host"].as_str().unwrap_or_default();
        assert!(
            code(d) == "undeclared_address" && ["127.0.0.1", "0.0.0.0", "[::1]"].contains(&host),
            "{}",
            show(&recs)
        );
    }
    let allowed: Vec<&Value> = recs.iter().filter(|r| r["decision"] == "allow").collect();
    assert_eq!(allowed.len(), 1, "{}", show(&recs));
    assert_eq!(allowed[0]["details"]["host"], "svc.test");
    assert_eq!(
        dns.names(),
        Vec::<String>::new(),
        "an IP literal was sent to DNS"
    );
}

/// Names the contract declares, which the canary DNS server resolves to loopback (IPv4, IPv6,
/// IPv4-mapped IPv6), a private address and the cloud metadata address: refused with
/// `special_address` after the lookup (the DNS server did get each query: the names were
/// declared, resolved, then refused), and nothing dialed. Positive control: a name resolving
/// to 127.0.0.1 works when the contract also names `127.0.0.1:PORT` itself.
#[test]
fn a_declared_name_resolving_to_a_special_address_is_refused() {
    let lab = Lab::new();
    let t = token("nw-special");
    let names: Vec<(String, &str)> = [
        ("lo", "127.0.0.1"),
        ("priv", "10.0.0.1"),
        ("meta", "169.254.169.254"),
        ("cgnat", "100.64.0.1"),
        ("v6lo", "::1"),
        ("mapped", "::ffff:127.0.0.1"),
        ("ula", "fd00::1"),
    ]
    .into_iter()
    .map(|(n, a)| (format!("{n}-{t}.test"), a))
    .collect();
    let ok = format!("ok-{t}.test");
    let mut table: Vec<(&str, &str)> = names.iter().map(|(n, a)| (n.as_str(), *a)).collect();
    table.push((&ok, "127.0.0.1"));
    let dns = Dns::start(&table);
    let canary = Server::start();
    let server = Server::start();
    egress_conf(&lab, &dns, &[]);
    let mut specs: Vec<String> = ["10.0.0.1", "169.254.169.254", "100.64.0.1"]
        .iter()
        .map(|a| format!("tcp:{a}:{}", canary.port))
        .collect();
    specs.push(format!("tcp:fd00::1:{}", canary.port));
    let mut sniffer = Sniffer::start(&specs);
    let mut net = String::from("skillcell.network:");
    for (n, _) in &names {
        net.push_str(&format!(" {n}:{}", canary.port));
    }
    net.push_str(&format!(" {ok}:{} 127.0.0.1:{}", server.port, server.port));
    lab.python(
        "special",
        &[&net],
        &format!(
            "{PROXY_TALK}\n{}",
            r#"
canary, ok_port, ok, names = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
for n in names:
    get(f"http://{n}:{canary}/plain")
    tunnel(n, canary, "/tunnel")
get(f"http://{ok}:{ok_port}/control")
"#
        ),
    );
    let (cport, sport) = (canary.port.to_string(), server.port.to_string());
    let mut args = vec!["special", "--", &cport, &sport, &ok];
    args.extend(names.iter().map(|(n, _)| n.as_str()));
    let r = lab.run(&args);
    assert_ran(&r);
    let recs = egress_records(&lab, "special");
    assert_eq!(
        canary.accepted(),
        0,
        "a special address was dialed:\n{}",
        show(&recs)
    );
    let report = sniffer.report();
    assert_eq!(
        nonzero(&report),
        Vec::<(&String, &u64)>::new(),
        "the proxy dialed a private or metadata address"
    );
    for (n, a) in &names {
        for method in ["GET", "CONNECT"] {
            assert!(
                denied(&recs, method, n, canary.port, "special_address"),
                "{method} {n} ({a}) not refused as special_address:\n{}",
                show(&recs)
            );
        }
        assert!(
            dns.names().contains(n),
            "the DNS server never heard {n}: the refusal came before the lookup"
        );
    }
    assert!(
        recs.iter()
            .filter(|r| r["details"]["port"] == canary.port)
            .all(|r| r["decision"] == "deny" && r["details"]["address"].is_null()),
        "{}",
        show(&recs)
    );
    // Positive control: the explicitly named address works for the name that resolves to it.
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}\n{}", show(&recs));
    assert_eq!(seen[0].target, "/control");
    assert_eq!(
        seen[0].host.as_deref(),
        Some(format!("{ok}:{}", server.port).as_str())
    );
    let allowed: Vec<&Value> = recs.iter().filter(|r| r["decision"] == "allow").collect();
    assert_eq!(allowed.len(), 1, "{}", show(&recs));
    assert_eq!(allowed[0]["details"]["host"], ok.as_str());
    assert_eq!(
        allowed[0]["details"]["address"],
        format!("127.0.0.1:{}", server.port).as_str()
    );
    assert!(dns.names().contains(&ok));
}

// ---------------------------------------------------------------------------------------------
// One connection, several requests

/// Over one raw connection to the proxy, written in ONE write: an allowed request followed by
/// a request to an undeclared host (absolute URI, and origin form with only a `Host` header);
/// alone, an absolute URI naming the declared host with a `Host` header naming another one,
/// and two `Host` headers. The test server sees exactly the allowed requests, each with
/// `Host: svc.test:PORT`; the others are refused and audited.
#[test]
fn pipelined_and_mismatched_requests_are_each_judged() {
    let lab = Lab::new();
    let t = token("nw-pipe");
    let dns = Dns::start(&[]);
    let server = Server::start();
    egress_conf(&lab, &dns, &[("svc.test", "127.0.0.1")]);
    let net = format!("skillcell.network: svc.test:{}", server.port);
    lab.python(
        "pipeline",
        &[&net],
        &format!(
            "{PROXY_TALK}\n{}",
            r#"
port, tok = int(sys.argv[1]), sys.argv[2]
svc = f"svc.test:{port}"
def req(target, *hosts):
    return f"GET {target} HTTP/1.1\r\n".encode() + b"".join(f"Host: {h}\r\n".encode() for h in hosts) + b"\r\n"
talk(req(f"http://{svc}/a", svc) + req(f"http://evil1-{tok}.test:{port}/b", f"evil1-{tok}.test:{port}"))
talk(req(f"http://{svc}/c", f"evil2-{tok}.test:{port}"))
talk(req(f"http://{svc}/d", svc) + req("/e", f"evil3-{tok}.test:{port}"))
talk(req("/f", svc) + req("/g", f"evil4-{tok}.test:{port}"))
talk(req("/h", svc, f"evil5-{tok}.test:{port}"))
talk(req(f"http://{svc}/i", svc) + req(f"http://{svc}/j", f"evil6-{tok}.test:{port}"))
"#
        ),
    );
    let port = server.port.to_string();
    let r = lab.run(&["pipeline", "--", &port, &t]);
    assert_ran(&r);
    let recs = egress_records(&lab, "pipeline");
    let seen = server.seen();
    let mut targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        ["/a", "/d", "/f", "/i"],
        "the server saw other requests than the allowed ones:\n{seen:?}\n{}",
        show(&recs)
    );
    let host = format!("svc.test:{}", server.port);
    assert!(
        seen.iter()
            .all(|s| s.host.as_deref() == Some(host.as_str())),
        "{seen:?}"
    );
    for n in [1, 3, 4] {
        assert!(
            denied(
                &recs,
                "GET",
                &format!("evil{n}-{t}.test"),
                server.port,
                "undeclared_host"
            ),
            "evil{n} not refused:\n{}",
            show(&recs)
        );
    }
    let mismatches = recs.iter().filter(|r| code(r) == "host_mismatch").count();
    assert_eq!(mismatches, 2, "{}", show(&recs));
    let bad = recs.iter().filter(|r| code(r) == "bad_request").count();
    assert_eq!(bad, 1, "two Host headers:\n{}", show(&recs));
    let allowed = recs.iter().filter(|r| r["decision"] == "allow").count();
    assert_eq!(allowed, 4, "{}", show(&recs));
    assert_eq!(dns.asked_about(&t), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Listening

/// The skill tries to listen on TCP (0.0.0.0:8888, [::]:8888, and an unbound socket that
/// `listen` would bind itself) and binds UDP on 0.0.0.0:PORT. While it waits, the host sends
/// datagrams to 127.0.0.1:PORT and its own address, and connects to 8888 and to every port
/// the cell's namespace shows listening. The skill can prove reception only by writing a
/// marker into its write grant: none appears. Judged as well through /proc/<pid>/net of the
/// skill: no TCP listener but the proxy's own socket. Positive control: a datagram the skill
/// sends to its own UDP socket arrives (its marker appears).
#[test]
fn a_listening_socket_in_the_cell_is_unreachable_from_the_host() {
    let lab = Lab::new();
    let t = token("nw-listen");
    let dns = Dns::start(&[]);
    egress_conf(&lab, &dns, &[]);
    let udp_port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    fs::write(lab.path("ctl/udp-port"), udp_port.to_string()).expect("port file");
    let body = format!(
        "{PROBE_WAIT}{}",
        r#"
import socket
tok = sys.argv[1].encode()
ws = os.environ["SKILLCELL_PATH_WORKSPACE"]
port = int(open(os.path.join(os.environ["SKILLCELL_PATH_CTL"], "udp-port")).read())
def mark(name, data=b""):
    with open(os.path.join(ws, name), "wb") as f:
        f.write(data)
listeners = []
for fam, addr in ((socket.AF_INET, ("0.0.0.0", 8888)), (socket.AF_INET6, ("::", 8888)),
                  (socket.AF_INET, None), (socket.AF_INET, ("127.0.0.1", port))):
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if addr:
            s.bind(addr)
        s.listen(8)
        s.setblocking(False)
        listeners.append(s)
    except OSError:
        pass
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", port))
udp.sendto(b"self-" + tok, ("127.0.0.1", port))
udp.settimeout(2)
try:
    if udp.recv(256) == b"self-" + tok:
        mark("self-received")
except OSError:
    pass
wait_for_host()
udp.setblocking(False)
while True:
    try:
        data = udp.recv(256)
    except OSError:
        break
    mark("udp-from-outside", data)
for s in listeners:
    try:
        c, _ = s.accept()
        mark("tcp-from-outside-%d" % s.getsockname()[1])
    except OSError:
        pass
"#
    );
    lab.python(
        "listener",
        &["skillcell.fs.read: $CTL", "skillcell.fs.write: $WORKSPACE"],
        &body,
    );
    let ws = lab.s("ws");
    let p = lab.probe("listener", &["--workspace", &ws], &t);
    // The cell's namespace, seen from the host.
    let listening = |file: &str| -> Vec<u16> {
        fs::read_to_string(p.proc(file))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                let port = cols.get(1)?.rsplit(':').next()?;
                (cols.get(3) == Some(&"0A")).then(|| u16::from_str_radix(port, 16).ok())?
            })
            .collect()
    };
    let bound_udp = |file: &str| -> Vec<u16> {
        fs::read_to_string(p.proc(file))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| {
                let local = l.split_whitespace().nth(1)?;
                u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
            })
            .collect()
    };
    let mut tcp = listening("net/tcp");
    tcp.extend(listening("net/tcp6"));
    let udp = bound_udp("net/udp");
    // The host knocks on every door it can name.
    let host = host_address();
    let knock = format!("knock-{t}");
    let sender = UdpSocket::bind("0.0.0.0:0").expect("bind");
    for _ in 0..3 {
        for addr in ["127.0.0.1", host.as_str()] {
            let _ = sender.send_to(knock.as_bytes(), (addr, udp_port));
        }
    }
    let mut doors: Vec<u16> = vec![8888, udp_port];
    doors.extend(tcp.iter().filter(|p| **p != 3128));
    for port in &doors {
        for addr in ["127.0.0.1", host.as_str()] {
            if let Ok(mut c) = TcpStream::connect_timeout(
                &format!("{addr}:{port}").parse().expect("addr"),
                Duration::from_millis(500),
            ) {
                let _ = c.write_all(knock.as_bytes());
            }
        }
    }
    sleep(Duration::from_millis(200));
    let out = p.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut markers: Vec<String> = fs::read_dir(lab.path("ws"))
        .expect("ws")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    markers.sort();
    // Positive control: the cell's own loopback works, and the write grant with it.
    assert_eq!(
        markers,
        ["self-received"],
        "the skill received something from outside the cell"
    );
    // The views of /proc/<pid>/net are the cell's: the proxy's listener is there (positive
    // control); the explicit binds were refused (Landlock), so nothing listens on 8888 or the
    // UDP port over TCP.
    assert!(
        tcp.contains(&3128),
        "the cell's view lacks the proxy's listener: {tcp:?}"
    );
    assert!(
        !tcp.contains(&8888) && !tcp.contains(&udp_port),
        "the skill bound a TCP port and listens on it: {tcp:?}"
    );
    // `listen` on an unbound socket would bind an ephemeral port without the bind hook
    // Landlock checks; the seccomp filter refuses `listen` itself, so nothing but the proxy's
    // listener (made by the init) may listen.
    let others: Vec<u16> = tcp.iter().copied().filter(|p| *p != 3128).collect();
    assert!(
        others.is_empty(),
        "the skill listens on TCP port(s) {others:?} inside the cell"
    );
    assert!(udp.contains(&udp_port), "{udp:?}");
}

// ---------------------------------------------------------------------------------------------
// The byte budget

/// `skillcell.limits: egress=64K`, and a 1 MiB download from an allowed host, once plain HTTP
/// first and once through a CONNECT tunnel first: the proxy stops at the budget. In each run
/// the audit trail adds up to at most 64 KiB moved, the requests after it are refused with
/// `egress_budget` (the server never sees them), and the run's report says `egress_limit`.
#[test]
fn the_egress_budget_cuts_a_large_download() {
    let lab = Lab::new();
    let dns = Dns::start(&[]);
    let server = Server::start();
    egress_conf(&lab, &dns, &[("svc.test", "127.0.0.1")]);
    let net = format!("skillcell.network: svc.test:{}", server.port);
    lab.python(
        "budget",
        &[&net, "skillcell.limits: egress=64K"],
        &format!(
            "{PROXY_TALK}\n{}",
            r#"
port, first = int(sys.argv[1]), sys.argv[2]
if first == "plain":
    get(f"http://svc.test:{port}/plain-big")
    tunnel("svc.test", port, "/plain-after-tunnel")
else:
    tunnel("svc.test", port, "/tunnel-big")
    get(f"http://svc.test:{port}/tunnel-after-plain")
get(f"http://svc.test:{port}/{first}-after")
"#
        ),
    );
    let port = server.port.to_string();
    for (first, method) in [("plain", "GET"), ("tunnel", "CONNECT")] {
        let r = lab.run(&["budget", "--", &port, first]);
        assert_ran(&r);
        let run_id = r.json["run"].as_str().expect("run id").to_owned();
        let recs: Vec<Value> = egress_records(&lab, "budget")
            .into_iter()
            .filter(|rec| rec["details"]["run"] == run_id.as_str())
            .collect();
        let total = |k: &str| -> u64 {
            recs.iter()
                .map(|r| r["details"][k].as_u64().unwrap_or(0))
                .sum()
        };
        let (up, down) = (total("bytes_up"), total("bytes_down"));
        assert!(
            down > 0,
            "{first}: nothing was downloaded:\n{}",
            show(&recs)
        );
        assert!(
            up + down <= 64 * 1024,
            "{first}: {up} up + {down} down passed the 64 KiB budget:\n{}",
            show(&recs)
        );
        let big: Vec<&Value> = recs.iter().filter(|r| r["decision"] == "allow").collect();
        assert_eq!(big.len(), 1, "{first}:\n{}", show(&recs));
        assert_eq!(big[0]["details"]["method"], method);
        let refused = recs
            .iter()
            .filter(|r| r["decision"] == "deny" && code(r) == "egress_budget")
            .count();
        assert_eq!(
            refused,
            2,
            "{first}: the requests after the budget are refused with egress_budget:\n{}",
            show(&recs)
        );
        let codes: Vec<&str> = r.report()["denials"]
            .as_array()
            .expect("denials")
            .iter()
            .filter_map(|d| d["code"].as_str())
            .collect();
        assert!(codes.contains(&"egress_limit"), "{first}: {codes:?}");
    }
    // The first request of each run reached the server; none made after the budget did.
    assert_eq!(server.targets(), ["/plain-big", "/tunnel-big"]);
}

// ---------------------------------------------------------------------------------------------
// Positive controls

/// Declared traffic works with the clients skills use: urllib (plain HTTP through the proxy),
/// http.client with a CONNECT tunnel, curl over plain HTTP and with `--proxytunnel`, and
/// `requests` when the interpreter has it. The test server sees each request with
/// `Host: svc.test:PORT`; the audit trail has an allow record for each, dialed to
/// 127.0.0.1:PORT (from the operator's map, so no DNS query).
#[test]
fn declared_traffic_goes_through_the_proxy_with_common_clients() {
    let lab = Lab::new();
    let curl = Command::new("curl").arg("--version").output();
    assert!(
        curl.as_ref().is_ok_and(|o| o.status.success()),
        "curl is needed on the host for this test: {curl:?}"
    );
    let requests = Command::new("python3")
        .args(["-c", "import requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        requests,
        "python3 cannot import requests (scripts/test.sh installs it for this positive control)"
    );
    let dns = Dns::start(&[]);
    let server = Server::start();
    egress_conf(&lab, &dns, &[("svc.test", "127.0.0.1")]);
    let net = format!("skillcell.network: svc.test:{}", server.port);
    lab.python(
        "clients",
        &[&net, "skillcell.exec: curl"],
        &format!(
            "{PROXY_TALK}\n{}",
            r#"
import subprocess
port, use_requests = int(sys.argv[1]), sys.argv[2] == "1"
get(f"http://svc.test:{port}/urllib")
tunnel("svc.test", port, "/tunnel")
for extra, path in (([], "/curl"), (["--proxytunnel"], "/curl-tunnel")):
    try:
        subprocess.run(["curl", "-sS", "--max-time", "10", "-o", "/dev/null", *extra,
                        f"http://svc.test:{port}{path}"], timeout=20)
    except Exception as e:
        print("curl:", e, file=sys.stderr)
if use_requests:
    try:
        import requests
        requests.get(f"http://svc.test:{port}/requests", timeout=10)
    except Exception as e:
        print("requests:", e, file=sys.stderr)
"#
        ),
    );
    let port = server.port.to_string();
    let r = lab.run(&["clients", "--", &port, if requests { "1" } else { "0" }]);
    assert_ran(&r);
    let recs = egress_records(&lab, "clients");
    let mut want = vec!["/curl", "/curl-tunnel", "/tunnel", "/urllib"];
    if requests {
        want.push("/requests");
        want.sort_unstable();
    }
    let seen = server.seen();
    let mut targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        want,
        "{seen:?}\n{}\nskill stderr: {}",
        show(&recs),
        r.json["stderr"]
    );
    let host = format!("svc.test:{}", server.port);
    assert!(
        seen.iter()
            .all(|s| s.host.as_deref() == Some(host.as_str())),
        "{seen:?}"
    );
    let address = format!("127.0.0.1:{}", server.port);
    assert!(
        recs.iter().all(|r| r["decision"] == "allow"
            && r["details"]["address"] == address.as_str()
            && r["details"]["host"] == "svc.test"),
        "{}",
        show(&recs)
    );
    let count = |m: &str| recs.iter().filter(|r| r["details"]["method"] == m).count();
    assert_eq!(count("CONNECT"), 2, "{}", show(&recs));
    assert_eq!(count("GET"), want.len() - 2, "{}", show(&recs));
    assert_eq!(
        dns.names(),
        Vec::<String>::new(),
        "a mapped name went to DNS"
    );
}

/// An HTTPS server on the host (Python's `ssl`, a certificate for `svc.test` made now with
/// openssl) that logs each request's path and Host header to a file the test reads.
struct TlsServer {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl TlsServer {
    fn start(lab: &Lab) -> (Self, String) {
        let dir = lab.path("tls");
        fs::create_dir_all(&dir).expect("tls dir");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=svc.test",
                "-addext",
                "subjectAltName=DNS:svc.test",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is needed on the host for this test (scripts/test.sh installs it)");
        assert!(out.status.success(), "openssl: {out:?}");
        let log = dir.join("requests.log");
        let script = r#"
import http.server, ssl, sys
cert, key, log = sys.argv[1:4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + " " + self.headers.get("Host", "") + "\n")
        body = b"tls-ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&cert)
            .arg(&key)
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let port = line.trim().parse().expect("the TLS server's port");
        let pem = fs::read_to_string(&cert).expect("cert");
        (Self { child, port, log }, pem)
    }

    fn seen(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Positive control over CONNECT with real TLS: urllib, requests and curl fetch
/// `https://svc.test:<port>/` (declared; mapped to a loopback HTTPS server) through the proxy,
/// verifying the server's certificate. The server logs each request; the audit holds one
/// allowed CONNECT per client, to the mapped address.
#[test]
fn https_through_connect_works_from_urllib_requests_and_curl() {
    let lab = Lab::new();
    let (server, pem) = TlsServer::start(&lab);
    let dns = Dns::start(&[]);
    egress_conf(&lab, &dns, &[("svc.test", "127.0.0.1")]);
    let net = format!("skillcell.network: svc.test:{}", server.port);
    lab.install(
        "tls-clients",
        &["skillcell.entry: main.py", &net, "skillcell.exec: curl"],
        &[
            ("cert.pem", pem.as_str()),
            (
                "main.py",
                r#"
import ssl, subprocess, sys, urllib.request
port, ca = int(sys.argv[1]), "/skill/cert.pem"
def attempt(what, f):
    try:
        f()
    except Exception as e:
        print(what, e, file=sys.stderr)
attempt("urllib", lambda: urllib.request.urlopen(
    f"https://svc.test:{port}/urllib-tls",
    context=ssl.create_default_context(cafile=ca), timeout=10).read())
def with_requests():
    import requests
    requests.get(f"https://svc.test:{port}/requests-tls", verify=ca, timeout=10)
attempt("requests", with_requests)
attempt("curl", lambda: subprocess.run(
    ["curl", "-sS", "--max-time", "10", "--cacert", ca, "-o", "/dev/null",
     f"https://svc.test:{port}/curl-tls"], timeout=20, check=True))
"#,
            ),
        ],
    );
    let port = server.port.to_string();
    let r = lab.run(&["tls-clients", "--", &port]);
    assert_ran(&r);
    let host = format!("svc.test:{}", server.port);
    let want: Vec<String> = ["/curl-tls", "/requests-tls", "/urllib-tls"]
        .iter()
        .map(|p| format!("{p} {host}"))
        .collect();
    let recs = egress_records(&lab, "tls-clients");
    assert_eq!(
        server.seen(),
        want,
        "{}\nskill stderr: {}",
        show(&recs),
        r.json["stderr"]
    );
    let address = format!("127.0.0.1:{}", server.port);
    assert_eq!(recs.len(), 3, "{}", show(&recs));
    assert!(
        recs.iter().all(|r| r["decision"] == "allow"
            && r["details"]["method"] == "CONNECT"
            && r["details"]["address"] == address.as_str()
            && r["details"]["bytes_down"].as_u64().unwrap_or(0) > 0),
        "{}",
        show(&recs)
    );
    assert_eq!(
        dns.names(),
        Vec::<String>::new(),
        "a mapped name went to DNS"
    );
}
