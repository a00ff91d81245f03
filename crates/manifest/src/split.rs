//! Finding the frontmatter in the raw bytes of a SKILL.md, before any YAML is read.

use crate::diag::Finding;

/// Largest SKILL.md accepted, in bytes. The spec advises well under 500 lines.
pub const MAX_SKILL_MD_BYTES: usize = 256 * 1024;
/// Largest frontmatter accepted, in bytes.
pub const MAX_FRONTMATTER_BYTES: usize = 64 * 1024;

/// The frontmatter's YAML text, the line of the file it starts on (1-based), and the body.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    pub yaml: &'a str,
    pub first_line: usize,
    pub body: &'a str,
}

pub(crate) fn split(bytes: &[u8]) -> Result<Split<'_>, Finding> {
    if bytes.len() > MAX_SKILL_MD_BYTES {
        return Err(Finding::error(
            "file_too_large",
            0,
            0,
            format!(
                "SKILL.md is {} bytes; the limit is {MAX_SKILL_MD_BYTES}",
                bytes.len()
            ),
        )
        .help("move long material into references/ and link to it from the body"));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        let col = at
            - bytes[..at]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        Finding::error(
            "invalid_utf8",
            line,
            col,
            format!("SKILL.md is not valid UTF-8 (byte offset {at})"),
        )
        .help("save the file as UTF-8")
    })?;
    if text.starts_with('\u{feff}') {
        return Err(Finding::error(
            "byte_order_mark",
            1,
            1,
            "SKILL.md starts with a byte-order mark",
        )
        .help("save the file as UTF-8 without BOM; the frontmatter must start at the first byte"));
    }
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or_else(|| {
            Finding::error(
                "missing_frontmatter",
                1,
                1,
                "SKILL.md must start with a `---` line opening the YAML frontmatter",
            )
            .help("begin the file with `---`, then `name:` and `description:`, then `---`")
        })?;
    let opener = text.len() - rest.len();
    // The closing delimiter is the first line that is exactly `---`.
    let mut offset = 0;
    let mut close = None;
    for line in rest.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n').trim_end_matches('\r');
        if bare == "---" {
            close = Some((offset, offset + line.len()));
            break;
        }
        offset += line.len();
    }
    let (yaml_end, body_start) = close.ok_or_else(|| {
        Finding::error(
            "unclosed_frontmatter",
            1,
            1,
            "the frontmatter is not closed by a `---` line",
        )
        .help("add a line with exactly `---` after the last frontmatter key")
    })?;
    let yaml = &rest[..yaml_end];
    if yaml.len() > MAX_FRONTMATTER_BYTES {
        return Err(Finding::error(
            "frontmatter_too_large",
            2,
            1,
            format!(
                "frontmatter is {} bytes; the limit is {MAX_FRONTMATTER_BYTES}",
                yaml.len()
            ),
        )
        .help("keep the frontmatter to the spec's fields; put prose in the body"));
    }
    // The reference validator splits the file on the first two `---` it finds anywhere, so a
    // `---` inside the frontmatter would make it read different YAML than we do.
    if let Some(pos) = yaml.find("---") {
        let line = yaml[..pos].matches('\n').count() + 2;
        return Err(Finding::error(
            "dashes_in_frontmatter",
            line,
            1,
            "`---` appears inside the frontmatter",
        )
        .help("rephrase the value without three dashes in a row; other SKILL.md readers cut the frontmatter there"));
    }
    debug_assert!(opener == 4 || opener == 5);
    Ok(Split {
        yaml,
        first_line: 2,
        body: &rest[body_start..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lf_and_crlf() {
        let s = split(b"---\nname: a\n---\nbody\n").expect("lf");
        assert_eq!(s.yaml, "name: a\n");
        assert_eq!(s.body, "body\n");
        let s = split(b"---\r\nname: a\r\n---\r\nbody").expect("crlf");
        assert_eq!(s.yaml, "name: a\r\n");
        assert_eq!(s.body, "body");
    }

    #[test]
    fn refusals() {
        let cases: &[(&[u8], &str)] = &[
            (b"name: a\n", "missing_frontmatter"),
            (b"---\nname: a\n", "unclosed_frontmatter"),
            (b"\xef\xbb\xbf---\nname: a\n---\n", "byte_order_mark"),
            (b"---\nname: a\xff\n---\n", "invalid_utf8"),
            (b"---\ndescription: a --- b\n---\n", "dashes_in_frontmatter"),
        ];
        for (input, code) in cases {
            assert_eq!(split(input).map(|_| ()).unwrap_err().code, *code);
        }
        let big = vec![b'a'; MAX_SKILL_MD_BYTES + 1];
        assert_eq!(split(&big).unwrap_err().code, "file_too_large");
    }

    #[test]
    fn invalid_utf8_position() {
        let f = split(b"---\nname: a\ndescription: \xc3\x28\n---\n").unwrap_err();
        assert_eq!((f.line, f.col), (3, 14));
    }
}
