//! Migrations and the one-org rule.

use domain::Role;
use store::StoreError;

use crate::database::{TestDb, user};

#[tokio::test]
async fn migrating_again_applies_nothing() {
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    assert_eq!(db.migrate().await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_migrators_on_a_fresh_sqlite_file_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/fresh.db", dir.path().display());
    let a = store::Db::connect(&url).await.unwrap();
    let b = store::Db::connect(&url).await.unwrap();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    // How many migrations a fresh database takes, from a third, lone migrator.
    let url = format!("sqlite://{}/alone.db", dir.path().display());
    let all = store::Db::connect(&url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    assert_eq!(
        ra.unwrap() + rb.unwrap(),
        all,
        "each migration is applied exactly once"
    );
}

#[tokio::test]
async fn exactly_one_org_can_exist_even_when_created_concurrently() {
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    let attempts: Vec<_> = (0..4)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await.unwrap();
                match store::org::insert(&mut tx, &format!("org {i}")).await {
                    Ok(_) => tx.commit().await.map(|_| true).unwrap_or(false),
                    Err(StoreError::Conflict(_)) => false,
                    Err(e) => panic!("unexpected: {e}"),
                }
            })
        })
        .collect();
    let mut wins = 0;
    for a in attempts {
        wins += usize::from(a.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert!(store::org::get(&db).await.unwrap().is_some());
}

#[tokio::test]
async fn tokens_authenticate_until_revoked_or_expired() {
    use domain::Timestamp;
    use store::users::{self, TokenRejection};
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    let alice = user(&db, "alice", Role::Member).await;
    let mut tx = db.begin().await.unwrap();
    let forever = users::issue_token(&mut tx, &alice.user_id, None)
        .await
        .unwrap();
    let expired = users::issue_token(&mut tx, &alice.user_id, Some(Timestamp::from_millis(1)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(forever.token.starts_with(users::TOKEN_PREFIX));
    let ok = users::authenticate(&db, &forever.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.user_id, alice.user_id);
    let (why, _) = users::authenticate(&db, &expired.token)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(why, TokenRejection::Expired);
    let (why, _) = users::authenticate(&db, "agt_nonsense")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(why, TokenRejection::Unknown);
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|h| h.len() == 64 && !h.contains(&forever.token)),
        "only hashes are stored"
    );
    let mut tx = db.begin().await.unwrap();
    assert!(users::disable(&mut tx, &alice.user_id).await.unwrap());
    tx.commit().await.unwrap();
    let (why, _) = users::authenticate(&db, &forever.token)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(why, TokenRejection::Revoked);
}
