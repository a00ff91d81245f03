//! The operator's admission policy: `config/admission.conf` in the data dir, `key = value`
//! lines and `#` comments. It comes from the operator, never from a skill folder. An unknown
//! key or a value that is not `yes`/`no` makes it unreadable, and install refuses rather than
//! guess (fail closed).

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::Serialize;
use skillcell_store::Home;

use crate::signing::{SignError, write_config};

/// What admission requires beyond its fixed checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AdmissionPolicy {
    /// Install only skills signed by a key in the trust list.
    pub require_signature: bool,
    /// Let requirement files carry pip options (index overrides, trusted hosts, editable
    /// installs, direct URLs).
    pub allow_pip_options: bool,
}

/// The keys `config/admission.conf` knows, with what each means.
pub const KEYS: [(&str, &str); 2] = [
    (
        "require-signature",
        "install only skills signed by a trusted key (skillcell trust add)",
    ),
    (
        "allow-pip-options",
        "let requirement files carry pip options (index overrides, trusted hosts, editable installs, direct URLs)",
    ),
];

impl AdmissionPolicy {
    pub fn path(home: &Home) -> PathBuf {
        home.config_dir().join("admission.conf")
    }

    /// Loads the policy; a missing file is the default (nothing extra required, no pip
    /// options allowed).
    pub fn load(home: &Home) -> Result<Self, SignError> {
        let path = Self::path(home);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(SignError::Io { path, source }),
        };
        let mut policy = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| SignError::BadFile {
                path: path.clone(),
                why: format!("line {}: {why}", n + 1),
            };
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected `key = yes|no`".into()))?;
            let value = parse_flag(value.trim())
                .ok_or_else(|| bad(format!("`{}` is not yes or no", value.trim())))?;
            policy.set(key.trim(), value).map_err(bad)?;
        }
        Ok(policy)
    }

    fn set(&mut self, key: &str, value: bool) -> Result<(), String> {
        match key {
            "require-signature" => self.require_signature = value,
            "allow-pip-options" => self.allow_pip_options = value,
            other => {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(format!(
                    "unknown key `{other}` (known: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Sets `key` to `value` in the operator's file and saves it.
    pub fn update(home: &Home, key: &str, value: bool) -> Result<Self, SignError> {
        let mut policy = Self::load(home)?;
        policy.set(key, value).map_err(|why| SignError::BadFile {
            path: Self::path(home),
            why,
        })?;
        let flag = |b: bool| if b { "yes" } else { "no" };
        let text = format!(
            "# skillcell admission policy (skillcell policy set KEY yes|no)\nrequire-signature = {}\nallow-pip-options = {}\n",
            flag(policy.require_signature),
            flag(policy.allow_pip_options),
        );
        write_config(&Self::path(home), &text)?;
        Ok(policy)
    }
}

pub fn parse_flag(v: &str) -> Option<bool> {
    match v {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_strict_and_round_trips() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = Home::at(tmp.path().join("home")).expect("home");
        assert_eq!(
            AdmissionPolicy::load(&home).expect("default"),
            AdmissionPolicy::default()
        );
        let p = AdmissionPolicy::update(&home, "require-signature", true).expect("set");
        assert!(p.require_signature && !p.allow_pip_options);
        assert_eq!(AdmissionPolicy::load(&home).expect("load"), p);
        assert!(AdmissionPolicy::update(&home, "require-signatures", true).is_err());
        for broken in [
            "require-signature = maybe\n",
            "allow-everything = yes\n",
            "yes\n",
        ] {
            fs::write(AdmissionPolicy::path(&home), broken).expect("write");
            assert!(AdmissionPolicy::load(&home).is_err(), "{broken}");
        }
    }
}
