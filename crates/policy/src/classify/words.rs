//! Shell words as the shell will see them, as far as that can be known before running.
//!
//! Rules must match what bash executes, not how it was written: `r''m`, `"r"m`, `\rm` and
//! `$'\x72m'` are all `rm`, and `git pu\sh` is `git push`. So every word is unquoted and
//! unescaped here before any lookup. Parts whose value only exists at run time (`$VAR`,
//! `$(cmd)`, `$((…))`) are kept as a placeholder and the word is marked dynamic: a dynamic word
//! never matches a literal name, and path checks treat the placeholder as a glob.

use tree_sitter::Node;

use crate::normalize::hidden_kind;

/// Stands for a part of a word whose value is only known at run time.
pub(crate) const DYN: char = '\u{FFFC}';

/// One resolved shell word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Word {
    /// The literal value, with [`DYN`] for run-time parts.
    pub text: String,
    /// Some part is only known at run time.
    pub dynamic: bool,
    /// Some part is a command substitution.
    pub subst: bool,
    /// The word is a process substitution (`<(…)`): a pipe path at run time.
    pub procsubst: bool,
    /// No part was quoted or escaped: brace expansion applies.
    pub bare: bool,
    /// The literal value holds invisible characters (e.g. from `$'\u200b'`).
    pub hidden: bool,
    /// The word as written.
    pub source: String,
}

impl Word {
    /// A literal word (for argv built by the classifier itself).
    pub(crate) fn lit(s: &str) -> Word {
        Word {
            text: s.to_owned(),
            bare: true,
            source: s.to_owned(),
            ..Word::default()
        }
    }

    /// The literal value, when there is no run-time part.
    pub(crate) fn literal(&self) -> Option<&str> {
        (!self.dynamic).then_some(self.text.as_str())
    }

    /// Whether the word starts with a run-time part (so it could be anything, an option too).
    pub(crate) fn starts_dynamic(&self) -> bool {
        self.text.starts_with(DYN) || (self.dynamic && self.text.is_empty())
    }
}

/// Resolves a word-like node (word, string, raw_string, concatenation, expansion …).
pub(crate) fn resolve(node: Node, src: &str) -> Word {
    let mut w = Word {
        bare: true,
        source: node_text(node, src).to_owned(),
        ..Word::default()
    };
    push_node(&mut w, node, src, 0);
    if w.text.chars().any(|c| hidden_kind(c).is_some()) {
        w.hidden = true;
    }
    w
}

/// The source text of a node ("" if the range is not valid UTF-8 boundaries).
pub(crate) fn node_text<'s>(node: Node, src: &'s str) -> &'s str {
    src.get(node.start_byte()..node.end_byte()).unwrap_or("")
}

fn push_dyn(w: &mut Word) {
    w.dynamic = true;
    w.text.push(DYN);
}

fn push_node(w: &mut Word, node: Node, src: &str, depth: usize) {
    if depth > 64 {
        push_dyn(w);
        return;
    }
    let text = node_text(node, src);
    match node.kind() {
        "word" | "command_name" if node.named_child_count() == 0 => {
            if text.contains('\\') {
                w.bare = false;
            }
            unescape_unquoted(&mut w.text, text);
        }
        "number"
        | "extglob_pattern"
        | "regex"
        | "test_operator"
        | "variable_name"
        | "special_variable_name"
        | "file_descriptor"
        | "heredoc_content"
        | "string_content"
            if node.named_child_count() == 0 =>
        {
            if node.kind() == "string_content" {
                unescape_double(&mut w.text, text);
            } else {
                w.text.push_str(text);
            }
        }
        "raw_string" => {
            w.bare = false;
            let inner = text
                .strip_prefix('\'')
                .and_then(|t| t.strip_suffix('\''))
                .unwrap_or(text);
            w.text.push_str(inner);
        }
        "ansi_c_string" => {
            w.bare = false;
            let inner = text
                .strip_prefix("$'")
                .and_then(|t| t.strip_suffix('\''))
                .unwrap_or(text);
            decode_ansi_c(&mut w.text, inner);
        }
        "string" | "translated_string" => {
            w.bare = false;
            let mut c = node.walk();
            for child in node.named_children(&mut c) {
                push_node(w, child, src, depth + 1);
            }
        }
        "concatenation" | "command_name" => {
            let mut c = node.walk();
            for child in node.named_children(&mut c) {
                push_node(w, child, src, depth + 1);
            }
        }
        "simple_expansion" | "expansion" => {
            // $HOME and $PWD are predictable; their value is where they point.
            let name = text.trim_start_matches('$').trim_start_matches('{');
            let name = name.trim_end_matches('}');
            match name {
                "HOME" => w.text.push('~'),
                "PWD" => w.text.push('.'),
                _ => {
                    push_dyn(w);
                    if contains_kind(node, "command_substitution", 0) {
                        w.subst = true;
                    }
                }
            }
        }
        "command_substitution" => {
            w.subst = true;
            push_dyn(w);
        }
        "process_substitution" => {
            w.procsubst = true;
            push_dyn(w);
        }
        "arithmetic_expansion" | "brace_expression" | "array" | "subscript" => {
            if contains_kind(node, "command_substitution", 0) {
                w.subst = true;
            }
            push_dyn(w);
        }
        _ => {
            // Anything else that ends up in a word position is not understood literally.
            push_dyn(w);
        }
    }
}

/// Whether `node` has a descendant of `kind`.
pub(crate) fn contains_kind(node: Node, kind: &str, depth: usize) -> bool {
    if depth > 64 {
        return true;
    }
    let mut c = node.walk();
    for child in node.named_children(&mut c) {
        if child.kind() == kind || contains_kind(child, kind, depth + 1) {
            return true;
        }
    }
    false
}

/// Unquoted word: `\x` is `x`, backslash-newline disappears.
fn unescape_unquoted(out: &mut String, s: &str) {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\n') | None => {}
                Some(n) => out.push(n),
            }
        } else {
            out.push(c);
        }
    }
}

/// Inside double quotes only `\$ \` \" \\` and backslash-newline are escapes.
fn unescape_double(out: &mut String, s: &str) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('$' | '`' | '"' | '\\') => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                Some('\n') => {
                    chars.next();
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
}

/// `$'…'` escapes.
fn decode_ansi_c(out: &mut String, s: &str) {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = chars.get(i) else {
            out.push('\\');
            break;
        };
        i += 1;
        let simple = match e {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'e' | 'E' => Some('\u{1b}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' | '\'' | '"' | '?' => Some(e),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (radix, max) = match e {
            '0'..='7' => {
                i -= 1;
                (8, 3)
            }
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            'c' => {
                if let Some(&n) = chars.get(i) {
                    i += 1;
                    out.push(char::from_u32(u32::from(n) & 0x1f).unwrap_or('?'));
                }
                continue;
            }
            other => {
                out.push('\\');
                out.push(other);
                continue;
            }
        };
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            match chars.get(i).and_then(|d| d.to_digit(radix)) {
                Some(d) => {
                    v = v.saturating_mul(radix).saturating_add(d);
                    i += 1;
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 {
            out.push('\\');
            out.push(e);
        } else {
            out.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
        }
    }
}

/// Bash brace expansion of one unquoted word, one level (`{rm,-rf,/}`, `/{etc,usr}`).
/// Returns `None` when the word has no `{a,b}` group. Capped at 64 results.
pub(crate) fn brace_expand(s: &str) -> Option<Vec<String>> {
    let open = s.find('{')?;
    let close = open + s.get(open..)?.find('}')?;
    let inner = s.get(open + 1..close)?;
    if !inner.contains(',') || inner.contains('{') {
        return None;
    }
    let (pre, post) = (s.get(..open)?, s.get(close + 1..)?);
    let mut out = Vec::new();
    for part in inner.split(',').take(64) {
        let w = format!("{pre}{part}{post}");
        match brace_expand(&w) {
            Some(more) => out.extend(more.into_iter().take(64)),
            None => out.push(w),
        }
        if out.len() >= 64 {
            break;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_c() {
        let mut s = String::new();
        decode_ansi_c(&mut s, r"\x72\155\u0041\n\'");
        assert_eq!(s, "rmA\n'");
    }

    #[test]
    fn braces() {
        assert_eq!(
            brace_expand("{rm,-rf,/}"),
            Some(vec!["rm".into(), "-rf".into(), "/".into()])
        );
        assert_eq!(
            brace_expand("/{etc,usr}/x"),
            Some(vec!["/etc/x".into(), "/usr/x".into()])
        );
        assert_eq!(brace_expand("{}"), None);
    }
}
