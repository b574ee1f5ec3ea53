//! The node's log in memory: append signed entries, give back its head and entries,
//! encode it as segments for the parent, and restore it from them with every check a
//! reader of entries makes.

use crate::entry::{Chain, Entry, Head};
use crate::error::{AuditError, SegmentProblem};
use crate::event::Event;
use crate::key::AuditKey;
use crate::segment::{self, ENTRY_PREFIX_LEN, MAX_SEGMENT_LEN, SEGMENT_HEADER_LEN, SEGMENT_LEN};
use ids::NodeId;
use std::fmt;

/// Most entries in one log: an export (header and entries) is at most 1,000,000 lines.
pub const MAX_ENTRIES: u64 = 999_999;

/// One node's audit log and the key that signs it.
pub struct AuditLog {
    node: NodeId,
    key: AuditKey,
    entries: Vec<Entry>,
    /// Where each segment starts, as a position in `entries`.
    segment_starts: Vec<usize>,
    /// The encoded length of the last segment.
    last_segment_len: usize,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("node", &self.node)
            .field("key", &self.key)
            .field("entries", &self.entries.len())
            .field("segments", &self.segment_starts.len())
            .finish()
    }
}

impl AuditLog {
    /// An empty log of `node`, signed with `key`.
    pub fn new(node: NodeId, key: AuditKey) -> Self {
        AuditLog {
            node,
            key,
            entries: Vec::new(),
            segment_starts: Vec::new(),
            last_segment_len: 0,
        }
    }

    /// Rebuilds the log from its segments as the parent returned them, in index order
    /// (segment 0 first): each must carry its own index, start with the entry after the
    /// previous segment's last, and hold entries that link, name `node` and verify
    /// under `key`. A dropped, reordered or replaced segment is refused.
    ///
    /// `expected` is the head the node recorded where the parent cannot roll it back;
    /// the restored log must end exactly there. Without it, a parent that withholds the
    /// newest segments (or hands back an older copy of the last one) goes unnoticed.
    pub fn restore<'a>(
        node: NodeId,
        key: AuditKey,
        segments: impl IntoIterator<Item = &'a [u8]>,
        expected: Option<Head>,
    ) -> Result<Self, AuditError> {
        let mut chain = Chain::new(node.clone(), key.public_key());
        let mut log = AuditLog::new(node, key);
        for (place, bytes) in (0u64..).zip(segments) {
            let fail = |problem| AuditError::Segment {
                index: place,
                problem,
            };
            if chain.head().count >= MAX_ENTRIES {
                return Err(fail(SegmentProblem::BeyondLimit));
            }
            let decoded = segment::decode(place, bytes)?;
            if decoded.index != place {
                return Err(fail(SegmentProblem::Index {
                    expected: place,
                    found: decoded.index,
                }));
            }
            if decoded.first_seq != chain.head().count {
                return Err(fail(SegmentProblem::FirstSeq {
                    expected: chain.head().count,
                    found: decoded.first_seq,
                }));
            }
            log.segment_starts.push(log.entries.len());
            log.last_segment_len = bytes.len();
            for (position, entry) in (0u64..).zip(decoded.entries) {
                chain
                    .accept(&entry)
                    .map_err(|problem| fail(SegmentProblem::Entry { position, problem }))?;
                if chain.head().count > MAX_ENTRIES {
                    return Err(fail(SegmentProblem::BeyondLimit));
                }
                log.entries.push(entry);
            }
        }
        if let Some(expected) = expected
            && expected != chain.head()
        {
            let found = chain.head();
            return Err(AuditError::HeadMismatch {
                expected_count: expected.count,
                expected_head: hex::encode(expected.hash),
                found_count: found.count,
                found_head: hex::encode(found.hash),
            });
        }
        Ok(log)
    }

    /// Signs `event` as the next entry, recorded at `at_ms` (milliseconds since the Unix
    /// epoch, by the caller's clock). Refuses an entry longer than
    /// [`crate::MAX_ENTRY_LEN`] and a log that is full; the log is unchanged then.
    pub fn append(&mut self, event: Event, at_ms: u64) -> Result<&Entry, AuditError> {
        let head = self.head();
        if head.count >= MAX_ENTRIES {
            return Err(AuditError::LogFull);
        }
        let entry = Entry::sign(
            head.count,
            head.hash,
            at_ms,
            self.node.clone(),
            event,
            &self.key,
        )?;
        let stored = ENTRY_PREFIX_LEN + entry.to_line()?.len();
        let last_count = self
            .segment_starts
            .last()
            .map_or(0, |start| self.entries.len().saturating_sub(*start));
        if self.segment_starts.is_empty()
            || last_count >= SEGMENT_LEN
            || self.last_segment_len.saturating_add(stored) > MAX_SEGMENT_LEN
        {
            self.segment_starts.push(self.entries.len());
            self.last_segment_len = SEGMENT_HEADER_LEN;
        }
        self.last_segment_len = self.last_segment_len.saturating_add(stored);
        self.entries.push(entry);
        self.entries.last().ok_or(AuditError::Encoding {
            what: "entry",
            reason: "the appended entry is gone".to_owned(),
        })
    }

    /// The number of entries and the last one's hash.
    pub fn head(&self) -> Head {
        match self.entries.last() {
            None => Head::EMPTY,
            Some(last) => Head {
                count: self.len(),
                hash: *last.hash(),
            },
        }
    }

    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The audit key's public half: what the export's attestation binds.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// Entries `seq` and after; empty when `seq` is at or past the end.
    pub fn entries_from(&self, seq: u64) -> &[Entry] {
        usize::try_from(seq)
            .ok()
            .and_then(|start| self.entries.get(start..))
            .unwrap_or_default()
    }

    /// How many segments the log is stored in; the last one is where the latest entry
    /// went, and the one to write after an append.
    pub fn segment_count(&self) -> u64 {
        self.segment_starts.len() as u64
    }

    /// The segment that holds entry `seq`.
    pub fn segment_of(&self, seq: u64) -> Option<u64> {
        let position = usize::try_from(seq)
            .ok()
            .filter(|p| *p < self.entries.len())?;
        let after = self
            .segment_starts
            .partition_point(|start| *start <= position);
        after.checked_sub(1).map(|i| i as u64)
    }

    /// Segment `index` encoded for sealing, or `None` past the last one.
    pub fn encode_segment(&self, index: u64) -> Option<Result<Vec<u8>, AuditError>> {
        let i = usize::try_from(index).ok()?;
        let start = *self.segment_starts.get(i)?;
        let end = self
            .segment_starts
            .get(i.saturating_add(1))
            .copied()
            .unwrap_or(self.entries.len());
        let entries = self.entries.get(start..end)?;
        Some(segment::encode(index, entries))
    }
}
