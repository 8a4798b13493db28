//! Environments in the decision: their grants appear in every rationale, they never change the
//! tier, and bypass never auto-allows an L1+ action in an environment that grants secrets.

use domain::{BypassMode, OrgPolicy, PolicySource, RiskTier, Role};
use policy::decision::{EnvironmentGrants, Request, Verdict, decide};

fn request<'a>(
    tier: RiskTier,
    org: &'a OrgPolicy,
    environment: Option<&'a EnvironmentGrants>,
) -> Request<'a> {
    Request {
        tier,
        forbidden: None,
        role: Role::Member,
        bypass: BypassMode::On,
        tainted: false,
        org,
        environment,
    }
}

fn open_org() -> OrgPolicy {
    OrgPolicy {
        bypass_allowed: true,
        bypass_max_tier: RiskTier::L2Destructive,
        ..OrgPolicy::default()
    }
}

fn prod() -> EnvironmentGrants {
    EnvironmentGrants {
        name: "prod".into(),
        egress: vec!["api.example.com:443".into(), "registry.example.com".into()],
        secrets: vec!["DEPLOY_TOKEN".into(), "KUBECONFIG".into()],
    }
}

#[test]
fn bypass_never_skips_approval_in_an_environment_with_secrets() {
    let org = open_org();
    let env = prod();
    for tier in [RiskTier::L1Mutating, RiskTier::L2Destructive] {
        let d = decide(&request(tier, &org, Some(&env)));
        assert_eq!(d.verdict, Verdict::RequireApproval, "{d:?}");
        assert_eq!(d.source, PolicySource::SystemEnforced);
        assert_eq!(d.rule, "system.secrets_no_bypass");
        assert!(d.rationale.contains("injects secrets"), "{}", d.rationale);
    }
    // The same action without the environment is inside the bypass envelope.
    let bare = decide(&request(RiskTier::L1Mutating, &org, None));
    assert_eq!(
        (bare.verdict, bare.rule.as_str()),
        (Verdict::Allow, "user.bypass")
    );
}

#[test]
fn an_egress_only_environment_keeps_bypass_and_read_only_runs_anywhere() {
    let org = open_org();
    let egress_only = EnvironmentGrants {
        secrets: vec![],
        ..prod()
    };
    let d = decide(&request(RiskTier::L1Mutating, &org, Some(&egress_only)));
    assert_eq!(
        (d.verdict, d.rule.as_str()),
        (Verdict::Allow, "user.bypass")
    );
    let env = prod();
    let read = decide(&request(RiskTier::L0Readonly, &org, Some(&env)));
    assert_eq!(
        (read.verdict, read.rule.as_str()),
        (Verdict::Allow, "org.readonly_allowed")
    );
}

#[test]
fn every_rationale_names_the_tier_the_environment_its_hosts_and_secret_names() {
    let env = prod();
    let orgs = [
        OrgPolicy::default(),
        open_org(),
        OrgPolicy {
            mutations_paused: true,
            ..open_org()
        },
    ];
    for org in &orgs {
        for tier in RiskTier::ALL {
            for forbidden in [None, Some("never")] {
                let d = decide(&Request {
                    forbidden,
                    ..request(*tier, org, Some(&env))
                });
                for needle in [
                    tier.as_str(),
                    "\"prod\"",
                    "api.example.com:443",
                    "registry.example.com",
                    "DEPLOY_TOKEN",
                    "KUBECONFIG",
                ] {
                    assert!(d.rationale.contains(needle), "{needle} in {}", d.rationale);
                }
            }
        }
    }
}

#[test]
fn a_request_without_an_environment_says_so() {
    let org = OrgPolicy::default();
    let d = decide(&request(RiskTier::L1Mutating, &org, None));
    assert!(
        d.rationale.contains("no network and no secrets"),
        "{}",
        d.rationale
    );
    let empty = EnvironmentGrants {
        name: "empty".into(),
        ..EnvironmentGrants::default()
    };
    let d = decide(&request(RiskTier::L1Mutating, &org, Some(&empty)));
    assert!(
        d.rationale
            .contains("\"empty\" grants no network and no secrets"),
        "{}",
        d.rationale
    );
}

#[test]
fn the_environment_never_changes_the_tier_in_the_rationale() {
    let org = open_org();
    let env = prod();
    for tier in RiskTier::ALL {
        let d = decide(&request(*tier, &org, Some(&env)));
        let named: Vec<&str> = RiskTier::ALL
            .iter()
            .map(|t| t.as_str())
            .filter(|t| {
                d.rationale
                    .starts_with(&format!("{}: {t}", head(&d.verdict)))
            })
            .collect();
        assert_eq!(named, vec![tier.as_str()], "{}", d.rationale);
    }
}

fn head(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "Allowed without approval",
        Verdict::RequireApproval => "Needs approval",
        Verdict::Deny => "Denied",
    }
}

#[test]
fn the_rationale_reads_as_sentences_for_the_approver() {
    let org = open_org();
    let env = prod();
    let d = decide(&request(RiskTier::L2Destructive, &org, Some(&env)));
    assert_eq!(
        d.rationale,
        "Needs approval: L2_DESTRUCTIVE action. The environment injects secrets, so this action would act with the organisation's credentials beyond the sandbox; L1+ actions there need a human's approval even with bypass ON. The organisation requires a human's approval for actions that change (L1), destroy (L2) or take privileges (L3). Environment \"prod\" grants egress to api.example.com:443, registry.example.com and the secrets DEPLOY_TOKEN, KUBECONFIG."
    );
    let d = decide(&Request {
        tainted: true,
        bypass: BypassMode::Off,
        ..request(RiskTier::L1Mutating, &OrgPolicy::default(), None)
    });
    assert_eq!(
        d.rationale,
        "Needs approval: L1_MUTATING action. The task has read untrusted content (a web page or command output), so its L1+ actions need a human's approval even with bypass ON. The organisation requires a human's approval for actions that change (L1), destroy (L2) or take privileges (L3). No environment: no network and no secrets."
    );
    assert_eq!(d.rule, "system.tainted_no_bypass");
}
