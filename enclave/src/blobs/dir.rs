//! The blob store of a node without a parent (Confidential Space): its sealed blobs in a
//! directory on an attached disk, kept by the same directory store the parent uses
//! ([`transport::blob_dir`]: the same names, limits and atomic writes).
//!
//! The disk is as untrusted as the parent: whoever controls the host can replace, roll
//! back, truncate or remove any file. This store therefore answers exactly as
//! [`super::ParentBlobs`] does for the same request (a refused name or size before
//! anything is written, a failure of the store as [`BlobError::Refused`] with the kind the
//! parent would send), and the sealed layer ([`crate::sealed::SealedStore`]) checks what
//! comes back.

use crate::sealed::{BlobError, BlobStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;
use transport::blob::{CodecError, ErrorKind, MAX_BLOB_LEN, validate_name};
use transport::blob_dir::{DirError, DirStore};

/// How long one operation on the disk may take before the node gives up waiting for it
/// (the same bound it gives its parent).
pub const DEFAULT_TIMEOUT: Duration = super::DEFAULT_TIMEOUT;

/// Sealed blobs in a directory the node itself holds (and locks against a second process).
#[derive(Debug, Clone)]
pub struct DirBlobs {
    store: Arc<DirStore>,
    timeout: Duration,
}

impl DirBlobs {
    /// Opens (creating it if needed) and locks `dir`, removing the temporary files of
    /// writes a crash interrupted. Returns the store and how many such files it removed.
    pub fn open(dir: &Path) -> Result<(Self, usize), DirError> {
        let (store, removed) = DirStore::open(dir)?;
        let blobs = DirBlobs {
            store: Arc::new(store),
            timeout: DEFAULT_TIMEOUT,
        };
        Ok((blobs, removed))
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Runs `op` on the store on a blocking thread, within the timeout.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&DirStore) -> Result<T, DirError> + Send + 'static,
    ) -> Result<T, BlobError> {
        let store = self.store.clone();
        let task = tokio::task::spawn_blocking(move || op(&store));
        match timeout(self.timeout, task).await {
            Err(_) => Err(BlobError::Timeout("disk")),
            Ok(Err(joined)) => Err(BlobError::Refused {
                kind: ErrorKind::Io,
                message: format!("blob store task failed: {joined}"),
            }),
            Ok(Ok(result)) => result.map_err(refused),
        }
    }
}

/// A failure of the directory store, as the parent would report it.
fn refused(e: DirError) -> BlobError {
    BlobError::Refused {
        kind: e.kind(),
        message: e.to_string(),
    }
}

/// What the parent's client refuses before sending: an invalid name.
fn check_name(name: &str) -> Result<(), BlobError> {
    validate_name(name).map_err(BlobError::Request)
}

impl BlobStore for DirBlobs {
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BlobError> {
        check_name(name)?;
        if data.len() > MAX_BLOB_LEN {
            return Err(BlobError::Request(CodecError::TooLarge { len: data.len() }));
        }
        let name = name.to_owned();
        self.run(move |store| store.put(&name, &data)).await
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BlobError> {
        check_name(name)?;
        let name = name.to_owned();
        self.run(move |store| store.get(&name)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        if !prefix.is_empty() {
            check_name(prefix)?;
        }
        let prefix = prefix.to_owned();
        self.run(move |store| store.list(&prefix)).await
    }

    async fn delete(&self, name: &str) -> Result<(), BlobError> {
        check_name(name)?;
        let name = name.to_owned();
        self.run(move |store| store.delete(&name).map(|_| ())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealed::{DataKey, SealError, SealedStore};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "enclave-dir-blobs-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn put_get_list_delete_in_a_directory() {
        let tmp = TempDir::new("basic");
        let (blobs, removed) = DirBlobs::open(&tmp.0).unwrap();
        assert_eq!(removed, 0);
        assert_eq!(blobs.dir(), tmp.0);
        assert_eq!(blobs.get("a").await.unwrap(), None);
        blobs.put("a", b"one".to_vec()).await.unwrap();
        blobs.put("b", vec![]).await.unwrap();
        assert_eq!(blobs.get("a").await.unwrap(), Some(b"one".to_vec()));
        assert_eq!(blobs.get("b").await.unwrap(), Some(vec![]));
        assert_eq!(blobs.list("").await.unwrap(), ["a", "b"]);
        assert_eq!(blobs.list("b").await.unwrap(), ["b"]);
        blobs.delete("a").await.unwrap();
        // Deleting a missing blob is not an error, as with the parent.
        blobs.delete("a").await.unwrap();
        assert_eq!(blobs.get("a").await.unwrap(), None);
        assert_eq!(entries(&tmp.0), [".lock", "b"]);
    }

    #[tokio::test]
    async fn a_write_replaces_the_blob_whole_and_leaves_no_temporary_file() {
        let tmp = TempDir::new("replace");
        let (blobs, _) = DirBlobs::open(&tmp.0).unwrap();
        blobs.put("share", vec![1; 4096]).await.unwrap();
        blobs.put("share", b"v2".to_vec()).await.unwrap();
        assert_eq!(blobs.get("share").await.unwrap(), Some(b"v2".to_vec()));
        assert_eq!(entries(&tmp.0), [".lock", "share"]);
        drop(blobs);
        // A write a crash interrupted is a temporary file: gone at the next open, and the
        // blob is the last complete write.
        std::fs::write(tmp.file(".tmp-7-0"), b"half written").unwrap();
        let (blobs, removed) = DirBlobs::open(&tmp.0).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(blobs.get("share").await.unwrap(), Some(b"v2".to_vec()));
        assert_eq!(entries(&tmp.0), [".lock", "share"]);
    }

    #[tokio::test]
    async fn a_second_node_cannot_open_a_directory_in_use() {
        let tmp = TempDir::new("lock");
        let (first, _) = DirBlobs::open(&tmp.0).unwrap();
        let err = DirBlobs::open(&tmp.0).unwrap_err();
        assert!(err.to_string().contains("lock"), "{err}");
        drop(first);
        DirBlobs::open(&tmp.0).unwrap();
    }

    #[tokio::test]
    async fn limits_at_exactly_max_and_one_more() {
        let tmp = TempDir::new("limits");
        let (blobs, _) = DirBlobs::open(&tmp.0).unwrap();
        let max = vec![0x5a; MAX_BLOB_LEN];
        blobs.put("max", max.clone()).await.unwrap();
        assert_eq!(blobs.get("max").await.unwrap(), Some(max));
        // One byte more is refused before anything is written, as the parent's client does.
        assert!(matches!(
            blobs.put("over", vec![0x5a; MAX_BLOB_LEN + 1]).await,
            Err(BlobError::Request(CodecError::TooLarge { len })) if len == MAX_BLOB_LEN + 1
        ));
        assert_eq!(blobs.get("over").await.unwrap(), None);
        // A file grown on disk past the limit is refused, not read.
        std::fs::write(tmp.file("grown"), vec![0x5a; MAX_BLOB_LEN + 1]).unwrap();
        assert!(matches!(
            blobs.get("grown").await,
            Err(BlobError::Refused {
                kind: ErrorKind::TooLarge,
                ..
            })
        ));
        // Names: the longest is accepted, one more character and escapes are not.
        let longest = "n".repeat(transport::blob::MAX_NAME_LEN);
        blobs.put(&longest, vec![1]).await.unwrap();
        let longer = "n".repeat(transport::blob::MAX_NAME_LEN + 1);
        for bad in [longer.as_str(), "../x", "a/b", ".lock", ".tmp-1-1", ""] {
            assert!(
                matches!(blobs.put(bad, vec![1]).await, Err(BlobError::Request(_))),
                "{bad}"
            );
            assert!(
                matches!(blobs.get(bad).await, Err(BlobError::Request(_))),
                "{bad}"
            );
            assert!(
                matches!(blobs.delete(bad).await, Err(BlobError::Request(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            blobs.list("../").await,
            Err(BlobError::Request(_))
        ));
    }

    #[tokio::test]
    async fn a_directory_that_is_not_one_is_a_failure_of_the_store() {
        let tmp = TempDir::new("notdir");
        let (blobs, _) = DirBlobs::open(&tmp.0).unwrap();
        std::fs::create_dir(tmp.file("share")).unwrap();
        assert!(matches!(
            blobs.get("share").await,
            Err(BlobError::Refused { .. })
        ));
        assert!(blobs.list("").await.unwrap().is_empty());
    }

    fn key() -> DataKey {
        DataKey::from_bytes(&[7; 32])
    }

    /// What an attacker with the disk can do to the files is what the parent can do to
    /// its answers: the sealed layer refuses it, and nothing panics.
    #[tokio::test]
    async fn the_sealed_layer_refuses_what_the_disk_was_made_to_return() {
        let tmp = TempDir::new("sealed");
        let (blobs, _) = DirBlobs::open(&tmp.0).unwrap();
        let mut store = SealedStore::open(blobs.clone(), key(), "node-1")
            .await
            .unwrap();
        store.put("share", b"the share").await.unwrap();
        store.put("other", b"another value").await.unwrap();
        let share = std::fs::read(tmp.file("share")).unwrap();
        let other = std::fs::read(tmp.file("other")).unwrap();

        // Truncated: at every length short of the whole, refused.
        for len in [0, 1, 8, 20, crate::sealed::MIN_BLOB_LEN, share.len() - 1] {
            std::fs::write(tmp.file("share"), &share[..len]).unwrap();
            let err = store.get("share").await.unwrap_err();
            assert!(
                matches!(
                    err,
                    SealError::Malformed { .. }
                        | SealError::Tampered { .. }
                        | SealError::UnsupportedVersion(_)
                ),
                "{len}: {err}"
            );
        }
        // Another blob's file in its place: refused.
        std::fs::write(tmp.file("share"), &other).unwrap();
        assert!(matches!(
            store.get("share").await,
            Err(SealError::Tampered { .. })
        ));
        // One bit flipped: refused.
        let mut flipped = share.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(tmp.file("share"), &flipped).unwrap();
        assert!(matches!(
            store.get("share").await,
            Err(SealError::Tampered { .. })
        ));
        // Removed while the index holds it: missing, not absent.
        std::fs::remove_file(tmp.file("share")).unwrap();
        assert!(matches!(
            store.get("share").await,
            Err(SealError::Missing { .. })
        ));
        // Put back whole, it reads again; a rolled-back copy does not.
        std::fs::write(tmp.file("share"), &share).unwrap();
        assert_eq!(
            store.get("share").await.unwrap().unwrap().as_slice(),
            b"the share"
        );
        store.put("share", b"newer").await.unwrap();
        std::fs::write(tmp.file("share"), &share).unwrap();
        assert!(matches!(
            store.get("share").await,
            Err(SealError::Rollback { .. })
        ));

        // A truncated or swapped index: the store does not open, and is never empty.
        let index = std::fs::read(tmp.file(crate::sealed::INDEX_NAME)).unwrap();
        std::fs::write(
            tmp.file(crate::sealed::INDEX_NAME),
            &index[..index.len() / 2],
        )
        .unwrap();
        assert!(
            SealedStore::open(blobs.clone(), key(), "node-1")
                .await
                .is_err()
        );
        std::fs::write(tmp.file(crate::sealed::INDEX_NAME), &other).unwrap();
        assert!(matches!(
            SealedStore::open(blobs.clone(), key(), "node-1").await,
            Err(SealError::Tampered { .. })
        ));
        std::fs::write(tmp.file(crate::sealed::INDEX_NAME), &index).unwrap();
        let reopened = SealedStore::open(blobs, key(), "node-1").await.unwrap();
        assert_eq!(
            reopened.get("other").await.unwrap().unwrap().as_slice(),
            b"another value"
        );
    }
}
