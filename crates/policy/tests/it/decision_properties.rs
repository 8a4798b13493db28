//! Properties of the layered decision over 10,000 random org / user / tier / taint / forbidden /
//! environment combinations: the system layer is never overridden, and lower layers only restrict
//! or grant inside the envelope above.

use domain::{BypassMode, OrgPolicy, PolicySource, RiskTier, Role};
use policy::decision::{Decision, EnvironmentGrants, Request, Verdict, decide};
use proptest::prelude::*;

/// One random case, owned (a `Request` borrows from it).
#[derive(Debug, Clone)]
struct Case {
    tier: RiskTier,
    forbidden: Option<String>,
    role: Role,
    bypass: BypassMode,
    tainted: bool,
    org: OrgPolicy,
    environment: Option<EnvironmentGrants>,
}

impl Case {
    fn request(&self) -> Request<'_> {
        Request {
            tier: self.tier,
            forbidden: self.forbidden.as_deref(),
            role: self.role,
            bypass: self.bypass,
            tainted: self.tainted,
            org: &self.org,
            environment: self.environment.as_ref(),
        }
    }

    fn grants_secrets(&self) -> bool {
        self.environment
            .as_ref()
            .is_some_and(|e| !e.secrets.is_empty())
    }
}

fn tier() -> impl Strategy<Value = RiskTier> {
    prop::sample::select(RiskTier::ALL.to_vec())
}

/// Org policies within bounds (the store refuses any other).
fn org() -> impl Strategy<Value = OrgPolicy> {
    (
        any::<bool>(),
        prop::sample::select(vec![RiskTier::L1Mutating, RiskTier::L2Destructive]),
        any::<bool>(),
        any::<bool>(),
        OrgPolicy::MIN_TTL_SECONDS..=OrgPolicy::MAX_TTL_SECONDS,
        1i64..1_000_000,
    )
        .prop_map(
            |(bypass_allowed, bypass_max_tier, mutations_paused, l3, ttl, version)| OrgPolicy {
                bypass_allowed,
                bypass_max_tier,
                mutations_paused,
                l3_requires_admin: l3,
                approval_ttl_seconds: ttl,
                version,
            },
        )
}

fn environment() -> impl Strategy<Value = Option<EnvironmentGrants>> {
    let names = || prop::collection::vec("[A-Za-z0-9_.:-]{1,16}", 0..3);
    prop::option::of(("[a-z][a-z0-9-]{0,12}", names(), names()).prop_map(
        |(name, egress, secrets)| EnvironmentGrants {
            name,
            egress,
            secrets,
        },
    ))
}

fn case() -> impl Strategy<Value = Case> {
    (
        tier(),
        prop::option::weighted(0.15, ".{0,24}"),
        prop::sample::select(Role::ALL.to_vec()),
        prop::sample::select(BypassMode::ALL.to_vec()),
        any::<bool>(),
        org(),
        environment(),
    )
        .prop_map(
            |(tier, forbidden, role, bypass, tainted, org, environment)| Case {
                tier,
                forbidden,
                role,
                bypass,
                tainted,
                org,
                environment,
            },
        )
}

/// How much a verdict lets through: Deny < RequireApproval < Allow.
fn openness(d: &Decision) -> u8 {
    match d.verdict {
        Verdict::Deny => 0,
        Verdict::RequireApproval => 1,
        Verdict::Allow => 2,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn the_layers_hold_for_every_combination(c in case()) {
        let d = decide(&c.request());
        let mutating = c.tier >= RiskTier::L1Mutating;

        // Nothing fails and nothing falls back on the guards with the shipped policies.
        for rule in ["system.invariant_violation", "system.evaluation_error",
                     "system.policy_unavailable", "system.invalid_org_policy"] {
            prop_assert_ne!(d.rule.as_str(), rule);
        }
        // What the system layer denies is denied.
        if c.forbidden.is_some() {
            prop_assert_eq!(d.verdict, Verdict::Deny);
            prop_assert_eq!(d.source, PolicySource::SystemEnforced);
            prop_assert_eq!(d.rule.as_str(), "system.forbidden");
        }
        // L3 never runs unasked.
        if c.tier == RiskTier::L3Privileged {
            prop_assert_ne!(d.verdict, Verdict::Allow);
        }
        // A tainted task's L1+ never runs unasked.
        if c.tainted && mutating {
            prop_assert_ne!(d.verdict, Verdict::Allow);
        }
        // An L1+ in an environment with secrets never runs unasked.
        if c.grants_secrets() && mutating {
            prop_assert_ne!(d.verdict, Verdict::Allow);
        }
        // Paused: every L1+ is refused with the pause's code (unless the system denied it first).
        if c.org.mutations_paused && mutating && c.forbidden.is_none() {
            prop_assert_eq!(d.verdict, Verdict::Deny);
            prop_assert_eq!(d.rule.as_str(), "org.mutations_paused");
            prop_assert_eq!(d.error_code(), "mutations_paused");
        }
        // L0 that is not forbidden always runs: paused, tainted, any environment.
        if c.tier == RiskTier::L0Readonly && c.forbidden.is_none() {
            prop_assert_eq!(d.verdict, Verdict::Allow);
            prop_assert_eq!(d.source, PolicySource::OrgDefault);
            prop_assert_eq!(d.rule.as_str(), "org.readonly_allowed");
        }
        // Allow for L1+ only ever comes from the user's bypass inside every envelope, and that
        // envelope is exactly when it comes.
        let inside_envelope = mutating
            && c.bypass == BypassMode::On
            && c.org.bypass_allowed
            && c.tier <= c.org.bypass_max_tier
            && c.tier < RiskTier::L3Privileged
            && !c.tainted
            && !c.org.mutations_paused
            && !c.grants_secrets()
            && c.forbidden.is_none();
        if mutating && d.verdict == Verdict::Allow {
            prop_assert_eq!(d.source, PolicySource::UserOverride);
            prop_assert_eq!(d.rule.as_str(), "user.bypass");
        }
        prop_assert_eq!(mutating && d.verdict == Verdict::Allow, inside_envelope);
        // Anything L1+ that is neither allowed nor refused waits for a human.
        if mutating && !inside_envelope && c.forbidden.is_none() && !c.org.mutations_paused {
            prop_assert_eq!(d.verdict, Verdict::RequireApproval);
        }
        // Deny by default never shows up: every outcome is named by a shipped rule.
        prop_assert_ne!(d.rule.as_str(), "system.default_deny");
        // The rationale names the tier and the environment's grants.
        prop_assert!(d.rationale.contains(c.tier.as_str()), "{}", d.rationale);
        if let Some(env) = &c.environment {
            let quoted = format!("\"{}\"", env.name);
            prop_assert!(d.rationale.contains(&quoted), "{}", d.rationale);
            for name in env.egress.iter().chain(&env.secrets) {
                prop_assert!(d.rationale.contains(name.as_str()), "{}", d.rationale);
            }
        }
    }

    #[test]
    fn lower_layers_and_risk_signals_only_restrict(c in case()) {
        let d = decide(&c.request());
        // The role changes nothing.
        for role in Role::ALL {
            prop_assert_eq!(&decide(&Request { role: *role, ..c.request() }), &d);
        }
        // Turning bypass OFF, tainting the task, pausing mutations, disallowing bypass, lowering
        // the bypass max tier or adding a secret never opens a decision further.
        let stricter = [
            Request { bypass: BypassMode::Off, ..c.request() },
            Request { tainted: true, ..c.request() },
            Request { forbidden: Some("x"), ..c.request() },
        ];
        for req in &stricter {
            prop_assert!(openness(&decide(req)) <= openness(&d), "{:?}", req);
        }
        let orgs = [
            OrgPolicy { mutations_paused: true, ..c.org.clone() },
            OrgPolicy { bypass_allowed: false, ..c.org.clone() },
            OrgPolicy { bypass_max_tier: RiskTier::L1Mutating, ..c.org.clone() },
        ];
        for org in &orgs {
            let tighter = decide(&Request { org, ..c.request() });
            prop_assert!(openness(&tighter) <= openness(&d), "{:?}", org);
        }
        let mut with_secret = c.environment.clone().unwrap_or_default();
        with_secret.secrets.push("ADDED_SECRET".to_owned());
        let secret = decide(&Request { environment: Some(&with_secret), ..c.request() });
        prop_assert!(openness(&secret) <= openness(&d), "{:?}", secret);
        // Deterministic.
        prop_assert_eq!(&decide(&c.request()), &d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn an_org_policy_out_of_bounds_fails_closed(
        c in case(),
        max in prop::sample::select(vec![RiskTier::L0Readonly, RiskTier::L3Privileged]),
        ttl in prop::sample::select(vec![i64::MIN, -1, 0, 59, 86_401, i64::MAX]),
        bad_max in any::<bool>(),
    ) {
        let org = if bad_max {
            OrgPolicy { bypass_max_tier: max, ..c.org.clone() }
        } else {
            OrgPolicy { approval_ttl_seconds: ttl, ..c.org.clone() }
        };
        let d = decide(&Request { org: &org, ..c.request() });
        prop_assert_eq!(d.verdict, Verdict::Deny);
        prop_assert_eq!(d.source, PolicySource::SystemEnforced);
        prop_assert_eq!(d.rule.as_str(), "system.invalid_org_policy");
        prop_assert_eq!(d.error_code(), "policy_denied");
    }
}
