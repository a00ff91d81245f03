//! OSV records: the raw JSON shape (only the fields we store), and the evaluation of
//! `affected[].ranges` exactly as the schema's `IsVulnerable` algorithm states it.

use std::fmt;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::interval::Interval;

/// The parts of an OSV record the database keeps. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct RawRecord {
    pub id: String,
    pub modified: String,
    pub published: Option<String>,
    pub withdrawn: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    #[serde(default)]
    pub severity: Vec<SeverityScore>,
    #[serde(default)]
    pub affected: Vec<RawAffected>,
    pub database_specific: Option<serde_json::Value>,
}

impl RawRecord {
    /// `database_specific.severity` when it is a string (GitHub advisories write `HIGH`,
    /// `CRITICAL`, `MODERATE`, `LOW`).
    pub fn database_severity(&self) -> Option<String> {
        self.database_specific
            .as_ref()?
            .get("severity")?
            .as_str()
            .map(str::to_owned)
    }
}

/// One `severity[]` entry: a scoring system and its vector or score.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeverityScore {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawAffected {
    pub package: Option<RawPackage>,
    #[serde(default)]
    pub ranges: Vec<RawRange>,
    #[serde(default)]
    pub versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawPackage {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawRange {
    #[serde(rename = "type")]
    pub kind: String,
    pub repo: Option<String>,
    pub events: Vec<RawEvent>,
}

/// An event object: exactly one of its fields is present.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvent {
    pub introduced: Option<String>,
    pub fixed: Option<String>,
    pub last_affected: Option<String>,
    pub limit: Option<String>,
}

impl RawEvent {
    pub fn single(&self) -> Option<(EventKind, &str)> {
        let all = [
            (EventKind::Introduced, &self.introduced),
            (EventKind::Fixed, &self.fixed),
            (EventKind::LastAffected, &self.last_affected),
            (EventKind::Limit, &self.limit),
        ];
        let mut present = all
            .into_iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)));
        let first = present.next()?;
        present.next().is_none().then_some(first)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Introduced => "introduced",
            Self::Fixed => "fixed",
            Self::LastAffected => "last_affected",
            Self::Limit => "limit",
        }
    }

    pub fn from_str(s: &str) -> Option<Self> {
        Some(match s {
            "introduced" => Self::Introduced,
            "fixed" => Self::Fixed,
            "last_affected" => Self::LastAffected,
            "limit" => Self::Limit,
            _ => return None,
        })
    }
}

/// One event with its version parsed in the range's order; `None` is the special value
/// (`introduced: "0"`, below everything, or `limit: "*"`, above everything).
#[derive(Clone, Debug)]
pub struct Event<V> {
    pub kind: EventKind,
    pub version: Option<V>,
}

impl<V> Event<V> {
    pub fn new(kind: EventKind, version: Option<V>) -> Self {
        Self { kind, version }
    }
}

/// Parses one range's events with `parse`; `None` when a version does not parse in the
/// range's order (the range cannot be evaluated).
pub fn parse_events<V>(
    raw: &[(EventKind, String)],
    parse: impl Fn(&str) -> Option<V>,
) -> Option<Vec<Event<V>>> {
    raw.iter()
        .map(|(kind, text)| {
            let special = match kind {
                EventKind::Introduced => text == "0",
                EventKind::Limit => text == "*",
                _ => false,
            };
            if special {
                Some(Event::new(*kind, None))
            } else {
                parse(text).map(|v| Event::new(*kind, Some(v)))
            }
        })
        .collect()
}

/// Sorts events by version: `introduced: "0"` first, `limit: "*"` last, ties kept in order.
fn sorted<V: Ord + Clone>(events: &[Event<V>]) -> Vec<Event<V>> {
    let mut out = events.to_vec();
    out.sort_by(|a, b| {
        let key = |e: &Event<V>| match (&e.version, e.kind) {
            (None, EventKind::Limit) => 2,
            (None, _) => 0,
            (Some(_), _) => 1,
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| match (&a.version, &b.version) {
                (Some(x), Some(y)) => x.cmp(y),
                _ => std::cmp::Ordering::Equal,
            })
    });
    out
}

/// `BeforeLimits`: with no limit events every version passes; otherwise `v` must be below one.
fn before_limits<V: Ord>(v: &V, events: &[Event<V>]) -> bool {
    let mut limits = events
        .iter()
        .filter(|e| e.kind == EventKind::Limit)
        .peekable();
    if limits.peek().is_none() {
        return true;
    }
    limits.any(|e| e.version.as_ref().is_none_or(|l| v < l))
}

/// Whether `v` is affected by one range, per the schema's `IncludedInRanges` for one range.
pub fn range_includes<V: Ord + Clone>(v: &V, events: &[Event<V>]) -> bool {
    if !before_limits(v, events) {
        return false;
    }
    let mut vulnerable = false;
    for e in sorted(events) {
        match (e.kind, &e.version) {
            (EventKind::Introduced, None) => vulnerable = true,
            (EventKind::Introduced, Some(x)) if v >= x => vulnerable = true,
            (EventKind::Fixed, Some(x)) if v >= x => vulnerable = false,
            (EventKind::LastAffected, Some(x)) if v > x => vulnerable = false,
            _ => {}
        }
    }
    vulnerable
}

/// The same range as intervals, for asking whether a specifier admits any affected version.
pub fn range_intervals<V: Ord + Clone>(events: &[Event<V>]) -> Vec<Interval<V>> {
    let mut out = Vec::new();
    let mut start: Option<Bound<V>> = None;
    for e in sorted(events) {
        match (e.kind, e.version) {
            (EventKind::Introduced, version) if start.is_none() => {
                start = Some(version.map_or(Bound::Unbounded, Bound::Included));
            }
            (EventKind::Fixed, Some(x)) => {
                if let Some(s) = start.take() {
                    out.push(Interval::new(s, Bound::Excluded(x)));
                }
            }
            (EventKind::LastAffected, Some(x)) => {
                if let Some(s) = start.take() {
                    out.push(Interval::new(s, Bound::Included(x)));
                }
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Interval::new(s, Bound::Unbounded));
    }
    let limits: Vec<&Event<V>> = events
        .iter()
        .filter(|e| e.kind == EventKind::Limit)
        .collect();
    if !limits.is_empty() && limits.iter().all(|e| e.version.is_some()) {
        let top = limits.iter().filter_map(|e| e.version.clone()).max();
        if let Some(top) = top {
            let cap = Interval::new(Bound::Unbounded, Bound::Excluded(top));
            out = out.iter().map(|i| i.intersect(&cap)).collect();
        }
    }
    out.retain(|i| !i.is_empty());
    out
}

/// The CVSS v3.x base score of a vector such as `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`.
pub fn cvss3_base_score(vector: &str) -> Option<f64> {
    let mut parts = vector.split('/');
    let head = parts.next()?;
    if !head.starts_with("CVSS:3.") {
        return None;
    }
    let mut m = std::collections::HashMap::new();
    for p in parts {
        let (k, v) = p.split_once(':')?;
        m.insert(k, v);
    }
    let changed = match *m.get("S")? {
        "U" => false,
        "C" => true,
        _ => return None,
    };
    let av = match *m.get("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match *m.get("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (*m.get("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match *m.get("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let cia = |k: &str| -> Option<f64> {
        match *m.get(k)? {
            "H" => Some(0.56),
            "L" => Some(0.22),
            "N" => Some(0.0),
            _ => None,
        }
    };
    let iss = 1.0 - (1.0 - cia("C")?) * (1.0 - cia("I")?) * (1.0 - cia("A")?);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02_f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Some(0.0);
    }
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    Some(roundup(raw))
}

/// CVSS 3.1 `Roundup`: the smallest one-decimal number not below `x`, robust to float error.
fn roundup(x: f64) -> f64 {
    let int_input = (x * 100_000.0).round() as i64;
    if int_input % 10_000 == 0 {
        int_input as f64 / 100_000.0
    } else {
        ((int_input / 10_000) + 1) as f64 / 10.0
    }
}

/// A short rendering of a range's events for messages.
pub struct EventsDisplay<'a>(pub &'a [(EventKind, String)]);

impl fmt::Display for EventsDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{} {v}", k.as_str()))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(spec: &[(&str, u32)]) -> Vec<Event<u32>> {
        spec.iter()
            .map(|(k, v)| {
                let kind = EventKind::from_str(k).expect("known kind");
                let special =
                    (kind == EventKind::Introduced || kind == EventKind::Limit) && *v == 0;
                Event::new(kind, (!special).then_some(*v))
            })
            .collect()
    }

    #[test]
    fn the_schema_examples_evaluate_as_documented() {
        // introduced 0, fixed 5: [0, 5)
        let e = ev(&[("introduced", 0), ("fixed", 5)]);
        assert!(range_includes(&0, &e) && range_includes(&4, &e) && !range_includes(&5, &e));
        // introduced 1, last_affected 3: [1, 3]
        let e = ev(&[("introduced", 1), ("last_affected", 3)]);
        assert!(!range_includes(&0, &e) && range_includes(&3, &e) && !range_includes(&4, &e));
        // two ranges in one event list, out of order: [1,3) and [6, inf)
        let e = ev(&[("introduced", 6), ("fixed", 3), ("introduced", 1)]);
        assert!(range_includes(&2, &e) && !range_includes(&4, &e) && range_includes(&9, &e));
        // limit 8 caps an open range; limit "*" does not
        let e = ev(&[("introduced", 2), ("limit", 8)]);
        assert!(range_includes(&7, &e) && !range_includes(&8, &e));
        let e = ev(&[("introduced", 2), ("limit", 0)]);
        assert!(range_includes(&100, &e));
    }

    #[test]
    fn intervals_agree_with_the_pointwise_algorithm() {
        let cases: Vec<Vec<(&str, u32)>> = vec![
            vec![("introduced", 0), ("fixed", 5)],
            vec![
                ("introduced", 2),
                ("last_affected", 4),
                ("introduced", 7),
                ("fixed", 9),
            ],
            vec![
                ("introduced", 3),
                ("introduced", 1),
                ("fixed", 4),
                ("fixed", 2),
            ],
            vec![("fixed", 3), ("introduced", 3)],
            vec![("introduced", 3), ("fixed", 3)],
            vec![("introduced", 5), ("last_affected", 5)],
            vec![("introduced", 1), ("limit", 6), ("limit", 4)],
            vec![("introduced", 0), ("last_affected", 6), ("limit", 4)],
            vec![("last_affected", 2)],
        ];
        for case in cases {
            let e = ev(&case);
            let intervals = range_intervals(&e);
            for v in 0..12 {
                let pointwise = range_includes(&v, &e);
                let by_interval = intervals.iter().any(|i| i.contains(&v));
                assert_eq!(pointwise, by_interval, "{case:?} at {v}");
            }
        }
    }

    #[test]
    fn cvss_scores_match_the_calculator() {
        let s = |v| cvss3_base_score(v).expect("valid vector");
        assert_eq!(s("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), 9.8);
        assert_eq!(s("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"), 10.0);
        assert_eq!(s("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:H/I:N/A:N"), 5.3);
        assert_eq!(s("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N"), 0.0);
        assert_eq!(cvss3_base_score("CVSS:4.0/AV:N/AC:L"), None);
    }
}
