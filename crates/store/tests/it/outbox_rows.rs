//! The outbox on SQLite or Postgres: deduplicated on enqueue, claimed by one sender at a time,
//! retried, given up, and message ids kept.

use std::time::Duration;

use domain::Timestamp;
use store::outbox::{self, NewMessage};

use crate::database::TestDb;

fn msg(key: &str, chat_id: i64) -> NewMessage {
    NewMessage {
        dedupe_key: key.to_owned(),
        chat_id,
        method: "sendMessage".to_owned(),
        payload: format!(r#"{{"method":"sendMessage","html":"{key}"}}"#),
    }
}

async fn enqueue(db: &store::Db, messages: &[NewMessage]) -> u64 {
    let mut tx = db.begin().await.unwrap();
    let n = outbox::enqueue(&mut tx, messages).await.unwrap();
    tx.commit().await.unwrap();
    n
}

#[tokio::test]
async fn messages_are_deduplicated_claimed_once_and_kept_in_order() {
    let t = TestDb::default_backend().await;
    let batch: Vec<NewMessage> = (0..12).map(|i| msg(&format!("k{i:02}"), 1)).collect();
    assert_eq!(enqueue(&t.db, &batch).await, 12);
    assert_eq!(enqueue(&t.db, &[msg("k03", 1), msg("new", 2)]).await, 1);
    assert_eq!(outbox::pending_count(&t.db).await.unwrap(), 13);

    let now = Timestamp::now();
    let first = outbox::due(&t.db, now, 5).await.unwrap();
    let keys: Vec<&str> = first.iter().map(|r| r.dedupe_key.as_str()).collect();
    assert_eq!(keys, vec!["k00", "k01", "k02", "k03", "k04"]);
    // Claimed rows are invisible to another sender until the hold passes.
    let second = outbox::due(&t.db, now, 100).await.unwrap();
    assert_eq!(second.len(), 8);
    assert!(
        second
            .iter()
            .all(|r| !keys.contains(&r.dedupe_key.as_str()))
    );
    assert!(outbox::due(&t.db, now, 100).await.unwrap().is_empty());
    let later = now.plus(outbox::DEFAULT_HOLD + Duration::from_secs(1));
    assert_eq!(outbox::due(&t.db, later, 100).await.unwrap().len(), 13);
}

#[tokio::test]
async fn sent_retried_and_abandoned_rows() {
    let t = TestDb::default_backend().await;
    enqueue(&t.db, &[msg("a", 1), msg("b", 1), msg("c", 1)]).await;
    let now = Timestamp::now();
    let rows = outbox::due(&t.db, now, 10).await.unwrap();
    outbox::mark_sent(&t.db, &rows[0], Some(777)).await.unwrap();
    assert_eq!(outbox::message_id_of(&t.db, "a").await.unwrap(), Some(777));
    assert_eq!(outbox::message_id_of(&t.db, "b").await.unwrap(), None);

    let soon = now.plus(Duration::from_secs(5));
    assert_eq!(
        outbox::retry_later(&t.db, &rows[1].id, soon).await.unwrap(),
        1
    );
    assert_eq!(
        outbox::retry_later(&t.db, &rows[1].id, soon).await.unwrap(),
        2
    );
    outbox::postpone(&t.db, &rows[2].id, now).await.unwrap();
    let due = outbox::due(&t.db, now, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].dedupe_key.as_str(), due[0].attempts), ("c", 0));
    outbox::give_up(&t.db, &due[0].id).await.unwrap();
    let due = outbox::due(&t.db, soon, 10).await.unwrap();
    assert_eq!((due[0].dedupe_key.as_str(), due[0].attempts), ("b", 2));
    assert_eq!(outbox::pending_count(&t.db).await.unwrap(), 1);
    assert!(outbox::retry_later(&t.db, "nope", soon).await.is_err());

    // Purging removes sent rows and remembered ids older than the cutoff.
    let purged = outbox::purge_sent_before(&t.db, now.plus(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(purged, 2);
    assert_eq!(outbox::message_id_of(&t.db, "a").await.unwrap(), None);
    assert_eq!(outbox::pending_count(&t.db).await.unwrap(), 1);
}
