use serde::{Deserialize, Serialize};
use skillcell_types::{Decision, Digest};

/// Which role acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Developer,
    Executor,
}

/// Who acted: the OS user and the role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub uid: u32,
    pub user: String,
    pub role: Role,
}

impl Actor {
    /// The current process's user, read from `/proc/self/status` and the environment.
    pub fn current(role: Role) -> Self {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            })
            .and_then(|u| u.parse().ok())
            .unwrap_or(u32::MAX);
        // The account database, not $USER: the environment is the caller's to set.
        let user = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| {
                passwd.lines().find_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    (f.nth(1)? == uid.to_string()).then(|| name.to_owned())
                })
            })
            .unwrap_or_else(|| format!("uid-{uid}"));
        Self { uid, user, role }
    }
}

/// What happened, before it is sealed into the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub actor: Actor,
    /// What was attempted: `install`, `remove`, `rollback`, `verify`, `quarantine`, `resolve`, …
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// Tree hash of the version concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Digest>,
    pub decision: Decision,
    pub reason: String,
    /// Operation-specific facts (source path, contract hash, counts…). Object keys are sorted.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl Event {
    pub fn new(actor: Actor, op: &str, decision: Decision, reason: impl Into<String>) -> Self {
        Self {
            actor,
            op: op.to_owned(),
            skill: None,
            version: None,
            decision,
            reason: reason.into(),
            details: serde_json::Value::Null,
        }
    }

    pub fn skill(mut self, name: impl Into<String>) -> Self {
        self.skill = Some(name.into());
        self
    }

    pub fn version(mut self, tree: Digest) -> Self {
        self.version = Some(tree);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Keeps the serialized event under `max` bytes by dropping details and cutting the reason.
    pub(crate) fn bounded(mut self, max: usize) -> Self {
        let size = |e: &Self| serde_json::to_string(e).map_or(usize::MAX, |s| s.len());
        if size(&self) + 300 > max {
            self.details = serde_json::json!({"truncated": true});
        }
        if size(&self) + 300 > max {
            let keep = max / 2;
            let mut cut = keep.min(self.reason.len());
            while !self.reason.is_char_boundary(cut) {
                cut -= 1;
            }
            self.reason.truncate(cut);
            self.reason.push_str(" [truncated]");
        }
        self
    }
}

/// One line of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339 UTC time of the append.
    pub ts: String,
    #[serde(flatten)]
    pub event: Event,
    /// Hash of the record before (64 zeros for the first).
    pub prev: Digest,
    pub hash: Digest,
}

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    ts: &'a str,
    #[serde(flatten)]
    event: &'a Event,
    prev: &'a Digest,
}

impl Record {
    pub(crate) fn seal(seq: u64, prev: Digest, event: Event) -> Self {
        let ts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut r = Self {
            seq,
            ts,
            event,
            prev,
            hash: Digest::from_bytes([0; 32]),
        };
        r.hash = r.computed_hash();
        r
    }

    /// The hash this record should carry, from its other fields.
    pub fn computed_hash(&self) -> Digest {
        let body = Body {
            seq: self.seq,
            ts: &self.ts,
            event: &self.event,
            prev: &self.prev,
        };
        let mut bytes = b"skillcell-audit-v1\n".to_vec();
        bytes.extend(serde_json::to_vec(&body).unwrap_or_default());
        Digest::of(&bytes)
    }
}
