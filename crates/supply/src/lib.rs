//! Supply-chain audit of a skill's dependencies.
//!
//! [`audit`] reads what a skill folder declares it needs — `requirements*.txt` (with `-r`
//! includes kept inside the folder), `pyproject.toml`, PEP 723 `# /// script` blocks and
//! `package.json` — and reports [`Finding`]s: pip options and direct references that route
//! around the registry (critical unless [`AuditPolicy`] accepts them), npm install scripts,
//! unpinned versions, names that imitate popular packages, and versions named by OSV
//! advisories in an offline [`AdvisoryDb`].
//!
//! This crate refuses to touch the network: advisories come from OSV's per-ecosystem
//! `all.zip` exports that the operator downloads elsewhere and imports with
//! [`AdvisoryDb::import`]. It never installs, builds or runs anything it reads, and it does
//! not resolve dependencies transitively: a range is judged by what it *admits*.
//!
//! [`Finding`]: skillcell_types::finding::Finding

mod audit;
mod db;
mod error;
mod interval;
mod manifest;
mod osv;
pub mod pep440;
pub mod pep508;
mod report;
mod rules;
pub mod semver;
mod typosquat;

pub use audit::audit;
pub use db::{AdvisoryDb, DbInfo, ImportLimits, ImportStats, SCHEMA_VERSION};
pub use error::SupplyError;
pub use report::{AuditPolicy, Dependency, Ecosystem, SupplyReport};
pub use rules::{Rule, rules};
