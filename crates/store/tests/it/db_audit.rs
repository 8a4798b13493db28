//! The audit chain: consistent under concurrent appends, append-only, rolled back with its change
//! (security scenario 5's foundation; verification and checkpoints build on it).

use domain::{AuditEvent, Role};
use store::Db;
use store::audit::{self, AuditFilter, GENESIS_HASH, NewAuditEvent, event_hash};

use crate::database::{TestDb, queued_task, user};

async fn all_events(db: &Db) -> Vec<AuditEvent> {
    audit::list(db, &AuditFilter::default(), 100_000)
        .await
        .unwrap()
}

/// Every event links to the previous one and its hash is the hash of its own content.
fn assert_chain(events: &[AuditEvent]) {
    let mut prev = GENESIS_HASH.to_owned();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "no gaps");
        assert_eq!(
            e.prev_hash, prev,
            "event {} links to its predecessor",
            e.seq
        );
        let recomputed = event_hash(
            e.seq,
            e.at,
            &e.kind,
            e.actor.as_ref().map(|a| a.as_str()),
            e.task_id.as_ref().map(|t| t.as_str()),
            &e.data,
            &e.prev_hash,
        );
        assert_eq!(e.hash, recomputed, "event {} hash", e.seq);
        prev = e.hash.clone();
    }
}

async fn concurrent_appends_keep_one_chain(db: Db) {
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let mut tx = db.begin().await.unwrap();
                    audit::append(
                        &mut tx,
                        NewAuditEvent::new("test.event", serde_json::json!({"writer": w, "i": i})),
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let events = all_events(&db).await;
    assert_eq!(events.len(), 200);
    assert_chain(&events);
}

#[tokio::test]
async fn concurrent_appends_keep_one_chain_on_the_default_backend() {
    let test_db = TestDb::default_backend().await;
    concurrent_appends_keep_one_chain(test_db.db.clone()).await;
}

#[tokio::test]
async fn postgres_concurrent_appends_keep_one_chain() {
    let test_db = TestDb::postgres().await;
    concurrent_appends_keep_one_chain(test_db.db.clone()).await;
}

async fn events_are_append_only(db: Db) {
    let alice = user(&db, "alice", Role::Member).await;
    queued_task(&db, &alice, "ls").await;
    for statement in [
        "UPDATE audit_events SET type = 'edited' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
    ] {
        let err = sqlx::query(statement).execute(db.pool()).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    assert_chain(&all_events(&db).await);
}

#[tokio::test]
async fn audit_rows_cannot_be_updated_or_deleted() {
    let test_db = TestDb::default_backend().await;
    events_are_append_only(test_db.db.clone()).await;
}

#[tokio::test]
async fn postgres_audit_rows_cannot_be_updated_or_deleted() {
    let test_db = TestDb::postgres().await;
    events_are_append_only(test_db.db.clone()).await;
}

/// A change that is rolled back leaves no event behind, and the next event continues the chain.
#[tokio::test]
async fn a_rolled_back_change_leaves_no_event() {
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    let mut tx = db.begin().await.unwrap();
    store::users::insert(&mut tx, "ghost", Role::Member)
        .await
        .unwrap();
    audit::append(
        &mut tx,
        NewAuditEvent::new("user.created", serde_json::json!({})),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(all_events(&db).await.is_empty());
    let alice = user(&db, "alice", Role::Member).await;
    queued_task(&db, &alice, "ls").await;
    let events = all_events(&db).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "task.created");
    assert_chain(&events);
}

#[tokio::test]
async fn filters_select_by_task_actor_type_and_position() {
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    let alice = user(&db, "alice", Role::Member).await;
    let bob = user(&db, "bob", Role::Member).await;
    let t1 = queued_task(&db, &alice, "ls").await;
    queued_task(&db, &bob, "pwd").await;
    let by_task = audit::list(
        &db,
        &AuditFilter {
            task_id: Some(t1.task_id.clone()),
            ..AuditFilter::default()
        },
        100,
    )
    .await
    .unwrap();
    assert_eq!(by_task.len(), 1);
    assert_eq!(by_task[0].task_id.as_ref(), Some(&t1.task_id));
    let by_actor = audit::list(
        &db,
        &AuditFilter {
            actor: Some(bob.user_id.clone()),
            ..AuditFilter::default()
        },
        100,
    )
    .await
    .unwrap();
    assert!(
        by_actor
            .iter()
            .all(|e| e.actor.as_ref() == Some(&bob.user_id))
    );
    assert_eq!(by_actor.len(), 1);
    let after = audit::list(
        &db,
        &AuditFilter {
            after_seq: 1,
            kind: Some("task.created".to_owned()),
            ..AuditFilter::default()
        },
        100,
    )
    .await
    .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, 2);
}
