//! Audit events as CONTRACT.md's AuditEvent JSON.

use serde::{Deserialize, Serialize};

use crate::{Id, Timestamp};

/// One entry of the append-only, hash-chained audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    pub at: Timestamp,
    /// Dotted type, e.g. `task.created`, `user.created`, `auth.failed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user who caused it, if any.
    pub actor: Option<Id>,
    pub task_id: Option<Id>,
    /// Type-specific details; never secrets.
    pub data: serde_json::Value,
    /// `hash` of the previous event (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over this event's canonical encoding, including `prev_hash`.
    pub hash: String,
}
