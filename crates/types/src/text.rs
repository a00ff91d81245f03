//! Text from skills is hostile: characters that can rewrite a terminal, reorder what a reader
//! sees, or hide. Used to refuse them in SKILL.md and to escape them wherever skill-provided
//! text is shown (diagnostics, tables, the audit listing).

/// Why a character is refused, or `None` if it is fine. `\n` and `\t` are allowed only where
/// `multiline` is true.
pub fn forbidden_char(c: char, multiline: bool) -> Option<&'static str> {
    match c {
        '\n' | '\t' if multiline => None,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => {
            Some("a control character (it can rewrite what a terminal shows)")
        }
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}' => {
            Some("a bidirectional control character (it can reorder what a reader sees)")
        }
        '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{180e}' => {
            Some("an invisible zero-width character")
        }
        '\u{e0000}'..='\u{e007f}' => Some("an invisible Unicode tag character"),
        '\u{fff9}'..='\u{fffb}' => Some("an interlinear annotation character"),
        _ => None,
    }
}

/// The first forbidden character in `s` with its reason.
pub fn first_forbidden(s: &str, multiline: bool) -> Option<(char, &'static str)> {
    s.chars()
        .find_map(|c| forbidden_char(c, multiline).map(|why| (c, why)))
}

/// `s` with every refused character written as `\\u{..}`; `\\n` too.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if forbidden_char(c, false).is_some() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert!(first_forbidden("plain text, é ü 日本", false).is_none());
        assert!(first_forbidden("two\nlines", true).is_none());
        assert!(first_forbidden("two\nlines", false).is_some());
        assert!(first_forbidden("esc \u{1b}[31m", true).is_some());
        assert!(first_forbidden("rlo \u{202e}", true).is_some());
        assert!(first_forbidden("zw\u{200b}sp", true).is_some());
        assert!(first_forbidden("tag\u{e0041}", true).is_some());
        assert_eq!(escape("a\u{1b}[2Jb\u{202e}"), "a\\u{1b}[2Jb\\u{202e}");
    }
}
