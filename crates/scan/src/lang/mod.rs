//! Syntax-tree analyses, one module per language, on tree-sitter grammars.

pub(crate) mod js;
pub(crate) mod python;
pub(crate) mod shell;

use tree_sitter::{Language, Node, Parser, Tree};

use crate::out::{Out, Text};
use crate::rules::R;

/// Deepest expression the constant folder and the qualifier look into.
pub(crate) const MAX_DEPTH: usize = 48;

/// Parses `text`; reports a parse error (Low) when the tree has error nodes.
pub(crate) fn parse(language: &Language, t: &Text<'_>, out: &mut Out) -> Option<Tree> {
    let mut parser = Parser::new();
    if parser.set_language(language).is_err() {
        out.emit(
            R::ParseError,
            &t.whole_file(),
            "grammar could not be loaded",
        );
        return None;
    }
    let tree = parser.parse(t.text, None);
    match &tree {
        None => out.emit(
            R::ParseError,
            &t.whole_file(),
            "the parser gave up on this file",
        ),
        Some(tree) if tree.root_node().has_error() && t.fixed.is_none() => {
            let at = first_error(tree.root_node()).unwrap_or(tree.root_node());
            out.emit(
                R::ParseError,
                &t.loc(at.start_byte()),
                "syntax error; the scan of this file may be incomplete",
            );
        }
        Some(_) => {}
    }
    tree
}

fn first_error(root: Node<'_>) -> Option<Node<'_>> {
    let mut found = None;
    walk(root, |n| {
        if found.is_none() && (n.is_error() || n.is_missing()) {
            found = Some(n);
        }
    });
    found
}

/// Visits every node of the tree in document order, without recursion.
pub(crate) fn walk<'t>(root: Node<'t>, mut f: impl FnMut(Node<'t>)) {
    let mut cursor = root.walk();
    loop {
        f(cursor.node());
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.node() == root {
                return;
            }
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
        }
    }
}

/// Whether `pred` holds for `node` or any node below it.
pub(crate) fn any_below<'t>(node: Node<'t>, mut pred: impl FnMut(Node<'t>) -> bool) -> bool {
    let mut hit = false;
    walk(node, |n| {
        if !hit && pred(n) {
            hit = true;
        }
    });
    hit
}

pub(crate) fn text<'s>(node: Node<'_>, src: &'s str) -> &'s str {
    src.get(node.byte_range()).unwrap_or("")
}

/// The named children of `node`, comments left out.
pub(crate) fn named_children<'t>(node: Node<'t>) -> Vec<Node<'t>> {
    let mut c = node.walk();
    node.named_children(&mut c)
        .filter(|n| n.kind() != "comment")
        .collect()
}

/// Decodes the common backslash escapes of a quoted literal; unknown ones stay as written.
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('x') => {
                let h: String = chars.by_ref().take(2).collect();
                match u32::from_str_radix(&h, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&format!("\\x{h}")),
                }
            }
            Some('u') => {
                let h: String = if chars.peek() == Some(&'{') {
                    chars.next();
                    chars.by_ref().take_while(|&c| c != '}').collect()
                } else {
                    chars.by_ref().take(4).collect()
                };
                match u32::from_str_radix(&h, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&format!("\\u{h}")),
                }
            }
            Some('\n') => {}
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Program names that are shells or interpreters: what `curl | X` or `base64 -d | X` runs.
pub(crate) const SHELLS: &[&str] = &["sh", "bash", "zsh", "dash", "ksh", "fish", "busybox"];
pub(crate) const INTERPRETERS: &[&str] = &[
    "sh", "bash", "zsh", "dash", "ksh", "fish", "busybox", "python", "python3", "perl", "ruby",
    "node", "php", "lua",
];

/// The last path component of a program (`/usr/bin/git` → `git`).
pub(crate) fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Test helper: scans one file's text as `file` and returns `rule@line:col` of every finding,
/// with the usage.
#[cfg(test)]
pub(crate) fn scan_one(file: &str, src: &str) -> (Vec<String>, crate::out::Usage) {
    let t = Text::new(file, src);
    let mut out = Out::default();
    match file.rsplit_once('.').map(|(_, e)| e) {
        Some("py") => python::scan(&t, &mut out),
        Some("js") => js::scan(&t, js::Dialect::JavaScript, &mut out),
        Some("ts") => js::scan(&t, js::Dialect::TypeScript, &mut out),
        _ => shell::scan(&t, &mut out),
    }
    let mut v: Vec<String> = out
        .findings
        .iter()
        .map(|f| format!("{}@{}:{}", f.rule, f.line, f.col))
        .collect();
    v.sort();
    v.dedup();
    (v, out.usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_handles_common_escapes() {
        assert_eq!(unescape(r"a\x65\u0076\n\\"), "aev\n\\");
        assert_eq!(unescape(r"\u{65}"), "e");
        assert_eq!(unescape(r"\q"), "q");
    }
}
