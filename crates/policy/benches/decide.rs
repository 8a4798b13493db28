//! The cost of one `policy::decision::decide`, per kind of outcome: p50 / p99 / max in
//! nanoseconds over a plain `std::time` loop. Run with `cargo bench -p policy --bench decide`.
//! The target is p99 < 100 µs for classification and decision together; this measures the
//! decision alone (classification has its own bench).

use std::hint::black_box;
use std::time::Instant;

use domain::{BypassMode, OrgPolicy, RiskTier, Role};
use policy::decision::{EnvironmentGrants, Request, decide};

const ITERATIONS: usize = 20_000;

fn main() {
    let started = Instant::now();
    let loaded = policy::decision::check_shipped_policies();
    println!(
        "policy set load (once per process): {} µs, {:?}",
        started.elapsed().as_micros(),
        loaded
    );

    let default = OrgPolicy::default();
    let open = OrgPolicy {
        bypass_allowed: true,
        bypass_max_tier: RiskTier::L2Destructive,
        ..OrgPolicy::default()
    };
    let paused = OrgPolicy {
        mutations_paused: true,
        ..open.clone()
    };
    let prod = EnvironmentGrants {
        name: "prod".into(),
        egress: vec!["api.example.com:443".into(), "registry.example.com".into()],
        secrets: vec!["DEPLOY_TOKEN".into(), "KUBECONFIG".into()],
    };
    let base = |tier, bypass, org| Request {
        tier,
        forbidden: None,
        role: Role::Member,
        bypass,
        tainted: false,
        org,
        environment: None,
    };
    let cases: Vec<(&str, Request<'_>)> = vec![
        (
            "L0 allow (1 Cedar query)",
            base(RiskTier::L0Readonly, BypassMode::Off, &default),
        ),
        (
            "L1 bypass allow (1 query)",
            base(RiskTier::L1Mutating, BypassMode::On, &open),
        ),
        (
            "L1 approval (2 queries)",
            base(RiskTier::L1Mutating, BypassMode::Off, &default),
        ),
        (
            "L2 approval in env (2 queries)",
            Request {
                environment: Some(&prod),
                ..base(RiskTier::L2Destructive, BypassMode::On, &open)
            },
        ),
        (
            "L3 approval (2 queries)",
            base(RiskTier::L3Privileged, BypassMode::On, &open),
        ),
        (
            "L1 paused deny (2 queries)",
            base(RiskTier::L1Mutating, BypassMode::On, &paused),
        ),
        (
            "forbidden deny (2 queries)",
            Request {
                forbidden: Some("fork bomb"),
                ..base(RiskTier::L0Readonly, BypassMode::Off, &default)
            },
        ),
    ];

    let mut all = Vec::with_capacity(ITERATIONS * cases.len());
    println!(
        "{:<32} {:>9} {:>9} {:>9}",
        "case", "p50 ns", "p99 ns", "max ns"
    );
    for (name, request) in &cases {
        for _ in 0..1_000 {
            black_box(decide(black_box(request)));
        }
        let mut samples = Vec::with_capacity(ITERATIONS);
        for _ in 0..ITERATIONS {
            let start = Instant::now();
            black_box(decide(black_box(request)));
            samples.push(start.elapsed().as_nanos());
        }
        report(name, &mut samples);
        all.extend(samples);
    }
    report("all cases", &mut all);
}

fn report(name: &str, samples: &mut [u128]) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{:<32} {:>9} {:>9} {:>9}",
        name,
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    );
}
