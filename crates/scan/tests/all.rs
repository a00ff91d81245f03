//! Integration tests of skillcell-scan, one binary.

mod common;
mod corpus;
mod report;
mod walk;
