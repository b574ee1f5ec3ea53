//! Sealed state over an untrusted [`BlobStore`]: writes that commit through the index,
//! reads checked for authenticity and freshness, and an in-memory store for tests.

use super::*;

/// Failure of the store that keeps the blobs (in production, the parent).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("invalid blob request: {0}")]
    Request(CodecError),
    #[error("cannot reach the blob store: {0}")]
    Connect(std::io::Error),
    #[error("the blob store did not answer in time ({0})")]
    Timeout(&'static str),
    #[error("blob store connection: {0}")]
    Transport(transport::frame::FrameError),
    #[error("blob store protocol violation: {0}")]
    Protocol(String),
    #[error("the blob store refused the request ({kind:?}): {message:?}")]
    Refused {
        kind: blob::ErrorKind,
        message: String,
    },
    #[error("cloud storage: {0}")]
    Gcs(Box<crate::gcs::GcsError>),
}

/// Where sealed blobs live: named opaque byte strings. Names follow
/// [`transport::blob::validate_name`]; blobs are at most [`MAX_BLOB_LEN`] bytes. Deleting
/// a missing blob is not an error.
pub trait BlobStore: Send + Sync {
    fn put(&self, name: &str, data: Vec<u8>) -> impl Future<Output = Result<(), BlobError>> + Send;
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>, BlobError>> + Send;
    /// Names starting with `prefix` (empty: all).
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, BlobError>> + Send;
    fn delete(&self, name: &str) -> impl Future<Output = Result<(), BlobError>> + Send;
}

/// Sealed state over a [`BlobStore`], with rollback detection (see the module docs).
#[derive(Debug)]
pub struct SealedStore<B> {
    blobs: B,
    key: DataKey,
    node_id: String,
    index: SealedIndex,
}

impl<B: BlobStore> SealedStore<B> {
    /// Loads the index. No index is an empty store with a new random [`StoreId`]; an
    /// index that does not open is an error, never an empty store.
    pub async fn open(blobs: B, key: DataKey, node_id: &str) -> Result<Self, SealError> {
        short_len("node id", node_id)?;
        let index = match blobs.get(INDEX_NAME).await? {
            None => SealedIndex::new(StoreId::generate()?),
            Some(blob) => SealedIndex::open(&key, node_id, &blob)?,
        };
        Ok(SealedStore {
            blobs,
            key,
            node_id: node_id.to_owned(),
            index,
        })
    }

    pub fn index(&self) -> &SealedIndex {
        &self.index
    }

    fn place<'a>(&'a self, name: &'a str) -> BlobPlace<'a> {
        BlobPlace {
            node_id: &self.node_id,
            store: &self.index.store,
            name,
        }
    }

    /// The data key, for escrow.
    pub fn data_key(&self) -> &DataKey {
        &self.key
    }

    /// Names that hold a value, per the index (the parent's listing is not trusted).
    pub fn list(&self) -> Vec<String> {
        self.index.names().map(str::to_owned).collect()
    }

    /// Stores `plaintext` as `name`: the blob first, then the index. Returns the blob's
    /// counter.
    pub async fn put(&mut self, name: &str, plaintext: &[u8]) -> Result<u64, SealError> {
        check_name(name)?;
        let counter = self.index.next_counter(name)?;
        let (blob, nonce) = seal_blob(&self.key, &self.place(name), counter, plaintext)?;
        let mut index = self.index.clone();
        index.record_put(name, counter, nonce)?;
        let sealed_index = index.seal(&self.key, &self.node_id)?;
        self.blobs.put(name, blob).await?;
        self.blobs.put(INDEX_NAME, sealed_index).await?;
        self.index = index;
        Ok(counter)
    }

    /// The value of `name`, `None` if it has none.
    pub async fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, SealError> {
        check_name(name)?;
        let Some(blob) = self.blobs.get(name).await? else {
            return match self.index.committed(name) {
                Some(_) => Err(SealError::Missing {
                    name: name.to_owned(),
                }),
                None => Ok(None),
            };
        };
        let opened = open_blob(&self.key, &self.place(name), &blob)?;
        match self.index.check(name, opened.counter, &opened.nonce)? {
            Freshness::Current | Freshness::Uncommitted => Ok(Some(opened.plaintext)),
            Freshness::Deleted => Ok(None),
        }
    }

    /// Deletes `name`: a tombstone in the index first, then the blob. `true` if it held
    /// a value.
    pub async fn delete(&mut self, name: &str) -> Result<bool, SealError> {
        check_name(name)?;
        let mut index = self.index.clone();
        let existed = index.record_delete(name)?;
        let sealed_index = index.seal(&self.key, &self.node_id)?;
        self.blobs.put(INDEX_NAME, sealed_index).await?;
        self.index = index;
        self.blobs.delete(name).await?;
        Ok(existed)
    }
}

fn check_name(name: &str) -> Result<(), SealError> {
    let invalid = |reason| SealError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    match blob::validate_name(name) {
        Err(CodecError::Name(reason)) => Err(invalid(reason)),
        Err(_) => Err(invalid("invalid")),
        Ok(()) if name == INDEX_NAME => Err(invalid("reserved for the index")),
        Ok(()) => Ok(()),
    }
}

#[cfg(any(test, feature = "sim"))]
pub use memory::MemoryBlobs;

#[cfg(any(test, feature = "sim"))]
mod memory {
    use super::{BlobError, BlobStore};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, PoisonError};
    use transport::blob::{self, CodecError, MAX_BLOB_LEN};

    /// An in-memory [`BlobStore`] for tests and the simulator (absent from production
    /// builds). Clones share the same blobs, so a test can play the parent: read, keep
    /// and put back raw bytes.
    #[derive(Debug, Clone, Default)]
    pub struct MemoryBlobs(Arc<Mutex<BTreeMap<String, Vec<u8>>>>);

    impl MemoryBlobs {
        pub fn new() -> Self {
            MemoryBlobs::default()
        }

        fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> T) -> T {
            f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
        }
    }

    fn check(name: &str) -> Result<(), BlobError> {
        blob::validate_name(name).map_err(BlobError::Request)
    }

    impl BlobStore for MemoryBlobs {
        async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BlobError> {
            check(name)?;
            if data.len() > MAX_BLOB_LEN {
                return Err(BlobError::Request(CodecError::TooLarge { len: data.len() }));
            }
            self.with(|blobs| blobs.insert(name.to_owned(), data));
            Ok(())
        }

        async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BlobError> {
            check(name)?;
            Ok(self.with(|blobs| blobs.get(name).cloned()))
        }

        async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
            Ok(self.with(|blobs| {
                blobs
                    .keys()
                    .filter(|name| name.starts_with(prefix))
                    .cloned()
                    .collect()
            }))
        }

        async fn delete(&self, name: &str) -> Result<(), BlobError> {
            check(name)?;
            self.with(|blobs| blobs.remove(name));
            Ok(())
        }
    }
}
