//! Verification of the whole audit chain (`agenticai audit verify`, `GET /v1/audit-events/verify`).
//!
//! Reads every event in seq order, a page at a time, and checks that:
//! - seqs run from 1 without gaps (a deleted row leaves one; a row cannot be inserted without
//!   renumbering the rows after it, which breaks their hashes);
//! - each `prev_hash` is the previous event's `hash` (reordering, inserting);
//! - each `hash` is [`crate::audit::event_hash`] of the event's own content (an edit of any field);
//! - `audit_head` names the last event (a deleted tail, or rows added without moving the head);
//! - with checkpoints (the newest [`audit_checkpoint::CHECKED_CHECKPOINTS`]): each one's
//!   signature holds, and the event it names exists and has the hash it names (a deleted tail
//!   even when `audit_head` was moved back; a chain rewritten with recomputed hashes).
//!
//! The first problem found, in seq order, is reported; verification stops there.
//!
//! Speed: events are hashed from their stored text without parsing `data` (the stored text is
//! exactly what was hashed when the event was appended), into one reused buffer, while another
//! task already fetches the next page. Only when that fast path disagrees is `data` parsed and
//! hashed the canonical way, so a row whose `data` was rewritten to equivalent JSON still
//! verifies.

use std::io::Write as _;

use domain::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{GENESIS_HASH, event_hash};
use crate::audit_checkpoint::{self, FoundCheckpoint, Verifier};
use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::objects::Objects;

/// Events read per query.
pub const PAGE_SIZE: i64 = 5000;

/// The outcome of [`verify`], shaped as `GET /v1/audit-events/verify` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Whether the chain (and every checkpoint) is intact.
    pub ok: bool,
    /// How many events were verified intact: all of them when `ok`, else those before
    /// `first_broken_seq`.
    pub events: u64,
    /// The seq where the chain is first broken.
    pub first_broken_seq: Option<i64>,
    /// Why, in one sentence.
    pub reason: Option<String>,
}

impl VerifyReport {
    fn intact(events: u64) -> VerifyReport {
        VerifyReport {
            ok: true,
            events,
            first_broken_seq: None,
            reason: None,
        }
    }

    fn broken(events: u64, seq: i64, reason: String) -> VerifyReport {
        VerifyReport {
            ok: false,
            events,
            first_broken_seq: Some(seq),
            reason: Some(reason),
        }
    }
}

/// Verifies the whole chain, and with `checkpoints` every signed checkpoint in the object store
/// against it. `Err` only when the check could not be made (database or object store
/// unreachable); tampering is an `Ok` report with `ok: false`.
pub async fn verify(db: &Db, checkpoints: Option<(&Objects, &Verifier)>) -> Result<VerifyReport> {
    let found = match checkpoints {
        Some((objects, verifier)) => audit_checkpoint::load_all(objects, verifier).await?,
        None => Vec::new(),
    };
    verify_against(db, found).await
}

/// [`verify`] against checkpoints already loaded and checked with
/// [`audit_checkpoint::load_all`] (oldest first), e.g. to verify repeatedly without reading and
/// checking the checkpoints each time.
pub async fn verify_against(db: &Db, checkpoints: Vec<FoundCheckpoint>) -> Result<VerifyReport> {
    let mut chain = Chain::new(checkpoints);
    // From the very first row, so that stray rows with seqs below 1 are seen too.
    let mut page = fetch_page(db, i64::MIN).await?;
    loop {
        if page.is_empty() {
            // The end, as far as we can see. A committed event moves `audit_head` in the same
            // transaction, so a head beyond the last event read is either an event committed
            // since (read on) or a missing tail.
            let (head_seq, head_hash) = audit_checkpoint::head(db).await?;
            if head_seq > chain.last_seq {
                page = fetch_page(db, chain.last_seq).await?;
                if !page.is_empty() {
                    continue;
                }
                return Ok(chain.broken(
                    chain.last_seq + 1,
                    format!(
                        "events after seq {} are missing: audit_head is at seq {head_seq}",
                        chain.last_seq
                    ),
                ));
            }
            return Ok(chain.finish(head_seq, &head_hash));
        }
        // Fetch the next page while this one is hashed, as a task of its own, so that another
        // thread drains sqlx's row channel meanwhile (unless the page's last seq does not even
        // read as a number: checking the page reports that).
        let next = page
            .last()
            .and_then(|row| row.try_get::<i64, _>(0).ok())
            .map(|after| {
                let db = db.clone();
                tokio::spawn(async move { fetch_page(&db, after).await })
            });
        if let Some(report) = chain.check_page(&page) {
            if let Some(next) = next {
                next.abort();
            }
            return Ok(report);
        }
        page = match next {
            Some(next) => next
                .await
                .map_err(|e| StoreError::Other(format!("audit page fetch failed: {e}")))??,
            None => fetch_page(db, chain.last_seq).await?,
        };
    }
}

/// The events after `after_seq` (`i64::MIN`: from the first row), oldest first.
async fn fetch_page(db: &Db, after_seq: i64) -> Result<Vec<AnyRow>> {
    let query = if after_seq == i64::MIN {
        sqlx::query(
            "SELECT seq, at, type, actor, task_id, data, prev_hash, hash FROM audit_events
             ORDER BY seq LIMIT $1",
        )
    } else {
        sqlx::query(
            "SELECT seq, at, type, actor, task_id, data, prev_hash, hash FROM audit_events
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
    };
    Ok(query.bind(PAGE_SIZE).fetch_all(db.pool()).await?)
}

/// The state of a verification between pages.
struct Chain {
    /// Events verified intact so far.
    events: u64,
    /// Seq of the last verified event (0 before the first).
    last_seq: i64,
    /// Hash of the last verified event (the genesis hash before the first).
    last_hash: String,
    /// Checkpoints not yet reached, oldest first.
    checkpoints: std::vec::IntoIter<FoundCheckpoint>,
    /// The next of them.
    next_checkpoint: Option<FoundCheckpoint>,
    /// The canonical encoding of the event being hashed (reused).
    buf: Vec<u8>,
}

impl Chain {
    fn new(mut found: Vec<FoundCheckpoint>) -> Chain {
        found.sort_by_key(|c| c.seq);
        let mut checkpoints = found.into_iter();
        let next_checkpoint = checkpoints.next();
        Chain {
            events: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
            checkpoints,
            next_checkpoint,
            buf: Vec::with_capacity(1024),
        }
    }

    /// A report of the chain broken first at `seq`; the events before it were verified intact.
    fn broken(&self, seq: i64, reason: String) -> VerifyReport {
        let before = u64::try_from(seq.saturating_sub(1)).unwrap_or(0);
        VerifyReport::broken(self.events.min(before), seq, reason)
    }

    /// Checks the rows of one page; a report when the chain breaks in it.
    fn check_page(&mut self, page: &[AnyRow]) -> Option<VerifyReport> {
        page.iter().find_map(|row| self.check_row(row))
    }

    fn check_row(&mut self, row: &AnyRow) -> Option<VerifyReport> {
        let expected = self.last_seq + 1;
        // A column of the wrong type or NULL (SQLite stores whatever it is given; a database
        // owner can drop constraints) is an edit like any other.
        let Ok(seq) = row.try_get::<i64, _>(0) else {
            return Some(self.broken(
                expected,
                format!(
                    "the row after seq {} has a seq that is not a number: the table was edited",
                    self.last_seq
                ),
            ));
        };
        if seq != expected {
            let reason = if seq < expected {
                format!("seq {seq} is out of range: the chain starts at seq 1")
            } else if seq == expected + 1 {
                format!(
                    "event {expected} is missing: the chain jumps from seq {} to {seq}",
                    self.last_seq
                )
            } else {
                format!(
                    "events {expected} to {} are missing: the chain jumps from seq {} to {seq}",
                    seq - 1,
                    self.last_seq
                )
            };
            // Any checkpoint before the gap was already checked; report the gap itself.
            return Some(self.broken(seq.min(expected), reason));
        }
        let columns = (|| -> std::result::Result<_, &'static str> {
            let bad = |name| move |_| name;
            Ok((
                row.try_get::<i64, _>(1).map_err(bad("at"))?,
                row.try_get::<String, _>(2).map_err(bad("type"))?,
                row.try_get::<Option<String>, _>(3).map_err(bad("actor"))?,
                row.try_get::<Option<String>, _>(4)
                    .map_err(bad("task_id"))?,
                row.try_get::<String, _>(5).map_err(bad("data"))?,
                row.try_get::<String, _>(6).map_err(bad("prev_hash"))?,
                row.try_get::<String, _>(7).map_err(bad("hash"))?,
            ))
        })();
        let (at, kind, actor, task_id, data, prev_hash, hash) = match columns {
            Ok(columns) => columns,
            Err(name) => {
                return Some(self.broken(
                    seq,
                    format!("{name} holds a value of the wrong type: the event was edited"),
                ));
            }
        };

        if prev_hash != self.last_hash {
            let reason = if seq == 1 {
                "prev_hash is not the chain's start (64 zeros)".to_owned()
            } else {
                format!("prev_hash does not match the hash of event {}", seq - 1)
            };
            return Some(self.broken(seq, reason));
        }
        let fields = Fields {
            seq,
            at,
            kind: &kind,
            actor: actor.as_deref(),
            task_id: task_id.as_deref(),
            data: &data,
            prev_hash: &prev_hash,
        };
        if let Err(reason) = check_hash(&mut self.buf, &fields, &hash) {
            return Some(self.broken(seq, reason));
        }
        if let Some(report) = self.check_checkpoints_at(seq, &hash) {
            return Some(report);
        }
        self.events += 1;
        self.last_seq = seq;
        self.last_hash = hash;
        None
    }

    /// Checks the checkpoints at `seq` (whose event has hash `hash` and is otherwise intact), and
    /// any invalid ones before it.
    fn check_checkpoints_at(&mut self, seq: i64, hash: &str) -> Option<VerifyReport> {
        while let Some(cp) = self.next_checkpoint.take_if(|cp| cp.seq <= seq) {
            self.next_checkpoint = self.checkpoints.next();
            match &cp.checked {
                Err(why) => {
                    return Some(self.broken(
                        cp.seq,
                        format!("checkpoint {} is forged or damaged: {why}", cp.key),
                    ));
                }
                Ok(signed) if cp.seq == seq && signed.hash != hash => {
                    return Some(self.broken(
                        seq,
                        format!(
                            "event {seq} does not match the signed checkpoint {}: the chain \
                             was rewritten up to here",
                            cp.key
                        ),
                    ));
                }
                // A valid checkpoint below seq 1 cannot exist (keys are unsigned numbers and
                // nothing signs seq 0); one at `seq` that matches is what we want.
                Ok(_) => {}
            }
        }
        None
    }

    /// The verdict after the last event: `audit_head` must name it, and no checkpoint may lie
    /// beyond it.
    fn finish(mut self, head_seq: i64, head_hash: &str) -> VerifyReport {
        if head_seq < self.last_seq {
            return self.broken(
                head_seq + 1,
                format!(
                    "audit_head is at seq {head_seq} but events run to seq {}: events after \
                     {head_seq} were added behind the head's back",
                    self.last_seq
                ),
            );
        }
        if head_hash != self.last_hash {
            return self.broken(
                self.last_seq.max(1),
                format!(
                    "audit_head's hash does not match the hash of event {}",
                    self.last_seq
                ),
            );
        }
        if let Some(cp) = self.next_checkpoint.take() {
            return match &cp.checked {
                Err(why) => self.broken(
                    cp.seq,
                    format!("checkpoint {} is forged or damaged: {why}", cp.key),
                ),
                Ok(_) => self.broken(
                    self.last_seq + 1,
                    format!(
                        "events after seq {} are missing: checkpoint at seq {} ({})",
                        self.last_seq, cp.seq, cp.key
                    ),
                ),
            };
        }
        VerifyReport::intact(self.events)
    }
}

/// An event's columns as stored.
struct Fields<'a> {
    seq: i64,
    at: i64,
    kind: &'a str,
    actor: Option<&'a str>,
    task_id: Option<&'a str>,
    /// The stored JSON text.
    data: &'a str,
    prev_hash: &'a str,
}

/// Whether `stored` is the hash of the event's content.
fn check_hash(buf: &mut Vec<u8>, f: &Fields<'_>, stored: &str) -> std::result::Result<(), String> {
    let digest = canonical_digest(buf, f);
    let mut hex_digest = [0u8; 64];
    // Cannot fail: the buffer is exactly twice the digest's length.
    let encoded = hex::encode_to_slice(digest, &mut hex_digest).is_ok();
    if encoded && hex_digest.as_slice() == stored.as_bytes() {
        return Ok(());
    }
    // Slow path: `data` may be stored in an equivalent but not canonical form.
    let data: serde_json::Value = serde_json::from_str(f.data)
        .map_err(|e| format!("data is not valid JSON ({e}): the event was edited"))?;
    let canonical = event_hash(
        f.seq,
        Timestamp::from_millis(f.at),
        f.kind,
        f.actor,
        f.task_id,
        &data,
        f.prev_hash,
    );
    if canonical == stored {
        Ok(())
    } else {
        Err("hash does not match the event's content: the event was edited".to_owned())
    }
}

/// SHA-256 of the canonical encoding [`event_hash`] uses (the compact JSON array
/// `[seq, at_ms, type, actor, task_id, data, prev_hash]`), with `data` taken as stored text.
fn canonical_digest(buf: &mut Vec<u8>, f: &Fields<'_>) -> [u8; 32] {
    buf.clear();
    // Writing to a Vec cannot fail.
    let _ = write!(buf, "[{},{},", f.seq, f.at);
    push_json_str(buf, f.kind);
    buf.push(b',');
    push_opt_json_str(buf, f.actor);
    buf.push(b',');
    push_opt_json_str(buf, f.task_id);
    buf.push(b',');
    buf.extend_from_slice(f.data.as_bytes());
    buf.push(b',');
    push_json_str(buf, f.prev_hash);
    buf.push(b']');
    Sha256::digest(buf.as_slice()).into()
}

fn push_opt_json_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(buf, s),
        None => buf.extend_from_slice(b"null"),
    }
}

/// A JSON string exactly as serde_json writes it.
fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(f: &Fields<'_>) -> String {
        hex::encode(canonical_digest(&mut Vec::new(), f))
    }

    #[test]
    fn the_fast_encoding_hashes_like_event_hash() {
        let datas = [
            serde_json::json!({}),
            serde_json::json!({"b": 1, "a": [1, 2.5, -3, null, true], "c": {"z": "\"q\"\\\n\u{1}"}}),
            serde_json::json!({"text": "héllo wörld ✓ \u{7f} \u{2028}", "n": 12345678901234i64}),
            serde_json::json!("just a string"),
            serde_json::json!(null),
        ];
        let kinds = ["task.created", "weird\"kind\\\t", "ünïcode"];
        let actors = [None, Some("usr_abc"), Some("new\nline")];
        for data in &datas {
            for kind in kinds {
                for actor in actors {
                    for task_id in [None, Some("tsk_1")] {
                        let text = crate::audit::canonical(data).to_string();
                        let f = Fields {
                            seq: 17,
                            at: 1_795_000_000_123,
                            kind,
                            actor,
                            task_id,
                            data: &text,
                            prev_hash: GENESIS_HASH,
                        };
                        let slow = event_hash(
                            17,
                            Timestamp::from_millis(1_795_000_000_123),
                            kind,
                            actor,
                            task_id,
                            data,
                            GENESIS_HASH,
                        );
                        assert_eq!(fast(&f), slow, "{kind:?} {actor:?} {data}");
                        assert_eq!(check_hash(&mut Vec::new(), &f, &slow), Ok(()));
                    }
                }
            }
        }
    }

    #[test]
    fn equivalent_but_reformatted_data_still_verifies_and_edits_do_not() {
        let data = serde_json::json!({"a": 1, "b": "x"});
        let hash = event_hash(
            1,
            Timestamp::from_millis(5),
            "t",
            None,
            None,
            &data,
            GENESIS_HASH,
        );
        let mut f = Fields {
            seq: 1,
            at: 5,
            kind: "t",
            actor: None,
            task_id: None,
            data: "{ \"b\": \"x\", \"a\": 1 }",
            prev_hash: GENESIS_HASH,
        };
        assert_eq!(check_hash(&mut Vec::new(), &f, &hash), Ok(()));
        f.data = "{\"a\":2,\"b\":\"x\"}";
        assert!(check_hash(&mut Vec::new(), &f, &hash).is_err());
        f.data = "{not json";
        assert!(check_hash(&mut Vec::new(), &f, &hash).is_err());
    }
}
