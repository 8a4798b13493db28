//! Telegram ingress state on SQLite or Postgres: updates recorded once and processed once, the
//! polling offset, and leases that only one owner holds at a time.

use std::time::Duration;

use store::telegram;

use crate::database::TestDb;

#[tokio::test]
async fn an_update_is_recorded_once_and_processed_once() {
    let t = TestDb::default_backend().await;
    let mut tx = t.db.begin().await.unwrap();
    assert!(
        telegram::record_update(&mut tx, 5, r#"{"update_id":5}"#)
            .await
            .unwrap()
    );
    assert!(
        !telegram::record_update(&mut tx, 5, r#"{"update_id":5,"dup":1}"#)
            .await
            .unwrap()
    );
    assert!(
        telegram::record_update(&mut tx, 3, r#"{"update_id":3}"#)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(telegram::is_processed(&t.db, 5).await.unwrap(), Some(false));
    assert_eq!(telegram::is_processed(&t.db, 4).await.unwrap(), None);
    assert_eq!(
        telegram::unprocessed(&t.db, 10).await.unwrap(),
        vec![
            (3, r#"{"update_id":3}"#.to_owned()),
            (5, r#"{"update_id":5}"#.to_owned())
        ]
    );

    let mut tx = t.db.begin().await.unwrap();
    assert!(telegram::mark_processed(&mut tx, 5).await.unwrap());
    assert!(!telegram::mark_processed(&mut tx, 5).await.unwrap());
    assert!(!telegram::mark_processed(&mut tx, 99).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(telegram::is_processed(&t.db, 5).await.unwrap(), Some(true));
    assert_eq!(telegram::unprocessed(&t.db, 10).await.unwrap().len(), 1);

    // Old unprocessed updates can be given up.
    let future = domain::Timestamp::now().plus(Duration::from_secs(60));
    assert_eq!(
        telegram::abandon_unprocessed_before(&t.db, future)
            .await
            .unwrap(),
        vec![3]
    );
    assert!(telegram::unprocessed(&t.db, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_polling_offset_is_kept() {
    let t = TestDb::default_backend().await;
    assert_eq!(telegram::get_offset(&t.db).await.unwrap(), None);
    telegram::set_offset(&t.db, 41).await.unwrap();
    telegram::set_offset(&t.db, 42).await.unwrap();
    assert_eq!(telegram::get_offset(&t.db).await.unwrap(), Some(42));
}

#[tokio::test]
async fn a_lease_has_one_owner_until_it_expires_or_is_released() {
    let t = TestDb::default_backend().await;
    let ttl = Duration::from_millis(300);
    assert!(telegram::acquire_lease(&t.db, "p", "a", ttl).await.unwrap());
    assert!(!telegram::acquire_lease(&t.db, "p", "b", ttl).await.unwrap());
    assert!(
        telegram::acquire_lease(&t.db, "p", "a", ttl).await.unwrap(),
        "renewal"
    );
    assert!(
        telegram::acquire_lease(&t.db, "other", "b", ttl)
            .await
            .unwrap()
    );
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert!(
        telegram::acquire_lease(&t.db, "p", "b", ttl).await.unwrap(),
        "expired: taken over"
    );
    assert!(!telegram::acquire_lease(&t.db, "p", "a", ttl).await.unwrap());
    telegram::release_lease(&t.db, "p", "a").await.unwrap();
    assert!(
        !telegram::acquire_lease(&t.db, "p", "c", ttl).await.unwrap(),
        "only the owner releases"
    );
    telegram::release_lease(&t.db, "p", "b").await.unwrap();
    assert!(telegram::acquire_lease(&t.db, "p", "c", ttl).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_contenders_get_the_lease_once() {
    let t = TestDb::default_backend().await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16 {
        let db = t.db.clone();
        set.spawn(async move {
            telegram::acquire_lease(&db, "poller", &format!("owner{i}"), Duration::from_secs(30))
                .await
                .unwrap()
        });
    }
    let mut won = 0;
    while let Some(r) = set.join_next().await {
        won += usize::from(r.unwrap());
    }
    assert_eq!(won, 1);
}
