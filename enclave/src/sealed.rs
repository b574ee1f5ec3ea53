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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Live {
        counter: u64,
        nonce: [u8; NONCE_LEN],
    },
    /// Every blob of the name up to `counter` reads as absent.
    Deleted { counter: u64 },
}

impl Entry {
    fn counter(&self) -> u64 {
        match self {
            Entry::Live { counter, .. } | Entry::Deleted { counter } => *counter,
        }
    }
}

/// How a blob read back from the store stands against the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The committed write.
    Current,
    /// One past the committed counter: the newest write, whose index update did not
    /// happen.
    Uncommitted,
    /// A leftover of a deleted name.
    Deleted,
}

/// Name -> latest committed counter, with the rollback rule (see the module docs). No
/// I/O: [`SealedStore`] persists it as the sealed blob [`INDEX_NAME`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedIndex {
    store: StoreId,
    counter: u64,
    entries: BTreeMap<String, Entry>,
}

impl SealedIndex {
    /// The empty index of a new store whose id is `store`.
    pub fn new(store: StoreId) -> Self {
        SealedIndex {
            store,
            counter: 0,
            entries: BTreeMap::new(),
        }
    }

    /// The id of the store this index describes.
    pub fn store_id(&self) -> &StoreId {
        &self.store
    }

    /// The index's own counter: the number of changes it has recorded.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Names that currently hold a value, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|(_, entry)| matches!(entry, Entry::Live { .. }))
            .map(|(name, _)| name.as_str())
    }

    /// The committed counter of `name`, if it holds a value.
    pub fn committed(&self, name: &str) -> Option<u64> {
        match self.entries.get(name) {
            Some(Entry::Live { counter, .. }) => Some(*counter),
            _ => None,
        }
    }

    /// The counter the next write of `name` uses.
    pub fn next_counter(&self, name: &str) -> Result<u64, SealError> {
        self.entries
            .get(name)
            .map_or(0, Entry::counter)
            .checked_add(1)
            .ok_or_else(|| SealError::CounterExhausted {
                name: name.to_owned(),
            })
    }

    /// Applies the rollback rule to a blob of `name` that opened with `counter` and
    /// `nonce`.
    pub fn check(
        &self,
        name: &str,
        counter: u64,
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Freshness, SealError> {
        if counter == self.next_counter(name)? {
            return Ok(Freshness::Uncommitted);
        }
        let entry = self.entries.get(name);
        let committed = entry.map_or(0, Entry::counter);
        if counter > committed {
            return Err(SealError::Inconsistent {
                name: name.to_owned(),
                found: counter,
                committed,
            });
        }
        match entry {
            Some(Entry::Deleted { .. }) => Ok(Freshness::Deleted),
            Some(Entry::Live { nonce: pinned, .. }) if counter == committed => {
                if pinned == nonce {
                    Ok(Freshness::Current)
                } else {
                    Err(SealError::Inconsistent {
                        name: name.to_owned(),
                        found: counter,
                        committed,
                    })
                }
            }
            _ => Err(SealError::Rollback {
                name: name.to_owned(),
                found: counter,
                expected_at_least: committed,
            }),
        }
    }

    /// Records a committed write of `name` at `counter`.
    pub fn record_put(
        &mut self,
        name: &str,
        counter: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Result<(), SealError> {
        self.bump()?;
        self.entries
            .insert(name.to_owned(), Entry::Live { counter, nonce });
        Ok(())
    }

    /// Records the deletion of `name`; `true` if it held a value.
    pub fn record_delete(&mut self, name: &str) -> Result<bool, SealError> {
        let counter = self.next_counter(name)?;
        self.bump()?;
        let previous = self
            .entries
            .insert(name.to_owned(), Entry::Deleted { counter });
        Ok(matches!(previous, Some(Entry::Live { .. })))
    }

    fn bump(&mut self) -> Result<(), SealError> {
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| SealError::CounterExhausted {
                name: INDEX_NAME.to_owned(),
            })?;
        Ok(())
    }

    fn place<'a>(node_id: &'a str) -> BlobPlace<'a> {
        BlobPlace {
            node_id,
            store: &INDEX_STORE_ID,
            name: INDEX_NAME,
        }
    }

    /// Seals the index as the blob [`INDEX_NAME`] of `node_id`, at its own counter.
    pub fn seal(&self, key: &DataKey, node_id: &str) -> Result<Vec<u8>, SealError> {
        seal(key, &Self::place(node_id), self.counter, &self.encode()?)
    }

    /// Opens the sealed index.
    pub fn open(key: &DataKey, node_id: &str, blob: &[u8]) -> Result<Self, SealError> {
        let (counter, plaintext) = open(key, &Self::place(node_id), blob)?;
        let (store, entries) = Self::decode(&plaintext)?;
        Ok(SealedIndex {
            store,
            counter,
            entries,
        })
    }

    /// `[format u8 = 2][store id 16][count u32 BE]` then per name, sorted:
    /// `[len u8][name][1: live | 2: deleted][counter u64 BE][nonce 12, live only]`.
    fn encode(&self) -> Result<Vec<u8>, SealError> {
        let count = u32::try_from(self.entries.len())
            .map_err(|_| SealError::CorruptIndex("too many entries"))?;
        let mut out = vec![INDEX_FORMAT];
        out.extend_from_slice(self.store.as_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        for (name, entry) in &self.entries {
            out.push(short_len("blob name", name)?);
            out.extend_from_slice(name.as_bytes());
            match entry {
                Entry::Live { counter, nonce } => {
                    out.push(1);
                    out.extend_from_slice(&counter.to_be_bytes());
                    out.extend_from_slice(nonce);
                }
                Entry::Deleted { counter } => {
                    out.push(2);
                    out.extend_from_slice(&counter.to_be_bytes());
                }
            }
        }
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<(StoreId, BTreeMap<String, Entry>), SealError> {
        let mut r = Reader(bytes);
        if r.u8()? != INDEX_FORMAT {
            return Err(SealError::CorruptIndex("unknown format"));
        }
        let store = StoreId(r.array()?);
        if store == INDEX_STORE_ID {
            return Err(SealError::CorruptIndex("store id is the index's own"));
        }
        let count = u32::from_be_bytes(r.array()?);
        let mut entries = BTreeMap::new();
        for _ in 0..count {
            let len = usize::from(r.u8()?);
            let name = std::str::from_utf8(r.take(len)?)
                .map_err(|_| SealError::CorruptIndex("name is not UTF-8"))?;
            blob::validate_name(name).map_err(|_| SealError::CorruptIndex("invalid name"))?;
            let state = r.u8()?;
            let counter = u64::from_be_bytes(r.array()?);
            let entry = match state {
                1 => Entry::Live {
                    counter,
                    nonce: r.array()?,
                },
                2 => Entry::Deleted { counter },
                _ => return Err(SealError::CorruptIndex("unknown entry state")),
            };
            if entries.insert(name.to_owned(), entry).is_some() {
                return Err(SealError::CorruptIndex("duplicate name"));
            }
        }
        if !r.0.is_empty() {
            return Err(SealError::CorruptIndex("trailing bytes"));
        }
        Ok((store, entries))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SealError> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or(SealError::CorruptIndex("truncated"))?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SealError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(SealError::CorruptIndex("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, SealError> {
        self.array::<1>().map(|[b]| b)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "node-1";
    const KEY: [u8; 32] = [0x42; 32];

    const STORE: StoreId = StoreId([0x5e; STORE_ID_LEN]);

    fn at<'a>(node_id: &'a str, name: &'a str) -> BlobPlace<'a> {
        BlobPlace {
            node_id,
            store: &STORE,
            name,
        }
    }

    fn key() -> DataKey {
        DataKey::from_bytes(&KEY)
    }

    async fn store(blobs: &MemoryBlobs) -> SealedStore<MemoryBlobs> {
        SealedStore::open(blobs.clone(), key(), NODE).await.unwrap()
    }

    async fn raw(blobs: &MemoryBlobs, name: &str) -> Vec<u8> {
        blobs.get(name).await.unwrap().unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_format() {
        let blob = seal(&key(), &at(NODE, "share"), 7, b"secret share").unwrap();
        assert_eq!(blob.len(), MIN_BLOB_LEN + b"secret share".len());
        assert_eq!(blob[0], VERSION);
        assert_eq!(blob[1..9], 7u64.to_be_bytes());
        let (counter, pt) = open(&key(), &at(NODE, "share"), &blob).unwrap();
        assert_eq!(counter, 7);
        assert_eq!(pt.as_slice(), b"secret share");
        // Same input, fresh nonce.
        assert_ne!(
            blob,
            seal(&key(), &at(NODE, "share"), 7, b"secret share").unwrap()
        );
        let (_, empty) = open(
            &key(),
            &at(NODE, "e"),
            &seal(&key(), &at(NODE, "e"), 1, b"").unwrap(),
        )
        .unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn any_flipped_bit_is_tampered() {
        let blob = seal(&key(), &at(NODE, "share"), 3, b"secret share").unwrap();
        for i in 1..blob.len() {
            for bit in [0x01, 0x80] {
                let mut bad = blob.clone();
                bad[i] ^= bit;
                assert!(
                    matches!(
                        open(&key(), &at(NODE, "share"), &bad),
                        Err(SealError::Tampered { ref name }) if name == "share"
                    ),
                    "byte {i}"
                );
            }
        }
        // A blob of the earlier format (no store id) is not read.
        let mut bad = blob.clone();
        bad[0] = 1;
        assert!(matches!(
            open(&key(), &at(NODE, "share"), &bad),
            Err(SealError::UnsupportedVersion(1))
        ));
    }

    #[test]
    fn another_name_node_or_key_is_tampered() {
        let blob = seal(&key(), &at(NODE, "share"), 1, b"x").unwrap();
        for (node, name, k) in [
            (NODE, "other", KEY),
            ("node-2", "share", KEY),
            (NODE, "share", [0x43; 32]),
        ] {
            assert!(matches!(
                open(&DataKey::from_bytes(&k), &at(node, name), &blob),
                Err(SealError::Tampered { .. })
            ));
        }
    }

    #[test]
    fn another_store_under_the_same_key_is_tampered() {
        let blob = seal(&key(), &at(NODE, "share"), 1, b"x").unwrap();
        let earlier = StoreId([0x11; STORE_ID_LEN]);
        let place = BlobPlace {
            node_id: NODE,
            store: &earlier,
            name: "share",
        };
        assert!(matches!(
            open(&key(), &place, &blob),
            Err(SealError::Tampered { .. })
        ));
        assert_ne!(StoreId::generate().unwrap(), StoreId::generate().unwrap());
    }

    /// The parent wipes the store; the node recovers its key from peers and starts a new
    /// store under it. A blob of the earlier store, at the counter the new store's next
    /// write of that name would use, must not pass as that write.
    #[tokio::test]
    async fn a_blob_of_an_earlier_store_under_the_same_key_is_refused() {
        let blobs = MemoryBlobs::new();
        let mut earlier = store(&blobs).await;
        earlier.put("key-a", b"old share").await.unwrap();
        let old_blob = raw(&blobs, "key-a").await;
        let old_id = *earlier.index().store_id();
        drop(earlier);

        let wiped = MemoryBlobs::new();
        let mut fresh = store(&wiped).await;
        assert_ne!(fresh.index().store_id(), &old_id);
        fresh.put("node-info", b"{}").await.unwrap();
        assert_eq!(fresh.index().next_counter("key-a").unwrap(), 1);
        wiped.put("key-a", old_blob.clone()).await.unwrap();
        assert!(matches!(
            fresh.get("key-a").await,
            Err(SealError::Tampered { ref name }) if name == "key-a"
        ));
        // Its id survives a restart, and the refusal with it.
        let restarted = SealedStore::open(wiped.clone(), key(), NODE).await.unwrap();
        assert_eq!(restarted.index().store_id(), fresh.index().store_id());
        assert!(matches!(
            restarted.get("key-a").await,
            Err(SealError::Tampered { .. })
        ));
        // The same blob in its own store still opens: the refusal is the store id's.
        let own = SealedStore::open(blobs.clone(), key(), NODE).await.unwrap();
        assert_eq!(
            own.get("key-a").await.unwrap().unwrap().as_slice(),
            b"old share"
        );
    }

    #[test]
    fn truncated_and_oversize_blobs() {
        let blob = seal(&key(), &at(NODE, "n"), 1, b"").unwrap();
        assert!(matches!(
            open(&key(), &at(NODE, "n"), &[]),
            Err(SealError::Malformed { len: 0 })
        ));
        for len in 1..MIN_BLOB_LEN {
            assert!(matches!(
                open(&key(), &at(NODE, "n"), &blob[..len]),
                Err(SealError::Malformed { len: l }) if l == len
            ));
        }
        open(&key(), &at(NODE, "n"), &blob).unwrap();

        // Exactly the largest plaintext fits MAX_BLOB_LEN; one more byte does not.
        let big = vec![7u8; MAX_PLAINTEXT_LEN];
        let blob = seal(&key(), &at(NODE, "n"), 1, &big).unwrap();
        assert_eq!(blob.len(), MAX_BLOB_LEN);
        assert_eq!(
            open(&key(), &at(NODE, "n"), &blob).unwrap().1.len(),
            MAX_PLAINTEXT_LEN
        );
        assert!(matches!(
            seal(&key(), &at(NODE, "n"), 1, &vec![7u8; MAX_PLAINTEXT_LEN + 1]),
            Err(SealError::TooLarge { .. })
        ));
        let mut over = blob;
        over.push(0);
        assert!(matches!(
            open(&key(), &at(NODE, "n"), &over),
            Err(SealError::TooLarge { len, .. }) if len == MAX_BLOB_LEN + 1
        ));
    }

    #[test]
    fn long_node_id_is_refused() {
        let long = "n".repeat(256);
        assert!(matches!(
            seal(&key(), &at(&long, "n"), 1, b""),
            Err(SealError::FieldTooLong { len: 256, .. })
        ));
        seal(&key(), &at(&long[..255], "n"), 1, b"").unwrap();
    }

    #[test]
    fn data_key_debug_is_redacted() {
        assert_eq!(format!("{:?}", key()), "DataKey(<redacted>)");
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let c = DataKey::from_slice(a.expose_secret()).unwrap();
        assert_eq!(c.expose_secret(), a.expose_secret());
        assert!(matches!(
            DataKey::from_slice(&[0; 31]),
            Err(SealError::KeyLength(31))
        ));
    }

    #[test]
    fn index_rule() {
        let mut index = SealedIndex::new(STORE);
        let (n1, n2) = ([1; NONCE_LEN], [2; NONCE_LEN]);
        // Unknown name: only the first write, uncommitted, is acceptable.
        assert_eq!(index.check("a", 1, &n1).unwrap(), Freshness::Uncommitted);
        assert!(matches!(
            index.check("a", 2, &n1),
            Err(SealError::Inconsistent { .. })
        ));
        assert!(matches!(
            index.check("a", 0, &n1),
            Err(SealError::Rollback { .. })
        ));

        index.record_put("a", 1, n1).unwrap();
        index.record_put("a", 2, n2).unwrap();
        assert_eq!(index.counter(), 2);
        assert_eq!(index.check("a", 2, &n2).unwrap(), Freshness::Current);
        assert_eq!(index.check("a", 3, &n1).unwrap(), Freshness::Uncommitted);
        assert!(matches!(
            index.check("a", 1, &n1),
            Err(SealError::Rollback {
                found: 1,
                expected_at_least: 2,
                ..
            })
        ));
        assert!(matches!(
            index.check("a", 2, &n1),
            Err(SealError::Inconsistent {
                found: 2,
                committed: 2,
                ..
            })
        ));
        assert!(matches!(
            index.check("a", 4, &n1),
            Err(SealError::Inconsistent { found: 4, .. })
        ));

        assert!(index.record_delete("a").unwrap());
        assert_eq!(index.committed("a"), None);
        for counter in 1..=3 {
            assert_eq!(index.check("a", counter, &n1).unwrap(), Freshness::Deleted);
        }
        assert_eq!(index.next_counter("a").unwrap(), 4);
        assert_eq!(index.check("a", 4, &n1).unwrap(), Freshness::Uncommitted);
        assert!(!index.record_delete("a").unwrap());

        let sealed = index.seal(&key(), NODE).unwrap();
        assert_eq!(SealedIndex::open(&key(), NODE, &sealed).unwrap(), index);
    }

    #[test]
    fn index_decoding_refuses_garbage() {
        let mut index = SealedIndex::new(STORE);
        index.record_put("a", 1, [1; NONCE_LEN]).unwrap();
        index.record_delete("b").unwrap();
        let bytes = index.encode().unwrap();
        assert_eq!(
            SealedIndex::decode(&bytes).unwrap(),
            (STORE, index.entries.clone())
        );
        for len in 0..bytes.len() {
            assert!(SealedIndex::decode(&bytes[..len]).is_err(), "{len}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(SealedIndex::decode(&trailing).is_err());
        let mut bad_format = bytes.clone();
        bad_format[0] = 9;
        assert!(SealedIndex::decode(&bad_format).is_err());
        // The index's own all-zero id is never a store's id.
        let mut zero_id = bytes;
        zero_id[1..1 + STORE_ID_LEN].fill(0);
        assert!(matches!(
            SealedIndex::decode(&zero_id),
            Err(SealError::CorruptIndex(_))
        ));
    }

    #[tokio::test]
    async fn store_round_trip_list_delete() {
        let blobs = MemoryBlobs::new();
        let mut store = store(&blobs).await;
        assert!(store.list().is_empty());
        assert_eq!(store.get("share").await.unwrap(), None);
        assert_eq!(store.put("share", b"v1").await.unwrap(), 1);
        assert_eq!(store.put("share", b"v2").await.unwrap(), 2);
        assert_eq!(store.put("other", b"").await.unwrap(), 1);
        assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v2");
        assert_eq!(store.get("other").await.unwrap().unwrap().as_slice(), b"");
        assert_eq!(store.list(), ["other", "share"]);
        assert_eq!(store.index().counter(), 3);

        assert!(store.delete("share").await.unwrap());
        assert!(!store.delete("share").await.unwrap());
        assert_eq!(store.get("share").await.unwrap(), None);
        assert_eq!(store.list(), ["other"]);
        assert_eq!(blobs.list("").await.unwrap(), ["index", "other"]);
        // Each delete tombstones the counter a write would have used: 3, then 4.
        assert_eq!(store.put("share", b"v3").await.unwrap(), 5);
        assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v3");
    }

    #[tokio::test]
    async fn restart_reads_everything_back() {
        let blobs = MemoryBlobs::new();
        let mut first = store(&blobs).await;
        for i in 0..5u8 {
            first.put(&format!("share-{i}"), &[i; 40]).await.unwrap();
        }
        first.put("share-0", b"updated").await.unwrap();
        first.delete("share-4").await.unwrap();
        let index = first.index().clone();
        drop(first);

        let second = store(&blobs).await;
        assert_eq!(second.index(), &index);
        assert_eq!(second.list(), ["share-0", "share-1", "share-2", "share-3"]);
        assert_eq!(
            second.get("share-0").await.unwrap().unwrap().as_slice(),
            b"updated"
        );
        for i in 1..4u8 {
            let value = second.get(&format!("share-{i}")).await.unwrap().unwrap();
            assert_eq!(value.as_slice(), [i; 40]);
        }
        assert_eq!(second.get("share-4").await.unwrap(), None);

        // Another key or node id cannot open the index: an error, not an empty store.
        let other_key = SealedStore::open(blobs.clone(), DataKey::from_bytes(&[1; 32]), NODE).await;
        assert!(matches!(other_key, Err(SealError::Tampered { ref name }) if name == INDEX_NAME));
        let other_node = SealedStore::open(blobs.clone(), key(), "node-2").await;
        assert!(matches!(other_node, Err(SealError::Tampered { .. })));
    }

    #[tokio::test]
    async fn a_flipped_byte_anywhere_is_refused() {
        let blobs = MemoryBlobs::new();
        let mut store = store(&blobs).await;
        store.put("share", b"secret share").await.unwrap();
        let good = raw(&blobs, "share").await;
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x04;
            blobs.put("share", bad).await.unwrap();
            let err = store.get("share").await.unwrap_err();
            assert!(
                matches!(
                    err,
                    SealError::Tampered { .. } | SealError::UnsupportedVersion(_)
                ),
                "byte {i}: {err}"
            );
        }
        blobs.put("share", good).await.unwrap();
        assert_eq!(
            store.get("share").await.unwrap().unwrap().as_slice(),
            b"secret share"
        );
    }

    #[tokio::test]
    async fn a_blob_copied_under_another_name_is_refused() {
        let blobs = MemoryBlobs::new();
        let mut store = store(&blobs).await;
        store.put("share-a", b"a").await.unwrap();
        store.put("share-b", b"b").await.unwrap();
        blobs
            .put("share-b", raw(&blobs, "share-a").await)
            .await
            .unwrap();
        assert!(matches!(
            store.get("share-b").await,
            Err(SealError::Tampered { ref name }) if name == "share-b"
        ));
        // Also under a name the index does not know.
        blobs
            .put("share-c", raw(&blobs, "share-a").await)
            .await
            .unwrap();
        assert!(matches!(
            store.get("share-c").await,
            Err(SealError::Tampered { .. })
        ));
    }

    #[tokio::test]
    async fn another_nodes_blob_is_refused() {
        let blobs = MemoryBlobs::new();
        let mut store = store(&blobs).await;
        store.put("share", b"mine").await.unwrap();
        let theirs = MemoryBlobs::new();
        let mut other = SealedStore::open(theirs.clone(), key(), "node-2")
            .await
            .unwrap();
        other.put("share", b"theirs").await.unwrap();
        blobs
            .put("share", raw(&theirs, "share").await)
            .await
            .unwrap();
        assert!(matches!(
            store.get("share").await,
            Err(SealError::Tampered { .. })
        ));
    }

    #[tokio::test]
    async fn replaying_an_older_version_is_rollback() {
        let blobs = MemoryBlobs::new();
        let mut store = store(&blobs).await;
        store.put("share", b"v1").await.unwrap();
        let v1 = raw(&blobs, "share").await;
        store.put("share", b"v2").await.unwrap();
        store.put("share", b"v3").await.unwrap();
        blobs.put("share", v1.clone()).await.unwrap();
        assert!(matches!(
            store.get("share").await,
            Err(SealError::Rollback { ref name, found: 1, expected_at_least: 3 }) if name == "share"
        ));
        // And after a restart.
        let restarted = SealedStore::open(blobs.clone(), key(), NODE).await.unwrap();
        assert!(matches!(
            restarted.get("share").await,
            Err(SealError::Rollback { .. })
        ));
        // A deleted blob put back reads as absent.
        let mut store = restarted;
        store.delete("share").await.unwrap();
        blobs.put("share", v1).await.unwrap();
        assert_eq!(store.get("share").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_tampered_or_replaced_index_is_an_error() {
        let blobs = MemoryBlobs::new();
        let mut store = store(&blobs).await;
        store.put("share", b"v1").await.unwrap();
        let index = raw(&blobs, INDEX_NAME).await;
        for i in 0..index.len() {
            let mut bad = index.clone();
            bad[i] ^= 0x10;
            blobs.put(INDEX_NAME, bad).await.unwrap();
            assert!(
                SealedStore::open(blobs.clone(), key(), NODE).await.is_err(),
                "byte {i}"
            );
        }
        // A data blob put in the index's place.
        blobs
            .put(INDEX_NAME, raw(&blobs, "share").await)
            .await
            .unwrap();
        assert!(matches!(
            SealedStore::open(blobs.clone(), key(), NODE).await,
            Err(SealError::Tampered { .. })
        ));
        blobs.put(INDEX_NAME, vec![VERSION, 2, 3]).await.unwrap();
        assert!(matches!(
            SealedStore::open(blobs.clone(), key(), NODE).await,
            Err(SealError::Malformed { len: 3 })
        ));
        blobs.put(INDEX_NAME, index).await.unwrap();
        let store = SealedStore::open(blobs.clone(), key(), NODE).await.unwrap();
        assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v1");
    }

    #[tokio::test]
    async fn a_missing_blob_is_an_error() {
        let blobs = MemoryBlobs::new();
        let mut store = store(&blobs).await;
        store.put("share", b"v1").await.unwrap();
        blobs.delete("share").await.unwrap();
        assert!(matches!(
            store.get("share").await,
            Err(SealError::Missing { .. })
        ));
    }

    /// The node stops after writing a blob and before writing the index.
    #[tokio::test]
    async fn a_write_interrupted_before_its_index_update() {
        let blobs = MemoryBlobs::new();
        let mut store = store(&blobs).await;
        store.put("share", b"v1").await.unwrap();
        let index_v1 = raw(&blobs, INDEX_NAME).await;
        store.put("share", b"v2").await.unwrap();
        let orphan = raw(&blobs, "share").await;
        // As if the index write of v2 never happened.
        blobs.put(INDEX_NAME, index_v1).await.unwrap();

        let mut store = SealedStore::open(blobs.clone(), key(), NODE).await.unwrap();
        assert_eq!(store.index().committed("share"), Some(1));
        assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v2");

        // The next write reuses counter 2 and pins its nonce: the orphan no longer passes.
        assert_eq!(store.put("share", b"v3").await.unwrap(), 2);
        blobs.put("share", orphan).await.unwrap();
        assert!(matches!(
            store.get("share").await,
            Err(SealError::Inconsistent {
                found: 2,
                committed: 2,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn names_are_checked() {
        let blobs = MemoryBlobs::new();
        let mut store = store(&blobs).await;
        for bad in ["", ".hidden", "a/b", INDEX_NAME] {
            assert!(matches!(
                store.put(bad, b"x").await,
                Err(SealError::InvalidName { .. })
            ));
            assert!(matches!(
                store.get(bad).await,
                Err(SealError::InvalidName { .. })
            ));
        }
        assert!(matches!(
            store.put("big", &vec![0; MAX_PLAINTEXT_LEN + 1]).await,
            Err(SealError::TooLarge { .. })
        ));
        // Nothing was written by the refused calls.
        assert!(blobs.list("").await.unwrap().is_empty());
    }
}
