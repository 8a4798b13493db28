//! The layered decision: given an action's risk tier and its context, may it run, must a human
//! approve it, or is it refused? Pure and fast: no I/O, one shared Cedar policy set.
//!
//! # Layers
//! Three layers, written as Cedar policies in `crates/policy/policies/*.cedar` and compiled into
//! the binary with `include_str!`. Nothing at run time can add, remove or edit a policy: the org's
//! admins change the org policy's *settings* (`domain::OrgPolicy`), users change their bypass
//! toggle, and both arrive as request context.
//!
//! | layer | file | may | rules (stable ids) |
//! |---|---|---|---|
//! | SYSTEM_ENFORCED | `system.cedar` | only `forbid` (checked at load) | `system.forbidden`, `system.l3_needs_approval`, `system.tainted_no_bypass`, `system.secrets_no_bypass` |
//! | ORG_DEFAULT | `org.cedar` | restrict; grant inside the system envelope | `org.mutations_paused`, `org.bypass_not_allowed`, `org.bypass_above_max_tier`, `org.readonly_allowed`, `org.approval_required` |
//! | USER_OVERRIDE | `user.cedar` | grant inside the org and system envelopes | `user.bypass` |
//!
//! Cedar's own semantics give the layering: a `forbid` overrides every `permit`, so a lower
//! layer's grant (the user's bypass) holds only where no higher layer forbids it. The higher
//! layers' envelopes are written as `forbid`s; the lower layers' grants as `permit`s.
//!
//! # How one decision is made
//! Each request is asked of Cedar as up to two actions over the same context:
//! 1. `run` — may it run with no human asked? Allowed: [`Verdict::Allow`], named by the permit
//!    (`org.readonly_allowed` for L0, `user.bypass` for a bypass inside its envelope).
//! 2. otherwise `request_approval` — may a human approve it? Allowed:
//!    [`Verdict::RequireApproval`], named by the highest-precedence `forbid` that stopped `run`
//!    (so an L3 says `system.l3_needs_approval`, bypass-above-the-max says
//!    `org.bypass_above_max_tier`) or, when nothing forbade it, by `org.approval_required`.
//! 3. otherwise [`Verdict::Deny`], named by the `forbid` that stopped it (`system.forbidden`,
//!    `org.mutations_paused`) or, when no rule permits the action at all, `system.default_deny`.
//!
//! Precedence is layer first (system, org, user), then order in the file. The rationale names
//! the tier, gives every applicable rule's reason in that order, and names the environment's
//! egress hosts and secret names (never values).
//!
//! # The system envelope, restated
//! The absolute rules — a forbidden action is denied; L3, a tainted task's L1+ and an L1+ in an
//! environment with secrets never run unasked — are Cedar `forbid`s, and are restated in Rust as
//! a post-condition on every decision. Should a future edit of the policy text weaken them, the
//! decision fails closed (Deny, `system.invariant_violation`) rather than allow; the tests check
//! that this never fires with the shipped policies.
//!
//! # Environments (the rule chosen)
//! The classifier owns tiers; an environment never changes one. But using an environment is part
//! of the decision, and bypass never auto-allows an L1+ action in an environment that grants
//! secrets (`system.secrets_no_bypass`). With secrets injected, an action acts with the
//! organisation's credentials on systems outside the sandbox, so the sandbox no longer bounds its
//! effect and the credentials are one mistaken or injected command away from misuse; the approval
//! a human gives is bound to those grants. An environment with egress only keeps bypass as usual:
//! its reach is the admin's host allowlist and it carries nothing worth stealing but the user's
//! own workspace. L0 in any environment runs as usual: read-only is read-only.
//!
//! # Failing closed
//! Every error is a Deny with source SYSTEM_ENFORCED, never a panic: the policy set failing to
//! load or validate against `policies/schema.cedarschema` (`system.policy_unavailable`; the set
//! is built once per process), a Cedar evaluation error in any policy
//! (`system.evaluation_error` — Cedar skips an erroring policy, which for a `forbid` would fail
//! open), and an org policy outside its bounds (`system.invalid_org_policy`).
//!
//! # Roles
//! The role travels in the context but no shipped rule uses it: admins get no special allow and
//! service users may have bypass like anyone. Who may decide an approval is not decided here.

mod engine;
mod rationale;

use serde::Serialize;

pub use domain::EnvironmentGrants;
use domain::{BypassMode, OrgPolicy, PolicySource, RiskTier, Role};

pub use engine::{PolicyLoadError, check_shipped_policies};

/// Everything one decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The action's risk tier, from the classifier (never from the model).
    pub tier: RiskTier,
    /// Set by the classifier when a rule marks the action as never allowed.
    pub forbidden: Option<&'a str>,
    /// The requester's role.
    pub role: Role,
    /// The requester's bypass toggle.
    pub bypass: BypassMode,
    /// Untrusted content (web pages, command output) entered the task's context.
    pub tainted: bool,
    /// The organisation's current policy.
    pub org: &'a OrgPolicy,
    /// The environment the action would run in, if any.
    pub environment: Option<&'a EnvironmentGrants>,
}

/// What happens to the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// It runs with no human asked.
    Allow,
    /// It waits for a human's approval.
    RequireApproval,
    /// It is refused.
    Deny,
}

/// The outcome of [`decide`], with the layer and rule that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Allow, ask a human, or deny.
    pub verdict: Verdict,
    /// The layer whose rule made the decision.
    pub source: PolicySource,
    /// The stable id of that rule, e.g. `org.approval_required` (see the module doc).
    pub rule: String,
    /// Sentences for the approver: the tier, every applicable rule's reason, and the environment's
    /// egress hosts and secret names (never values).
    pub rationale: String,
}

/// Rule ids the decision makes in Rust, outside the Cedar policies.
pub mod rules {
    /// No rule permits the action (deny by default).
    pub const DEFAULT_DENY: &str = "system.default_deny";
    /// The shipped policy set failed to load or validate.
    pub const POLICY_UNAVAILABLE: &str = "system.policy_unavailable";
    /// Cedar reported an error while evaluating a policy.
    pub const EVALUATION_ERROR: &str = "system.evaluation_error";
    /// The org policy is outside its bounds (`OrgPolicy::check_bounds`).
    pub const INVALID_ORG_POLICY: &str = "system.invalid_org_policy";
    /// The Cedar outcome broke an absolute system rule; refused instead.
    pub const INVARIANT_VIOLATION: &str = "system.invariant_violation";
    /// The org paused mutations (a Cedar rule; its Deny has its own error code).
    pub const MUTATIONS_PAUSED: &str = "org.mutations_paused";
}

impl Decision {
    /// The error code a Deny becomes on a task: `mutations_paused` for the pause, `policy_denied`
    /// otherwise. Meaningful only for a Deny; other verdicts also return `policy_denied`.
    pub fn error_code(&self) -> &'static str {
        if self.verdict == Verdict::Deny && self.rule == rules::MUTATIONS_PAUSED {
            "mutations_paused"
        } else {
            "policy_denied"
        }
    }
}

/// Decides one action: allow, ask a human, or deny, with the layer, rule and rationale. Never
/// panics; every error is a Deny (see the module doc).
pub fn decide(request: &Request<'_>) -> Decision {
    let decision = if let Err(why) = request.org.check_bounds() {
        rationale::fail_closed(request, rules::INVALID_ORG_POLICY, &why)
    } else {
        match engine::shipped() {
            Ok(engine) => engine.decide(request),
            Err(err) => {
                rationale::fail_closed(request, rules::POLICY_UNAVAILABLE, &err.to_string())
            }
        }
    };
    system_envelope(request, decision)
}

/// Whether the environment (if any) injects secrets.
fn grants_secrets(request: &Request<'_>) -> bool {
    request
        .environment
        .is_some_and(EnvironmentGrants::grants_secrets)
}

/// The absolute system rules as a post-condition: a decision that breaks one becomes a Deny.
fn system_envelope(request: &Request<'_>, decision: Decision) -> Decision {
    let mutating = request.tier >= RiskTier::L1Mutating;
    let broken = match decision.verdict {
        Verdict::Deny => None,
        _ if request.forbidden.is_some() => Some("a forbidden action was not denied"),
        Verdict::RequireApproval => None,
        Verdict::Allow if request.tier >= RiskTier::L3Privileged => {
            Some("an L3 action was allowed unasked")
        }
        Verdict::Allow if mutating && request.tainted => {
            Some("a tainted task's L1+ action was allowed unasked")
        }
        Verdict::Allow if mutating && grants_secrets(request) => {
            Some("an L1+ action in an environment with secrets was allowed unasked")
        }
        Verdict::Allow => None,
    };
    match broken {
        None => decision,
        Some(why) => rationale::fail_closed(request, rules::INVARIANT_VIOLATION, why),
    }
}
