//! The Linux kernel side of skillcell.
//!
//! Today: the Landlock restriction the executor role puts on itself ([`restrict_writes`]) and
//! the kernel feature probes behind `skillcell doctor` ([`doctor`]). The cell (namespaces,
//! seccomp, cgroups) will live here too. This crate receives finished specifications and knows
//! nothing of skills, contracts or policy.
//!
//! Every `unsafe` block of the workspace is in [`sys`], each with a `// SAFETY:` comment.

pub mod cgroup;
pub mod doctor;
pub mod landlock_cell;
pub mod launch;
mod landlock_self;
pub mod seccomp;
mod supervisor;
mod sys;
mod sys_cell;

pub use landlock_self::{LandlockError, LandlockReport, restrict_writes};
pub use supervisor::{CellError, PreparedCell};
pub use sys::landlock_abi;
