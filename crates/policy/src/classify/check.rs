//! Every example and counterexample in the rule table, checked against the classifier.

use domain::RiskTier;

use super::rules::Rules;
use super::{Hit, classify_traced, short};

fn load() -> Rules {
    match Rules::load() {
        Ok(r) => r,
        Err(e) => panic!("rule table does not load:\n{}", e.join("\n")),
    }
}

#[test]
fn rule_table_loads() {
    let r = load();
    assert!(r.programs.len() > 100, "only {} programs", r.programs.len());
}

#[test]
fn every_rule_example_matches_and_no_counterexample_does() {
    let rules = load();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (pi, p) in rules.programs.iter().enumerate() {
        let name = p.names.first().cloned().unwrap_or_default();
        for ex in &p.examples {
            checked += 1;
            let (c, _) = classify_traced(ex, &rules);
            let want = if p.subs.is_empty() { p.tier } else { p.bare };
            if c.tier != want {
                failures.push(format!(
                    "{name}: example {ex:?} is {} not {}: {:?}",
                    short(c.tier),
                    short(want),
                    c.reasons
                ));
            }
        }
        for cx in &p.counterexamples {
            checked += 1;
            let (c, _) = classify_traced(cx, &rules);
            let want = if p.subs.is_empty() { p.tier } else { p.bare };
            if c.tier == want {
                failures.push(format!(
                    "{name}: counterexample {cx:?} is {} too",
                    short(c.tier)
                ));
            }
        }
        for (si, s) in p.subs.iter().enumerate() {
            for ex in &s.examples {
                checked += 1;
                let (c, hits) = classify_traced(ex, &rules);
                if !hits.contains(&Hit::Sub(pi, si)) || c.tier < s.tier {
                    failures.push(format!(
                        "{name} sub {:?}: example {ex:?} does not match (tier {}): {:?}",
                        s.paths,
                        short(c.tier),
                        c.reasons
                    ));
                }
            }
            for cx in &s.counterexamples {
                checked += 1;
                let (_, hits) = classify_traced(cx, &rules);
                if hits.contains(&Hit::Sub(pi, si)) {
                    failures.push(format!(
                        "{name} sub {:?}: counterexample {cx:?} matches",
                        s.paths
                    ));
                }
            }
        }
        for (ri, r) in p.rules.iter().enumerate() {
            for ex in &r.examples {
                checked += 1;
                let (c, hits) = classify_traced(ex, &rules);
                let want = if r.forbid {
                    RiskTier::L3Privileged
                } else {
                    r.tier
                };
                if !hits.contains(&Hit::Rule(pi, ri)) || c.tier < want {
                    failures.push(format!(
                        "{name} rule {:?}: example {ex:?} does not match (tier {}): {:?}",
                        r.what,
                        short(c.tier),
                        c.reasons
                    ));
                }
                if r.forbid && c.forbidden.is_none() {
                    failures.push(format!(
                        "{name} rule {:?}: example {ex:?} is not forbidden",
                        r.what
                    ));
                }
            }
            for cx in &r.counterexamples {
                checked += 1;
                let (_, hits) = classify_traced(cx, &rules);
                if hits.contains(&Hit::Rule(pi, ri)) {
                    failures.push(format!(
                        "{name} rule {:?}: counterexample {cx:?} matches",
                        r.what
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} rule examples fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_broken_rule_file_is_an_error_not_a_panic() {
    let bad = [
        (
            "a.toml",
            "[[program]]\nnames = [\"x\"]\ntier = \"L9\"\nwhat = \"x\"\n",
        ),
        (
            "b.toml",
            "[[program]]\nnames = [\"y\"]\ntier = \"L0\"\nwhat = \"y\"\nbogus = 1\n",
        ),
        ("c.toml", "not toml ["),
    ];
    let e = Rules::from_sources(&bad).err().unwrap_or_default();
    assert!(e.len() >= 3, "{e:?}");
}
