//! Per-user limit on inbound messages: at most `limit` messages per fixed window. Over the limit
//! a user gets exactly one polite reply per window, then silence, so a flood cannot make the bot
//! flood back.
//!
//! The counters live in this process (a deployment has one Telegram poller or webhook receiver
//! handling updates at a time); memory is bounded by forgetting finished windows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bound on tracked users; beyond it, finished windows are forgotten.
const MAX_KEYS: usize = 10_000;

/// What to do with one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: handle it.
    Allow,
    /// The first message over the limit in this window: do not handle it, say so once.
    Refuse,
    /// Over the limit and already told: ignore silently.
    Silent,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started_ms: i64,
    count: u32,
    told: bool,
}

/// Counts messages per key in fixed windows.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window_ms: i64,
    windows: Mutex<HashMap<i64, Window>>,
}

impl RateLimiter {
    /// At most `limit` messages per `window` for each key (`limit` 0: no limit).
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            limit,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict for one message of `key` at `now_ms` (milliseconds since the epoch).
    pub fn check(&self, key: i64, now_ms: i64) -> Verdict {
        if self.limit == 0 {
            return Verdict::Allow;
        }
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned lock must not stop the bot.
            return Verdict::Allow;
        };
        if windows.len() >= MAX_KEYS {
            let window_ms = self.window_ms;
            windows.retain(|_, w| now_ms - w.started_ms < window_ms);
        }
        let w = windows.entry(key).or_insert(Window {
            started_ms: now_ms,
            count: 0,
            told: false,
        });
        if now_ms - w.started_ms >= self.window_ms || now_ms < w.started_ms {
            *w = Window {
                started_ms: now_ms,
                count: 0,
                told: false,
            };
        }
        if w.count < self.limit {
            w.count += 1;
            return Verdict::Allow;
        }
        if w.told {
            Verdict::Silent
        } else {
            w.told = true;
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refusal_per_window_then_silence() {
        let r = RateLimiter::new(3, Duration::from_secs(60));
        let t0 = 1_000_000;
        for i in 0..3 {
            assert_eq!(r.check(7, t0 + i), Verdict::Allow);
        }
        assert_eq!(r.check(7, t0 + 10), Verdict::Refuse);
        assert_eq!(r.check(7, t0 + 11), Verdict::Silent);
        assert_eq!(r.check(7, t0 + 12), Verdict::Silent);
        assert_eq!(r.check(8, t0 + 12), Verdict::Allow, "keys are separate");
        assert_eq!(r.check(7, t0 + 60_000), Verdict::Allow, "a new window");
    }

    #[test]
    fn zero_means_unlimited() {
        let r = RateLimiter::new(0, Duration::from_secs(60));
        for i in 0..1000 {
            assert_eq!(r.check(1, i), Verdict::Allow);
        }
    }
}
