//! The layered decision: every rule, by table, and the governance scenarios of the product plan.

use domain::{BypassMode, OrgPolicy, PolicySource, RiskTier, Role};
use policy::decision::{Decision, EnvironmentGrants, Request, Verdict, decide};

use PolicySource::{OrgDefault as ORG, SystemEnforced as SYSTEM, UserOverride as USER};
use RiskTier::{L0Readonly as L0, L1Mutating as L1, L2Destructive as L2, L3Privileged as L3};
use Verdict::{Allow, Deny, RequireApproval as Ask};

/// The org policy under test: bypass allowed?, bypass max tier, mutations paused?
fn org(bypass_allowed: bool, bypass_max_tier: RiskTier, mutations_paused: bool) -> OrgPolicy {
    OrgPolicy {
        bypass_allowed,
        bypass_max_tier,
        mutations_paused,
        ..OrgPolicy::default()
    }
}

/// A member's untainted request with no environment.
fn request(tier: RiskTier, bypass: BypassMode, org: &OrgPolicy) -> Request<'_> {
    Request {
        tier,
        forbidden: None,
        role: Role::Member,
        bypass,
        tainted: false,
        org,
        environment: None,
    }
}

fn secrets_env() -> EnvironmentGrants {
    EnvironmentGrants {
        name: "prod".into(),
        egress: vec!["api.example.com:443".into()],
        secrets: vec!["DEPLOY_TOKEN".into()],
    }
}

fn egress_env() -> EnvironmentGrants {
    EnvironmentGrants {
        name: "public".into(),
        egress: vec!["github.com".into()],
        secrets: vec![],
    }
}

#[track_caller]
fn assert_decision(d: &Decision, verdict: Verdict, source: PolicySource, rule: &str, case: &str) {
    assert_eq!(
        (d.verdict, d.source, d.rule.as_str()),
        (verdict, source, rule),
        "{case}: {d:?}"
    );
}

#[test]
fn every_rule_by_table() {
    use BypassMode::{Off, On};
    let default = OrgPolicy::default();
    let open_l1 = org(true, L1, false);
    let open_l2 = org(true, L2, false);
    let paused = org(true, L2, true);
    let secrets = secrets_env();
    let egress = egress_env();
    let short_ttl = OrgPolicy {
        approval_ttl_seconds: 5,
        ..OrgPolicy::default()
    };
    let max_l3 = org(true, L3, false);

    struct Row<'a> {
        case: &'a str,
        req: Request<'a>,
        verdict: Verdict,
        source: PolicySource,
        rule: &'a str,
    }
    let r = request;
    let rows = [
        // SYSTEM_ENFORCED
        Row {
            case: "forbidden L0 is denied",
            req: Request {
                forbidden: Some("rm -rf /"),
                ..r(L0, Off, &default)
            },
            verdict: Deny,
            source: SYSTEM,
            rule: "system.forbidden",
        },
        Row {
            case: "forbidden with bypass inside the envelope is denied",
            req: Request {
                forbidden: Some("fork bomb"),
                ..r(L1, On, &open_l2)
            },
            verdict: Deny,
            source: SYSTEM,
            rule: "system.forbidden",
        },
        Row {
            case: "forbidden while paused is the system's deny",
            req: Request {
                forbidden: Some(""),
                ..r(L2, On, &paused)
            },
            verdict: Deny,
            source: SYSTEM,
            rule: "system.forbidden",
        },
        Row {
            case: "L3 needs approval",
            req: r(L3, Off, &default),
            verdict: Ask,
            source: SYSTEM,
            rule: "system.l3_needs_approval",
        },
        Row {
            case: "L3 with bypass ON, org max L2, still needs approval",
            req: r(L3, On, &open_l2),
            verdict: Ask,
            source: SYSTEM,
            rule: "system.l3_needs_approval",
        },
        Row {
            case: "tainted L1 with bypass inside the envelope needs approval",
            req: Request {
                tainted: true,
                ..r(L1, On, &open_l1)
            },
            verdict: Ask,
            source: SYSTEM,
            rule: "system.tainted_no_bypass",
        },
        Row {
            case: "tainted L2 with bypass OFF needs approval (system layer)",
            req: Request {
                tainted: true,
                ..r(L2, Off, &default)
            },
            verdict: Ask,
            source: SYSTEM,
            rule: "system.tainted_no_bypass",
        },
        Row {
            case: "tainted L0 still runs",
            req: Request {
                tainted: true,
                ..r(L0, On, &open_l1)
            },
            verdict: Allow,
            source: ORG,
            rule: "org.readonly_allowed",
        },
        Row {
            case: "L1 with bypass in an environment with secrets needs approval",
            req: Request {
                environment: Some(&secrets),
                ..r(L1, On, &open_l2)
            },
            verdict: Ask,
            source: SYSTEM,
            rule: "system.secrets_no_bypass",
        },
        Row {
            case: "L3 tainted in a secrets environment: L3 names it",
            req: Request {
                tainted: true,
                environment: Some(&secrets),
                ..r(L3, On, &open_l2)
            },
            verdict: Ask,
            source: SYSTEM,
            rule: "system.l3_needs_approval",
        },
        // ORG_DEFAULT
        Row {
            case: "paused L1 is denied",
            req: r(L1, Off, &paused),
            verdict: Deny,
            source: ORG,
            rule: "org.mutations_paused",
        },
        Row {
            case: "paused L2 with bypass ON is denied",
            req: r(L2, On, &paused),
            verdict: Deny,
            source: ORG,
            rule: "org.mutations_paused",
        },
        Row {
            case: "paused L3 is denied, not merely approved",
            req: r(L3, Off, &paused),
            verdict: Deny,
            source: ORG,
            rule: "org.mutations_paused",
        },
        Row {
            case: "paused tainted L1 is denied",
            req: Request {
                tainted: true,
                ..r(L1, On, &paused)
            },
            verdict: Deny,
            source: ORG,
            rule: "org.mutations_paused",
        },
        Row {
            case: "paused L0 runs",
            req: r(L0, Off, &paused),
            verdict: Allow,
            source: ORG,
            rule: "org.readonly_allowed",
        },
        Row {
            case: "L0 runs",
            req: r(L0, Off, &default),
            verdict: Allow,
            source: ORG,
            rule: "org.readonly_allowed",
        },
        Row {
            case: "L0 in a secrets environment runs",
            req: Request {
                environment: Some(&secrets),
                ..r(L0, Off, &default)
            },
            verdict: Allow,
            source: ORG,
            rule: "org.readonly_allowed",
        },
        Row {
            case: "L1 with bypass OFF needs approval",
            req: r(L1, Off, &open_l2),
            verdict: Ask,
            source: ORG,
            rule: "org.approval_required",
        },
        Row {
            case: "L2 with bypass OFF needs approval",
            req: r(L2, Off, &default),
            verdict: Ask,
            source: ORG,
            rule: "org.approval_required",
        },
        Row {
            case: "bypass ON but org disallows",
            req: r(L1, On, &default),
            verdict: Ask,
            source: ORG,
            rule: "org.bypass_not_allowed",
        },
        Row {
            case: "bypass ON, org disallows and L2 above max: disallow named first",
            req: r(L2, On, &default),
            verdict: Ask,
            source: ORG,
            rule: "org.bypass_not_allowed",
        },
        Row {
            case: "bypass ON, L2 above max L1",
            req: r(L2, On, &open_l1),
            verdict: Ask,
            source: ORG,
            rule: "org.bypass_above_max_tier",
        },
        // USER_OVERRIDE
        Row {
            case: "bypass ON, L1 inside max L1",
            req: r(L1, On, &open_l1),
            verdict: Allow,
            source: USER,
            rule: "user.bypass",
        },
        Row {
            case: "bypass ON, L2 inside max L2",
            req: r(L2, On, &open_l2),
            verdict: Allow,
            source: USER,
            rule: "user.bypass",
        },
        Row {
            case: "bypass ON, L1 in an egress-only environment",
            req: Request {
                environment: Some(&egress),
                ..r(L1, On, &open_l1)
            },
            verdict: Allow,
            source: USER,
            rule: "user.bypass",
        },
        Row {
            case: "bypass ON for L0 changes nothing: the org allows it",
            req: r(L0, On, &open_l1),
            verdict: Allow,
            source: ORG,
            rule: "org.readonly_allowed",
        },
        // Fail closed
        Row {
            case: "an org policy out of bounds is denied",
            req: r(L0, Off, &short_ttl),
            verdict: Deny,
            source: SYSTEM,
            rule: "system.invalid_org_policy",
        },
        Row {
            case: "bypass_max_tier L3 is out of bounds: denied, never a bypass of L3",
            req: r(L3, On, &max_l3),
            verdict: Deny,
            source: SYSTEM,
            rule: "system.invalid_org_policy",
        },
    ];
    for row in &rows {
        let d = decide(&row.req);
        assert_decision(&d, row.verdict, row.source, row.rule, row.case);
        assert!(
            d.rationale.contains(row.req.tier.as_str()),
            "{}: {}",
            row.case,
            d.rationale
        );
        assert_ne!(d.rule, "system.invariant_violation", "{}", row.case);
    }
}

#[test]
fn role_gives_no_special_allow() {
    let default = OrgPolicy::default();
    let open = org(true, L2, false);
    for tier in RiskTier::ALL {
        for (org, bypass) in [(&default, BypassMode::Off), (&open, BypassMode::On)] {
            let member = decide(&request(*tier, bypass, org));
            for role in [Role::Admin, Role::Service] {
                let other = decide(&Request {
                    role,
                    ..request(*tier, bypass, org)
                });
                assert_eq!(member, other, "{role} {tier} {bypass}");
            }
        }
    }
    // Spelled out: an admin's L1 needs approval; a service user's bypass works like anyone's.
    let admin = decide(&Request {
        role: Role::Admin,
        ..request(L1, BypassMode::Off, &default)
    });
    assert_decision(&admin, Ask, ORG, "org.approval_required", "admin L1");
    let service = decide(&Request {
        role: Role::Service,
        ..request(L1, BypassMode::On, &open)
    });
    assert_decision(&service, Allow, USER, "user.bypass", "service bypass");
}

#[test]
fn governance_bypass_on_but_org_disallows_asks() {
    let org = org(false, L2, false);
    for tier in [L1, L2] {
        let d = decide(&request(tier, BypassMode::On, &org));
        assert_eq!((d.verdict, d.source), (Ask, ORG), "{tier}: {d:?}");
        assert!(
            d.rationale.contains("does not allow bypass"),
            "{}",
            d.rationale
        );
    }
}

#[test]
fn governance_org_allows_max_l1() {
    let org = org(true, L1, false);
    let l1 = decide(&request(L1, BypassMode::On, &org));
    assert_decision(&l1, Allow, USER, "user.bypass", "L1");
    let l2 = decide(&request(L2, BypassMode::On, &org));
    assert_decision(&l2, Ask, ORG, "org.bypass_above_max_tier", "L2");
    assert!(
        l2.rationale.contains("only up to L1_MUTATING"),
        "{}",
        l2.rationale
    );
}

#[test]
fn governance_org_allows_max_l2() {
    let org = org(true, L2, false);
    for tier in [L1, L2] {
        let d = decide(&request(tier, BypassMode::On, &org));
        assert_decision(&d, Allow, USER, "user.bypass", tier.as_str());
    }
}

#[test]
fn governance_l3_never_runs_unasked() {
    for bypass_allowed in [false, true] {
        for max in [L1, L2] {
            for bypass in BypassMode::ALL {
                for role in Role::ALL {
                    let o = org(bypass_allowed, max, false);
                    let d = decide(&Request {
                        role: *role,
                        ..request(L3, *bypass, &o)
                    });
                    assert_decision(&d, Ask, SYSTEM, "system.l3_needs_approval", "L3");
                    assert!(d.rationale.contains("L3_PRIVILEGED"));
                }
            }
        }
    }
}

#[test]
fn governance_tainted_task_asks_even_with_bypass() {
    let org = org(true, L2, false);
    for tier in [L1, L2] {
        let d = decide(&Request {
            tainted: true,
            ..request(tier, BypassMode::On, &org)
        });
        assert_decision(&d, Ask, SYSTEM, "system.tainted_no_bypass", tier.as_str());
        assert!(
            d.rationale.contains("read untrusted content"),
            "{}",
            d.rationale
        );
    }
}

#[test]
fn governance_pause_denies_l1_and_above_and_l0_runs() {
    let org = org(true, L2, true);
    let l0 = decide(&request(L0, BypassMode::On, &org));
    assert_decision(&l0, Allow, ORG, "org.readonly_allowed", "L0");
    for tier in [L1, L2, L3] {
        for bypass in BypassMode::ALL {
            let d = decide(&request(tier, *bypass, &org));
            assert_decision(&d, Deny, ORG, "org.mutations_paused", tier.as_str());
            assert_eq!(d.error_code(), "mutations_paused");
        }
    }
}

#[test]
fn error_codes() {
    let default = OrgPolicy::default();
    let forbidden = decide(&Request {
        forbidden: Some("x"),
        ..request(L0, BypassMode::Off, &default)
    });
    assert_eq!(forbidden.error_code(), "policy_denied");
    let invalid = OrgPolicy {
        bypass_max_tier: L0,
        ..default.clone()
    };
    let d = decide(&request(L0, BypassMode::Off, &invalid));
    assert_eq!((d.verdict, d.error_code()), (Deny, "policy_denied"));
}

#[test]
fn the_shipped_policies_load() {
    assert_eq!(policy::decision::check_shipped_policies(), Ok(()));
}

#[test]
fn decisions_serialise_with_the_contract_names() {
    let org = OrgPolicy::default();
    let d = decide(&request(L1, BypassMode::Off, &org));
    let json = serde_json::to_value(&d).unwrap_or_default();
    assert_eq!(json["verdict"], "REQUIRE_APPROVAL");
    assert_eq!(json["source"], "ORG_DEFAULT");
    assert_eq!(json["rule"], "org.approval_required");
    assert_eq!(
        serde_json::to_string(&[Allow, Ask, Deny]).unwrap_or_default(),
        r#"["ALLOW","REQUIRE_APPROVAL","DENY"]"#
    );
}
