//! The outbox: replies are delivered at least once and never twice, in order; 429 pauses the
//! sender for `retry_after`; transient failures retry with backoff; permanent refusals stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use telegram::api::{BotApi, RetryPolicy};
use telegram::ingress::Ingress;
use telegram::outbox::{self, Sender, SenderConfig};
use telegram::outgoing::{Action, Outgoing};
use telegram::testing::{Failure, FakeBotApi, text_update};
use tokio::sync::{Notify, watch};

use crate::support::{Echo, eventually, test_db};

fn message(key: &str, chat_id: i64, text: &str) -> Outgoing {
    Outgoing {
        dedupe_key: key.to_owned(),
        chat_id,
        action: Action::SendMessage {
            html: text.to_owned(),
            buttons: vec![],
        },
    }
}

fn fast_config() -> SenderConfig {
    SenderConfig {
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        tick: Duration::from_millis(100),
        ..SenderConfig::default()
    }
}

/// A client that waits out no rate limit itself (so the sender sees every 429).
fn impatient(fake: &FakeBotApi) -> BotApi {
    BotApi::new(&fake.base_url(), fake.token().to_owned()).with_retry(RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::ZERO,
        request_timeout: Duration::from_secs(5),
    })
}

async fn enqueue(db: &store::Db, messages: &[Outgoing]) -> u64 {
    let mut tx = db.begin().await.unwrap();
    let n = outbox::enqueue(&mut tx, messages).await.unwrap();
    tx.commit().await.unwrap();
    n
}

async fn pending(db: &store::Db) -> i64 {
    store::outbox::pending_count(db).await.unwrap()
}

#[tokio::test]
async fn every_message_arrives_once_in_order_despite_failures() {
    let t = test_db().await;
    let fake = FakeBotApi::start("1:T").await;
    let first = [
        message("k1", 1, "one"),
        message("k2", 1, "two"),
        message("k3", 2, "three"),
    ];
    assert_eq!(enqueue(&t.db, &first).await, 3);
    // The same keys again (a redelivered update): dropped.
    assert_eq!(
        enqueue(&t.db, &[message("k2", 1, "two"), message("k4", 1, "four")]).await,
        1
    );
    // More failures than the client retries on its own.
    fake.fail_next_for("sendMessage", 6, Failure::ServerError);
    let wake = Arc::new(Notify::new());
    let sender =
        Sender::new(t.db.clone(), impatient(&fake), wake.clone()).with_config(fast_config());
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(sender.run(rx));
    assert!(
        eventually(Duration::from_secs(10), || async {
            pending(&t.db).await == 0
        })
        .await
    );
    stop.send(true).unwrap();
    task.await.unwrap();
    // Each chat's messages arrive once, in order (a failing message holds its chat's later ones).
    let texts_for = |chat: i64| -> Vec<String> {
        fake.delivered()
            .iter()
            .filter(|c| c.body["chat_id"] == chat)
            .map(|c| c.body["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(texts_for(1), vec!["one", "two", "four"]);
    assert_eq!(texts_for(2), vec!["three"]);
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT dedupe_key, attempts FROM outbox ORDER BY dedupe_key")
            .fetch_all(t.db.pool())
            .await
            .unwrap();
    assert_eq!(
        rows[0],
        ("k1".to_owned(), 2),
        "two failed rounds of two tries, then success"
    );
    // The message ids are kept, so the conversation can edit what it sent.
    let k1 = outbox::message_id_of(&t.db, "k1").await.unwrap().unwrap();
    let k4 = outbox::message_id_of(&t.db, "k4").await.unwrap().unwrap();
    assert!(k4 > k1);
    assert_eq!(outbox::message_id_of(&t.db, "nope").await.unwrap(), None);
}

#[tokio::test]
async fn a_rate_limit_pauses_the_sender_for_retry_after() {
    let t = test_db().await;
    let fake = FakeBotApi::start("1:T").await;
    enqueue(&t.db, &[message("a", 1, "a"), message("b", 1, "b")]).await;
    fake.fail_next_for("sendMessage", 1, Failure::RateLimited { retry_after: 2 });
    let sender = Sender::new(t.db.clone(), impatient(&fake), Arc::new(Notify::new()))
        .with_config(fast_config());
    let (stop, rx) = watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(sender.run(rx));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        fake.calls_to("sendMessage").len(),
        1,
        "nothing is sent while rate-limited"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            pending(&t.db).await == 0
        })
        .await
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(fake.delivered_texts(), vec!["a", "b"]);
}

#[tokio::test]
async fn permanent_refusals_are_given_up_and_transient_ones_are_capped() {
    let t = test_db().await;
    let fake = FakeBotApi::start("1:T").await;
    enqueue(&t.db, &[message("blocked", 1, "x")]).await;
    fake.fail_next_for(
        "sendMessage",
        1,
        Failure::Forbidden("Forbidden: bot was blocked by the user".into()),
    );
    let config = SenderConfig {
        max_attempts: 3,
        ..fast_config()
    };
    let sender =
        Sender::new(t.db.clone(), impatient(&fake), Arc::new(Notify::new())).with_config(config);
    let round = sender.deliver_due().await.unwrap();
    assert_eq!(round.given_up, 1);
    assert_eq!(pending(&t.db).await, 0);
    assert_eq!(fake.calls_to("sendMessage").len(), 1);

    // Failing forever: given up after max_attempts rounds, not retried for ever.
    enqueue(&t.db, &[message("doomed", 1, "y")]).await;
    fake.fail_next_for("sendMessage", 100, Failure::ServerError);
    let mut rounds = 0;
    while pending(&t.db).await > 0 && rounds < 50 {
        sender.deliver_due().await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        rounds += 1;
    }
    assert_eq!(pending(&t.db).await, 0);
    assert_eq!(fake.calls_to("sendMessage").len(), 1 + 3 * 2);
    assert!(fake.delivered().is_empty());
}

#[tokio::test]
async fn a_claimed_message_is_not_sent_by_a_second_sender() {
    let t = test_db().await;
    let fake = FakeBotApi::start("1:T").await;
    enqueue(
        &t.db,
        &(0..10)
            .map(|i| message(&format!("m{i}"), 1, &format!("{i}")))
            .collect::<Vec<_>>(),
    )
    .await;
    let one = Sender::new(t.db.clone(), fake.api(), Arc::new(Notify::new()));
    let two = Sender::new(t.db.clone(), fake.api(), Arc::new(Notify::new()));
    let (a, b) = tokio::join!(one.deliver_due(), two.deliver_due());
    assert_eq!(a.unwrap().sent + b.unwrap().sent, 10);
    let mut texts = fake.delivered_texts();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 10);
    assert_eq!(fake.delivered().len(), 10);
}

#[tokio::test]
async fn replies_of_an_update_are_sent_promptly_after_the_ingress_wakes_the_sender() {
    let t = test_db().await;
    let fake = FakeBotApi::start("1:T").await;
    let wake = Arc::new(Notify::new());
    let ingress = Ingress::new(t.db.clone(), Echo::new(), wake.clone());
    let config = SenderConfig {
        tick: Duration::from_secs(30),
        ..SenderConfig::default()
    };
    let sender = Sender::new(t.db.clone(), fake.api(), wake).with_config(config);
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(sender.run(rx));
    tokio::time::sleep(Duration::from_millis(100)).await;
    ingress.process(text_update(1, 5, "ping")).await.unwrap();
    let sent = fake
        .wait_for_calls("sendMessage", 1, Duration::from_secs(5))
        .await;
    assert_eq!(sent[0]["text"], "echo: ping");
    assert_eq!(sent[0]["chat_id"], 5);
    stop.send(true).unwrap();
    task.await.unwrap();
}
