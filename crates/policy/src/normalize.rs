//! What text becomes before anything looks at it.
//!
//! Commands reach us from phone keyboards and from places an attacker can write to (chat, web
//! pages, command output). Both bend the text in ways a human reader does not see:
//!
//! - phone keyboards replace `"` and `'` with typographic quotes (“ ” ‘ ’) and `--` with an em
//!   dash (—), so a command typed on a phone is not the command the user meant;
//! - zero-width characters, bidirectional controls and Unicode "tag" characters are invisible,
//!   so `r<ZWSP>m` reads as `rm` and a tag run can smuggle a whole hidden instruction;
//! - compatibility forms (fullwidth `ｒｍ`, ligatures, mathematical letters) look like ASCII;
//! - Cyrillic and Greek letters (`е` U+0435, `о` U+043E) look exactly like Latin ones.
//!
//! [`normalize`] undoes the first three — NFKC, typographic punctuation to ASCII, invisible
//! characters removed — and *remembers* every invisible character it removed, because their
//! presence is itself a signal: a command or a web page with hidden characters is suspicious
//! whatever they spell. Homoglyphs cannot be undone safely (Cyrillic is a legitimate script), so
//! they are only reported, by [`Normalized::non_ascii_in_words`], for the classifier (and later
//! the injection scanner) to weigh.
//!
//! The classifier classifies [`Normalized::text`]; whoever executes a classified command must run
//! exactly that text, not the raw input, or the two can differ (a `;` inside typographic quotes
//! is quoted after normalisation but is a command separator in the raw text).

use unicode_normalization::UnicodeNormalization;

/// Why an invisible character was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HiddenKind {
    /// Zero-width space/joiners, word joiner, byte-order mark, invisible operators, fillers,
    /// soft hyphen: characters that render as nothing.
    ZeroWidth,
    /// Bidirectional controls (embeddings, overrides, isolates, marks): they reorder what a
    /// reader sees without changing what a shell reads ("Trojan Source").
    Bidi,
    /// Unicode tag characters (U+E0000–U+E007F): invisible ASCII look-alikes used to smuggle
    /// hidden text ("ASCII smuggling"). See [`Normalized::smuggled_text`].
    Tag,
    /// Variation selectors: invisible modifiers that can carry hidden data.
    VariationSelector,
    /// Control characters (C0 other than tab and newline, DEL, C1) and a lone carriage return,
    /// which makes a terminal overwrite what was shown before it.
    Control,
    /// Other invisible format characters (Unicode category Cf) and private-use characters.
    Format,
}

impl HiddenKind {
    /// A short human name, for reasons shown to approvers.
    pub fn describe(self) -> &'static str {
        match self {
            HiddenKind::ZeroWidth => "zero-width character",
            HiddenKind::Bidi => "bidirectional control",
            HiddenKind::Tag => "Unicode tag character",
            HiddenKind::VariationSelector => "variation selector",
            HiddenKind::Control => "control character",
            HiddenKind::Format => "invisible format character",
        }
    }
}

/// One invisible character removed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hidden {
    /// What kind of invisible character it was.
    pub kind: HiddenKind,
    /// The character itself.
    pub codepoint: char,
    /// Its byte offset in the *original* input.
    pub offset: usize,
}

/// The result of [`normalize`]: the text to look at, and what was hidden in the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// NFKC, typographic quotes and dashes as ASCII, invisible characters removed, line endings
    /// as `\n`, every Unicode space as an ASCII space.
    pub text: String,
    /// Every invisible character that was removed (or, for a lone carriage return, replaced by a
    /// newline), in input order.
    pub hidden: Vec<Hidden>,
}

/// A word of the normalised text that still holds non-ASCII characters after NFKC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonAsciiWord {
    /// The word (a run of text between whitespace and shell punctuation).
    pub word: String,
    /// Byte offset of the word in [`Normalized::text`].
    pub offset: usize,
    /// Letters that look like an ASCII letter, with the letter they imitate (`е` → `e`).
    pub confusables: Vec<(char, char)>,
    /// Whether the word also holds ASCII letters: `rеm` (Latin + Cyrillic) is mixed; a word
    /// written wholly in Cyrillic is not. Mixed words with confusables are almost never honest.
    pub mixed_script: bool,
}

impl Normalized {
    /// Whether any invisible character was removed.
    pub fn had_hidden(&self) -> bool {
        !self.hidden.is_empty()
    }

    /// The ASCII text spelled by Unicode tag characters, if any (tag U+E0041 spells `A`).
    /// Attackers use tag runs to pass instructions to a model that a human cannot see.
    pub fn smuggled_text(&self) -> String {
        self.hidden
            .iter()
            .filter(|h| h.kind == HiddenKind::Tag)
            .filter_map(|h| {
                let v = u32::from(h.codepoint).checked_sub(0xE0000)?;
                let c = char::from_u32(v)?;
                (c.is_ascii_graphic() || c == ' ').then_some(c)
            })
            .collect()
    }

    /// Words that still hold non-ASCII characters which imitate ASCII letters (Cyrillic,
    /// Greek, Armenian homoglyphs). Words with only honest non-ASCII (`café`, `日本`) are left out.
    pub fn non_ascii_in_words(&self) -> Vec<NonAsciiWord> {
        let mut out = Vec::new();
        let text = self.text.as_str();
        let mut start: Option<usize> = None;
        let scan = |s: usize, e: usize, out: &mut Vec<NonAsciiWord>| {
            let Some(word) = text.get(s..e) else { return };
            if word.is_ascii() {
                return;
            }
            let confusables: Vec<(char, char)> = word
                .chars()
                .filter_map(|c| confusable_ascii(c).map(|a| (c, a)))
                .collect();
            if confusables.is_empty() {
                return;
            }
            out.push(NonAsciiWord {
                word: word.to_owned(),
                offset: s,
                mixed_script: word.chars().any(|c| c.is_ascii_alphabetic()),
                confusables,
            });
        };
        for (i, c) in text.char_indices() {
            let sep = c.is_whitespace() || matches!(c, ';' | '|' | '&' | '(' | ')' | '<' | '>');
            match (sep, start) {
                (true, Some(s)) => {
                    scan(s, i, &mut out);
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            scan(s, text.len(), &mut out);
        }
        out
    }
}

/// Normalises `input` (see the module docs). Never fails; any string is accepted.
pub fn normalize(input: &str) -> Normalized {
    let mut hidden = Vec::new();
    let mut pre = String::with_capacity(input.len());
    let mut chars = input.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        if c == '\r' {
            if matches!(chars.peek(), Some((_, '\n'))) {
                continue; // CRLF: an ordinary Windows line ending
            }
            hidden.push(Hidden {
                kind: HiddenKind::Control,
                codepoint: c,
                offset,
            });
            pre.push('\n');
            continue;
        }
        if let Some(kind) = hidden_kind(c) {
            hidden.push(Hidden {
                kind,
                codepoint: c,
                offset,
            });
            continue;
        }
        push_mapped(&mut pre, c);
    }
    if pre.is_ascii() {
        return Normalized { text: pre, hidden };
    }
    let mut text = String::with_capacity(pre.len());
    for c in pre.nfkc() {
        if hidden_kind(c).is_some() {
            continue; // NFKC does not produce these, but never let one through
        }
        push_mapped(&mut text, c);
    }
    Normalized { text, hidden }
}

/// Pushes `c`, mapped to ASCII when it is typographic punctuation or a Unicode space.
fn push_mapped(out: &mut String, c: char) {
    if c.is_ascii() {
        out.push(c);
        return;
    }
    match c {
        // Double quotes and their look-alikes.
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{00AB}' | '\u{00BB}'
        | '\u{2033}' | '\u{2036}' | '\u{301D}' | '\u{301E}' | '\u{301F}' | '\u{FF02}' => {
            out.push('"')
        }
        // Single quotes, primes and their look-alikes. Never mapped to a backtick: that would
        // turn prose into command substitution.
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2039}' | '\u{203A}'
        | '\u{2032}' | '\u{2035}' | '\u{FF07}' => out.push('\''),
        // An em dash is what phone keyboards make of `--` (`—force` was typed as `--force`).
        '\u{2014}' => out.push_str("--"),
        // Hyphens, dashes and minus signs.
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2015}' | '\u{2043}'
        | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' => out.push('-'),
        '\u{2026}' => out.push_str("..."),
        // Line and paragraph separators, next line: newlines.
        '\u{2028}' | '\u{2029}' | '\u{0085}' => out.push('\n'),
        c if c.is_whitespace() => out.push(' '),
        c => out.push(c),
    }
}

/// The kind of an invisible character, or `None` for a character a reader can see.
pub fn hidden_kind(c: char) -> Option<HiddenKind> {
    let u = u32::from(c);
    Some(match u {
        0x09 | 0x0A | 0x0D => return None,
        0x00..=0x1F | 0x7F => HiddenKind::Control,
        0x85 => return None, // next line: mapped to a newline
        0x80..=0x9F => HiddenKind::Control,
        0x200B..=0x200D
        | 0x2060
        | 0xFEFF
        | 0x00AD
        | 0x034F
        | 0x2061..=0x2064
        | 0x115F
        | 0x1160
        | 0x3164
        | 0xFFA0
        | 0x17B4
        | 0x17B5
        | 0x180E
        | 0x2800 => HiddenKind::ZeroWidth,
        0x202A..=0x202E | 0x2066..=0x2069 | 0x200E | 0x200F | 0x061C => HiddenKind::Bidi,
        0xE0000..=0xE007F => HiddenKind::Tag,
        0xFE00..=0xFE0F | 0xE0100..=0xE01EF | 0x180B..=0x180D | 0x180F => {
            HiddenKind::VariationSelector
        }
        0x0600..=0x0605
        | 0x06DD
        | 0x070F
        | 0x0890
        | 0x0891
        | 0x08E2
        | 0x2065
        | 0x206A..=0x206F
        | 0xFFF9..=0xFFFB
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE000..=0xF8FF
        | 0xF0000..=0xFFFFD
        | 0x100000..=0x10FFFD => HiddenKind::Format,
        _ => return None,
    })
}

/// The ASCII letter that `c` imitates, when `c` is a non-ASCII homoglyph of one (Cyrillic `е`
/// → `e`, Greek `ο` → `o`). `None` for ASCII and for letters that look like nothing in ASCII.
pub fn confusable_ascii(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic lower case
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' => 'e',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'у' => 'y',
        'х' => 'x',
        'ѕ' => 's',
        'і' | 'ї' => 'i',
        'ј' => 'j',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'һ' => 'h',
        'ӏ' => 'l',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'т' => 't',
        'ь' => 'b',
        'п' => 'n',
        'г' => 'r',
        // Cyrillic upper case
        'А' => 'A',
        'В' => 'B',
        'Е' | 'Ё' => 'E',
        'К' => 'K',
        'М' => 'M',
        'Н' => 'H',
        'О' => 'O',
        'Р' => 'P',
        'С' => 'C',
        'Т' => 'T',
        'Х' => 'X',
        'У' => 'Y',
        'Ѕ' => 'S',
        'І' => 'I',
        'Ј' => 'J',
        'Ԛ' => 'Q',
        'Ԝ' => 'W',
        'Ӏ' => 'I',
        // Greek
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'γ' => 'y',
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        // Armenian
        'օ' => 'o',
        'ս' => 'u',
        'հ' => 'h',
        'ո' => 'n',
        'ց' => 'g',
        // Latin letters outside ASCII that NFKC keeps
        'ı' => 'i',
        'ɑ' => 'a',
        'ɡ' => 'g',
        'ʏ' => 'y',
        'ᴄ' => 'c',
        'ᴏ' => 'o',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        'ᴢ' => 'z',
        _ => return None,
    })
}

/// `s` with every homoglyph replaced by the ASCII letter it imitates: what a reader believes
/// they see. Other characters are kept.
pub fn skeleton(s: &str) -> String {
    s.chars()
        .map(|c| confusable_ascii(c).unwrap_or(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typographic_quotes_and_dashes_become_ascii() {
        let n = normalize("git commit -m “fix it” — ‘x’ –n");
        assert_eq!(n.text, "git commit -m \"fix it\" -- 'x' -n");
        assert!(!n.had_hidden());
    }

    #[test]
    fn hidden_characters_are_removed_and_remembered() {
        let n = normalize("r\u{200B}m -rf \u{202E}/");
        assert_eq!(n.text, "rm -rf /");
        assert_eq!(n.hidden.len(), 2);
        assert_eq!(n.hidden[0].offset, 1);
        assert_eq!(n.hidden[0].kind, HiddenKind::ZeroWidth);
        assert_eq!(n.hidden[1].kind, HiddenKind::Bidi);
    }

    #[test]
    fn tags_are_decoded() {
        let n = normalize("ls\u{E0072}\u{E006D}");
        assert_eq!(n.text, "ls");
        assert_eq!(n.smuggled_text(), "rm");
    }

    #[test]
    fn nfkc_folds_fullwidth() {
        assert_eq!(normalize("ｒｍ　-rf").text, "rm -rf");
    }

    #[test]
    fn homoglyphs_are_reported_not_changed() {
        let n = normalize("rм -rf / ; echo привет café");
        assert_eq!(n.text, "rм -rf / ; echo привет café");
        let w = n.non_ascii_in_words();
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].word, "rм");
        assert!(w[0].mixed_script);
        assert!(!w[1].mixed_script);
        assert_eq!(skeleton("ѕudо"), "sudo");
    }

    #[test]
    fn line_endings() {
        let n = normalize("ls\r\npwd\rrm x");
        assert_eq!(n.text, "ls\npwd\nrm x");
        assert_eq!(n.hidden.len(), 1);
    }
}
