//! Reliability scenario 1 at the manager's level: a task whose worker died (its lease ran out)
//! is recovered per the contract — read-only re-run, mutating FAILED `interrupted`, waiting
//! untouched — by exactly one recoverer; and without a sandbox nothing runs.

use std::time::Duration;

use domain::TaskStatus;

use crate::support::Fixture;

/// Claims every claimable task for a worker that then "dies" (a lease of 1 ms) — after its runs
/// started (`action.started` audited, as the manager does right before a launch) when `started`.
async fn claim_all_and_die_with(f: &Fixture, started: bool) -> usize {
    let mut n = 0;
    while let Some(task) =
        store::tasks::claim(f.db(), "dead-worker", Duration::from_millis(1), None)
            .await
            .unwrap()
    {
        if started {
            let mut tx = f.db().begin().await.unwrap();
            store::audit::append(
                &mut tx,
                store::audit::NewAuditEvent::new("action.started", serde_json::json!({}))
                    .task(&task.task_id),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
        n += 1;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    n
}

async fn claim_all_and_die(f: &Fixture) -> usize {
    claim_all_and_die_with(f, true).await
}

#[tokio::test]
async fn a_task_claimed_but_never_started_is_queued_again_whatever_its_tier() {
    let f = Fixture::new().await;
    let write = f.command("rm -rf build").await;
    let approval = write.approval_id.clone().unwrap();
    f.coord
        .decide_approval(&f.user, &approval, domain::ApprovalDecision::Approve)
        .await
        .unwrap();
    assert_eq!(claim_all_and_die_with(&f, false).await, 1);
    assert_eq!(f.manager.recover_expired().await.unwrap(), 1);
    let write = f.task(&write).await;
    assert_eq!(
        write.status,
        TaskStatus::Queued,
        "nothing ran, so it may run"
    );
}

#[tokio::test]
async fn interrupted_tasks_follow_the_recovery_contract() {
    let f = Fixture::new().await;
    let read = f.command("cat /etc/hostname").await;
    let write = f.command("rm -rf build").await;
    let waiting = f.command("rm -rf build").await;
    assert_eq!(write.status, TaskStatus::WaitingApproval);
    // Approve one mutating task so it is queued; the other keeps waiting.
    let approval = write.approval_id.clone().unwrap();
    f.coord
        .decide_approval(&f.user, &approval, domain::ApprovalDecision::Approve)
        .await
        .unwrap();
    assert_eq!(claim_all_and_die(&f).await, 2);

    let recovered = f.manager.recover_expired().await.unwrap();
    assert_eq!(recovered, 2);
    let read = f.task(&read).await;
    assert_eq!(read.status, TaskStatus::Queued, "read-only is re-run");
    let write = f.task(&write).await;
    assert_eq!(write.status, TaskStatus::Failed, "mutating is never re-run");
    let error = write.error.unwrap();
    assert_eq!(error.code, "interrupted");
    assert!(
        error.message.contains("not run again automatically"),
        "{}",
        error.message
    );
    assert_eq!(f.task(&waiting).await.status, TaskStatus::WaitingApproval);

    // A second sweep (another process) finds nothing more to do.
    assert_eq!(f.manager.recover_expired().await.unwrap(), 0);
}

#[tokio::test]
async fn a_read_only_task_interrupted_three_times_gives_up() {
    let f = Fixture::new().await;
    let read = f.command("uptime").await;
    for round in 1..=3 {
        assert_eq!(claim_all_and_die(&f).await, 1, "round {round}");
        f.manager.recover_expired().await.unwrap();
    }
    let read = f.task(&read).await;
    assert_eq!(read.status, TaskStatus::Failed);
    assert_eq!(read.error.unwrap().code, "interrupted");
}

#[tokio::test]
async fn concurrent_recoverers_settle_each_task_once() {
    let f = Fixture::new().await;
    for _ in 0..10 {
        f.command("ls").await;
    }
    assert_eq!(claim_all_and_die(&f).await, 10);
    let (a, b) = tokio::join!(f.manager.recover_expired(), f.manager.recover_expired());
    assert_eq!(
        a.unwrap() + b.unwrap(),
        10,
        "each task recovered exactly once"
    );
    let queued = store::tasks::count_by_status(f.db()).await.unwrap();
    assert!(queued.contains(&(TaskStatus::Queued, 10)), "{queued:?}");
}

#[tokio::test]
async fn without_a_sandbox_claimed_tasks_fail_with_the_reason() {
    let f = Fixture::new().await;
    let task = f.command("ls").await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(f.manager.clone().run(stop_rx, Duration::from_secs(1)));
    let mut done = f.task(&task).await;
    for _ in 0..100 {
        if done.status.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        done = f.task(&task).await;
    }
    stop_tx.send(true).unwrap();
    workers.await.unwrap();
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.code, "sandbox_unavailable");
    assert!(
        error.message.contains("sandbox_missing"),
        "{}",
        error.message
    );
    assert!(done.result.is_none(), "nothing ran");
}
