//! The errors of the supply-chain audit and of the advisory database.

use std::path::PathBuf;

/// What can go wrong importing advisories or auditing a folder. Problems *in* a skill's
/// manifests are findings, not errors: an error means the audit itself could not run.
#[derive(Debug, thiserror::Error)]
pub enum SupplyError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("advisory database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "advisory database {path} has schema {found}, newer than {supported} which this build knows; use a newer skillcell or a new database file"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("cannot read zip {path}: {source}")]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error(
        "{path}: {entries} entries, more than the limit of {limit}; refusing it (zip bomb bound: is this an OSV export?)"
    )]
    TooManyEntries {
        path: PathBuf,
        entries: u64,
        limit: u64,
    },
    #[error(
        "{file} in {path}: larger than {limit} bytes uncompressed; refusing the import (bound on one record)"
    )]
    EntryTooLarge {
        path: PathBuf,
        file: String,
        limit: u64,
    },
    #[error(
        "{path}: more than {limit} bytes uncompressed in total (at {file}); refusing the import (zip bomb bound)"
    )]
    TotalTooLarge {
        path: PathBuf,
        file: String,
        limit: u64,
    },
    #[error("{file} in {path}: not a valid OSV record: {reason}")]
    BadRecord {
        path: PathBuf,
        file: String,
        reason: String,
    },
    #[error("{path} is neither a .zip file nor a folder of OSV .json records")]
    UnknownSource { path: PathBuf },
}
