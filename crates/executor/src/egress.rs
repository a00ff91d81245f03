//! The run's egress proxy: started for every run (so that even a skill with no network grant
//! gets a 403 it can act on, and the attempt is audited), fed the listener the cell makes, and
//! every connection it records appended to the audit trail by a writer thread of its own (the
//! proxy never waits for an fsync).

use std::os::fd::OwnedFd;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use skillcell_audit::{Actor, AuditLog, Event};
use skillcell_egress::{
    ConnectionRecord, Connector, EgressConfig, EgressSummary, Policy, Proxy, ProxyConfig, Recorder,
};
use skillcell_sandbox::Denial;
use skillcell_store::Home;
use skillcell_types::{Contract, Decision, Digest};

/// Denials kept for the enforcement report (all of them are in the audit trail).
const MAX_REPORTED_DENIALS: usize = 20;

/// Sends records to the writer thread.
struct ToWriter(mpsc::Sender<ConnectionRecord>);

impl Recorder for ToWriter {
    fn record(&self, record: ConnectionRecord) {
        let _ = self.0.send(record);
    }
}

/// What the writer thread hands back.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Distinct refusals, for the report.
    pub denials: Vec<Denial>,
    /// Records the audit trail refused (the run event says how many).
    pub lost: u64,
}

/// One run's proxy and its audit writer.
#[derive(Debug)]
pub(crate) struct RunEgress {
    proxy: Proxy,
    writer: JoinHandle<Written>,
}

/// Who and what the records are about.
pub(crate) struct Subject<'a> {
    pub actor: Actor,
    pub skill: &'a str,
    pub version: Digest,
    pub run_id: &'a str,
}

impl RunEgress {
    /// Reads the operator's configuration, starts the proxy and its writer. Returns the sender
    /// for the cell's listener.
    pub(crate) fn start(
        home: &Home,
        contract: &Contract,
        subject: Subject<'_>,
    ) -> Result<(Self, mpsc::Sender<OwnedFd>), String> {
        Self::start_with(home, contract, subject, Proxy::start)
    }

    /// As [`start`](Self::start), for an in-process client (the WASM cell's `http_fetch`).
    pub(crate) fn start_in_process(
        home: &Home,
        contract: &Contract,
        subject: Subject<'_>,
    ) -> Result<(Self, Connector), String> {
        Self::start_with(home, contract, subject, Proxy::start_in_process)
    }

    fn start_with<C>(
        home: &Home,
        contract: &Contract,
        subject: Subject<'_>,
        start: impl FnOnce(ProxyConfig, Arc<dyn Recorder>) -> std::io::Result<(Proxy, C)>,
    ) -> Result<(Self, C), String> {
        let egress = EgressConfig::load(&home.egress_config()).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel::<ConnectionRecord>();
        let audit = AuditLog::new(home.audit_dir());
        let Subject {
            actor,
            skill,
            version,
            run_id,
        } = subject;
        let (skill, run_id) = (skill.to_owned(), run_id.to_owned());
        let writer = std::thread::Builder::new()
            .name("skillcell-egress-audit".into())
            .spawn(move || write_records(&audit, &rx, &actor, &skill, version, &run_id))
            .map_err(|e| format!("cannot start the egress audit writer: {e}"))?;
        let config = ProxyConfig {
            policy: Policy::new(contract.network.clone()),
            budget_bytes: contract.limits.egress,
            egress,
        };
        let (proxy, client) = start(config, Arc::new(ToWriter(tx)))
            .map_err(|e| format!("cannot start the egress proxy: {e}"))?;
        Ok((Self { proxy, writer }, client))
    }

    /// Stops the proxy after the cell has ended; every record is written when this returns.
    pub(crate) fn finish(self) -> (EgressSummary, Written) {
        let summary = self.proxy.finish();
        let written = self.writer.join().unwrap_or_else(|_| Written {
            lost: u64::MAX,
            ..Written::default()
        });
        (summary, written)
    }
}

fn write_records(
    audit: &AuditLog,
    rx: &mpsc::Receiver<ConnectionRecord>,
    actor: &Actor,
    skill: &str,
    version: Digest,
    run_id: &str,
) -> Written {
    let mut written = Written::default();
    for record in rx {
        if record.decision == Decision::Deny
            && written.denials.len() < MAX_REPORTED_DENIALS
            && !written.denials.iter().any(|d| d.what == describe(&record))
        {
            written.denials.push(Denial {
                code: format!("network_{}", record.code),
                what: describe(&record),
                allow_with: record.allow_with.clone().unwrap_or_default(),
            });
        }
        let reason = if record.decision == Decision::Allow {
            format!("{} {}:{}", record.method, record.host, record.port)
        } else {
            record.reason.clone()
        };
        let mut details = serde_json::to_value(&record).unwrap_or_default();
        if let Some(map) = details.as_object_mut() {
            map.insert("run".into(), run_id.into());
        }
        let event = Event::new(actor.clone(), "egress", record.decision, reason)
            .skill(skill)
            .version(version)
            .details(details);
        if audit.append(event).is_err() {
            written.lost += 1;
        }
    }
    written
}

fn describe(r: &ConnectionRecord) -> String {
    if r.host.is_empty() {
        "a connection to the proxy that sent no HTTP request".to_owned()
    } else if r.port == 0 {
        format!("{} {}", r.method, r.host)
    } else {
        format!("{} {}:{}", r.method, r.host, r.port)
    }
}
