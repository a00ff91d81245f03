use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A skill name as the Agent Skills specification allows it, restricted to ASCII: 1 to 64
/// characters of `a-z`, `0-9` and single hyphens, neither first nor last.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SkillName(String);

/// Why a string is not a skill name; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty; use 1 to 64 characters of a-z, 0-9 and hyphens")]
    Empty,
    #[error("name is {0} characters long; the limit is 64")]
    TooLong(usize),
    #[error(
        "name contains {0:?}; only lowercase a-z, 0-9 and hyphens are allowed (e.g. `pdf-tools`)"
    )]
    BadChar(char),
    #[error("name starts or ends with a hyphen; remove it")]
    EdgeHyphen,
    #[error("name contains consecutive hyphens; use a single hyphen")]
    DoubleHyphen,
}

impl SkillName {
    /// The longest name the specification allows.
    pub const MAX_LEN: usize = 64;

    /// Validates `s` as a skill name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        let chars = s.chars().count();
        if chars > Self::MAX_LEN {
            return Err(NameError::TooLong(chars));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
        {
            return Err(NameError::BadChar(c));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(NameError::EdgeHyphen);
        }
        if s.contains("--") {
            return Err(NameError::DoubleHyphen);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SkillName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SkillName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SkillName({})", self.0)
    }
}

impl<'de> Deserialize<'de> for SkillName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, Result<(), NameError>)] = &[
            ("pdf", Ok(())),
            ("pdf-tools-2", Ok(())),
            ("a", Ok(())),
            ("", Err(NameError::Empty)),
            ("Pdf", Err(NameError::BadChar('P'))),
            ("pdf_tools", Err(NameError::BadChar('_'))),
            ("é", Err(NameError::BadChar('é'))),
            ("-pdf", Err(NameError::EdgeHyphen)),
            ("pdf-", Err(NameError::EdgeHyphen)),
            ("pdf--tools", Err(NameError::DoubleHyphen)),
        ];
        for (input, want) in cases {
            assert_eq!(SkillName::new(input).map(|_| ()), *want, "{input:?}");
        }
        assert_eq!(SkillName::new(&"a".repeat(64)).map(|_| ()), Ok(()));
        assert_eq!(
            SkillName::new(&"a".repeat(65)).map(|_| ()),
            Err(NameError::TooLong(65))
        );
    }
}
