//! Extracting a zip or .skill archive into staging, with the caps counted on real bytes.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{Budget, InstallLimits, new_file, refuse};
use crate::DevError;

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
pub(super) fn stage_zip(
    archive: &Path,
    dst_root: &Path,
    limits: &InstallLimits,
) -> Result<(), DevError> {
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
pub(super) fn locate_archive_skill(
    extracted: &Path,
    stage: &Path,
    stem: &str,
) -> Result<PathBuf, DevError> {
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
