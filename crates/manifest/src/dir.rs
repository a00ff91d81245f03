//! Checks that need the skill folder: the name matches the folder, SKILL.md is a regular file
//! of bounded size, and the entry point is a regular file inside the folder.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::diag::{Finding, Report};
use crate::split::MAX_SKILL_MD_BYTES;
use crate::{Manifest, parse};

/// A skill folder whose SKILL.md passed every check.
#[derive(Clone, Debug)]
pub struct LoadedSkill {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Warnings found; errors make [`load_dir`] fail instead.
    pub report: Report,
}

/// Reads and validates `dir/SKILL.md` and the folder-level rules.
pub fn load_dir(dir: &Path) -> Result<LoadedSkill, Report> {
    let skill_md = dir.join("SKILL.md");
    let file = skill_md.display().to_string();
    let whole = |f: Finding| Report(vec![f.in_file(&file)]);
    let meta = match fs::symlink_metadata(&skill_md) {
        Ok(m) => m,
        Err(e) => {
            let lower = dir.join("skill.md");
            let help = if lower.exists() {
                "rename skill.md to SKILL.md".to_owned()
            } else {
                format!("create {file} (`skillcell new NAME` scaffolds one)")
            };
            return Err(whole(
                Finding::error(
                    "missing_skill_md",
                    0,
                    0,
                    format!("cannot read SKILL.md: {e}"),
                )
                .help(help),
            ));
        }
    };
    if !meta.file_type().is_file() {
        return Err(whole(
            Finding::error("skill_md_not_file", 0, 0, "SKILL.md is not a regular file")
                .help("SKILL.md must be a plain file, not a symlink or a directory"),
        ));
    }
    let mut bytes = Vec::new();
    let read = fs::File::open(&skill_md).and_then(|f| {
        f.take(MAX_SKILL_MD_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
    });
    if let Err(e) = read {
        return Err(whole(Finding::error(
            "missing_skill_md",
            0,
            0,
            format!("cannot read SKILL.md: {e}"),
        )));
    }
    let (manifest, mut report) = parse(&bytes, &file)?;
    let mut extra = Vec::new();
    let folder = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    if folder.as_deref() != Some(manifest.name.as_str()) {
        extra.push(
            Finding::error(
                "name_mismatch",
                0,
                0,
                format!(
                    "name `{}` does not match the folder name `{}`",
                    manifest.name,
                    folder.as_deref().unwrap_or("?")
                ),
            )
            .key("name")
            .help(format!(
                "rename the folder to `{}` or change `name:`",
                manifest.name
            )),
        );
    }
    if let Some(entry) = &manifest.contract.entry
        && let Err(why) = check_entry(dir, entry)
    {
        extra.push(
            Finding::error("entry_not_file", 0, 0, format!("entry `{entry}` {why}"))
                .key("metadata.skillcell.entry")
                .help("point skillcell.entry at a regular file inside the skill folder"),
        );
    }
    report.0.extend(extra.into_iter().map(|f| f.in_file(&file)));
    if report.has_errors() {
        return Err(report);
    }
    Ok(LoadedSkill {
        dir: dir.to_path_buf(),
        manifest,
        report,
    })
}

/// Walks `entry` component by component without following symlinks.
fn check_entry(dir: &Path, entry: &str) -> Result<(), String> {
    let mut at = dir.to_path_buf();
    let parts: Vec<Component<'_>> = Path::new(entry).components().collect();
    for (i, part) in parts.iter().enumerate() {
        let Component::Normal(name) = part else {
            return Err("is not a plain relative path".into());
        };
        at.push(name);
        let meta = fs::symlink_metadata(&at).map_err(|_| "does not exist".to_owned())?;
        let last = i + 1 == parts.len();
        if meta.file_type().is_symlink() {
            return Err("goes through a symlink".into());
        }
        if last && !meta.file_type().is_file() {
            return Err("is not a regular file".into());
        }
        if !last && !meta.is_dir() {
            return Err("does not exist".into());
        }
    }
    Ok(())
}
