//! The walk of a skill folder: no symlink is followed (each is a finding), special files are
//! findings, and every operator bound (entries, depth, file size, total bytes) is reported
//! when hit rather than silently applied. Files are opened with `O_NOFOLLOW`.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::out::{Loc, Out};
use crate::rules::R;
use crate::{ScanConfig, ScanError};

/// A regular file found by the walk.
#[derive(Debug)]
pub(crate) struct FileEntry {
    pub path: PathBuf,
    /// Relative to the skill folder, `/`-separated.
    pub rel: String,
}

fn whole(rel: &str) -> Loc {
    Loc {
        file: rel.to_owned(),
        line: 0,
        col: 0,
    }
}

/// Lists the regular files under `root` in a stable order: by name, the files of a directory
/// before those of its subdirectories.
pub(crate) fn walk(
    root: &Path,
    config: &ScanConfig,
    out: &mut Out,
) -> Result<Vec<FileEntry>, ScanError> {
    let meta = fs::symlink_metadata(root).map_err(|source| ScanError::Io {
        path: root.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ScanError::NotADirectory {
            path: root.to_owned(),
        });
    }
    let mut files = Vec::new();
    let mut entries = 0u64;
    // Directories still to list, last first so that the first name is listed first.
    let mut stack: Vec<(PathBuf, String, u32)> = vec![(root.to_owned(), String::new(), 0)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(source) if prefix.is_empty() => {
                return Err(ScanError::Io { path: dir, source });
            }
            Err(e) => {
                out.emit(
                    R::Unreadable,
                    &whole(&prefix),
                    format!("cannot list directory: {e}"),
                );
                continue;
            }
        };
        let mut names = Vec::new();
        for e in listing {
            match e {
                Ok(e) => names.push(e),
                Err(e) => out.emit(
                    R::Unreadable,
                    &whole(&prefix),
                    format!("cannot list directory: {e}"),
                ),
            }
        }
        names.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for e in names {
            entries += 1;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if entries > config.max_files {
                out.emit(
                    R::TooManyFiles,
                    &whole(&rel),
                    format!(
                        "more than {} entries; this one and the rest were not scanned",
                        config.max_files
                    ),
                );
                return Ok(files);
            }
            // DirEntry::file_type does not follow symlinks.
            let ft = match e.file_type() {
                Ok(ft) => ft,
                Err(err) => {
                    out.emit(R::Unreadable, &whole(&rel), format!("cannot stat: {err}"));
                    continue;
                }
            };
            if ft.is_symlink() {
                let target = fs::read_link(e.path())
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "?".to_owned());
                out.emit(
                    R::Symlink,
                    &whole(&rel),
                    format!("symbolic link to `{target}`, not followed"),
                );
            } else if ft.is_dir() {
                if depth + 1 > config.max_depth {
                    out.emit(
                        R::TooManyFiles,
                        &whole(&rel),
                        format!("deeper than {} directories; not scanned", config.max_depth),
                    );
                } else {
                    subdirs.push((e.path(), rel, depth + 1));
                }
            } else if ft.is_file() {
                files.push(FileEntry {
                    path: e.path(),
                    rel,
                });
            } else {
                out.emit(
                    R::SpecialFile,
                    &whole(&rel),
                    "not a regular file or directory",
                );
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(files)
}

/// Reads one file without following a symlink put there since the walk, up to `max` bytes.
/// `None` (with a finding) when it is not a regular file, is over the bound or unreadable.
pub(crate) fn read(entry: &FileEntry, max: u64, out: &mut Out) -> Option<Vec<u8>> {
    let loc = whole(&entry.rel);
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&entry.path);
    let file: File = match file {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            out.emit(
                R::Symlink,
                &loc,
                "became a symbolic link during the scan; not followed",
            );
            return None;
        }
        Err(e) => {
            out.emit(R::Unreadable, &loc, format!("cannot open: {e}"));
            return None;
        }
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => {
            out.emit(R::Unreadable, &loc, format!("cannot stat: {e}"));
            return None;
        }
    };
    if !meta.is_file() {
        out.emit(R::SpecialFile, &loc, "not a regular file");
        return None;
    }
    if meta.len() > max {
        out.emit(
            R::FileTooLarge,
            &loc,
            format!("{} bytes, over the bound of {max}; not scanned", meta.len()),
        );
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    if let Err(e) = file.take(max + 1).read_to_end(&mut bytes) {
        out.emit(R::Unreadable, &loc, format!("cannot read: {e}"));
        return None;
    }
    if bytes.len() as u64 > max {
        out.emit(
            R::FileTooLarge,
            &loc,
            format!("grew over the bound of {max} bytes while read; not scanned"),
        );
        return None;
    }
    Some(bytes)
}
