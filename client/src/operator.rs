//! Operator key files: an Ed25519 key (PKCS#8 DER) in a file only its owner can read.

use manifest::OperatorKey;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest key file read.
const MAX_KEY_FILE_LEN: u64 = 4096;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: readable by others (mode {mode:o}); run chmod 600 on it")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path}: not an operator key: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Creates a new key in a new file at `path` (mode 0600; an existing file is never
/// overwritten).
pub fn create(path: &Path) -> Result<OperatorKey, KeyFileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let invalid = |reason: String| KeyFileError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let key = OperatorKey::generate().map_err(|e| invalid(e.to_string()))?;
    let der = key.to_pkcs8().map_err(|e| invalid(e.to_string()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(der.as_ref()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(key)
}

/// Loads the key at `path`; refuses a file that others can read or write.
pub fn load(path: &Path) -> Result<OperatorKey, KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::Invalid {
            path: path.to_owned(),
            reason: "file too large".to_owned(),
        });
    }
    let der = zeroize::Zeroizing::new(std::fs::read(path).map_err(io)?);
    OperatorKey::from_pkcs8(&der).map_err(|e| KeyFileError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_private_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("operator-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("op.key");
        let _ = std::fs::remove_file(&path);
        let key = create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap().public_key(), key.public_key());
        assert!(matches!(create(&path), Err(KeyFileError::Io { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&path), Err(KeyFileError::Permissions { .. })));
        std::fs::write(dir.join("junk.key"), b"junk").unwrap();
        std::fs::set_permissions(dir.join("junk.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(matches!(
            load(&dir.join("junk.key")),
            Err(KeyFileError::Invalid { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
