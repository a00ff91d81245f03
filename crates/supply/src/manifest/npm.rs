//! `package.json`: `dependencies`, `devDependencies`, `optionalDependencies` and
//! `peerDependencies` (npm 7+ installs peers), and the lifecycle scripts npm runs when it
//! installs the folder itself.

use std::path::Path;

use serde_json::Value;
use skillcell_types::finding::Severity;

use super::{Collector, line_col};
use crate::error::SupplyError;
use crate::report::Ecosystem;
use crate::rules;
use crate::semver::Range;

const SECTIONS: &[&str] = &[
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
];

/// Scripts `npm install` runs in the package's own folder.
const INSTALL_SCRIPTS: &[&str] = &[
    "preinstall",
    "install",
    "postinstall",
    "preprepare",
    "prepare",
    "postprepare",
];

/// What a dependency spec points at.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SpecKind {
    /// A version range (or a full version) from the registry.
    Range,
    /// A dist-tag such as `latest`: whatever the registry says today.
    Tag,
    /// An `npm:name@range` alias: the real package name and its range.
    Alias(String, String),
    /// A URL, git repository, GitHub shorthand or local path.
    Direct(&'static str),
}

pub(crate) fn classify(spec: &str) -> SpecKind {
    let s = spec.trim();
    let lower = s.to_ascii_lowercase();
    if let Some(rest) = s.strip_prefix("npm:") {
        // `npm:@scope/name@range` or `npm:name@range`.
        let at = rest
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '@')
            .map(|(i, _)| i);
        return match at {
            Some(i) => SpecKind::Alias(rest[..i].to_owned(), rest[i + 1..].to_owned()),
            None => SpecKind::Alias(rest.to_owned(), String::new()),
        };
    }
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return SpecKind::Direct("a URL");
    }
    if [
        "git+",
        "git://",
        "git@",
        "github:",
        "gitlab:",
        "bitbucket:",
        "gist:",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
    {
        return SpecKind::Direct("a git repository");
    }
    if ["file:", "link:", "portal:", "workspace:"]
        .iter()
        .any(|p| lower.starts_with(p))
        || s.starts_with(['.', '/', '~'])
    {
        return SpecKind::Direct("a local path");
    }
    if s.contains('/') && !s.contains(char::is_whitespace) {
        // `user/repo` and `user/repo#ref` are GitHub shorthands.
        return SpecKind::Direct("a GitHub repository");
    }
    match Range::parse(s) {
        Ok(_) => SpecKind::Range,
        Err(_) => SpecKind::Tag,
    }
}

/// Byte offset of the `"key":` that follows `from`, if any.
fn find_key(text: &str, from: usize, key: &str) -> Option<usize> {
    let needle = format!("\"{key}\"");
    let mut start = from;
    while let Some(i) = text.get(start..)?.find(&needle) {
        let at = start + i;
        let after = text[at + needle.len()..].trim_start();
        if after.starts_with(':') {
            return Some(at);
        }
        start = at + needle.len();
    }
    None
}

pub(super) fn read(c: &mut Collector<'_>, abs: &Path, rel: &str) -> Result<(), SupplyError> {
    let Some(text) = c.read_text(abs, rel)? else {
        return Ok(());
    };
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            c.finding(
                rules::UNPARSABLE,
                Severity::High,
                rel,
                e.line() as u32,
                e.column() as u32,
                format!("package.json is not valid JSON: {e}"),
                "fix the JSON",
            );
            return Ok(());
        }
    };
    let here = |offset: Option<usize>| offset.map_or((1, 0), |o| line_col(&text, o));
    for section in SECTIONS {
        let Some(deps) = doc.get(section).and_then(Value::as_object) else {
            continue;
        };
        let section_at = find_key(&text, 0, section);
        for (name, spec) in deps {
            let (line, col) = here(find_key(&text, section_at.unwrap_or(0), name));
            let Some(spec) = spec.as_str() else {
                c.finding(
                    rules::UNPARSABLE,
                    Severity::High,
                    rel,
                    line,
                    col,
                    format!("{section}.{name} is not a string"),
                    "write the dependency as \"name\": \"version range\"",
                );
                continue;
            };
            dependency(c, name, spec, rel, line, col);
        }
    }
    if let Some(scripts) = doc.get("scripts").and_then(Value::as_object) {
        let scripts_at = find_key(&text, 0, "scripts");
        for script in INSTALL_SCRIPTS {
            if let Some(cmd) = scripts.get(*script) {
                let (line, col) = here(find_key(&text, scripts_at.unwrap_or(0), script));
                let cmd = cmd.as_str().unwrap_or("");
                c.finding(
                    rules::INSTALL_SCRIPT,
                    install_severity(c),
                    rel,
                    line,
                    col,
                    format!("`{script}` runs `{cmd}` when npm installs the folder"),
                    "remove the script; ship built files instead of building at install time",
                );
            }
        }
    }
    // npm runs `node-gyp rebuild` for a package with a binding.gyp and no install script.
    if abs.with_file_name("binding.gyp").is_file() {
        c.finding(
            rules::INSTALL_SCRIPT,
            install_severity(c),
            rel,
            0,
            0,
            "binding.gyp beside package.json makes npm run `node-gyp rebuild` at install time"
                .to_owned(),
            "remove binding.gyp; ship prebuilt files instead",
        );
    }
    Ok(())
}

fn install_severity(c: &Collector<'_>) -> Severity {
    if c.policy.allow_install_scripts {
        Severity::Info
    } else {
        Severity::High
    }
}

fn dependency(c: &mut Collector<'_>, name: &str, spec: &str, rel: &str, line: u32, col: u32) {
    let allow_direct = c.policy.allow_direct_references;
    match classify(spec) {
        SpecKind::Direct(what) => {
            c.finding(
                rules::DIRECT_URL,
                Collector::gated(allow_direct),
                rel,
                line,
                col,
                format!("`{name}` comes from {what} (`{spec}`) instead of the registry"),
                "depend on a released version from the npm registry",
            );
            c.dependency(
                Ecosystem::Npm,
                name.to_owned(),
                String::new(),
                None,
                Some(spec.to_owned()),
                rel,
                line,
                col,
            );
        }
        SpecKind::Alias(real, range) => {
            let pinned = Range::pinned(&range).map(|v| v.to_string());
            c.dependency(Ecosystem::Npm, real, range, pinned, None, rel, line, col);
        }
        SpecKind::Range => {
            let pinned = Range::pinned(spec).map(|v| v.to_string());
            c.dependency(
                Ecosystem::Npm,
                name.to_owned(),
                spec.to_owned(),
                pinned,
                None,
                rel,
                line,
                col,
            );
        }
        SpecKind::Tag => {
            c.dependency(
                Ecosystem::Npm,
                name.to_owned(),
                spec.to_owned(),
                None,
                None,
                rel,
                line,
                col,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_classified_like_npm_does() {
        assert_eq!(classify("^4.17.21"), SpecKind::Range);
        assert_eq!(classify("latest"), SpecKind::Tag);
        assert_eq!(
            classify("expressjs/express"),
            SpecKind::Direct("a GitHub repository")
        );
        assert_eq!(
            classify("github:a/b#v1"),
            SpecKind::Direct("a git repository")
        );
        assert_eq!(
            classify("git+ssh://git@github.com/a/b.git"),
            SpecKind::Direct("a git repository")
        );
        assert_eq!(classify("file:../x"), SpecKind::Direct("a local path"));
        assert_eq!(classify("link:./x"), SpecKind::Direct("a local path"));
        assert_eq!(classify("https://x/y.tgz"), SpecKind::Direct("a URL"));
        assert_eq!(
            classify("npm:@scope/real@^1.0.0"),
            SpecKind::Alias("@scope/real".into(), "^1.0.0".into())
        );
    }
}
