//! Integration tests of skillcell-supply, one binary.

mod advisories;
mod common;
mod import;
mod manifests;
mod parsers;
mod requirements;
mod typosquats;
