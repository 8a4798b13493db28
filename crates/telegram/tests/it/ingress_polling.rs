//! Long polling: the webhook is deleted first, the offset is persisted, a restart neither loses
//! nor repeats updates, only one poller polls per database, and errors back off.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use telegram::ingress::{Ingress, PollingConfig, run_polling_with};
use telegram::testing::{Failure, FakeBotApi, text_update};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::support::{Echo, eventually, outbox_rows, test_db};

fn config(owner: &str) -> PollingConfig {
    PollingConfig {
        timeout_secs: 1,
        lease_ttl: Duration::from_secs(3),
        owner: owner.to_owned(),
        standby_retry: Duration::from_millis(100),
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
    }
}

/// A running poller and the switch that stops it.
struct Poller {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Poller {
    fn start(fake: &FakeBotApi, db: &store::Db, echo: &Echo, owner: &str) -> Poller {
        let ingress = Ingress::new(db.clone(), echo.clone(), Arc::new(Notify::new()));
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(run_polling_with(fake.api(), ingress, config(owner), rx));
        Poller { stop, task }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the poller stops promptly")
            .unwrap();
    }
}

async fn offset(db: &store::Db) -> Option<i64> {
    store::telegram::get_offset(db).await.unwrap()
}

#[tokio::test]
async fn updates_are_handled_in_order_and_the_offset_survives_a_restart() {
    let t = test_db().await;
    let fake = FakeBotApi::start("1:T").await;
    fake.api()
        .set_webhook("https://old.example/hook", "s")
        .await
        .unwrap();
    for id in 1..=3 {
        fake.push_update(text_update(id, 42, &format!("m{id}")));
    }
    let echo = Echo::new();
    let poller = Poller::start(&fake, &t.db, &echo, "a");
    assert!(
        eventually(Duration::from_secs(5), || async {
            offset(&t.db).await == Some(4)
        })
        .await
    );
    assert_eq!(fake.webhook(), None, "deleteWebhook first");
    assert!(!fake.calls_to("deleteWebhook").is_empty());
    poller.stop().await;
    assert_eq!(echo.total(), 3);
    assert_eq!(outbox_rows(&t.db).await, 3);

    // A restart (new ingress, new handler) asks from the persisted offset and handles only news.
    let calls_before = fake.calls_to("getUpdates").len();
    fake.push_update(text_update(4, 42, "m4"));
    let echo2 = Echo::new();
    let poller = Poller::start(&fake, &t.db, &echo2, "b");
    assert!(
        eventually(Duration::from_secs(5), || async {
            offset(&t.db).await == Some(5)
        })
        .await
    );
    poller.stop().await;
    assert_eq!(fake.calls_to("getUpdates")[calls_before]["offset"], 4);
    assert_eq!(echo2.handled().keys().copied().collect::<Vec<_>>(), vec![4]);
    assert_eq!(outbox_rows(&t.db).await, 4);
}

#[tokio::test]
async fn a_lost_offset_repeats_nothing() {
    let t = test_db().await;
    let fake = FakeBotApi::start("1:T").await;
    for id in 10..=12 {
        fake.push_update(text_update(id, 42, "x"));
    }
    let echo = Echo::new();
    let poller = Poller::start(&fake, &t.db, &echo, "a");
    assert!(
        eventually(Duration::from_secs(5), || async {
            offset(&t.db).await == Some(13)
        })
        .await
    );
    poller.stop().await;

    // Telegram hands the same updates out again (say the offset write was lost in a crash).
    store::telegram::set_offset(&t.db, 0).await.unwrap();
    for id in 10..=13 {
        fake.push_update(text_update(id, 42, "x"));
    }
    let echo2 = Echo::new();
    let poller = Poller::start(&fake, &t.db, &echo2, "b");
    assert!(
        eventually(Duration::from_secs(5), || async {
            offset(&t.db).await == Some(14)
        })
        .await
    );
    poller.stop().await;
    assert_eq!(
        echo2.handled().keys().copied().collect::<Vec<_>>(),
        vec![13]
    );
    assert_eq!(outbox_rows(&t.db).await, 4);
}

#[tokio::test]
async fn two_pollers_on_one_database_take_turns() {
    let t = test_db().await;
    let fake_a = FakeBotApi::start("1:T").await;
    let fake_b = FakeBotApi::start("1:T").await;
    let echo = Echo::new();
    let a = Poller::start(&fake_a, &t.db, &echo, "a");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = Poller::start(&fake_b, &t.db, &echo, "b");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!fake_a.calls_to("getUpdates").is_empty());
    assert!(
        fake_b.calls().is_empty(),
        "the second process must not poll"
    );

    // The first stops (releasing the lease): the second takes over promptly.
    a.stop().await;
    fake_b.push_update(text_update(1, 42, "hi"));
    assert!(eventually(Duration::from_secs(5), || async { echo.total() == 1 }).await);
    b.stop().await;
}

#[tokio::test]
async fn errors_back_off_and_hostile_updates_are_skipped() {
    let t = test_db().await;
    let fake = FakeBotApi::start("1:T").await;
    // Permanent-looking failures of getUpdates (every retry of the client fails too).
    fake.fail_next_for("getUpdates", 8, Failure::Malformed);
    fake.fail_next_for("getUpdates", 4, Failure::ServerError);
    fake.push_update(json!({"update_id": 1, "poll": {"id": "p"}}));
    fake.push_update(json!({"update_id": 2, "message": {"text": "no chat"}}));
    fake.push_update(text_update(3, 42, &"B".repeat(1 << 20)));
    fake.push_update(json!({"update_id": 4, "message": {"message_id": 9, "chat": {"id": 42, "type": "private"}, "sticker": {}}}));
    let echo = Echo::new();
    echo.fail_first(1);
    let poller = Poller::start(&fake, &t.db, &echo, "a");
    assert!(
        eventually(Duration::from_secs(10), || async {
            offset(&t.db).await == Some(5)
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    poller.stop().await;
    // Bounded calls: back-off, and one long poll per second once idle.
    let polls = fake.calls_to("getUpdates").len();
    assert!(polls < 40, "{polls} getUpdates calls: a hot loop");
    // The update whose handling failed is recorded and is picked up by redelivery.
    let unprocessed = store::telegram::unprocessed(&t.db, 10).await.unwrap();
    assert_eq!(unprocessed.len(), 1);
    let ingress = Ingress::new(t.db.clone(), echo.clone(), Arc::new(Notify::new()));
    assert_eq!(ingress.drain_unprocessed().await.unwrap(), 1);
    assert_eq!(echo.total(), 4);
    assert_eq!(
        outbox_rows(&t.db).await,
        1,
        "only the huge text gets an echo"
    );
}
