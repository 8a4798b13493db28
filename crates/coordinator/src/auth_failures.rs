//! Aggregation of failed authentications for the audit trail.
//!
//! Every refused token must be audited, but a flood of bad requests must not be able to fill the
//! disk. So per (reason, user) and minute the first failure writes an `auth.failed` event at once,
//! later ones in the same minute are only counted, and that count rides on the key's next event.

use std::collections::HashMap;
use std::sync::Mutex;

use domain::Id;

/// Length of an aggregation window, in milliseconds.
const WINDOW_MS: i64 = 60_000;

/// Upper bound on tracked keys; beyond it the oldest windows are forgotten (their counts are
/// lost, never their first event).
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Default)]
struct Window {
    /// Start of the current window.
    started_ms: i64,
    /// Failures in the current window that wrote no event.
    suppressed: u64,
}

/// Decides which failures write an audit event.
#[derive(Debug, Default)]
pub struct AuthFailures {
    windows: Mutex<HashMap<(&'static str, Option<Id>), Window>>,
}

impl AuthFailures {
    /// Records a failure at `now_ms`. Returns `Some(n)` when an event should be written now, `n`
    /// being the failures of the key's previous window that wrote none; `None` when this one is
    /// only counted.
    pub fn record(&self, reason: &'static str, user: Option<&Id>, now_ms: i64) -> Option<u64> {
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned lock must not silence the audit: write the event.
            return Some(0);
        };
        if windows.len() >= MAX_KEYS {
            windows.retain(|_, w| now_ms - w.started_ms < WINDOW_MS);
        }
        let window = windows.entry((reason, user.cloned())).or_default();
        if window.started_ms != 0 && now_ms - window.started_ms < WINDOW_MS {
            window.suppressed += 1;
            return None;
        }
        let previous = window.suppressed;
        *window = Window {
            started_ms: now_ms,
            suppressed: 0,
        };
        Some(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_key_and_minute_carrying_the_previous_count() {
        let f = AuthFailures::default();
        let t0 = 1_000_000;
        assert_eq!(f.record("unknown_token", None, t0), Some(0));
        for i in 1..=5 {
            assert_eq!(f.record("unknown_token", None, t0 + i), None);
        }
        let alice = Id::parse("usr_alice").unwrap();
        assert_eq!(
            f.record("expired_token", Some(&alice), t0 + 10),
            Some(0),
            "other keys are separate"
        );
        assert_eq!(f.record("unknown_token", None, t0 + WINDOW_MS), Some(5));
        assert_eq!(f.record("unknown_token", None, t0 + WINDOW_MS + 1), None);
    }
}
