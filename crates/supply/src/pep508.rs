//! PEP 508 dependency specifiers: `name[extras] (specifiers) ; marker` or
//! `name[extras] @ url ; marker`. Markers are kept as text and not evaluated: the audit treats
//! a dependency as possible on every platform.

use crate::pep440::{ParseError, SpecifierSet, normalize_name};

/// A parsed requirement.
#[derive(Clone, Debug)]
pub struct Requirement {
    /// As written.
    pub name: String,
    pub extras: Vec<String>,
    /// The version specifiers as written, without parentheses; empty when none.
    pub spec: String,
    pub specifiers: SpecifierSet,
    /// A direct reference (`name @ url`).
    pub url: Option<String>,
    pub marker: Option<String>,
}

impl Requirement {
    pub fn normalized_name(&self) -> String {
        normalize_name(&self.name)
    }

    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let err = |why: &str| ParseError(format!("`{}`: {why}", text.trim()));
        let s = text.trim();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"-_.".contains(&bytes[i])) {
            i += 1;
        }
        let name = &s[..i];
        if name.is_empty() {
            return Err(err("expected a project name"));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
        {
            return Err(err("a project name starts and ends with a letter or digit"));
        }
        let mut rest = s[i..].trim_start();
        let mut extras = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let (inside, after) = r.split_once(']').ok_or_else(|| err("unclosed `[`"))?;
            for e in inside.split(',') {
                let e = e.trim();
                if e.is_empty() && inside.trim().is_empty() {
                    continue;
                }
                if e.is_empty()
                    || !e
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    return Err(err("invalid extra name"));
                }
                extras.push(e.to_owned());
            }
            rest = after.trim_start();
        }
        let (body, marker) = if let Some(r) = rest.strip_prefix('@') {
            let r = r.trim_start();
            let end = r.find(char::is_whitespace).unwrap_or(r.len());
            let url = &r[..end];
            if url.is_empty() {
                return Err(err("`@` without a URL"));
            }
            let after = r[end..].trim_start();
            let marker = match after.strip_prefix(';') {
                Some(m) => Some(m.trim().to_owned()),
                None if after.is_empty() => None,
                None => return Err(err("unexpected text after the URL")),
            };
            return Ok(Requirement {
                name: name.to_owned(),
                extras,
                spec: String::new(),
                specifiers: SpecifierSet::default(),
                url: Some(url.to_owned()),
                marker,
            });
        } else {
            match rest.split_once(';') {
                Some((b, m)) => (b.trim(), Some(m.trim().to_owned())),
                None => (rest.trim(), None),
            }
        };
        if marker.as_deref() == Some("") {
            return Err(err("empty marker after `;`"));
        }
        let spec = match body.strip_prefix('(') {
            Some(b) => b
                .strip_suffix(')')
                .ok_or_else(|| err("unclosed `(`"))?
                .trim(),
            None => body,
        };
        let specifiers = SpecifierSet::parse(spec).map_err(|e| err(&e.0))?;
        Ok(Requirement {
            name: name.to_owned(),
            extras,
            spec: spec.to_owned(),
            specifiers,
            url: None,
            marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_pep_508_allows() {
        let r = Requirement::parse(
            "Requests[security, socks] >= 2.8.1, == 2.8.* ; python_version < \"2.7\"",
        )
        .expect("parses");
        assert_eq!(r.normalized_name(), "requests");
        assert_eq!(r.extras, ["security", "socks"]);
        assert_eq!(r.spec, ">= 2.8.1, == 2.8.*");
        assert_eq!(r.marker.as_deref(), Some("python_version < \"2.7\""));
        let r = Requirement::parse("name (==1.0)").expect("parses");
        assert_eq!(r.specifiers.pinned().as_deref(), Some("1.0"));
        let r = Requirement::parse(
            "pip @ https://github.com/pypa/pip/archive/1.3.1.zip ; python_version >= '3'",
        )
        .expect("parses");
        assert_eq!(
            r.url.as_deref(),
            Some("https://github.com/pypa/pip/archive/1.3.1.zip")
        );
        assert!(Requirement::parse("-foo").is_err());
        assert!(Requirement::parse("foo >=").is_err());
        assert!(Requirement::parse("foo[bar").is_err());
        assert!(Requirement::parse("foo @").is_err());
        assert!(Requirement::parse("./local/path").is_err());
    }
}
