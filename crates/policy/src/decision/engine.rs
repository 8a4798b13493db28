//! The Cedar side of the decision: the shipped policy set, loaded and checked once per process,
//! and the two questions asked of it (`run`, then `request_approval`).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect, Entities, EntityUid, Policy, PolicyId,
    PolicySet, Request as CedarRequest, RestrictedExpression, Schema, ValidationMode, Validator,
};
use domain::{BypassMode, PolicySource, RiskTier};

use super::{Decision, Request, Verdict, rationale, rules};

/// The texts one engine is built from: the schema and each layer's policies.
#[derive(Debug, Clone, Copy)]
pub(super) struct Texts<'a> {
    /// The Cedar schema every policy is validated against (strict mode).
    pub schema: &'a str,
    /// SYSTEM_ENFORCED policies: `forbid` only.
    pub system: &'a str,
    /// ORG_DEFAULT policies.
    pub org: &'a str,
    /// USER_OVERRIDE policies.
    pub user: &'a str,
}

/// The policies compiled into the binary.
pub(super) const SHIPPED: Texts<'static> = Texts {
    schema: include_str!("../../policies/schema.cedarschema"),
    system: include_str!("../../policies/system.cedar"),
    org: include_str!("../../policies/org.cedar"),
    user: include_str!("../../policies/user.cedar"),
};

/// Why the policy set could not be built. Decisions fail closed (Deny) while it cannot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the shipped Cedar policies failed to load: {0}")]
pub struct PolicyLoadError(String);

/// Builds the shipped policy set (once per process) and reports whether it loaded: for a start-up
/// or readiness check. [`super::decide`] already denies everything while it cannot load.
pub fn check_shipped_policies() -> Result<(), PolicyLoadError> {
    shipped().map(|_| ())
}

/// The shipped engine, built on first use.
pub(super) fn shipped() -> Result<&'static Engine, PolicyLoadError> {
    static ENGINE: OnceLock<Result<Engine, PolicyLoadError>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Engine::load(&SHIPPED))
        .as_ref()
        .map_err(Clone::clone)
}

/// One Cedar policy as the decision knows it.
#[derive(Debug)]
pub(super) struct Rule {
    /// The stable id (`@id`), e.g. `system.l3_needs_approval`.
    pub id: String,
    /// The layer, from the file the policy came from.
    pub source: PolicySource,
    /// The sentence for the approver (`@reason`).
    pub reason: String,
    /// Permit or forbid.
    effect: Effect,
    /// Precedence: lower wins. Layer first, then order in the file.
    rank: usize,
}

/// A loaded, validated policy set and what is needed to ask it.
pub(super) struct Engine {
    /// Every layer's policies, re-identified by their `@id`.
    policies: PolicySet,
    /// What the decision knows of each policy, by id.
    rules: HashMap<String, Rule>,
    /// Cedar's evaluator; stateless, kept to be reused.
    authorizer: Authorizer,
    /// No entity data: every fact travels in the context.
    entities: Entities,
    /// `User::"requester"`.
    principal: EntityUid,
    /// `Command::"action"`.
    resource: EntityUid,
    /// `Action::"run"`: runs with no human asked.
    run: EntityUid,
    /// `Action::"request_approval"`: a human may be asked.
    request_approval: EntityUid,
    /// Cedar's answers by the facts they were computed from.
    memo: Mutex<HashMap<Facts, Outcome>>,
}

/// Cedar's answer to one question: allowed or not, and the determining rules by precedence.
/// Everything the Cedar context is made of (see [`context`]). Cedar is a pure function of it, so
/// its answer is remembered per combination — a few thousand at most — and a decision costs a
/// lookup instead of two policy evaluations. Errors are never remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Facts {
    tier: RiskTier,
    forbidden: bool,
    tainted: bool,
    role: domain::Role,
    bypass_on: bool,
    bypass_allowed: bool,
    bypass_max_tier: RiskTier,
    mutations_paused: bool,
    environment: bool,
    grants_egress: bool,
    grants_secrets: bool,
}

impl Facts {
    fn of(request: &Request<'_>) -> Facts {
        let env = request.environment;
        Facts {
            tier: request.tier,
            forbidden: request.forbidden.is_some(),
            tainted: request.tainted,
            role: request.role,
            bypass_on: request.bypass == BypassMode::On,
            bypass_allowed: request.org.bypass_allowed,
            bypass_max_tier: request.org.bypass_max_tier,
            mutations_paused: request.org.mutations_paused,
            environment: env.is_some(),
            grants_egress: env.is_some_and(|e| !e.egress.is_empty()),
            grants_secrets: env.is_some_and(super::EnvironmentGrants::grants_secrets),
        }
    }
}

/// A remembered Cedar answer.
#[derive(Debug, Clone)]
struct Outcome {
    verdict: Verdict,
    /// Ids of the determining rules, highest precedence first.
    rules: Vec<String>,
}

struct Answer<'e> {
    /// Cedar's decision was Allow.
    allowed: bool,
    /// The permits (Allow) or forbids (Deny) that determined it, highest precedence first.
    rules: Vec<&'e Rule>,
}

impl Engine {
    /// Parses, checks and validates a policy set. Checks beyond Cedar's own: every policy has
    /// `@id` (prefixed with its layer: `system.`, `org.`, `user.`) and `@reason`; ids are unique
    /// and distinct from the ids made in Rust; the system layer holds only `forbid`s; no
    /// templates.
    pub(super) fn load(texts: &Texts<'_>) -> Result<Engine, PolicyLoadError> {
        let fail = PolicyLoadError;
        let (schema, _warnings) =
            Schema::from_cedarschema_str(texts.schema).map_err(|e| fail(format!("schema: {e}")))?;
        let mut policies = PolicySet::new();
        let mut known = HashMap::new();
        let layers = [
            (PolicySource::SystemEnforced, "system", texts.system),
            (PolicySource::OrgDefault, "org", texts.org),
            (PolicySource::UserOverride, "user", texts.user),
        ];
        for (source, prefix, text) in layers {
            let parsed =
                PolicySet::from_str(text).map_err(|e| fail(format!("{prefix}.cedar: {e}")))?;
            if parsed.templates().next().is_some() {
                return Err(fail(format!("{prefix}.cedar: templates are not used")));
            }
            for policy in in_file_order(&parsed, prefix)? {
                let rule = rule_of(policy, source, prefix, known.len())?;
                policies
                    .add(policy.new_id(PolicyId::new(&rule.id)))
                    .map_err(|e| fail(format!("{}: {e}", rule.id)))?;
                known.insert(rule.id.clone(), rule);
            }
        }
        let validation = Validator::new(schema).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let errors: Vec<String> = validation
                .validation_errors()
                .map(ToString::to_string)
                .collect();
            return Err(fail(format!("validation: {}", errors.join("; "))));
        }
        let uid =
            |text: &str| EntityUid::from_str(text).map_err(|e| fail(format!("entity {text}: {e}")));
        Ok(Engine {
            policies,
            rules: known,
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            principal: uid(r#"User::"requester""#)?,
            resource: uid(r#"Command::"action""#)?,
            run: uid(r#"Action::"run""#)?,
            request_approval: uid(r#"Action::"request_approval""#)?,
            memo: Mutex::default(),
        })
    }

    /// The number of policies loaded.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.rules.len()
    }

    /// Decides one request (the org policy is already known to be within its bounds).
    pub(super) fn decide(&self, request: &Request<'_>) -> Decision {
        match self.try_decide(request) {
            Ok(decision) => decision,
            Err(why) => rationale::fail_closed(request, rules::EVALUATION_ERROR, &why),
        }
    }

    fn try_decide(&self, request: &Request<'_>) -> Result<Decision, String> {
        let facts = Facts::of(request);
        let remembered = self.memo.lock().ok().and_then(|m| m.get(&facts).cloned());
        let outcome = match remembered {
            Some(outcome) => outcome,
            None => {
                let outcome = self.ask_cedar(request)?;
                if let Ok(mut memo) = self.memo.lock() {
                    memo.insert(facts, outcome.clone());
                }
                outcome
            }
        };
        let applied: Vec<&Rule> = outcome
            .rules
            .iter()
            .map(|id| {
                self.rules
                    .get(id)
                    .ok_or_else(|| format!("remembered rule {id} is unknown"))
            })
            .collect::<Result<_, _>>()?;
        Ok(rationale::from_rules(request, outcome.verdict, &applied))
    }

    /// Cedar's answer for one request: the verdict and the ids of the rules that determined it,
    /// highest precedence first.
    fn ask_cedar(&self, request: &Request<'_>) -> Result<Outcome, String> {
        let ids = |rules: &[&Rule]| rules.iter().map(|r| r.id.clone()).collect();
        let context = context(request)?;
        let run = self.ask(&self.run, context.clone())?;
        if run.allowed {
            return Ok(Outcome {
                verdict: Verdict::Allow,
                rules: ids(&run.rules),
            });
        }
        let approval = self.ask(&self.request_approval, context)?;
        if approval.allowed {
            // The forbids that stopped `run` say why a human is needed; then the permit.
            let mut why = run.rules;
            why.extend(approval.rules);
            return Ok(Outcome {
                verdict: Verdict::RequireApproval,
                rules: ids(&why),
            });
        }
        Ok(Outcome {
            verdict: Verdict::Deny,
            rules: ids(&approval.rules),
        })
    }

    /// Asks Cedar one question. Any evaluation error, unknown policy id or inconsistent answer is
    /// an error (the caller denies): Cedar skips a policy that errors, which for a `forbid` would
    /// fail open.
    fn ask(&self, action: &EntityUid, context: Context) -> Result<Answer<'_>, String> {
        let request = CedarRequest::new(
            self.principal.clone(),
            action.clone(),
            self.resource.clone(),
            context,
            None,
        )
        .map_err(|e| format!("request: {e}"))?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &self.entities);
        let diagnostics = response.diagnostics();
        if let Some(error) = diagnostics.errors().next() {
            return Err(format!("Cedar evaluation error: {error}"));
        }
        let allowed = response.decision() == CedarDecision::Allow;
        let expected = if allowed {
            Effect::Permit
        } else {
            Effect::Forbid
        };
        let mut determining = Vec::new();
        for id in diagnostics.reason() {
            let id: &str = id.as_ref();
            let rule = self
                .rules
                .get(id)
                .ok_or_else(|| format!("unknown policy {id}"))?;
            if rule.effect != expected {
                return Err(format!("policy {id} has the wrong effect for the answer"));
            }
            determining.push(rule);
        }
        if allowed && determining.is_empty() {
            return Err("Cedar allowed with no determining policy".to_owned());
        }
        determining.sort_by_key(|rule| rule.rank);
        Ok(Answer {
            allowed,
            rules: determining,
        })
    }
}

/// A file's policies in the order they are written (Cedar numbers them `policy0`, `policy1`, …).
fn in_file_order<'p>(
    parsed: &'p PolicySet,
    prefix: &str,
) -> Result<Vec<&'p Policy>, PolicyLoadError> {
    let mut numbered = Vec::new();
    for policy in parsed.policies() {
        let id: &str = policy.id().as_ref();
        let index = id
            .strip_prefix("policy")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| PolicyLoadError(format!("{prefix}.cedar: unexpected policy id {id}")))?;
        numbered.push((index, policy));
    }
    numbered.sort_by_key(|(index, _)| *index);
    Ok(numbered.into_iter().map(|(_, policy)| policy).collect())
}

/// The checked metadata of one policy.
fn rule_of(
    policy: &Policy,
    source: PolicySource,
    prefix: &str,
    rank: usize,
) -> Result<Rule, PolicyLoadError> {
    let fail = |what: &str| PolicyLoadError(format!("{prefix}.cedar: {what}"));
    let id = policy
        .annotation("id")
        .ok_or_else(|| fail("a policy has no @id"))?;
    let reason = policy
        .annotation("reason")
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| fail(&format!("{id} has no @reason")))?;
    let in_layer = id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|name| !name.is_empty());
    if !in_layer {
        return Err(fail(&format!("{id} must start with \"{prefix}.\"")));
    }
    let reserved = [
        rules::DEFAULT_DENY,
        rules::POLICY_UNAVAILABLE,
        rules::EVALUATION_ERROR,
        rules::INVALID_ORG_POLICY,
        rules::INVARIANT_VIOLATION,
    ];
    if reserved.contains(&id) {
        return Err(fail(&format!(
            "{id} is reserved for decisions made in Rust"
        )));
    }
    if source == PolicySource::SystemEnforced && policy.effect() != Effect::Forbid {
        return Err(fail(&format!("{id}: the system layer may only forbid")));
    }
    Ok(Rule {
        id: id.to_owned(),
        source,
        reason: reason.to_owned(),
        effect: policy.effect(),
        rank,
    })
}

/// A tier as the number the policies compare: 0 (L0) to 3 (L3).
fn tier_number(tier: RiskTier) -> i64 {
    match tier {
        RiskTier::L0Readonly => 0,
        RiskTier::L1Mutating => 1,
        RiskTier::L2Destructive => 2,
        RiskTier::L3Privileged => 3,
    }
}

/// The Cedar context of a request (the `Facts` type of the schema).
fn context(request: &Request<'_>) -> Result<Context, String> {
    let bool_ = RestrictedExpression::new_bool;
    let record = |fields: Vec<(&str, RestrictedExpression)>| {
        RestrictedExpression::new_record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)))
            .map_err(|e| format!("context: {e}"))
    };
    let user = record(vec![
        (
            "role",
            RestrictedExpression::new_string(request.role.as_str().to_owned()),
        ),
        ("bypass_on", bool_(request.bypass == BypassMode::On)),
    ])?;
    let org = record(vec![
        ("bypass_allowed", bool_(request.org.bypass_allowed)),
        (
            "bypass_max_tier",
            RestrictedExpression::new_long(tier_number(request.org.bypass_max_tier)),
        ),
        ("mutations_paused", bool_(request.org.mutations_paused)),
    ])?;
    let environment = request.environment;
    let environment = record(vec![
        ("present", bool_(environment.is_some())),
        (
            "grants_egress",
            bool_(environment.is_some_and(|e| !e.egress.is_empty())),
        ),
        (
            "grants_secrets",
            bool_(environment.is_some_and(super::EnvironmentGrants::grants_secrets)),
        ),
    ])?;
    let facts = [
        (
            "tier",
            RestrictedExpression::new_long(tier_number(request.tier)),
        ),
        ("forbidden", bool_(request.forbidden.is_some())),
        ("tainted", bool_(request.tainted)),
        ("user", user),
        ("org", org),
        ("environment", environment),
    ];
    Context::from_pairs(facts.into_iter().map(|(k, v)| (k.to_owned(), v)))
        .map_err(|e| format!("context: {e}"))
}

#[cfg(test)]
mod tests {
    use domain::{OrgPolicy, Role};

    use super::*;

    fn request(org: &OrgPolicy) -> Request<'_> {
        Request {
            tier: RiskTier::L1Mutating,
            forbidden: None,
            role: Role::Member,
            bypass: BypassMode::Off,
            tainted: false,
            org,
            environment: None,
        }
    }

    fn texts_with(system: &'static str, org: &'static str, user: &'static str) -> Texts<'static> {
        Texts {
            schema: SHIPPED.schema,
            system,
            org,
            user,
        }
    }

    /// The memo never changes an answer: for every combination of facts, the remembered outcome
    /// (second call) equals what Cedar says afresh.
    #[test]
    fn remembered_answers_equal_fresh_cedar_answers() {
        let engine = Engine::load(&SHIPPED).unwrap();
        let secrets = super::super::EnvironmentGrants {
            name: "prod".into(),
            egress: vec!["api:443".into()],
            secrets: vec!["TOKEN".into()],
        };
        let egress_only = super::super::EnvironmentGrants {
            name: "web".into(),
            egress: vec!["api:443".into()],
            secrets: vec![],
        };
        let mut checked = 0;
        for tier in RiskTier::ALL {
            for max in [RiskTier::L1Mutating, RiskTier::L2Destructive] {
                for flags in 0u8..32 {
                    let bit = |n: u8| flags & (1 << n) != 0;
                    let org = OrgPolicy {
                        bypass_allowed: bit(0),
                        bypass_max_tier: max,
                        mutations_paused: bit(1),
                        ..OrgPolicy::default()
                    };
                    for env in [None, Some(&egress_only), Some(&secrets)] {
                        for role in Role::ALL {
                            let request = Request {
                                tier: *tier,
                                forbidden: bit(2).then_some("forbidden"),
                                role: *role,
                                bypass: if bit(3) {
                                    BypassMode::On
                                } else {
                                    BypassMode::Off
                                },
                                tainted: bit(4),
                                org: &org,
                                environment: env,
                            };
                            let fresh = engine.ask_cedar(&request).unwrap();
                            let applied: Vec<&Rule> =
                                fresh.rules.iter().map(|id| &engine.rules[id]).collect();
                            let expected = rationale::from_rules(&request, fresh.verdict, &applied);
                            assert_eq!(engine.try_decide(&request).unwrap(), expected);
                            assert_eq!(engine.try_decide(&request).unwrap(), expected);
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn the_shipped_policies_parse_validate_and_pass_the_layer_checks() {
        match Engine::load(&SHIPPED) {
            Ok(engine) => assert_eq!(engine.len(), 10),
            Err(err) => panic!("{err}"),
        }
        assert_eq!(check_shipped_policies(), Ok(()));
    }

    #[test]
    fn the_context_matches_the_schema_for_every_shape_of_request() {
        let (schema, _) = Schema::from_cedarschema_str(SHIPPED.schema).unwrap();
        let engine = Engine::load(&SHIPPED).unwrap();
        let env = super::super::EnvironmentGrants {
            name: "prod".into(),
            egress: vec!["a.example".into()],
            secrets: vec!["TOKEN".into()],
        };
        let org = OrgPolicy::default();
        for environment in [None, Some(&env)] {
            for forbidden in [None, Some("rm -rf /")] {
                let req = Request {
                    environment,
                    forbidden,
                    ..request(&org)
                };
                let ctx = context(&req).unwrap();
                for action in [&engine.run, &engine.request_approval] {
                    let checked = CedarRequest::new(
                        engine.principal.clone(),
                        action.clone(),
                        engine.resource.clone(),
                        ctx.clone(),
                        Some(&schema),
                    );
                    assert!(checked.is_ok(), "{checked:?}");
                }
            }
        }
    }

    #[test]
    fn a_permit_in_the_system_layer_is_refused_at_load() {
        let texts = texts_with(
            r#"@id("system.grant") @reason("x") permit (principal, action, resource);"#,
            SHIPPED.org,
            SHIPPED.user,
        );
        let err = Engine::load(&texts).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("may only forbid")));
    }

    #[test]
    fn ids_must_be_unique_prefixed_by_layer_and_not_reserved() {
        let cases = [
            (
                r#"@reason("x") forbid (principal, action, resource);"#,
                "no @id",
            ),
            (
                r#"@id("org.x") @reason("x") forbid (principal, action, resource);"#,
                "must start",
            ),
            (
                r#"@id("system.x") forbid (principal, action, resource);"#,
                "no @reason",
            ),
            (
                r#"@id("system.default_deny") @reason("x") forbid (principal, action, resource);"#,
                "reserved",
            ),
            (
                r#"@id("system.forbidden") @reason("x") forbid (principal, action, resource) when { context.forbidden };
                   @id("system.forbidden") @reason("y") forbid (principal, action, resource) when { context.tainted };"#,
                "system.forbidden",
            ),
            (
                "forbid (principal, action, resource) when { context.nope };",
                "no @id",
            ),
            ("this is not cedar", "system.cedar"),
        ];
        for (system, expected) in cases {
            let err = Engine::load(&texts_with(system, SHIPPED.org, SHIPPED.user))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(expected), "{system}: {err}");
        }
    }

    #[test]
    fn a_policy_that_does_not_match_the_schema_is_refused_at_load() {
        let texts = texts_with(
            r#"@id("system.typo") @reason("x") forbid (principal, action, resource) when { context.tainet };"#,
            SHIPPED.org,
            SHIPPED.user,
        );
        let err = Engine::load(&texts).err().map(|e| e.to_string());
        assert!(
            err.as_ref().is_some_and(|e| e.contains("validation")),
            "{err:?}"
        );
    }

    #[test]
    fn no_applicable_rule_is_deny_by_default() {
        let engine = Engine::load(&texts_with("", "", "")).unwrap();
        let org = OrgPolicy::default();
        for tier in RiskTier::ALL {
            let decision = engine.decide(&Request {
                tier: *tier,
                ..request(&org)
            });
            assert_eq!(decision.verdict, Verdict::Deny);
            assert_eq!(decision.rule, rules::DEFAULT_DENY);
            assert_eq!(decision.source, PolicySource::SystemEnforced);
        }
    }

    #[test]
    fn a_forbid_that_errors_fails_closed_instead_of_being_skipped() {
        // Overflows for every tier >= 1, so Cedar would skip this forbid and let the permit win.
        let engine = Engine::load(&texts_with(
            r#"@id("system.overflow") @reason("x") forbid (principal, action, resource)
               when { context.tier + 9223372036854775807 < 0 };"#,
            r#"@id("org.all") @reason("x") permit (principal, action, resource);"#,
            "",
        ))
        .unwrap();
        let org = OrgPolicy::default();
        let decision = engine.decide(&request(&org));
        assert_eq!(decision.verdict, Verdict::Deny);
        assert_eq!(decision.rule, rules::EVALUATION_ERROR);
        assert_eq!(decision.source, PolicySource::SystemEnforced);
        // Without the error (tier 0: no overflow) the permit applies.
        let l0 = engine.decide(&Request {
            tier: RiskTier::L0Readonly,
            ..request(&org)
        });
        assert_eq!(l0.verdict, Verdict::Allow);
    }
}
