//! Persistence for AgenticAI.
//!
//! The database (SQLite by default, Postgres for scale) is the source of truth for work; the bus
//! (in-process by default, Redis Streams when configured) carries wake-ups and progress events;
//! the object store (local filesystem by default, S3 when configured) keeps checkpoints and
//! artifacts. The same code serves both backends of each.

pub mod bus;
pub mod objects;

pub mod agent_transcripts;
pub mod approvals;
pub mod audit;
pub mod audit_checkpoint;
pub mod audit_verify;
mod db;
pub mod environments;
mod error;
pub mod invites;
pub mod kv;
mod migrate;
pub mod org;
pub mod outbox;
pub mod policy;
mod rows;
pub mod secrets;
pub mod task_events;
pub mod tasks;
pub mod telegram;
#[cfg(feature = "testing")]
pub mod testing;
pub mod users;

pub use db::{Db, Dialect, Tx};
pub use error::{Result, StoreError};
