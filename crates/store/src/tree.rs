//! The identity of a skill folder: a Merkle hash over its sorted relative paths, file modes and
//! content hashes.
//!
//! Each regular file contributes the line `<mode> <sha256 of content> <path>\n`, where mode is
//! `100755` when any execute bit is set and `100644` otherwise, and path is the `/`-separated
//! path relative to the folder. Lines are sorted by path bytes; the tree hash is the SHA-256 of
//! `skillcell-tree-v1\n` followed by the lines. Directories contribute only through the files
//! they hold (empty directories do not count). Anything but regular files and directories is an
//! error: the store never holds symlinks, devices, FIFOs or sockets.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use skillcell_types::{Digest, StreamingDigest};

/// One file of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TreeFile {
    pub path: String,
    pub executable: bool,
    pub digest: Digest,
    pub size: u64,
}

/// All files of a tree, sorted by path, and the tree hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TreeListing {
    pub hash: Digest,
    pub files: Vec<TreeFile>,
}

impl TreeListing {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Why a folder cannot be hashed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a regular file or directory")]
    NotRegular { path: PathBuf },
    #[error("{path}: file names must be UTF-8 without control characters")]
    BadName { path: PathBuf },
}

/// The tree hash of already-collected file entries.
pub fn hash_of(files: &[TreeFile]) -> Digest {
    let mut sorted: Vec<&TreeFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut text = String::from("skillcell-tree-v1\n");
    for f in sorted {
        let mode = if f.executable { "100755" } else { "100644" };
        text.push_str(&format!("{mode} {} {}\n", f.digest, f.path));
    }
    Digest::of(text.as_bytes())
}

/// Hashes the folder at `root` without following symlinks.
pub fn hash_dir(root: &Path) -> Result<TreeListing, TreeError> {
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(TreeListing {
        hash: hash_of(&files),
        files,
    })
}

/// The relative path of `path` under `root` as a `/`-separated UTF-8 string without control
/// characters, or `None`.
pub fn rel_name(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for c in rel.components() {
        let std::path::Component::Normal(os) = c else {
            return None;
        };
        let s = os.to_str()?;
        if s.chars().any(|c| c.is_control()) {
            return None;
        }
        parts.push(s);
    }
    Some(parts.join("/"))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<TreeFile>) -> Result<(), TreeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TreeError::Io { path, source }
    };
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let name =
                rel_name(root, &path).ok_or_else(|| TreeError::BadName { path: path.clone() })?;
            let digest = digest_file(&path).map_err(io(&path))?;
            out.push(TreeFile {
                path: name,
                executable: meta.permissions().mode() & 0o111 != 0,
                digest,
                size: meta.len(),
            });
        } else {
            return Err(TreeError::NotRegular { path });
        }
    }
    Ok(())
}

/// SHA-256 of a file's content, streamed.
pub fn digest_file(path: &Path) -> io::Result<Digest> {
    let mut f = fs::File::open(path)?;
    let mut h = StreamingDigest::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, content: &str, exec: bool) {
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, content).expect("write");
        let mode = if exec { 0o755 } else { 0o644 };
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn hash_covers_paths_modes_and_content() {
        let t = tempfile::tempdir().expect("tmp");
        let r = t.path();
        write(&r.join("SKILL.md"), "a", false);
        write(&r.join("scripts/run.py"), "b", true);
        let h1 = hash_dir(r).expect("hash").hash;
        assert_eq!(hash_dir(r).expect("hash").hash, h1, "stable");

        write(&r.join("scripts/run.py"), "b", false);
        let h_mode = hash_dir(r).expect("hash").hash;
        assert_ne!(h_mode, h1, "mode counts");

        write(&r.join("scripts/run.py"), "c", true);
        assert_ne!(hash_dir(r).expect("hash").hash, h1, "content counts");

        write(&r.join("scripts/run.py"), "b", true);
        fs::rename(r.join("scripts"), r.join("bin")).expect("mv");
        assert_ne!(hash_dir(r).expect("hash").hash, h1, "path counts");

        fs::rename(r.join("bin"), r.join("scripts")).expect("mv back");
        fs::create_dir(r.join("empty")).expect("mkdir");
        assert_eq!(
            hash_dir(r).expect("hash").hash,
            h1,
            "empty dirs do not count"
        );
    }

    #[test]
    fn symlinks_are_refused() {
        let t = tempfile::tempdir().expect("tmp");
        write(&t.path().join("SKILL.md"), "a", false);
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("link")).expect("symlink");
        assert!(matches!(
            hash_dir(t.path()),
            Err(TreeError::NotRegular { .. })
        ));
    }
}
