//! PEP 723 inline script metadata: a `# /// script` … `# ///` comment block in a `.py` file
//! whose TOML lists the script's `dependencies` (what `uv run` and `pipx run` install).
//!
//! Block finding follows the PEP's reference regular expression
//! `(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$`: the opening line
//! exactly, then one or more lines that are `#` alone or `# ` and text, and the block ends at
//! the *last* `# ///` line of that run of comment lines (the regex is greedy). Two `script`
//! blocks in one file are an error, as the PEP requires.

use std::path::Path;

use serde::Deserialize;
use skillcell_types::finding::Severity;
use toml::Spanned;

use super::Collector;
use super::line_col;
use super::pyproject::{Origin, spanned_requirement, uv_settings};
use crate::error::SupplyError;
use crate::rules;

#[derive(Debug, Deserialize)]
struct ScriptMetadata {
    #[serde(default)]
    dependencies: Vec<Spanned<String>>,
    tool: Option<Spanned<toml::Table>>,
}

/// One metadata block: its type, TOML content, and the 0-based line index of its first content
/// line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub kind: String,
    pub content: String,
    pub first_line: usize,
}

fn is_type(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_content_line(l: &str) -> bool {
    l == "#" || l.starts_with("# ")
}

/// Every metadata block of `text`, as the reference regex would find them.
pub(crate) fn blocks(text: &str) -> Vec<Block> {
    // The regex needs a newline after every content line; `lines()` drops them, so a content
    // line must not be the file's last line unless a newline follows it.
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(kind) = lines[i].strip_prefix("# /// ").filter(|k| is_type(k)) else {
            i += 1;
            continue;
        };
        // The run of comment lines after the opening line; each needs a following newline,
        // which holds for every line but the text's last.
        let mut end = i + 1;
        while end < lines.len() - 1 && is_content_line(lines[end]) {
            end += 1;
        }
        // `end` is the first line after the run; the closing line may also be the last line
        // of the text (no newline needed after it).
        if end == lines.len() - 1 && lines[end] == "# ///" {
            end += 1;
        }
        let close = (i + 2..end).rev().find(|&k| lines[k] == "# ///");
        match close {
            Some(close) => {
                let content: String = lines[i + 1..close]
                    .iter()
                    .map(|l| {
                        let body = l.strip_prefix("# ").unwrap_or_else(|| &l[1..]);
                        format!("{body}\n")
                    })
                    .collect();
                out.push(Block {
                    kind: kind.to_owned(),
                    content,
                    first_line: i + 1,
                });
                i = close + 1;
            }
            None => i += 1,
        }
    }
    out
}

pub(super) fn read(c: &mut Collector<'_>, abs: &Path, rel: &str) -> Result<(), SupplyError> {
    let Some(text) = c.read_text(abs, rel)? else {
        return Ok(());
    };
    if !text.contains("# /// ") {
        return Ok(());
    }
    let scripts: Vec<Block> = blocks(&text)
        .into_iter()
        .filter(|b| b.kind == "script")
        .collect();
    if scripts.len() > 1 {
        c.finding(
            rules::UNPARSABLE,
            Severity::High,
            rel,
            scripts[1].first_line as u32,
            1,
            format!("{rel} has more than one `# /// script` block, which PEP 723 forbids"),
            "keep one script metadata block",
        );
        return Ok(());
    }
    let Some(block) = scripts.first() else {
        return Ok(());
    };
    let origin = Origin {
        line_offset: block.first_line as u32,
        col_offset: 2,
    };
    let meta: ScriptMetadata = match toml::from_str(&block.content) {
        Ok(m) => m,
        Err(e) => {
            let (line, col) = e
                .span()
                .map_or((0, 0), |s| line_col(&block.content, s.start));
            c.finding(
                rules::UNPARSABLE,
                Severity::High,
                rel,
                line + origin.line_offset,
                col + origin.col_offset,
                format!(
                    "the `# /// script` block is not valid TOML: {}",
                    e.message()
                ),
                "fix the TOML inside the block (each line starts with `# `)",
            );
            return Ok(());
        }
    };
    for r in &meta.dependencies {
        spanned_requirement(c, &block.content, r, rel, origin);
    }
    if let Some(tool) = &meta.tool {
        uv_settings(c, &block.content, tool, rel, origin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_ends_at_the_last_closing_line_of_its_run() {
        let text = "# /// script\n# dependencies = [\"a\"]\n# ///\n# ///\nprint(1)\n";
        let b = blocks(text);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].content, "dependencies = [\"a\"]\n///\n");
    }

    #[test]
    fn non_comment_lines_end_the_run() {
        let text = "# /// script\n# x = 1\nimport os\n# ///\n";
        assert!(blocks(text).is_empty());
        let text = "# /// script\n#x = 1\n# ///\n";
        assert!(blocks(text).is_empty());
        let text = "# /// script\n# ///\n";
        assert!(blocks(text).is_empty(), "a block needs a content line");
        let text = "#  /// script\n# a = 1\n# ///\n";
        assert!(blocks(text).is_empty());
    }

    #[test]
    fn a_closing_line_at_end_of_file_needs_no_newline() {
        let text = "# /// script\n# a = 1\n#\n# ///";
        let b = blocks(text);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].content, "a = 1\n\n");
        assert_eq!(b[0].first_line, 1);
    }
}
