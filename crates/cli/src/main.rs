//! `skillcell`: the command-line front end. Thin: parses arguments, calls the role crates,
//! prints tables for people or JSON for machines (`--json`), and maps outcomes to exit codes
//! (documented in docs/cli.md and in `skillcell --help`).

mod approve;
mod commands;
mod keys;
mod output;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Failure;

/// Exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    /// An operation failed for a reason outside the input (I/O, database, kernel).
    pub const FAILURE: u8 = 1;
    /// Bad command-line usage.
    pub const USAGE: u8 = 2;
    /// The input was refused: invalid SKILL.md, unsafe package, nothing to roll back to.
    pub const REFUSED: u8 = 3;
    /// The named skill is not installed.
    pub const NOT_FOUND: u8 = 4;
    /// Integrity failure: tampered skill files or audit trail.
    pub const INTEGRITY: u8 = 5;
    /// The kernel lacks a feature the cell requires (`doctor`).
    pub const ENVIRONMENT: u8 = 6;
}

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 failure (I/O, database, kernel), 2 usage, 3 refused (invalid or unsafe \
input), 4 skill not found, 5 integrity failure (tampered files or audit trail), 6 kernel \
feature missing (doctor).

Data dir: --home, else $SKILLCELL_HOME, else $XDG_DATA_HOME/skillcell, else \
~/.local/share/skillcell.";

/// Run AI-agent skills you do not trust.
#[derive(Debug, Parser)]
#[command(name = "skillcell", version, after_help = AFTER_HELP)]
struct Cli {
    /// Print JSON for machines instead of tables for people.
    #[arg(long, global = true)]
    json: bool,
    /// The data dir (store, registry, audit trail).
    #[arg(long, global = true, value_name = "DIR", env = "SKILLCELL_HOME")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scaffold a new, spec-valid skill with a commented contract.
    New {
        /// Skill name: a-z, 0-9 and single hyphens.
        name: String,
        /// Where to create the skill folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Check a skill folder's SKILL.md and contract without installing it.
    Lint {
        /// The skill folder.
        path: PathBuf,
    },
    /// Install a skill (folder, .zip or .skill archive) into the store.
    Install {
        /// The skill folder or archive.
        path: PathBuf,
    },
    /// List installed skills.
    List,
    /// Show a skill: versions, contract in plain words, history.
    Show {
        /// Skill name.
        name: String,
    },
    /// Remove a skill and every version of it.
    Remove {
        /// Skill name.
        name: String,
    },
    /// Approve a pending version so it may run. A person at a terminal only: the review is
    /// shown on, and the confirmation (the skill's name, typed) read from, /dev/tty.
    Approve {
        /// Skill name.
        name: String,
        /// Version to approve (default: the current one).
        #[arg(long)]
        seq: Option<u32>,
        /// Accept the high findings of this rule id (repeatable); critical ones cannot be.
        #[arg(long = "accept-risk", value_name = "RULE")]
        accept_risk: Vec<String>,
    },
    /// Reject a version: it will not run, and its approval, if any, is withdrawn.
    Reject {
        /// Skill name.
        name: String,
        /// Version to reject (default: the current one).
        #[arg(long)]
        seq: Option<u32>,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
    /// Make a signing key for `skillcell sign` (mode 0600; never overwrites one).
    Keygen {
        /// Where to write it (default: keys/signing.key in the data dir).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Sign a skill folder: writes skillcell.sig, ed25519 over its tree hash (without that
    /// file) and its contract hash. Any later change to a file or the contract voids it.
    Sign {
        /// The skill folder.
        path: PathBuf,
        /// The signing key (default: keys/signing.key in the data dir).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// The operator's trusted signing keys.
    Trust {
        #[command(subcommand)]
        action: TrustAction,
    },
    /// Show the operator's admission policy, or set one of its keys.
    Policy {
        #[command(subcommand)]
        action: Option<PolicyAction>,
    },
    /// The offline advisory database install audits dependencies against: show it, or
    /// import OSV data (the per-ecosystem all.zip OSV publishes, a folder of records, or one).
    Advisories {
        #[command(subcommand)]
        action: Option<AdvisoriesAction>,
    },
    /// Make the previous usable version current again.
    Rollback {
        /// Skill name.
        name: String,
    },
    /// Re-hash every installed version; quarantine the tampered ones.
    Verify,
    /// List the audit trail, or verify its hash chain.
    Audit {
        #[command(subcommand)]
        action: Option<AuditAction>,
        /// Only records about this skill.
        #[arg(long)]
        skill: Option<String>,
        /// Only this operation (install, remove, rollback, verify, quarantine, resolve…).
        #[arg(long)]
        op: Option<String>,
        /// Only this decision.
        #[arg(long, value_parser = ["allow", "prompt", "deny"])]
        decision: Option<String>,
        /// Only the last N matching records.
        #[arg(long, value_name = "N")]
        last: Option<usize>,
    },
    /// Check the kernel features the cell needs, and how to fix what is missing.
    Doctor,
    /// Run an installed skill in a fresh cell. Exit status: the skill's own (128 + signal when
    /// killed); 125 when skillcell refused before starting it, 126 when the cell could not
    /// be built.
    Run {
        /// Skill name.
        name: String,
        /// Script to run, relative to the skill folder (default: `skillcell.entry`).
        script: Option<String>,
        /// JSON for the skill's stdin: inline, `@FILE`, or `@-` for this program's stdin.
        #[arg(long, value_name = "JSON|@FILE")]
        input: Option<String>,
        /// The directory a `$WORKSPACE` grant refers to.
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
        /// The directory another placeholder grant refers to (repeatable).
        #[arg(long = "path", value_name = "NAME=DIR")]
        paths: Vec<String>,
        /// Print the enforcement report on stderr after the run.
        #[arg(long)]
        report: bool,
        /// Arguments for the script (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TrustAction {
    /// Trust a public key (`ed25519:<hex>`, as `keygen` prints it).
    Add {
        key: String,
        /// Who the key belongs to, for reports.
        #[arg(long)]
        label: String,
    },
    /// Stop trusting a key.
    Remove { key: String },
    /// List the trusted keys.
    List,
}

#[derive(Debug, Subcommand)]
enum PolicyAction {
    /// Set KEY (require-signature, allow-pip-options) to yes or no.
    Set { key: String, value: String },
}

#[derive(Debug, Subcommand)]
enum AdvisoriesAction {
    /// Import OSV records; newer `modified` replaces older, all or nothing.
    Import { path: PathBuf },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Verify the hash chain: detects edited, deleted, inserted and reordered records.
    Verify,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let json = cli.json;
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            output::print_failure(&f, json);
            ExitCode::from(f.code)
        }
    }
}

impl Cli {
    fn home(&self) -> Result<skillcell_store::Home, Failure> {
        match &self.home {
            Some(p) => {
                let abs = if p.is_absolute() {
                    p.clone()
                } else {
                    std::env::current_dir()
                        .map_err(|e| Failure::internal("io", e.to_string()))?
                        .join(p)
                };
                skillcell_store::Home::at(abs).map_err(|e| Failure::usage(e.to_string()))
            }
            None => skillcell_store::Home::from_env().map_err(|e| Failure::usage(e.to_string())),
        }
    }
}
