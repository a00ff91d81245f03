//! The native cell, attacked: each case installs a skill under minimal grants and judges the
//! run from the host (files, process table, /proc of the cell's processes, the audit trail),
//! with a positive control per category. Cases follow ../shared/security-cases.md.

pub mod lab;

mod approval;
mod basics;
mod cleanup;
mod dv;
mod fs;
mod il;
mod ks;
mod nw;
mod pr;
mod review;
mod rs;
mod signing;
mod st;
mod supply;
mod wasm;
