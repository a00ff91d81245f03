//! Stage two, first half: the YAML tree to the Agent Skills fields, with the specification's
//! rules (allowed top-level keys, field lengths, string types).

use std::collections::BTreeMap;

use skillcell_types::SkillName;

use crate::diag::Finding;
use crate::yaml::{Key, Node, NodeKind};
use skillcell_types::text::first_forbidden;

/// The top-level keys the specification allows; its reference validator refuses any other.
pub const SPEC_FIELDS: [&str; 6] = [
    "name",
    "description",
    "license",
    "compatibility",
    "metadata",
    "allowed-tools",
];
pub(crate) const MAX_DESCRIPTION: usize = 1024;
pub(crate) const MAX_COMPATIBILITY: usize = 500;

/// A string value with the position of its first character.
#[derive(Debug, Clone)]
pub(crate) struct Spanned {
    pub value: String,
    pub line: usize,
    pub col: usize,
    /// A plain (unquoted) scalar: columns inside it map one to one onto the value.
    pub plain: bool,
}

/// One `metadata` entry.
#[derive(Debug, Clone)]
pub(crate) struct MetaEntry {
    pub key: Key,
    pub value: Spanned,
}

#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub name: Option<SkillName>,
    pub description: Option<String>,
    pub license: Option<String>,
    pub compatibility: Option<String>,
    pub allowed_tools: Option<String>,
    pub metadata: Vec<MetaEntry>,
}

impl Fields {
    pub fn metadata_map(&self) -> BTreeMap<String, String> {
        self.metadata
            .iter()
            .map(|e| (e.key.name.clone(), e.value.value.clone()))
            .collect()
    }
}

/// Reads the spec's fields from the root node. Findings are pushed to `out`; the fields that
/// could be read are returned even when others failed, so one run reports every problem.
pub(crate) fn read_fields(root: Option<&Node>, out: &mut Vec<Finding>) -> Fields {
    let mut fields = Fields::default();
    let entries = match root.map(|n| (&n.kind, n.line, n.col)) {
        Some((NodeKind::Map(entries), _, _)) => entries,
        Some((_, line, col)) => {
            out.push(
                Finding::error(
                    "frontmatter_not_mapping",
                    line,
                    col,
                    "the frontmatter must be a mapping of keys to values",
                )
                .help("write `name: ...` and `description: ...` on their own lines"),
            );
            return fields;
        }
        None => {
            out.push(
                Finding::error("empty_frontmatter", 2, 1, "the frontmatter is empty")
                    .help("add `name:` and `description:`"),
            );
            return fields;
        }
    };
    for (key, value) in entries {
        match key.name.as_str() {
            "name" => {
                if let Some(s) = string(key, value, false, out) {
                    match SkillName::new(&s.value) {
                        Ok(n) => fields.name = Some(n),
                        Err(e) => out.push(
                            Finding::error("invalid_name", s.line, s.col, e.to_string())
                                .key("name")
                                .help("a name is 1-64 characters of a-z, 0-9 and single hyphens, equal to the folder name"),
                        ),
                    }
                }
            }
            "description" => {
                if let Some(s) = string(key, value, true, out)
                    && check_len(key, &s, MAX_DESCRIPTION, out) {
                        fields.description = Some(s.value);
                    }
            }
            "compatibility" => {
                if let Some(s) = string(key, value, true, out)
                    && check_len(key, &s, MAX_COMPATIBILITY, out) {
                        fields.compatibility = Some(s.value);
                    }
            }
            "license" => {
                if let Some(s) = string(key, value, false, out)
                    && check_len(key, &s, 1024, out) {
                        fields.license = Some(s.value);
                    }
            }
            "allowed-tools" => fields.allowed_tools = allowed_tools(key, value, out),
            "metadata" => fields.metadata = metadata(key, value, out),
            other => out.push(
                Finding::error(
                    "unknown_field",
                    key.line,
                    key.col,
                    format!("`{other}` is not an Agent Skills frontmatter field"),
                )
                .key(other)
                .help(format!(
                    "the spec allows only {}; move it under `metadata:` as a string (e.g. `  {other}: \"...\"`)",
                    SPEC_FIELDS.join(", ")
                )),
            ),
        }
    }
    for required in ["name", "description"] {
        if !entries.iter().any(|(k, _)| k.name == required) {
            out.push(
                Finding::error(
                    "missing_field",
                    2,
                    1,
                    format!("required field `{required}` is missing"),
                )
                .key(required)
                .help(format!("add `{required}: ...` to the frontmatter")),
            );
        }
    }
    fields
}

/// A scalar value as a string, with the spec's string checks. `None` (and a finding) otherwise.
fn string(key: &Key, value: &Node, multiline: bool, out: &mut Vec<Finding>) -> Option<Spanned> {
    let NodeKind::Scalar { value: s, .. } = &value.kind else {
        out.push(
            Finding::error(
                "not_a_string",
                value.line,
                value.col,
                format!("`{}` must be a string", key.name),
            )
            .key(key.name.clone())
            .help("write the value on the same line as the key, or as a `|`/`>` block"),
        );
        return None;
    };
    if s.trim().is_empty() {
        out.push(
            Finding::error(
                "empty_value",
                value.line,
                value.col,
                format!("`{}` is empty", key.name),
            )
            .key(key.name.clone())
            .help("give it a value or remove the key"),
        );
        return None;
    }
    if let Some((c, why)) = first_forbidden(s, multiline) {
        out.push(
            Finding::error(
                "forbidden_character",
                value.line,
                value.col,
                format!("`{}` contains U+{:04X}, {why}", key.name, c as u32),
            )
            .key(key.name.clone())
            .help("remove the character; only visible text (and line breaks in descriptions) is allowed"),
        );
        return None;
    }
    Some(Spanned {
        value: s.clone(),
        line: value.line,
        col: value.col,
        plain: false,
    })
}

fn check_len(key: &Key, s: &Spanned, max: usize, out: &mut Vec<Finding>) -> bool {
    let n = s.value.chars().count();
    if n > max {
        out.push(
            Finding::error(
                "too_long",
                s.line,
                s.col,
                format!("`{}` is {n} characters; the limit is {max}", key.name),
            )
            .key(key.name.clone())
            .help("shorten it; put detail in the SKILL.md body"),
        );
        return false;
    }
    true
}

fn allowed_tools(key: &Key, value: &Node, out: &mut Vec<Finding>) -> Option<String> {
    match &value.kind {
        NodeKind::Scalar { .. } => string(key, value, false, out).map(|s| s.value),
        NodeKind::Seq(items) => {
            let mut tools = Vec::new();
            for item in items {
                tools.push(string(key, item, false, out)?.value);
            }
            Some(tools.join(" "))
        }
        NodeKind::Map(_) => {
            out.push(
                Finding::error(
                    "not_a_string",
                    value.line,
                    value.col,
                    "`allowed-tools` must be a string or a list of strings",
                )
                .key("allowed-tools")
                .help("write `allowed-tools: Read Bash(python:*)`"),
            );
            None
        }
    }
}

fn metadata(key: &Key, value: &Node, out: &mut Vec<Finding>) -> Vec<MetaEntry> {
    let NodeKind::Map(entries) = &value.kind else {
        out.push(
            Finding::error(
                "metadata_not_mapping",
                value.line,
                value.col,
                "`metadata` must be a mapping of string keys to string values",
            )
            .key(key.name.clone())
            .help("write one `  key: value` per line under `metadata:`"),
        );
        return Vec::new();
    };
    let mut result = Vec::new();
    for (k, v) in entries {
        let path = format!("metadata.{}", k.name);
        if let Some((c, why)) = first_forbidden(&k.name, false) {
            out.push(
                Finding::error(
                    "forbidden_character",
                    k.line,
                    k.col,
                    format!("metadata key contains U+{:04X}, {why}", c as u32),
                )
                .key(path)
                .help("use plain visible characters in keys"),
            );
            continue;
        }
        let NodeKind::Scalar { value: s, plain } = &v.kind else {
            out.push(
                Finding::error(
                    "metadata_not_string",
                    v.line,
                    v.col,
                    "metadata values must be strings, not lists or maps",
                )
                .key(path)
                .help("join list items with spaces into one string, e.g. `tags: \"a b c\"`"),
            );
            continue;
        };
        if let Some((c, why)) = first_forbidden(s, true) {
            out.push(
                Finding::error(
                    "forbidden_character",
                    v.line,
                    v.col,
                    format!("value contains U+{:04X}, {why}", c as u32),
                )
                .key(path)
                .help("remove the character"),
            );
            continue;
        }
        if *plain && looks_typed(s) {
            out.push(
                Finding::warning(
                    "metadata_value_typed",
                    v.line,
                    v.col,
                    format!("`{s}` is read as a number, boolean or null by typed YAML parsers"),
                )
                .key(path)
                .help(format!(
                    "quote it (`\"{s}\"`) so every reader sees a string"
                )),
            );
        }
        result.push(MetaEntry {
            key: k.clone(),
            value: Spanned {
                value: s.clone(),
                line: v.line,
                col: v.col,
                plain: *plain,
            },
        });
    }
    result
}

/// Whether a plain scalar would be typed as null, bool, int or float by a YAML 1.1 or 1.2
/// parser with implicit typing.
fn looks_typed(s: &str) -> bool {
    const WORDS: [&str; 14] = [
        "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".nan", ".inf", "-.inf",
        "+.inf",
    ];
    let lower = s.to_ascii_lowercase();
    if s.is_empty() || WORDS.contains(&lower.as_str()) {
        return true;
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if digits(body) || body.starts_with("0x") || body.starts_with("0o") {
        return true;
    }
    let mantissa = match body.split_once(['e', 'E']) {
        Some((m, e)) if digits(e.strip_prefix(['-', '+']).unwrap_or(e)) => {
            if digits(m) {
                return true;
            }
            m
        }
        Some(_) => return false,
        None => body,
    };
    match mantissa.split_once('.') {
        Some((a, b)) => {
            (a.is_empty() || digits(a))
                && (b.is_empty() || digits(b))
                && !(a.is_empty() && b.is_empty())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::looks_typed;

    #[test]
    fn typed_scalars() {
        for s in [
            "1", "1.0", "-2", "1e3", "true", "No", "~", "null", ".5", "0x1f",
        ] {
            assert!(looks_typed(s), "{s}");
        }
        for s in [
            "1.0.0",
            "v1",
            "memory=1M",
            "api.example.com:443",
            "yesterday",
            ".",
        ] {
            assert!(!looks_typed(s), "{s}");
        }
    }
}
