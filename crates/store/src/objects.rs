//! Object storage: one interface over a local directory and S3-compatible buckets.
//!
//! Why it exists: checkpoints, artifacts and audit exports are blobs that do not belong in the
//! database. The embedded default keeps them in a directory under the data directory; production
//! uses an S3-compatible bucket (DESIGN.md, "Storage"). Callers see the same five operations
//! either way, built on `object_store`.
//!
//! Keys are relative slash paths such as `audit/checkpoints/000123.json`. They are checked before
//! any I/O (ASCII letters, digits, `- _ .`, `/` between non-empty segments, no `.` or `..`
//! segments, no leading or trailing `/`), so a key can never escape the directory or mean
//! different things on the two backends.
//!
//! Local writes are atomic and durable: `object_store`'s `LocalFileSystem` writes each object to
//! a staging file beside it (`<name>#<n>`, never listed) and renames it into place, so a reader
//! sees the old or the new object, never a partial one; we enable its fsync option so the file and
//! its directory entry are on disk when `put` returns. The key rules above exclude `#`, so a key
//! can never collide with a staging file. S3 `PUT` is atomic by itself.
//!
//! S3 configuration: the bucket comes from the URL, credentials and region from the standard
//! `AWS_*` environment variables, the endpoint (for MinIO, moto, …) from `AGENTICAI_S3_ENDPOINT`.
//! Nothing shown to users (errors, [`Objects::describe`]) contains credentials.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig};

/// The longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// How many times a failed S3 request is retried, and for how long at most.
const S3_MAX_RETRIES: usize = 3;
const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why an object store could not be set up or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The URL does not parse or lacks a part it needs.
    #[error("invalid object store URL: {0}")]
    InvalidUrl(String),
    /// The URL scheme is neither `file` nor `s3`.
    #[error("unsupported object store URL scheme {0:?}: use file:///absolute/path or s3://bucket")]
    UnsupportedScheme(String),
    /// A key (or list prefix) breaks the key rules.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The offending key (truncated if very long).
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The local object directory cannot be created or opened.
    #[error("cannot use {path} as the object directory: {detail}")]
    Directory {
        /// The directory.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The backend could not be configured.
    #[error("cannot set up object store {store}: {detail}")]
    Setup {
        /// The store, as [`Objects::describe`] shows it.
        store: String,
        /// What went wrong.
        detail: String,
    },
    /// An operation on an object failed.
    #[error("object store {store}: {op} {key:?} failed: {detail}")]
    Backend {
        /// The store, as [`Objects::describe`] shows it.
        store: String,
        /// `put`, `get`, `list` or `delete`.
        op: &'static str,
        /// The key or list prefix.
        key: String,
        /// The backend's error.
        detail: String,
    },
    /// The readiness check failed.
    #[error("object store {store} is not ready: {detail}")]
    NotReady {
        /// The store, as [`Objects::describe`] shows it.
        store: String,
        /// What is wrong.
        detail: String,
    },
}

/// Which backend, for readiness checks and messages.
#[derive(Debug, Clone)]
enum Backend {
    Local(PathBuf),
    S3,
    Memory,
}

/// Object storage (local directory, S3 bucket or memory); cheap to clone.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    description: String,
}

impl std::fmt::Debug for Objects {
    // Only the description: the backend's own Debug output may include S3 credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.description)
    }
}

impl Objects {
    /// `file:///abs/path` (directory created if missing) or `s3://BUCKET` (bucket must exist;
    /// endpoint from `s3_endpoint` (AGENTICAI_S3_ENDPOINT, e.g. http://127.0.0.1:PORT, allow http)
    /// and credentials/region from the standard AWS_* env vars via AmazonS3Builder::from_env()).
    ///
    /// Does no network I/O: use [`Objects::check`] to see whether an S3 bucket is usable.
    pub fn from_url(url: &str, s3_endpoint: Option<&str>) -> Result<Objects, ObjectsError> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("file") => Objects::local(url),
            Some("s3") => Objects::s3(url, s3_endpoint),
            Some(other) => Err(ObjectsError::UnsupportedScheme(other.to_owned())),
            None => Err(ObjectsError::InvalidUrl(
                "expected file:///absolute/path or s3://bucket".into(),
            )),
        }
    }

    /// An in-memory store (`object_store::memory`), for unit tests.
    pub fn in_memory() -> Objects {
        Objects {
            store: Arc::new(InMemory::new()),
            backend: Backend::Memory,
            description: "memory://".into(),
        }
    }

    fn local(url: &str) -> Result<Objects, ObjectsError> {
        let parsed = url::Url::parse(url).map_err(|e| {
            ObjectsError::InvalidUrl(format!("{url:?} does not parse as a file URL: {e}"))
        })?;
        let dir = parsed.to_file_path().map_err(|()| {
            ObjectsError::InvalidUrl(format!(
                "{url:?} is not an absolute local path (expected file:///absolute/path)"
            ))
        })?;
        let dir_error = |detail: String| ObjectsError::Directory {
            path: dir.display().to_string(),
            detail,
        };
        std::fs::create_dir_all(&dir).map_err(|e| dir_error(e.to_string()))?;
        let root = std::fs::canonicalize(&dir).map_err(|e| dir_error(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| dir_error(e.to_string()))?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Objects {
            store: Arc::new(store),
            description: format!("file://{}", root.display()),
            backend: Backend::Local(root),
        })
    }

    fn s3(url: &str, endpoint: Option<&str>) -> Result<Objects, ObjectsError> {
        // Never echo the URL: it might (wrongly) carry credentials.
        let parsed = url::Url::parse(url)
            .map_err(|e| ObjectsError::InvalidUrl(format!("the s3:// URL does not parse: {e}")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ObjectsError::InvalidUrl(
                "an s3:// URL must not contain credentials; use the AWS_* environment variables"
                    .into(),
            ));
        }
        let bucket = parsed.host_str().unwrap_or_default().to_owned();
        if bucket.is_empty() {
            return Err(ObjectsError::InvalidUrl(
                "the s3:// URL names no bucket (expected s3://bucket)".into(),
            ));
        }
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() || parsed.port().is_some()
        {
            return Err(ObjectsError::InvalidUrl(format!(
                "expected s3://{bucket} with nothing after the bucket name"
            )));
        }
        let description = format!("s3://{bucket}");

        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: S3_MAX_RETRIES,
                retry_timeout: S3_RETRY_TIMEOUT,
            });
        if let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder.build().map_err(|e| ObjectsError::Setup {
            store: description.clone(),
            detail: e.to_string(),
        })?;
        Ok(Objects {
            store: Arc::new(store),
            backend: Backend::S3,
            description,
        })
    }

    fn backend_error(&self, op: &'static str, key: &str, e: object_store::Error) -> ObjectsError {
        ObjectsError::Backend {
            store: self.description.clone(),
            op,
            key: key.to_owned(),
            detail: e.to_string(),
        }
    }

    /// Stores `data` under `key`, replacing any previous object atomically.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectsError> {
        let path = key_path(key)?;
        self.store
            .put(&path, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|e| self.backend_error("put", key, e))
    }

    /// The object under `key`; `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ObjectsError> {
        let path = key_path(key)?;
        let found = match self.store.get(&path).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.backend_error("get", key, e)),
        };
        match found.bytes().await {
            Ok(data) => Ok(Some(data)),
            // Deleted between the request and reading the body.
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend_error("get", key, e)),
        }
    }

    /// The keys under `prefix`, sorted. `prefix` is a folder path matched by whole segments
    /// (`audit` finds `audit/x.json`, not `auditor/y`); `""` lists everything; a trailing `/` is
    /// allowed.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectsError> {
        let prefix_path = match prefix.strip_suffix('/').unwrap_or(prefix) {
            "" => None,
            p => Some(key_path(p)?),
        };
        let metas: Vec<_> = self
            .store
            .list(prefix_path.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.backend_error("list", prefix, e))?;
        let mut keys: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
        keys.sort();
        Ok(keys)
    }

    /// Removes the object under `key`; removing a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectsError> {
        let path = key_path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend_error("delete", key, e)),
        }
    }

    /// Readiness: the store is reachable (S3: the bucket exists and is listable).
    pub async fn check(&self) -> Result<(), ObjectsError> {
        let not_ready = |detail: String| ObjectsError::NotReady {
            store: self.description.clone(),
            detail,
        };
        if let Backend::Local(root) = &self.backend
            && !is_dir(root)
        {
            return Err(not_ready("the directory does not exist".into()));
        }
        match self.store.list_with_delimiter(None).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) if matches!(self.backend, Backend::S3) => {
                Err(not_ready("the bucket does not exist".into()))
            }
            Err(e) => Err(not_ready(e.to_string())),
        }
    }

    /// e.g. "file:///data/objects" or "s3://bucket" (never credentials).
    pub fn describe(&self) -> String {
        self.description.clone()
    }
}

fn is_dir(path: &FsPath) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// Checks `key` against the key rules and converts it to an `object_store` path.
fn key_path(key: &str) -> Result<Path, ObjectsError> {
    let invalid = |reason: &'static str| ObjectsError::InvalidKey {
        key: key.chars().take(100).collect(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("a key must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid("a key is at most 512 bytes"));
    }
    if key.starts_with('/') {
        return Err(invalid("a key must be relative (no leading '/')"));
    }
    if key.ends_with('/') {
        return Err(invalid("a key must not end with '/'"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
    {
        return Err(invalid(
            "a key may contain only ASCII letters, digits, '-', '_', '.' and '/'",
        ));
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err(invalid("a key must not contain '//'"));
        }
        if segment == "." || segment == ".." {
            return Err(invalid("a key must not contain '.' or '..' segments"));
        }
    }
    Path::parse(key).map_err(|_| invalid("not a valid object path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        for ok in [
            "a",
            "audit/checkpoints/000123.json",
            "a-b_c.d/e",
            "x/.hidden",
        ] {
            assert!(key_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/abs", "a/", "a//b", "../x", "a/../b", "./a", "a/.", "a b", "a\\b", "a#1", "ü",
            "a\nb", "a?b", "a%2e",
        ] {
            assert!(key_path(bad).is_err(), "{bad:?}");
        }
        assert!(key_path(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[tokio::test]
    async fn in_memory_round_trip() {
        let o = Objects::in_memory();
        o.put("a/b.json", Bytes::from_static(b"{}")).await.unwrap();
        assert_eq!(
            o.get("a/b.json").await.unwrap().unwrap(),
            Bytes::from_static(b"{}")
        );
        assert_eq!(o.list("a").await.unwrap(), vec!["a/b.json".to_owned()]);
        o.delete("a/b.json").await.unwrap();
        assert_eq!(o.get("a/b.json").await.unwrap(), None);
        o.check().await.unwrap();
    }
}
