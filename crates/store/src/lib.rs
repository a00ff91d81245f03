//! The skill store as every role sees it: where things live ([`Home`]), how a skill folder is
//! identified ([`tree`]: a Merkle hash over sorted paths, modes and content hashes), and the
//! registry's schema and read-only queries ([`RegistryReader`]).
//!
//! This crate has no function that writes the store or the registry. The developer role
//! (`skillcell-developer`) owns every write; the executor role depends on this crate only, so
//! its code has no path to a write, and the kernel (Landlock) holds it to that at run time.

mod home;
mod registry;
pub mod tree;

pub use home::{Home, HomeError};
pub use registry::{
    ApprovalRecord, AuditAnchor, HistoryEntry, RegistryError, RegistryReader, SCHEMA, SCHEMA_V2,
    SCHEMA_V3, SCHEMA_VERSION, SkillSummary, VERSION_COLUMNS, VersionRecord, version_from_row,
};
