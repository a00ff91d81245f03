//! The chain detects edited, deleted, inserted and reordered records, and a cut-off tail; an
//! untouched trail verifies (positive control).

use std::fs;

use skillcell_audit::{Actor, AuditLog, Event, Role};
use skillcell_types::Decision;

fn trail(n: usize) -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().expect("tmp");
    let log = AuditLog::new(dir.path().join("audit"));
    for i in 0..n {
        let actor = Actor::current(Role::Developer);
        log.append(
            Event::new(actor, "install", Decision::Allow, format!("event {i}"))
                .skill(format!("skill-{i}")),
        )
        .expect("append");
    }
    (dir, log)
}

fn lines(log: &AuditLog) -> Vec<String> {
    fs::read_to_string(log.log_path())
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(log: &AuditLog, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(log.log_path(), text).expect("write");
}

fn codes(log: &AuditLog) -> Vec<&'static str> {
    log.verify()
        .expect("verify runs")
        .problems
        .iter()
        .map(|p| p.code)
        .collect()
}

#[test]
fn untouched_trail_verifies() {
    let (_d, log) = trail(5);
    let v = log.verify().expect("verify");
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.records, 5);
    let all = log.read_all().expect("read");
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(all[1].prev, all[0].hash);
}

#[test]
fn edited_record_is_detected() {
    let (_d, log) = trail(5);
    let mut l = lines(&log);
    l[2] = l[2].replace("\"decision\":\"allow\"", "\"decision\":\"deny\"");
    rewrite(&log, &l);
    assert!(codes(&log).contains(&"hash_mismatch"), "{:?}", codes(&log));
}

#[test]
fn edited_record_with_recomputed_hash_breaks_the_chain() {
    let (_d, log) = trail(5);
    let mut records = log.read_all().expect("read");
    records[2].event.reason = "nothing to see".into();
    records[2].hash = records[2].computed_hash();
    let l: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("json"))
        .collect();
    rewrite(&log, &l);
    assert!(codes(&log).contains(&"chain_broken"), "{:?}", codes(&log));
}

#[test]
fn deleted_record_is_detected() {
    let (_d, log) = trail(5);
    let mut l = lines(&log);
    l.remove(1);
    rewrite(&log, &l);
    let c = codes(&log);
    assert!(
        c.contains(&"chain_broken") && c.contains(&"sequence_gap"),
        "{c:?}"
    );
}

#[test]
fn deleted_last_record_is_detected_by_the_head() {
    let (_d, log) = trail(5);
    let mut l = lines(&log);
    l.pop();
    rewrite(&log, &l);
    assert_eq!(codes(&log), ["head_mismatch"]);
}

#[test]
fn reordered_records_are_detected() {
    let (_d, log) = trail(5);
    let mut l = lines(&log);
    l.swap(1, 3);
    rewrite(&log, &l);
    assert!(codes(&log).contains(&"chain_broken"), "{:?}", codes(&log));
}

#[test]
fn injected_newlines_stay_inside_one_record() {
    let (_d, log) = trail(1);
    let forged = "x\n{\"seq\":99,\"op\":\"approve\"}";
    log.append(Event::new(
        Actor::current(Role::Executor),
        "resolve",
        Decision::Deny,
        forged,
    ))
    .expect("append");
    assert_eq!(lines(&log).len(), 2);
    assert!(log.verify().expect("verify").ok());
    assert_eq!(log.read_all().expect("read")[1].event.reason, forged);
}

#[test]
fn concurrent_appends_keep_the_chain() {
    let (_d, log) = trail(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..25 {
                    log.append(Event::new(
                        Actor::current(Role::Executor),
                        "resolve",
                        Decision::Allow,
                        format!("{t}-{i}"),
                    ))
                    .expect("append");
                }
            });
        }
    });
    let v = log.verify().expect("verify");
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.records, 100);
}

#[test]
fn added_or_repeated_fields_are_detected() {
    // Regression from review: fields the parser drops or merges changed no hash.
    let (_d, log) = trail(3);
    let mut l = lines(&log);
    l[0] = l[0].replacen('{', "{\"approved_by\":\"security-team\",", 1);
    rewrite(&log, &l);
    assert!(codes(&log).contains(&"not_canonical"), "{:?}", codes(&log));

    let (_d, log) = trail(3);
    let mut l = lines(&log);
    l[1] = l[1].replacen('{', "{\"reason\":\"forged\",", 1);
    rewrite(&log, &l);
    let c = codes(&log);
    assert!(
        c.contains(&"not_canonical") || c.contains(&"malformed"),
        "{c:?}"
    );
}

fn one_event() -> Event {
    Event::new(
        Actor::current(Role::Developer),
        "verify",
        Decision::Allow,
        "x",
    )
}

#[test]
fn planted_symlinks_do_not_redirect_writes() {
    // Regression from review: the executor may create symlinks in the audit dir; the developer
    // must not write through them.
    let (d, log) = trail(1);
    let victim = d.path().join("victim.txt");
    fs::write(&victim, "precious").expect("victim");
    let dir = log.log_path().parent().expect("dir").to_path_buf();

    std::os::unix::fs::symlink(&victim, dir.join("audit.head.tmp")).expect("symlink");
    log.append(one_event())
        .expect("append replaces the planted link");
    assert_eq!(fs::read_to_string(&victim).expect("read"), "precious");
    assert!(log.verify().expect("verify").ok());

    fs::remove_file(dir.join("audit.head")).expect("rm head");
    std::os::unix::fs::symlink(&victim, dir.join("audit.head")).expect("symlink");
    log.append(one_event())
        .expect("rename replaces a linked head");
    assert_eq!(fs::read_to_string(&victim).expect("read"), "precious");

    fs::rename(log.log_path(), d.path().join("moved.log")).expect("move log");
    std::os::unix::fs::symlink(&victim, log.log_path()).expect("symlink");
    assert!(
        log.append(one_event()).is_err(),
        "a symlinked log is refused"
    );
    assert_eq!(fs::read_to_string(&victim).expect("read"), "precious");
}

#[test]
fn forged_huge_sequence_number_does_not_panic() {
    let (_d, log) = trail(1);
    let mut records = log.read_all().expect("read");
    records[0].seq = u64::MAX;
    records[0].hash = records[0].computed_hash();
    rewrite(&log, &[serde_json::to_string(&records[0]).expect("json")]);
    assert!(log.append(one_event()).is_err());
    assert!(!log.verify().expect("verify").ok());
}

#[test]
fn a_head_that_cannot_be_written_does_not_fail_a_saved_append() {
    // Regression from review: the line was saved, then the head write failed and the caller
    // was told the append failed, so it rolled back a change its record still claimed.
    let (_d, log) = trail(1);
    let dir = log.log_path().parent().expect("dir").to_path_buf();
    fs::remove_file(dir.join("audit.head")).expect("rm");
    fs::create_dir(dir.join("audit.head")).expect("plant a directory");
    log.append(one_event()).expect("the record is saved");
    assert_eq!(log.read_all().expect("read").len(), 2);
    assert!(codes(&log).contains(&"head_mismatch"), "{:?}", codes(&log));
}

#[test]
fn a_trailing_carriage_return_is_an_edit() {
    let (_d, log) = trail(2);
    let mut l = lines(&log);
    l[0].push('\r');
    rewrite(&log, &l);
    assert!(codes(&log).contains(&"not_canonical"), "{:?}", codes(&log));
}

#[test]
fn floats_in_details_verify() {
    // Regression from review: floats that do not round-trip made verify report tampering.
    let (_d, log) = trail(0);
    for i in 0..200u32 {
        let x = f64::from(i) * 0.1 + 1e-7 / f64::from(i + 3);
        log.append(one_event().details(serde_json::json!({"x": x, "y": x.sqrt()})))
            .expect("append");
    }
    let v = log.verify().expect("verify");
    assert!(v.ok(), "{:?}", v.problems);
}

#[test]
fn a_lock_held_forever_is_an_error_not_a_hang() {
    let (_d, log) = trail(1);
    let dir = log.log_path().parent().expect("dir").to_path_buf();
    let holder = fs::File::open(dir.join("audit.lock")).expect("open lock");
    holder.lock().expect("hold the lock");
    let impatient = log
        .clone()
        .with_lock_timeout(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    assert!(impatient.append(one_event()).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(holder);
    impatient.append(one_event()).expect("free again");
}
