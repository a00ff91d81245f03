//! `skillcell install PATH`: a folder, a `.zip` or a `.skill` archive into the store.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use rustix::fs::{
    AtFlags, CWD, Dir, FileType, Mode, OFlags, ResolveFlags, fstat, openat, openat2, readlinkat,
    statat,
};
use rustix::io::Errno;
use serde::Serialize;
use skillcell_audit::{Actor, Event};
use skillcell_manifest::Report;
use skillcell_store::tree::{self, TreeListing};
use skillcell_types::{Contract, Decision, Digest, SkillName};

use crate::fsutil::{Staging, force_remove_dir, make_read_only};
use crate::{DevError, Developer, HistoryRow, now};

/// Caps applied while copying or extracting a skill.
#[derive(Clone, Debug)]
pub struct InstallLimits {
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Largest skill, all files together (after extraction).
    pub max_total_bytes: u64,
    /// Most files and directories.
    pub max_entries: usize,
    /// Deepest directory nesting.
    pub max_depth: usize,
    /// Largest expansion ratio of an archive (uncompressed / compressed), for archives whose
    /// content exceeds one MiB.
    pub max_ratio: u64,
}

impl Default for InstallLimits {
    /// 32 MiB per file, 256 MiB per skill, 10 000 entries, depth 32, expansion ratio 100.
    fn default() -> Self {
        Self {
            max_file_bytes: 32 << 20,
            max_total_bytes: 256 << 20,
            max_entries: 10_000,
            max_depth: 32,
            max_ratio: 100,
        }
    }
}

/// Why a skill package was refused before its SKILL.md was even read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Stable code: `symlink_escape`, `symlink_dir`, `hard_link`, `special_file`,
    /// `absolute_member`, `dotdot_member`, `duplicate_member`, `symlink_member`, `file_too_large`,
    /// `too_many_entries`, `too_deep`, `zip_bomb`, `bad_name`, `not_a_skill`, `bad_archive`.
    pub code: &'static str,
    /// The file concerned, relative to the package.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {}",
            self.code,
            skillcell_types::text::escape(&self.path),
            skillcell_types::text::escape(&self.message)
        )
    }
}

fn refuse(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> DevError {
    DevError::Refused(Refusal {
        code,
        path: path.into(),
        message: message.into(),
    })
}

/// What `install` did.
#[derive(Clone, Debug, Serialize)]
pub struct InstallOutcome {
    pub name: SkillName,
    pub seq: u32,
    pub tree_hash: Digest,
    pub contract_hash: Digest,
    pub contract: Contract,
    pub files: usize,
    pub bytes: u64,
    /// The same tree and contract were already the current version: nothing changed.
    pub unchanged: bool,
    /// Warnings from the SKILL.md checks.
    pub warnings: Report,
}

struct Budget<'a> {
    limits: &'a InstallLimits,
    entries: usize,
    bytes: u64,
}

impl Budget<'_> {
    fn entry(&mut self, rel: &str, depth: usize) -> Result<(), DevError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(refuse(
                "too_many_entries",
                rel,
                format!(
                    "the skill has more than {} files and directories",
                    self.limits.max_entries
                ),
            ));
        }
        if depth > self.limits.max_depth {
            return Err(refuse(
                "too_deep",
                rel,
                format!("nested deeper than {} directories", self.limits.max_depth),
            ));
        }
        Ok(())
    }

    /// Copies at most the file cap from `src` to `dst`, counting against the total.
    fn copy(&mut self, rel: &str, src: &mut dyn Read, dst: &mut File) -> Result<u64, DevError> {
        let cap = self.limits.max_file_bytes;
        let mut limited = src.take(cap + 1);
        let n = io::copy(&mut limited, dst).map_err(DevError::io(rel))?;
        if n > cap {
            return Err(refuse(
                "file_too_large",
                rel,
                format!("larger than the {} byte cap per file", cap),
            ));
        }
        self.bytes += n;
        if self.bytes > self.limits.max_total_bytes {
            return Err(refuse(
                "zip_bomb",
                rel,
                format!(
                    "the skill expands beyond the {} byte cap",
                    self.limits.max_total_bytes
                ),
            ));
        }
        Ok(n)
    }
}

fn new_file(path: &Path, executable: bool) -> Result<File, DevError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
        .map_err(DevError::io(path))
}

/// Copies a skill folder into `dst`, refusing anything that is not a plain file or directory
/// inside the folder.
///
/// The walk holds directory file descriptors and opens every entry relative to its parent with
/// `O_NOFOLLOW` (symlinks kept inside the folder are opened with `openat2` and
/// `RESOLVE_BENEATH`), then judges the opened descriptor with `fstat` and copies from that same
/// descriptor. Swapping a file, a directory or a parent for a symlink while the copy runs can
/// therefore not pull in anything from outside the folder. `O_NONBLOCK` keeps a FIFO swapped in
/// from blocking the install.
fn stage_dir(src_root: &Path, dst_root: &Path, limits: &InstallLimits) -> Result<(), DevError> {
    let canon_root = src_root.canonicalize().map_err(DevError::io(src_root))?;
    let root = openat(
        CWD,
        &canon_root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| DevError::io(&canon_root)(e.into()))?;
    let mut budget = Budget {
        limits,
        entries: 0,
        bytes: 0,
    };
    fs::create_dir(dst_root).map_err(DevError::io(dst_root))?;
    let walk = Walk {
        root: &root,
        shown_root: &canon_root,
    };
    walk.copy_dir(&root, "", dst_root, 0, &mut budget)
}

/// Flags for opening an entry to read it: never follow, never block, never become a tty.
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

struct Walk<'a> {
    root: &'a OwnedFd,
    shown_root: &'a Path,
}

impl Walk<'_> {
    fn io(&self, rel: &str) -> impl FnOnce(rustix::io::Errno) -> DevError {
        let path = self.shown_root.join(rel);
        move |e| DevError::Io {
            path,
            source: e.into(),
        }
    }

    fn copy_dir(
        &self,
        dir: &OwnedFd,
        rel_dir: &str,
        dst: &Path,
        depth: usize,
        budget: &mut Budget<'_>,
    ) -> Result<(), DevError> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in Dir::read_from(dir).map_err(self.io(rel_dir))? {
            let entry = entry.map_err(self.io(rel_dir))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort();
        for raw in names {
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let name = std::str::from_utf8(&raw)
                .ok()
                .filter(|n| !n.chars().any(char::is_control))
                .ok_or_else(|| {
                    refuse(
                        "bad_name",
                        shown.as_str(),
                        "file names must be UTF-8 without control characters; rename it",
                    )
                })?;
            let rel = if rel_dir.is_empty() {
                name.to_owned()
            } else {
                format!("{rel_dir}/{name}")
            };
            budget.entry(&rel, depth + 1)?;
            let target = dst.join(name);
            // Classify before opening, so devices, FIFOs and sockets are never opened; the
            // opened descriptor is judged again below in case the entry was swapped.
            let pre = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(self.io(&rel))?;
            if !matches!(
                FileType::from_raw_mode(pre.st_mode),
                FileType::RegularFile | FileType::Directory | FileType::Symlink
            ) {
                return Err(special(&rel));
            }
            let fd = match openat(dir, name, read_flags(), Mode::empty()) {
                Ok(fd) => fd,
                // O_NOFOLLOW on a symlink.
                Err(Errno::LOOP) => {
                    let fd = self.open_symlink(dir, name, &rel)?;
                    let st = fstat(&fd).map_err(self.io(&rel))?;
                    match FileType::from_raw_mode(st.st_mode) {
                        FileType::RegularFile => {
                            // A symlink to a file inside the folder is stored as a copy of it.
                            self.copy_file(&rel, fd, &st, &target, budget)?;
                            continue;
                        }
                        FileType::Directory => {
                            return Err(refuse(
                                "symlink_dir",
                                &rel,
                                "symlinks to directories are not supported; make it a real directory",
                            ));
                        }
                        _ => return Err(special(&rel)),
                    }
                }
                // Opening a socket fails with ENXIO.
                Err(Errno::NXIO) => return Err(special(&rel)),
                Err(e) => return Err(self.io(&rel)(e)),
            };
            let st = fstat(&fd).map_err(self.io(&rel))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    fs::create_dir(&target).map_err(DevError::io(&target))?;
                    self.copy_dir(&fd, &rel, &target, depth + 1, budget)?;
                }
                FileType::RegularFile => self.copy_file(&rel, fd, &st, &target, budget)?,
                _ => return Err(special(&rel)),
            }
        }
        Ok(())
    }

    /// Opens what the symlink `rel` points to, only if it resolves inside the folder.
    fn open_symlink(&self, dir: &OwnedFd, name: &str, rel: &str) -> Result<OwnedFd, DevError> {
        let escape = |why: String| refuse("symlink_escape", rel, why);
        let target = readlinkat(dir, name, Vec::new())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        match openat2(
            self.root,
            rel,
            read_flags() - OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => Ok(fd),
            Err(Errno::XDEV) if target.starts_with('/') => Err(escape(format!(
                "absolute symlinks are refused, even into the folder (to {target}); make it relative or copy the file"
            ))),
            Err(Errno::XDEV) => Err(escape(format!(
                "the symlink leaves the skill folder (to {target}); copy what it needs into the folder"
            ))),
            Err(Errno::NOENT) => Err(escape(format!(
                "the symlink points nowhere (to {target}); remove it"
            ))),
            Err(Errno::NOSYS) => Err(escape(
                "this kernel lacks openat2, so symlinks cannot be resolved safely; replace the symlink with the file"
                    .into(),
            )),
            Err(Errno::NXIO) => Err(special(rel)),
            Err(e) => Err(escape(format!(
                "the symlink (to {target}) cannot be resolved inside the folder: {e}"
            ))),
        }
    }

    fn copy_file(
        &self,
        rel: &str,
        fd: OwnedFd,
        st: &rustix::fs::Stat,
        dst: &Path,
        budget: &mut Budget<'_>,
    ) -> Result<(), DevError> {
        if st.st_nlink > 1 {
            return Err(refuse(
                "hard_link",
                rel,
                "the file is a hard link, which can alias a file outside the folder; replace it with a copy",
            ));
        }
        let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
        if size > budget.limits.max_file_bytes {
            return Err(refuse(
                "file_too_large",
                rel,
                format!(
                    "{size} bytes; the cap per file is {}",
                    budget.limits.max_file_bytes
                ),
            ));
        }
        let mut input = File::from(fd);
        let mut out = new_file(dst, st.st_mode & 0o111 != 0)?;
        budget.copy(rel, &mut input, &mut out)?;
        Ok(())
    }
}

fn special(rel: &str) -> DevError {
    refuse(
        "special_file",
        rel,
        "devices, FIFOs and sockets cannot be part of a skill; remove it",
    )
}

/// The normalized relative path of an archive member, or a refusal.
fn member_path(raw: &[u8]) -> Result<(Vec<String>, bool), DevError> {
    let name = std::str::from_utf8(raw).map_err(|_| {
        refuse(
            "bad_name",
            String::from_utf8_lossy(raw),
            "member names must be UTF-8",
        )
    })?;
    if name.starts_with('/') || name.contains('\\') || name.get(1..2) == Some(":") {
        return Err(refuse(
            "absolute_member",
            name,
            "the archive member has an absolute path; archives must hold relative paths",
        ));
    }
    let is_dir = name.ends_with('/');
    let mut parts = Vec::new();
    for part in name.trim_end_matches('/').split('/') {
        match part {
            ".." => {
                return Err(refuse(
                    "dotdot_member",
                    name,
                    "the archive member climbs out with `..`; rebuild the archive from the skill folder",
                ));
            }
            "" | "." => {
                return Err(refuse(
                    "bad_name",
                    name,
                    "the archive member has an empty or `.` path component",
                ));
            }
            p if p.chars().any(char::is_control) => {
                return Err(refuse(
                    "bad_name",
                    name,
                    "member names must not contain control characters",
                ));
            }
            p => parts.push(p.to_owned()),
        }
    }
    Ok((parts, is_dir))
}

/// Reads the names in the archive's central directory ourselves and refuses duplicates.
///
/// Zip readers disagree on which of two same-named members wins (the `zip` crate silently
/// keeps one), so a reviewer's tool could show other bytes than the ones we would hash. Also
/// refuses zip64 directories and data in front of the first member, which no skill needs.
fn check_central_directory(
    archive: &Path,
    file: &mut File,
    limits: &InstallLimits,
) -> Result<(), DevError> {
    let shown = || archive.display().to_string();
    let bad = |msg: &str| refuse("bad_archive", shown(), msg.to_owned());
    let len = file.metadata().map_err(DevError::io(archive))?.len();
    if len > limits.max_total_bytes {
        return Err(refuse(
            "file_too_large",
            shown(),
            format!(
                "the archive is {len} bytes; the cap is {}",
                limits.max_total_bytes
            ),
        ));
    }
    let tail_len = len.min(22 + 65_535);
    file.seek(SeekFrom::Start(len - tail_len))
        .map_err(DevError::io(archive))?;
    let mut tail = vec![0u8; usize::try_from(tail_len).unwrap_or(0)];
    file.read_exact(&mut tail).map_err(DevError::io(archive))?;
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    // The end record must close the file exactly: its comment runs to the last byte. Readers
    // that search differently then cannot be steered to different directories.
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| {
            tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06]
                && i + 22 + usize::from(u16_at(&tail, i + 20)) == tail.len()
        })
        .ok_or_else(|| {
            bad("no end-of-central-directory record closing the file; not a plain zip archive")
        })?;
    // Another end-record signature before it (inside its comment or in trailing data) is a
    // second directory some reader might pick: refuse rather than guess.
    if (0..eocd).any(|i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06]) {
        return Err(bad(
            "the archive holds more than one end-of-central-directory record",
        ));
    }
    if u16_at(&tail, eocd + 4) != 0 || u16_at(&tail, eocd + 6) != 0 {
        return Err(bad("multi-disk archives are not supported"));
    }
    if u16_at(&tail, eocd + 8) != u16_at(&tail, eocd + 10) {
        return Err(bad("the end record's entry counts disagree"));
    }
    let entries = u16_at(&tail, eocd + 10);
    let cd_size = u32_at(&tail, eocd + 12);
    let cd_offset = u32_at(&tail, eocd + 16);
    if entries == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        return Err(bad("zip64 archives are not supported; skills are small"));
    }
    if usize::from(entries) > limits.max_entries {
        return Err(refuse(
            "too_many_entries",
            shown(),
            format!(
                "the archive has {entries} members; the cap is {}",
                limits.max_entries
            ),
        ));
    }
    let cd_end = u64::from(cd_offset) + u64::from(cd_size);
    let eocd_pos = len - tail_len + eocd as u64;
    if cd_end != eocd_pos {
        return Err(bad(
            "the central directory is not where the archive says; rebuild it with a standard zip tool",
        ));
    }
    file.seek(SeekFrom::Start(u64::from(cd_offset)))
        .map_err(DevError::io(archive))?;
    let mut cd = vec![0u8; usize::try_from(cd_size).unwrap_or(0)];
    file.read_exact(&mut cd).map_err(DevError::io(archive))?;
    let mut names = BTreeSet::new();
    let mut at = 0usize;
    let mut count = 0usize;
    while at < cd.len() {
        if cd.len() - at < 46 || cd[at..at + 4] != [0x50, 0x4b, 0x01, 0x02] {
            return Err(bad("malformed central directory"));
        }
        let name_len = usize::from(u16_at(&cd, at + 28));
        let extra_len = usize::from(u16_at(&cd, at + 30));
        let comment_len = usize::from(u16_at(&cd, at + 32));
        let name_end = at + 46 + name_len;
        if name_end > cd.len() {
            return Err(bad("malformed central directory"));
        }
        let name = cd[at + 46..name_end].to_vec();
        let canonical = String::from_utf8_lossy(&name)
            .trim_end_matches('/')
            .to_owned();
        if !names.insert(canonical.clone()) {
            return Err(refuse(
                "duplicate_member",
                canonical,
                "the archive holds this path twice; zip readers disagree on which one wins",
            ));
        }
        count += 1;
        at = name_end + extra_len + comment_len;
    }
    if count != usize::from(entries) {
        return Err(bad(
            "the central directory's entry count does not match its entries",
        ));
    }
    Ok(())
}

/// Extracts a zip archive into `dst_root`, with every cap checked against the bytes actually
/// produced (never the sizes the archive claims).
fn stage_zip(archive: &Path, dst_root: &Path, limits: &InstallLimits) -> Result<(), DevError> {
    // One open file for the check and the extraction: the archive cannot be swapped between.
    let mut file = File::open(archive).map_err(DevError::io(archive))?;
    check_central_directory(archive, &mut file, limits)?;
    file.seek(SeekFrom::Start(0))
        .map_err(DevError::io(archive))?;
    let archive_len = file.metadata().map_err(DevError::io(archive))?.len().max(1);
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        refuse(
            "bad_archive",
            archive.display().to_string(),
            format!("not a readable zip archive: {e}"),
        )
    })?;
    // Our own directory walk refused duplicates; the reader's view must agree with it.
    if zip.has_duplicate_names() {
        return Err(refuse(
            "duplicate_member",
            archive.display().to_string(),
            "the archive holds a path twice; zip readers disagree on which one wins",
        ));
    }
    zip.validate_header_consistency().map_err(|e| {
        refuse(
            "bad_archive",
            archive.display().to_string(),
            format!("local headers disagree with the central directory: {e}"),
        )
    })?;
    if zip.len() > limits.max_entries {
        return Err(refuse(
            "too_many_entries",
            archive.display().to_string(),
            format!(
                "the archive has {} members; the cap is {}",
                zip.len(),
                limits.max_entries
            ),
        ));
    }
    let mut budget = Budget {
        limits,
        entries: 0,
        bytes: 0,
    };
    fs::create_dir(dst_root).map_err(DevError::io(dst_root))?;
    let mut seen = BTreeSet::new();
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| {
            refuse(
                "bad_archive",
                format!("member {i}"),
                format!("unreadable member: {e}"),
            )
        })?;
        let (parts, is_dir_name) = member_path(member.name_raw())?;
        let rel = parts.join("/");
        if !seen.insert(rel.clone()) {
            return Err(refuse(
                "duplicate_member",
                &rel,
                "the archive holds this path twice; which one would be hashed is ambiguous",
            ));
        }
        budget.entry(&rel, parts.len())?;
        // Directories a member implies count against the caps like declared ones, or a few
        // thousand deep paths would create hundreds of thousands of directories.
        for depth in 1..parts.len() {
            let ancestor = parts[..depth].join("/");
            if !dirs.contains(&ancestor) {
                budget.entry(&ancestor, depth)?;
                dirs.insert(ancestor);
            }
        }
        let mode = member.unix_mode().unwrap_or(0);
        let kind = mode & 0o170000;
        if kind == 0o120000 {
            return Err(refuse(
                "symlink_member",
                &rel,
                "archives may not contain symlinks; store the file itself",
            ));
        }
        if kind != 0 && kind != 0o100000 && kind != 0o040000 {
            return Err(refuse(
                "special_file",
                &rel,
                "devices, FIFOs and sockets cannot be part of a skill",
            ));
        }
        let target = parts
            .iter()
            .fold(dst_root.to_path_buf(), |p, part| p.join(part));
        if member.is_dir() || is_dir_name || kind == 0o040000 {
            dirs.insert(rel.clone());
            fs::create_dir_all(&target).map_err(DevError::io(&target))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(DevError::io(parent))?;
        }
        if member.size() > limits.max_file_bytes {
            return Err(refuse(
                "file_too_large",
                &rel,
                format!(
                    "{} bytes; the cap per file is {}",
                    member.size(),
                    limits.max_file_bytes
                ),
            ));
        }
        let compressed = member.compressed_size().max(1);
        let mut out = new_file(&target, mode & 0o111 != 0)?;
        let n = budget.copy(&rel, &mut member, &mut out)?;
        if n > (1 << 20) && n / compressed > limits.max_ratio {
            return Err(refuse(
                "zip_bomb",
                &rel,
                format!(
                    "expands {}x; the cap is {}x",
                    n / compressed,
                    limits.max_ratio
                ),
            ));
        }
    }
    if budget.bytes > (1 << 20) && budget.bytes / archive_len > limits.max_ratio {
        return Err(refuse(
            "zip_bomb",
            archive.display().to_string(),
            format!(
                "the archive expands {}x; the cap is {}x",
                budget.bytes / archive_len,
                limits.max_ratio
            ),
        ));
    }
    Ok(())
}

/// Moves the extracted archive into `stage/<name>/`: SKILL.md at the top (named after the
/// archive) or one top-level folder holding SKILL.md.
fn locate_archive_skill(extracted: &Path, stage: &Path, stem: &str) -> Result<PathBuf, DevError> {
    if extracted.join("SKILL.md").is_file() {
        let dst = stage.join(stem);
        fs::rename(extracted, &dst).map_err(DevError::io(&dst))?;
        return Ok(dst);
    }
    let entries: Vec<PathBuf> = fs::read_dir(extracted)
        .map_err(DevError::io(extracted))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if let [only] = entries.as_slice()
        && only.is_dir()
        && only.join("SKILL.md").is_file()
    {
        let name = only
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let dst = stage.join(name);
        fs::rename(only, &dst).map_err(DevError::io(&dst))?;
        return Ok(dst);
    }
    Err(refuse(
        "not_a_skill",
        stem,
        "the archive holds no SKILL.md at its top or in its single top-level folder",
    ))
}

impl Developer {
    /// Installs the skill at `source` (folder, `.zip` or `.skill`). All or nothing.
    pub fn install(&mut self, source: &Path) -> Result<InstallOutcome, DevError> {
        let result = self.install_inner(source);
        if let Err(e) = &result {
            let reason = match e {
                DevError::Manifest(r) => {
                    format!("SKILL.md refused: {} error(s)", r.errors().count())
                }
                other => other.to_string(),
            };
            self.audit(
                self.event("install", Decision::Deny, reason)
                    .details(serde_json::json!({"source": source.display().to_string()})),
            )?;
        }
        result
    }

    fn install_inner(&mut self, source: &Path) -> Result<InstallOutcome, DevError> {
        let source = &source.canonicalize().map_err(DevError::io(source))?;
        let meta = fs::metadata(source).map_err(DevError::io(source))?;
        let staging = Staging::new(&self.home.staging_dir())
            .map_err(DevError::io(self.home.staging_dir()))?;
        let staged = if meta.is_dir() {
            let folder = source
                .canonicalize()
                .map_err(DevError::io(source))?
                .file_name()
                .map(|n| n.to_os_string())
                .ok_or_else(|| {
                    refuse(
                        "not_a_skill",
                        source.display().to_string(),
                        "not a skill folder",
                    )
                })?;
            let dst = staging.path.join(folder);
            stage_dir(source, &dst, &self.limits)?;
            dst
        } else {
            let file_name = source
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let stem = file_name
                .strip_suffix(".zip")
                .or_else(|| file_name.strip_suffix(".skill"))
                .ok_or_else(|| {
                    refuse(
                        "not_a_skill",
                        source.display().to_string(),
                        "install takes a skill folder, a .zip or a .skill archive",
                    )
                })?;
            let extracted = staging.path.join(".extract");
            stage_zip(source, &extracted, &self.limits)?;
            locate_archive_skill(&extracted, &staging.path, stem)?
        };

        let loaded = skillcell_manifest::load_dir(&staged).map_err(DevError::Manifest)?;
        let manifest = loaded.manifest;
        let listing: TreeListing = tree::hash_dir(&staged).map_err(|e| DevError::Io {
            path: staged.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        let contract_hash = manifest.contract.digest();
        let name = manifest.name.clone();

        if let Some(current) = self.current_hashes(name.as_str())?
            && current.0 == listing.hash
            && current.1 == contract_hash
            && current.3 == "usable"
        {
            self.audit(
                self.event("install", Decision::Allow, "already installed, unchanged")
                    .skill(name.as_str())
                    .version(listing.hash),
            )?;
            return Ok(InstallOutcome {
                name,
                seq: current.2,
                tree_hash: listing.hash,
                contract_hash,
                contract: manifest.contract,
                files: listing.files.len(),
                bytes: listing.total_bytes(),
                unchanged: true,
                warnings: loaded.report,
            });
        }

        let created_tree = self.place_tree(&staged, &listing.hash)?;
        match self.record_version(&manifest, &listing, &contract_hash, source) {
            Ok(seq) => Ok(InstallOutcome {
                name,
                seq,
                tree_hash: listing.hash,
                contract_hash,
                contract: manifest.contract,
                files: listing.files.len(),
                bytes: listing.total_bytes(),
                unchanged: false,
                warnings: loaded.report,
            }),
            Err(e) => {
                if created_tree {
                    let _ = force_remove_dir(&self.home.tree_dir(&listing.hash));
                }
                Err(e)
            }
        }
    }

    /// (tree hash, contract hash, seq, state) of the current version of `name`.
    fn current_hashes(
        &self,
        name: &str,
    ) -> Result<Option<(Digest, Digest, u32, String)>, DevError> {
        let row: Option<(String, String, u32, String)> = self
            .conn
            .query_row(
                "SELECT v.tree_hash, v.contract_hash, v.seq, v.state FROM skills s \
                 JOIN versions v ON v.id = s.current_version WHERE s.name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(row.and_then(|(t, c, s, st)| Some((t.parse().ok()?, c.parse().ok()?, s, st))))
    }

    /// Makes the staged tree read-only and moves it to `trees/<hash>`. Returns whether a new
    /// tree was created (false: an intact identical tree was already there).
    fn place_tree(&self, staged: &Path, hash: &Digest) -> Result<bool, DevError> {
        let dst = self.home.tree_dir(hash);
        if dst.exists() {
            let intact = tree::hash_dir(&dst)
                .map(|l| l.hash == *hash)
                .unwrap_or(false);
            if intact {
                return Ok(false);
            }
            // A tampered copy of the same content: replace it with the fresh one.
            force_remove_dir(&dst).map_err(DevError::io(&dst))?;
        }
        make_read_only(staged).map_err(DevError::io(staged))?;
        fs::rename(staged, &dst).map_err(DevError::io(&dst))?;
        // Re-check what landed: the bytes in the store are the bytes that were hashed.
        let landed = tree::hash_dir(&dst).map(|l| l.hash).ok();
        if landed != Some(*hash) {
            let _ = force_remove_dir(&dst);
            return Err(DevError::Io {
                path: dst,
                source: io::Error::other("the tree changed while it was being installed"),
            });
        }
        Ok(true)
    }

    fn record_version(
        &mut self,
        manifest: &skillcell_manifest::Manifest,
        listing: &TreeListing,
        contract_hash: &Digest,
        source: &Path,
    ) -> Result<u32, DevError> {
        let actor = self.actor_label();
        let at = now();
        let contract_json =
            serde_json::to_string(&manifest.contract).map_err(|e| DevError::Io {
                path: source.to_path_buf(),
                source: io::Error::other(e),
            })?;
        let name = manifest.name.as_str();
        let event = |seq: &u32, actor: &Actor| {
            Event::new(
                actor.clone(),
                "install",
                Decision::Allow,
                "installed and marked usable",
            )
            .skill(name)
            .version(listing.hash)
            .details(serde_json::json!({
                "source": source.display().to_string(),
                "seq": seq,
                "contract_hash": contract_hash.to_string(),
                "profile": manifest.contract.profile,
                "files": listing.files.len(),
                "bytes": listing.total_bytes(),
            }))
        };
        self.in_tx_audited(|tx| -> rusqlite::Result<u32> {
            tx.execute(
                "INSERT OR IGNORE INTO skills (name, current_version, created_at) VALUES (?1, NULL, ?2)",
                params![name, at],
            )?;
            let seq: u32 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM versions WHERE skill = ?1",
                params![name],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO versions (skill, seq, tree_hash, contract_hash, contract_json, \
                 description, source, file_count, total_bytes, installed_at, installed_by, \
                 state, state_reason, state_changed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'usable', NULL, ?10)",
                params![
                    name,
                    seq,
                    listing.hash.to_string(),
                    contract_hash.to_string(),
                    contract_json,
                    manifest.description,
                    source.display().to_string(),
                    i64::try_from(listing.files.len()).unwrap_or(i64::MAX),
                    i64::try_from(listing.total_bytes()).unwrap_or(i64::MAX),
                    at,
                    actor,
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE skills SET current_version = ?1 WHERE name = ?2",
                params![id, name],
            )?;
            HistoryRow {
                at: &at,
                skill: name,
                version_id: Some(id),
                tree_hash: Some(&listing.hash),
                event: "install",
                actor: &actor,
                detail: &format!("seq {seq} from {}", source.display()),
            }
            .insert(tx)?;
            Ok(seq)
        }, event)
    }
}

#[cfg(test)]
mod tests {
    use super::member_path;

    #[test]
    fn member_paths() {
        assert_eq!(
            member_path(b"skill/SKILL.md").map(|p| p.0).ok(),
            Some(vec!["skill".to_owned(), "SKILL.md".to_owned()])
        );
        assert!(member_path(b"skill/").map(|p| p.1).unwrap_or(false));
        for (bad, code) in [
            (&b"/etc/passwd"[..], "absolute_member"),
            (b"C:/x", "absolute_member"),
            (b"a\\b", "absolute_member"),
            (b"../x", "dotdot_member"),
            (b"a/../../x", "dotdot_member"),
            (b"a//b", "bad_name"),
            (b"\xff", "bad_name"),
        ] {
            match member_path(bad) {
                Err(crate::DevError::Refused(r)) => assert_eq!(r.code, code, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
