//! The Linux kernel side of skillcell.
//!
//! The cell ([`PreparedCell`]: namespaces, a pivot_root into a tmpfs, Landlock, seccomp, a
//! cgroup per run, rlimits; docs/cell.md lists the steps in order), the Landlock restriction
//! the executor role puts on itself ([`restrict_writes`]) and the kernel feature probes behind
//! `skillcell doctor` ([`doctor`]). This crate receives finished specifications
//! ([`skillcell_sandbox::CellSpec`]) and knows nothing of skills, contracts or policy.
//!
//! Every `unsafe` block of the workspace is in `sys` (and its `cell` submodule), each with a
//! `// SAFETY:` comment.

pub mod cgroup;
pub mod doctor;
pub mod grant;
pub mod landlock_cell;
mod landlock_self;
pub mod launch;
pub mod seccomp;
mod supervisor;
mod sys;

pub use landlock_self::{LandlockError, LandlockReport, restrict_writes};
pub use supervisor::{CellError, InterruptWatch, PreparedCell, block_interrupts};
pub use sys::landlock_abi;
