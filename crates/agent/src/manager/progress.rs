//! Output as it happens: chunks from the sandbox → secrets redacted → coalesced into `output`
//! task events (stored, then published on the bus).
//!
//! Chunks are gathered for at most [`FLUSH_AFTER`] or [`FLUSH_BYTES`], so a command printing
//! thousands of short lines costs a few writes per second, not one per line. The sandbox forwards
//! only what it captures (up to the task's output cap), so the stored tail is bounded too.

use std::time::Duration;

use domain::Id;
use executor::redact::StreamRedactor;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::ExecutionManager;

/// Longest an output byte waits before it is stored and published.
pub const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// Output gathered beyond this is flushed at once.
pub const FLUSH_BYTES: usize = 16 * 1024;

impl ExecutionManager {
    /// Turns the sandbox's output chunks into `output` events until the sandbox closes the
    /// channel.
    pub(crate) async fn pump_output(
        &self,
        task_id: Id,
        mut chunks: UnboundedReceiver<Vec<u8>>,
        mut redactor: StreamRedactor,
    ) {
        let mut pending: Vec<u8> = Vec::new();
        let mut deadline: Option<Instant> = None;
        loop {
            let flush_at = deadline;
            tokio::select! {
                chunk = chunks.recv() => match chunk {
                    Some(chunk) => {
                        pending.extend(redactor.push(&chunk));
                        if deadline.is_none() && !pending.is_empty() {
                            deadline = Some(Instant::now() + FLUSH_AFTER);
                        }
                        if pending.len() >= FLUSH_BYTES {
                            self.flush_output(&task_id, &mut pending, false).await;
                            deadline = None;
                        }
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    self.flush_output(&task_id, &mut pending, false).await;
                    deadline = None;
                }
            }
        }
        pending.extend(redactor.finish());
        self.flush_output(&task_id, &mut pending, true).await;
    }

    /// Stores and publishes `pending` as one `output` event. Unless `last`, an incomplete UTF-8
    /// sequence at the end stays pending for the next chunk.
    async fn flush_output(&self, task_id: &Id, pending: &mut Vec<u8>, last: bool) {
        let keep = if last {
            0
        } else {
            incomplete_utf8_tail(pending)
        };
        let take = pending.len() - keep;
        if take == 0 {
            return;
        }
        let rest = pending.split_off(take);
        let text = String::from_utf8_lossy(pending).into_owned();
        *pending = rest;
        self.record_event(task_id, "output", serde_json::json!({ "text": text }))
            .await;
    }

    /// Stores a task event and publishes it; failures are logged (the result itself is stored
    /// separately, so a lost progress event loses no outcome).
    pub(crate) async fn record_event(&self, task_id: &Id, kind: &str, data: serde_json::Value) {
        let stored = async {
            let mut tx = self.db().begin().await?;
            let event = store::task_events::append(&mut tx, task_id, kind, data).await?;
            tx.commit().await?;
            Ok::<_, store::StoreError>(event)
        }
        .await;
        match stored {
            Ok(event) => self.publish(std::slice::from_ref(&event)).await,
            Err(e) => {
                tracing::warn!(task_id = %task_id, error = %e, "could not store a task event")
            }
        }
    }

    /// Publishes stored events on the bus for live watchers (who also read the database, so a
    /// lost publication only delays an event).
    pub(crate) async fn publish(&self, events: &[domain::TaskEvent]) {
        for event in events {
            if let Err(e) = self.bus().publish(event).await {
                tracing::debug!(task_id = %event.task_id, error = %e, "could not publish a task event");
            }
        }
    }
}

/// How many bytes at the end of `bytes` are the start of a UTF-8 sequence that is not complete
/// yet (0 when the end is complete or the bytes are invalid anyway).
fn incomplete_utf8_tail(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => bytes.len() - e.valid_up_to(),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::incomplete_utf8_tail;

    #[test]
    fn a_split_character_waits_for_its_other_half() {
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(incomplete_utf8_tail(b"abc"), 0);
        assert_eq!(incomplete_utf8_tail(&[b'a', euro[0]]), 1);
        assert_eq!(incomplete_utf8_tail(&[b'a', euro[0], euro[1]]), 2);
        assert_eq!(incomplete_utf8_tail(&[b'a', euro[0], euro[1], euro[2]]), 0);
        assert_eq!(
            incomplete_utf8_tail(&[0xff, b'a']),
            0,
            "invalid bytes are not held back"
        );
    }
}
