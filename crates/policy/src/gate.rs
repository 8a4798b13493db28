//! The policy gate: normalise, classify, decide — "what happens to this command", in one place.
//!
//! The coordinator calls it when a command task is created (and for `policy explain`); the agent
//! loop calls it for every shell action the model proposes. Both load the org policy, the
//! subject's bypass and the environment's grants, then ask [`gate`], so a command typed by a
//! person and the same command proposed by the model are decided by the same rules.
//!
//! One rule lives here rather than in the Cedar layers, because it is about the task's context,
//! not the action: after the injection scanner flagged content in a task's context
//! ([`Subject::flagged`]), nothing the task proposes runs unasked — an Allow becomes
//! RequireApproval (`system.flagged_context`, SYSTEM_ENFORCED). Taint alone already keeps every
//! L1+ action from running unasked (`system.tainted_no_bypass`).

use std::time::Duration;

use domain::{Approval, BypassMode, Id, OrgPolicy, PolicySource, RiskTier, Role, Timestamp};
use serde::Serialize;

use crate::classify::{self, Classification};
use crate::decision::{self, Decision, EnvironmentGrants, Verdict};
use crate::normalize;

/// Rule id of the flagged-context escalation (see the module doc).
pub const FLAGGED_CONTEXT: &str = "system.flagged_context";

/// Whose action is being decided, and in what context.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    /// The requester's role.
    pub role: Role,
    /// The requester's bypass toggle.
    pub bypass: BypassMode,
    /// Untrusted content (command output, web pages) entered the task's context.
    pub tainted: bool,
    /// The injection scanner flagged content in the task's context.
    pub flagged: bool,
}

impl Subject {
    /// A person acting directly: nothing untrusted in the context.
    pub fn direct(role: Role, bypass: BypassMode) -> Subject {
        Subject {
            role,
            bypass,
            tainted: false,
            flagged: false,
        }
    }
}

/// A decided command.
#[derive(Debug, Clone)]
pub struct Gated {
    /// The command as it will run: typographic quotes and dashes normalised, hidden characters
    /// removed (their presence already escalated the tier).
    pub action: String,
    /// The classifier's view of it.
    pub classification: Classification,
    /// Allow, ask, or deny — with the rule that made it.
    pub decision: Decision,
    /// The environment's grants, when one is used.
    pub grants: Option<EnvironmentGrants>,
    /// The org policy version the decision was made under.
    pub policy_version: i64,
    /// How long an approval asked for now may wait (from the same policy).
    pub approval_ttl: Duration,
}

/// What `policy explain` prints (CONTRACT.md), plus the rule and reasons.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub risk_tier: RiskTier,
    pub decision: Verdict,
    pub source: PolicySource,
    pub rationale: String,
    pub rule: String,
    pub reasons: Vec<String>,
}

/// Decides `command` for `subject` under `org`, in the environment `grants` describe.
pub fn gate(
    subject: Subject,
    command: &str,
    org: &OrgPolicy,
    grants: Option<EnvironmentGrants>,
) -> Gated {
    // Normalise once: what is classified is exactly what is stored, approved and run.
    let normalized = normalize::normalize(command);
    let classification = classify::classify_normalized(&normalized);
    let mut decision = decision::decide(&decision::Request {
        tier: classification.tier,
        forbidden: classification.forbidden.as_deref(),
        role: subject.role,
        bypass: subject.bypass,
        tainted: subject.tainted,
        org,
        environment: grants.as_ref(),
    });
    if subject.flagged && decision.verdict == Verdict::Allow {
        decision = Decision {
            verdict: Verdict::RequireApproval,
            source: PolicySource::SystemEnforced,
            rule: FLAGGED_CONTEXT.to_owned(),
            rationale: format!(
                "{} The injection scanner flagged content in this task's context (see the \
                 task's events), so nothing it proposes runs without a person's approval.",
                decision.rationale
            ),
        };
    }
    Gated {
        action: normalized.text,
        classification,
        decision,
        grants,
        policy_version: org.version,
        approval_ttl: Duration::from_secs(u64::try_from(org.approval_ttl_seconds).unwrap_or(1800)),
    }
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

    /// The environment's name, if one is used.
    pub fn environment(&self) -> Option<&str> {
        self.grants.as_ref().map(|g| g.name.as_str())
    }

    /// The hash an approval of this action is bound to ([`crate::binding::action_hash`]).
    pub fn action_hash(&self) -> String {
        let (egress, secrets) = self.granted();
        crate::binding::action_hash(&self.action, self.environment(), egress, secrets)
    }

    /// The grants as stored with an approval: `{"egress": […], "secrets": […]}`.
    pub fn grants_json(&self) -> serde_json::Value {
        let (egress, secrets) = self.granted();
        serde_json::json!({"egress": egress, "secrets": secrets})
    }

    fn granted(&self) -> (&[String], &[String]) {
        self.grants
            .as_ref()
            .map(|g| (g.egress.as_slice(), g.secrets.as_slice()))
            .unwrap_or_default()
    }

    /// The approval to ask for this action (undecided, expiring after the org's TTL).
    pub fn approval(
        &self,
        approval_id: Id,
        task_id: Id,
        requested_by: Id,
        now: Timestamp,
    ) -> Approval {
        Approval {
            approval_id,
            task_id,
            requested_by,
            risk_tier: self.classification.tier,
            action: self.action.clone(),
            environment: self.environment().map(str::to_owned),
            rationale: self.rationale(),
            decision: None,
            decided_by: None,
            created_at: now,
            expires_at: now.plus(self.approval_ttl),
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
            "environment": self.environment(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgPolicy {
        OrgPolicy::default()
    }

    #[test]
    fn a_flagged_context_makes_even_read_only_actions_wait() {
        let mut subject = Subject::direct(Role::Member, BypassMode::Off);
        let plain = gate(subject, "ls -la", &org(), None);
        assert_eq!(plain.decision.verdict, Verdict::Allow);
        subject.flagged = true;
        let flagged = gate(subject, "ls -la", &org(), None);
        assert_eq!(flagged.decision.verdict, Verdict::RequireApproval);
        assert_eq!(flagged.decision.rule, FLAGGED_CONTEXT);
        assert!(flagged.rationale().contains("injection scanner"));
    }

    #[test]
    fn a_flagged_context_never_turns_a_deny_into_a_question() {
        let subject = Subject {
            flagged: true,
            ..Subject::direct(Role::Member, BypassMode::Off)
        };
        let paused = OrgPolicy {
            mutations_paused: true,
            ..org()
        };
        let gated = gate(subject, "touch x", &paused, None);
        assert_eq!(gated.decision.verdict, Verdict::Deny);
    }

    #[test]
    fn the_binding_hash_covers_the_grants() {
        let subject = Subject::direct(Role::Member, BypassMode::Off);
        let bare = gate(subject, "touch x", &org(), None);
        let env = EnvironmentGrants {
            name: "prod".into(),
            egress: vec!["example.com:443".into()],
            secrets: vec!["TOKEN".into()],
        };
        let in_env = gate(subject, "touch x", &org(), Some(env));
        assert_ne!(bare.action_hash(), in_env.action_hash());
        assert_eq!(
            in_env.grants_json(),
            serde_json::json!({"egress": ["example.com:443"], "secrets": ["TOKEN"]})
        );
    }
}
