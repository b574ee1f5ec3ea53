//! The sealed key records: one blob per key share (`key-<id>`) and one per party set's
//! auxiliary info (`aux-<hash of the set>`, prefixed with the id of the session that made
//! it). They are read once, when the node starts running, and written only when a
//! session finished; a key id is never written twice.

use super::lock;
use crate::runtime::{Blobs, Node};
use crate::sealed::{SealError, SealedStore};
use mpc::ecdsa::{AuxInfo, KeyShare};
use mpc::{KeyId, PartySet, SessionId};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why the sealed key records could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("{name}: {source}")]
    Read {
        name: String,
        #[source]
        source: SealError,
    },
    #[error("{name} listed but missing")]
    Missing { name: String },
    #[error("{name}: {source}")]
    Record {
        name: String,
        #[source]
        source: mpc::KeyError,
    },
    #[error("{name}: too short")]
    TooShort { name: String },
    #[error("sealed store not open")]
    NotOpen,
    #[error("{name} already exists; key ids are never reused")]
    Exists { name: String },
    #[error(transparent)]
    Write(#[from] SealError),
}

pub(super) fn key_blob(key: &KeyId) -> String {
    format!("key-{key}")
}

/// Auxiliary info is stored per party set, under a name derived from its sorted ids.
pub(super) fn aux_blob(group: &PartySet) -> String {
    let mut hash = Sha256::new();
    for node in group.nodes() {
        hash.update([u8::try_from(node.as_str().len()).unwrap_or(u8::MAX)]);
        hash.update(node.as_str());
    }
    format!(
        "aux-{}",
        hex::encode(hash.finalize().get(..16).unwrap_or_default())
    )
}

async fn read<B: Blobs>(
    store: &SealedStore<B>,
    name: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, RecordError> {
    store
        .get(name)
        .await
        .map_err(|source| RecordError::Read {
            name: name.to_owned(),
            source,
        })?
        .ok_or_else(|| RecordError::Missing {
            name: name.to_owned(),
        })
}

impl<B: Blobs> Node<B> {
    /// Reads every sealed key share and auxiliary info into memory, from the store the
    /// node is about to run with. A blob that does not parse is an error: the store
    /// authenticated it, so it is this node's own state and cannot be skipped.
    pub(in crate::runtime) async fn load_keys(
        &self,
        store: &SealedStore<B>,
    ) -> Result<(), RecordError> {
        let mut shares = BTreeMap::new();
        let mut aux = BTreeMap::new();
        for name in store.list() {
            let record = |source| RecordError::Record {
                name: name.clone(),
                source,
            };
            if name.starts_with("key-") {
                let bytes = read(store, &name).await?;
                let share = KeyShare::from_sealed_bytes(&bytes).map_err(record)?;
                shares.insert(share.key_id().clone(), Arc::new(share));
            } else if name.starts_with("aux-") {
                let bytes = read(store, &name).await?;
                let (id, info) = bytes
                    .split_first_chunk::<32>()
                    .ok_or_else(|| RecordError::TooShort { name: name.clone() })?;
                let info = AuxInfo::from_sealed_bytes(info).map_err(record)?;
                aux.insert(
                    info.group().clone(),
                    (SessionId::from_bytes(*id), Arc::new(info)),
                );
            }
        }
        tracing::info!(
            keys = shares.len(),
            aux_info = aux.len(),
            "key shares loaded from sealed storage"
        );
        *lock(&self.keys.shares) = shares;
        *lock(&self.keys.aux) = aux;
        Ok(())
    }

    /// Seals a record a session produced; a key id is never written twice.
    pub(super) async fn seal_new(&self, name: &str, bytes: &[u8]) -> Result<(), RecordError> {
        let sealed = self.sealed().ok_or(RecordError::NotOpen)?;
        let mut store = sealed.store.lock().await;
        if name.starts_with("key-") && store.list().iter().any(|n| n == name) {
            return Err(RecordError::Exists {
                name: name.to_owned(),
            });
        }
        store.put(name, bytes).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc::NodeId;

    #[test]
    fn aux_blob_names_depend_on_the_party_set_only() {
        let set =
            |ids: &[&str]| PartySet::new(ids.iter().map(|i| NodeId::new(*i).unwrap())).unwrap();
        assert_eq!(aux_blob(&set(&["a", "b"])), aux_blob(&set(&["b", "a"])));
        assert_ne!(aux_blob(&set(&["a", "b"])), aux_blob(&set(&["a", "c"])));
        assert_ne!(aux_blob(&set(&["ab", "c"])), aux_blob(&set(&["a", "bc"])));
        transport::blob::validate_name(&aux_blob(&set(&["a", "b"]))).unwrap();
        transport::blob::validate_name(&key_blob(&KeyId::new("k".repeat(64)).unwrap())).unwrap();
    }
}
