//! Governance: the org policy, users' bypass toggles, emergency controls, and explaining a
//! decision. Every change is audited and applies to the very next decision in every process (the
//! gate reads the policy row fresh each time).

use domain::{BypassMode, Id, OrgPolicy, RiskTier, Role, User};
use serde::Serialize;
use store::audit::{self, NewAuditEvent};
use store::policy::{self as policy_store, PolicyChange};
use store::{Tx, users};

use crate::Coordinator;
use crate::error::{CoordError, Result};
use crate::identity::Actor;
use policy::gate::{Explanation, Subject};

/// An emergency control (CONTRACT.md `POST /v1/org/emergency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Emergency {
    /// Disallow bypass and turn every user's bypass OFF at once.
    DisableBypass,
    /// Allow bypass again (turns nobody's ON).
    EnableBypass,
    /// Refuse every L1+ action; L0 runs as usual.
    PauseMutations,
    ResumeMutations,
    /// Cancel every non-terminal task of tier L1 or more, and every running agent task.
    CancelRiskyTasks,
    /// Cancel tasks holding grants (environments) so new credentials take effect, and re-encrypt
    /// every stored secret under a new data key.
    RotateCredentials,
}

impl Emergency {
    fn as_str(self) -> &'static str {
        match self {
            Emergency::DisableBypass => "disable_bypass",
            Emergency::EnableBypass => "enable_bypass",
            Emergency::PauseMutations => "pause_mutations",
            Emergency::ResumeMutations => "resume_mutations",
            Emergency::CancelRiskyTasks => "cancel_risky_tasks",
            Emergency::RotateCredentials => "rotate_credentials",
        }
    }
}

/// What an emergency control did.
#[derive(Debug, Clone, Serialize)]
pub struct EmergencyOutcome {
    pub policy: OrgPolicy,
    pub canceled_task_ids: Vec<Id>,
}

/// Refuses a change that breaks the bounds of CONTRACT.md "OrgPolicy".
fn check_change(change: &PolicyChange) -> Result<()> {
    if let Some(ttl) = change.approval_ttl_seconds
        && !(OrgPolicy::MIN_TTL_SECONDS..=OrgPolicy::MAX_TTL_SECONDS).contains(&ttl)
    {
        return Err(CoordError::invalid(
            "out_of_bounds",
            format!(
                "approval_ttl_seconds must be between {} and {}",
                OrgPolicy::MIN_TTL_SECONDS,
                OrgPolicy::MAX_TTL_SECONDS
            ),
        ));
    }
    if let Some(tier) = change.bypass_max_tier
        && !matches!(tier, RiskTier::L1Mutating | RiskTier::L2Destructive)
    {
        return Err(CoordError::invalid(
            "out_of_bounds",
            "bypass_max_tier must be L1_MUTATING or L2_DESTRUCTIVE",
        ));
    }
    Ok(())
}

impl Coordinator {
    /// The org policy (admins).
    pub async fn org_policy(&self, user: &User) -> Result<OrgPolicy> {
        Actor::User(user).require_admin()?;
        Ok(policy_store::get(&self.db).await?)
    }

    /// Changes some fields of the org policy (admins). Turning `bypass_allowed` off turns every
    /// user's bypass OFF in the same transaction.
    pub async fn update_org_policy(&self, user: &User, change: &PolicyChange) -> Result<OrgPolicy> {
        Actor::User(user).require_admin()?;
        check_change(change)?;
        let mut tx = self.db.begin().await?;
        let policy = apply_change(&mut tx, &user.user_id, change, "policy.changed").await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// Sets `target`'s bypass toggle. Users switch their own; ON needs the org to allow bypass;
    /// admins may turn anyone's OFF (never ON for someone else); OFF is always allowed.
    pub async fn set_bypass(
        &self,
        user: &User,
        target: &Id,
        mode: BypassMode,
    ) -> Result<BypassMode> {
        let own = user.user_id == *target;
        match (own, mode, user.role) {
            (true, _, _) | (false, BypassMode::Off, Role::Admin) => {}
            (false, BypassMode::On, Role::Admin) => {
                return Err(CoordError::Forbidden(
                    "only the user can turn their bypass ON".to_owned(),
                ));
            }
            (false, _, _) => {
                return Err(CoordError::Forbidden(
                    "you can only change your own bypass".to_owned(),
                ));
            }
        }
        let mut tx = self.db.begin().await?;
        if users::get_in(&mut tx, target).await?.is_none() {
            return Err(CoordError::NotFound("user"));
        }
        if mode == BypassMode::On {
            let org = policy_store::get(&self.db).await?;
            if !org.bypass_allowed {
                return Err(CoordError::Forbidden(
                    "the organisation does not allow bypass".to_owned(),
                ));
            }
        }
        if policy_store::set_bypass(&mut tx, target, mode).await? {
            audit::append(
                &mut tx,
                NewAuditEvent::new(
                    "bypass.changed",
                    serde_json::json!({"user_id": target, "mode": mode}),
                )
                .actor(&user.user_id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(mode)
    }

    /// Runs an emergency control (admins).
    pub async fn emergency(&self, user: &User, action: Emergency) -> Result<EmergencyOutcome> {
        Actor::User(user).require_admin()?;
        let kind = format!("emergency.{}", action.as_str());
        let change = match action {
            Emergency::DisableBypass => PolicyChange {
                bypass_allowed: Some(false),
                ..PolicyChange::default()
            },
            Emergency::EnableBypass => PolicyChange {
                bypass_allowed: Some(true),
                ..PolicyChange::default()
            },
            Emergency::PauseMutations => PolicyChange {
                mutations_paused: Some(true),
                ..PolicyChange::default()
            },
            Emergency::ResumeMutations => PolicyChange {
                mutations_paused: Some(false),
                ..PolicyChange::default()
            },
            Emergency::CancelRiskyTasks | Emergency::RotateCredentials => PolicyChange::default(),
        };
        let mut tx = self.db.begin().await?;
        let mut rotation = None;
        let canceled = match action {
            Emergency::CancelRiskyTasks => {
                let ids = store::tasks::risky_active_ids(&mut tx).await?;
                cancel_all(&mut tx, &ids, &user.user_id, "emergency_cancel_risky_tasks").await?
            }
            Emergency::RotateCredentials => {
                rotation = self.rotate_secrets_in(&mut tx).await?;
                let ids = store::tasks::active_ids_with_environment(&mut tx).await?;
                cancel_all(&mut tx, &ids, &user.user_id, "emergency_rotate_credentials").await?
            }
            _ => Vec::new(),
        };
        let policy = apply_change(&mut tx, &user.user_id, &change, &kind).await?;
        let mut data = serde_json::json!({"canceled_task_ids": canceled});
        if let Some(r) = rotation {
            data["secrets_reencrypted"] = r.reencrypted.into();
            data["key_version"] = r.key_version.into();
        }
        audit::append(
            &mut tx,
            NewAuditEvent::new(&kind, data).actor(&user.user_id),
        )
        .await?;
        tx.commit().await?;
        Ok(EmergencyOutcome {
            policy,
            canceled_task_ids: canceled,
        })
    }

    /// How `command` would be decided for `user_id` (default: a member with bypass OFF) in
    /// `environment`, under the policy as it is now. Members may only ask about themselves.
    pub async fn explain(
        &self,
        actor: Actor<'_>,
        user_id: Option<&Id>,
        command: &str,
        environment: Option<&str>,
    ) -> Result<Explanation> {
        let subject = match (actor, user_id) {
            (Actor::User(caller), Some(id))
                if caller.user_id != *id && caller.role != Role::Admin =>
            {
                return Err(CoordError::Forbidden(
                    "members can only explain decisions for themselves".to_owned(),
                ));
            }
            (_, Some(id)) => {
                let user = users::get(&self.db, id)
                    .await?
                    .ok_or(CoordError::NotFound("user"))?;
                Subject::direct(user.role, user.bypass)
            }
            (Actor::User(caller), None) => Subject::direct(caller.role, caller.bypass),
            (Actor::Operator, None) => Subject::direct(Role::Member, BypassMode::Off),
        };
        Ok(self
            .gate(subject, command, environment)
            .await?
            .explanation())
    }
}

/// Applies a policy change inside `tx`, audits it as `kind` (when anything changed), and revokes
/// every bypass when bypass became disallowed.
async fn apply_change(
    tx: &mut Tx,
    actor: &Id,
    change: &PolicyChange,
    kind: &str,
) -> Result<OrgPolicy> {
    if *change == PolicyChange::default() {
        return Ok(policy_store::current_in(tx).await?);
    }
    let (before, after) = policy_store::update(tx, change).await?;
    let revoked = if after.bypass_allowed {
        Vec::new()
    } else {
        policy_store::revoke_all_bypass(tx).await?
    };
    audit::append(
        tx,
        NewAuditEvent::new(
            kind,
            serde_json::json!({"before": before, "after": after, "bypass_revoked": revoked}),
        )
        .actor(actor),
    )
    .await?;
    Ok(after)
}

async fn cancel_all(tx: &mut Tx, ids: &[Id], actor: &Id, reason: &str) -> Result<Vec<Id>> {
    for id in ids {
        crate::tasks::cancel_in(tx, id, Some(actor), reason).await?;
    }
    Ok(ids.to_vec())
}
