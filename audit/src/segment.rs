//! The stored form of the log: consecutive runs of entries ("segments"), each sealed by
//! the node and kept by the parent under [`segment_name`].
//!
//! A segment holds at most [`SEGMENT_LEN`] entries and at most [`MAX_SEGMENT_LEN`] bytes,
//! so that it always fits, sealed, in one of the parent's blobs (4 MiB); the node starts
//! the next segment when either would be exceeded. In practice entries are a few hundred
//! bytes and every segment but the last holds [`SEGMENT_LEN`] entries.
//!
//! Encoding, version 1, all integers big-endian:
//!
//! ```text
//! magic      8 bytes  "TCAUDSEG"
//! version    u8       1
//! index      u64      the segment's place: 0, 1, 2, ..
//! first_seq  u64      the seq of its first entry
//! count      u32      1 ..= SEGMENT_LEN
//! count times:
//!   len      u32      1 ..= MAX_ENTRY_LEN
//!   entry    len bytes, the entry's canonical JSON line
//! ```
//!
//! Nothing may follow the last entry. The decoder checks the total length first, and
//! every length before it reads what it announces.

use crate::entry::{Entry, MAX_ENTRY_LEN};
use crate::error::{AuditError, SegmentProblem};

/// Most entries in one segment.
pub const SEGMENT_LEN: usize = 256;
/// Largest encoded segment: the parent's blob limit (4 MiB) less room for sealing.
pub const MAX_SEGMENT_LEN: usize = 4 * 1024 * 1024 - 64 * 1024;
/// What every segment starts with.
pub const SEGMENT_MAGIC: &[u8; 8] = b"TCAUDSEG";
/// The encoding this build writes and reads.
pub const SEGMENT_VERSION: u8 = 1;
/// Bytes before the first entry.
pub(crate) const SEGMENT_HEADER_LEN: usize = 8 + 1 + 8 + 8 + 4;
/// Bytes in front of each entry.
pub(crate) const ENTRY_PREFIX_LEN: usize = 4;

/// The blob name of segment `index`: `audit-segment-` and the index in ten digits, so
/// that names sort in log order.
pub fn segment_name(index: u64) -> String {
    format!("audit-segment-{index:010}")
}

/// Encodes segment `index` holding `entries`, which the caller took from one log.
pub(crate) fn encode(index: u64, entries: &[Entry]) -> Result<Vec<u8>, AuditError> {
    let first_seq = entries.first().map_or(0, Entry::seq);
    let count = u32::try_from(entries.len()).map_err(|_| AuditError::Encoding {
        what: "segment",
        reason: format!("{} entries", entries.len()),
    })?;
    let mut out = Vec::with_capacity(SEGMENT_HEADER_LEN);
    out.extend_from_slice(SEGMENT_MAGIC);
    out.push(SEGMENT_VERSION);
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&first_seq.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for entry in entries {
        let line = entry.to_line()?;
        let len =
            u32::try_from(line.len()).map_err(|_| AuditError::EntryTooLarge { len: line.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(line.as_bytes());
    }
    Ok(out)
}

/// A decoded segment: its entries parsed, not yet checked against the chain.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) index: u64,
    pub(crate) first_seq: u64,
    pub(crate) entries: Vec<Entry>,
}

/// Reads a segment's fields in order, refusing to read past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], SegmentProblem> {
        if len > self.rest.len() {
            return Err(SegmentProblem::Truncated { field });
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SegmentProblem> {
        <[u8; N]>::try_from(self.take(N, field)?).map_err(|_| SegmentProblem::Truncated { field })
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, SegmentProblem> {
        self.array(field).map(u64::from_be_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, SegmentProblem> {
        self.array(field).map(u32::from_be_bytes)
    }
}

/// Decodes a segment read back from the parent; `place` is the index it was read as,
/// and goes into any error.
pub(crate) fn decode(place: u64, bytes: &[u8]) -> Result<Decoded, AuditError> {
    let fail = |problem| AuditError::Segment {
        index: place,
        problem,
    };
    if bytes.len() > MAX_SEGMENT_LEN {
        return Err(fail(SegmentProblem::TooLong {
            len: bytes.len(),
            max: MAX_SEGMENT_LEN,
        }));
    }
    let mut reader = Reader { rest: bytes };
    let magic: [u8; 8] = reader.array("magic").map_err(fail)?;
    if &magic != SEGMENT_MAGIC {
        return Err(fail(SegmentProblem::Magic));
    }
    let [version] = reader.array("version").map_err(fail)?;
    if version != SEGMENT_VERSION {
        return Err(fail(SegmentProblem::Version(version)));
    }
    let index = reader.u64("index").map_err(fail)?;
    let first_seq = reader.u64("first_seq").map_err(fail)?;
    let count = reader.u32("count").map_err(fail)?;
    if count == 0 || count as usize > SEGMENT_LEN {
        return Err(fail(SegmentProblem::Count {
            count: u64::from(count),
            max: SEGMENT_LEN as u64,
        }));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for position in 0..u64::from(count) {
        let entry_problem = |problem| SegmentProblem::Entry { position, problem };
        let len = reader.u32("entry length").map_err(fail)? as usize;
        if len > MAX_ENTRY_LEN {
            return Err(fail(entry_problem(crate::EntryProblem::TooLong { len })));
        }
        let bytes = reader.take(len, "entry").map_err(fail)?;
        let line = std::str::from_utf8(bytes).map_err(|e| {
            fail(entry_problem(crate::EntryProblem::Malformed {
                reason: e.to_string(),
            }))
        })?;
        entries.push(Entry::parse(line).map_err(|p| fail(entry_problem(p)))?);
    }
    if !reader.rest.is_empty() {
        return Err(fail(SegmentProblem::TrailingBytes(reader.rest.len())));
    }
    Ok(Decoded {
        index,
        first_seq,
        entries,
    })
}
