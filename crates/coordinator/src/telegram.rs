//! Identity and small views for the Telegram channel: redeeming invite and link codes, finding
//! the user behind a Telegram account, auditing messages of unlinked accounts in aggregate, the
//! chats to notify, and the summaries chat commands show. The conversation logic lives in the
//! `telegram` crate; every rule it relies on lives here or in the shared coordinator functions.

use domain::{Approval, BypassMode, Id, RiskTier, Role, Task, TaskStatus, Timestamp, User};
use store::audit::{self, NewAuditEvent};
use store::invites::{self, CodeKind};
use store::tasks::TaskFilter;
use store::{StoreError, users};

use crate::Coordinator;
use crate::error::{CoordError, Result};

/// Longest accepted code text (generated codes are 24 characters).
const MAX_CODE_CHARS: usize = 64;
/// Longest name taken from a Telegram profile for a new user.
const MAX_NAME_CHARS: usize = 100;

/// The Telegram account a message came from. Identity is the numeric `telegram_user_id` only;
/// the names are hints for a new user's display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramAccount {
    pub telegram_user_id: i64,
    /// The private chat with the bot (replies and notifications go there).
    pub chat_id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
}

impl TelegramAccount {
    /// The display name for a user created from this account.
    fn display_name(&self) -> String {
        let candidate = [self.username.as_deref(), self.first_name.as_deref()]
            .into_iter()
            .flatten()
            .map(|s| {
                s.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_NAME_CHARS)
                    .collect::<String>()
            })
            .map(|s| s.trim().to_owned())
            .find(|s| !s.is_empty());
        candidate.unwrap_or_else(|| format!("telegram-{}", self.telegram_user_id))
    }
}

/// What redeeming a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The user the Telegram account is now linked to.
    pub user: User,
    /// True for a link code (an existing user), false for an invite (a new user).
    pub linked_existing: bool,
}

/// What `/status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatStatus {
    /// The user's running tasks, newest first.
    pub running: Vec<Task>,
    /// The user's queued tasks, newest first.
    pub queued: Vec<Task>,
    /// The user's tasks waiting for an approval, newest first.
    pub waiting: Vec<Task>,
    /// Pending approvals awaiting this user (see [`Coordinator::approvals_awaiting`]).
    pub pending_approvals: usize,
    pub bypass: BypassMode,
    pub bypass_allowed: bool,
    pub mutations_paused: bool,
}

/// A pending approval as one user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitingApproval {
    pub approval: Approval,
    /// True when an admin other than the requester must decide it (service users' approvals,
    /// L3 while `l3_requires_admin`).
    pub needs_other_admin: bool,
    /// Whether this user may decide it.
    pub decidable: bool,
}

/// The one message for a code that cannot be redeemed, whatever the reason, so guessing learns
/// nothing.
fn invalid_code() -> CoordError {
    CoordError::invalid(
        "invalid_code",
        "that code is not valid: it may be mistyped, already used or expired. Ask an admin for a \
         new one.",
    )
}

/// Whether an admin other than the requester must decide `approval` (CONTRACT.md "Who
/// decides"). Mirrors the rule `decide_approval` enforces; `decide_approval` remains the
/// authority, this only chooses whom to show and notify.
fn needs_other_admin(approval: &Approval, requester_role: Role, l3_requires_admin: bool) -> bool {
    requester_role == Role::Service
        || (approval.risk_tier == RiskTier::L3Privileged && l3_requires_admin)
}

impl Coordinator {
    /// Redeems an invite (creates a new user with the invite's role) or a link code (attaches
    /// the Telegram account to the existing user) for `account`. Codes are single-use and expire;
    /// a wrong, used or expired code is refused and changes nothing. An account already linked to
    /// another user is refused. Redeeming again the code this account already redeemed returns
    /// the same outcome (a redelivered `/start`). Audited: `invite.redeemed`, `user.created` (for
    /// invites) and `user.telegram_linked`.
    pub async fn redeem_code(&self, account: &TelegramAccount, code: &str) -> Result<Redeemed> {
        let code = code.trim();
        if code.is_empty()
            || code.chars().count() > MAX_CODE_CHARS
            || !code.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(invalid_code());
        }
        let org_exists = self.org_exists().await?;
        if !org_exists {
            return Err(CoordError::conflict(
                "org_not_initialised",
                "this deployment is not set up yet",
            ));
        }
        let mut tx = self.db.begin().await?;
        let Some(record) = invites::find_in(&mut tx, code).await? else {
            drop(tx);
            self.audit_failed_redeem(account, "unknown_code").await?;
            return Err(invalid_code());
        };
        let owner = users::telegram_owner_in(&mut tx, account.telegram_user_id).await?;
        if let Some(redeemed_by) = &record.redeemed_at.and(record.redeemed_by.clone()) {
            // A replay by the account that redeemed it: the same outcome, nothing changes.
            if owner.as_ref() == Some(redeemed_by)
                && let Some(user) = users::get_in(&mut tx, redeemed_by).await?
                && !user.disabled
            {
                return Ok(Redeemed {
                    user,
                    linked_existing: matches!(record.kind, CodeKind::Link(_)),
                });
            }
            drop(tx);
            self.audit_failed_redeem(account, "used_code").await?;
            return Err(invalid_code());
        }
        if record.expires_at <= Timestamp::now() {
            drop(tx);
            self.audit_failed_redeem(account, "expired_code").await?;
            return Err(invalid_code());
        }
        let (user, linked_existing) = match &record.kind {
            CodeKind::Invite(role) => {
                if owner.is_some() {
                    return Err(already_linked());
                }
                let user = users::insert(&mut tx, &account.display_name(), *role).await?;
                audit::append(
                    &mut tx,
                    NewAuditEvent::new(
                        "user.created",
                        serde_json::json!({
                            "user_id": user.user_id, "name": user.name, "role": user.role,
                            "via": "invite", "code_ref": record.code_ref,
                        }),
                    )
                    .actor(&user.user_id),
                )
                .await?;
                (user, false)
            }
            CodeKind::Link(user_id) => {
                if owner.as_ref().is_some_and(|o| o != user_id) {
                    return Err(already_linked());
                }
                let user = users::get_in(&mut tx, user_id)
                    .await?
                    .filter(|u| !u.disabled)
                    .ok_or_else(invalid_code)?;
                (user, true)
            }
        };
        if !invites::redeem(&mut tx, &record.code_ref, &user.user_id).await? {
            // Someone else redeemed it (or it expired) in between: nothing of ours is kept.
            return Err(invalid_code());
        }
        let replaced = match users::link_telegram(
            &mut tx,
            account.telegram_user_id,
            &user.user_id,
            account.chat_id,
            account.username.as_deref(),
        )
        .await
        {
            Err(StoreError::Conflict(_)) => return Err(already_linked()),
            other => other?,
        };
        let kind = if linked_existing { "link" } else { "invite" };
        audit::append_many(
            &mut tx,
            vec![
                NewAuditEvent::new(
                    "invite.redeemed",
                    serde_json::json!({
                        "code_ref": record.code_ref, "kind": kind, "user_id": user.user_id,
                        "telegram_user_id": account.telegram_user_id,
                    }),
                )
                .actor(&user.user_id),
                NewAuditEvent::new(
                    "user.telegram_linked",
                    serde_json::json!({
                        "user_id": user.user_id,
                        "telegram_user_id": account.telegram_user_id,
                        "replaced_telegram_user_id": replaced,
                    }),
                )
                .actor(&user.user_id),
            ],
        )
        .await?;
        let user = users::get_in(&mut tx, &user.user_id)
            .await?
            .ok_or(CoordError::NotFound("user"))?;
        tx.commit().await?;
        Ok(Redeemed {
            user,
            linked_existing,
        })
    }

    /// Audits a refused redemption, aggregated per account and minute like unlinked messages
    /// (a guessing flood cannot fill the disk).
    async fn audit_failed_redeem(&self, account: &TelegramAccount, reason: &str) -> Result<()> {
        self.note_telegram_event(
            "telegram_redeem_failed",
            "invite.redeem_failed",
            account.telegram_user_id,
            serde_json::json!({"reason": reason}),
        )
        .await
    }

    /// The enabled user linked to this Telegram account, if any (disabled users: `None`).
    pub async fn user_by_telegram(&self, telegram_user_id: i64) -> Result<Option<User>> {
        Ok(users::by_telegram(&self.db, telegram_user_id).await?)
    }

    /// Audits a message from an account that is not linked (`telegram.unlinked_message`),
    /// aggregated per account and minute: the first message of a minute writes an event at once,
    /// later ones are counted and the count rides on the account's next event.
    pub async fn note_unlinked_message(&self, telegram_user_id: i64) -> Result<()> {
        self.note_telegram_event(
            "telegram_unlinked",
            "telegram.unlinked_message",
            telegram_user_id,
            serde_json::json!({}),
        )
        .await
    }

    async fn note_telegram_event(
        &self,
        window_key: &'static str,
        kind: &str,
        telegram_user_id: i64,
        mut data: serde_json::Value,
    ) -> Result<()> {
        // Keyed like failed authentications: a pseudo-id per Telegram account.
        let key = Id::parse(&format!("tg-{telegram_user_id}"))
            .map_err(|e| CoordError::Internal(format!("telegram key: {e}")))?;
        let now = Timestamp::now().as_millis();
        let Some(previous) = self.auth_failures.record(window_key, Some(&key), now) else {
            return Ok(());
        };
        data["telegram_user_id"] = telegram_user_id.into();
        data["previous_minute_unlogged"] = previous.into();
        let mut tx = self.db.begin().await?;
        audit::append(&mut tx, NewAuditEvent::new(kind, data)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every enabled admin with a linked Telegram account, with its private chat (for
    /// notifications of approvals that await an admin).
    pub async fn admin_chats(&self) -> Result<Vec<(Id, i64)>> {
        Ok(users::admin_telegram_chats(&self.db).await?)
    }

    /// The private Telegram chat of `user_id`, when that user is enabled and linked.
    pub async fn telegram_chat_of(&self, user_id: &Id) -> Result<Option<i64>> {
        Ok(users::telegram_chat(&self.db, user_id).await?)
    }

    /// An approval `user` may see (the requester, or an admin); `None` otherwise.
    pub async fn approval_visible_to(
        &self,
        user: &User,
        approval_id: &Id,
    ) -> Result<Option<Approval>> {
        let mut tx = self.db.begin().await?;
        let approval = store::approvals::get_in(&mut tx, approval_id).await?;
        drop(tx);
        Ok(approval.filter(|a| a.requested_by == user.user_id || user.role == Role::Admin))
    }

    /// Whether an admin other than the requester must decide `approval`.
    pub async fn approval_needs_other_admin(&self, approval: &Approval) -> Result<bool> {
        let requester = users::get(&self.db, &approval.requested_by)
            .await?
            .ok_or(CoordError::NotFound("approval"))?;
        let org = store::policy::get(&self.db).await?;
        Ok(needs_other_admin(
            approval,
            requester.role,
            org.l3_requires_admin,
        ))
    }

    /// Pending approvals awaiting `user`: their own (also those only another admin may decide,
    /// marked so), and for admins every other user's that needs an admin. Newest first, at most
    /// `limit`.
    pub async fn approvals_awaiting(
        &self,
        user: &User,
        limit: usize,
    ) -> Result<Vec<AwaitingApproval>> {
        let page = crate::Page {
            before: None,
            limit: crate::Page::MAX_LIMIT,
        };
        let pending = self.list_approvals(user, true, &page).await?;
        let org = store::policy::get(&self.db).await?;
        let mut roles: std::collections::HashMap<Id, Role> = Default::default();
        let mut out = Vec::new();
        for approval in pending {
            let role = match roles.get(&approval.requested_by) {
                Some(r) => *r,
                None => {
                    let Some(requester) = users::get(&self.db, &approval.requested_by).await?
                    else {
                        continue;
                    };
                    roles.insert(requester.user_id.clone(), requester.role);
                    requester.role
                }
            };
            let other_admin = needs_other_admin(&approval, role, org.l3_requires_admin);
            let own = approval.requested_by == user.user_id;
            let decidable = if other_admin {
                !own && user.role == Role::Admin
            } else {
                own
            };
            if own || decidable {
                out.push(AwaitingApproval {
                    approval,
                    needs_other_admin: other_admin,
                    decidable,
                });
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Every pending approval that needs an admin other than its requester (to notify admins),
    /// newest first, at most `limit`.
    pub async fn approvals_needing_admin(&self, limit: i64) -> Result<Vec<Approval>> {
        let filter = store::approvals::ApprovalFilter {
            requested_by: None,
            pending: true,
            before: None,
        };
        let pending = store::approvals::list(&self.db, &filter, limit).await?;
        let org = store::policy::get(&self.db).await?;
        let mut out = Vec::new();
        for approval in pending {
            let Some(requester) = users::get(&self.db, &approval.requested_by).await? else {
                continue;
            };
            if needs_other_admin(&approval, requester.role, org.l3_requires_admin) {
                out.push(approval);
            }
        }
        Ok(out)
    }

    /// What `/status` shows for `user`: their running, queued and waiting tasks, the approvals
    /// awaiting them, their bypass mode and the org's switches.
    pub async fn chat_status(&self, user: &User) -> Result<ChatStatus> {
        let of_status = |status| TaskFilter {
            user_id: Some(user.user_id.clone()),
            status: Some(status),
            before: None,
        };
        let db = &self.db;
        let running = store::tasks::list(db, &of_status(TaskStatus::Running), 20).await?;
        let queued = store::tasks::list(db, &of_status(TaskStatus::Queued), 20).await?;
        let waiting = store::tasks::list(db, &of_status(TaskStatus::WaitingApproval), 20).await?;
        let pending_approvals = self.approvals_awaiting(user, 100).await?.len();
        let org = store::policy::get(db).await?;
        let bypass = users::get(db, &user.user_id)
            .await?
            .map_or(user.bypass, |u| u.bypass);
        Ok(ChatStatus {
            running,
            queued,
            waiting,
            pending_approvals,
            bypass,
            bypass_allowed: org.bypass_allowed,
            mutations_paused: org.mutations_paused,
        })
    }

    /// Cancels every non-terminal task of `user` (their own only, also for admins); returns the
    /// ids cancelled (pending approvals of those tasks are recorded as EXPIRE).
    pub async fn cancel_own_tasks(&self, user: &User) -> Result<Vec<Id>> {
        let mut tx = self.db.begin().await?;
        let ids = crate::tasks::cancel_all_in(
            &mut tx,
            &user.user_id,
            Some(&user.user_id),
            "canceled_by_user",
        )
        .await?;
        tx.commit().await?;
        Ok(ids)
    }
}

fn already_linked() -> CoordError {
    CoordError::conflict(
        "telegram_already_linked",
        "this Telegram account is already linked to another user; an admin can unlink it by \
         disabling that user",
    )
}
