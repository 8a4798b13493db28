//! Webhook ingress: the secret is checked, each update is recorded before the 200 and handled
//! once however often it arrives, and hostile bodies are acknowledged and ignored.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use telegram::ingress::{Ingress, Processed, WebhookOutcome};
use telegram::outbox::Sender;
use telegram::testing::{FakeBotApi, text_update};
use tokio::sync::Notify;

use crate::support::{Echo, eventually, outbox_rows, test_db};

const SECRET: &str = "webhook-secret-0123456789";

async fn processed(db: &store::Db, id: i64) -> bool {
    store::telegram::is_processed(db, id).await.unwrap() == Some(true)
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_refused_and_nothing_is_recorded() {
    let t = test_db().await;
    let echo = Echo::new();
    let ingress = Ingress::new(t.db.clone(), echo.clone(), Arc::new(Notify::new()));
    let body = text_update(1, 42, "/help").to_string();
    for header in [
        None,
        Some(""),
        Some("webhook-secret-012345678"),
        Some("webhook-secret-0123456789x"),
    ] {
        assert_eq!(
            ingress.webhook(header, SECRET, body.as_bytes()).await,
            WebhookOutcome::Unauthorized
        );
    }
    // Without a configured secret nothing is accepted.
    assert_eq!(
        ingress.webhook(Some(""), "", body.as_bytes()).await,
        WebhookOutcome::Unauthorized
    );
    assert_eq!(WebhookOutcome::Unauthorized.status(), 401);
    assert_eq!(store::telegram::is_processed(&t.db, 1).await.unwrap(), None);

    assert_eq!(
        ingress.webhook(Some(SECRET), SECRET, body.as_bytes()).await,
        WebhookOutcome::Accepted
    );
    // Recorded before the answer.
    assert!(
        store::telegram::is_processed(&t.db, 1)
            .await
            .unwrap()
            .is_some()
    );
    assert!(eventually(Duration::from_secs(5), || processed(&t.db, 1)).await);
    assert_eq!(echo.total(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_update_fifty_times_at_once_is_handled_once_with_one_reply() {
    let t = test_db().await;
    let fake = FakeBotApi::start("1:T").await;
    let echo = Echo::new();
    echo.delay(Duration::from_millis(50));
    let wake = Arc::new(Notify::new());
    let ingress = Ingress::new(t.db.clone(), echo.clone(), wake.clone());
    let body = text_update(77, 42, "/run ls").to_string();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..50 {
        let ingress = ingress.clone();
        let body = body.clone();
        calls.spawn(async move {
            if i % 2 == 0 {
                ingress.webhook(Some(SECRET), SECRET, body.as_bytes()).await
            } else {
                let raw = serde_json::from_str(&body).unwrap();
                ingress.process(raw).await.unwrap();
                WebhookOutcome::Accepted
            }
        });
    }
    while let Some(outcome) = calls.join_next().await {
        assert_eq!(outcome.unwrap(), WebhookOutcome::Accepted);
    }
    assert!(eventually(Duration::from_secs(5), || processed(&t.db, 77)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(echo.handled().get(&77), Some(&1));
    assert_eq!(outbox_rows(&t.db).await, 1);

    let sender = Sender::new(t.db.clone(), fake.api(), wake);
    sender.deliver_due().await.unwrap();
    assert_eq!(fake.delivered_texts(), vec!["echo: /run ls".to_owned()]);
    // Redelivered later: still nothing new.
    assert_eq!(
        ingress
            .process(serde_json::from_str(&body).unwrap())
            .await
            .unwrap(),
        Processed::AlreadyProcessed
    );
}

#[tokio::test]
async fn hostile_bodies_are_acknowledged_and_ignored() {
    let t = test_db().await;
    let echo = Echo::new();
    let ingress = Ingress::new(t.db.clone(), echo.clone(), Arc::new(Notify::new()));
    let huge = text_update(1, 42, &"A".repeat(1 << 20)).to_string();
    let bodies: Vec<Vec<u8>> = vec![
        huge.into_bytes(),
        b"not json at all".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"[1,2,3]".to_vec(),
        json!({"no_update_id": true}).to_string().into_bytes(),
        json!({"update_id": "7"}).to_string().into_bytes(),
        json!({"update_id": 2, "poll": {"id": "x"}})
            .to_string()
            .into_bytes(),
        json!({"update_id": 3, "message": {"text": "no chat, no id"}})
            .to_string()
            .into_bytes(),
        json!({"update_id": 4, "message": {"message_id": 1, "chat": {"id": 5, "type": "private"}}})
            .to_string()
            .into_bytes(),
        json!({"update_id": 5, "callback_query": {"id": "q"}})
            .to_string()
            .into_bytes(),
        json!({"update_id": 6, "edited_message": {"message_id": 1}, "extra": [1, {"x": null}]})
            .to_string()
            .into_bytes(),
    ];
    for body in &bodies {
        assert_eq!(
            ingress.webhook(Some(SECRET), SECRET, body).await,
            WebhookOutcome::Accepted
        );
    }
    for id in 1..=6 {
        assert!(
            eventually(Duration::from_secs(5), || processed(&t.db, id)).await,
            "update {id}"
        );
    }
    // Only the huge text produced a reply; nothing is left to retry.
    assert_eq!(outbox_rows(&t.db).await, 1);
    assert!(
        store::telegram::unprocessed(&t.db, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ingress.drain_unprocessed().await.unwrap(), 0);
    assert_eq!(
        ingress.process(json!("just a string")).await.unwrap(),
        Processed::Unreadable
    );
}

#[tokio::test]
async fn a_failed_handler_leaves_the_update_for_redelivery() {
    let t = test_db().await;
    let echo = Echo::new();
    echo.fail_first(1);
    let ingress = Ingress::new(t.db.clone(), echo.clone(), Arc::new(Notify::new()));
    let raw = text_update(9, 42, "hello");
    assert_eq!(
        ingress.process(raw.clone()).await.unwrap(),
        Processed::HandlerFailed
    );
    assert_eq!(
        store::telegram::is_processed(&t.db, 9).await.unwrap(),
        Some(false)
    );
    assert_eq!(outbox_rows(&t.db).await, 0);

    // A new process over the same database picks it up.
    let restarted = Ingress::new(t.db.clone(), echo.clone(), Arc::new(Notify::new()));
    assert_eq!(restarted.drain_unprocessed().await.unwrap(), 1);
    assert_eq!(restarted.drain_unprocessed().await.unwrap(), 0);
    assert_eq!(
        restarted.process(raw).await.unwrap(),
        Processed::AlreadyProcessed
    );
    assert_eq!(echo.handled().get(&9), Some(&1));
    assert_eq!(outbox_rows(&t.db).await, 1);
}
