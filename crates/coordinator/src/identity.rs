//! Identity: the org bootstrap, users, API tokens, invite and link codes, authentication and the
//! role rules around them.

use std::time::Duration;

use domain::{Id, Role, Timestamp, User};
use serde::Serialize;
use store::audit::{self, NewAuditEvent};
use store::invites::{self, CodeKind, IssuedCode};
use store::users::{self, IssuedToken, TokenRejection};
use store::{StoreError, org};

use crate::Coordinator;
use crate::error::{CoordError, Result};
use crate::page::Page;

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// Someone with access to the deployment's configuration and database: the CLI.
    Operator,
    /// An authenticated user.
    User(&'a User),
}

impl Actor<'_> {
    fn user_id(&self) -> Option<&Id> {
        match self {
            Actor::Operator => None,
            Actor::User(u) => Some(&u.user_id),
        }
    }

    /// Operators and admins may manage the deployment (identities, policy, audit); anyone else
    /// gets 403. The one home of that rule.
    pub fn require_admin(&self) -> Result<()> {
        match self {
            Actor::Operator => Ok(()),
            Actor::User(u) if u.role == Role::Admin => Ok(()),
            Actor::User(_) => Err(CoordError::Forbidden("this needs an admin".to_owned())),
        }
    }
}

/// What `org init` returns (CONTRACT.md).
#[derive(Debug, Clone, Serialize)]
pub struct OrgInit {
    pub org_id: Id,
    pub admin_user_id: Id,
    pub admin_token: String,
    /// Link code for the first admin's own Telegram account.
    pub admin_link_code: String,
}

/// An admin's change to a user (`PATCH /v1/users/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// Default lifetime of invite and link codes.
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime of invite and link codes.
pub const MAX_CODE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest user or service name.
const MAX_NAME_CHARS: usize = 100;

fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CoordError::invalid(
            "invalid_name",
            "name must not be empty",
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(CoordError::invalid(
            "invalid_name",
            format!("name must be at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

fn validate_code_ttl(ttl: Duration) -> Result<Timestamp> {
    if ttl.is_zero() || ttl > MAX_CODE_TTL {
        return Err(CoordError::invalid(
            "invalid_ttl",
            "ttl must be more than 0 and at most 30 days",
        ));
    }
    Ok(Timestamp::now().plus(ttl))
}

impl Coordinator {
    /// Whether `org init` has run.
    pub async fn org_exists(&self) -> Result<bool> {
        Ok(org::get(&self.db).await?.is_some())
    }

    async fn require_org(&self) -> Result<()> {
        if self.org_exists().await? {
            Ok(())
        } else {
            Err(CoordError::conflict(
                "org_not_initialised",
                "the organisation is not set up yet: run `agenticai org init` first",
            ))
        }
    }

    /// One-time bootstrap: the org, its first admin with an API token, and a link code for the
    /// admin's Telegram account. Exactly one of concurrent calls succeeds.
    pub async fn init_org(&self, org_name: &str, admin_name: &str) -> Result<OrgInit> {
        let org_name = validate_name(org_name)?;
        let admin_name = validate_name(admin_name)?;
        let mut tx = self.db.begin().await?;
        let org = match org::insert(&mut tx, &org_name).await {
            Err(StoreError::Conflict(_)) => {
                return Err(CoordError::conflict(
                    "org_exists",
                    "the organisation is already initialised; org init runs once per deployment",
                ));
            }
            other => other?,
        };
        let data = serde_json::json!({"org_id": org.org_id, "name": org.name});
        record(&mut tx, None, "org.created", data).await?;
        let admin = create_user_in(&mut tx, None, &admin_name, Role::Admin).await?;
        let token = issue_token_in(&mut tx, None, &admin.user_id, None).await?;
        let link = issue_code_in(
            &mut tx,
            None,
            CodeKind::Link(admin.user_id.clone()),
            Timestamp::now().plus(DEFAULT_CODE_TTL),
        )
        .await?;
        tx.commit().await?;
        Ok(OrgInit {
            org_id: org.org_id,
            admin_user_id: admin.user_id,
            admin_token: token.token,
            admin_link_code: link.code,
        })
    }

    /// Creates a user without Telegram, with a first API token.
    pub async fn create_user(
        &self,
        actor: Actor<'_>,
        name: &str,
        role: Role,
    ) -> Result<(User, IssuedToken)> {
        actor.require_admin()?;
        let name = validate_name(name)?;
        self.require_org().await?;
        let mut tx = self.db.begin().await?;
        let user = create_user_in(&mut tx, actor.user_id(), &name, role).await?;
        let token = issue_token_in(&mut tx, actor.user_id(), &user.user_id, None).await?;
        tx.commit().await?;
        Ok((user, token))
    }

    /// Issues a new API token for `user_id`, expiring after `ttl` (never when None).
    pub async fn create_token(
        &self,
        actor: Actor<'_>,
        user_id: &Id,
        ttl: Option<Duration>,
    ) -> Result<IssuedToken> {
        actor.require_admin()?;
        let mut tx = self.db.begin().await?;
        let user = users::get_in(&mut tx, user_id)
            .await?
            .ok_or(CoordError::NotFound("user"))?;
        if user.disabled {
            return Err(CoordError::conflict(
                "user_disabled",
                "the user is disabled; re-enable it before issuing a token",
            ));
        }
        let expires_at = ttl.map(|t| Timestamp::now().plus(t));
        let token = issue_token_in(&mut tx, actor.user_id(), user_id, expires_at).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// A single-use invite that creates a new user with `role` when redeemed.
    pub async fn create_invite(
        &self,
        actor: Actor<'_>,
        role: Role,
        ttl: Duration,
    ) -> Result<IssuedCode> {
        actor.require_admin()?;
        if role == Role::Service {
            return Err(CoordError::invalid(
                "invalid_role",
                "invites are for people (member or admin); create service users with \
                 `agenticai user create --role service`",
            ));
        }
        let expires_at = validate_code_ttl(ttl)?;
        self.require_org().await?;
        let mut tx = self.db.begin().await?;
        let code =
            issue_code_in(&mut tx, actor.user_id(), CodeKind::Invite(role), expires_at).await?;
        tx.commit().await?;
        Ok(code)
    }

    /// A single-use code that links a Telegram account to the existing user `user_id`; returns
    /// it with that user's role.
    pub async fn create_link_code(
        &self,
        actor: Actor<'_>,
        user_id: &Id,
        ttl: Duration,
    ) -> Result<(IssuedCode, Role)> {
        actor.require_admin()?;
        let expires_at = validate_code_ttl(ttl)?;
        let mut tx = self.db.begin().await?;
        let user = users::get_in(&mut tx, user_id)
            .await?
            .ok_or(CoordError::NotFound("user"))?;
        if user.disabled {
            return Err(CoordError::conflict(
                "user_disabled",
                "the user is disabled",
            ));
        }
        let code = issue_code_in(
            &mut tx,
            actor.user_id(),
            CodeKind::Link(user.user_id),
            expires_at,
        )
        .await?;
        tx.commit().await?;
        Ok((code, user.role))
    }

    /// The user behind an API token. A refused token is audited (`auth.failed`) and answered
    /// with the same error whatever the reason, so probing learns nothing.
    pub async fn authenticate(&self, token: &str) -> Result<User> {
        let outcome = if token.starts_with(users::TOKEN_PREFIX) && token.len() < 200 {
            users::authenticate(&self.db, token).await?
        } else {
            Err((TokenRejection::Unknown, None))
        };
        match outcome {
            Ok(user) => Ok(user),
            Err((reason, user_id)) => {
                let now = Timestamp::now().as_millis();
                if let Some(suppressed) =
                    self.auth_failures
                        .record(reason.as_str(), user_id.as_ref(), now)
                {
                    let mut tx = self.db.begin().await?;
                    let event = NewAuditEvent::new(
                        "auth.failed",
                        serde_json::json!({
                            "reason": reason.as_str(),
                            "channel": "api",
                            "previous_minute_unlogged_failures": suppressed,
                        }),
                    );
                    audit::append(&mut tx, event.by(user_id.as_ref())).await?;
                    tx.commit().await?;
                }
                Err(CoordError::Unauthenticated(
                    "missing, invalid, expired or revoked token".to_owned(),
                ))
            }
        }
    }

    /// Every user, newest first (admins only).
    pub async fn list_users(&self, actor: Actor<'_>, page: &Page) -> Result<Vec<User>> {
        actor.require_admin()?;
        Ok(users::list(&self.db, page.before.as_ref(), page.limit).await?)
    }

    /// Changes a user's role or disables/enables them (admins only). Disabling revokes their
    /// tokens, unlinks Telegram and cancels their tasks. The last enabled admin cannot be demoted
    /// or disabled, so the org is never left without one.
    pub async fn patch_user(
        &self,
        actor: Actor<'_>,
        user_id: &Id,
        patch: &UserPatch,
    ) -> Result<User> {
        actor.require_admin()?;
        if patch.role.is_none() && patch.disabled.is_none() {
            return Err(CoordError::invalid(
                "empty_patch",
                "give \"role\" or \"disabled\"",
            ));
        }
        let mut tx = self.db.begin().await?;
        let user = users::get_in(&mut tx, user_id)
            .await?
            .ok_or(CoordError::NotFound("user"))?;
        let loses_admin = user.role == Role::Admin
            && !user.disabled
            && (patch.role.is_some_and(|r| r != Role::Admin) || patch.disabled == Some(true));
        if loses_admin && users::count_active_admins(&mut tx).await? <= 1 {
            return Err(CoordError::conflict(
                "last_admin",
                "this is the last enabled admin; promote another admin first",
            ));
        }
        if let Some(role) = patch.role.filter(|r| *r != user.role) {
            users::set_role(&mut tx, user_id, role).await?;
            record(
                &mut tx,
                actor.user_id(),
                "user.role_changed",
                serde_json::json!({"user_id": user_id, "from": user.role, "to": role}),
            )
            .await?;
        }
        match patch.disabled {
            Some(true) if users::disable(&mut tx, user_id).await? => {
                let canceled =
                    crate::tasks::cancel_all_in(&mut tx, user_id, actor.user_id(), "user_disabled")
                        .await?;
                record(
                    &mut tx,
                    actor.user_id(),
                    "user.disabled",
                    serde_json::json!({"user_id": user_id, "canceled_task_ids": canceled}),
                )
                .await?;
            }
            Some(false) if users::enable(&mut tx, user_id).await? => {
                let data = serde_json::json!({"user_id": user_id});
                record(&mut tx, actor.user_id(), "user.enabled", data).await?;
            }
            _ => {}
        }
        let updated = users::get_in(&mut tx, user_id)
            .await?
            .ok_or(CoordError::NotFound("user"))?;
        tx.commit().await?;
        Ok(updated)
    }
}

/// Appends an audit event of `kind` by `actor` (None: the operator) inside `tx`.
async fn record(
    tx: &mut store::Tx,
    actor: Option<&Id>,
    kind: &str,
    data: serde_json::Value,
) -> Result<()> {
    audit::append(tx, NewAuditEvent::new(kind, data).by(actor)).await?;
    Ok(())
}

async fn create_user_in(
    tx: &mut store::Tx,
    actor: Option<&Id>,
    name: &str,
    role: Role,
) -> Result<User> {
    let user = users::insert(tx, name, role).await?;
    let data = serde_json::json!({"user_id": user.user_id, "name": user.name, "role": user.role});
    record(tx, actor, "user.created", data).await?;
    Ok(user)
}

async fn issue_token_in(
    tx: &mut store::Tx,
    actor: Option<&Id>,
    user_id: &Id,
    expires_at: Option<Timestamp>,
) -> Result<IssuedToken> {
    let token = users::issue_token(tx, user_id, expires_at).await?;
    record(tx, actor, "token.created", serde_json::json!({"user_id": user_id, "token_id": token.token_id, "expires_at": expires_at})).await?;
    Ok(token)
}

async fn issue_code_in(
    tx: &mut store::Tx,
    actor: Option<&Id>,
    kind: CodeKind,
    expires_at: Timestamp,
) -> Result<IssuedCode> {
    let code = invites::insert(tx, kind, expires_at, actor).await?;
    let (kind_name, role, user_id) = match &code.kind {
        CodeKind::Invite(role) => ("invite", Some(*role), None),
        CodeKind::Link(user) => ("link", None, Some(user.clone())),
    };
    record(
        tx,
        actor,
        "invite.created",
        serde_json::json!({
            "code_ref": code.code_ref, "kind": kind_name, "role": role,
            "user_id": user_id, "expires_at": expires_at,
        }),
    )
    .await?;
    Ok(code)
}
