//! The organisation's policy (CONTRACT.md "OrgPolicy") and approvals ("Approval").

use serde::{Deserialize, Serialize};

use crate::{ApprovalDecision, Id, RiskTier, Timestamp};

/// What org admins control. Defaults: bypass not allowed, max tier L1, not paused, L3 needs an
/// admin, approvals live 30 minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPolicy {
    /// Whether users may turn their bypass ON at all.
    pub bypass_allowed: bool,
    /// The highest tier bypass skips approval for: L1 or L2, never L3.
    pub bypass_max_tier: RiskTier,
    /// While true every L1+ action is refused; L0 runs as usual.
    pub mutations_paused: bool,
    /// L3 approvals are decided by an admin other than the requester.
    pub l3_requires_admin: bool,
    /// How long an approval waits for a decision (60–86400).
    pub approval_ttl_seconds: i64,
    /// Increases with every change.
    pub version: i64,
}

impl OrgPolicy {
    /// Lower bound of `approval_ttl_seconds`.
    pub const MIN_TTL_SECONDS: i64 = 60;
    /// Upper bound of `approval_ttl_seconds`.
    pub const MAX_TTL_SECONDS: i64 = 86_400;

    /// Why the policy is out of bounds, if it is.
    pub fn check_bounds(&self) -> Result<(), String> {
        if !(Self::MIN_TTL_SECONDS..=Self::MAX_TTL_SECONDS).contains(&self.approval_ttl_seconds) {
            return Err(format!(
                "approval_ttl_seconds must be between {} and {}",
                Self::MIN_TTL_SECONDS,
                Self::MAX_TTL_SECONDS
            ));
        }
        if !matches!(
            self.bypass_max_tier,
            RiskTier::L1Mutating | RiskTier::L2Destructive
        ) {
            return Err("bypass_max_tier must be L1_MUTATING or L2_DESTRUCTIVE".to_owned());
        }
        Ok(())
    }
}

impl Default for OrgPolicy {
    fn default() -> Self {
        OrgPolicy {
            bypass_allowed: false,
            bypass_max_tier: RiskTier::L1Mutating,
            mutations_paused: false,
            l3_requires_admin: true,
            approval_ttl_seconds: 1800,
            version: 1,
        }
    }
}

/// A request for a human decision on one exact action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approval_id: Id,
    pub task_id: Id,
    /// The user whose task asks.
    pub requested_by: Id,
    pub risk_tier: RiskTier,
    /// The exact command text that will run if approved.
    pub action: String,
    pub environment: Option<String>,
    /// Why a human must decide, including the environment's grants.
    pub rationale: String,
    pub decision: Option<ApprovalDecision>,
    pub decided_by: Option<Id>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// An environment as the decision sees it: the grants it would give the task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentGrants {
    /// The environment's name, as admins defined it.
    pub name: String,
    /// Hosts (`host[:port]`) the task may reach through the egress proxy.
    pub egress: Vec<String>,
    /// Names of the secrets injected into the sandbox. Names only: a value never comes here.
    pub secrets: Vec<String>,
}

impl EnvironmentGrants {
    /// Whether the environment injects any secret into the sandbox.
    pub fn grants_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }
}
