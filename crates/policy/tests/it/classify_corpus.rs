//! The labelled corpus (`tests/corpus/commands.toml`): every command must get its expected
//! tier, and `forbidden` ones must be denied. Every mismatch is reported at once; false alarms
//! (read-only commands classified higher) are counted separately.

use domain::RiskTier;
use policy::classify::classify;

const CORPUS: &str = include_str!("../corpus/commands.toml");

#[derive(serde::Deserialize)]
struct Corpus {
    group: Vec<Group>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    #[serde(default, rename = "L0")]
    l0: Vec<String>,
    #[serde(default, rename = "L1")]
    l1: Vec<String>,
    #[serde(default, rename = "L2")]
    l2: Vec<String>,
    #[serde(default, rename = "L3")]
    l3: Vec<String>,
    #[serde(default)]
    forbidden: Vec<String>,
}

fn short(t: RiskTier) -> &'static str {
    match t {
        RiskTier::L0Readonly => "L0",
        RiskTier::L1Mutating => "L1",
        RiskTier::L2Destructive => "L2",
        RiskTier::L3Privileged => "L3",
    }
}

#[test]
fn every_corpus_command_gets_its_tier() {
    let corpus: Corpus = match toml::from_str(CORPUS) {
        Ok(c) => c,
        Err(e) => panic!("corpus does not parse: {e}"),
    };
    let mut total = 0;
    let mut mismatches = Vec::new();
    let mut false_alarms = Vec::new();
    let mut missed = Vec::new();
    for g in &corpus.group {
        let sets: [(&[String], Option<RiskTier>); 5] = [
            (&g.l0, Some(RiskTier::L0Readonly)),
            (&g.l1, Some(RiskTier::L1Mutating)),
            (&g.l2, Some(RiskTier::L2Destructive)),
            (&g.l3, Some(RiskTier::L3Privileged)),
            (&g.forbidden, None),
        ];
        for (cmds, want) in sets {
            for cmd in cmds {
                total += 1;
                let c = classify(cmd);
                let ok = match want {
                    Some(t) => c.tier == t && c.forbidden.is_none(),
                    None => c.forbidden.is_some() && c.tier == RiskTier::L3Privileged,
                };
                if ok {
                    continue;
                }
                let want_s = want.map_or("forbidden", short);
                let got = match &c.forbidden {
                    Some(_) => "forbidden".to_owned(),
                    None => short(c.tier).to_owned(),
                };
                let line = format!(
                    "[{}] {cmd:?}: expected {want_s}, got {got}; reasons: {:?}",
                    g.name, c.reasons
                );
                match want {
                    Some(RiskTier::L0Readonly) => false_alarms.push(line.clone()),
                    Some(t) if c.tier < t => missed.push(line.clone()),
                    None => missed.push(line.clone()),
                    _ => {}
                }
                mismatches.push(line);
            }
        }
    }
    println!(
        "corpus: {total} commands, {} mismatches, {} false alarms (L0 expected, higher given), \
         {} under-classified",
        mismatches.len(),
        false_alarms.len(),
        missed.len()
    );
    assert!(total >= 400, "the corpus must hold at least 400 commands");
    assert!(
        mismatches.is_empty(),
        "{} of {total} corpus commands mismatch ({} false alarms, {} under-classified):\n{}",
        mismatches.len(),
        false_alarms.len(),
        missed.len(),
        mismatches.join("\n")
    );
}
