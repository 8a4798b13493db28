//! The audit chain's operator side: `agenticai audit verify`, and the server's writer of signed
//! checkpoints (`store::audit_checkpoint`), which makes truncating the chain detectable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use store::Db;
use store::audit_checkpoint::{self, Signer, Verifier};
use store::audit_verify::{VerifyReport, verify};
use store::objects::Objects;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::commands::Failure;
use crate::config::Settings;
use crate::keys;

/// How often the checkpoint writer looks at the chain's head.
const POLL: Duration = Duration::from_secs(2);
/// New events wait at most this long for a checkpoint, however few they are.
const MAX_AGE: Duration = Duration::from_secs(60);

/// What the audit key file is called in messages.
const KEY_NAME: &str = "audit signing key";

/// A "could not check" failure: exit 2.
fn unchecked(message: String) -> Failure {
    Failure {
        message: format!("cannot check the audit chain: {message}"),
        code: 2,
    }
}

/// `agenticai audit verify`: prints `ok: N events verified` (exit 0) or
/// `tampered: event SEQ: REASON` (exit 1); exit 2 with the reason on stderr when the chain could
/// not be checked. Reads only: it creates no key, database or schema.
pub async fn audit_verify(settings: &Settings) -> Result<ExitCode, Failure> {
    let url = settings.database_url.expose();
    if let Some(path) = sqlite_path(url)
        && !path.exists()
    {
        return Err(unchecked(format!(
            "the database {} does not exist (has the server ever run here?)",
            path.display()
        )));
    }
    let verifier = match read_key(&settings.audit_key_file) {
        Ok(seed) => seed.map(|seed| Verifier::from_seed(&seed)),
        Err(e) => return Err(unchecked(e)),
    };
    let objects = Objects::from_url(
        &settings.object_store_url.to_string(),
        settings.s3_endpoint.as_deref(),
    )
    .map_err(|e| unchecked(format!("object store {}: {e}", settings.object_store_url)))?;
    let db = Db::connect(url).await.map_err(|e| {
        unchecked(format!(
            "database {}: {e}",
            settings.database_url.redacted()
        ))
    })?;
    let result = run_verify(&db, &objects, verifier.as_ref(), &settings.audit_key_file).await;
    db.close().await;
    let report = result?;
    match (report.ok, report.first_broken_seq) {
        (true, _) => {
            println!("ok: {} events verified", report.events);
            Ok(ExitCode::SUCCESS)
        }
        (false, seq) => {
            let reason = report.reason.as_deref().unwrap_or("the chain is broken");
            match seq {
                Some(seq) => println!("tampered: event {seq}: {reason}"),
                None => println!("tampered: {reason}"),
            }
            Ok(ExitCode::from(1))
        }
    }
}

async fn run_verify(
    db: &Db,
    objects: &Objects,
    verifier: Option<&Verifier>,
    key_file: &Path,
) -> Result<VerifyReport, Failure> {
    let checkpoints = match verifier {
        Some(verifier) => Some((objects, verifier)),
        None => {
            // No key: checkpoints cannot be checked. That is fine only if there are none.
            let existing = objects
                .list(audit_checkpoint::CHECKPOINT_PREFIX)
                .await
                .map_err(|e| unchecked(e.to_string()))?;
            if !existing.is_empty() {
                return Err(unchecked(format!(
                    "the {KEY_NAME} {} is missing, so the {} signed checkpoints cannot be \
                     checked; restore it from backup",
                    key_file.display(),
                    existing.len()
                )));
            }
            tracing::warn!(
                path = %key_file.display(),
                "no {KEY_NAME} and no checkpoints: checking the chain alone"
            );
            None
        }
    };
    verify(db, checkpoints)
        .await
        .map_err(|e| unchecked(e.to_string()))
}

/// The audit key's seed, `None` when the file does not exist (never created here).
fn read_key(path: &Path) -> Result<Option<[u8; 32]>, String> {
    if !path.exists() {
        return Ok(None);
    }
    keys::load_or_create(path, KEY_NAME).map(Some)
}

/// The file of a `sqlite:` URL; `None` for other databases and in-memory SQLite.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The server's signer, from the audit key file (which `services::open` has created).
pub fn load_signer(settings: &Settings) -> Result<Arc<Signer>, String> {
    let seed = keys::load_or_create(&settings.audit_key_file, KEY_NAME)?;
    Ok(Arc::new(Signer::from_seed(&seed)))
}

/// Writes a signed checkpoint of the chain's head whenever `every` new events have been
/// appended since the last one, or `MAX_AGE` has passed with any new event, until `stop` turns
/// true. Resolves to the seq of the last checkpoint written (or found), for [`final_checkpoint`].
/// Failures are logged and retried at the next look; they never stop the server.
pub fn spawn_checkpointer(
    db: Db,
    objects: Objects,
    signer: Arc<Signer>,
    every: u64,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<i64> {
    tokio::spawn(async move {
        let every = i64::try_from(every).unwrap_or(i64::MAX).max(1);
        let mut last = match audit_checkpoint::latest_verified(&objects, &signer.verifier()).await {
            Ok(found) => found.map_or(0, |c| c.seq),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the audit checkpoints");
                0
            }
        };
        // When the oldest event not yet covered by a checkpoint was first seen.
        let mut pending_since: Option<Instant> = None;
        let mut failing = false;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return last,
            }
            let head = match audit_checkpoint::head(&db).await {
                Ok((seq, _)) => seq,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the audit head");
                    continue;
                }
            };
            if head <= last {
                pending_since = None;
                continue;
            }
            let since = *pending_since.get_or_insert_with(Instant::now);
            if head - last < every && since.elapsed() < MAX_AGE {
                continue;
            }
            match audit_checkpoint::write_checkpoint(&db, &objects, &signer).await {
                Ok(Some(cp)) => {
                    tracing::debug!(seq = cp.seq, "wrote an audit checkpoint");
                    if failing {
                        tracing::info!(seq = cp.seq, "audit checkpoints are written again");
                    }
                    last = cp.seq;
                    pending_since = None;
                    failing = false;
                }
                Ok(None) => {}
                // Warn once per outage, not every few seconds.
                Err(e) if failing => {
                    tracing::debug!(error = %e, "cannot write an audit checkpoint")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write an audit checkpoint; retrying");
                    failing = true;
                }
            }
        }
    })
}

/// At shutdown, once nothing appends any more: a checkpoint of the final head unless `last`
/// (from [`spawn_checkpointer`]) already covers it.
pub async fn final_checkpoint(db: &Db, objects: &Objects, signer: &Signer, last: i64) {
    match audit_checkpoint::head(db).await {
        Ok((seq, _)) if seq <= last => return,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the audit head for the final checkpoint");
            return;
        }
    }
    match audit_checkpoint::write_checkpoint(db, objects, signer).await {
        Ok(Some(cp)) => tracing::info!(seq = cp.seq, "wrote the final audit checkpoint"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot write the final audit checkpoint"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///data/a.db?mode=rwc"),
            Some(PathBuf::from("/data/a.db"))
        );
        assert_eq!(
            sqlite_path("sqlite://./data/a.db"),
            Some(PathBuf::from("./data/a.db"))
        );
        assert_eq!(sqlite_path("sqlite:a.db"), Some(PathBuf::from("a.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
    }
}
