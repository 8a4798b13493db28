//! The words of a decision: what the approver (and the requester, and the audit log) reads. It
//! names the tier, gives the reason of every rule that applied in precedence order, and names the
//! environment's egress hosts and secret names. Secret values never reach this module.

use std::fmt::Write as _;

use domain::PolicySource;

use super::engine::Rule;
use super::{Decision, Request, Verdict, rules};

/// The decision named by the first (highest-precedence) rule, with every rule's reason.
/// No rules at all is the deny by default.
pub(super) fn from_rules(request: &Request<'_>, verdict: Verdict, applied: &[&Rule]) -> Decision {
    let Some(first) = applied.first() else {
        return Decision {
            verdict: Verdict::Deny,
            source: PolicySource::SystemEnforced,
            rule: rules::DEFAULT_DENY.to_owned(),
            rationale: compose(
                request,
                Verdict::Deny,
                "No rule permits this action, so it is denied by default.",
            ),
        };
    };
    let mut reasons = String::new();
    let mut seen: Vec<&str> = Vec::with_capacity(applied.len());
    for rule in applied {
        if seen.contains(&rule.id.as_str()) {
            continue;
        }
        seen.push(&rule.id);
        if !reasons.is_empty() {
            reasons.push(' ');
        }
        reasons.push_str(&fill(&rule.reason, request));
    }
    Decision {
        verdict,
        source: first.source,
        rule: first.id.clone(),
        rationale: compose(request, verdict, &reasons),
    }
}

/// A Deny made because something went wrong or broke an invariant: fail closed.
pub(super) fn fail_closed(request: &Request<'_>, rule: &str, why: &str) -> Decision {
    let reasons = format!(
        "The policy decision failed closed ({rule}): {}.",
        why.trim_end_matches('.')
    );
    Decision {
        verdict: Verdict::Deny,
        source: PolicySource::SystemEnforced,
        rule: rule.to_owned(),
        rationale: compose(request, Verdict::Deny, &reasons),
    }
}

/// Head (verdict and tier), reasons, the classifier's note, then the environment's grants.
fn compose(request: &Request<'_>, verdict: Verdict, reasons: &str) -> String {
    let head = match verdict {
        Verdict::Allow => "Allowed without approval",
        Verdict::RequireApproval => "Needs approval",
        Verdict::Deny => "Denied",
    };
    let mut text = format!("{head}: {} action. {reasons}", request.tier);
    if let Some(note) = request.forbidden.map(str::trim).filter(|n| !n.is_empty()) {
        let _ = write!(text, " Classifier: {}.", note.trim_end_matches('.'));
    }
    text.push(' ');
    environment(request, &mut text);
    text
}

/// The environment's grants: its name, egress hosts and secret names.
fn environment(request: &Request<'_>, text: &mut String) {
    let Some(env) = request.environment else {
        text.push_str("No environment: no network and no secrets.");
        return;
    };
    let _ = write!(text, "Environment \"{}\" grants ", env.name);
    if env.egress.is_empty() {
        text.push_str("no network");
    } else {
        let _ = write!(text, "egress to {}", env.egress.join(", "));
    }
    if env.secrets.is_empty() {
        text.push_str(" and no secrets.");
    } else {
        let _ = write!(text, " and the secrets {}.", env.secrets.join(", "));
    }
}

/// Fills the placeholders a rule's `@reason` may use.
fn fill(reason: &str, request: &Request<'_>) -> String {
    if !reason.contains('{') {
        return reason.to_owned();
    }
    reason
        .replace("{tier}", request.tier.as_str())
        .replace("{bypass_max_tier}", request.org.bypass_max_tier.as_str())
}
