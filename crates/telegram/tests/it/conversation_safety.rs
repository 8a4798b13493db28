//! Safety of the conversation: a redelivered update creates one task, group messages are
//! ignored, and the rate limit answers a flood with one polite reply.

use coordinator::TaskQuery;
use domain::Role;

use crate::support_chat::{ChatFixture, joined, task_id_in};
use telegram::handler::Handler;

#[tokio::test]
async fn the_same_update_handled_twice_creates_one_task() {
    let fx = ChatFixture::new().await;
    let user = fx.onboard(60, Role::Member).await;
    let update = fx.message(5555, 60, "/run kubectl delete pod x");
    let first = fx.conv.handle(update.clone()).await.unwrap();
    let second = fx.conv.handle(update).await.unwrap();
    assert_eq!(
        task_id_in(&joined(&first)),
        task_id_in(&joined(&second)),
        "the same task"
    );
    let keys = |o: &[telegram::outgoing::Outgoing]| {
        o.iter().map(|x| x.dedupe_key.clone()).collect::<Vec<_>>()
    };
    assert_eq!(keys(&first), keys(&second), "replies deduplicate by key");
    assert_eq!(keys(&first), vec!["u:5555:0", "u:5555:1"]);
    let tasks = fx
        .coord
        .list_tasks(&user, &TaskQuery::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    let approvals = fx.coord.approvals_awaiting(&user, 10).await.unwrap();
    assert_eq!(approvals.len(), 1);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_update_create_one_task() {
    let fx = ChatFixture::new().await;
    let user = fx.onboard(61, Role::Member).await;
    let update = fx.message(7777, 61, "/run uptime");
    let mut handles = Vec::new();
    for _ in 0..10 {
        let conv = fx.conv.clone();
        let u = update.clone();
        handles.push(tokio::spawn(async move { conv.handle(u).await }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let tasks = fx
        .coord
        .list_tasks(&user, &TaskQuery::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
}

#[tokio::test]
async fn group_messages_are_ignored() {
    let fx = ChatFixture::new().await;
    let user = fx.onboard(62, Role::Member).await;
    for text in ["/run uptime", "/status", "/start abc", "hello"] {
        let u = fx.group_message(fx.update_id(), 62, text);
        assert!(fx.conv.handle(u).await.unwrap().is_empty(), "{text}");
        let stranger = fx.group_message(fx.update_id(), 999, text);
        assert!(fx.conv.handle(stranger).await.unwrap().is_empty(), "{text}");
    }
    let tasks = fx
        .coord
        .list_tasks(&user, &TaskQuery::default())
        .await
        .unwrap();
    assert!(tasks.is_empty());
}

#[tokio::test]
async fn over_the_rate_limit_one_polite_reply_then_silence() {
    let fx = ChatFixture::with_limit(5).await;
    let code = fx.invite(Role::Member).await;
    // The /start counts as the first message.
    assert!(joined(&fx.send(63, &format!("/start {code}")).await).contains("Welcome"));
    for _ in 0..4 {
        assert!(!fx.send(63, "/status").await.is_empty());
    }
    let over = fx.send(63, "/run uptime").await;
    assert_eq!(over.len(), 1);
    assert!(
        joined(&over).contains("faster than I can take them"),
        "{}",
        joined(&over)
    );
    for _ in 0..10 {
        assert!(fx.send(63, "/run uptime").await.is_empty(), "silence");
    }
    // Others are not affected; nothing ran for the flooder.
    let other = fx.send(64, "/help").await;
    assert_eq!(other.len(), 1);
    let user = fx.coord.user_by_telegram(63).await.unwrap().unwrap();
    assert!(
        fx.coord
            .list_tasks(&user, &TaskQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}
