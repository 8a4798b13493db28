//! The Telegram channel of AgenticAI (CONTRACT.md "Telegram").
//!
//! * [`update`]: reading updates leniently; [`outgoing`]: what we send;
//! * [`api`]: the Bot API client (token never in a log line or error; 429 and 5xx retried; link
//!   previews always off);
//! * [`ingress`]: webhook and long polling, each update recorded once, offsets persisted;
//! * [`outbox`]: persisted replies, delivered at least once without duplicates;
//! * [`chat`] and [`commands`]: what a message or a button press does, through the coordinator
//!   (free text starts an agent task when the agent is on);
//! * [`relayed`], [`progress`] and [`notices`]: the periodic relays of tasks started from
//!   Telegram — live status messages, and the approvals and messages of agent tasks;
//! * [`render`]: HTML-escaped, size-limited text for Telegram.

pub mod api;
pub mod chat;
mod commands;
mod events;
pub mod handler;
pub mod ingress;
pub mod notices;
pub mod outbox;
pub mod outgoing;
pub mod progress;
pub mod ratelimit;
pub mod relayed;
pub mod render;
#[cfg(feature = "testing")]
pub mod testing;
pub mod update;
