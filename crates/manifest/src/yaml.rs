//! Stage one: YAML text to a small tree of nodes with positions, refusing every YAML feature a
//! SKILL.md frontmatter does not need and an attacker could use.
//!
//! Refused: anchors and aliases (alias bombs), tags (`!!python/object`), flow collections
//! (`{}`/`[]`, which the reference validator's strictyaml also refuses), more than one
//! document, complex keys, duplicate keys, nesting deeper than [`MAX_DEPTH`], and more than
//! [`MAX_EVENTS`] parser events. Scalars stay strings: no implicit typing happens here.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diag::Finding;

/// Deepest nesting accepted. The spec needs two levels (`metadata: {key: value}`).
pub(crate) const MAX_DEPTH: usize = 3;
/// Most parser events accepted for one frontmatter.
pub(crate) const MAX_EVENTS: usize = 20_000;

/// A parsed node. Lines and columns are 1-based, relative to the YAML text.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Scalar { value: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key: always a scalar.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub name: String,
    pub line: usize,
    pub col: usize,
}

enum Frame {
    Seq {
        line: usize,
        col: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        col: usize,
        entries: Vec<(Key, Node)>,
        pending: Option<Key>,
        seen: HashMap<String, usize>,
    },
}

/// Positions are 1-based; `line_offset` is added to every line so findings point into the file.
pub(crate) fn parse(text: &str, line_offset: usize) -> Result<Option<Node>, Finding> {
    Builder {
        chars: text.chars().collect(),
        line_offset,
        stack: Vec::new(),
        root: None,
        documents: 0,
    }
    .run(text)
}

struct Builder {
    chars: Vec<char>,
    line_offset: usize,
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
}

impl Builder {
    fn pos(&self, span: &Span) -> (usize, usize) {
        (span.start.line() + self.line_offset, span.start.col() + 1)
    }

    fn key_path(&self) -> Option<String> {
        let parts: Vec<&str> = self
            .stack
            .iter()
            .filter_map(|f| match f {
                Frame::Map {
                    pending: Some(k), ..
                } => Some(k.name.as_str()),
                _ => None,
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("."))
    }

    fn fail(&self, code: &'static str, span: &Span, message: &str, help: &str) -> Finding {
        let (line, col) = self.pos(span);
        let f = Finding::error(code, line, col, message).help(help);
        match self.key_path() {
            Some(k) => f.key(k),
            None => f,
        }
    }

    fn run(mut self, text: &str) -> Result<Option<Node>, Finding> {
        let mut parser = Parser::new_from_str(text);
        let mut events = 0usize;
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| {
                Finding::error(
                    "yaml_syntax",
                    e.marker().line() + self.line_offset,
                    e.marker().col() + 1,
                    format!("invalid YAML: {}", e.info()),
                )
                .help("fix the YAML syntax; quote values that contain `: ` or start with a special character")
            })?;
            events += 1;
            if events > MAX_EVENTS {
                return Err(self.fail(
                    "too_many_nodes",
                    &span,
                    &format!("frontmatter has more than {MAX_EVENTS} YAML nodes"),
                    "keep the frontmatter to the spec's few fields; move long content into the body",
                ));
            }
            match event {
                Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => {}
                Event::DocumentStart(_) => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(self.fail(
                            "multiple_documents",
                            &span,
                            "frontmatter holds more than one YAML document",
                            "remove the `---` or `...` separators inside the frontmatter",
                        ));
                    }
                }
                Event::Alias(_) => {
                    return Err(self.fail(
                        "yaml_alias",
                        &span,
                        "YAML aliases are not allowed",
                        "write the value out in full instead of `*alias` (aliases allow expansion bombs)",
                    ));
                }
                Event::Scalar(value, style, anchor, tag) => {
                    self.check_node_props(&span, anchor, tag.is_some())?;
                    let (line, col) = self.pos(&span);
                    let node = Node {
                        kind: NodeKind::Scalar {
                            value: value.into_owned(),
                            plain: style == ScalarStyle::Plain,
                        },
                        line,
                        col,
                    };
                    self.push_value(node, &span)?;
                }
                Event::SequenceStart(anchor, tag) => {
                    self.open(&span, anchor, tag.is_some(), false)?;
                }
                Event::MappingStart(anchor, tag) => {
                    self.open(&span, anchor, tag.is_some(), true)?;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let node = match self.stack.pop() {
                        Some(Frame::Seq { line, col, items }) => Node {
                            kind: NodeKind::Seq(items),
                            line,
                            col,
                        },
                        Some(Frame::Map {
                            line, col, entries, ..
                        }) => Node {
                            kind: NodeKind::Map(entries),
                            line,
                            col,
                        },
                        None => continue,
                    };
                    self.push_value(node, &span)?;
                }
            }
        }
        Ok(self.root)
    }

    fn open(&mut self, span: &Span, anchor: usize, tagged: bool, map: bool) -> Result<(), Finding> {
        self.check_node_props(span, anchor, tagged)?;
        if matches!(self.chars.get(span.start.index()), Some('[' | '{')) {
            return Err(self.fail(
                "yaml_flow_collection",
                span,
                "flow collections (`[...]` or `{...}`) are not allowed",
                "use block style: one `- item` or `key: value` per line (the spec's reference validator refuses flow style)",
            ));
        }
        if self.stack.len() + 1 > MAX_DEPTH {
            return Err(self.fail(
                "yaml_too_deep",
                span,
                &format!("nesting deeper than {MAX_DEPTH} levels"),
                "frontmatter values are strings; metadata is one flat map of string to string",
            ));
        }
        let (line, col) = self.pos(span);
        self.stack.push(if map {
            Frame::Map {
                line,
                col,
                entries: Vec::new(),
                pending: None,
                seen: HashMap::new(),
            }
        } else {
            Frame::Seq {
                line,
                col,
                items: Vec::new(),
            }
        });
        Ok(())
    }

    fn check_node_props(&self, span: &Span, anchor: usize, tagged: bool) -> Result<(), Finding> {
        if anchor != 0 {
            return Err(self.fail(
                "yaml_anchor",
                span,
                "YAML anchors are not allowed",
                "remove the `&anchor`; write every value out in full",
            ));
        }
        if tagged {
            return Err(self.fail(
                "yaml_tag",
                span,
                "YAML tags are not allowed",
                "remove the `!tag`; every frontmatter value is a plain string",
            ));
        }
        Ok(())
    }

    fn push_value(&mut self, node: Node, span: &Span) -> Result<(), Finding> {
        let dup = match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                return Ok(());
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                return Ok(());
            }
            Some(Frame::Map {
                entries,
                pending,
                seen,
                ..
            }) => match pending.take() {
                Some(key) => {
                    entries.push((key, node));
                    return Ok(());
                }
                None => match node.kind {
                    NodeKind::Scalar { value, .. } => {
                        if let Some(first) = seen.get(&value) {
                            Some((value, *first))
                        } else {
                            seen.insert(value.clone(), node.line);
                            *pending = Some(Key {
                                name: value,
                                line: node.line,
                                col: node.col,
                            });
                            None
                        }
                    }
                    _ => {
                        return Err(self.fail(
                            "yaml_complex_key",
                            span,
                            "mapping keys must be plain strings",
                            "use `key: value` with a simple key",
                        ));
                    }
                },
            },
        };
        match dup {
            None => Ok(()),
            Some((key, first_line)) => {
                let (line, col) = self.pos(span);
                let path = match self.key_path() {
                    Some(p) => format!("{p}.{key}"),
                    None => key.clone(),
                };
                Err(Finding::error(
                    "duplicate_key",
                    line,
                    col,
                    format!("key `{key}` appears twice (first on line {first_line})"),
                )
                .key(path)
                .help("keep one of them; YAML parsers disagree on which one wins"))
            }
        }
    }
}
