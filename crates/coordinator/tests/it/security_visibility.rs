//! Who sees what (CONTRACT.md): owners and admins see a task; anyone else gets "not found" — the
//! same answer as for a task that does not exist — and the attempt is audited.

use coordinator::{Actor, CoordError, NewTask, Page, TaskQuery, UserPatch};
use domain::{Id, Role, TaskStatus};
use store::bus::Bus;

use crate::support::{Fixture, command};

#[tokio::test]
async fn another_members_task_is_not_found_and_the_attempt_is_audited() {
    let fx = Fixture::new(Bus::in_process()).await;
    let alice = fx.user("alice", Role::Member).await;
    let mallory = fx.user("mallory", Role::Member).await;
    let admin = fx.user("ops", Role::Admin).await;
    let (task, _) = fx
        .coord
        .create_task(&alice, command("kubectl get pods"))
        .await
        .unwrap();

    let hidden = fx
        .coord
        .get_task(&mallory, &task.task_id)
        .await
        .unwrap_err();
    let missing = fx
        .coord
        .get_task(&mallory, &Id::parse("tsk_doesnotexist").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(hidden, CoordError::NotFound("task")));
    assert!(
        matches!(missing, CoordError::NotFound("task")),
        "indistinguishable"
    );
    assert!(matches!(
        fx.coord
            .cancel_task(&mallory, &task.task_id)
            .await
            .unwrap_err(),
        CoordError::NotFound("task")
    ));
    assert_eq!(
        fx.coord
            .get_task(&alice, &task.task_id)
            .await
            .unwrap()
            .task_id,
        task.task_id
    );
    assert_eq!(
        fx.coord
            .get_task(&admin, &task.task_id)
            .await
            .unwrap()
            .task_id,
        task.task_id
    );

    let denied = fx.audit(Some(&mallory.user_id), "access.denied").await;
    assert_eq!(denied.len(), 2, "get and cancel attempts are both audited");
    assert_eq!(denied[0].task_id.as_ref(), Some(&task.task_id));
    assert_eq!(denied[0].data["resource"], "task");

    let mine = fx
        .coord
        .list_tasks(&mallory, &TaskQuery::default())
        .await
        .unwrap();
    assert!(mine.is_empty(), "lists show only one's own tasks");
    let foreign = fx
        .coord
        .list_tasks(
            &mallory,
            &TaskQuery {
                user_id: Some(alice.user_id.clone()),
                ..TaskQuery::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(foreign, CoordError::Forbidden(_)));
    let all = fx
        .coord
        .list_tasks(
            &admin,
            &TaskQuery {
                page: Page::default(),
                ..TaskQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn members_cannot_manage_identities() {
    let fx = Fixture::new(Bus::in_process()).await;
    let alice = fx.user("alice", Role::Member).await;
    let as_alice = Actor::User(&alice);
    assert!(matches!(
        fx.coord
            .create_user(as_alice, "eve", Role::Admin)
            .await
            .unwrap_err(),
        CoordError::Forbidden(_)
    ));
    assert!(matches!(
        fx.coord
            .create_invite(as_alice, Role::Admin, coordinator::DEFAULT_CODE_TTL)
            .await
            .unwrap_err(),
        CoordError::Forbidden(_)
    ));
    assert!(matches!(
        fx.coord
            .patch_user(
                as_alice,
                &alice.user_id,
                &UserPatch {
                    role: Some(Role::Admin),
                    disabled: None
                }
            )
            .await
            .unwrap_err(),
        CoordError::Forbidden(_)
    ));
}

#[tokio::test]
async fn disabling_a_user_cancels_their_work_and_locks_them_out() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = fx.user("ops", Role::Admin).await;
    let (bob, token) = fx
        .coord
        .create_user(Actor::Operator, "bob", Role::Member)
        .await
        .unwrap();
    let (t1, _) = fx
        .coord
        .create_task(&bob, command("sleep 100"))
        .await
        .unwrap();
    let (t2, _) = fx
        .coord
        .create_task(&bob, command("sleep 200"))
        .await
        .unwrap();
    fx.coord.cancel_task(&bob, &t2.task_id).await.unwrap();

    let patched = fx
        .coord
        .patch_user(
            Actor::User(&admin),
            &bob.user_id,
            &UserPatch {
                role: None,
                disabled: Some(true),
            },
        )
        .await
        .unwrap();
    assert!(patched.disabled);
    assert_eq!(
        fx.coord.get_task(&admin, &t1.task_id).await.unwrap().status,
        TaskStatus::Canceled
    );
    assert!(matches!(
        fx.coord.authenticate(&token.token).await.unwrap_err(),
        CoordError::Unauthenticated(_)
    ));
    let failed = fx.audit(None, "auth.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["reason"], "revoked_token");
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_or_disabled() {
    let fx = Fixture::new(Bus::in_process()).await;
    let users = fx
        .coord
        .list_users(Actor::Operator, &Page::default())
        .await
        .unwrap();
    let root = users
        .iter()
        .find(|u| u.role == Role::Admin)
        .unwrap()
        .clone();
    for patch in [
        UserPatch {
            role: Some(Role::Member),
            disabled: None,
        },
        UserPatch {
            role: None,
            disabled: Some(true),
        },
    ] {
        let err = fx
            .coord
            .patch_user(Actor::User(&root), &root.user_id, &patch)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            CoordError::Conflict {
                code: "last_admin",
                ..
            }
        ));
    }
    let second = fx.user("second", Role::Admin).await;
    let demoted = fx
        .coord
        .patch_user(
            Actor::User(&second),
            &root.user_id,
            &UserPatch {
                role: Some(Role::Member),
                disabled: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(demoted.role, Role::Member);
}

#[tokio::test]
async fn idempotency_keys_are_per_user() {
    let fx = Fixture::new(Bus::in_process()).await;
    let alice = fx.user("alice", Role::Member).await;
    let bob = fx.user("bob", Role::Member).await;
    let keyed = |text: &str| NewTask {
        idempotency_key: Some("deploy-42".to_owned()),
        ..command(text)
    };
    let (a1, created1) = fx
        .coord
        .create_task(&alice, keyed("make deploy"))
        .await
        .unwrap();
    let (a2, created2) = fx
        .coord
        .create_task(&alice, keyed("make deploy"))
        .await
        .unwrap();
    let (b1, created3) = fx
        .coord
        .create_task(&bob, keyed("make deploy"))
        .await
        .unwrap();
    assert!(created1 && !created2 && created3);
    assert_eq!(a1.task_id, a2.task_id);
    assert_ne!(a1.task_id, b1.task_id);
}
