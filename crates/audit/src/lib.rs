//! The audit trail: one JSON record per line in `audit.log`, each carrying the hash of the one
//! before, so that an edited, deleted, inserted or reordered record breaks the chain.
//!
//! A record's hash is SHA-256 of `skillcell-audit-v1\n` followed by the record's canonical JSON
//! without its `hash` field; the first record's `prev` is 64 zeros. Appends take an exclusive
//! lock on `audit.lock`, read the last record, write the new line with `O_APPEND` and fsync it,
//! then update `audit.head` (the last sequence number and hash), which lets `verify` notice a
//! log cut short at its end. The trail lives apart from the registry so the executor, which
//! may not write the registry, can append to it.
//!
//! What it does not do: stop root from rewriting the whole file and head consistently. Ship
//! the head hash elsewhere (`skillcell audit verify --json` prints it) to pin a prefix.

mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use record::{Actor, Event, Record, Role};
use serde::Serialize;
use skillcell_types::Digest;

/// Opens a file of the trail without following a symlink and without blocking on a FIFO, and
/// checks that it is a regular file. The executor may write the audit dir, so anything in it
/// may have been planted to redirect the developer's writes or reads. (Hard links need no
/// check: Landlock lets the executor link only between `run/` and `audit/`.)
fn open_checked(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    let file = opts
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file (planted?)"));
    }
    Ok(file)
}

/// How long an append waits for another writer before giving up.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes the exclusive lock, polling, so that a lock held forever (by a stuck or hostile
/// process) becomes an error instead of a hang.
fn lock_with_timeout(lock: &File, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::other(format!(
                    "the audit trail stayed locked for {}s by another process",
                    timeout.as_secs()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// The lines of `file`, split on `\n` only, so that a stray `\r` stays part of its line.
fn raw_lines(file: File) -> io::Result<Vec<String>> {
    let mut bytes = Vec::new();
    BufReader::new(file).read_to_end(&mut bytes)?;
    let mut lines: Vec<String> = bytes
        .split(|b| *b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    Ok(lines)
}

/// Largest record line accepted, in bytes; longer `details` are cut before writing.
pub const MAX_RECORD_BYTES: usize = 32 * 1024;

/// Why the trail cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("audit trail {path} line {line} is not a record: {detail}")]
    Malformed {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

/// The audit trail in one directory.
#[derive(Debug, Clone)]
pub struct AuditLog {
    dir: PathBuf,
    lock_timeout: Duration,
}

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line in audit.log; 0 for the head file.
    pub line: usize,
    /// Stable code: `malformed`, `not_canonical`, `hash_mismatch`, `chain_broken`,
    /// `sequence_gap`, `head_mismatch`, `head_missing`, `log_unreadable`.
    pub code: &'static str,
    pub detail: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub records: usize,
    pub head: Option<Digest>,
    pub problems: Vec<Problem>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl AuditLog {
    /// The trail in `dir` (created on first append).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lock_timeout: LOCK_TIMEOUT,
        }
    }

    /// Replaces how long an append waits for the lock ([`LOCK_TIMEOUT`] by default).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    fn head_path(&self) -> PathBuf {
        self.dir.join("audit.head")
    }

    fn io<'a>(&'a self, path: &'a Path) -> impl Fn(io::Error) -> AuditError + 'a {
        move |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Appends `event` and returns the record written.
    pub fn append(&self, event: Event) -> Result<Record, AuditError> {
        let log = self.log_path();
        fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let lock_path = self.dir.join("audit.lock");
        let lock = open_checked(
            &lock_path,
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600),
        )
        .map_err(self.io(&lock_path))?;
        lock_with_timeout(&lock, self.lock_timeout).map_err(self.io(&lock_path))?;

        let mut file = open_checked(
            &log,
            OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .mode(0o600),
        )
        .map_err(self.io(&log))?;
        let (seq, prev) = match last_line(&mut file).map_err(self.io(&log))? {
            None => (1, Digest::from_bytes([0; 32])),
            Some(line) => {
                let last: Record =
                    serde_json::from_str(&line).map_err(|e| AuditError::Malformed {
                        path: log.clone(),
                        line: 0,
                        detail: format!("last record: {e}"),
                    })?;
                let next = last
                    .seq
                    .checked_add(1)
                    .ok_or_else(|| AuditError::Malformed {
                        path: log.clone(),
                        line: 0,
                        detail: "the last record's sequence number is out of range".into(),
                    })?;
                (next, last.hash)
            }
        };
        let record = Record::seal(seq, prev, event.bounded(MAX_RECORD_BYTES));
        let mut line = serde_json::to_string(&record).map_err(|e| AuditError::Malformed {
            path: log.clone(),
            line: 0,
            detail: e.to_string(),
        })?;
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(self.io(&log))?;
        file.sync_data().map_err(self.io(&log))?;
        // The line is the record; the head only guards against a cut-off tail. Failing here
        // would report an error for a record that was saved, so a head that cannot be
        // written is left behind, and `verify` reports `head_mismatch`.
        let _ = self.write_head(record.seq, &record.hash);
        drop(lock);
        Ok(record)
    }

    fn write_head(&self, seq: u64, hash: &Digest) -> Result<(), AuditError> {
        let head = self.head_path();
        let tmp = self.dir.join("audit.head.tmp");
        // Unlinking removes a planted symlink itself; create_new (O_EXCL) never follows one.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(self.io(&tmp)(e)),
            _ => {}
        }
        let mut f = open_checked(
            &tmp,
            OpenOptions::new().write(true).create_new(true).mode(0o600),
        )
        .map_err(self.io(&tmp))?;
        f.write_all(format!("{seq} {hash}\n").as_bytes())
            .map_err(self.io(&tmp))?;
        f.sync_data().map_err(self.io(&tmp))?;
        // rename replaces a symlink at `head` rather than writing through it.
        fs::rename(&tmp, &head).map_err(self.io(&head))
    }

    /// Every record, oldest first. Fails on the first line that is not a record.
    pub fn read_all(&self) -> Result<Vec<Record>, AuditError> {
        let log = self.log_path();
        let file = match open_checked(&log, OpenOptions::new().read(true)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&log)(e)),
        };
        let mut out = Vec::new();
        for (i, line) in raw_lines(file)
            .map_err(self.io(&log))?
            .into_iter()
            .enumerate()
        {
            out.push(
                serde_json::from_str(&line).map_err(|e| AuditError::Malformed {
                    path: log.clone(),
                    line: i + 1,
                    detail: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// Checks the whole chain and the head.
    pub fn verify(&self) -> Result<Verification, AuditError> {
        let log = self.log_path();
        let mut problems = Vec::new();
        let mut prev = Digest::from_bytes([0; 32]);
        let mut expected_seq = 1u64;
        let mut records = 0usize;
        let mut hashes = Vec::new();
        let opened = match open_checked(&log, OpenOptions::new().read(true)) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                problems.push(Problem {
                    line: 0,
                    code: "log_unreadable",
                    detail: format!("audit.log: {e}"),
                });
                None
            }
        };
        if let Some(file) = opened {
            for (i, line) in raw_lines(file)
                .map_err(self.io(&log))?
                .into_iter()
                .enumerate()
            {
                let n = i + 1;
                let record: Record = match serde_json::from_str(&line) {
                    Ok(r) => r,
                    Err(e) => {
                        problems.push(Problem {
                            line: n,
                            code: "malformed",
                            detail: e.to_string(),
                        });
                        continue;
                    }
                };
                records += 1;
                // The line must be exactly what append wrote: an added, repeated or reformatted
                // field changes no hash of the parsed record, but it changes the bytes.
                if serde_json::to_string(&record).ok().as_deref() != Some(line.as_str()) {
                    problems.push(Problem {
                        line: n,
                        code: "not_canonical",
                        detail: format!(
                            "record {} was edited: its bytes are not what was written",
                            record.seq
                        ),
                    });
                }
                if record.computed_hash() != record.hash {
                    problems.push(Problem {
                        line: n,
                        code: "hash_mismatch",
                        detail: format!("record {} was edited after it was written", record.seq),
                    });
                }
                if record.prev != prev {
                    problems.push(Problem {
                        line: n,
                        code: "chain_broken",
                        detail: format!(
                            "record {} does not follow the record before it (deleted, inserted or reordered records)",
                            record.seq
                        ),
                    });
                }
                if record.seq != expected_seq {
                    problems.push(Problem {
                        line: n,
                        code: "sequence_gap",
                        detail: format!("expected record {expected_seq}, found {}", record.seq),
                    });
                }
                expected_seq = record.seq.saturating_add(1);
                prev = record.hash;
                hashes.push((record.seq, record.hash));
            }
        }
        match self.read_head() {
            Err(e) => problems.push(Problem {
                line: 0,
                code: "head_mismatch",
                detail: format!("audit.head cannot be read: {e}"),
            }),
            Ok(None) if records > 0 => problems.push(Problem {
                line: 0,
                code: "head_missing",
                detail: "audit.head is missing".into(),
            }),
            Ok(None) => {}
            Ok(Some((seq, hash))) => {
                let last = hashes.last().copied();
                match last {
                    // One record beyond the head: an append died between the two writes.
                    Some((last_seq, _)) if Some(last_seq) == seq.checked_add(1) => {}
                    Some((last_seq, last_hash)) if last_seq == seq && last_hash == hash => {}
                    _ => problems.push(Problem {
                        line: 0,
                        code: "head_mismatch",
                        detail: format!(
                            "audit.head names record {seq} ({}), but the log ends at {}",
                            hash.short(),
                            last.map_or("no record".to_owned(), |(s, h)| format!(
                                "record {s} ({})",
                                h.short()
                            ))
                        ),
                    }),
                }
            }
        }
        Ok(Verification {
            records,
            head: hashes.last().map(|(_, h)| *h),
            problems,
        })
    }

    fn read_head(&self) -> Result<Option<(u64, Digest)>, AuditError> {
        let path = self.head_path();
        let mut text = String::new();
        match open_checked(&path, OpenOptions::new().read(true)) {
            Ok(f) => {
                f.take(256)
                    .read_to_string(&mut text)
                    .map_err(self.io(&path))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&path)(e)),
        }
        let malformed = || AuditError::Malformed {
            path: path.clone(),
            line: 1,
            detail: "expected `<seq> <hash>`".into(),
        };
        let (seq, hash) = text.trim().split_once(' ').ok_or_else(malformed)?;
        Ok(Some((
            seq.parse().map_err(|_| malformed())?,
            hash.parse().map_err(|_| malformed())?,
        )))
    }
}

/// The last complete line of `file`, without its newline.
fn last_line(file: &mut File) -> io::Result<Option<String>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let window = len.min(2 * MAX_RECORD_BYTES as u64 + 2);
    file.seek(SeekFrom::Start(len - window))?;
    let mut buf = Vec::with_capacity(usize::try_from(window).unwrap_or(0));
    file.take(window).read_to_end(&mut buf)?;
    let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let start = trimmed
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    Ok(Some(
        String::from_utf8_lossy(&trimmed[start..]).into_owned(),
    ))
}
