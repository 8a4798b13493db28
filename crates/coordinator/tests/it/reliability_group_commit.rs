//! Many tasks created at once are group-committed: every one is stored exactly once, answered
//! with its own id, and audited in one unbroken chain.

use std::collections::HashSet;

use coordinator::{NewTask, Page, TaskQuery};
use domain::{Role, TaskInput};
use store::audit::{self, AuditFilter, GENESIS_HASH, event_hash};
use store::bus::Bus;

use crate::support::Fixture;

#[tokio::test]
async fn concurrent_creations_are_each_stored_once_with_an_intact_audit_chain() {
    let fx = Fixture::new(Bus::in_process()).await;
    let alice = fx.user("alice", Role::Member).await;
    let requests: Vec<_> = (0..300)
        .map(|i| {
            let coord = fx.coord.clone();
            let alice = alice.clone();
            tokio::spawn(async move {
                let request = NewTask {
                    input: TaskInput::Command(format!("echo {i}")),
                    environment: None,
                    idempotency_key: None,
                };
                let (task, created) = coord.create_task(&alice, request).await.unwrap();
                assert!(created);
                assert_eq!(task.input, format!("echo {i}"));
                task.task_id
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for r in requests {
        assert!(
            ids.insert(r.await.unwrap()),
            "each request gets its own task"
        );
    }
    let stored = fx
        .coord
        .list_tasks(
            &alice,
            &TaskQuery {
                page: Page::new(None, Some(500)).unwrap(),
                ..TaskQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 300);
    assert!(stored.iter().all(|t| ids.contains(&t.task_id)));

    let events = audit::list(fx.coord.db(), &AuditFilter::default(), 10_000)
        .await
        .unwrap();
    let created: Vec<_> = events.iter().filter(|e| e.kind == "task.created").collect();
    assert_eq!(created.len(), 300);
    let mut prev = GENESIS_HASH.to_owned();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1);
        assert_eq!(e.prev_hash, prev);
        let actor = e.actor.as_ref().map(|a| a.as_str());
        let task = e.task_id.as_ref().map(|t| t.as_str());
        assert_eq!(
            e.hash,
            event_hash(e.seq, e.at, &e.kind, actor, task, &e.data, &e.prev_hash)
        );
        prev = e.hash.clone();
    }
}
