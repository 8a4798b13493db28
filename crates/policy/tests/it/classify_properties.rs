//! Properties of the classifier over arbitrary input: it never panics, and it never calls
//! anything with a command substitution or hidden characters read-only.

use domain::RiskTier;
use policy::classify::{classify, rule_table_errors};
use proptest::prelude::*;

#[test]
fn the_compiled_rule_table_loads() {
    assert_eq!(rule_table_errors(), Vec::<String>::new());
}

const HIDDEN: &[char] = &[
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{2060}',
    '\u{FEFF}',
    '\u{202E}',
    '\u{2066}',
    '\u{200E}',
    '\u{061C}',
    '\u{E0041}',
    '\u{E007F}',
    '\u{00AD}',
];

fn shellish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("ls".to_owned()),
            Just("rm -rf".to_owned()),
            Just(" ".to_owned()),
            Just(";".to_owned()),
            Just("|".to_owned()),
            Just("&&".to_owned()),
            Just("'".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("\n".to_owned()),
            Just("$(".to_owned()),
            Just(")".to_owned()),
            Just("`".to_owned()),
            Just("<<EOF\n".to_owned()),
            Just("EOF".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("$IFS".to_owned()),
            Just("sh -c".to_owned()),
            Just("/".to_owned()),
            "[a-z]{1,6}",
            any::<String>(),
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(s in any::<String>()) {
        let _ = classify(&s);
    }

    #[test]
    fn never_panics_on_shell_like_text(s in shellish()) {
        let _ = classify(&s);
    }

    #[test]
    fn substitution_is_never_read_only(pre in shellish(), inner in shellish(), post in shellish(), tick in any::<bool>()) {
        let cmd = if tick {
            format!("{pre}`{inner}`{post}")
        } else {
            format!("{pre}$({inner}){post}")
        };
        let c = classify(&cmd);
        prop_assert!(c.tier > RiskTier::L0Readonly, "{cmd:?} classified L0");
    }

    #[test]
    fn hidden_characters_are_never_read_only(s in shellish(), i in 0usize..64, h in 0usize..HIDDEN.len()) {
        let mut chars: Vec<char> = s.chars().collect();
        let at = i.min(chars.len());
        chars.insert(at, HIDDEN[h]);
        let cmd: String = chars.into_iter().collect();
        let c = classify(&cmd);
        prop_assert!(c.tier >= RiskTier::L2Destructive, "{cmd:?} classified {:?}", c.tier);
    }
}

#[test]
fn reasons_and_programs_are_reported() {
    let c = classify("sudo systemctl restart nginx");
    assert_eq!(c.tier, RiskTier::L3Privileged);
    assert_eq!(c.programs, ["sudo", "systemctl"]);
    assert!(
        c.reasons.iter().any(|r| r.contains("systemctl restart")),
        "{c:?}"
    );
    let c = classify("kubectl delete pod x");
    assert!(
        c.reasons
            .contains(&"kubectl delete: deletes cluster resources (L2)".to_owned()),
        "{c:?}"
    );
    let c = classify("rm -rf /");
    assert!(c.forbidden.is_some());
    let c = classify("ls -la");
    assert_eq!(c.tier, RiskTier::L0Readonly);
    assert!(c.reasons.is_empty());
}

#[test]
fn deeply_nested_substitutions_do_not_crash() {
    let deep = "$(".repeat(5000) + &")".repeat(5000);
    assert!(classify(&deep).tier >= RiskTier::L2Destructive);
}

#[test]
fn long_lists_do_not_crash() {
    let chain = vec!["ls"; 20_000].join(" && ");
    assert_eq!(classify(&chain).tier, RiskTier::L0Readonly);
}

#[test]
fn deeply_nested_shells_are_not_read_only() {
    let nested = (0..12).fold("ls".to_owned(), |acc, _| {
        format!(
            "sh -c \"{}\"",
            acc.replace('\\', "\\\\").replace('"', "\\\"")
        )
    });
    assert!(
        classify(&nested).tier >= RiskTier::L2Destructive,
        "{nested}"
    );
}

#[test]
fn overlong_input_is_privileged() {
    let huge = "a".repeat(300 * 1024);
    assert_eq!(classify(&huge).tier, RiskTier::L3Privileged);
}
