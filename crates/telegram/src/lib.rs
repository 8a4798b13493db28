//! The Telegram channel of AgenticAI (CONTRACT.md "Telegram").
//!
//! * [`update`]: reading updates leniently; [`outgoing`]: what we send;
//! * [`api`]: the Bot API client (token never in a log line or error; 429 and 5xx retried);
//! * [`ingress`]: webhook and long polling, each update recorded once, offsets persisted;
//! * [`outbox`]: persisted replies, delivered at least once without duplicates;
//! * [`chat`] and [`commands`]: what a message or a button press does, through the coordinator;
//! * [`render`]: HTML-escaped, size-limited text for Telegram.

pub mod api;
pub mod chat;
mod commands;
pub mod handler;
pub mod ingress;
pub mod outbox;
pub mod outgoing;
pub mod progress;
pub mod ratelimit;
pub mod render;
#[cfg(feature = "testing")]
pub mod testing;
pub mod update;
