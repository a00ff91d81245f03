//! PEP 440 versions and specifiers, and PEP 503 name normalization: what PyPI orders by.
//!
//! Parsing accepts the normalizations PEP 440 lists (a leading `v`, `-`/`_`/`.` separators,
//! `alpha`/`beta`/`c`/`pre`/`preview`/`rev`/`r` spellings, an implicit post release `1.0-1`,
//! case); ordering follows the specification's sort key (epoch, release without trailing zeros,
//! pre, post, dev, local).

use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;

use crate::interval::Interval;

/// The PEP 503 normalized form of a project name: lowercase, runs of `-`, `_`, `.` become `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

/// Pre-release phase, in PEP 440 order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PreKind {
    Alpha,
    Beta,
    Rc,
}

/// One segment of a local version label: numbers sort after strings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LocalSegment {
    Text(String),
    Number(u64),
}

/// A parsed PEP 440 version.
#[derive(Clone, Debug)]
pub struct Version {
    pub epoch: u64,
    pub release: Vec<u64>,
    pub pre: Option<(PreKind, u64)>,
    pub post: Option<u64>,
    pub dev: Option<u64>,
    pub local: Vec<LocalSegment>,
}

/// Why a version or specifier did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat_sep(&mut self) -> bool {
        if matches!(self.peek(), Some(b'.' | b'-' | b'_')) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn number(&mut self) -> Option<u64> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        if start == self.i {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    /// Eats the longest of `words` found here (case already folded).
    fn word(&mut self, words: &[&str]) -> Option<usize> {
        let rest = &self.s[self.i..];
        let mut best: Option<(usize, usize)> = None;
        for (k, w) in words.iter().enumerate() {
            if rest.starts_with(w.as_bytes()) && best.is_none_or(|(_, len)| w.len() > len) {
                best = Some((k, w.len()));
            }
        }
        let (k, len) = best?;
        self.i += len;
        Some(k)
    }
}

impl Version {
    /// Parses a version, accepting PEP 440's permitted variant spellings.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let err = || ParseError(format!("`{text}` is not a PEP 440 version"));
        let lower = text.trim().to_ascii_lowercase();
        let mut c = Cursor {
            s: lower.as_bytes(),
            i: 0,
        };
        if c.peek() == Some(b'v') {
            c.i += 1;
        }
        let mut epoch = 0;
        let mut release = vec![c.number().ok_or_else(err)?];
        if c.peek() == Some(b'!') {
            c.i += 1;
            epoch = release[0];
            release = vec![c.number().ok_or_else(err)?];
        }
        while c.peek() == Some(b'.') && matches!(c.s.get(c.i + 1), Some(b'0'..=b'9')) {
            c.i += 1;
            release.push(c.number().ok_or_else(err)?);
        }
        let mut v = Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        };
        // Pre-release.
        let save = c.i;
        c.eat_sep();
        const PRE: [&str; 8] = ["a", "alpha", "b", "beta", "c", "rc", "pre", "preview"];
        if let Some(k) = c.word(&PRE) {
            let kind = match k {
                0 | 1 => PreKind::Alpha,
                2 | 3 => PreKind::Beta,
                _ => PreKind::Rc,
            };
            let save_n = c.i;
            c.eat_sep();
            let n = c.number().unwrap_or_else(|| {
                c.i = save_n;
                0
            });
            v.pre = Some((kind, n));
        } else {
            c.i = save;
        }
        // Post-release: `.post1`, `-1`, `rev`, `r`.
        let save = c.i;
        if c.peek() == Some(b'-') && matches!(c.s.get(c.i + 1), Some(b'0'..=b'9')) {
            c.i += 1;
            v.post = c.number();
        } else {
            c.eat_sep();
            if c.word(&["post", "rev", "r"]).is_some() {
                let save_n = c.i;
                c.eat_sep();
                let n = c.number().unwrap_or_else(|| {
                    c.i = save_n;
                    0
                });
                v.post = Some(n);
            } else {
                c.i = save;
            }
        }
        // Dev release.
        let save = c.i;
        c.eat_sep();
        if c.word(&["dev"]).is_some() {
            let save_n = c.i;
            c.eat_sep();
            let n = c.number().unwrap_or_else(|| {
                c.i = save_n;
                0
            });
            v.dev = Some(n);
        } else {
            c.i = save;
        }
        // Local label.
        if c.peek() == Some(b'+') {
            c.i += 1;
            let rest = std::str::from_utf8(&c.s[c.i..]).map_err(|_| err())?;
            for seg in rest.split(['.', '-', '_']) {
                if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(err());
                }
                v.local.push(match seg.parse::<u64>() {
                    Ok(n) if seg.bytes().all(|b| b.is_ascii_digit()) => LocalSegment::Number(n),
                    _ => LocalSegment::Text(seg.to_owned()),
                });
            }
            c.i = c.s.len();
        }
        if c.i != c.s.len() {
            return Err(err());
        }
        Ok(v)
    }

    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// This version without its local label.
    pub fn public(&self) -> Version {
        Version {
            local: Vec::new(),
            ..self.clone()
        }
    }

    /// The smallest version whose release starts with `release` in `epoch` (`X.Y.dev0`).
    fn floor_of(epoch: u64, release: Vec<u64>) -> Version {
        Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev: Some(0),
            local: Vec::new(),
        }
    }

    fn release_trimmed(&self) -> &[u64] {
        let mut end = self.release.len();
        while end > 1 && self.release[end - 1] == 0 {
            end -= 1;
        }
        &self.release[..end]
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // Pre: dev-only releases sort before every pre-release of the same release; a final
        // release (no pre) sorts after them. Encoded as (rank, kind, n).
        fn pre_key(v: &Version) -> (u8, Option<PreKind>, u64) {
            match (v.pre, v.post, v.dev) {
                (None, None, Some(_)) => (0, None, 0),
                (Some((k, n)), _, _) => (1, Some(k), n),
                (None, _, _) => (2, None, 0),
            }
        }
        fn post_key(v: &Version) -> (u8, u64) {
            v.post.map_or((0, 0), |n| (1, n))
        }
        fn dev_key(v: &Version) -> (u8, u64) {
            v.dev.map_or((1, 0), |n| (0, n))
        }
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| cmp_release(self.release_trimmed(), other.release_trimmed()))
            .then_with(|| pre_key(self).cmp(&pre_key(other)))
            .then_with(|| post_key(self).cmp(&post_key(other)))
            .then_with(|| dev_key(self).cmp(&dev_key(other)))
            .then_with(|| self.local.cmp(&other.local))
    }
}

fn cmp_release(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
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
        if self.epoch != 0 {
            write!(f, "{}!", self.epoch)?;
        }
        let rel: Vec<String> = self.release.iter().map(u64::to_string).collect();
        f.write_str(&rel.join("."))?;
        if let Some((k, n)) = self.pre {
            let k = match k {
                PreKind::Alpha => "a",
                PreKind::Beta => "b",
                PreKind::Rc => "rc",
            };
            write!(f, "{k}{n}")?;
        }
        if let Some(n) = self.post {
            write!(f, ".post{n}")?;
        }
        if let Some(n) = self.dev {
            write!(f, ".dev{n}")?;
        }
        if !self.local.is_empty() {
            let segs: Vec<String> = self
                .local
                .iter()
                .map(|s| match s {
                    LocalSegment::Text(t) => t.clone(),
                    LocalSegment::Number(n) => n.to_string(),
                })
                .collect();
            write!(f, "+{}", segs.join("."))?;
        }
        Ok(())
    }
}

/// A comparison operator of a version specifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `~=`
    Compatible,
    /// `==`
    Equal,
    /// `==X.*`
    EqualPrefix,
    /// `!=`
    NotEqual,
    /// `!=X.*`
    NotEqualPrefix,
    /// `<=`
    LessEq,
    /// `>=`
    GreaterEq,
    /// `<`
    Less,
    /// `>`
    Greater,
    /// `===` (string equality)
    Arbitrary,
}

/// One clause of a specifier set, such as `>=1.0` or `==2.*`.
#[derive(Clone, Debug)]
pub struct Specifier {
    pub op: Op,
    /// The version; for `===` a version only when the text parses as one.
    pub version: Option<Version>,
    /// The version text as written (what `===` compares).
    pub text: String,
}

impl Specifier {
    pub fn parse(clause: &str) -> Result<Self, ParseError> {
        let clause = clause.trim();
        let ops: [(&str, Op); 8] = [
            ("===", Op::Arbitrary),
            ("~=", Op::Compatible),
            ("==", Op::Equal),
            ("!=", Op::NotEqual),
            ("<=", Op::LessEq),
            (">=", Op::GreaterEq),
            ("<", Op::Less),
            (">", Op::Greater),
        ];
        let (mut op, rest) = ops
            .iter()
            .find_map(|(p, op)| clause.strip_prefix(p).map(|r| (*op, r.trim())))
            .ok_or_else(|| ParseError(format!("`{clause}` has no comparison operator")))?;
        if rest.is_empty() {
            return Err(ParseError(format!("`{clause}` has no version")));
        }
        if op == Op::Arbitrary {
            return Ok(Specifier {
                op,
                version: Version::parse(rest).ok(),
                text: rest.to_owned(),
            });
        }
        let mut text = rest;
        if let Some(prefix) = rest.strip_suffix(".*") {
            op = match op {
                Op::Equal => Op::EqualPrefix,
                Op::NotEqual => Op::NotEqualPrefix,
                _ => {
                    return Err(ParseError(format!(
                        "`{clause}`: a `.*` suffix is only allowed with == and !="
                    )));
                }
            };
            text = prefix;
        }
        let version = Version::parse(text)?;
        if op == Op::Compatible && version.release.len() < 2 {
            return Err(ParseError(format!(
                "`{clause}`: ~= needs at least two release segments"
            )));
        }
        Ok(Specifier {
            op,
            version: Some(version),
            text: rest.to_owned(),
        })
    }

    /// Whether `v` satisfies this clause (pre-release exclusion is not applied: the audit asks
    /// what a resolver could pick, and `--pre` or a pre-release-only project makes them eligible).
    pub fn contains(&self, v: &Version) -> bool {
        let Some(s) = &self.version else {
            return false;
        };
        match self.op {
            Op::Arbitrary => v.to_string().eq_ignore_ascii_case(&self.text) || v == s,
            Op::Equal => {
                if s.local.is_empty() {
                    v.public() == *s
                } else {
                    v == s
                }
            }
            Op::NotEqual => !Specifier {
                op: Op::Equal,
                ..self.clone()
            }
            .contains(v),
            Op::EqualPrefix => prefix_match(s, v),
            Op::NotEqualPrefix => !prefix_match(s, v),
            Op::LessEq => v.public() <= *s,
            Op::GreaterEq => v >= s,
            Op::Less => self.interval().contains(v),
            Op::Greater => self.interval().contains(v),
            Op::Compatible => self.interval().contains(v),
        }
    }

    /// The versions this clause admits as one interval; `!=` clauses admit everything (the
    /// interval view over-approximates them, which errs towards reporting).
    pub fn interval(&self) -> Interval<Version> {
        let Some(s) = self.version.clone() else {
            return Interval::all();
        };
        match self.op {
            Op::Arbitrary | Op::Equal => {
                if s.local.is_empty() && self.op == Op::Equal {
                    // `==1.0` admits `1.0+anything`: up to but excluding the next version after
                    // all local labels, which is the first post/dev of 1.0; approximate with
                    // 1.0 ..= 1.0 and local labels compared in `contains`.
                    let hi = Version {
                        local: vec![LocalSegment::Number(u64::MAX)],
                        ..s.clone()
                    };
                    Interval::new(Bound::Included(s), Bound::Included(hi))
                } else {
                    Interval::new(Bound::Included(s.clone()), Bound::Included(s))
                }
            }
            Op::NotEqual | Op::NotEqualPrefix => Interval::all(),
            Op::EqualPrefix => {
                let lo = Version::floor_of(s.epoch, s.release.clone());
                let mut next = s.release.clone();
                if let Some(last) = next.last_mut() {
                    *last += 1;
                }
                let hi = Version::floor_of(s.epoch, next);
                Interval::new(Bound::Included(lo), Bound::Excluded(hi))
            }
            Op::LessEq => Interval::new(Bound::Unbounded, Bound::Included(s)),
            Op::GreaterEq => Interval::new(Bound::Included(s), Bound::Unbounded),
            Op::Less => {
                // `<V` excludes pre-releases of V unless V is itself one.
                let hi = if s.is_prerelease() {
                    s
                } else {
                    Version::floor_of(s.epoch, s.release.clone())
                };
                Interval::new(Bound::Unbounded, Bound::Excluded(hi))
            }
            Op::Greater => {
                // `>V` excludes post-releases and local versions of V unless V is a post-release.
                let lo = if s.post.is_some() {
                    s
                } else {
                    Version {
                        post: Some(u64::MAX),
                        dev: None,
                        local: vec![LocalSegment::Number(u64::MAX)],
                        ..s
                    }
                };
                Interval::new(Bound::Excluded(lo), Bound::Unbounded)
            }
            Op::Compatible => {
                let mut prefix = s.release.clone();
                prefix.pop();
                if let Some(last) = prefix.last_mut() {
                    *last += 1;
                }
                let hi = Version::floor_of(s.epoch, prefix);
                Interval::new(Bound::Included(s), Bound::Excluded(hi))
            }
        }
    }
}

fn prefix_match(prefix: &Version, v: &Version) -> bool {
    if prefix.epoch != v.epoch {
        return false;
    }
    // `==1.2.*` admits 1.2, 1.2.0, 1.2.5.post1, 1.2rc1; compare padded release prefixes.
    let n = prefix.release.len();
    let release_ok = (0..n).all(|i| prefix.release[i] == v.release.get(i).copied().unwrap_or(0));
    if !release_ok {
        return false;
    }
    // A prefix with a pre/post/dev part must match it too.
    (prefix.pre.is_none() || prefix.pre == v.pre)
        && (prefix.post.is_none() || prefix.post == v.post)
        && (prefix.dev.is_none() || prefix.dev == v.dev)
}

/// A comma-separated set of specifiers (`>=1.0,<2`); empty admits every version.
#[derive(Clone, Debug, Default)]
pub struct SpecifierSet {
    pub clauses: Vec<Specifier>,
}

impl SpecifierSet {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let clauses = text
            .split(',')
            .map(Specifier::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { clauses })
    }

    /// The exact version this set pins to, if it is a single `==V` (no wildcard) or `===V`.
    pub fn pinned(&self) -> Option<String> {
        match self.clauses.as_slice() {
            [one] if matches!(one.op, Op::Equal | Op::Arbitrary) => Some(one.text.clone()),
            _ => None,
        }
    }

    pub fn contains(&self, v: &Version) -> bool {
        self.clauses.iter().all(|c| c.contains(v))
    }

    /// The intersection of the clauses' intervals (an over-approximation when `!=` is present).
    pub fn interval(&self) -> Interval<Version> {
        self.clauses
            .iter()
            .fold(Interval::all(), |acc, c| acc.intersect(&c.interval()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("test version parses")
    }

    #[test]
    fn ordering_follows_the_pep_examples() {
        let sorted = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
            "1!0.1",
        ];
        for w in sorted.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn normalized_spellings_are_equal() {
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1.0alpha1"), v("1.0a1"));
        assert_eq!(v("1.0-c1"), v("1.0rc1"));
        assert_eq!(v("1.0-1"), v("1.0.post1"));
        assert_eq!(v("1.0.r"), v("1.0.post0"));
        assert_eq!(v("v2.0.DEV"), v("2.0.dev0"));
        assert_eq!(v("1.0_PREVIEW_2"), v("1.0rc2"));
        assert!(Version::parse("1.0.x").is_err());
        assert!(Version::parse("").is_err());
        assert!(Version::parse("1.0+").is_err());
    }

    #[test]
    fn specifiers_admit_what_the_pep_says() {
        let s = |t: &str| SpecifierSet::parse(t).expect("test specifier parses");
        assert!(s("~=2.2").contains(&v("2.9")));
        assert!(!s("~=2.2").contains(&v("3.0")));
        assert!(!s("~=1.4.5").contains(&v("1.5.0")));
        assert!(s("==1.1.*").contains(&v("1.1.3.post1")));
        assert!(!s("==1.1.*").contains(&v("1.10")));
        assert!(s("==1.0").contains(&v("1.0+local")));
        assert!(!s("==1.0+a").contains(&v("1.0+b")));
        assert!(!s("<2.0").contains(&v("2.0rc1")));
        assert!(s("<2.0rc2").contains(&v("2.0rc1")));
        assert!(!s(">1.7").contains(&v("1.7.post2")));
        assert!(s(">1.7").contains(&v("1.7.1")));
        assert!(s(">=1.0,!=1.5").contains(&v("1.6")));
        assert!(!s(">=1.0,!=1.5").contains(&v("1.5")));
        assert_eq!(s("==2.31.0").pinned().as_deref(), Some("2.31.0"));
        assert_eq!(s("==2.*").pinned(), None);
        assert!(SpecifierSet::parse("~=1").is_err());
        assert!(SpecifierSet::parse(">=1.*").is_err());
    }

    #[test]
    fn names_normalize_per_pep_503() {
        assert_eq!(normalize_name("Friendly-Bard"), "friendly-bard");
        assert_eq!(normalize_name("FRIENDLY__bard"), "friendly-bard");
        assert_eq!(normalize_name("friendly.-_bard"), "friendly-bard");
    }
}
