//! pip requirement files: one requirement or option per logical line, `\` continuations,
//! `#` comments, `-r` includes resolved inside the skill folder only. Every option that can
//! change where packages come from, or what pip may pick, is refused unless the policy accepts
//! it; `--hash` and `--require-hashes` only make an install stricter and are accepted.

use std::path::{Component, Path, PathBuf};

use skillcell_types::finding::Severity;

use super::Collector;
use crate::error::SupplyError;
use crate::pep508::Requirement;
use crate::report::Ecosystem;
use crate::rules;

/// Deepest chain of `-r` includes followed.
const MAX_INCLUDE_DEPTH: u32 = 16;

/// Reads one requirement file (`rel` relative to the skill folder), following `-r` includes.
pub(super) fn read(
    c: &mut Collector<'_>,
    abs: &Path,
    rel: &str,
    depth: u32,
) -> Result<(), SupplyError> {
    let canonical = abs.canonicalize().map_err(|source| SupplyError::Io {
        path: abs.to_owned(),
        source,
    })?;
    if !c.seen_requirements.insert(canonical) {
        return Ok(());
    }
    let Some(text) = c.read_text(abs, rel)? else {
        return Ok(());
    };
    for (line_no, line) in logical_lines(&text) {
        let content = strip_comment(&line);
        let trimmed = content.trim_start();
        if trimmed.trim().is_empty() {
            continue;
        }
        let col = (content.chars().count() - trimmed.chars().count()) as u32 + 1;
        if trimmed.starts_with('-') {
            option_line(c, trimmed.trim_end(), rel, line_no, col, depth)?;
        } else {
            requirement_line(c, trimmed.trim_end(), rel, line_no, col);
        }
    }
    Ok(())
}

/// Joins `\`-continued lines; yields (1-based number of the first physical line, text).
fn logical_lines(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut current: Option<(u32, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i as u32 + 1;
        let (start, mut acc) = current.take().unwrap_or((n, String::new()));
        match raw.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                current = Some((start, acc));
            }
            None => {
                acc.push_str(raw);
                out.push((start, acc));
            }
        }
    }
    if let Some(last) = current {
        out.push(last);
    }
    out
}

/// pip's comment rule: `#` at the start of a line or after whitespace starts a comment.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Splits `--name=value`, `--name value`, `-xvalue`, `-x value` into (name, value).
fn split_option(text: &str) -> (&str, &str) {
    if let Some(long) = text.strip_prefix("--") {
        let end = long
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(long.len());
        let name = &text[..end + 2];
        let rest = long[end..].trim_start();
        let value = rest.strip_prefix('=').unwrap_or(rest).trim();
        (name, value)
    } else {
        let split = text.char_indices().nth(2).map_or(text.len(), |(i, _)| i);
        let (name, rest) = text.split_at(split);
        (name, rest.trim_start_matches('=').trim())
    }
}

fn option_line(
    c: &mut Collector<'_>,
    text: &str,
    rel: &str,
    line: u32,
    col: u32,
    depth: u32,
) -> Result<(), SupplyError> {
    let (name, value) = split_option(text);
    let allow = c.policy.allow_pip_options;
    let allow_direct = c.policy.allow_direct_references;
    let (rule, what, hint, allowed) = match name {
        "-r" | "--requirement" => {
            return include(c, value, rel, line, col, depth);
        }
        "--require-hashes" => return Ok(()),
        "-i" | "--index-url" | "--extra-index-url" | "--no-index" => (
            rules::PIP_INDEX_OVERRIDE,
            "replaces or adds a package index",
            "remove the option: dependencies come from the default index (PyPI), or the operator allows pip options",
            allow,
        ),
        "--trusted-host" => (
            rules::PIP_TRUSTED_HOST,
            "turns off TLS verification for a host",
            "remove the option",
            allow,
        ),
        "-f" | "--find-links" => (
            rules::PIP_FIND_LINKS,
            "adds a place pip looks for archives",
            "remove the option and depend on released versions from the index",
            allow,
        ),
        "-e" | "--editable" => (
            rules::EDITABLE,
            "installs a project in editable mode, building it from a path or repository",
            "depend on a released version instead (name==version)",
            allow_direct,
        ),
        "--pre" => (
            rules::PIP_PRE,
            "lets pip pick pre-releases of every package",
            "remove the option; pin the one pre-release you need with == instead",
            allow,
        ),
        "-c" | "--constraint" => (
            rules::PIP_CONSTRAINT,
            "loads a constraints file",
            "put the version constraints in the requirement lines themselves",
            allow,
        ),
        _ => (
            rules::PIP_OPTION,
            "is a pip option; only --hash and --require-hashes are accepted",
            "remove the option, or the operator allows pip options",
            allow,
        ),
    };
    c.finding(
        rule,
        Collector::gated(allowed),
        rel,
        line,
        col,
        format!("`{}` {what}", text.trim()),
        hint,
    );
    Ok(())
}

/// Follows `-r FILE`: only a relative path that stays inside the skill folder, symlinks
/// included, is read.
fn include(
    c: &mut Collector<'_>,
    value: &str,
    rel: &str,
    line: u32,
    col: u32,
    depth: u32,
) -> Result<(), SupplyError> {
    let escape = |c: &mut Collector<'_>, why: &str| {
        c.finding(
            rules::INCLUDE_ESCAPE,
            Severity::Critical,
            rel,
            line,
            col,
            format!("`-r {value}` {why}"),
            "ship the included file inside the skill folder and name it by a relative path",
        );
    };
    if value.is_empty() {
        escape(c, "names no file");
        return Ok(());
    }
    if value.contains("://") {
        escape(c, "fetches a requirement file from the network");
        return Ok(());
    }
    let target = Path::new(value);
    if target.is_absolute() || value.starts_with('~') {
        escape(c, "names a file by an absolute path");
        return Ok(());
    }
    // Lexically: relative to the including file's folder, within the skill root.
    let rel_dir: PathBuf = Path::new(rel)
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    let mut parts: Vec<String> = rel_dir
        .components()
        .filter_map(|p| match p {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    for comp in target.components() {
        match comp {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    escape(c, "leaves the skill folder through `..`");
                    return Ok(());
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                escape(c, "names a file by an absolute path");
                return Ok(());
            }
        }
    }
    let inc_rel = parts.join("/");
    let inc_abs = c.root.join(&inc_rel);
    let Ok(canonical) = inc_abs.canonicalize() else {
        c.finding(
            rules::INCLUDE_MISSING,
            Severity::High,
            rel,
            line,
            col,
            format!("`-r {value}` names {inc_rel}, which is not in the skill folder"),
            "add the file to the skill folder or remove the line",
        );
        return Ok(());
    };
    let root = c.root.canonicalize().map_err(|source| SupplyError::Io {
        path: c.root.clone(),
        source,
    })?;
    if !canonical.starts_with(&root) || !canonical.is_file() {
        escape(
            c,
            "resolves (through a symlink) to something outside the skill folder",
        );
        return Ok(());
    }
    if depth >= MAX_INCLUDE_DEPTH {
        c.finding(
            rules::UNPARSABLE,
            Severity::High,
            rel,
            line,
            col,
            format!("`-r {value}`: includes nested deeper than {MAX_INCLUDE_DEPTH}"),
            "flatten the requirement files",
        );
        return Ok(());
    }
    read(c, &inc_abs, &inc_rel, depth + 1)
}

/// Whether a requirement line is a URL, VCS reference or path rather than a PEP 508 name.
fn bare_reference(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let first = lower.split_whitespace().next().unwrap_or("");
    lower.contains("://")
        || ["git+", "hg+", "svn+", "bzr+", "file:"]
            .iter()
            .any(|p| first.starts_with(p))
        || first.starts_with(['.', '/', '~', '\\'])
        || (first.contains(['/', '\\']) && !first.contains('@'))
        || [".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz"]
            .iter()
            .any(|s| first.ends_with(s))
}

/// One requirement line of a requirement file: the requirement, then per-requirement
/// options (`--hash` is accepted; anything else is a pip option).
fn requirement_line(c: &mut Collector<'_>, text: &str, rel: &str, line: u32, col: u32) {
    // Options start at the first whitespace-separated token beginning with `-`.
    let mut req_end = text.len();
    let mut offset = 0;
    for tok in text.split_whitespace() {
        let at = text[offset..].find(tok).map_or(offset, |i| offset + i);
        offset = at + tok.len();
        if tok.starts_with('-') {
            req_end = at;
            break;
        }
    }
    let (req, opts) = text.split_at(req_end);
    let mut rest = opts.trim();
    while !rest.is_empty() {
        let opt_col = col + text[..text.len() - rest.len()].chars().count() as u32;
        let next = rest[1..].find(" -").map_or(rest.len(), |i| i + 1);
        let one = rest[..next].trim();
        let (name, _) = split_option(one);
        if name != "--hash" {
            c.finding(
                rules::PIP_OPTION,
                Collector::gated(c.policy.allow_pip_options),
                rel,
                line,
                opt_col,
                format!("`{one}` is a per-requirement pip option; only --hash is accepted"),
                "remove the option, or the operator allows pip options",
            );
        }
        rest = rest[next..].trim_start();
    }
    requirement(c, req.trim(), rel, line, col, true);
}

/// One PEP 508 requirement (also from pyproject and PEP 723): records the dependency or
/// reports why it cannot be audited.
pub(super) fn requirement(
    c: &mut Collector<'_>,
    text: &str,
    rel: &str,
    line: u32,
    col: u32,
    bare_allowed: bool,
) {
    let allow_direct = c.policy.allow_direct_references;
    if bare_allowed && bare_reference(text) {
        c.finding(
            rules::DIRECT_URL,
            Collector::gated(allow_direct),
            rel,
            line,
            col,
            format!("`{text}` installs from a URL, repository or path instead of the index"),
            "depend on a released version from the index (name==version)",
        );
        return;
    }
    match Requirement::parse(text) {
        Ok(req) => {
            let name = req.normalized_name();
            if let Some(url) = &req.url {
                c.finding(
                    rules::DIRECT_URL,
                    Collector::gated(allow_direct),
                    rel,
                    line,
                    col,
                    format!("`{name}` is installed from {url} instead of the index"),
                    "depend on a released version from the index (name==version)",
                );
            }
            let pinned = req.specifiers.pinned();
            c.dependency(
                Ecosystem::PyPI,
                name,
                req.spec.clone(),
                pinned,
                req.url.clone(),
                rel,
                line,
                col,
            );
        }
        Err(e) => {
            c.finding(
                rules::UNPARSABLE,
                Severity::High,
                rel,
                line,
                col,
                format!("not a PEP 508 requirement: {e}"),
                "write `name`, `name==version` or `name>=version,<next` (PEP 508)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_in_every_spelling() {
        assert_eq!(
            split_option("--index-url=https://x"),
            ("--index-url", "https://x")
        );
        assert_eq!(
            split_option("--index-url https://x"),
            ("--index-url", "https://x")
        );
        assert_eq!(split_option("-ihttps://x"), ("-i", "https://x"));
        assert_eq!(split_option("-i https://x"), ("-i", "https://x"));
        assert_eq!(split_option("--pre"), ("--pre", ""));
        assert_eq!(split_option("-r other.txt"), ("-r", "other.txt"));
    }

    #[test]
    fn comments_and_continuations_follow_pip() {
        assert_eq!(strip_comment("requests # latest"), "requests ");
        assert_eq!(
            strip_comment("pkg @ https://x/y#egg=pkg"),
            "pkg @ https://x/y#egg=pkg"
        );
        let lines = logical_lines("a \\\n==1.0\nb\n");
        assert_eq!(lines, vec![(1, "a ==1.0".to_owned()), (3, "b".to_owned())]);
    }
}
