//! Terminal-safe text: everything `agenticai chat` prints that came from the server, the model or
//! a command's output goes through [`sanitize`] first, so none of it can move the cursor, rewrite
//! earlier lines, change the terminal's title or colours, or reorder what is shown.

use std::borrow::Cow;

/// `text` without the characters a terminal would act on rather than show: ESC and every other
/// C0 control except newline and tab (carriage return too, so a line cannot be overwritten), DEL,
/// the C1 controls (U+0080–U+009F, among them the one-byte CSI), and the bidirectional overrides,
/// embeddings, isolates and marks that make text display in another order than it is read.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if text.chars().all(|c| !is_unsafe(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().filter(|&c| !is_unsafe(c)).collect())
}

/// Whether a terminal might interpret `c` instead of printing it.
fn is_unsafe(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Arabic letter mark, left-to-right and right-to-left marks.
        '\u{61c}' | '\u{200e}' | '\u{200f}' => true,
        // Embeddings and overrides (LRE RLE PDF LRO RLO), isolates (LRI RLI FSI PDI).
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "Filesystem  Size\n/dev/sda1   40G\tok — “quoted” ünïcode ✓";
        assert!(matches!(sanitize(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn escape_sequences_lose_their_escape() {
        // Colour, cursor movement, screen clearing and an OSC title change.
        let text = "\x1b[31mred\x1b[0m \x1b[2J\x1b[H\x1b]0;pwned\x07done";
        assert_eq!(sanitize(text), "[31mred[0m [2J[H]0;pwneddone");
        assert!(!sanitize(text).contains('\x1b'));
    }

    #[test]
    fn other_c0_controls_and_del_are_dropped_but_newline_and_tab_stay() {
        assert_eq!(sanitize("a\rb\x08c\x00d\x7fe\n\tf"), "abcde\n\tf");
        assert_eq!(sanitize("line\r\n"), "line\n");
    }

    #[test]
    fn c1_controls_are_dropped() {
        // U+009B is a one-byte CSI on terminals that honour C1; U+0085 is NEL.
        assert_eq!(sanitize("a\u{9b}31mb\u{85}c\u{80}d"), "a31mbcd");
    }

    #[test]
    fn bidirectional_controls_are_dropped() {
        let text = "rm -rf /\u{202e}gnp.txt\u{202c} \u{2066}x\u{2069}\u{200f}\u{61c}";
        assert_eq!(sanitize(text), "rm -rf /gnp.txt x");
    }
}
