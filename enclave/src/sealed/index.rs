//! The sealed index: every blob's name, counter and nonce, itself sealed, and the
//! freshness rules of the module docs applied to each blob read back.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
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
    pub(super) store: StoreId,
    pub(super) counter: u64,
    pub(super) entries: BTreeMap<String, Entry>,
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

    pub(super) fn bump(&mut self) -> Result<(), SealError> {
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| SealError::CounterExhausted {
                name: INDEX_NAME.to_owned(),
            })?;
        Ok(())
    }

    pub(super) fn place<'a>(node_id: &'a str) -> BlobPlace<'a> {
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
    pub(super) fn encode(&self) -> Result<Vec<u8>, SealError> {
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

    pub(super) fn decode(bytes: &[u8]) -> Result<(StoreId, BTreeMap<String, Entry>), SealError> {
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
