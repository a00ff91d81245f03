//! `approve` and `reject`.
//!
//! Approval is the one decision no agent-facing channel may take. This command shows the
//! review on the process's controlling terminal and reads the confirmation (the skill's name,
//! typed) from it, never from stdin or an argument, so a caller without a terminal (an MCP
//! client, a pipe, a skill) cannot approve. A program that drives a pseudo-terminal as the same
//! user still can: against that, the management gate (TOTP) is the next layer.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;

use skillcell_developer::Review;
use skillcell_store::Home;
use skillcell_types::text::escape;

use crate::commands::{dev_failure, open_dev};
use crate::output::{Failure, print_json};
use crate::{exit, outln};

/// Longest confirmation line read from the terminal.
const MAX_ANSWER: u64 = 256;

pub fn approve(
    home: &Home,
    name: &str,
    seq: Option<u32>,
    accept_risks: &[String],
    json: bool,
) -> Result<u8, Failure> {
    let mut tty = open_terminal()?;
    let mut dev = open_dev(home)?;
    let review = dev.review(name, seq).map_err(dev_failure)?;
    show_review(&mut tty, &review, accept_risks)?;
    let said = ask(
        &mut tty,
        &format!(
            "type the skill's name ({}) to approve version {}, anything else to stop: ",
            review.version.skill, review.version.seq
        ),
    )?;
    let approver = approver_label(&tty);
    if said != review.version.skill.as_str() {
        let _ = writeln!(tty, "not approved");
        return Err(Failure::new(
            exit::REFUSED,
            "not_confirmed",
            format!(
                "`{}` was not approved: the confirmation did not match",
                escape(name)
            ),
        ));
    }
    let out = dev
        .approve(name, Some(review.version.seq), accept_risks, &approver)
        .map_err(dev_failure)?;
    if json {
        print_json(&out)?;
    } else {
        outln!(
            "approved {} version {} (tree {}, contract {}); it may run now",
            escape(&out.name),
            out.seq,
            out.tree_hash.short(),
            out.contract_hash.short()
        );
    }
    Ok(exit::OK)
}

pub fn reject(
    home: &Home,
    name: &str,
    seq: Option<u32>,
    reason: &str,
    json: bool,
) -> Result<u8, Failure> {
    let mut dev = open_dev(home)?;
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let seq = dev
        .reject(name, seq, reason, &format!("{who} (reject command)"))
        .map_err(dev_failure)?;
    if json {
        print_json(&serde_json::json!({ "name": name, "seq": seq, "state": "rejected" }))?;
    } else {
        outln!("rejected {} version {seq}", escape(name));
    }
    Ok(exit::OK)
}

/// The controlling terminal, for reading and writing.
fn open_terminal() -> Result<File, Failure> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| {
            Failure::new(
                exit::REFUSED,
                "no_terminal",
                format!(
                    "approving needs a person at a terminal: run `skillcell approve` in an interactive terminal (it reads the confirmation from /dev/tty, which is not available here: {e})"
                ),
            )
        })
}

fn show_review(tty: &mut File, review: &Review, accept: &[String]) -> Result<(), Failure> {
    let v = &review.version;
    let mut text = format!(
        "skill {} version {} ({})\n  tree {}  contract {}\n  installed {} by {} from {}\n  state: {}\n",
        v.skill,
        v.seq,
        escape(&v.description),
        v.tree_hash,
        v.contract_hash,
        v.installed_at,
        escape(&v.installed_by),
        escape(&v.source),
        v.state
    );
    text.push_str("it will be able to:\n");
    for line in v.contract.describe() {
        text.push_str(&format!("  - {}\n", escape(&line)));
    }
    if review.findings.is_empty() {
        text.push_str("admission findings: none\n");
    } else {
        text.push_str(&format!(
            "admission findings ({}):\n",
            review.findings.len()
        ));
        for f in &review.findings {
            text.push_str(&crate::output::finding_line(f));
            text.push('\n');
        }
    }
    if !accept.is_empty() {
        text.push_str(&format!("accepting the risk of: {}\n", accept.join(", ")));
    }
    tty.write_all(text.as_bytes())
        .map_err(|e| Failure::internal("terminal", e.to_string()))
}

/// Prints `prompt` on the terminal and reads one line (trimmed) from it.
fn ask(tty: &mut File, prompt: &str) -> Result<String, Failure> {
    tty.write_all(prompt.as_bytes())
        .and_then(|()| tty.flush())
        .map_err(|e| Failure::internal("terminal", e.to_string()))?;
    let mut line = String::new();
    let reader = tty
        .try_clone()
        .map_err(|e| Failure::internal("terminal", e.to_string()))?;
    BufReader::new(std::io::Read::take(reader, MAX_ANSWER))
        .read_line(&mut line)
        .map_err(|e| Failure::internal("terminal", e.to_string()))?;
    Ok(line.trim().to_owned())
}

/// Who approved, for the record: the user and the terminal they typed on.
fn approver_label(tty: &File) -> String {
    let who = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown user".into());
    let term = std::fs::read_link(format!("/proc/self/fd/{}", tty.as_raw_fd()))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "a terminal".into());
    format!("{who} on {term}")
}
