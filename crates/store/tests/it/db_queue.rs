//! The work queue: leases claimed by exactly one worker, expired leases found again, status
//! changes guarded by the state machine even under races (reliability scenarios 3 and 4).

use std::collections::HashSet;
use std::time::Duration;

use domain::{Role, TaskStatus};
use store::Db;
use store::tasks::{self, SetStatusError, StatusChange};

use crate::database::{TestDb, queued_task, user};

/// Two workers claim from one backlog at the same time; every task is claimed exactly once.
async fn two_workers_never_claim_the_same_task(db: Db, n: usize) {
    let alice = user(&db, "alice", Role::Member).await;
    for i in 0..n {
        queued_task(&db, &alice, &format!("echo {i}")).await;
    }
    let workers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|name| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(task) = tasks::claim(&db, name, Duration::from_secs(60), None)
                    .await
                    .unwrap()
                {
                    assert_eq!(task.status, TaskStatus::Running);
                    mine.push(task.task_id);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut per_worker = Vec::new();
    for w in workers {
        let mine = w.await.unwrap();
        per_worker.push(mine.len());
        all.extend(mine);
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), n, "every task claimed");
    assert_eq!(unique.len(), n, "no task claimed twice");
    assert!(
        per_worker.iter().all(|c| *c > 0),
        "both workers got work: {per_worker:?}"
    );
}

#[tokio::test]
async fn postgres_two_workers_never_claim_the_same_task() {
    let test_db = TestDb::postgres().await;
    two_workers_never_claim_the_same_task(test_db.db.clone(), 300).await;
}

#[tokio::test]
async fn two_workers_never_claim_the_same_task_on_the_default_backend() {
    let test_db = TestDb::default_backend().await;
    two_workers_never_claim_the_same_task(test_db.db.clone(), 200).await;
}

#[tokio::test]
async fn an_expired_lease_is_found_again_and_a_live_one_is_not() {
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    let alice = user(&db, "alice", Role::Member).await;
    let t1 = queued_task(&db, &alice, "sleep 1").await;
    let t2 = queued_task(&db, &alice, "sleep 2").await;
    let c1 = tasks::claim(&db, "dead", Duration::from_millis(1), None)
        .await
        .unwrap()
        .unwrap();
    let c2 = tasks::claim(&db, "alive", Duration::from_secs(60), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c1.task_id.clone(), c2.task_id.clone()),
        (t1.task_id.clone(), t2.task_id.clone())
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let expired: Vec<_> = tasks::expired_leases(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(expired, vec![t1.task_id.clone()]);
    assert!(
        tasks::renew_lease(&db, &t2.task_id, "alive", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !tasks::renew_lease(&db, &t2.task_id, "someone-else", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        tasks::claim(&db, "w", Duration::from_secs(60), None)
            .await
            .unwrap()
            .is_none(),
        "nothing queued"
    );
}

/// A worker writes for a task only while it holds it: not after another worker took the
/// expired lease over, and not after the task left RUNNING.
#[tokio::test]
async fn only_the_lease_holder_may_write_for_a_running_task() {
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    let alice = user(&db, "alice", Role::Member).await;
    let task = queued_task(&db, &alice, "ls").await;
    tasks::claim(&db, "slow", Duration::from_millis(1), None)
        .await
        .unwrap()
        .unwrap();
    let holds = |worker: &'static str| {
        let db = db.clone();
        let id = task.task_id.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let held = tasks::hold_lease(&mut tx, &id, worker).await.unwrap();
            tx.commit().await.unwrap();
            held
        }
    };
    assert!(holds("slow").await);
    assert!(!holds("other").await);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        tasks::take_over_expired(&db, &task.task_id, "recoverer")
            .await
            .unwrap()
    );
    assert!(!holds("slow").await, "the lease was taken over");
    assert!(holds("recoverer").await);
    let mut tx = db.begin().await.unwrap();
    tasks::set_status(
        &mut tx,
        &task.task_id,
        TaskStatus::Canceled,
        StatusChange::default(),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(!holds("recoverer").await, "a cancelled task is nobody's");
}

#[tokio::test]
async fn illegal_transitions_are_refused_and_terminal_states_are_final() {
    let test_db = TestDb::default_backend().await;
    let db = test_db.db.clone();
    let alice = user(&db, "alice", Role::Member).await;
    let task = queued_task(&db, &alice, "ls").await;
    let mut tx = db.begin().await.unwrap();
    let err = tasks::set_status(
        &mut tx,
        &task.task_id,
        TaskStatus::Succeeded,
        StatusChange::default(),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SetStatusError::Illegal(e) if e.from == TaskStatus::Queued));
    let canceled = tasks::set_status(
        &mut tx,
        &task.task_id,
        TaskStatus::Canceled,
        StatusChange::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(canceled.status, TaskStatus::Canceled);
    let err = tasks::set_status(
        &mut tx,
        &task.task_id,
        TaskStatus::Queued,
        StatusChange::default(),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SetStatusError::Illegal(_)));
    tx.commit().await.unwrap();
    let stored = tasks::get(&db, &task.task_id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Canceled);
}

/// Racing status changes on one task: exactly one wins, the rest see a conflict or an illegal
/// transition, and the stored status is the winner's.
async fn racing_status_changes_have_one_winner(db: Db) {
    let alice = user(&db, "alice", Role::Member).await;
    let task = queued_task(&db, &alice, "ls").await;
    let racers: Vec<_> = [
        TaskStatus::Canceled,
        TaskStatus::Failed,
        TaskStatus::Canceled,
        TaskStatus::Running,
    ]
    .into_iter()
    .map(|to| {
        let db = db.clone();
        let id = task.task_id.clone();
        tokio::spawn(async move {
            let mut tx = db.begin().await.unwrap();
            match tasks::set_status(&mut tx, &id, to, StatusChange::default(), None).await {
                Ok(t) => {
                    tx.commit().await.unwrap();
                    Some(t.status)
                }
                Err(_) => None,
            }
        })
    })
    .collect();
    let mut winners = Vec::new();
    for r in racers {
        if let Some(s) = r.await.unwrap() {
            winners.push(s);
        }
    }
    assert!(!winners.is_empty());
    // The audit trail records committed changes in commit order: replaying them from QUEUED must
    // take only legal steps and end where the row is.
    let changes = store::audit::list(
        &db,
        &store::audit::AuditFilter {
            task_id: Some(task.task_id.clone()),
            kind: Some("task.status_changed".to_owned()),
            ..Default::default()
        },
        100,
    )
    .await
    .unwrap();
    assert_eq!(changes.len(), winners.len());
    let mut status = TaskStatus::Queued;
    for change in &changes {
        let to: TaskStatus = serde_json::from_value(change.data["to"].clone()).unwrap();
        status = status
            .transition(to)
            .expect("every committed change is legal");
    }
    let stored = tasks::get(&db, &task.task_id).await.unwrap().unwrap();
    assert_eq!(stored.status, status);
}

#[tokio::test]
async fn racing_status_changes_stay_legal_on_the_default_backend() {
    let test_db = TestDb::default_backend().await;
    racing_status_changes_have_one_winner(test_db.db.clone()).await;
}

#[tokio::test]
async fn postgres_racing_status_changes_stay_legal() {
    let test_db = TestDb::postgres().await;
    racing_status_changes_have_one_winner(test_db.db.clone()).await;
}
