//! Granted host paths, opened once and held by descriptor: what is checked is what is used.
//!
//! A grant is `base/rest`: `base` is the path the caller chose (a workspace), `rest` the part
//! the contract names beneath it. Earlier runs with write access may have planted symlinks
//! beneath `base`, and a concurrent run may swap a directory for one between a check and a
//! later open by path. So a grant is opened with `openat2`: `base` refusing every symlink on
//! its path, then `rest` from that descriptor refusing symlinks and anything that resolves
//! outside it. Everything after (the native cell's bind mount, the executor's Landlock rule, a
//! WASM preopen) uses the descriptor, never the path again.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::sys::cell::{self as sys, resolve};

/// Why a grant could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct GrantOpenError {
    /// What was being opened, and the rule it must meet.
    pub what: String,
    #[source]
    pub source: io::Error,
}

/// An open grant: an `O_PATH` descriptor of the host directory or file.
#[derive(Debug)]
pub struct GrantFd {
    fd: OwnedFd,
    shown: PathBuf,
}

impl GrantFd {
    /// Opens `base/rest`. `rest` is relative; `..`, absolute paths and symlinks anywhere (in
    /// `base` too) are refused by the kernel.
    pub fn open(base: &Path, rest: &str) -> Result<Self, GrantOpenError> {
        let base_s = base.to_str().ok_or_else(|| GrantOpenError {
            what: format!("grant base {}", base.display()),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path is not UTF-8"),
        })?;
        if Path::new(rest)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(GrantOpenError {
                what: format!("grant path {rest} beneath {base_s}"),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it must be a plain relative path (no `..`, not absolute)",
                ),
            });
        }
        let flags = libc::O_PATH as u64 | libc::O_CLOEXEC as u64;
        let base_fd = sys::openat2(
            libc::AT_FDCWD,
            base_s,
            flags | libc::O_DIRECTORY as u64,
            resolve::NO_LINKS,
        )
        .map_err(|source| GrantOpenError {
            what: format!(
                "open grant base {base_s} (it must be a directory whose path contains no symlink)"
            ),
            source,
        })?;
        let fd = if rest.is_empty() {
            base_fd
        } else {
            sys::openat2(base_fd.as_raw_fd(), rest, flags, resolve::BENEATH_NO_LINKS).map_err(
                |source| GrantOpenError {
                    what: format!("open {rest} beneath {base_s} (symlinks are refused)"),
                    source,
                },
            )?
        };
        let shown = if rest.is_empty() {
            base.to_path_buf()
        } else {
            base.join(rest)
        };
        Ok(Self { fd, shown })
    }

    /// The path it was opened by (for messages and reports only).
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    pub fn is_dir(&self) -> io::Result<bool> {
        sys::is_dir(self.fd.as_raw_fd())
    }

    /// Where the open object is now, as the kernel names it.
    pub fn real_path(&self) -> io::Result<PathBuf> {
        std::fs::read_link(self.proc_path())
    }

    /// `/proc/self/fd/N`: opening it reopens this very object, whatever its path now leads
    /// to. Valid while `self` lives.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// How this grant and the directory `dir` overlap, judged by identity (device and inode)
    /// walking up `..` from each, not by comparing path strings: a bind mount or another path
    /// to the same directory is caught too.
    pub fn overlap_with(&self, dir: &Path) -> io::Result<Option<Overlap>> {
        let other = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let (mine, theirs) = (identity(self.fd.as_fd())?, identity(other.as_fd())?);
        if ancestry(self.fd.as_fd())?.contains(&theirs) {
            return Ok(Some(Overlap::Inside));
        }
        if ancestry(other.as_fd())?.contains(&mine) {
            return Ok(Some(Overlap::Contains));
        }
        Ok(None)
    }
}

/// How a grant overlaps a directory ([`GrantFd::overlap_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// The grant is the directory or lies beneath it.
    Inside,
    /// The directory lies beneath the grant.
    Contains,
}

/// Device and inode.
type Identity = (u64, u64);

fn identity(fd: BorrowedFd<'_>) -> io::Result<Identity> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// The identities of `fd` and of every directory above it, up to the root (whose `..` is
/// itself). Bounded: a path deeper than the kernel's own limit is an error.
fn ancestry(fd: BorrowedFd<'_>) -> io::Result<Vec<Identity>> {
    const MAX_DEPTH: usize = 4096;
    let mut seen = vec![identity(fd)?];
    let mut current = rustix::fs::openat(
        fd,
        "..",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    while seen.len() < MAX_DEPTH {
        let id = identity(current.as_fd())?;
        if seen.last() == Some(&id) {
            return Ok(seen);
        }
        seen.push(id);
        current = rustix::fs::openat(
            &current,
            "..",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    Err(io::Error::other(
        "the directory tree is deeper than 4096 levels",
    ))
}

impl AsFd for GrantFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn grants_refuse_symlinks_and_dot_dot_and_follow_the_object() {
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path().canonicalize().expect("canonical");
        fs::create_dir_all(base.join("a/b")).expect("mkdir");
        fs::create_dir_all(base.join("outside")).expect("mkdir");
        std::os::unix::fs::symlink(base.join("outside"), base.join("a/link")).expect("symlink");
        std::os::unix::fs::symlink(&base, dir.path().join("baselink")).expect("symlink");
        // Positive controls: the base itself and a plain subdirectory.
        let whole = GrantFd::open(&base, "").expect("base");
        assert_eq!(whole.real_path().expect("real"), base);
        let b = GrantFd::open(&base, "a/b").expect("a/b");
        assert!(b.is_dir().expect("stat"));
        for bad in [
            "a/link",
            "a/link/x",
            "a/../outside",
            "../",
            "/etc",
            "missing",
        ] {
            assert!(GrantFd::open(&base, bad).is_err(), "{bad} was opened");
        }
        assert!(GrantFd::open(&dir.path().join("baselink"), "a").is_err());
        // The descriptor stays on the directory it opened when the path is swapped.
        fs::rename(base.join("a/b"), base.join("moved")).expect("rename");
        std::os::unix::fs::symlink("/", base.join("a/b")).expect("plant");
        assert_eq!(b.real_path().expect("real"), base.join("moved"));
        let again = fs::metadata(b.proc_path()).expect("reopen");
        let moved = fs::metadata(base.join("moved")).expect("moved");
        use std::os::unix::fs::MetadataExt;
        assert_eq!((again.dev(), again.ino()), (moved.dev(), moved.ino()));
    }

    /// Overlap is judged by identity: the data dir reached through a bind mount elsewhere
    /// (another path, no common prefix) is still the data dir. Positive control: a sibling
    /// directory does not overlap. The bind mount is made in a private mount namespace of a
    /// child process (root is needed; skillcell doctor says so).
    #[test]
    fn overlap_is_judged_by_identity_not_path() {
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path().canonicalize().expect("canonical");
        for d in ["data/store", "alias", "sibling"] {
            fs::create_dir_all(base.join(d)).expect("mkdir");
        }
        let data = base.join("data");
        let at = |rest: &str| GrantFd::open(&base, rest).expect(rest);
        assert_eq!(
            at("data/store").overlap_with(&data).expect("walk"),
            Some(Overlap::Inside)
        );
        assert_eq!(
            at("").overlap_with(&data).expect("walk"),
            Some(Overlap::Contains)
        );
        assert_eq!(
            at("data").overlap_with(&data).expect("walk"),
            Some(Overlap::Inside)
        );
        assert_eq!(at("sibling").overlap_with(&data).expect("walk"), None);

        // Through a bind mount of the data dir at `alias`, in a child's own mount namespace.
        let script = format!(
            "mount --bind {d} {a} && {me} --exact grant::tests::overlap_child --nocapture --include-ignored",
            d = data.display(),
            a = base.join("alias").display(),
            me = std::env::current_exe().expect("exe").display(),
        );
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("OVERLAP_BASE", &base)
            .output()
            .expect("unshare (util-linux)");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("1 passed"),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run by [`overlap_is_judged_by_identity_not_path`] with `alias` bound to `data`.
    #[test]
    #[ignore = "run by overlap_is_judged_by_identity_not_path inside a mount namespace"]
    fn overlap_child() {
        let base = PathBuf::from(std::env::var_os("OVERLAP_BASE").expect("OVERLAP_BASE"));
        let data = base.join("data");
        let alias = GrantFd::open(&base, "alias/store").expect("alias/store");
        assert!(
            alias
                .real_path()
                .expect("real")
                .starts_with(base.join("alias"))
        );
        assert_eq!(
            alias.overlap_with(&data).expect("walk"),
            Some(Overlap::Inside)
        );
        let whole = GrantFd::open(&base, "alias").expect("alias");
        assert_eq!(
            whole.overlap_with(&data.join("store")).expect("walk"),
            Some(Overlap::Contains)
        );
    }
}
