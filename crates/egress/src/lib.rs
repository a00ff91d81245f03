//! The egress proxy: the only way out of a cell.
//!
//! A cell's network namespace has nothing but loopback. Its init listens on
//! `127.0.0.1:PROXY_PORT` inside that namespace and hands the listening socket to the
//! supervisor, which serves it here, from outside the cell, with the run's [`Policy`]:
//! HTTP `CONNECT` tunnels and plain-HTTP forwarding. Every request is judged on its own
//! (pipelined requests included) by [`request::judge`]; names are normalized ([`Host`]) and
//! checked against the contract *before* any DNS query; a name's addresses are checked
//! (no loopback, private, link-local, CGNAT, unique-local or metadata address from DNS) and
//! exactly a checked address is dialed, so there is no second lookup to rebind. Every
//! upstream connection, allowed or refused, becomes a [`ConnectionRecord`] for the audit trail,
//! and the bytes of all of them count against the run's budget.

mod config;
mod fetch;
mod host;
mod policy;
pub mod request;
mod server;

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub use config::{ConfigError, EgressConfig, Resolver};
pub use fetch::{Connector, FetchFailure, Fetched};
pub use host::{Host, HostError, parse_ipv4_loose};
pub use policy::{AddressSource, Policy, Refusal};
use serde::Serialize;
use skillcell_types::Decision;

/// Upstream connections (allowed or refused) recorded per run; beyond this the proxy refuses
/// new requests, so that every connection it makes is in the audit trail and a skill cannot
/// flood the trail.
pub const MAX_RECORDS: u64 = 4096;
/// Client connections served at once.
pub const MAX_CONCURRENT: usize = 256;
/// Upstream connections (tunnels and forwarded requests) open at once. With the client side
/// of each, this bounds the descriptors a skill can make the supervisor hold.
pub const MAX_UPSTREAMS: usize = 128;

/// One upstream connection (or refusal), for the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionRecord {
    /// `CONNECT`, `GET`, … as the client sent it.
    pub method: String,
    /// The normalized host, or the raw text when it could not be understood.
    pub host: String,
    pub port: u16,
    /// The address dialed, when one was.
    pub address: Option<String>,
    pub decision: Decision,
    /// `allowed`, a [`Refusal`] code, or `resolve_failed` / `connect_failed`.
    pub code: String,
    /// The contract rule that allowed the host.
    pub rule: Option<String>,
    pub reason: String,
    pub allow_with: Option<String>,
    /// Bytes sent to the upstream host (request heads and bodies, tunnel bytes).
    pub bytes_up: u64,
    /// Bytes received from it.
    pub bytes_down: u64,
    pub duration_ms: u64,
}

/// Where records go (the executor appends them to the audit trail). Called from the proxy's
/// thread; must not block for long.
pub trait Recorder: Send + Sync {
    fn record(&self, record: ConnectionRecord);
}

/// What a run sent and received through the proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EgressSummary {
    pub connections: u64,
    pub refused: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub budget_bytes: u64,
    pub budget_exhausted: bool,
    /// Requests refused because [`MAX_RECORDS`] was reached (not recorded one by one).
    pub over_record_cap: u64,
    /// The proxy could not start (its error); every connection of the run was refused.
    pub failed: Option<String>,
}

/// Everything one run's proxy needs.
#[derive(Debug)]
pub struct ProxyConfig {
    pub policy: Policy,
    pub budget_bytes: u64,
    pub egress: EgressConfig,
}

/// Shared between the proxy's tasks.
struct Shared {
    policy: Policy,
    resolver: Resolver,
    recorder: Arc<dyn Recorder>,
    budget: u64,
    used: AtomicU64,
    budget_exhausted: AtomicBool,
    records: AtomicU64,
    refused: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    over_cap: AtomicU64,
    /// Requests seen, for the record cap.
    started: AtomicU64,
    /// Records not yet written (connections still open).
    open: AtomicUsize,
    /// Woken when `open` drops to zero.
    idle: tokio::sync::Notify,
    /// One permit per open upstream connection, held by its record until it closes.
    upstreams: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    fn summary(&self) -> EgressSummary {
        EgressSummary {
            connections: self.records.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
            budget_bytes: self.budget,
            budget_exhausted: self.budget_exhausted.load(Ordering::Relaxed),
            over_record_cap: self.over_cap.load(Ordering::Relaxed),
            failed: None,
        }
    }
}

/// A running proxy: a thread with its own single-threaded async runtime, waiting for the
/// listening socket.
#[derive(Debug)]
pub struct Proxy {
    thread: std::thread::JoinHandle<EgressSummary>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    /// Starts the proxy's thread; returns it and the sender the cell's listener goes to
    /// (`PreparedCell::send_listener_to`). If the sender is dropped without a listener, the
    /// thread ends.
    pub fn start(
        config: ProxyConfig,
        recorder: Arc<dyn Recorder>,
    ) -> std::io::Result<(Self, mpsc::Sender<OwnedFd>)> {
        let (tx, rx) = mpsc::channel::<OwnedFd>();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("skillcell-egress".into())
            .spawn(move || server::run(config, recorder, server::Source::Listener(rx), stop_rx))?;
        Ok((Self { thread, stop }, tx))
    }

    /// Starts a proxy for an in-process client (the WASM cell): no listening socket anywhere,
    /// each request gets a socket pair whose other end the proxy serves with the same judging,
    /// policy, budget and records as a cell's listener.
    pub fn start_in_process(
        config: ProxyConfig,
        recorder: Arc<dyn Recorder>,
    ) -> std::io::Result<(Self, Connector)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("skillcell-egress".into())
            .spawn(move || server::run(config, recorder, server::Source::Streams(rx), stop_rx))?;
        Ok((Self { thread, stop }, Connector::new(tx)))
    }

    /// Stops accepting, gives open connections [`FINISH_GRACE`] to finish (their records are written
    /// either way), and returns the run's summary.
    pub fn finish(self) -> EgressSummary {
        let _ = self.stop.send(true);
        self.thread.join().unwrap_or_else(|_| EgressSummary {
            failed: Some("the proxy thread panicked".into()),
            ..EgressSummary::default()
        })
    }
}

/// How long open connections get after the cell has ended.
pub const FINISH_GRACE: Duration = Duration::from_millis(500);
