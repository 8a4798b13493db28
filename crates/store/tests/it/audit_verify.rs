//! Verification of the audit chain and its signed checkpoints (DESIGN.md security property 6):
//! every edit, delete, insert, reorder and truncation of the stored events is found, at the
//! right seq, on SQLite and Postgres.
//!
//! The mutation tests build one chain, keep a pristine copy of its rows, drop the append-only
//! triggers (as a database owner could), and then for each mutation: tamper, verify, restore.
//! Every row gets every field edited, is deleted, and is swapped with its neighbour; variants of
//! the edits, forged inserts and truncations run on every fifth row, the ends, and the rows
//! around the checkpoints (the cost is rows × chain length, in a debug build).

use domain::{AuditEvent, Id, IdKind};
use sqlx::AssertSqlSafe;
use store::audit::{self, AuditFilter, GENESIS_HASH, NewAuditEvent, event_hash};
use store::audit_checkpoint::{
    self, CHECKPOINT_PREFIX, Checkpoint, FoundCheckpoint, Signer, checkpoint_key,
};
use store::audit_verify::{VerifyReport, verify, verify_against};
use store::objects::Objects;
use store::{Db, Dialect};

use crate::database::TestDb;

/// Events in the mutation tests' chain.
const EVENTS: usize = 200;
/// Seqs of the signed checkpoints inside it (another one covers the last event).
const CP_A: i64 = 80;
const CP_B: i64 = 160;

async fn exec(db: &Db, sql: &str) {
    // Thousands of tampering commits: on Postgres they need not wait for the disk.
    let sql = match db.dialect() {
        Dialect::Postgres => format!("SET synchronous_commit = off; {sql}"),
        Dialect::Sqlite => sql.to_owned(),
    };
    sqlx::raw_sql(AssertSqlSafe(sql.clone()))
        .execute(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn all_events(db: &Db) -> Vec<AuditEvent> {
    audit::list(db, &AuditFilter::default(), 1_000_000)
        .await
        .unwrap()
}

/// Appends `count` varied events: single appends and batches, with and without actor and task,
/// data with nesting, escapes and non-ASCII text.
async fn grow_chain(db: &Db, count: usize) {
    let users: Vec<Id> = (0..3)
        .map(|_| Id::generate(IdKind::User).unwrap())
        .collect();
    let tasks: Vec<Id> = (0..4)
        .map(|_| Id::generate(IdKind::Task).unwrap())
        .collect();
    let mut made = 0;
    while made < count {
        let batch = (made % 7 + 1).min(count - made);
        let events: Vec<NewAuditEvent<'_>> = (0..batch)
            .map(|b| {
                let i = made + b;
                let kind = [
                    "task.created",
                    "task.status_changed",
                    "user.created",
                    "auth.failed",
                ][i % 4];
                let data = match i % 3 {
                    0 => serde_json::json!({"i": i, "command": "ls -la \"x\"\n", "tier": null}),
                    1 => {
                        serde_json::json!({"i": i, "nested": {"z": [1, 2.5, true], "a": "héllo ✓"}})
                    }
                    _ => serde_json::json!({"i": i}),
                };
                let mut event = NewAuditEvent::new(kind, data);
                if i % 2 == 0 {
                    event = event.actor(&users[i % users.len()]);
                }
                if i % 3 != 1 {
                    event = event.task(&tasks[i % tasks.len()]);
                }
                event
            })
            .collect();
        let mut tx = db.begin().await.unwrap();
        if batch == 1 {
            audit::append(&mut tx, events.into_iter().next().unwrap())
                .await
                .unwrap();
        } else {
            audit::append_many(&mut tx, events).await.unwrap();
        }
        tx.commit().await.unwrap();
        made += batch;
    }
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A chain to tamper with, restorable to its pristine state.
struct Lab {
    db: Db,
    events: Vec<AuditEvent>,
    /// Its checkpoints, read and checked once (checking signatures in a debug build is slow).
    checkpoints: Vec<FoundCheckpoint>,
}

impl Lab {
    /// A chain of [`EVENTS`] events with signed checkpoints at seqs `CP_A`, `CP_B` and at the end,
    /// a pristine copy of its rows, and the append-only triggers dropped.
    async fn new(db: Db) -> Lab {
        let objects = Objects::in_memory();
        let signer = Signer::from_seed(&[42u8; 32]);
        grow_chain(&db, CP_A as usize).await;
        audit_checkpoint::write_checkpoint(&db, &objects, &signer)
            .await
            .unwrap();
        grow_chain(&db, (CP_B - CP_A) as usize).await;
        audit_checkpoint::write_checkpoint(&db, &objects, &signer)
            .await
            .unwrap();
        grow_chain(&db, EVENTS - CP_B as usize).await;
        audit_checkpoint::write_checkpoint(&db, &objects, &signer)
            .await
            .unwrap();
        let events = all_events(&db).await;
        assert_eq!(events.len(), EVENTS);
        assert_eq!(
            objects.list(CHECKPOINT_PREFIX).await.unwrap(),
            [CP_A, CP_B, EVENTS as i64].map(checkpoint_key)
        );
        exec(
            &db,
            "CREATE TABLE audit_pristine AS SELECT * FROM audit_events",
        )
        .await;
        match db.dialect() {
            Dialect::Sqlite => {
                exec(
                    &db,
                    "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete",
                )
                .await
            }
            Dialect::Postgres => {
                exec(
                    &db,
                    "DROP TRIGGER audit_events_no_update ON audit_events; \
                     DROP TRIGGER audit_events_no_truncate ON audit_events; \
                     ALTER TABLE audit_events ALTER COLUMN data DROP NOT NULL",
                )
                .await
            }
        }
        let checkpoints = audit_checkpoint::load_all(&objects, &signer.verifier())
            .await
            .unwrap();
        assert!(checkpoints.iter().all(|c| c.checked.is_ok()));
        assert_eq!(
            verify(&db, Some((&objects, &signer.verifier())))
                .await
                .unwrap(),
            intact(EVENTS as u64)
        );
        let lab = Lab {
            db,
            events,
            checkpoints,
        };
        assert_eq!(lab.verify().await, intact(EVENTS as u64));
        lab
    }

    fn n(&self) -> i64 {
        self.events.len() as i64
    }

    fn event(&self, seq: i64) -> &AuditEvent {
        &self.events[seq as usize - 1]
    }

    fn hash_before(&self, seq: i64) -> String {
        if seq == 1 {
            GENESIS_HASH.to_owned()
        } else {
            self.event(seq - 1).hash.clone()
        }
    }

    async fn verify(&self) -> VerifyReport {
        verify_against(&self.db, self.checkpoints.clone())
            .await
            .unwrap()
    }

    async fn verify_without_checkpoints(&self) -> VerifyReport {
        verify(&self.db, None).await.unwrap()
    }

    /// Restores the rows `seqs`, removes rows outside the chain's seqs, and resets the head.
    async fn restore(&self, seqs: (i64, i64)) {
        let (lo, hi) = seqs;
        let last = self.events.last().unwrap();
        exec(
            &self.db,
            &format!(
                "DELETE FROM audit_events WHERE seq < 1 OR seq > {n} OR (seq >= {lo} AND seq <= {hi}); \
                 INSERT INTO audit_events SELECT * FROM audit_pristine \
                 WHERE seq >= {lo} AND seq <= {hi} ORDER BY seq; \
                 UPDATE audit_head SET seq = {n}, hash = '{}' WHERE id = 1",
                last.hash,
                n = last.seq,
            ),
        )
        .await;
    }

    async fn restore_all(&self) {
        self.restore((1, self.n())).await;
    }

    /// Applies `sql`, which changes no row outside `touched` (beyond adding rows outside the
    /// chain's seqs and moving the head), checks that verification reports the chain broken
    /// first at `seq`, and restores the chain.
    async fn expect_broken(&self, what: &str, sql: &str, seq: i64, touched: (i64, i64)) {
        exec(&self.db, sql).await;
        let report = self.verify().await;
        assert!(!report.ok, "{what}: not detected ({sql})");
        assert_eq!(
            report.first_broken_seq,
            Some(seq),
            "{what}: wrong seq ({sql}): {report:?}"
        );
        assert!(
            report.reason.as_deref().is_some_and(|r| !r.is_empty()),
            "{what}: {report:?}"
        );
        // Everything before the break was verified.
        assert_eq!(report.events, (seq.max(1) - 1) as u64, "{what}: {report:?}");
        self.restore(touched).await;
    }

    /// Moves rows `from..` up by one seq (two steps, so the primary key never collides).
    fn shift_up_sql(from: i64) -> String {
        format!(
            "UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= {from}; \
             UPDATE audit_events SET seq = -seq WHERE seq < 0"
        )
    }

    /// SQL that sets the head to `seq` (hash of that event).
    fn head_sql(&self, seq: i64) -> String {
        let hash = if seq == 0 {
            GENESIS_HASH.to_owned()
        } else {
            self.event(seq).hash.clone()
        };
        format!("UPDATE audit_head SET seq = {seq}, hash = '{hash}' WHERE id = 1")
    }
}

fn intact(events: u64) -> VerifyReport {
    VerifyReport {
        ok: true,
        events,
        first_broken_seq: None,
        reason: None,
    }
}

async fn every_mutation_is_detected(db: Db) {
    let lab = Lab::new(db).await;
    let n = lab.n();
    for k in 1..=n {
        let e = lab.event(k).clone();
        let row = format!("WHERE seq = {k}");
        let other_actor = if e.actor.is_some() {
            "NULL".to_owned()
        } else {
            sql_str("usr_forged")
        };
        let other_task = if e.task_id.is_some() {
            "NULL".to_owned()
        } else {
            sql_str("tsk_forged")
        };
        let changed_actor = match &e.actor {
            Some(a) => sql_str(&format!("{}x", a.as_str())),
            None => sql_str("usr_x"),
        };
        let mut edited_data = e.data.clone();
        edited_data["i"] = serde_json::json!(9999);
        let mut field_edits = vec![
            (
                "seq beyond the end",
                format!("UPDATE audit_events SET seq = {} {row}", n + 1000),
                k,
            ),
            (
                "at",
                format!("UPDATE audit_events SET at = at + 1 {row}"),
                k,
            ),
            (
                "type",
                format!(
                    "UPDATE audit_events SET type = {} {row}",
                    sql_str("task.deleted")
                ),
                k,
            ),
            (
                "actor",
                format!("UPDATE audit_events SET actor = {other_actor} {row}"),
                k,
            ),
            (
                "task_id",
                format!("UPDATE audit_events SET task_id = {other_task} {row}"),
                k,
            ),
            (
                "data",
                format!(
                    "UPDATE audit_events SET data = {} {row}",
                    sql_str(&edited_data.to_string())
                ),
                k,
            ),
            (
                "prev_hash",
                format!(
                    "UPDATE audit_events SET prev_hash = '{}' {row}",
                    "f".repeat(64)
                ),
                k,
            ),
            (
                "hash",
                format!("UPDATE audit_events SET hash = '{}' {row}", "f".repeat(64)),
                k,
            ),
            ("delete", format!("DELETE FROM audit_events {row}"), k),
        ];
        // Variants, and the inserts and truncations below, on a sample of rows.
        let sampled = k <= 2
            || k >= n - 1
            || k % 5 == 0
            || (CP_A - 1..=CP_A + 1).contains(&k)
            || (CP_B - 1..=CP_B + 1).contains(&k);
        if sampled {
            field_edits.extend([
                (
                    "seq below the start",
                    format!("UPDATE audit_events SET seq = {} {row}", -k),
                    -k,
                ),
                (
                    "actor changed",
                    format!("UPDATE audit_events SET actor = {changed_actor} {row}"),
                    k,
                ),
                (
                    "data not JSON",
                    format!("UPDATE audit_events SET data = 'garbage' {row}"),
                    k,
                ),
                (
                    "hash upper-cased",
                    format!("UPDATE audit_events SET hash = UPPER(hash) {row}"),
                    k,
                ),
            ]);
            // Values of the wrong type: SQLite stores whatever it is given; on Postgres a
            // database owner can drop a NOT NULL constraint (done in `Lab::new`).
            match lab.db.dialect() {
                Dialect::Sqlite => field_edits.extend([
                    (
                        "at as text",
                        format!("UPDATE audit_events SET at = 'yesterday' {row}"),
                        k,
                    ),
                    (
                        "seq as text",
                        format!("UPDATE audit_events SET seq = 'first' {row}"),
                        k,
                    ),
                    (
                        "actor as a number",
                        format!("UPDATE audit_events SET actor = 5 {row}"),
                        k,
                    ),
                    (
                        "data as a blob",
                        format!("UPDATE audit_events SET data = x'7b7d' {row}"),
                        k,
                    ),
                ]),
                Dialect::Postgres => field_edits.push((
                    "data NULL",
                    format!("UPDATE audit_events SET data = NULL {row}"),
                    k,
                )),
            }
        }
        for (what, sql, seq) in field_edits {
            lab.expect_broken(&format!("event {k}: {what}"), &sql, seq, (k, k))
                .await;
        }

        if !sampled {
            continue;
        }
        // A forged event inserted at k, the rows from k on renumbered and the head moved to
        // the end: a crude forgery breaks at k, a careful one (right prev_hash and hash) at
        // the next event, whose prev_hash no longer fits.
        let prev = lab.hash_before(k);
        let at = lab.event(k).at;
        let forged_hash = event_hash(
            k,
            at,
            "forged.event",
            None,
            None,
            &serde_json::json!({}),
            &prev,
        );
        // (Where a checkpoint signed event k, the careful forgery breaks it at once.)
        let careful_seq = if [CP_A, CP_B, n].contains(&k) {
            k
        } else {
            k + 1
        };
        for (what, hash, seq) in [
            ("crude", "f".repeat(64), k),
            ("careful", forged_hash, careful_seq),
        ] {
            let sql = format!(
                "{}; INSERT INTO audit_events (seq, at, type, actor, task_id, data, prev_hash, hash) \
                 VALUES ({k}, {}, 'forged.event', NULL, NULL, '{{}}', '{prev}', '{hash}'); \
                 UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1",
                Lab::shift_up_sql(k),
                at.as_millis(),
                n + 1,
                lab.event(n).hash
            );
            lab.expect_broken(&format!("insert before {k} ({what})"), &sql, seq, (k, n))
                .await;
        }

        // The tail from k on deleted, the head left alone: missing from k.
        lab.expect_broken(
            &format!("truncate from {k}"),
            &format!("DELETE FROM audit_events WHERE seq >= {k}"),
            k,
            (k, n),
        )
        .await;
        // The same with the head moved back: only the signed checkpoints show it.
        lab.expect_broken(
            &format!("truncate from {k}, head moved back"),
            &format!(
                "DELETE FROM audit_events WHERE seq >= {k}; {}",
                lab.head_sql(k - 1)
            ),
            k,
            (k, n),
        )
        .await;
    }

    // Swaps: neighbours everywhere, and some far apart.
    let mut pairs: Vec<(i64, i64)> = (1..n).map(|i| (i, i + 1)).collect();
    pairs.extend([(1, n), (3, 120), (CP_A - 1, CP_A + 1), (CP_A, CP_B)]);
    for (i, j) in pairs {
        let sql = format!(
            "UPDATE audit_events SET seq = -1 WHERE seq = {i}; \
             UPDATE audit_events SET seq = {i} WHERE seq = {j}; \
             UPDATE audit_events SET seq = {j} WHERE seq = -1"
        );
        lab.expect_broken(&format!("swap {i} and {j}"), &sql, i, (i, j))
            .await;
    }

    // The head itself.
    lab.expect_broken(
        "head beyond the end",
        &format!("UPDATE audit_head SET seq = {} WHERE id = 1", n + 5),
        n + 1,
        (0, 0),
    )
    .await;
    lab.expect_broken("head behind the end", &lab.head_sql(n - 3), n - 2, (0, 0))
        .await;
    lab.expect_broken(
        "head hash",
        &format!(
            "UPDATE audit_head SET hash = '{}' WHERE id = 1",
            "e".repeat(64)
        ),
        n,
        (0, 0),
    )
    .await;
    lab.expect_broken(
        "every event deleted, the head reset",
        &format!("DELETE FROM audit_events; {}", lab.head_sql(0)),
        1,
        (1, n),
    )
    .await;

    // A truncation with the head moved back is invisible to the chain alone: that is what the
    // checkpoints are for.
    exec(
        &lab.db,
        &format!(
            "DELETE FROM audit_events WHERE seq > 120; {}",
            lab.head_sql(120)
        ),
    )
    .await;
    assert_eq!(lab.verify_without_checkpoints().await, intact(120));
    let report = lab.verify().await;
    assert_eq!(report.first_broken_seq, Some(121), "{report:?}");
    let reason = report.reason.unwrap();
    assert!(
        reason.contains("events after seq 120 are missing") && reason.contains("checkpoint"),
        "{reason}"
    );
    lab.restore_all().await;

    // A careful rewrite from k on (an edit, every later hash recomputed, the head moved): only
    // a signed checkpoint at or after k shows it, at that checkpoint.
    for (k, checkpoint) in [
        (1, CP_A),
        (CP_A / 2, CP_A),
        (CP_A, CP_A),
        (CP_A + 1, CP_B),
        (CP_B + 1, EVENTS as i64),
    ] {
        let mut prev = lab.hash_before(k);
        let mut sql = String::new();
        for seq in k..=n {
            let e = lab.event(seq);
            let mut data = e.data.clone();
            if seq == k {
                data["i"] = serde_json::json!(-1);
            }
            let hash = event_hash(
                seq,
                e.at,
                &e.kind,
                e.actor.as_ref().map(Id::as_str),
                e.task_id.as_ref().map(Id::as_str),
                &data,
                &prev,
            );
            sql.push_str(&format!(
                "UPDATE audit_events SET data = {}, prev_hash = '{prev}', hash = '{hash}' \
                 WHERE seq = {seq}; ",
                sql_str(&data.to_string())
            ));
            prev = hash;
        }
        sql.push_str(&format!(
            "UPDATE audit_head SET seq = {n}, hash = '{prev}' WHERE id = 1"
        ));
        exec(&lab.db, &sql).await;
        assert_eq!(
            lab.verify_without_checkpoints().await,
            intact(EVENTS as u64)
        );
        let report = lab.verify().await;
        assert_eq!(
            report.first_broken_seq,
            Some(checkpoint),
            "rewrite from {k}: {report:?}"
        );
        assert!(
            report
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("signed checkpoint")),
            "{report:?}"
        );
        lab.restore_all().await;
    }
    assert_eq!(lab.verify().await, intact(EVENTS as u64));
}

#[tokio::test]
async fn every_mutation_is_detected_on_the_default_backend() {
    let test_db = TestDb::default_backend().await;
    every_mutation_is_detected(test_db.db.clone()).await;
}

#[tokio::test]
async fn postgres_every_mutation_is_detected() {
    let test_db = TestDb::postgres().await;
    every_mutation_is_detected(test_db.db.clone()).await;
}

async fn checkpoints_are_signed_and_checked(db: Db) {
    let objects = Objects::in_memory();
    let signer = Signer::from_seed(&[1u8; 32]);
    let verifier = signer.verifier();
    let check = || verify(&db, Some((&objects, &verifier)));

    // A fresh deployment: no events, no checkpoints, nothing to sign.
    assert_eq!(check().await.unwrap(), intact(0));
    assert_eq!(
        audit_checkpoint::write_checkpoint(&db, &objects, &signer)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        audit_checkpoint::latest_verified(&objects, &verifier)
            .await
            .unwrap(),
        None
    );

    grow_chain(&db, 30).await;
    let first = audit_checkpoint::write_checkpoint(&db, &objects, &signer)
        .await
        .unwrap()
        .expect("a checkpoint");
    assert_eq!(first.seq, 30);
    assert_eq!(first.hash, all_events(&db).await[29].hash);
    assert_eq!(verifier.check(&first), Ok(()));
    let stored: Checkpoint =
        serde_json::from_slice(&objects.get(&checkpoint_key(30)).await.unwrap().unwrap()).unwrap();
    assert_eq!(stored, first);
    let json: serde_json::Value =
        serde_json::from_slice(&objects.get(&checkpoint_key(30)).await.unwrap().unwrap()).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["at", "hash", "seq", "signature"]);

    grow_chain(&db, 10).await;
    let second = audit_checkpoint::write_checkpoint(&db, &objects, &signer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.seq, 40);
    assert_eq!(
        audit_checkpoint::latest_verified(&objects, &verifier)
            .await
            .unwrap(),
        Some(second.clone())
    );
    assert_eq!(check().await.unwrap(), intact(40));

    // Events after the newest checkpoint are fine.
    grow_chain(&db, 5).await;
    assert_eq!(check().await.unwrap(), intact(45));

    // A checkpoint signed by another key (a forger without the audit key).
    let forger = Signer::from_seed(&[2u8; 32]);
    let events = all_events(&db).await;
    let forged = forger.sign(35, &events[34].hash);
    objects
        .put(
            &checkpoint_key(35),
            serde_json::to_vec(&forged).unwrap().into(),
        )
        .await
        .unwrap();
    let report = check().await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_broken_seq, Some(35), "{report:?}");
    assert_eq!(report.events, 34);
    assert!(
        report.reason.as_deref().unwrap().contains("forged"),
        "{report:?}"
    );
    // The newest valid checkpoint is still found; the forged one is ignored there.
    assert_eq!(
        audit_checkpoint::latest_verified(&objects, &verifier)
            .await
            .unwrap(),
        Some(second.clone())
    );
    objects.delete(&checkpoint_key(35)).await.unwrap();

    // A genuine checkpoint whose content was changed (signature kept), one that is not JSON,
    // one moved to another name, and a forged one beyond the end of the chain.
    let bad_bodies: Vec<(i64, Vec<u8>)> = vec![
        (
            30,
            serde_json::to_vec(&Checkpoint {
                hash: events[30].hash.clone(),
                ..first.clone()
            })
            .unwrap(),
        ),
        (30, b"{not json".to_vec()),
        (31, serde_json::to_vec(&first).unwrap()),
        (
            500,
            serde_json::to_vec(&forger.sign(500, &"a".repeat(64))).unwrap(),
        ),
    ];
    for (seq, body) in bad_bodies {
        let original = objects.get(&checkpoint_key(seq)).await.unwrap();
        objects
            .put(&checkpoint_key(seq), body.into())
            .await
            .unwrap();
        let report = check().await.unwrap();
        assert_eq!(report.first_broken_seq, Some(seq), "{report:?}");
        assert!(!report.ok);
        match original {
            Some(data) => objects.put(&checkpoint_key(seq), data).await.unwrap(),
            None => objects.delete(&checkpoint_key(seq)).await.unwrap(),
        }
    }
    assert_eq!(check().await.unwrap(), intact(45));

    // Only the newest checkpoints are read: the newest valid one pins everything before it.
    let recent = audit_checkpoint::load_recent(&objects, &verifier, 1)
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].checked, Ok(second.clone()));
    let all = audit_checkpoint::load_all(&objects, &verifier)
        .await
        .unwrap();
    assert_eq!(all.iter().map(|c| c.seq).collect::<Vec<_>>(), [30, 40]);

    // Objects in the folder that are not checkpoints are ignored.
    objects
        .put(&format!("{CHECKPOINT_PREFIX}/README.txt"), "hi".into())
        .await
        .unwrap();
    assert_eq!(check().await.unwrap(), intact(45));
}

#[tokio::test]
async fn checkpoints_are_signed_and_checked_on_the_default_backend() {
    let test_db = TestDb::default_backend().await;
    checkpoints_are_signed_and_checked(test_db.db.clone()).await;
}

#[tokio::test]
async fn postgres_checkpoints_are_signed_and_checked() {
    let test_db = TestDb::postgres().await;
    checkpoints_are_signed_and_checked(test_db.db.clone()).await;
}

/// Truncation behind a checkpoint, with the head moved back as a careful attacker would, is
/// found; and the same truncation before any checkpoint existed is not (the documented limit).
#[tokio::test]
async fn truncation_behind_a_checkpoint_is_detected() {
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    let objects = Objects::in_memory();
    let signer = Signer::from_seed(&[3u8; 32]);
    grow_chain(&db, 20).await;
    audit_checkpoint::write_checkpoint(&db, &objects, &signer)
        .await
        .unwrap();
    grow_chain(&db, 5).await;
    let events = all_events(&db).await;
    let drop_triggers = match db.dialect() {
        Dialect::Sqlite => "DROP TRIGGER audit_events_no_delete",
        Dialect::Postgres => "DROP TRIGGER audit_events_no_update ON audit_events",
    };
    exec(&db, drop_triggers).await;
    exec(
        &db,
        &format!(
            "DELETE FROM audit_events WHERE seq > 12; \
             UPDATE audit_head SET seq = 12, hash = '{}' WHERE id = 1",
            events[11].hash
        ),
    )
    .await;
    assert_eq!(verify(&db, None).await.unwrap(), intact(12));
    let report = verify(&db, Some((&objects, &signer.verifier())))
        .await
        .unwrap();
    assert_eq!(
        report,
        VerifyReport {
            ok: false,
            events: 12,
            first_broken_seq: Some(13),
            reason: Some(format!(
                "events after seq 12 are missing: checkpoint at seq 20 ({})",
                checkpoint_key(20)
            )),
        }
    );
}

/// Verification reads the chain in pages: a chain longer than a page, with appends running
/// while it is verified, verifies (no false alarm from events committed during the check).
#[tokio::test]
async fn long_chains_verify_across_pages_while_appends_continue() {
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    let per_batch = 1000;
    for _ in 0..12 {
        let mut tx = db.begin().await.unwrap();
        audit::append_many(
            &mut tx,
            (0..per_batch)
                .map(|i| NewAuditEvent::new("bulk.event", serde_json::json!({"i": i})))
                .collect(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let mut tx = db.begin().await.unwrap();
                audit::append(
                    &mut tx,
                    NewAuditEvent::new("live.event", serde_json::json!({"i": i})),
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        })
    };
    let mut runs = 0;
    while !writer.is_finished() || runs == 0 {
        let report = verify(&db, None).await.unwrap();
        assert!(report.ok, "{report:?}");
        assert!(report.events >= 12_000, "{report:?}");
        runs += 1;
    }
    writer.await.unwrap();
    assert_eq!(verify(&db, None).await.unwrap(), intact(12_200));
}
