//! Approvals end to end at the coordinator (PLAN.md security scenarios 2 and 3, CONTRACT.md "Who
//! decides"): a mutating action waits for approval when bypass is off; nobody but the rightful
//! decider can see or decide it; decisions are single-use; L3 and service approvals need another
//! admin; expiry and cancellation record EXPIRE.

use coordinator::{CoordError, Page};
use domain::{ApprovalDecision, RiskTier, Role, TaskStatus};
use store::bus::Bus;
use store::policy::PolicyChange;

use crate::support::{Fixture, command};

#[tokio::test]
async fn mutating_action_requires_approval_when_bypass_is_off() {
    let fx = Fixture::new(Bus::in_process()).await;
    let alice = fx.user("alice", Role::Member).await;
    let (task, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod x"))
        .await
        .unwrap();
    assert_eq!(task.status, TaskStatus::WaitingApproval);
    assert_eq!(task.risk_tier, Some(RiskTier::L2Destructive));
    let approval_id = task.approval_id.clone().expect("an approval id");
    let pending = fx
        .coord
        .list_approvals(&alice, true, &Page::default())
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let approval = &pending[0];
    assert_eq!(approval.approval_id, approval_id);
    assert_eq!(approval.action, "kubectl delete pod x");
    assert_eq!(approval.risk_tier, RiskTier::L2Destructive);
    assert!(approval.rationale.contains("L2"), "{}", approval.rationale);
    assert!(approval.expires_at > approval.created_at);

    let (read_only, _) = fx
        .coord
        .create_task(&alice, command("ls -la"))
        .await
        .unwrap();
    assert_eq!(read_only.status, TaskStatus::Queued);
    assert_eq!(read_only.risk_tier, Some(RiskTier::L0Readonly));
    assert!(read_only.approval_id.is_none());
}

#[tokio::test]
async fn cross_user_approval_hijack_is_impossible() {
    let fx = Fixture::new(Bus::in_process()).await;
    let alice = fx.user("alice", Role::Member).await;
    let mallory = fx.user("mallory", Role::Member).await;
    let admin = fx.user("ops", Role::Admin).await;
    let (task, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod x"))
        .await
        .unwrap();
    let approval_id = task.approval_id.unwrap();

    let seen = fx
        .coord
        .list_approvals(&mallory, false, &Page::default())
        .await
        .unwrap();
    assert!(seen.is_empty(), "another member sees nothing");
    let err = fx
        .coord
        .decide_approval(&mallory, &approval_id, ApprovalDecision::Approve)
        .await
        .unwrap_err();
    assert!(matches!(err, CoordError::NotFound("approval")), "{err:?}");
    let err = fx
        .coord
        .decide_approval(&admin, &approval_id, ApprovalDecision::Approve)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoordError::Forbidden(_)),
        "only the requester decides an L2: {err:?}"
    );
    let denied = fx.audit(Some(&mallory.user_id), "access.denied").await;
    assert_eq!(denied.len(), 1, "the hijack attempt is audited");

    let approved = fx
        .coord
        .decide_approval(&alice, &approval_id, ApprovalDecision::Approve)
        .await
        .unwrap();
    assert_eq!(approved.decision, Some(ApprovalDecision::Approve));
    assert_eq!(approved.decided_by.as_ref(), Some(&alice.user_id));
    assert_eq!(
        fx.coord
            .get_task(&alice, &task.task_id)
            .await
            .unwrap()
            .status,
        TaskStatus::Queued
    );
    // The same decision again: harmless. A different one: conflict.
    let again = fx
        .coord
        .decide_approval(&alice, &approval_id, ApprovalDecision::Approve)
        .await
        .unwrap();
    assert_eq!(again, approved);
    let conflict = fx
        .coord
        .decide_approval(&alice, &approval_id, ApprovalDecision::Deny)
        .await
        .unwrap_err();
    assert!(matches!(
        conflict,
        CoordError::Conflict {
            code: "approval_decided",
            ..
        }
    ));
}

#[tokio::test]
async fn concurrent_approve_and_deny_have_exactly_one_winner() {
    let fx = Fixture::new(Bus::in_process()).await;
    let alice = fx.user("alice", Role::Member).await;
    let (task, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod x"))
        .await
        .unwrap();
    let approval_id = task.approval_id.unwrap();
    let racers: Vec<_> = [ApprovalDecision::Approve, ApprovalDecision::Deny]
        .into_iter()
        .cycle()
        .take(8)
        .map(|d| {
            let coord = fx.coord.clone();
            let alice = alice.clone();
            let id = approval_id.clone();
            tokio::spawn(async move {
                coord
                    .decide_approval(&alice, &id, d)
                    .await
                    .map(|a| a.decision)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for r in racers {
        outcomes.push(r.await.unwrap());
    }
    let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert!(!winners.is_empty());
    assert!(
        winners.windows(2).all(|w| w[0] == w[1]),
        "one decision wins: {outcomes:?}"
    );
    let task = fx.coord.get_task(&alice, &task.task_id).await.unwrap();
    match winners[0] {
        Some(ApprovalDecision::Approve) => assert_eq!(task.status, TaskStatus::Queued),
        _ => {
            assert_eq!(task.status, TaskStatus::Failed);
            assert_eq!(task.error.unwrap().code, "approval_denied");
        }
    }
}

#[tokio::test]
async fn l3_waits_for_an_admin_other_than_the_requester() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = fx.user("ops", Role::Admin).await;
    let other_admin = fx.user("ops2", Role::Admin).await;
    let (task, _) = fx
        .coord
        .create_task(&admin, command("sudo systemctl restart nginx"))
        .await
        .unwrap();
    assert_eq!(task.risk_tier, Some(RiskTier::L3Privileged));
    assert_eq!(task.status, TaskStatus::WaitingApproval);
    let approval_id = task.approval_id.unwrap();
    let err = fx
        .coord
        .decide_approval(&admin, &approval_id, ApprovalDecision::Approve)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoordError::Forbidden(_)),
        "the requester may not: {err:?}"
    );
    let approved = fx
        .coord
        .decide_approval(&other_admin, &approval_id, ApprovalDecision::Approve)
        .await
        .unwrap();
    assert_eq!(approved.decided_by.as_ref(), Some(&other_admin.user_id));
}

#[tokio::test]
async fn a_service_users_approval_is_decided_by_an_admin() {
    let fx = Fixture::new(Bus::in_process()).await;
    let ci = fx.user("ci", Role::Service).await;
    let admin = fx.user("ops", Role::Admin).await;
    let (task, _) = fx
        .coord
        .create_task(&ci, command("kubectl delete pod x"))
        .await
        .unwrap();
    let approval_id = task.approval_id.unwrap();
    assert!(matches!(
        fx.coord
            .decide_approval(&ci, &approval_id, ApprovalDecision::Approve)
            .await
            .unwrap_err(),
        CoordError::Forbidden(_)
    ));
    let denied = fx
        .coord
        .decide_approval(&admin, &approval_id, ApprovalDecision::Deny)
        .await
        .unwrap();
    assert_eq!(denied.decision, Some(ApprovalDecision::Deny));
    let task = fx.coord.get_task(&admin, &task.task_id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.error.unwrap().code, "approval_denied");
}

#[tokio::test]
async fn expired_and_cancelled_approvals_record_expire() {
    let fx = Fixture::new(Bus::in_process()).await;
    let alice = fx.user("alice", Role::Member).await;
    // Cancelling the task expires its approval.
    let (task, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod x"))
        .await
        .unwrap();
    fx.coord.cancel_task(&alice, &task.task_id).await.unwrap();
    let all = fx
        .coord
        .list_approvals(&alice, false, &Page::default())
        .await
        .unwrap();
    assert_eq!(all[0].decision, Some(ApprovalDecision::Expire));

    // An approval past its time: the sweeper records EXPIRE and fails the task.
    let (task, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod y"))
        .await
        .unwrap();
    sqlx_set_expired(&fx, task.approval_id.as_ref().unwrap().as_str()).await;
    let err = fx
        .coord
        .decide_approval(
            &alice,
            task.approval_id.as_ref().unwrap(),
            ApprovalDecision::Approve,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CoordError::Conflict {
                code: "approval_expired",
                ..
            }
        ),
        "{err:?}"
    );
    let task = fx.coord.get_task(&alice, &task.task_id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.error.unwrap().code, "approval_expired");

    let (task, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod z"))
        .await
        .unwrap();
    sqlx_set_expired(&fx, task.approval_id.as_ref().unwrap().as_str()).await;
    assert_eq!(fx.coord.expire_overdue_approvals().await.unwrap(), 1);
    assert_eq!(
        fx.coord.expire_overdue_approvals().await.unwrap(),
        0,
        "once"
    );
    let task = fx.coord.get_task(&alice, &task.task_id).await.unwrap();
    assert_eq!(task.error.unwrap().code, "approval_expired");
}

/// Moves an approval's expiry into the past (tests only; nothing in the product can).
async fn sqlx_set_expired(fx: &Fixture, approval_id: &str) {
    let mut tx = fx.coord.db().begin().await.unwrap();
    sqlx::query("UPDATE approvals SET expires_at = 1 WHERE approval_id = $1")
        .bind(approval_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn policy_ttl_bounds_are_enforced() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = fx.user("ops", Role::Admin).await;
    for ttl in [59, 86_401, -1] {
        let err = fx
            .coord
            .update_org_policy(
                &admin,
                &PolicyChange {
                    approval_ttl_seconds: Some(ttl),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CoordError::Invalid {
                    code: "out_of_bounds",
                    ..
                }
            ),
            "{ttl}"
        );
    }
    let err = fx
        .coord
        .update_org_policy(
            &admin,
            &PolicyChange {
                bypass_max_tier: Some(RiskTier::L3Privileged),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CoordError::Invalid { .. }));
}
