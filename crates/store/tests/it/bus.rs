//! The bus, in-process and against real Redis servers: the machine's shared one (unique key
//! prefix per test, keys removed afterwards) and private `redis-server`s that the tests kill and
//! restart.

use std::collections::BTreeSet;
use std::time::Duration;

use domain::{Id, IdKind, TaskEvent, Timestamp};
use store::bus::{Bus, BusError, BusOptions, WorkSignal};
use tokio::time::{Instant, timeout};

use crate::support::{ChildGuard, free_port, unique, wait_for_port};

/// Reclaim period used where tests wait for re-delivery.
const RECLAIM: Duration = Duration::from_secs(1);

fn redis_url() -> String {
    std::env::var("AGENTICAI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn fast() -> BusOptions {
    BusOptions {
        reclaim_after: RECLAIM,
        ..BusOptions::default()
    }
}

fn task() -> Id {
    Id::generate(IdKind::Task).unwrap()
}

fn event(task_id: &Id, seq: i64) -> TaskEvent {
    TaskEvent {
        task_id: task_id.clone(),
        seq,
        at: Timestamp::now(),
        kind: "output".into(),
        data: serde_json::json!({ "line": format!("line {seq}") }),
    }
}

/// A bus on the shared Redis under a fresh prefix; call `cleanup` at the end.
async fn shared_redis(options: BusOptions) -> (Bus, String) {
    let prefix = unique("bus");
    let bus = Bus::redis_with(&redis_url(), &prefix, options)
        .await
        .unwrap_or_else(|e| panic!("the test Redis at {} is needed: {e}", redis_url()));
    assert_eq!(bus.kind(), "redis");
    (bus, prefix)
}

/// Removes every key under `prefix` from the shared Redis.
async fn cleanup(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------- scenarios shared by both buses

/// Two consumers wait at once; one wake-up reaches exactly one of them (within the reclaim
/// period, which the bus must therefore have longer than the wait).
async fn one_wakeup_reaches_one_of_two_consumers(bus: &Bus) {
    let t = task();
    let wait = Duration::from_secs(2);
    let a = tokio::spawn({
        let bus = bus.clone();
        async move { bus.next_work("worker-a", wait).await }
    });
    let b = tokio::spawn({
        let bus = bus.clone();
        async move { bus.next_work("worker-b", wait).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await; // both are waiting now
    bus.notify_work(&t).await.unwrap();

    let got: Vec<WorkSignal> = [a.await.unwrap().unwrap(), b.await.unwrap().unwrap()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        got.len(),
        1,
        "exactly one consumer gets the wake-up: {got:?}"
    );
    assert_eq!(got[0].task_id, t);
    bus.ack(&got[0]).await.unwrap();
}

/// Many wake-ups, two consumers draining them: each arrives exactly once.
async fn every_wakeup_is_delivered_once(bus: &Bus) {
    let sent: BTreeSet<Id> = (0..20).map(|_| task()).collect();
    for t in &sent {
        bus.notify_work(t).await.unwrap();
    }
    let drain = |name: &'static str| {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(signal) = bus
                .next_work(name, Duration::from_millis(500))
                .await
                .unwrap()
            {
                bus.ack(&signal).await.unwrap();
                got.push(signal.task_id);
            }
            got
        })
    };
    let (a, b) = (drain("worker-a"), drain("worker-b"));
    let mut all = a.await.unwrap();
    all.extend(b.await.unwrap());
    assert_eq!(all.len(), sent.len(), "no wake-up lost or duplicated");
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), sent);
}

/// A wake-up taken but never acknowledged goes to another consumer after the reclaim period; an
/// acknowledged one does not come back.
async fn unacked_wakeup_is_redelivered(bus: &Bus) {
    let t = task();
    bus.notify_work(&t).await.unwrap();
    let first = bus
        .next_work("worker-a", Duration::from_secs(2))
        .await
        .unwrap()
        .expect("a wake-up");
    assert_eq!(first.task_id, t);

    // worker-a "dies" without acknowledging. Not yet abandoned: nothing for worker-b right now.
    let early = bus
        .next_work("worker-b", Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(early, None, "not re-delivered before the reclaim period");

    let started = Instant::now();
    let again = bus
        .next_work("worker-b", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("the abandoned wake-up is re-delivered");
    assert_eq!(again.task_id, t);
    assert_eq!(again, first, "the same delivery, now owned by worker-b");
    assert!(started.elapsed() < Duration::from_secs(3));
    bus.ack(&again).await.unwrap();

    let after_ack = bus.next_work("worker-c", RECLAIM * 3).await.unwrap();
    assert_eq!(
        after_ack, None,
        "an acknowledged wake-up is not re-delivered"
    );
    bus.ack(&first).await.unwrap(); // a late duplicate ack is harmless
}

/// Events reach every subscriber of their task and nobody else. `publisher` and `subscriber` may
/// be different bus instances (Redis: different connections, as in two processes).
async fn events_reach_only_their_task_subscribers(publisher: &Bus, subscriber: &Bus) {
    let (ta, tb) = (task(), task());
    let mut a1 = subscriber.subscribe(&ta).await.unwrap();
    let mut a2 = subscriber.subscribe(&ta).await.unwrap();
    let mut b1 = subscriber.subscribe(&tb).await.unwrap();
    let within = Duration::from_secs(3);
    let quiet = Duration::from_millis(300);

    let ea = event(&ta, 1);
    publisher.publish(&ea).await.unwrap();
    assert_eq!(timeout(within, a1.next()).await.unwrap(), Some(ea.clone()));
    assert_eq!(timeout(within, a2.next()).await.unwrap(), Some(ea));
    assert!(
        timeout(quiet, b1.next()).await.is_err(),
        "a subscriber of another task sees nothing"
    );

    let eb = event(&tb, 1);
    publisher.publish(&eb).await.unwrap();
    assert_eq!(timeout(within, b1.next()).await.unwrap(), Some(eb));
    assert!(timeout(quiet, a1.next()).await.is_err());

    // Order is kept.
    for seq in 2..=5 {
        publisher.publish(&event(&ta, seq)).await.unwrap();
    }
    for seq in 2..=5 {
        let got = timeout(within, a2.next()).await.unwrap().unwrap();
        assert_eq!(got.seq, seq);
    }
}

// --------------------------------------------------------------------------------- in-process

#[test]
fn types_fit_async_servers() {
    fn assert_shared<T: Send + Sync + Clone + 'static>() {}
    fn assert_stream<T: futures::Stream<Item = TaskEvent> + Send + Unpin + 'static>() {}
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_shared::<Bus>();
    assert_shared::<WorkSignal>();
    assert_stream::<store::bus::EventStream>();
    assert_error::<BusError>();
    assert_error::<store::objects::ObjectsError>();
    assert_shared::<store::objects::Objects>();
}

#[tokio::test]
async fn in_process_wakeup_reaches_one_of_two_consumers() {
    let bus = Bus::in_process();
    assert_eq!(bus.kind(), "in-process");
    bus.ping().await.unwrap();
    one_wakeup_reaches_one_of_two_consumers(&bus).await;
}

#[tokio::test]
async fn in_process_every_wakeup_is_delivered_once() {
    every_wakeup_is_delivered_once(&Bus::in_process()).await;
}

#[tokio::test]
async fn in_process_unacked_wakeup_is_redelivered() {
    unacked_wakeup_is_redelivered(&Bus::in_process_with(fast())).await;
}

#[tokio::test]
async fn in_process_events_reach_only_their_task_subscribers() {
    let bus = Bus::in_process();
    events_reach_only_their_task_subscribers(&bus, &bus).await;
}

#[tokio::test]
async fn in_process_slow_subscriber_does_not_block_publishers() {
    let bus = Bus::in_process_with(BusOptions {
        event_buffer: 4,
        ..BusOptions::default()
    });
    let t = task();
    let mut slow = bus.subscribe(&t).await.unwrap();
    let publishing = async {
        for seq in 1..=100 {
            bus.publish(&event(&t, seq)).await.unwrap();
        }
    };
    timeout(Duration::from_secs(2), publishing)
        .await
        .expect("publishing never waits for subscribers");
    // The slow subscriber skipped the oldest events and carries on with the newest.
    let first = slow.next().await.unwrap();
    assert!(
        first.seq > 90,
        "kept only the newest events, got seq {}",
        first.seq
    );
    bus.publish(&event(&t, 101)).await.unwrap();
    let mut last = first.seq;
    while last < 101 {
        let next = timeout(Duration::from_secs(1), slow.next())
            .await
            .unwrap()
            .unwrap();
        assert!(next.seq > last);
        last = next.seq;
    }
}

#[tokio::test]
async fn in_process_zero_wait_and_foreign_signals() {
    let bus = Bus::in_process();
    assert_eq!(bus.next_work("w", Duration::ZERO).await.unwrap(), None);
    assert!(matches!(
        bus.next_work("", Duration::ZERO).await,
        Err(BusError::Config(_))
    ));
    let t = task();
    bus.notify_work(&t).await.unwrap();
    let signal = bus.next_work("w", Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(signal.task_id, t);

    let (redis_bus, prefix) = shared_redis(BusOptions::default()).await;
    assert!(matches!(
        redis_bus.ack(&signal).await,
        Err(BusError::ForeignSignal)
    ));
    drop(redis_bus);
    cleanup(&prefix).await;
}

// ------------------------------------------------------------------------------ shared Redis

#[tokio::test]
async fn redis_wakeup_reaches_one_of_two_consumers() {
    // The default reclaim period: with a short one, the un-acked wake-up would rightly be
    // re-delivered to the other consumer while it still waits.
    let (bus, prefix) = shared_redis(BusOptions::default()).await;
    bus.ping().await.unwrap();
    one_wakeup_reaches_one_of_two_consumers(&bus).await;
    drop(bus);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn redis_every_wakeup_is_delivered_once() {
    let (bus, prefix) = shared_redis(BusOptions::default()).await;
    every_wakeup_is_delivered_once(&bus).await;
    drop(bus);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn redis_unacked_wakeup_is_redelivered() {
    let (bus, prefix) = shared_redis(fast()).await;
    unacked_wakeup_is_redelivered(&bus).await;
    drop(bus);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn redis_wakeups_reach_consumers_in_other_processes() {
    // Two bus instances on one prefix stand for two processes: the wake-up crosses Redis.
    let (sender, prefix) = shared_redis(fast()).await;
    let receiver = Bus::redis_with(&redis_url(), &prefix, fast())
        .await
        .unwrap();
    let t = task();
    sender.notify_work(&t).await.unwrap(); // before any worker asked: still delivered
    let signal = receiver
        .next_work("worker-elsewhere", Duration::from_secs(2))
        .await
        .unwrap()
        .expect("delivered across instances");
    assert_eq!(signal.task_id, t);
    receiver.ack(&signal).await.unwrap();
    assert_eq!(
        sender
            .next_work("w", Duration::from_millis(200))
            .await
            .unwrap(),
        None
    );
    assert_eq!(receiver.next_work("w", Duration::ZERO).await.unwrap(), None);
    drop((sender, receiver));
    cleanup(&prefix).await;
}

#[tokio::test]
async fn redis_events_reach_only_their_task_subscribers() {
    let (publisher, prefix) = shared_redis(BusOptions::default()).await;
    let subscriber = Bus::redis(&redis_url(), &prefix).await.unwrap();
    events_reach_only_their_task_subscribers(&publisher, &subscriber).await;
    // Another prefix is another deployment: it sees nothing.
    let (other, other_prefix) = shared_redis(BusOptions::default()).await;
    let t = task();
    let mut foreign = other.subscribe(&t).await.unwrap();
    publisher.publish(&event(&t, 1)).await.unwrap();
    assert!(
        timeout(Duration::from_millis(300), foreign.next())
            .await
            .is_err()
    );
    drop((publisher, subscriber, other));
    cleanup(&prefix).await;
    cleanup(&other_prefix).await;
}

#[tokio::test]
async fn redis_rejects_bad_configuration_clearly() {
    let e = Bus::redis("not a url", "p").await.unwrap_err();
    assert!(matches!(e, BusError::Config(_)), "{e}");
    let e = Bus::redis(&redis_url(), "bad prefix*").await.unwrap_err();
    assert!(e.to_string().contains("prefix"), "{e}");
}

// ---------------------------------------------------------------------------- private Redis

/// A private `redis-server` on `port` (no persistence), killed on drop.
async fn start_redis(port: u16, extra: &[&str]) -> ChildGuard {
    let port_arg = port.to_string();
    let mut args = vec![
        "--port",
        port_arg.as_str(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ];
    args.extend_from_slice(extra);
    let mut server = ChildGuard::spawn("redis-server", &args);
    assert!(
        wait_for_port(port, Duration::from_secs(10)).await,
        "redis-server did not start on port {port}"
    );
    server.assert_running();
    server
}

/// Retries `f` until it succeeds or `within` has passed.
async fn eventually<T, F, Fut>(within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("still failing after {within:?}: {e}"),
        }
    }
}

#[tokio::test]
async fn redis_restart_returns_errors_then_recovers() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut server = start_redis(port, &[]).await;
    let bus = Bus::redis_with(&url, "agenticai-test-restart", fast())
        .await
        .unwrap();

    // Working.
    let t = task();
    bus.notify_work(&t).await.unwrap();
    let signal = bus
        .next_work("w", Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    bus.ack(&signal).await.unwrap();
    let mut events = bus.subscribe(&t).await.unwrap();
    bus.publish(&event(&t, 1)).await.unwrap();
    assert_eq!(
        timeout(Duration::from_secs(3), events.next())
            .await
            .unwrap()
            .unwrap()
            .seq,
        1
    );

    // Killed while a worker is blocked waiting for work: that worker gets an error.
    let blocked = tokio::spawn({
        let bus = bus.clone();
        async move { bus.next_work("w", Duration::from_secs(8)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    let outcome = timeout(Duration::from_secs(5), blocked)
        .await
        .expect("a blocked reader notices promptly")
        .unwrap();
    let e = outcome.expect_err("waiting for work fails while Redis is down");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");

    // Everything fails cleanly, and promptly, while it is down.
    let down = Instant::now();
    assert!(bus.ping().await.is_err());
    assert!(bus.notify_work(&t).await.is_err());
    assert!(bus.publish(&event(&t, 2)).await.is_err());
    assert!(
        bus.next_work("w", Duration::from_millis(300))
            .await
            .is_err()
    );
    assert!(bus.subscribe(&t).await.is_err());
    assert!(
        down.elapsed() < Duration::from_secs(20),
        "{:?}",
        down.elapsed()
    );

    // Back on the same port (empty: no persistence): the same bus works again.
    let _server = start_redis(port, &[]).await;
    eventually(Duration::from_secs(15), || bus.ping()).await;
    let t2 = task();
    eventually(Duration::from_secs(5), || bus.notify_work(&t2)).await;
    let signal = eventually(Duration::from_secs(5), || {
        bus.next_work("w", Duration::from_secs(2))
    })
    .await
    .expect("the wake-up sent after the restart arrives");
    assert_eq!(signal.task_id, t2);
    bus.ack(&signal).await.unwrap();

    let mut events = eventually(Duration::from_secs(10), || bus.subscribe(&t2)).await;
    bus.publish(&event(&t2, 1)).await.unwrap();
    assert_eq!(
        timeout(Duration::from_secs(3), events.next())
            .await
            .unwrap()
            .unwrap()
            .task_id,
        t2
    );
}

#[tokio::test]
async fn redis_errors_never_show_the_password() {
    // Nobody listening.
    let closed = free_port();
    let e = Bus::redis(
        &format!("redis://agent:hunter2-secret@127.0.0.1:{closed}/0"),
        "p",
    )
    .await
    .unwrap_err();
    let shown = format!("{e} / {e:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains(&format!("127.0.0.1:{closed}")), "{shown}");

    // A server that rejects the password.
    let port = free_port();
    let _server = start_redis(port, &["--requirepass", "the-right-one"]).await;
    let e = Bus::redis(&format!("redis://:hunter2-secret@127.0.0.1:{port}"), "p")
        .await
        .unwrap_err();
    let shown = format!("{e} / {e:?}");
    assert!(!shown.contains("hunter2"), "{shown}");

    // And with the right password it works, and Debug does not show it either.
    let bus = Bus::redis(&format!("redis://:the-right-one@127.0.0.1:{port}"), "p")
        .await
        .unwrap();
    bus.ping().await.unwrap();
    assert!(!format!("{bus:?}").contains("the-right-one"));
}
