//! Webhook mode: Telegram POSTs each update to `/telegram/webhook` with the secret we gave
//! `setWebhook` in `X-Telegram-Bot-Api-Secret-Token`. The secret is compared in constant time;
//! the update is recorded before the 200 and handled after it (in a spawned task), so Telegram
//! never waits for our work and an acknowledged update is never lost.
//!
//! The body size limit is the server's (1 MiB for every route).

use std::sync::Arc;

use super::Ingress;
use crate::handler::Handler;

/// The header Telegram puts the webhook secret in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// How to answer a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// 200: recorded (and being handled), a duplicate, or not an update at all (acknowledged so
    /// Telegram does not redeliver garbage forever).
    Accepted,
    /// 401: the secret header is missing or wrong.
    Unauthorized,
    /// 503: the update could not be recorded; Telegram will deliver it again.
    Unavailable,
}

impl WebhookOutcome {
    /// The HTTP status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            WebhookOutcome::Accepted => 200,
            WebhookOutcome::Unauthorized => 401,
            WebhookOutcome::Unavailable => 503,
        }
    }
}

/// Compares two secrets in time that depends only on their lengths' maximum, not on where they
/// differ.
pub fn secrets_match(given: &[u8], expected: &[u8]) -> bool {
    let len = given.len().max(expected.len());
    let mut diff = u8::from(given.len() != expected.len());
    for i in 0..len {
        let a = given.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        diff |= a ^ b;
    }
    std::hint::black_box(diff) == 0
}

impl<H: Handler> Ingress<H> {
    /// Answers one webhook request: checks `secret_header` against `expected` (an empty
    /// `expected` refuses everything), records the update, spawns its handling.
    pub async fn webhook(
        &self,
        secret_header: Option<&str>,
        expected: &str,
        body: &[u8],
    ) -> WebhookOutcome {
        let authorized = !expected.is_empty()
            && secret_header.is_some_and(|s| secrets_match(s.as_bytes(), expected.as_bytes()));
        if !authorized {
            tracing::warn!("telegram: webhook call with a missing or wrong secret");
            return WebhookOutcome::Unauthorized;
        }
        let raw: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                tracing::warn!(
                    bytes = body.len(),
                    "telegram: webhook body is not JSON; ignored"
                );
                return WebhookOutcome::Accepted;
            }
        };
        match self.record(&raw).await {
            Ok(Some(update)) => {
                // Bounded: under a flood, updates without a slot stay recorded and are handled
                // by the redelivery loop instead of piling up tasks here.
                let Ok(slot) = Arc::clone(&self.inner.webhook_slots).try_acquire_owned() else {
                    tracing::warn!(
                        update_id = update.update_id,
                        "telegram: webhook handlers busy; the update waits for redelivery"
                    );
                    return WebhookOutcome::Accepted;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    let id = update.update_id;
                    if let Err(e) = this.handle_recorded(update).await {
                        tracing::warn!(update_id = id, error = %e, "telegram: handling a webhook update failed; will retry");
                    }
                    drop(slot);
                });
                WebhookOutcome::Accepted
            }
            Ok(None) => WebhookOutcome::Accepted,
            Err(e) => {
                tracing::warn!(error = %e, "telegram: cannot record a webhook update");
                WebhookOutcome::Unavailable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::secrets_match;

    #[test]
    fn secrets_are_compared_whole() {
        assert!(secrets_match(b"abc", b"abc"));
        assert!(!secrets_match(b"abd", b"abc"));
        assert!(!secrets_match(b"ab", b"abc"));
        assert!(!secrets_match(b"abcd", b"abc"));
        assert!(!secrets_match(b"", b"abc"));
    }
}
