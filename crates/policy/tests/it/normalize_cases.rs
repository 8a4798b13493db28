//! Normalisation as the Telegram contract needs it: phone punctuation becomes ASCII before a
//! command is classified; invisible characters are removed and remembered.

use policy::classify::classify;
use policy::normalize::{HiddenKind, normalize};

#[test]
fn phone_quotes_and_dashes_are_ascii_before_classification() {
    let n = normalize("git commit -m “fix: it’s done” && git push —force");
    assert_eq!(
        n.text,
        "git commit -m \"fix: it's done\" && git push --force"
    );
    let c = classify("git commit -m “fix” && git push —force");
    assert_eq!(c.tier, domain::RiskTier::L2Destructive, "{c:?}");
    assert_eq!(
        classify("kubectl get pods -l “app=web”").tier,
        domain::RiskTier::L0Readonly
    );
}

#[test]
fn invisible_characters_are_signals() {
    let n = normalize("ls\u{200B}\u{202E}\u{E0069}\u{E0064}");
    assert_eq!(n.text, "ls");
    assert!(n.had_hidden());
    let kinds: Vec<HiddenKind> = n.hidden.iter().map(|h| h.kind).collect();
    assert_eq!(
        kinds,
        [
            HiddenKind::ZeroWidth,
            HiddenKind::Bidi,
            HiddenKind::Tag,
            HiddenKind::Tag
        ]
    );
    assert_eq!(n.smuggled_text(), "id");
    assert_eq!(n.hidden[0].offset, 2);
}

#[test]
fn homoglyphs_are_reported() {
    let n = normalize("ѕudо rm x");
    let w = n.non_ascii_in_words();
    assert_eq!(w.len(), 1);
    assert!(w[0].confusables.iter().any(|&(_, a)| a == 's'));
    assert_eq!(normalize("ｓｕｄｏ").text, "sudo");
}
