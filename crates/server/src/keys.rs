//! The deployment's key files: the master key (encrypts stored secrets) and the audit signing
//! key (an ed25519 seed that signs audit checkpoints). Both are 32 random bytes, stored hex-encoded
//! in files only the owner can read, created on first start.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Reads the key in `path`, creating it (mode 0600, its directory 0700) when missing. Refuses a
/// key file that other users could read, and one that is not 64 hex characters.
pub fn load_or_create(path: &Path, what: &str) -> Result<[u8; 32], String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create directory {} for the {what}: {e}",
                dir.display()
            )
        })?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    if path.exists() {
        return read(path, what);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the {what}: {e}"))?;
    // Write a complete temporary file, then hard-link it into place: the link fails if another
    // process got there first, so nobody ever reads a half-written key, and exactly one key wins.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())?;
            file.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write the {what} to {}: {e}", tmp.display()));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created the {what}");
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path, what),
        Err(e) => Err(format!(
            "cannot create the {what} at {}: {e}",
            path.display()
        )),
    }
}

fn read(path: &Path, what: &str) -> Result<[u8; 32], String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the {what} at {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "the {what} at {} can be read by other users; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the {what} at {}: {e}", path.display()))?;
    let text = text.trim();
    let mut bytes = [0u8; 32];
    if hex::decode_to_slice(text, &mut bytes).is_err() {
        return Err(format!(
            "the {what} at {} is not 64 hex characters; restore it from backup",
            path.display()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reads_the_same_key_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let a = load_or_create(&path, "master key").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create(&path, "master key").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn refuses_readable_or_malformed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        load_or_create(&path, "key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            load_or_create(&path, "key")
                .unwrap_err()
                .contains("chmod 600")
        );
        std::fs::write(&path, "zz").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_or_create(&path, "key").unwrap_err().contains("64 hex"));
    }
}
