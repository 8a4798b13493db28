//! `agenticai audit verify`, `GET /v1/audit-events` and `GET /v1/audit-events/verify`, and the
//! signed checkpoints the server writes (CONTRACT.md; DESIGN.md security property 6).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::support::{CliRun, Database, Deployment, Server, eventually, parse_time};

/// Drops the append-only triggers, as a database owner could, so a test can tamper.
fn drop_triggers(dep: &Deployment) -> bool {
    let sql = if dep.is_postgres() {
        "DROP TRIGGER audit_events_no_update ON audit_events; \
         DROP TRIGGER audit_events_no_truncate ON audit_events"
    } else {
        "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete"
    };
    if dep.sql(sql).is_none() {
        eprintln!("sqlite3 is not installed: the tampering checks are skipped");
        return false;
    }
    true
}

/// `ok: N events verified` → N.
fn verified_count(run: &CliRun) -> u64 {
    assert_eq!(run.code, Some(0), "{run}");
    let line = run.stdout.trim_end();
    assert_eq!(run.stdout.lines().count(), 1, "{run}");
    line.strip_prefix("ok: ")
        .and_then(|rest| rest.strip_suffix(" events verified"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not `ok: N events verified`: {run}"))
}

fn event_count(dep: &Deployment) -> Option<u64> {
    dep.sql("SELECT count(*) FROM audit_events")
        .map(|n| n.parse().expect("a count"))
}

fn checkpoint_dir(dep: &Deployment) -> PathBuf {
    dep.data_dir.join("objects/audit/checkpoints")
}

/// The checkpoint files, oldest first.
fn checkpoints(dep: &Deployment) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(checkpoint_dir(dep))
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn read_json(path: &PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON")
}

#[test]
fn verify_prints_ok_on_a_fresh_org() {
    let dep = Deployment::new();
    dep.org_init();
    dep.user_create("bob", "member");
    let run = dep.cli(&["audit", "verify"]);
    let n = verified_count(&run);
    assert!(n >= 3, "org init and user create write events: {run}");
    if let Some(count) = event_count(&dep) {
        assert_eq!(n, count, "{run}");
    }
    assert!(run.stdout.ends_with('\n'), "{run}");
}

#[test]
fn a_hand_edited_event_is_found_and_named() {
    let dep = Deployment::new();
    dep.org_init();
    dep.user_create("bob", "member");
    if !drop_triggers(&dep) {
        return;
    }
    dep.sql("UPDATE audit_events SET data = '{\"edited\":true}' WHERE seq = 2")
        .expect("sql");
    let run = dep.cli(&["audit", "verify"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.starts_with("tampered: event 2: "),
        "names the first broken event: {run}"
    );
    assert_eq!(run.stdout.lines().count(), 1, "{run}");

    // Deleting a row instead: the gap is named.
    let dep = Deployment::new();
    dep.org_init();
    dep.user_create("bob", "member");
    assert!(drop_triggers(&dep));
    dep.sql("DELETE FROM audit_events WHERE seq = 3")
        .expect("sql");
    let run = dep.cli(&["audit", "verify"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stdout.starts_with("tampered: event 3: "), "{run}");
    assert!(run.stdout.contains("missing"), "{run}");
}

#[test]
fn an_unreachable_database_is_exit_2() {
    let dep = Deployment::with_database(Database::Url(
        "postgres://postgres@127.0.0.1:1/nowhere".to_owned(),
    ));
    let run = dep.cli(&["audit", "verify"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stdout.trim().is_empty(), "{run}");
    assert!(run.stderr.contains("cannot check"), "{run}");

    // A SQLite deployment that was never set up: nothing is created, exit 2.
    let dep = Deployment::sqlite();
    let run = dep.cli(&["audit", "verify"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("does not exist"), "{run}");
    assert!(!dep.data_dir.join("agenticai.db").exists());
    assert!(!dep.data_dir.join("audit.key").exists());
}

/// The server signs a checkpoint at shutdown; deleting the newest events and moving the head
/// back (invisible to the chain alone) is then found, and so is a forged checkpoint.
#[tokio::test]
async fn truncation_behind_the_shutdown_checkpoint_is_found() {
    let mut server = Server::start().await;
    let org = server.org_init();
    let token = org.admin_token.clone();
    for i in 0..3 {
        server.create_command(&token, &format!("echo {i}")).await;
    }
    let status = server.stop().await;
    assert!(status.success(), "{status}");
    let dep = &server.dep;
    let total = event_count(dep);
    let files = checkpoints(dep);
    let newest = files.last().expect("a checkpoint written at shutdown");
    let checkpoint = read_json(newest);
    let mut keys: Vec<&String> = checkpoint.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["at", "hash", "seq", "signature"], "{checkpoint}");
    parse_time(&checkpoint["at"], "checkpoint at");
    let seq = checkpoint["seq"].as_i64().expect("seq");
    if let Some(total) = total {
        assert_eq!(seq as u64, total, "the final checkpoint covers every event");
    }
    assert_eq!(
        newest.file_name().and_then(|n| n.to_str()),
        Some(format!("{seq:020}.json").as_str())
    );
    assert_eq!(verified_count(&dep.cli(&["audit", "verify"])), seq as u64);

    if !drop_triggers(dep) {
        return;
    }
    let keep = seq - 2;
    let hash = dep
        .sql(&format!("SELECT hash FROM audit_events WHERE seq = {keep}"))
        .expect("sql");
    dep.sql(&format!(
        "DELETE FROM audit_events WHERE seq > {keep}; \
         UPDATE audit_head SET seq = {keep}, hash = '{hash}' WHERE id = 1"
    ))
    .expect("sql");
    let run = dep.cli(&["audit", "verify"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.starts_with(&format!(
            "tampered: event {}: events after seq {keep} are missing: checkpoint at seq {seq}",
            keep + 1
        )),
        "{run}"
    );

    // Without the audit key the checkpoints cannot be checked: exit 2, not a false "ok".
    let key = dep.data_dir.join("audit.key");
    let saved = std::fs::read(&key).expect("audit.key");
    std::fs::remove_file(&key).expect("remove audit.key");
    let run = dep.cli(&["audit", "verify"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("audit signing key"), "{run}");
    std::fs::write(&key, saved).expect("restore audit.key");
}

#[tokio::test]
async fn a_forged_checkpoint_is_tampering() {
    let mut server = Server::start().await;
    server.org_init();
    assert_eq!(server.stop().await.code(), Some(0));
    let dep = &server.dep;
    let files = checkpoints(dep);
    let newest = files.last().expect("a checkpoint");
    let mut forged = read_json(newest);
    forged["hash"] = Value::String("0".repeat(64));
    std::fs::write(newest, forged.to_string()).expect("write");
    let run = dep.cli(&["audit", "verify"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stdout.contains("forged"), "{run}");
}

#[tokio::test]
async fn checkpoints_are_written_while_serving() {
    let dep = Deployment::new().var("AGENTICAI_AUDIT_CHECKPOINT_EVERY", "1");
    let server = Server::start_with(dep).await;
    let org = server.org_init();
    let dep = &server.dep;
    let files = eventually(
        Duration::from_secs(15),
        "a checkpoint while serving",
        || async {
            let files = checkpoints(dep);
            (!files.is_empty()).then_some(files)
        },
    )
    .await;
    let checkpoint = read_json(files.last().expect("one"));
    assert!(
        checkpoint["seq"].as_i64().is_some_and(|s| s >= 1),
        "{checkpoint}"
    );
    let r = server
        .get("/v1/audit-events/verify", Some(&org.admin_token))
        .await;
    assert_eq!(r.expect(200)["ok"], true, "{}", r.text);
}

fn events(page: &Value) -> &Vec<Value> {
    page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array: {page}"))
}

#[tokio::test]
async fn admins_read_the_trail_in_pages_with_filters() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = Some(org.admin_token.as_str());
    let bob = server.dep.user_create("bob", "member");
    let task = server.create_command(&org.admin_token, "ls").await;
    let task_id = task["task_id"].as_str().expect("task_id").to_owned();
    server.create_command(&bob.token, "pwd").await;

    // Everything, oldest first, in the contract's shape.
    let all_page = server.get("/v1/audit-events", admin).await;
    let all = events(all_page.expect(200)).clone();
    assert!(all.len() >= 5, "{}", all_page.text);
    assert_eq!(all_page.json["next_after_seq"], Value::Null);
    let mut prev = "0".repeat(64);
    for (i, e) in all.iter().enumerate() {
        let mut keys: Vec<&String> = e.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "actor",
                "at",
                "data",
                "hash",
                "prev_hash",
                "seq",
                "task_id",
                "type"
            ],
            "{e}"
        );
        assert_eq!(e["seq"], i as u64 + 1, "{e}");
        assert_eq!(e["prev_hash"], prev.as_str(), "{e}");
        parse_time(&e["at"], "at");
        prev = e["hash"].as_str().expect("hash").to_owned();
    }

    // Pages of 2 walk the same events.
    let mut walked = Vec::new();
    let mut after = 0;
    loop {
        let r = server
            .get(
                &format!("/v1/audit-events?limit=2&after_seq={after}"),
                admin,
            )
            .await;
        let page = r.expect(200);
        let batch = events(page);
        assert!(batch.len() <= 2);
        walked.extend(batch.iter().cloned());
        match page["next_after_seq"].as_i64() {
            Some(next) => {
                assert_eq!(batch.len(), 2, "a full page has a next: {page}");
                assert_eq!(batch[1]["seq"], next);
                after = next;
            }
            None => {
                assert!(batch.len() < 2, "{page}");
                break;
            }
        }
    }
    assert_eq!(walked, all);

    // Filters.
    let r = server
        .get(&format!("/v1/audit-events?user_id={}", bob.user_id), admin)
        .await;
    let by_bob = events(r.expect(200));
    assert!(!by_bob.is_empty(), "{}", r.text);
    assert!(
        by_bob.iter().all(|e| e["actor"] == bob.user_id.as_str()),
        "{}",
        r.text
    );
    let r = server
        .get(&format!("/v1/audit-events?task_id={task_id}"), admin)
        .await;
    let by_task = events(r.expect(200));
    assert!(!by_task.is_empty(), "{}", r.text);
    assert!(
        by_task.iter().all(|e| e["task_id"] == task_id.as_str()),
        "{}",
        r.text
    );
    let r = server
        .get("/v1/audit-events?type=task.created&limit=1000", admin)
        .await;
    let created = events(r.expect(200));
    assert_eq!(created.len(), 2, "{}", r.text);
    assert!(created.iter().all(|e| e["type"] == "task.created"));
    let r = server
        .get("/v1/audit-events?type=no.such.type", admin)
        .await;
    assert!(events(r.expect(200)).is_empty());

    // Bad queries are 422.
    for query in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "after_seq=-1",
        "user_id=NOT%20AN%20ID",
        "task_id=",
        "unknown=1",
    ] {
        let r = server
            .get(&format!("/v1/audit-events?{query}"), admin)
            .await;
        r.expect_error(422, None);
    }

    // Verification, in the contract's shape.
    let r = server.get("/v1/audit-events/verify", admin).await;
    let report = r.expect(200);
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        report["events"]
            .as_u64()
            .is_some_and(|n| n >= all.len() as u64),
        "{report}"
    );
    assert_eq!(report["first_broken_seq"], Value::Null);
    assert_eq!(report["reason"], Value::Null);
    let mut keys: Vec<&String> = report.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["events", "first_broken_seq", "ok", "reason"]);

    // Members may not; nobody without a token may.
    for path in ["/v1/audit-events", "/v1/audit-events/verify"] {
        server
            .get(path, Some(&bob.token))
            .await
            .expect_error(403, Some("forbidden"));
        server.get(path, None).await.expect_error(401, None);
    }
}

#[tokio::test]
async fn the_api_reports_tampering() {
    let server = Server::start().await;
    let org = server.org_init();
    server.create_command(&org.admin_token, "ls").await;
    if !drop_triggers(&server.dep) {
        return;
    }
    server
        .dep
        .sql("UPDATE audit_events SET type = 'nothing.happened' WHERE seq = 1")
        .expect("sql");
    let r = server
        .get("/v1/audit-events/verify", Some(&org.admin_token))
        .await;
    let report = r.expect(200);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_broken_seq"], 1, "{report}");
    assert_eq!(report["events"], 0, "{report}");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("edited")),
        "{report}"
    );
}
