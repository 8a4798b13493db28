//! Undoing the encodings an attacker hides instructions in: HTML entities, percent-encoding,
//! base64 (standard and URL-safe), hex and `\x` escapes. Everything here is lenient and bounded:
//! a blob that does not decode to readable text is simply not text.

/// `s` with the common HTML entities decoded (`&lt;` `&gt;` `&amp;` `&quot;` `&apos;` `&#39;`
/// `&#NN;` `&#xNN;`); other `&` sequences are kept.
pub fn html_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.char_indices().take(12).find(|&(_, c)| c == ';');
        let decoded = end.and_then(|(e, _)| entity(&rest[1..e]).map(|c| (c, e)));
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "vert" | "verbar" => '|',
        "lsqb" | "lbrack" => '[',
        "rsqb" | "rbrack" => ']',
        _ => {
            let num = name.strip_prefix('#')?;
            let v = match num.strip_prefix(['x', 'X']) {
                Some(h) => u32::from_str_radix(h, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(v)?
        }
    })
}

/// `s` with JSON / JavaScript backslash escapes decoded (`\uXXXX` including surrogate pairs,
/// `\n`, `\t`, `\"`, `\\`, `\/`), when it holds any `\u` or `\n` escape; `None` otherwise.
/// JSON-encoded text hides non-ASCII characters and line breaks from a plain look.
pub fn backslash_escapes(s: &str) -> Option<String> {
    if !["\\u", "\\n", "\\\""].iter().any(|e| s.contains(e)) {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut pending_high: Option<u32> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('u') => {
                chars.next();
                let hex: String = chars.clone().take(4).collect();
                match (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                {
                    Some(v) => {
                        for _ in 0..4 {
                            chars.next();
                        }
                        match (pending_high.take(), v) {
                            (None, 0xD800..=0xDBFF) => pending_high = Some(v),
                            (Some(hi), 0xDC00..=0xDFFF) => {
                                let cp = 0x10000 + ((hi - 0xD800) << 10) + (v - 0xDC00);
                                out.extend(char::from_u32(cp));
                            }
                            (_, v) => out.extend(char::from_u32(v)),
                        }
                        continue;
                    }
                    None => out.push_str("\\u"),
                }
            }
            Some('n') => {
                chars.next();
                out.push('\n');
            }
            Some('t') => {
                chars.next();
                out.push('\t');
            }
            Some(e @ ('"' | '\\' | '/')) => {
                chars.next();
                out.push(e);
            }
            _ => out.push('\\'),
        }
    }
    Some(out)
}

/// `s` with `%XX` escapes decoded, when it holds at least three of them; `None` otherwise.
pub fn percent(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let count = b
        .windows(3)
        .filter(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
        .count();
    if count < 3 {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        if b[i] == b'+' {
            out.push(b' ');
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes standard or URL-safe base64, padding optional. `None` when it is not base64.
pub fn base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Decodes a run of hex digit pairs, with or without `\x` prefixes.
pub fn hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .replace("\\x", "")
        .replace("\\X", "")
        .bytes()
        .map(hex_val)
        .collect::<Option<_>>()?;
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// The bytes as text, when they are UTF-8 and nearly all printable (a decoded blob of random
/// bytes — a hash, a key, compressed data — is not text and is ignored).
pub fn readable(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 8 {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let total = text.chars().count();
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        .count();
    let letters = text
        .chars()
        .filter(|c| c.is_alphabetic() || *c == ' ')
        .count();
    (printable * 100 >= total * 95 && letters * 2 >= total).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders() {
        assert_eq!(
            html_entities("&lt;|im_start|&gt; &amp;x &#65;&#x42; &foo"),
            "<|im_start|> &x AB &foo"
        );
        assert_eq!(percent("a%20b%20c%3Dd").as_deref(), Some("a b c=d"));
        assert_eq!(percent("100%"), None);
        assert_eq!(
            backslash_escapes(r#"a\u0435\ud83d\ude80\n\"x\""#).as_deref(),
            Some("a\u{435}\u{1F680}\n\"x\"")
        );
        assert_eq!(
            base64("aGVsbG8gd29ybGQ=").as_deref(),
            Some(&b"hello world"[..])
        );
        assert_eq!(hex("\\x68\\x69").as_deref(), Some(&b"hi"[..]));
        assert_eq!(
            readable(b"hello there world").as_deref(),
            Some("hello there world")
        );
        assert_eq!(
            readable(&[0x8f, 0x01, 0xff, 0x00, 0x12, 0x34, 0x56, 0x78, 0x9a]),
            None
        );
    }
}
