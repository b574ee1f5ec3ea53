//! Node state sealed under a data key that exists only in the node, stored as opaque
//! blobs by the untrusted parent.
//!
//! # Blob format (version 2)
//!
//! `[version u8 = 2][counter u64 BE][nonce 12 random bytes][AES-256-GCM ciphertext || tag]`
//!
//! with associated data
//! `"tee-custody sealed v2" || u8 len || node_id || u8 len || name || counter u64 BE ||
//! store id (16 bytes)`.
//! The AEAD therefore refuses, as [`SealError::Tampered`], any altered byte, a blob
//! stored under another name, another node's blob, a blob sealed under another key and
//! a blob of another store under the same key.
//! Nonces are random: a data key must seal fewer than 2^32 blobs (NIST SP 800-38D).
//!
//! # Store identity
//!
//! A data key can outlive its store: when the parent loses (or pretends to lose) the
//! blobs, the node recovers its key from peers and starts a new store under it, whose
//! counters start again at 1. Without more, a blob of the earlier store would then pass
//! as the newest uncommitted write of its name. Every store therefore has a random
//! [`StoreId`], created with it and kept in the sealed index, and every data blob binds
//! it. The index itself is sealed with the all-zero id [`INDEX_STORE_ID`] (it is what
//! carries the id); a whole earlier store, index included, is the rollback described
//! below.
//!
//! # Rollback
//!
//! The parent can replay an older genuine blob. [`SealedIndex`] (I/O-free) records, for
//! each name, the counter and nonce of the last committed write; it is itself sealed as
//! the blob named [`INDEX_NAME`], whose counter increments on every change. A write
//! stores the blob under counter `committed + 1` first, then the index. A blob read back
//! with counter `c` against the index's committed counter `k` for that name is:
//!
//! - `c == k` with the committed nonce: current.
//! - `c == k + 1`: a write whose index update did not happen (the node stopped between
//!   the two writes). It is the newest write of that name and is accepted; the next
//!   write of the name reuses `k + 1` and, once committed, pins its own nonce.
//! - `c < k`: [`SealError::Rollback`].
//! - `c == k` with another nonce (an uncommitted write superseded by a committed one),
//!   or `c > k + 1`: [`SealError::Inconsistent`].
//!
//! A deleted name keeps a tombstone at the counter the next write would have used, so
//! any earlier blob of that name, committed or not, reads as absent.
//!
//! Limits: the index itself can only be checked for authenticity, not freshness. A
//! parent that replays an old index together with the blobs that match it, or withholds
//! the index (an empty store), presents a consistent older state that the node cannot
//! detect alone; [`SealedIndex::counter`] is there to compare with what peers last saw.
//! Two uncommitted writes of one name at the same counter (two stops in a row between
//! blob and index writes) are both accepted until a write of that name commits.

use aws_lc_rs::{aead, rand};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use transport::blob::{self, CodecError, MAX_BLOB_LEN};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub const VERSION: u8 = 2;
pub const DATA_KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 8 + NONCE_LEN;
/// A blob with an empty plaintext.
pub const MIN_BLOB_LEN: usize = HEADER_LEN + TAG_LEN;
/// The largest plaintext whose blob fits [`MAX_BLOB_LEN`].
pub const MAX_PLAINTEXT_LEN: usize = MAX_BLOB_LEN - MIN_BLOB_LEN;
/// The blob that holds the sealed [`SealedIndex`].
pub const INDEX_NAME: &str = "index";
const AAD_LABEL: &[u8] = b"tee-custody sealed v2";
const INDEX_FORMAT: u8 = 2;
/// Length of a [`StoreId`].
pub const STORE_ID_LEN: usize = 16;
/// The id the index blob is sealed under: the index carries the store's real id.
pub const INDEX_STORE_ID: StoreId = StoreId([0; STORE_ID_LEN]);

/// The identity of one sealed store: random, created with the store, bound into the
/// associated data of each of its blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreId([u8; STORE_ID_LEN]);

impl StoreId {
    /// A fresh random id.
    pub fn generate() -> Result<Self, SealError> {
        let mut id = [0u8; STORE_ID_LEN];
        rand::fill(&mut id).map_err(|_| SealError::Crypto)?;
        Ok(StoreId(id))
    }

    pub fn from_bytes(bytes: [u8; STORE_ID_LEN]) -> Self {
        StoreId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; STORE_ID_LEN] {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("sealed blob of {len} bytes is shorter than the minimum of {MIN_BLOB_LEN}")]
    Malformed { len: usize },
    #[error("unsupported sealed blob version {0}")]
    UnsupportedVersion(u8),
    #[error(
        "sealed blob {name:?} failed authentication: altered, stored under another name, \
         or sealed by another node, key or store"
    )]
    Tampered { name: String },
    #[error(
        "sealed blob {name:?} rolled back: counter {found}, expected at least {expected_at_least}"
    )]
    Rollback {
        name: String,
        found: u64,
        expected_at_least: u64,
    },
    #[error(
        "sealed blob {name:?} does not match the index: counter {found}, committed {committed}"
    )]
    Inconsistent {
        name: String,
        found: u64,
        committed: u64,
    },
    #[error("sealed blob {name:?} is in the index but the store does not have it")]
    Missing { name: String },
    #[error("{len} bytes exceed the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("invalid blob name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("{field} of {len} bytes is longer than 255")]
    FieldTooLong { field: &'static str, len: usize },
    #[error("counter of {name:?} exhausted")]
    CounterExhausted { name: String },
    #[error("the sealed index does not decode: {0}")]
    CorruptIndex(&'static str),
    #[error("a data key is {DATA_KEY_LEN} bytes, got {0}")]
    KeyLength(usize),
    #[error("cryptographic operation failed")]
    Crypto,
    #[error(transparent)]
    Store(#[from] BlobError),
}

/// The node's data key: 32 random bytes that exist only inside the node (and, HPKE-sealed,
/// in escrow with attested peers). Zeroized on drop; no `Clone`, no serialization,
/// redacted `Debug`.
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    pub fn generate() -> Result<Self, SealError> {
        let mut key = DataKey([0; DATA_KEY_LEN]);
        rand::fill(&mut key.0).map_err(|_| SealError::Crypto)?;
        Ok(key)
    }

    pub fn from_bytes(bytes: &[u8; DATA_KEY_LEN]) -> Self {
        DataKey(*bytes)
    }

    /// A key received as bytes of unchecked length (e.g. an opened escrow).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SealError> {
        let bytes: &[u8; DATA_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| SealError::KeyLength(bytes.len()))?;
        Ok(DataKey::from_bytes(bytes))
    }

    /// The raw key. Only for escrow: HPKE-sealing it to a peer's attested key.
    pub fn expose_secret(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }

    fn aead_key(&self) -> Result<aead::LessSafeKey, SealError> {
        aead::UnboundKey::new(&aead::AES_256_GCM, &self.0)
            .map(aead::LessSafeKey::new)
            .map_err(|_| SealError::Crypto)
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for DataKey {}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

fn short_len(field: &'static str, value: &str) -> Result<u8, SealError> {
    u8::try_from(value.len()).map_err(|_| SealError::FieldTooLong {
        field,
        len: value.len(),
    })
}

/// Where a blob belongs: its node, its store and its name.
#[derive(Debug, Clone, Copy)]
pub struct BlobPlace<'a> {
    pub node_id: &'a str,
    pub store: &'a StoreId,
    pub name: &'a str,
}

fn associated_data(place: &BlobPlace<'_>, counter: u64) -> Result<Vec<u8>, SealError> {
    let BlobPlace {
        node_id,
        store,
        name,
    } = place;
    let node_len = short_len("node id", node_id)?;
    let name_len = short_len("blob name", name)?;
    let mut aad =
        Vec::with_capacity(AAD_LABEL.len() + 2 + node_id.len() + name.len() + 8 + STORE_ID_LEN);
    aad.extend_from_slice(AAD_LABEL);
    aad.push(node_len);
    aad.extend_from_slice(node_id.as_bytes());
    aad.push(name_len);
    aad.extend_from_slice(name.as_bytes());
    aad.extend_from_slice(&counter.to_be_bytes());
    aad.extend_from_slice(store.as_bytes());
    Ok(aad)
}

/// Seals `plaintext` as the blob at `place` with `counter`.
pub fn seal(
    key: &DataKey,
    place: &BlobPlace<'_>,
    counter: u64,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    seal_blob(key, place, counter, plaintext).map(|(blob, _)| blob)
}

/// Opens a blob read back from the store: its counter and plaintext.
pub fn open(
    key: &DataKey,
    place: &BlobPlace<'_>,
    blob: &[u8],
) -> Result<(u64, Zeroizing<Vec<u8>>), SealError> {
    open_blob(key, place, blob).map(|opened| (opened.counter, opened.plaintext))
}

fn seal_blob(
    key: &DataKey,
    place: &BlobPlace<'_>,
    counter: u64,
    plaintext: &[u8],
) -> Result<(Vec<u8>, [u8; NONCE_LEN]), SealError> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(SealError::TooLarge {
            len: plaintext.len(),
            max: MAX_PLAINTEXT_LEN,
        });
    }
    let aad = associated_data(place, counter)?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).map_err(|_| SealError::Crypto)?;
    // Sized up front: sealing in place never reallocates, so no copy of the plaintext
    // is left behind.
    let mut body = Vec::with_capacity(plaintext.len() + TAG_LEN);
    body.extend_from_slice(plaintext);
    key.aead_key()?
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut body,
        )
        .map_err(|_| SealError::Crypto)?;
    let mut blob = Vec::with_capacity(HEADER_LEN + body.len());
    blob.push(VERSION);
    blob.extend_from_slice(&counter.to_be_bytes());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&body);
    Ok((blob, nonce))
}

struct Opened {
    counter: u64,
    nonce: [u8; NONCE_LEN],
    plaintext: Zeroizing<Vec<u8>>,
}

fn open_blob(key: &DataKey, place: &BlobPlace<'_>, blob: &[u8]) -> Result<Opened, SealError> {
    if blob.len() > MAX_BLOB_LEN {
        return Err(SealError::TooLarge {
            len: blob.len(),
            max: MAX_BLOB_LEN,
        });
    }
    let (&version, rest) = blob.split_first().ok_or(SealError::Malformed { len: 0 })?;
    if version != VERSION {
        return Err(SealError::UnsupportedVersion(version));
    }
    let malformed = || SealError::Malformed { len: blob.len() };
    if blob.len() < MIN_BLOB_LEN {
        return Err(malformed());
    }
    let (counter, rest) = rest.split_first_chunk::<8>().ok_or_else(malformed)?;
    let (nonce, ciphertext) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or_else(malformed)?;
    let counter = u64::from_be_bytes(*counter);
    let aad = associated_data(place, counter)?;
    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    let len = key
        .aead_key()?
        .open_in_place(
            aead::Nonce::assume_unique_for_key(*nonce),
            aead::Aad::from(aad),
            plaintext.as_mut_slice(),
        )
        .map_err(|_| SealError::Tampered {
            name: place.name.to_owned(),
        })?
        .len();
    plaintext.truncate(len);
    Ok(Opened {
        counter,
        nonce: *nonce,
        plaintext,
    })
}

mod index;
mod store;

pub use index::{Freshness, SealedIndex};
#[cfg(any(test, feature = "sim"))]
pub use store::MemoryBlobs;
pub use store::{BlobError, BlobStore, SealedStore};

#[cfg(test)]
mod tests;
