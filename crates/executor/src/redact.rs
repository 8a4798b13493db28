//! Redaction of secret values from output.
//!
//! A [`Redactor`] knows the secrets injected into one task and replaces every occurrence of each
//! value in text with `[REDACTED:NAME]`. For values of at least [`MIN_ENCODED_LEN`] bytes it also
//! replaces their standard base64 encoding (with and without padding) and their hex encoding
//! (lower and upper case), the two ways a value most often leaks in disguise (`base64`, `xxd -p`,
//! HTTP basic auth of a whole value). A value with surrounding whitespace (a trailing newline
//! pasted from a file) is also matched without it.
//!
//! Values shorter than [`MIN_SECRET_LEN`] bytes are **not** redacted: a one- or two-character
//! "secret" would turn every output into noise while protecting nothing (it is guessable), so
//! such values are left alone and documented as not covered.
//!
//! Overlapping occurrences (two secrets sharing bytes, or a value next to its own encoding) are
//! merged so that no byte of any occurrence survives; the merged run is named after the secret
//! whose occurrence starts first (the longest one, when several start at the same byte).
//!
//! What is not covered: other encodings (URL-encoding, base64 of a larger string that contains
//! the value at an unaligned offset, compression, encryption), values split by the program
//! itself (printed one character per line), and values shorter than [`MIN_SECRET_LEN`].
//!
//! [`StreamRedactor`] does the same on a byte stream delivered in chunks: it holds back at most
//! the longest pattern's length minus one bytes, so a value split across chunk boundaries is
//! still caught, and its output is exactly what [`Redactor::redact_bytes`] gives on the whole
//! stream.

use std::sync::Arc;

/// Values shorter than this are not redacted (see the module docs).
pub const MIN_SECRET_LEN: usize = 4;
/// Values at least this long also have their base64 and hex encodings redacted.
pub const MIN_ENCODED_LEN: usize = 8;

/// One byte string to replace, and the secret it stands for.
struct Pattern {
    bytes: Vec<u8>,
    /// Index into `Patterns::tokens`.
    token: usize,
}

struct Patterns {
    /// Longest first, so the first match at a position is the longest.
    list: Vec<Pattern>,
    /// `[REDACTED:NAME]` per secret.
    tokens: Vec<Vec<u8>>,
    /// For each byte value, whether some pattern starts with it.
    first: [bool; 256],
    longest: usize,
}

impl Patterns {
    /// The longest pattern that occurs at `at` in `buf` (fully inside it): (length, token).
    fn longest_at(&self, buf: &[u8], at: usize) -> Option<(usize, usize)> {
        if !self.first[usize::from(buf[at])] {
            return None;
        }
        let rest = &buf[at..];
        self.list
            .iter()
            .find(|p| rest.starts_with(&p.bytes))
            .map(|p| (p.bytes.len(), p.token))
    }

    /// Redacts what can be decided of `buf` into `out`: positions before `limit` are decided
    /// (every pattern starting there fits inside `buf`, or `buf` is the whole input). Returns
    /// how many bytes of `buf` are done; the rest must be scanned again with more input.
    fn scan(&self, buf: &[u8], limit: usize, out: &mut Vec<u8>) -> usize {
        let mut plain_from = 0;
        let mut i = 0;
        while i < limit {
            let Some((len, token)) = self.longest_at(buf, i) else {
                i += 1;
                continue;
            };
            // Merge every occurrence that overlaps this one into one run.
            let start = i;
            let mut end = i + len;
            let mut j = i + 1;
            while j < end && j < limit {
                if let Some((l, _)) = self.longest_at(buf, j) {
                    end = end.max(j + l);
                }
                j += 1;
            }
            if j < end {
                // The run reaches bytes not yet decidable: wait for more input.
                out.extend_from_slice(&buf[plain_from..start]);
                return start;
            }
            out.extend_from_slice(&buf[plain_from..start]);
            out.extend_from_slice(&self.tokens[token]);
            plain_from = end;
            i = end;
        }
        let done = i.max(plain_from);
        out.extend_from_slice(&buf[plain_from..done]);
        done
    }
}

/// Replaces the values of one task's secrets in text (see the module docs).
#[derive(Clone)]
pub struct Redactor {
    patterns: Arc<Patterns>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.list.len())
            .finish()
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * k)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

fn hex(bytes: &[u8], upper: bool) -> Vec<u8> {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    bytes
        .iter()
        .flat_map(|b| [digits[usize::from(b >> 4)], digits[usize::from(b & 15)]])
        .collect()
}

impl Redactor {
    /// A redactor for `secrets` as `(name, value)` pairs. Values shorter than
    /// [`MIN_SECRET_LEN`] bytes are ignored.
    pub fn new(secrets: &[(String, String)]) -> Redactor {
        let mut tokens: Vec<Vec<u8>> = Vec::new();
        let mut list: Vec<Pattern> = Vec::new();
        for (name, value) in secrets {
            let token = tokens.len();
            tokens.push(format!("[REDACTED:{name}]").into_bytes());
            let mut values = vec![value.as_bytes()];
            let trimmed = value.trim();
            if trimmed.len() != value.len() {
                values.push(trimmed.as_bytes());
            }
            for v in values {
                if v.len() < MIN_SECRET_LEN {
                    continue;
                }
                let mut forms = vec![v.to_vec()];
                if v.len() >= MIN_ENCODED_LEN {
                    let b64 = base64(v);
                    let unpadded = b64
                        .iter()
                        .copied()
                        .take_while(|&c| c != b'=')
                        .collect::<Vec<u8>>();
                    forms.extend([b64, unpadded, hex(v, false), hex(v, true)]);
                }
                for bytes in forms {
                    if !list.iter().any(|p| p.bytes == bytes) {
                        list.push(Pattern { bytes, token });
                    }
                }
            }
        }
        // Longest first; stable, so the first secret given wins among equal patterns.
        list.sort_by_key(|p| std::cmp::Reverse(p.bytes.len()));
        let mut first = [false; 256];
        for p in &list {
            first[usize::from(p.bytes[0])] = true;
        }
        let longest = list.first().map_or(0, |p| p.bytes.len());
        Redactor {
            patterns: Arc::new(Patterns {
                list,
                tokens,
                first,
                longest,
            }),
        }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.patterns.list.is_empty()
    }

    /// `text` with every secret value (and encoding) replaced by `[REDACTED:NAME]`.
    pub fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        let out = self.redact_bytes(text.as_bytes());
        // Patterns are whole UTF-8 strings and tokens are ASCII, so this is still UTF-8.
        match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// Redacts raw bytes (output that may not be UTF-8).
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        self.patterns.scan(bytes, bytes.len(), &mut out);
        out
    }

    /// A streaming redactor over the same secrets.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            patterns: Arc::clone(&self.patterns),
            held: Vec::new(),
        }
    }
}

/// Redacts a byte stream delivered in chunks (see the module docs).
pub struct StreamRedactor {
    patterns: Arc<Patterns>,
    held: Vec<u8>,
}

impl std::fmt::Debug for StreamRedactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRedactor")
            .field("held_bytes", &self.held.len())
            .finish()
    }
}

impl StreamRedactor {
    /// A streaming redactor for `secrets` (see [`Redactor::new`]).
    pub fn new(secrets: &[(String, String)]) -> StreamRedactor {
        Redactor::new(secrets).stream()
    }

    /// Takes the next chunk; returns the redacted bytes that are final. Bytes that could still
    /// be the start of a secret are held until the next chunk or [`StreamRedactor::finish`].
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.patterns.list.is_empty() {
            return chunk.to_vec();
        }
        self.held.extend_from_slice(chunk);
        let limit = self
            .held
            .len()
            .saturating_sub(self.patterns.longest.saturating_sub(1));
        let mut out = Vec::with_capacity(self.held.len());
        let done = self.patterns.scan(&self.held, limit, &mut out);
        self.held.drain(..done);
        out
    }

    /// The end of the stream: everything still held, redacted.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.held.len());
        self.patterns.scan(&self.held, self.held.len(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), b"");
        assert_eq!(base64(b"f"), b"Zg==");
        assert_eq!(base64(b"fo"), b"Zm8=");
        assert_eq!(base64(b"foo"), b"Zm9v");
        assert_eq!(base64(b"foobar"), b"Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), b"+/8=");
        assert_eq!(hex(&[0x0a, 0xff], false), b"0aff");
        assert_eq!(hex(&[0x0a, 0xff], true), b"0AFF");
    }
}
