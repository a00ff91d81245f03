//! Install refuses dangerous packages and leaves nothing behind when it does.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use skillcell_developer::{DevError, InstallLimits};
use zip::write::SimpleFileOptions;

use crate::{Env, copy_dir, env, example, footprint};

/// Zips `dir` into `out`, under `prefix/` if given.
pub fn zip_dir(dir: &Path, prefix: Option<&str>, out: &Path) {
    let mut zip = zip::ZipWriter::new(fs::File::create(out).expect("create"));
    fn add(zip: &mut zip::ZipWriter<fs::File>, root: &Path, dir: &Path, prefix: Option<&str>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("read")
            .map(|e| e.expect("e"))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("rel")
                .to_string_lossy()
                .into_owned();
            let name = match prefix {
                Some(p) => format!("{p}/{rel}"),
                None => rel,
            };
            if e.file_type().expect("t").is_dir() {
                add(zip, root, &e.path(), prefix);
            } else {
                let mode = e.metadata().expect("m").permissions().mode();
                zip.start_file(name, SimpleFileOptions::default().unix_permissions(mode))
                    .expect("start");
                zip.write_all(&fs::read(e.path()).expect("read"))
                    .expect("write");
            }
        }
    }
    add(&mut zip, dir, dir, prefix);
    zip.finish().expect("finish");
}

/// Writes a zip whose members are (name, content) pairs.
fn zip_members(out: &Path, members: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(fs::File::create(out).expect("create"));
    for (name, content) in members {
        zip.start_file(*name, SimpleFileOptions::default())
            .expect("start");
        zip.write_all(content).expect("write");
    }
    zip.finish().expect("finish");
}

const SKILL_MD: &[u8] = b"---\nname: evil\ndescription: test package\n---\nbody\n";

/// Installs `source`, expects refusal `code`, and checks that nothing was left behind and that
/// the refusal was audited.
fn assert_refused(env: &mut Env, source: &Path, code: &str) {
    let before = footprint(env);
    match env.dev.install(source) {
        Err(DevError::Refused(r)) => assert_eq!(r.code, code, "{r}"),
        other => panic!(
            "{}: expected refusal {code}, got {other:?}",
            source.display()
        ),
    }
    assert_eq!(
        footprint(env),
        before,
        "a failed install left something behind"
    );
    let last = skillcell_audit::AuditLog::new(env.home.audit_dir())
        .read_all()
        .expect("audit")
        .pop()
        .expect("a record");
    assert_eq!(last.event.op, "install");
    assert_eq!(last.event.decision, skillcell_types::Decision::Deny);
    assert!(last.event.reason.contains(code), "{}", last.event.reason);
}

fn evil_folder(env: &Env) -> std::path::PathBuf {
    let dir = env.tmp.path().join("pkg/evil");
    fs::create_dir_all(dir.join("scripts")).expect("mkdir");
    fs::write(dir.join("SKILL.md"), SKILL_MD).expect("write");
    dir
}

#[test]
fn symlink_leaving_the_folder_is_refused() {
    let mut e = env();
    // Positive control: a symlink to a file inside the folder is stored as that file.
    let dir = evil_folder(&e);
    fs::write(dir.join("scripts/real.py"), "print(1)\n").expect("write");
    std::os::unix::fs::symlink("real.py", dir.join("scripts/alias.py")).expect("symlink");
    let ok = e.dev.install(&dir).expect("inner symlink is fine");
    let stored = e.home.tree_dir(&ok.tree_hash).join("scripts/alias.py");
    assert!(fs::symlink_metadata(&stored).expect("meta").is_file());
    e.dev.remove("evil").expect("remove");

    std::os::unix::fs::symlink("/etc/passwd", dir.join("scripts/passwd")).expect("symlink");
    assert_refused(&mut e, &dir, "symlink_escape");
}

#[test]
fn hard_link_is_refused() {
    let mut e = env();
    let dir = evil_folder(&e);
    let outside = e.tmp.path().join("secret.txt");
    fs::write(&outside, "secret").expect("write");
    fs::hard_link(&outside, dir.join("scripts/secret.txt")).expect("link");
    assert_refused(&mut e, &dir, "hard_link");
}

#[test]
fn device_file_and_fifo_are_refused() {
    let mut e = env();
    let dir = evil_folder(&e);
    let dev = dir.join("scripts/null");
    let st = Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .status()
        .expect("run mknod");
    assert!(
        st.success(),
        "mknod failed: this test needs root to create a device node"
    );
    assert_refused(&mut e, &dir, "special_file");
    fs::remove_file(&dev).expect("rm");

    let st = Command::new("mkfifo")
        .arg(dir.join("scripts/pipe"))
        .status()
        .expect("mkfifo");
    assert!(st.success());
    assert_refused(&mut e, &dir, "special_file");
}

#[test]
fn unix_socket_is_refused() {
    let mut e = env();
    let dir = evil_folder(&e);
    let _listener =
        std::os::unix::net::UnixListener::bind(dir.join("scripts/agent.sock")).expect("bind");
    assert_refused(&mut e, &dir, "special_file");
}

/// Writes, with Python's zipfile (which, unlike the zip crate's writer, writes duplicate
/// names, as an attacker's tool would), an archive holding `evil/run.py` twice; then runs
/// `post` with the archive's path in `p`.
fn python_duplicate_zip(out: &Path, post: &str) {
    let script = format!(
        "import zipfile, struct, warnings\nwarnings.simplefilter('ignore')\n\
         p = {out:?}\n\
         z = zipfile.ZipFile(p, 'w')\n\
         z.writestr('evil/SKILL.md', {md:?})\n\
         z.writestr('evil/run.py', 'print(1)')\n\
         z.writestr('evil/run.py', 'import os')\n\
         z.close()\n{post}",
        out = out.to_str().expect("utf8"),
        md = std::str::from_utf8(SKILL_MD).expect("utf8"),
    );
    let st = Command::new("python3")
        .args(["-c", &script])
        .status()
        .expect("python3");
    assert!(st.success());
}

#[test]
fn duplicate_archive_members_are_refused() {
    let mut e = env();
    let out = e.tmp.path().join("dup.zip");
    python_duplicate_zip(&out, "");
    assert_refused(&mut e, &out, "duplicate_member");
}

#[test]
fn duplicates_hidden_behind_a_fake_directory_in_the_comment_are_refused() {
    // Regression from review: a second end record inside the archive comment, with a bad
    // comment length, steered our duplicate check to a fake directory while the zip crate
    // read the real one.
    let mut e = env();
    let out = e.tmp.path().join("fake-eocd.zip");
    python_duplicate_zip(
        &out,
        r#"b = bytearray(open(p, 'rb').read())
n = len(b)
name = b'zz'
cd = struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 0,0,0,0,0,0,0,0,0, len(name),0,0,0,0,0,0) + name
eocd = struct.pack('<IHHHHIIH', 0x06054b50, 0,0,1,1, len(cd), n, 0xffff)
b[n-2:n] = struct.pack('<H', len(cd + eocd))
b += cd + eocd
open(p, 'wb').write(b)
"#,
    );
    let before = footprint(&e);
    match e.dev.install(&out) {
        Err(DevError::Refused(r)) => {
            assert!(["duplicate_member", "bad_archive"].contains(&r.code), "{r}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(footprint(&e), before);
}

#[test]
fn implied_directories_count_against_the_entry_cap() {
    // Regression from review: 3 000 members with deep unique paths created 90 000 directories.
    let mut e = env();
    e.dev = skillcell_developer::Developer::open(e.home.clone())
        .expect("open")
        .with_limits(InstallLimits {
            max_entries: 1000,
            ..InstallLimits::default()
        });
    let out = e.tmp.path().join("dirbomb.zip");
    let names: Vec<String> = (0..100)
        .map(|i| {
            let deep: Vec<String> = (0..20).map(|d| format!("d{i}x{d}")).collect();
            format!("evil/{}/f", deep.join("/"))
        })
        .collect();
    let mut members: Vec<(&str, &[u8])> = vec![("evil/SKILL.md", SKILL_MD)];
    members.extend(names.iter().map(|n| (n.as_str(), &b"x"[..])));
    zip_members(&out, &members);
    assert_refused(&mut e, &out, "too_many_entries");
}

#[test]
fn archive_members_with_dotdot_or_absolute_paths_are_refused() {
    let mut e = env();
    let dotdot = e.tmp.path().join("dotdot.zip");
    zip_members(
        &dotdot,
        &[("evil/SKILL.md", SKILL_MD), ("evil/../../escape.txt", b"x")],
    );
    assert_refused(&mut e, &dotdot, "dotdot_member");
    assert!(!e.tmp.path().join("escape.txt").exists());

    let abs = e.tmp.path().join("abs.zip");
    zip_members(
        &abs,
        &[
            ("evil/SKILL.md", SKILL_MD),
            ("/tmp/skillcell-abs-escape.txt", b"x"),
        ],
    );
    assert_refused(&mut e, &abs, "absolute_member");
    assert!(!Path::new("/tmp/skillcell-abs-escape.txt").exists());
}

#[test]
fn archive_symlink_member_is_refused() {
    let mut e = env();
    let out = e.tmp.path().join("link.zip");
    let mut zip = zip::ZipWriter::new(fs::File::create(&out).expect("create"));
    zip.start_file("evil/SKILL.md", SimpleFileOptions::default())
        .expect("start");
    zip.write_all(SKILL_MD).expect("write");
    zip.add_symlink("evil/passwd", "/etc/passwd", SimpleFileOptions::default())
        .expect("symlink");
    zip.finish().expect("finish");
    assert_refused(&mut e, &out, "symlink_member");
}

#[test]
fn zip_bombs_are_refused() {
    let mut e = env();
    // High ratio: 8 MiB of zeros compresses to a few KiB.
    let ratio = e.tmp.path().join("ratio.zip");
    let zeros = vec![0u8; 8 << 20];
    zip_members(
        &ratio,
        &[
            ("evil/SKILL.md", SKILL_MD),
            ("evil/assets/zeros.bin", &zeros),
        ],
    );
    assert_refused(&mut e, &ratio, "zip_bomb");

    // Total size over the cap, each file under the per-file cap.
    let mut small = crate::env();
    small.dev = skillcell_developer::Developer::open(small.home.clone())
        .expect("open")
        .with_limits(InstallLimits {
            max_total_bytes: 4 << 20,
            max_ratio: u64::MAX,
            ..InstallLimits::default()
        });
    let total = small.tmp.path().join("total.zip");
    let chunk = vec![7u8; 3 << 20];
    zip_members(
        &total,
        &[
            ("evil/SKILL.md", SKILL_MD),
            ("evil/a.bin", &chunk),
            ("evil/b.bin", &chunk),
        ],
    );
    assert_refused(&mut small, &total, "zip_bomb");
}

#[test]
fn oversized_file_is_refused() {
    let mut e = env();
    e.dev = skillcell_developer::Developer::open(e.home.clone())
        .expect("open")
        .with_limits(InstallLimits {
            max_file_bytes: 1024,
            ..InstallLimits::default()
        });
    let dir = evil_folder(&e);
    fs::write(dir.join("scripts/big.bin"), vec![1u8; 2048]).expect("write");
    assert_refused(&mut e, &dir, "file_too_large");
}

#[test]
fn invalid_skill_md_leaves_nothing_behind() {
    let mut e = env();
    let dir = e.tmp.path().join("pkg/weather-forecast");
    copy_dir(&example("weather-forecast"), &dir);
    let md = fs::read_to_string(dir.join("SKILL.md")).expect("read");
    fs::write(
        dir.join("SKILL.md"),
        md.replace(
            "skillcell.env: OPEN_METEO_UNITS",
            "skillcell.env: LD_PRELOAD",
        ),
    )
    .expect("write");
    let before = footprint(&e);
    match e.dev.install(&dir) {
        Err(DevError::Manifest(report)) => {
            assert!(
                report.to_string().contains("contract_env_dangerous"),
                "{report}"
            );
        }
        other => panic!("expected a manifest refusal, got {other:?}"),
    }
    assert_eq!(footprint(&e), before);
}

#[test]
fn swapping_a_file_for_a_symlink_during_install_never_copies_outside_files() {
    // Regression from review: each entry was checked by path, then opened again by path, so a
    // file swapped for a symlink in between was followed out of the folder.
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut e = env();
    let dir = evil_folder(&e);
    let secret = e.tmp.path().join("secret.txt");
    fs::write(&secret, "TOP SECRET outside").expect("secret");
    fs::write(dir.join("data"), "benign").expect("data");
    let stop = AtomicBool::new(false);
    let mut leaked = None;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let lnk = dir.join("lnk.tmp");
                let _ = fs::remove_file(&lnk);
                let _ = std::os::unix::fs::symlink(&secret, &lnk);
                let _ = fs::rename(&lnk, dir.join("data"));
                let reg = dir.join("reg.tmp");
                let _ = fs::write(&reg, "benign");
                let _ = fs::rename(&reg, dir.join("data"));
            }
        });
        'attempts: for _ in 0..300 {
            if let Ok(out) = e.dev.install(&dir) {
                let stored = e.home.tree_dir(&out.tree_hash);
                for f in fs::read_dir(&stored).into_iter().flatten().flatten() {
                    let p = f.path();
                    if fs::read_to_string(&p)
                        .unwrap_or_default()
                        .contains("TOP SECRET")
                    {
                        leaked = Some(p);
                        break 'attempts;
                    }
                }
            }
        }
        // Stop the swapper before judging, so a failure cannot leave it spinning.
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(leaked, None, "a file from outside the folder was stored");
}
