//! Shared vocabulary of skillcell: skill names, content digests, the sandbox contract (the
//! capabilities a skill may be granted), version states and decisions.
//!
//! This crate does no I/O and knows nothing of YAML, SQLite or the kernel. Every type here is
//! already validated: a [`SkillName`] or a [`Contract`] that exists is well formed. Parsing from
//! untrusted text happens in `skillcell-manifest`, which is the only producer of contracts.

mod contract;
mod digest;
pub mod finding;
mod name;
pub mod net;
mod state;
pub mod text;

pub use contract::{
    Access, Contract, EnvName, Executable, FsGrant, GrantPath, HostPattern, LimitKind, LimitUnit,
    Limits, NetRule, Profile, Runtime,
};
pub use digest::{Digest, DigestParseError, StreamingDigest};
pub use finding::Finding;
pub use name::{NameError, SkillName};
pub use state::{Decision, VersionState};
