//! Losing Redis loses no task (DESIGN.md "Storage"): the database is the source of truth, the
//! bus only carries wake-ups. Uses a private redis-server, never the shared one.

use std::time::Duration;

use domain::{Role, TaskStatus};
use store::bus::Bus;

use crate::support::{Fixture, PrivateRedis, command};

#[tokio::test]
async fn killing_redis_loses_no_task() {
    let mut redis = PrivateRedis::start();
    let bus = Bus::redis(&redis.url(), "agenticai-test").await.unwrap();
    let fx = Fixture::new(bus.clone()).await;
    let alice = fx.user("alice", Role::Member).await;

    let (before, _) = fx
        .coord
        .create_task(&alice, command("echo before"))
        .await
        .unwrap();
    redis.kill();
    assert!(bus.ping().await.is_err(), "the bus notices Redis is gone");

    // Accepted while Redis is down: stored, answered, only the wake-up is lost.
    let mut during = Vec::new();
    for i in 0..5 {
        let (task, created) = fx
            .coord
            .create_task(&alice, command(&format!("echo {i}")))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(task.status, TaskStatus::Queued);
        during.push(task.task_id);
    }

    // A worker polling the database finds every task, with or without wake-ups.
    let db = fx.coord.db();
    let mut claimed = Vec::new();
    while let Some(t) = store::tasks::claim(db, "w1", Duration::from_secs(60), None)
        .await
        .unwrap()
    {
        claimed.push(t.task_id);
    }
    assert_eq!(claimed.len(), 6);
    assert!(claimed.contains(&before.task_id));
    for id in &during {
        assert!(claimed.contains(id), "{id} was not lost");
    }

    // Redis back: the same bus carries wake-ups again.
    redis.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bus.ping().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bus did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (after, _) = fx
        .coord
        .create_task(&alice, command("echo after"))
        .await
        .unwrap();
    let signal = bus
        .next_work("w1", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a wake-up for the new task");
    assert_eq!(signal.task_id, after.task_id);
}
