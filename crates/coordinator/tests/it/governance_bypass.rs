//! Bypass and emergency controls (PLAN.md security scenario 4, governance scenarios 1–3).

use coordinator::{CoordError, Emergency};
use domain::{BypassMode, Role, TaskStatus};
use store::bus::Bus;
use store::policy::PolicyChange;

use crate::support::{Fixture, command};

async fn refreshed(fx: &Fixture, user: &domain::User) -> domain::User {
    store::users::get(fx.coord.db(), &user.user_id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn bypass_users_are_still_constrained_by_org_policy() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = fx.user("ops", Role::Admin).await;
    let alice = fx.user("alice", Role::Member).await;

    // Org disallows bypass (default): ON is refused, OFF always works.
    let err = fx
        .coord
        .set_bypass(&alice, &alice.user_id, BypassMode::On)
        .await
        .unwrap_err();
    assert!(matches!(err, CoordError::Forbidden(_)));
    fx.coord
        .set_bypass(&alice, &alice.user_id, BypassMode::Off)
        .await
        .unwrap();

    fx.coord
        .update_org_policy(
            &admin,
            &PolicyChange {
                bypass_allowed: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    fx.coord
        .set_bypass(&alice, &alice.user_id, BypassMode::On)
        .await
        .unwrap();
    let alice = refreshed(&fx, &alice).await;
    assert_eq!(alice.bypass, BypassMode::On);

    // Max tier L1: L1 runs without approval, L2 still waits, L3 always waits.
    let (l1, _) = fx
        .coord
        .create_task(&alice, command("touch notes.txt"))
        .await
        .unwrap();
    assert_eq!(l1.status, TaskStatus::Queued);
    let (l2, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod x"))
        .await
        .unwrap();
    assert_eq!(l2.status, TaskStatus::WaitingApproval);
    let (l3, _) = fx
        .coord
        .create_task(&alice, command("sudo reboot"))
        .await
        .unwrap();
    assert_ne!(l3.status, TaskStatus::Queued, "L3 is never bypassed");

    // Max tier L2: now L2 runs too; L3 still does not.
    fx.coord
        .update_org_policy(
            &admin,
            &PolicyChange {
                bypass_max_tier: Some(domain::RiskTier::L2Destructive),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (l2, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod y"))
        .await
        .unwrap();
    assert_eq!(l2.status, TaskStatus::Queued);
    let (l3, _) = fx
        .coord
        .create_task(&alice, command("sudo systemctl restart nginx"))
        .await
        .unwrap();
    assert_eq!(l3.status, TaskStatus::WaitingApproval);

    // An admin may turn someone's bypass OFF, never ON.
    let err = fx
        .coord
        .set_bypass(&admin, &alice.user_id, BypassMode::On)
        .await
        .unwrap_err();
    assert!(matches!(err, CoordError::Forbidden(_)));
    fx.coord
        .set_bypass(&admin, &alice.user_id, BypassMode::Off)
        .await
        .unwrap();
    assert_eq!(refreshed(&fx, &alice).await.bypass, BypassMode::Off);
}

#[tokio::test]
async fn disabling_bypass_revokes_every_active_bypass_at_once() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = fx.user("ops", Role::Admin).await;
    let alice = fx.user("alice", Role::Member).await;
    let bob = fx.user("bob", Role::Member).await;
    fx.coord
        .emergency(&admin, Emergency::EnableBypass)
        .await
        .unwrap();
    fx.coord
        .set_bypass(&alice, &alice.user_id, BypassMode::On)
        .await
        .unwrap();
    fx.coord
        .set_bypass(&bob, &bob.user_id, BypassMode::On)
        .await
        .unwrap();

    let outcome = fx
        .coord
        .emergency(&admin, Emergency::DisableBypass)
        .await
        .unwrap();
    assert!(!outcome.policy.bypass_allowed);
    for u in [&alice, &bob] {
        let u = refreshed(&fx, u).await;
        assert_eq!(u.bypass, BypassMode::Off);
        // The very next decision already sees it.
        let (t, _) = fx.coord.create_task(&u, command("touch x")).await.unwrap();
        assert_eq!(t.status, TaskStatus::WaitingApproval);
    }
    // enable_bypass only allows it again; nobody's comes back ON.
    fx.coord
        .emergency(&admin, Emergency::EnableBypass)
        .await
        .unwrap();
    assert_eq!(refreshed(&fx, &alice).await.bypass, BypassMode::Off);
}

#[tokio::test]
async fn mutation_pause_still_allows_read_only_operations() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = fx.user("ops", Role::Admin).await;
    let alice = fx.user("alice", Role::Member).await;
    let outcome = fx
        .coord
        .emergency(&admin, Emergency::PauseMutations)
        .await
        .unwrap();
    assert!(outcome.policy.mutations_paused);
    let (ro, _) = fx
        .coord
        .create_task(&alice, command("kubectl get pods"))
        .await
        .unwrap();
    assert_eq!(ro.status, TaskStatus::Queued);
    let (rw, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod x"))
        .await
        .unwrap();
    assert_eq!(rw.status, TaskStatus::Failed);
    assert_eq!(rw.error.unwrap().code, "mutations_paused");
    fx.coord
        .emergency(&admin, Emergency::ResumeMutations)
        .await
        .unwrap();
    let (rw, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod x"))
        .await
        .unwrap();
    assert_eq!(rw.status, TaskStatus::WaitingApproval);
}

#[tokio::test]
async fn policy_updates_affect_new_tasks_immediately_and_are_versioned() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = fx.user("ops", Role::Admin).await;
    let before = fx.coord.org_policy(&admin).await.unwrap();
    let after = fx
        .coord
        .update_org_policy(
            &admin,
            &PolicyChange {
                mutations_paused: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(after.version, before.version + 1);
    assert!(after.mutations_paused);
    assert_eq!(
        after.approval_ttl_seconds, before.approval_ttl_seconds,
        "other fields keep their values"
    );
    let alice = fx.user("alice", Role::Member).await;
    let (t, _) = fx
        .coord
        .create_task(&alice, command("touch x"))
        .await
        .unwrap();
    assert_eq!(t.error.unwrap().code, "mutations_paused");
    let member_err = fx.coord.org_policy(&alice).await.unwrap_err();
    assert!(matches!(member_err, CoordError::Forbidden(_)));
}

#[tokio::test]
async fn cancel_risky_tasks_cancels_l1_and_above_only() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = fx.user("ops", Role::Admin).await;
    let alice = fx.user("alice", Role::Member).await;
    let (safe, _) = fx.coord.create_task(&alice, command("ls")).await.unwrap();
    let (risky, _) = fx
        .coord
        .create_task(&alice, command("kubectl delete pod x"))
        .await
        .unwrap();
    let outcome = fx
        .coord
        .emergency(&admin, Emergency::CancelRiskyTasks)
        .await
        .unwrap();
    assert_eq!(outcome.canceled_task_ids, vec![risky.task_id.clone()]);
    assert_eq!(
        fx.coord
            .get_task(&alice, &risky.task_id)
            .await
            .unwrap()
            .status,
        TaskStatus::Canceled
    );
    assert_eq!(
        fx.coord
            .get_task(&alice, &safe.task_id)
            .await
            .unwrap()
            .status,
        TaskStatus::Queued
    );
}

#[tokio::test]
async fn forbidden_actions_are_denied_whatever_the_settings() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = fx.user("ops", Role::Admin).await;
    fx.coord
        .emergency(&admin, Emergency::EnableBypass)
        .await
        .unwrap();
    fx.coord
        .set_bypass(&admin, &admin.user_id, BypassMode::On)
        .await
        .unwrap();
    let admin = refreshed(&fx, &admin).await;
    let (t, _) = fx
        .coord
        .create_task(&admin, command("rm -rf /"))
        .await
        .unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error.unwrap().code, "policy_denied");
}
