//! The policy gate as the coordinator uses it: normalise, classify, read the current org policy
//! and the subject's bypass, decide. One home for "what happens to this command", used by task
//! creation and by `policy explain`, so the explanation is always the real decision.

use domain::{BypassMode, RiskTier, Role};
use policy::classify::Classification;
use policy::decision::{self, Decision, EnvironmentGrants, Verdict};
use serde::Serialize;
use store::environments::Grants;

use crate::Coordinator;
use crate::error::{CoordError, Result};

/// Whose action is being decided.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub role: Role,
    pub bypass: BypassMode,
    /// Untrusted content entered the task's context (agent tasks).
    pub tainted: bool,
}

/// A decided command.
#[derive(Debug, Clone)]
pub struct Gated {
    /// The command as it will run: typographic quotes and dashes normalised, hidden characters
    /// removed (their presence already escalated the tier).
    pub action: String,
    pub classification: Classification,
    pub decision: Decision,
    /// The environment's grants, when one is used.
    pub grants: Option<Grants>,
    /// The org policy version the decision was made under.
    pub policy_version: i64,
    /// How long an approval asked for now may wait (from the same policy).
    pub approval_ttl: std::time::Duration,
}

/// What `policy explain` prints (CONTRACT.md), plus the rule and reasons.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub risk_tier: RiskTier,
    pub decision: Verdict,
    pub source: domain::PolicySource,
    pub rationale: String,
    pub rule: String,
    pub reasons: Vec<String>,
}

impl Gated {
    /// The rationale shown to approvers: the decision's sentence and the classifier's reasons.
    pub fn rationale(&self) -> String {
        if self.classification.reasons.is_empty() {
            self.decision.rationale.clone()
        } else {
            format!(
                "{} Why: {}.",
                self.decision.rationale,
                self.classification.reasons.join("; ")
            )
        }
    }

    /// The audit record of the decision (`action.decided`).
    pub fn audit_data(&self) -> serde_json::Value {
        serde_json::json!({
            "action": self.action,
            "risk_tier": self.classification.tier,
            "verdict": self.decision.verdict,
            "source": self.decision.source,
            "rule": self.decision.rule,
            "rationale": self.rationale(),
            "programs": self.classification.programs,
            "environment": self.grants.as_ref().map(|g| &g.name),
            "policy_version": self.policy_version,
        })
    }

    /// The explanation of this decision.
    pub fn explanation(&self) -> Explanation {
        Explanation {
            risk_tier: self.classification.tier,
            decision: self.decision.verdict,
            source: self.decision.source,
            rationale: self.rationale(),
            rule: self.decision.rule.clone(),
            reasons: self.classification.reasons.clone(),
        }
    }
}

impl Coordinator {
    /// Decides `command` for `subject` in `environment` under the org policy as it is now.
    pub(crate) async fn gate(
        &self,
        subject: Subject,
        command: &str,
        environment: Option<&str>,
    ) -> Result<Gated> {
        let grants = match environment {
            Some(name) => Some(
                store::environments::grants(&self.db, name)
                    .await?
                    .ok_or_else(|| {
                        CoordError::invalid(
                            "unknown_environment",
                            format!("there is no environment named {name:?}"),
                        )
                    })?,
            ),
            None => None,
        };
        let org = store::policy::get(&self.db).await?;
        // Normalise once: what is classified is exactly what is stored, approved and run.
        let normalized = policy::normalize::normalize(command);
        let classification = policy::classify::classify_normalized(&normalized);
        let action = normalized.text;
        let env = grants.as_ref().map(|g| EnvironmentGrants {
            name: g.name.clone(),
            egress: g.egress.clone(),
            secrets: g.secrets.clone(),
        });
        let decision = decision::decide(&decision::Request {
            tier: classification.tier,
            forbidden: classification.forbidden.as_deref(),
            role: subject.role,
            bypass: subject.bypass,
            tainted: subject.tainted,
            org: &org,
            environment: env.as_ref(),
        });
        Ok(Gated {
            action,
            classification,
            decision,
            grants,
            policy_version: org.version,
            approval_ttl: std::time::Duration::from_secs(
                u64::try_from(org.approval_ttl_seconds).unwrap_or(1800),
            ),
        })
    }
}
