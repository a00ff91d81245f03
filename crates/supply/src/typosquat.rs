//! Typosquat detection: a dependency that is not itself a popular package but whose name is
//! one small edit, or one look-alike swap, away from a popular one.
//!
//! Three tests, in order, against the embedded per-ecosystem lists:
//! 1. *skeleton*: separators removed and look-alikes folded (`rn`→`m`, `vv`→`w`, `0`→`o`,
//!    `1`→`l`, `5`→`s`, Cyrillic letters that look Latin) give the same string;
//! 2. *affix*: adding or removing a `python-`/`py` prefix or a `-js` suffix gives the name;
//! 3. *distance*: the optimal-string-alignment Damerau-Levenshtein distance is 1 (names of at
//!    least 4 characters) or 2 (names of at least 8).
//!
//! The lists are finite; a name close to a legitimate but unlisted package is a false
//! positive the operator can silence with `AuditPolicy::known_names`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use crate::pep440::normalize_name;
use crate::report::Ecosystem;

const PYPI: &str = include_str!("../data/popular-pypi.txt");
const NPM: &str = include_str!("../data/popular-npm.txt");

fn list(ecosystem: Ecosystem) -> &'static BTreeSet<String> {
    static PY: OnceLock<BTreeSet<String>> = OnceLock::new();
    static JS: OnceLock<BTreeSet<String>> = OnceLock::new();
    let parse = |text: &str| {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| normalize(ecosystem, l))
            .collect()
    };
    match ecosystem {
        Ecosystem::PyPI => PY.get_or_init(|| parse(PYPI)),
        Ecosystem::Npm => JS.get_or_init(|| parse(NPM)),
    }
}

/// The popular names of an ecosystem, normalized.
#[cfg(test)]
pub fn popular(ecosystem: Ecosystem) -> impl Iterator<Item = &'static str> {
    list(ecosystem).iter().map(String::as_str)
}

/// How names compare within an ecosystem: PEP 503 for PyPI, lowercase for npm.
pub fn normalize(ecosystem: Ecosystem, name: &str) -> String {
    match ecosystem {
        Ecosystem::PyPI => normalize_name(name),
        Ecosystem::Npm => name.to_lowercase(),
    }
}

/// A likely typosquat: the popular name it imitates and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspect {
    pub target: String,
    pub reason: String,
}

fn skeleton(name: &str) -> String {
    let folded: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            '5' => 's',
            'а' => 'a',
            'е' => 'e',
            'о' => 'o',
            'р' => 'p',
            'с' => 'c',
            'х' => 'x',
            'у' => 'y',
            'ԁ' => 'd',
            c => c,
        })
        .collect();
    folded.replace("rn", "m").replace("vv", "w")
}

/// The name with a conventional prefix or suffix removed, if it has one.
fn strip_affixes(name: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for p in ["python-", "python", "py-", "py"] {
        if let Some(rest) = name.strip_prefix(p)
            && rest.len() >= 3
        {
            out.push(rest);
        }
    }
    for s in ["-js", ".js", "js"] {
        if let Some(rest) = name.strip_suffix(s)
            && rest.len() >= 3
        {
            out.push(rest);
        }
    }
    out
}

/// Optimal string alignment distance (Damerau-Levenshtein with adjacent transpositions).
pub fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

fn max_distance(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Checks one dependency name; `None` when it is popular itself or near nothing popular.
pub fn check(ecosystem: Ecosystem, name: &str, known: &[String]) -> Option<Suspect> {
    let norm = normalize(ecosystem, name);
    let popular = list(ecosystem);
    if popular.contains(&norm) || known.iter().any(|k| normalize(ecosystem, k) == norm) {
        return None;
    }
    let sk = skeleton(&norm);
    let stripped = strip_affixes(&norm);
    let mut best: Option<(usize, &str, &str)> = None;
    for p in popular {
        let (rank, reason) = if skeleton(p) == sk {
            (0, "look-alike characters or separators")
        } else if stripped.contains(&p.as_str()) || strip_affixes(p).contains(&norm.as_str()) {
            (1, "an added or removed prefix or suffix")
        } else {
            let limit = max_distance(norm.chars().count().min(p.chars().count()));
            let d = osa_distance(&norm, p);
            if d == 0 || d > limit {
                continue;
            }
            (1 + d, "a one- or two-character edit")
        };
        if best.is_none_or(|(r, _, _)| rank < r) {
            best = Some((rank, p, reason));
        }
    }
    best.map(|(_, target, reason)| Suspect {
        target: target.to_owned(),
        reason: reason.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_transpositions_as_one() {
        assert_eq!(osa_distance("requests", "reqeusts"), 1);
        assert_eq!(osa_distance("lodash", "lodahs"), 1);
        assert_eq!(osa_distance("abc", "abc"), 0);
        assert_eq!(osa_distance("kitten", "sitting"), 3);
        assert_eq!(osa_distance("", "ab"), 2);
    }

    #[test]
    fn lists_are_large_and_normalized() {
        assert!(popular(Ecosystem::PyPI).count() >= 500);
        assert!(popular(Ecosystem::Npm).count() >= 500);
        assert!(popular(Ecosystem::PyPI).all(|n| n == normalize_name(n)));
    }
}
