//! Redaction of secret values, whole and streamed: every split of the stream gives exactly the
//! whole-text result, and no value survives.

use executor::redact::{Redactor, StreamRedactor};
use proptest::prelude::*;

fn secrets(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn values_and_their_encodings_are_replaced() {
    let r = Redactor::new(&secrets(&[("TOKEN", "hunter2-secret"), ("PIN", "1234")]));
    assert_eq!(
        r.redact("token=hunter2-secret pin=1234 again hunter2-secret"),
        "token=[REDACTED:TOKEN] pin=[REDACTED:PIN] again [REDACTED:TOKEN]"
    );
    // base64 (padded and not) and hex of values of 8 bytes or more.
    let b64 = "aHVudGVyMi1zZWNyZXQ="; // base64("hunter2-secret")
    assert_eq!(r.redact(&format!("x {b64} y")), "x [REDACTED:TOKEN] y");
    assert_eq!(r.redact("x aHVudGVyMi1zZWNyZXQ y"), "x [REDACTED:TOKEN] y");
    let hex = "68756e746572322d736563726574";
    assert_eq!(r.redact(hex), "[REDACTED:TOKEN]");
    assert_eq!(r.redact(&hex.to_uppercase()), "[REDACTED:TOKEN]");
    // A 4-byte value is redacted, but not its encodings.
    assert_eq!(r.redact("MTIzNA== 31323334"), "MTIzNA== 31323334");
}

#[test]
fn very_short_values_are_ignored_and_whitespace_is_trimmed() {
    let r = Redactor::new(&secrets(&[
        ("A", "x"),
        ("B", "abc"),
        ("C", "from-a-file\n"),
    ]));
    assert_eq!(r.redact("x abc xyz"), "x abc xyz");
    assert_eq!(r.redact("v=from-a-file."), "v=[REDACTED:C].");
    assert!(Redactor::new(&secrets(&[("A", "")])).is_empty());
}

#[test]
fn overlapping_values_leave_no_byte_behind() {
    let r = Redactor::new(&secrets(&[("A", "abcd1234"), ("B", "1234wxyz")]));
    assert_eq!(r.redact("<abcd1234wxyz>"), "<[REDACTED:A]>");
    assert_eq!(r.redact("<1234wxyz>"), "<[REDACTED:B]>");
    // Adjacent but not overlapping: two tokens.
    assert_eq!(r.redact("abcd12341234wxyz"), "[REDACTED:A][REDACTED:B]");
}

#[test]
fn non_utf8_output_passes_through() {
    let r = Redactor::new(&secrets(&[("K", "key-value-1")]));
    assert_eq!(
        r.redact_bytes(b"\xff\xfekey-value-1\x00"),
        b"\xff\xfe[REDACTED:K]\x00".to_vec()
    );
    assert_eq!(r.redact("héllo key-value-1 ✓"), "héllo [REDACTED:K] ✓");
}

fn streamed(r: &Redactor, chunks: &[&[u8]]) -> Vec<u8> {
    let mut s = r.stream();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(s.push(c));
    }
    out.extend(s.finish());
    out
}

#[test]
fn every_two_split_points_give_the_whole_text_result() {
    let r = Redactor::new(&secrets(&[
        ("TOKEN", "hunter2-secret"),
        ("OTHER", "secret-sauce"),
        ("PIN", "9876"),
    ]));
    let text = "a hunter2-secret-sauce b 9876 aHVudGVyMi1zZWNyZXQ= 68756e746572322d736563726574 \
                hunter2-secre hunter2-secret";
    let bytes = text.as_bytes();
    let whole = r.redact_bytes(bytes);
    assert!(
        !String::from_utf8_lossy(&whole).contains("hunter2-secret"),
        "{}",
        String::from_utf8_lossy(&whole)
    );
    for i in 0..=bytes.len() {
        for j in i..=bytes.len() {
            let out = streamed(&r, &[&bytes[..i], &bytes[i..j], &bytes[j..]]);
            assert_eq!(out, whole, "split at {i} and {j}");
        }
    }
    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(streamed(&r, &one_by_one), whole);
}

#[test]
fn a_stream_without_secrets_passes_straight_through() {
    let mut s = StreamRedactor::new(&[]);
    assert_eq!(s.push(b"abc"), b"abc");
    assert_eq!(s.finish(), b"");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn streaming_equals_whole_and_never_leaks(
        values in prop::collection::vec("[a-z0-9]{4,12}", 1..4),
        pieces in prop::collection::vec(("[a-z0-9 \n]{0,12}", any::<prop::sample::Index>()), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let named: Vec<(String, String)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("S{i}"), v.clone()))
            .collect();
        let r = Redactor::new(&named);
        let mut text = String::new();
        for (filler, which) in &pieces {
            text.push_str(filler);
            text.push_str(which.get(values.as_slice()).as_str());
        }
        let bytes = text.as_bytes();
        let whole = r.redact_bytes(bytes);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut from = 0;
        for p in points {
            chunks.push(&bytes[from..p]);
            from = p;
        }
        chunks.push(&bytes[from..]);
        prop_assert_eq!(streamed(&r, &chunks), whole.clone());
        let out = String::from_utf8_lossy(&whole).into_owned();
        for v in &values {
            prop_assert!(!out.contains(v.as_str()), "{} survives in {}", v, out);
        }
    }
}
