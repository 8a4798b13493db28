//! Opening what every command shares: the data directory, key files, database (migrated), bus
//! and object store, and the coordinator over them.

use coordinator::Coordinator;
use store::Db;
use store::bus::Bus;
use store::objects::Objects;

use crate::config::Settings;
use crate::keys;

/// Key namespace of this deployment in Redis.
const REDIS_PREFIX: &str = "agenticai";

/// The deployment's backing services, opened and ready.
pub struct Services {
    pub db: Db,
    pub bus: Bus,
    pub objects: Objects,
    pub coord: Coordinator,
    /// Decrypts environment secrets (from the master key).
    pub keyring: store::secrets::Keyring,
}

/// Creates the data directory and key files if missing, connects to the database and applies
/// migrations, and connects the bus and the object store. Every failure names what failed.
pub async fn open(settings: &Settings) -> Result<Services, String> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            settings.data_dir.display()
        )
    })?;
    let master_key = keys::load_or_create(&settings.master_key_file, "master key")?;
    keys::load_or_create(&settings.audit_key_file, "audit signing key")?;
    let db = Db::connect(settings.database_url.expose())
        .await
        .map_err(|e| format!("database {}: {e}", settings.database_url.redacted()))?;
    let applied = db
        .migrate()
        .await
        .map_err(|e| format!("database migration failed: {e}"))?;
    if applied > 0 {
        tracing::info!(applied, "database schema up to date");
    }
    let bus = match &settings.redis_url {
        Some(url) => Bus::redis(url.expose(), REDIS_PREFIX)
            .await
            .map_err(|e| format!("redis {}: {e}", url.redacted()))?,
        None => Bus::in_process(),
    };
    let objects = Objects::from_url(
        &settings.object_store_url.to_string(),
        settings.s3_endpoint.as_deref(),
    )
    .map_err(|e| format!("object store {}: {e}", settings.object_store_url))?;
    let keyring = store::secrets::Keyring::new(master_key);
    let coord = Coordinator::new(db.clone(), bus.clone())
        .with_keyring(keyring.clone())
        .with_task_quota(settings.execution.tasks_per_hour);
    Ok(Services {
        db,
        bus,
        objects,
        coord,
        keyring,
    })
}
