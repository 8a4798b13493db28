//! The output tail of a status message: the last lines of raw output as a terminal would show
//! them, escaped and cut from the front to fit.

use crate::render::{ELLIPSIS, escape, escaped_units, utf16_len};

/// The last `n` lines of `text` as a terminal would show them: a carriage return starts its line
/// over (progress bars), and control characters other than newline and tab are dropped.
pub(super) fn last_lines(text: &str, n: usize) -> String {
    let trimmed = text.trim_end_matches(['\n', '\r']);
    let mut lines: Vec<String> = trimmed
        .rsplit('\n')
        .take(n)
        .map(|line| {
            let line = line.trim_end_matches('\r');
            let visible = line.rsplit('\r').next().unwrap_or(line);
            visible
                .chars()
                .filter(|c| *c == '\t' || !c.is_control())
                .collect()
        })
        .collect();
    lines.reverse();
    lines.join("\n")
}

/// The end of `text`, escaped, within `max_units` UTF-16 units (a leading `…` when cut). Never
/// cuts an entity or a character.
pub(super) fn escape_tail(text: &str, max_units: usize) -> String {
    let total: usize = text.chars().map(escaped_units).sum();
    if total <= max_units {
        return escape(text);
    }
    let budget = max_units.saturating_sub(utf16_len(ELLIPSIS));
    let mut used = 0;
    let mut start = text.len();
    for (i, c) in text.char_indices().rev() {
        let units = escaped_units(c);
        if used + units > budget {
            break;
        }
        used += units;
        start = i;
    }
    format!("{ELLIPSIS}{}", escape(&text[start..]))
}

/// Keeps the last `n` characters of `text`.
pub(super) fn keep_last_chars(text: &mut String, n: usize) {
    if n == 0 {
        text.clear();
        return;
    }
    if let Some((i, _)) = text.char_indices().rev().nth(n - 1) {
        text.drain(..i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_behave_like_a_terminal() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("10%\r50%\r100%\n", 5), "100%");
        assert_eq!(last_lines("crlf\r\nnext\r\n", 5), "crlf\nnext");
        assert_eq!(last_lines("\u{1b}[31mred\u{0}\tx", 5), "[31mred\tx");
        assert_eq!(last_lines("", 5), "");
    }

    #[test]
    fn the_tail_keeps_the_end_and_whole_entities() {
        assert_eq!(escape_tail("<a>", 100), "&lt;a&gt;");
        // "&lt;a&gt;" is 9 units; 6 hold "…" (1), "a" (1) and "&gt;" (4), not "&lt;".
        assert_eq!(escape_tail("<a>", 6), "…a&gt;");
        assert_eq!(escape_tail("<a>", 5), "…&gt;");
        // An emoji (2 units) is never split.
        assert_eq!(escape_tail("xy😀", 2), "…");
        assert_eq!(escape_tail("xy😀", 3), "…😀");
    }

    #[test]
    fn keeps_the_last_characters() {
        let mut s = "héllo😀".to_owned();
        keep_last_chars(&mut s, 3);
        assert_eq!(s, "lo😀");
        let mut s = "ab".to_owned();
        keep_last_chars(&mut s, 5);
        assert_eq!(s, "ab");
    }
}
