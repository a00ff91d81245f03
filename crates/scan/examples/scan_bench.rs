//! Scans skill folders repeatedly and prints throughput.
//!
//! `cargo run --release -p skillcell-scan --example scan_bench -- [--rounds N] [--show] DIR...`
//! Each DIR is a skill folder, or a folder of skill folders (such as
//! `crates/scan/tests/fixtures/benign`). `--show` prints each report's findings once.

use std::path::{Path, PathBuf};
use std::time::Instant;

use skillcell_scan::{ScanConfig, scan_dir};
use skillcell_types::Contract;

fn skills(dir: &Path) -> Vec<PathBuf> {
    if dir.join("SKILL.md").is_file() {
        return vec![dir.to_owned()];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.join("SKILL.md").is_file());
    v.sort();
    v
}

fn main() {
    let mut rounds = 50u32;
    let mut show = false;
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(rounds),
            "--show" => show = true,
            _ => dirs.extend(skills(Path::new(&a))),
        }
    }
    if dirs.is_empty() {
        eprintln!("usage: scan_bench [--rounds N] [--show] DIR...");
        std::process::exit(2);
    }
    let contracts: Vec<(PathBuf, Contract)> = dirs
        .into_iter()
        .map(|d| {
            let c = skillcell_manifest::load_dir(&d)
                .map(|l| l.manifest.contract)
                .unwrap_or_else(|_| Contract::default_blind());
            (d, c)
        })
        .collect();
    let config = ScanConfig::default();

    let once = Instant::now();
    let (mut files, mut bytes) = (0u64, 0u64);
    for (d, c) in &contracts {
        match scan_dir(d, c, &config) {
            Ok(r) => {
                files += r.files_scanned;
                bytes += r.bytes_scanned;
                if show {
                    println!("{}: max {:?}", d.display(), r.max_severity);
                    for f in &r.findings {
                        println!(
                            "  {} {} {}:{}:{} {}",
                            f.rule, f.severity, f.file, f.line, f.col, f.message
                        );
                    }
                }
            }
            Err(e) => eprintln!("{}: {e}", d.display()),
        }
    }
    let first = once.elapsed();
    println!(
        "{} skills once: {files} files, {bytes} bytes in {:.1} ms",
        contracts.len(),
        first.as_secs_f64() * 1e3
    );

    let start = Instant::now();
    for _ in 0..rounds {
        for (d, c) in &contracts {
            let _ = scan_dir(d, c, &config);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let total_files = files as f64 * f64::from(rounds);
    let total_bytes = bytes as f64 * f64::from(rounds);
    println!(
        "{rounds} rounds: {secs:.2} s, {:.0} files/s, {:.2} MB/s, {:.2} ms per round",
        total_files / secs,
        total_bytes / secs / 1e6,
        secs * 1e3 / f64::from(rounds)
    );
}
