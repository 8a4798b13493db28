//! The audit trail's append: the one function through which every state change records itself.
//!
//! Each event is chained to the previous one by SHA-256 over a canonical encoding, in the same
//! transaction as the change it records: if the event cannot be written, the change does not
//! happen. Appends read the chain's tip under a lock, so concurrent appends queue up and the chain
//! never forks; a trigger moves the tip with every insert. Verification and signed checkpoints build on [`event_hash`].

use domain::{AuditEvent, Id, Timestamp};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};

use crate::db::{Dialect, Tx};
use crate::error::{Result, StoreError};
use crate::rows;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    /// Dotted type, e.g. `task.created`.
    pub kind: &'a str,
    /// Who caused it.
    pub actor: Option<&'a Id>,
    /// The task it concerns.
    pub task_id: Option<&'a Id>,
    /// Details. Never put secrets here.
    pub data: serde_json::Value,
}

impl<'a> NewAuditEvent<'a> {
    /// An event of `kind` with the given details.
    pub fn new(kind: &'a str, data: serde_json::Value) -> Self {
        NewAuditEvent {
            kind,
            actor: None,
            task_id: None,
            data,
        }
    }

    /// Sets the acting user.
    pub fn actor(mut self, actor: &'a Id) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sets the acting user when there is one (the CLI acts as the operator, with no user).
    pub fn by(mut self, actor: Option<&'a Id>) -> Self {
        self.actor = actor;
        self
    }

    /// Sets the task concerned.
    pub fn task(mut self, task_id: &'a Id) -> Self {
        self.task_id = Some(task_id);
        self
    }
}

/// `value` with every object's keys in sorted order, whatever serde_json's map keeps: a
/// dependency (cedar-policy) turns on `preserve_order`, under which maps keep insertion order, so
/// the canonical form is built explicitly rather than assumed.
pub fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|k| (k.clone(), canonical(&map[k])))
                .collect::<serde_json::Map<_, _>>()
                .into()
        }
        serde_json::Value::Array(items) => items.iter().map(canonical).collect(),
        other => other.clone(),
    }
}

/// SHA-256 (hex) of an event's canonical encoding: a compact JSON array of seq, time in
/// milliseconds, type, actor, task id, data (keys sorted, see [`canonical`]) and the previous
/// hash, so the same event always encodes to the same bytes.
pub fn event_hash(
    seq: i64,
    at: Timestamp,
    kind: &str,
    actor: Option<&str>,
    task_id: Option<&str>,
    data: &serde_json::Value,
    prev_hash: &str,
) -> String {
    let encoded = serde_json::json!([
        seq,
        at.as_millis(),
        kind,
        actor,
        task_id,
        canonical(data),
        prev_hash
    ]);
    hex::encode(Sha256::digest(encoded.to_string().as_bytes()))
}

/// Appends `event` to the chain inside `tx` and returns it as stored.
pub async fn append(tx: &mut Tx, event: NewAuditEvent<'_>) -> Result<AuditEvent> {
    let mut stored = append_many(tx, vec![event]).await?;
    stored
        .pop()
        .ok_or_else(|| StoreError::Other("audit append stored nothing".to_owned()))
}

/// Appends `events`, in order, to the chain inside `tx` with one read of the tip and one insert.
pub async fn append_many(tx: &mut Tx, events: Vec<NewAuditEvent<'_>>) -> Result<Vec<AuditEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // Reading the tip under a lock serialises appends: Postgres locks the head row until commit;
    // SQLite transactions here hold the database's write lock from their start.
    let head_sql = match tx.dialect() {
        Dialect::Sqlite => "SELECT seq, hash FROM audit_head WHERE id = 1",
        Dialect::Postgres => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
    };
    let head = sqlx::query(head_sql).fetch_one(&mut **tx).await?;
    let mut seq: i64 = head.try_get("seq")?;
    let mut prev_hash: String = head.try_get("hash")?;
    let at = Timestamp::now();
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let hash = event_hash(
            seq,
            at,
            event.kind,
            event.actor.map(Id::as_str),
            event.task_id.map(Id::as_str),
            &event.data,
            &prev_hash,
        );
        stored.push(AuditEvent {
            seq,
            at,
            kind: event.kind.to_owned(),
            actor: event.actor.cloned(),
            task_id: event.task_id.cloned(),
            data: event.data,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
    }
    // Stored in canonical form, so verification can hash the stored text as it is.
    let data_texts: Vec<String> = stored
        .iter()
        .map(|e| canonical(&e.data).to_string())
        .collect();
    for (chunk, texts) in stored
        .chunks(rows::MAX_ROWS_PER_INSERT)
        .zip(data_texts.chunks(rows::MAX_ROWS_PER_INSERT))
    {
        let sql = format!(
            "INSERT INTO audit_events (seq, at, type, actor, task_id, data, prev_hash, hash) VALUES {}",
            rows::values_placeholders(chunk.len(), 8)
        );
        let mut insert = sqlx::query(AssertSqlSafe(sql));
        for (e, data) in chunk.iter().zip(texts) {
            insert = insert
                .bind(e.seq)
                .bind(e.at.as_millis())
                .bind(e.kind.as_str())
                .bind(e.actor.as_ref().map(Id::as_str))
                .bind(e.task_id.as_ref().map(Id::as_str))
                .bind(data.as_str())
                .bind(e.prev_hash.as_str())
                .bind(e.hash.as_str());
        }
        insert.execute(&mut **tx).await?;
    }
    // The `audit_head_follows` trigger moved the tip to the last event.
    Ok(stored)
}

/// Reads events with `seq > after_seq`, oldest first, at most `limit`, optionally filtered.
pub async fn list(db: &crate::Db, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditEvent>> {
    let rows = sqlx::query(
        "SELECT seq, at, type, actor, task_id, data, prev_hash, hash FROM audit_events
         WHERE seq > $1
           AND ($2 IS NULL OR task_id = $2)
           AND ($3 IS NULL OR actor = $3)
           AND ($4 IS NULL OR type = $4)
         ORDER BY seq LIMIT $5",
    )
    .bind(filter.after_seq)
    .bind(filter.task_id.as_ref().map(Id::as_str))
    .bind(filter.actor.as_ref().map(Id::as_str))
    .bind(filter.kind.as_deref())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(row_to_event).collect()
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub after_seq: i64,
    pub task_id: Option<Id>,
    pub actor: Option<Id>,
    pub kind: Option<String>,
}

fn row_to_event(row: &sqlx::any::AnyRow) -> Result<AuditEvent> {
    let parse_id = |v: Option<String>| -> Result<Option<Id>> {
        v.map(|s| Id::parse(&s).map_err(StoreError::corrupt))
            .transpose()
    };
    let data: String = row.try_get("data")?;
    Ok(AuditEvent {
        seq: row.try_get("seq")?,
        at: Timestamp::from_millis(row.try_get("at")?),
        kind: row.try_get("type")?,
        actor: parse_id(row.try_get("actor")?)?,
        task_id: parse_id(row.try_get("task_id")?)?,
        data: serde_json::from_str(&data).map_err(StoreError::corrupt)?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// How many audit events of type `kind` task `task_id` has (e.g. how many runs started).
pub async fn count_for_task(db: &crate::Db, task_id: &Id, kind: &str) -> Result<i64> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE task_id = $1 AND type = $2")
            .bind(task_id.as_str())
            .bind(kind)
            .fetch_one(db.pool())
            .await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holds whether or not serde_json's `preserve_order` is on in this build (the workspace
    /// build has it on, through cedar-policy).
    #[test]
    fn canonical_form_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": 1, "a": {"d": [{"z": 0, "y": 1}], "c": 2}});
        assert_eq!(
            canonical(&value).to_string(),
            r#"{"a":{"c":2,"d":[{"y":1,"z":0}]},"b":1}"#
        );
        let reordered = serde_json::json!({"a": {"c": 2, "d": [{"y": 1, "z": 0}]}, "b": 1});
        let at = Timestamp::from_millis(1);
        assert_eq!(
            event_hash(1, at, "t", None, None, &value, GENESIS_HASH),
            event_hash(1, at, "t", None, None, &reordered, GENESIS_HASH)
        );
    }
}
