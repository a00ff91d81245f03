//! Fuzzes the SKILL.md parser with arbitrary bytes. Beyond "no crash": an accepted manifest
//! must parse to the same contract digest again, and no diagnostic may carry a raw control or
//! bidirectional character.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match skillcell_manifest::parse(data, "SKILL.md") {
        Ok((manifest, report)) => {
            assert!(!report.has_errors());
            let (again, _) = skillcell_manifest::parse(data, "SKILL.md").expect("deterministic");
            assert_eq!(manifest.contract.digest(), again.contract.digest());
            check_clean(&report);
        }
        Err(report) => {
            assert!(report.has_errors());
            check_clean(&report);
        }
    }
});

fn check_clean(report: &skillcell_manifest::Report) {
    for d in &report.0 {
        let shown = d.to_string();
        for c in shown.chars() {
            assert!(
                c == '\n' || skillcell_types_text_ok(c),
                "diagnostic carries U+{:04X}: {shown:?}",
                c as u32
            );
        }
    }
}

fn skillcell_types_text_ok(c: char) -> bool {
    !(c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200b}'..='\u{200f}'))
}
