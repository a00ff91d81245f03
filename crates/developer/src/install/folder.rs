//! Copying a skill folder into staging through directory descriptors.

use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{
    AtFlags, CWD, Dir, FileType, Mode, OFlags, ResolveFlags, fstat, openat, openat2, readlinkat,
    statat,
};
use rustix::io::Errno;

use super::{Budget, InstallLimits, new_file, refuse};
use crate::DevError;

/// Copies a skill folder into `dst`, refusing anything that is not a plain file or directory
/// inside the folder.
///
/// The walk holds directory file descriptors and opens every entry relative to its parent with
/// `O_NOFOLLOW` (symlinks kept inside the folder are opened with `openat2` and
/// `RESOLVE_BENEATH`), then judges the opened descriptor with `fstat` and copies from that same
/// descriptor. Swapping a file, a directory or a parent for a symlink while the copy runs can
/// therefore not pull in anything from outside the folder. `O_NONBLOCK` keeps a FIFO swapped in
/// from blocking the install.
pub(super) fn stage_dir(
    src_root: &Path,
    dst_root: &Path,
    limits: &InstallLimits,
) -> Result<(), DevError> {
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
