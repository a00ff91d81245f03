//! Semantic Versioning 2.0 versions and npm's range syntax (`^`, `~`, x-ranges, hyphen ranges,
//! `||`), which is how npm picks a version and how OSV `SEMVER` ranges are ordered.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;

use crate::interval::Interval;
use crate::pep440::ParseError;

/// One dot-separated pre-release identifier: numeric ones sort before alphanumeric ones.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ident {
    Number(u64),
    Text(String),
}

/// A semantic version; build metadata is kept for display but ignored by comparisons.
#[derive(Clone, Debug)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Vec<Ident>,
    pub build: String,
}

impl Version {
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch,
            pre: Vec::new(),
            build: String::new(),
        }
    }

    /// `X.Y.Z-0`: the smallest version with this core, below all its pre-releases.
    fn floor(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            pre: vec![Ident::Number(0)],
            ..Self::new(major, minor, patch)
        }
    }

    /// Parses `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, tolerating a leading `v` or `=` as npm does.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let err = || ParseError(format!("`{text}` is not a semantic version"));
        let t = text.trim();
        let t = t.strip_prefix('=').unwrap_or(t).trim_start();
        let t = t.strip_prefix('v').unwrap_or(t);
        let (t, build) = match t.split_once('+') {
            Some((a, b)) => (a, b),
            None => (t, ""),
        };
        if !build.is_empty() && !valid_idents(build) {
            return Err(err());
        }
        let (core, pre) = match t.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let nums: Vec<&str> = core.split('.').collect();
        let [ma, mi, pa] = nums.as_slice() else {
            return Err(err());
        };
        let num = |s: &str| -> Result<u64, ParseError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            s.parse().map_err(|_| err())
        };
        let mut v = Version::new(num(ma)?, num(mi)?, num(pa)?);
        v.build = build.to_owned();
        if let Some(pre) = pre {
            if !valid_idents(pre) {
                return Err(err());
            }
            v.pre = pre
                .split('.')
                .map(|id| match id.parse::<u64>() {
                    Ok(n) if id.bytes().all(|b| b.is_ascii_digit()) => Ident::Number(n),
                    _ => Ident::Text(id.to_owned()),
                })
                .collect();
        }
        Ok(v)
    }

    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }
}

fn valid_idents(s: &str) -> bool {
    s.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A pre-release has lower precedence than the release.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                // Identifier by identifier; a longer list wins when one is a prefix.
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            let ids: Vec<String> = self
                .pre
                .iter()
                .map(|i| match i {
                    Ident::Number(n) => n.to_string(),
                    Ident::Text(t) => t.clone(),
                })
                .collect();
            write!(f, "-{}", ids.join("."))?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

/// A partial version as npm ranges write it: `1`, `1.2`, `1.2.x`, `*`.
#[derive(Clone, Debug)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Vec<Ident>,
}

impl Partial {
    fn parse(text: &str) -> Result<Self, ParseError> {
        let err = || ParseError(format!("`{text}` is not a version in an npm range"));
        let t = text.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        if t.is_empty() {
            return Ok(Partial {
                major: None,
                minor: None,
                patch: None,
                pre: Vec::new(),
            });
        }
        let t = t.split_once('+').map_or(t, |(a, _)| a);
        let (core, pre) = t.split_once('-').map_or((t, None), |(a, b)| (a, Some(b)));
        let mut parts = core.split('.');
        let mut next = || -> Result<Option<u64>, ParseError> {
            match parts.next() {
                None | Some("x" | "X" | "*") => Ok(None),
                Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                    s.parse().map(Some).map_err(|_| err())
                }
                Some(_) => Err(err()),
            }
        };
        let major = next()?;
        let minor = next()?;
        let patch = next()?;
        if parts.next().is_some() {
            return Err(err());
        }
        let mut p = Partial {
            major,
            minor: major.and(minor),
            patch: major.and(minor).and(patch),
            pre: Vec::new(),
        };
        if let Some(pre) = pre {
            if p.patch.is_none() {
                return Err(err());
            }
            p.pre = Version::parse(&format!("0.0.0-{pre}"))
                .map_err(|_| err())?
                .pre;
        }
        Ok(p)
    }

    fn full(&self) -> Option<Version> {
        Some(Version {
            pre: self.pre.clone(),
            ..Version::new(self.major?, self.minor?, self.patch?)
        })
    }

    /// The lowest version the partial denotes (missing parts are zero).
    fn low(&self) -> Version {
        self.full().unwrap_or_else(|| {
            Version::new(
                self.major.unwrap_or(0),
                self.minor.unwrap_or(0),
                self.patch.unwrap_or(0),
            )
        })
    }

    /// The floor of the first version above everything the partial denotes (`1.2` → `1.3.0-0`);
    /// `None` for `*` or a full version.
    fn next_floor(&self) -> Option<Version> {
        match (self.major, self.minor, self.patch) {
            (Some(ma), None, _) => Some(Version::floor(ma + 1, 0, 0)),
            (Some(ma), Some(mi), None) => Some(Version::floor(ma, mi + 1, 0)),
            _ => None,
        }
    }
}

/// An npm range: a union (`||`) of intersections of comparators.
#[derive(Clone, Debug)]
pub struct Range {
    pub alternatives: Vec<Interval<Version>>,
}

impl Range {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let alternatives = text
            .split("||")
            .map(parse_conjunction)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { alternatives })
    }

    /// The exact version, when the range is one full version (`1.2.3`, `=1.2.3`, `v1.2.3`).
    pub fn pinned(text: &str) -> Option<Version> {
        let t = text.trim();
        if t.contains(char::is_whitespace) || t.contains("||") {
            return None;
        }
        Version::parse(t).ok()
    }

    pub fn contains(&self, v: &Version) -> bool {
        self.alternatives.iter().any(|i| i.contains(v))
    }
}

fn parse_conjunction(text: &str) -> Result<Interval<Version>, ParseError> {
    let text = text.trim();
    // Hyphen range `A - B`.
    if let Some((a, b)) = text.split_once(" - ") {
        let a = Partial::parse(a)?;
        let b = Partial::parse(b)?;
        let lo = Bound::Included(a.low());
        let hi = match b.major {
            None => Bound::Unbounded,
            Some(_) => match b.next_floor() {
                Some(f) => Bound::Excluded(f),
                None => Bound::Included(b.low()),
            },
        };
        return Ok(Interval::new(lo, hi));
    }
    // Glue operators to their versions: `>= 1.2` is `>=1.2`.
    let mut tokens: Vec<String> = Vec::new();
    let mut pending = String::new();
    for tok in text.split_whitespace() {
        if tok
            .chars()
            .all(|c| matches!(c, '<' | '>' | '=' | '~' | '^'))
        {
            pending.push_str(tok);
        } else {
            tokens.push(format!("{pending}{tok}"));
            pending.clear();
        }
    }
    if !pending.is_empty() {
        return Err(ParseError(format!("`{text}` ends with an operator")));
    }
    let mut acc = Interval::all();
    for tok in tokens {
        acc = acc.intersect(&comparator(&tok)?);
    }
    Ok(acc)
}

fn comparator(tok: &str) -> Result<Interval<Version>, ParseError> {
    let ops = [">=", "<=", ">", "<", "=", "~>", "~", "^"];
    let (op, rest) = ops
        .iter()
        .find_map(|p| tok.strip_prefix(p).map(|r| (*p, r)))
        .unwrap_or(("", tok));
    let p = Partial::parse(rest)?;
    let inc = Bound::Included;
    let exc = Bound::Excluded;
    let any = Interval::all();
    Ok(match op {
        "" | "=" => match p.major {
            None => any,
            Some(_) => match p.next_floor() {
                Some(f) => Interval::new(inc(p.low()), exc(f)),
                None => Interval::point(p.low()),
            },
        },
        ">=" => Interval::new(inc(p.low()), Bound::Unbounded),
        ">" => match p.major {
            None => Interval::new(exc(Version::new(u64::MAX, 0, 0)), Bound::Unbounded),
            Some(_) => match p.next_floor() {
                Some(f) => Interval::new(inc(f), Bound::Unbounded),
                None => Interval::new(exc(p.low()), Bound::Unbounded),
            },
        },
        "<" => match p.major {
            None => Interval::new(Bound::Unbounded, exc(Version::floor(0, 0, 0))),
            Some(_) => {
                let l = p.low();
                // `<1.2.3` also admits 1.2.3-rc; npm hides pre-releases by a separate rule,
                // which we do not apply (an explicit pre-release may be chosen).
                let hi = if p.full().is_some() {
                    l
                } else {
                    Version::floor(l.major, l.minor, l.patch)
                };
                Interval::new(Bound::Unbounded, exc(hi))
            }
        },
        "<=" => match p.next_floor() {
            Some(f) => Interval::new(Bound::Unbounded, exc(f)),
            None if p.major.is_none() => any,
            None => Interval::new(Bound::Unbounded, inc(p.low())),
        },
        "~" | "~>" => {
            let l = p.low();
            let hi = match (p.major, p.minor) {
                (None, _) => return Ok(any),
                (Some(ma), None) => Version::floor(ma + 1, 0, 0),
                (Some(ma), Some(mi)) => Version::floor(ma, mi + 1, 0),
            };
            Interval::new(inc(l), exc(hi))
        }
        "^" => {
            let l = p.low();
            let hi = match (p.major, p.minor, p.patch) {
                (None, _, _) => return Ok(any),
                (Some(0), Some(0), Some(pa)) => Version::floor(0, 0, pa + 1),
                (Some(0), Some(mi), _) => Version::floor(0, mi + 1, 0),
                (Some(ma), _, _) => Version::floor(ma + 1, 0, 0),
            };
            Interval::new(inc(l), exc(hi))
        }
        _ => return Err(ParseError(format!("`{tok}` has an unknown operator"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("test version parses")
    }

    fn r(s: &str) -> Range {
        Range::parse(s).expect("test range parses")
    }

    #[test]
    fn precedence_follows_semver_item_11() {
        let sorted = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1-0",
            "1.0.1",
            "1.10.0",
            "2.0.0",
        ];
        for w in sorted.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.0.0+build.1"), v("1.0.0+other"));
        assert!(Version::parse("1.0").is_err());
        assert!(Version::parse("1.0.0-").is_err());
        assert!(Version::parse("1.0.0-a..b").is_err());
        assert!(Version::parse("01.x.0").is_err());
    }

    #[test]
    fn npm_ranges_desugar_like_node_semver() {
        assert!(r("^1.2.3").contains(&v("1.9.9")));
        assert!(!r("^1.2.3").contains(&v("2.0.0")));
        assert!(!r("^1.2.3").contains(&v("2.0.0-rc.1")));
        assert!(!r("^0.2.3").contains(&v("0.3.0")));
        assert!(!r("^0.0.3").contains(&v("0.0.4")));
        assert!(r("~1.2.3").contains(&v("1.2.9")));
        assert!(!r("~1.2.3").contains(&v("1.3.0")));
        assert!(r("1.2.x").contains(&v("1.2.7")));
        assert!(!r("1.2.x").contains(&v("1.3.0")));
        assert!(r("*").contains(&v("0.0.1")));
        assert!(r("").contains(&v("9.0.0")));
        assert!(r("1.2.3 - 2.3").contains(&v("2.3.9")));
        assert!(!r("1.2.3 - 2.3").contains(&v("2.4.0")));
        assert!(r(">= 1.0.0 < 1.5.0").contains(&v("1.4.0")));
        assert!(!r(">=1.0.0 <1.5.0").contains(&v("1.5.0")));
        assert!(r("<1.0.0 || >=3.0.0").contains(&v("3.1.0")));
        assert!(!r("<1.0.0 || >=3.0.0").contains(&v("2.0.0")));
        assert!(!r(">1.2").contains(&v("1.2.9")));
        assert!(r("<=1.2").contains(&v("1.2.9")));
        assert_eq!(Range::pinned("v4.17.21"), Some(v("4.17.21")));
        assert_eq!(Range::pinned("^4.17.21"), None);
        assert!(Range::parse("latest").is_err());
    }
}
