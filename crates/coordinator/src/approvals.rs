//! Approvals: who may see and decide them (CONTRACT.md "Who decides"), deciding, and expiry.
//!
//! The requester decides their own approvals — except that approvals of `service` users, and L3
//! approvals while `l3_requires_admin` is on, are decided by an admin other than the requester
//! (the requester then gets 403). A member deciding anyone else's approval gets 404, audited.

use domain::{
    Approval, ApprovalDecision, Id, RiskTier, Role, TaskError, TaskKind, TaskStatus, User,
};
use store::approvals::{self, ApprovalFilter};
use store::audit::{self, NewAuditEvent};
use store::tasks::{self as task_store, StatusChange};
use store::{Tx, users};

use crate::Coordinator;
use crate::error::{CoordError, Result};
use crate::page::Page;

/// Who must decide an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decider {
    /// The user who asked.
    Requester,
    /// An admin other than the requester.
    OtherAdmin,
}

fn decider(approval: &Approval, requester_role: Role, l3_requires_admin: bool) -> Decider {
    if requester_role == Role::Service
        || (approval.risk_tier == RiskTier::L3Privileged && l3_requires_admin)
    {
        Decider::OtherAdmin
    } else {
        Decider::Requester
    }
}

impl Coordinator {
    /// Approvals `user` may see: their own, and for admins all (those awaiting an admin are
    /// among them). `pending` keeps only undecided, unexpired ones.
    pub async fn list_approvals(
        &self,
        user: &User,
        pending: bool,
        page: &Page,
    ) -> Result<Vec<Approval>> {
        let filter = ApprovalFilter {
            requested_by: (user.role != Role::Admin).then(|| user.user_id.clone()),
            pending,
            before: page.before.clone(),
        };
        Ok(approvals::list(&self.db, &filter, page.limit).await?)
    }

    /// Records `user`'s decision (APPROVE or DENY). The same decision again by the same decider
    /// returns the approval unchanged; a different one, or any after expiry, is a conflict.
    /// APPROVE queues the task; DENY fails a command task with `approval_denied` and queues an
    /// agent task again, whose model then hears the refusal.
    pub async fn decide_approval(
        &self,
        user: &User,
        approval_id: &Id,
        decision: ApprovalDecision,
    ) -> Result<Approval> {
        if decision == ApprovalDecision::Expire {
            return Err(CoordError::invalid(
                "invalid_decision",
                "decide with APPROVE or DENY; EXPIRE is recorded by the server",
            ));
        }
        let mut tx = self.db.begin().await?;
        let Some(approval) = approvals::get_in(&mut tx, approval_id).await? else {
            return Err(CoordError::NotFound("approval"));
        };
        let requester = users::get_in(&mut tx, &approval.requested_by)
            .await?
            .ok_or(CoordError::NotFound("approval"))?;
        let org = store::policy::get(&self.db).await?;
        let is_requester = user.user_id == approval.requested_by;
        match decider(&approval, requester.role, org.l3_requires_admin) {
            Decider::Requester if is_requester => {}
            Decider::OtherAdmin if user.role == Role::Admin && !is_requester => {}
            _ if is_requester => {
                return Err(CoordError::Forbidden(
                    "this approval must be decided by an admin other than the requester".to_owned(),
                ));
            }
            _ if user.role == Role::Admin => {
                return Err(CoordError::Forbidden(
                    "only the requester decides this approval".to_owned(),
                ));
            }
            _ => {
                drop(tx);
                self.deny_access(user, "approval", approval_id, Some(&approval.task_id))
                    .await?;
                return Err(CoordError::NotFound("approval"));
            }
        }
        if let Some(made) = approval.decision {
            if made == decision && approval.decided_by.as_ref() == Some(&user.user_id) {
                return Ok(approval);
            }
            return Err(CoordError::conflict(
                "approval_decided",
                format!("the approval was already decided: {made}"),
            ));
        }
        if !approvals::decide(&mut tx, approval_id, decision, Some(&user.user_id)).await? {
            // Undecided but not decidable: its time ran out. Record that, then refuse.
            expire_in(&mut tx, &approval).await?;
            tx.commit().await?;
            return Err(CoordError::conflict(
                "approval_expired",
                "the approval expired before it was decided",
            ));
        }
        audit::append(
            &mut tx,
            NewAuditEvent::new(
                "approval.decided",
                serde_json::json!({"approval_id": approval_id, "decision": decision}),
            )
            .actor(&user.user_id)
            .task(&approval.task_id),
        )
        .await?;
        let agent_task = task_store::get_in(&mut tx, &approval.task_id)
            .await?
            .is_some_and(|t| t.kind == TaskKind::Agent);
        let (to, change) = match decision {
            ApprovalDecision::Approve => (TaskStatus::Queued, StatusChange::default()),
            // The agent hears the refusal as its tool's result and goes on from there.
            _ if agent_task => (
                TaskStatus::Queued,
                StatusChange {
                    reason: Some("approval_denied".to_owned()),
                    ..StatusChange::default()
                },
            ),
            _ => (
                TaskStatus::Failed,
                StatusChange {
                    error: Some(TaskError {
                        code: "approval_denied".to_owned(),
                        message: "the approval was denied".to_owned(),
                    }),
                    reason: Some("approval_denied".to_owned()),
                    ..StatusChange::default()
                },
            ),
        };
        task_store::set_status(&mut tx, &approval.task_id, to, change, Some(&user.user_id)).await?;
        let decided = approvals::get_in(&mut tx, approval_id)
            .await?
            .ok_or(CoordError::NotFound("approval"))?;
        tx.commit().await?;
        if to == TaskStatus::Queued
            && let Err(e) = self.bus.notify_work(&approval.task_id).await
        {
            tracing::warn!(task_id = %approval.task_id, error = %e, "could not publish wake-up");
        }
        Ok(decided)
    }

    /// Records EXPIRE on every approval whose time is up and fails its task with
    /// `approval_expired`. Returns how many expired. Safe to run in several processes at once.
    pub async fn expire_overdue_approvals(&self) -> Result<usize> {
        let overdue = approvals::overdue(&self.db, 500).await?;
        let mut expired = 0;
        for approval in overdue {
            let mut tx = self.db.begin().await?;
            if expire_in(&mut tx, &approval).await? {
                expired += 1;
            }
            tx.commit().await?;
        }
        Ok(expired)
    }

    /// Audits a refused access (`access.denied`) to a resource the caller may not see.
    pub(crate) async fn deny_access(
        &self,
        user: &User,
        resource: &str,
        id: &Id,
        task_id: Option<&Id>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let mut event = NewAuditEvent::new(
            "access.denied",
            serde_json::json!({"resource": resource, "id": id}),
        )
        .actor(&user.user_id);
        if let Some(task_id) = task_id {
            event = event.task(task_id);
        }
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Records EXPIRE on `approval` (if still undecided) and fails its waiting task with
/// `approval_expired`. Returns whether this call expired it.
pub(crate) async fn expire_in(tx: &mut Tx, approval: &Approval) -> Result<bool> {
    if !approvals::decide(tx, &approval.approval_id, ApprovalDecision::Expire, None).await? {
        return Ok(false);
    }
    audit::append(
        tx,
        NewAuditEvent::new(
            "approval.decided",
            serde_json::json!({"approval_id": approval.approval_id, "decision": ApprovalDecision::Expire}),
        )
        .task(&approval.task_id),
    )
    .await?;
    let waiting = task_store::get_in(tx, &approval.task_id)
        .await?
        .is_some_and(|t| t.status == TaskStatus::WaitingApproval);
    if waiting {
        let change = StatusChange {
            error: Some(TaskError {
                code: "approval_expired".to_owned(),
                message: "nobody decided the approval before it expired".to_owned(),
            }),
            reason: Some("approval_expired".to_owned()),
            ..StatusChange::default()
        };
        task_store::set_status(tx, &approval.task_id, TaskStatus::Failed, change, None).await?;
    }
    Ok(true)
}
