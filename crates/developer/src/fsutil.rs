//! File-system helpers for staging and read-only trees.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Removes a directory tree even when it was made read-only.
pub(crate) fn force_remove_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    make_writable(path)?;
    fs::remove_dir_all(path)
}

fn make_writable(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
        for entry in fs::read_dir(path)? {
            make_writable(&entry?.path())?;
        }
    }
    Ok(())
}

/// Makes files 0444 (0555 when executable) and directories 0555, bottom-up.
pub(crate) fn make_read_only(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            make_read_only(&entry?.path())?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o555))
    } else {
        let exec = meta.permissions().mode() & 0o111 != 0;
        fs::set_permissions(
            path,
            fs::Permissions::from_mode(if exec { 0o555 } else { 0o444 }),
        )
    }
}

/// A staging dir removed on drop.
#[derive(Debug)]
pub(crate) struct Staging {
    pub path: PathBuf,
    armed: bool,
}

impl Staging {
    pub fn new(staging_root: &Path) -> io::Result<Self> {
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let path = staging_root.join(nonce);
        fs::create_dir(&path)?;
        Ok(Self { path, armed: true })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed {
            let _ = force_remove_dir(&self.path);
        }
    }
}
