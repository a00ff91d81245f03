//! The parsers that face untrusted text return errors, never panic, on odd input (a cheap
//! stand-in for fuzzing), and agree on a few PEP 440 / SemVer orderings seen in advisories.

use skillcell_supply::pep440::{SpecifierSet, Version as PyVersion};
use skillcell_supply::pep508::Requirement;
use skillcell_supply::semver::{Range, Version as SemVersion};

const ODD: &[&str] = &[
    "",
    " ",
    "=",
    "==",
    "===",
    "~=",
    "!=",
    ">",
    "<",
    "^",
    "~",
    "||",
    " - ",
    "-",
    "--",
    ".",
    "..",
    "1.",
    ".1",
    "1..2",
    "1.2.3.",
    "v",
    "vv1",
    "1!",
    "!1",
    "1!2!3",
    "1+",
    "1+.",
    "1++a",
    "1.0a",
    "1.0.post",
    "1.0-",
    "1.0_",
    "1.0.dev.dev",
    "é",
    "1.é",
    "日本",
    "x@",
    "@",
    "@@",
    "[",
    "]",
    "[]",
    "a[",
    "a]",
    "a[b",
    "a (",
    "a ()",
    "a ;",
    "a @ ",
    ";",
    "(",
    ")",
    "*",
    "x.x.x",
    "1.2.3-",
    "1.2.3+",
    "1.2.3-+",
    "18446744073709551616",
    "1.18446744073709551616",
    "\u{0}",
    "\\",
    "a\tb",
    "a\nb",
    "1.0 - ",
    " - 1.0",
    "^",
    "~>",
    ">=<=",
    "1 || || 2",
    "npm:",
    "npm:@",
];

#[test]
fn odd_input_is_an_error_not_a_panic() {
    for a in ODD {
        for b in ODD {
            let s = format!("{a}{b}");
            let _ = PyVersion::parse(&s);
            let _ = SpecifierSet::parse(&s);
            let _ = Requirement::parse(&s);
            let _ = SemVersion::parse(&s);
            let _ = Range::parse(&s);
            let _ = Range::pinned(&s);
            let _ = Requirement::parse(&format!("name{s}"));
            let _ = SpecifierSet::parse(&format!(">={s}"));
        }
    }
}

#[test]
fn pep440_orders_what_pypi_advisories_name() {
    let v = |s: &str| PyVersion::parse(s).expect("version");
    assert!(v("2.31.0") > v("2.31.0rc1"));
    assert!(v("2.31.0") < v("2.31.0.post1"));
    assert!(v("2.31.0.dev1") < v("2.31.0a1"));
    assert!(v("1!0.1") > v("99.0"));
    assert!(v("1.0+ubuntu1") > v("1.0"));
    assert!(v("1.0+ubuntu1") < v("1.0.post1"));
    assert!(v("0.10") > v("0.9.9"));
    assert_eq!(v("01.02"), v("1.2"));
}

#[test]
fn semver_orders_what_npm_advisories_name() {
    let v = |s: &str| SemVersion::parse(s).expect("version");
    assert!(v("1.0.0-rc.1") < v("1.0.0"));
    assert!(v("1.0.0-2") < v("1.0.0-10"));
    assert!(v("1.0.0-alpha.10") > v("1.0.0-alpha.9"));
    assert!(v("1.0.0-alpha") < v("1.0.0-alpha.0"));
    assert!(v("1.0.0-9") < v("1.0.0-a"));
    assert!(v("0.10.0") > v("0.9.0"));
}
