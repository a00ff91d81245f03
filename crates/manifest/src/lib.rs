//! SKILL.md parsing, in two stages: raw YAML into a positioned tree that refuses risky YAML
//! features ([`yaml`]), then the Agent Skills fields ([`spec`]) and the skillcell contract under
//! `metadata.skillcell.*` ([`contract`]) into validated types.
//!
//! Every refusal is a [`Diagnostic`] naming file, line, key, what is wrong and how to fix it.
//! A SKILL.md this crate accepts is also valid for the specification's reference validator:
//! only the six spec fields, string values, block-style YAML.
//!
//! This crate reads at most one file ([`load_dir`] reads SKILL.md and looks at the entry's
//! metadata); it never writes, never runs anything and never touches the store.

mod contract;
mod diag;
mod dir;
mod spec;
mod split;

mod yaml;

use std::collections::BTreeMap;

use serde::Serialize;
use skillcell_types::{Contract, SkillName};

pub use contract::{
    DANGEROUS_ENV, KEYS as CONTRACT_KEYS, PREFIX as CONTRACT_PREFIX, RESERVED_ENV, dangerous_env,
    parse_grant_path, parse_limit, parse_net_rule,
};
pub use diag::{Diagnostic, Report, Severity};
pub use dir::{LoadedSkill, load_dir};
pub use spec::SPEC_FIELDS;
pub use split::{MAX_FRONTMATTER_BYTES, MAX_SKILL_MD_BYTES};

/// A SKILL.md that passed both stages.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub name: SkillName,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<String>,
    /// `allowed-tools`, lists joined with spaces as the reference implementation does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<String>,
    /// Every metadata entry, contract keys included, as written.
    pub metadata: BTreeMap<String, String>,
    /// The validated contract; the default-blind profile when no `skillcell.*` key is present.
    pub contract: Contract,
}

/// Parses the bytes of a SKILL.md. `file` names it in diagnostics.
///
/// Returns the manifest with the warnings found, or every error found (and the warnings).
pub fn parse(bytes: &[u8], file: &str) -> Result<(Manifest, Report), Report> {
    let mut findings = Vec::new();
    let manifest = parse_inner(bytes, &mut findings);
    let report = Report(findings.into_iter().map(|f| f.in_file(file)).collect());
    match manifest {
        Some(m) if !report.has_errors() => Ok((m, report)),
        _ => Err(report),
    }
}

fn parse_inner(bytes: &[u8], out: &mut Vec<diag::Finding>) -> Option<Manifest> {
    let parts = match split::split(bytes) {
        Ok(p) => p,
        Err(f) => {
            out.push(f);
            return None;
        }
    };
    let root = match yaml::parse(parts.yaml, parts.first_line - 1) {
        Ok(root) => root,
        Err(f) => {
            out.push(f);
            return None;
        }
    };
    let fields = spec::read_fields(root.as_ref(), out);
    let contract = contract::read_contract(&fields.metadata, out);
    let metadata = fields.metadata_map();
    let _ = parts.body;
    Some(Manifest {
        name: fields.name?,
        description: fields.description?,
        license: fields.license,
        compatibility: fields.compatibility,
        allowed_tools: fields.allowed_tools,
        metadata,
        contract,
    })
}
