//! Integration tests of skillcell-manifest, one binary.

mod cases;
mod reference;
