//! Classification speed over the labelled corpus: a plain `std::time` loop (no harness).
//! Prints ns per command at p50/p99/max and commands per second.
//! Run: `cargo bench -p policy --bench classify`.

use std::hint::black_box;
use std::time::Instant;

const CORPUS: &str = include_str!("../tests/corpus/commands.toml");

fn commands() -> Vec<String> {
    let value: toml::Value = match toml::from_str(CORPUS) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("corpus does not parse: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    if let Some(groups) = value.get("group").and_then(|g| g.as_array()) {
        for g in groups {
            for key in ["L0", "L1", "L2", "L3", "forbidden"] {
                if let Some(list) = g.get(key).and_then(|l| l.as_array()) {
                    out.extend(list.iter().filter_map(|c| c.as_str().map(str::to_owned)));
                }
            }
        }
    }
    out
}

fn main() {
    let cmds = commands();
    if cmds.is_empty() {
        return;
    }
    // Warm up: rules load, parser created, caches warm.
    for c in &cmds {
        black_box(policy::classify::classify(c));
    }
    let rounds = 20;
    let mut samples = Vec::with_capacity(cmds.len() * rounds);
    let start = Instant::now();
    for _ in 0..rounds {
        for c in &cmds {
            let t = Instant::now();
            black_box(policy::classify::classify(black_box(c)));
            samples.push(t.elapsed().as_nanos());
        }
    }
    let total = start.elapsed();
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    println!(
        "classify: {} commands x {rounds} rounds: p50 {} ns, p90 {} ns, p99 {} ns, max {} ns, {:.0} commands/s",
        cmds.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        samples.last().copied().unwrap_or(0),
        samples.len() as f64 / total.as_secs_f64()
    );

    // The whole gate as the coordinator runs it: classify, then decide (member, bypass OFF,
    // default org policy) — the figure the p99 < 100 µs target is about.
    let org = domain::OrgPolicy::default();
    let mut gate = Vec::with_capacity(cmds.len() * rounds);
    for _ in 0..rounds {
        for c in &cmds {
            let t = Instant::now();
            let class = policy::classify::classify(black_box(c));
            black_box(policy::decision::decide(&policy::decision::Request {
                tier: class.tier,
                forbidden: class.forbidden.as_deref(),
                role: domain::Role::Member,
                bypass: domain::BypassMode::Off,
                tainted: false,
                org: &org,
                environment: None,
            }));
            gate.push(t.elapsed().as_nanos());
        }
    }
    gate.sort_unstable();
    let pct = |p: f64| gate[((gate.len() as f64 - 1.0) * p) as usize];
    println!(
        "classify + decide: p50 {} ns, p90 {} ns, p99 {} ns, max {} ns",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        gate.last().copied().unwrap_or(0)
    );
}
