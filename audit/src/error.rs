//! What can go wrong with an audit log, named precisely enough to act on: the segment
//! or the export line at fault, and what is wrong with it.

use crate::entry::MAX_ENTRY_LEN;
use crate::log::MAX_ENTRIES;
use attestation::{AppraisalError, VerifyError};
use ids::NodeId;

/// Every failure of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Append refuses an entry it would otherwise have to cut.
    #[error("the entry would be {len} bytes, at most {MAX_ENTRY_LEN} are allowed")]
    EntryTooLarge { len: usize },
    #[error("the log holds {MAX_ENTRIES} entries, the most one export can carry")]
    LogFull,
    #[error("audit key: {0}")]
    Key(#[from] KeyError),
    /// Serializing a value of ours failed (it cannot, for the types of this crate).
    #[error("encoding {what}: {reason}")]
    Encoding { what: &'static str, reason: String },
    /// A stored segment, read back from the parent, is not what this node wrote.
    #[error("segment {index}: {problem}")]
    Segment { index: u64, problem: SegmentProblem },
    /// The restored log does not end where the node's own record says it ended: the
    /// parent handed back an older state.
    #[error(
        "the stored log ends at {found_count} entries (head {found_head}), the node recorded {expected_count} (head {expected_head})"
    )]
    HeadMismatch {
        expected_count: u64,
        expected_head: String,
        found_count: u64,
        found_head: String,
    },
    /// An export does not verify; `line` counts from 1, the header being line 1.
    #[error("line {line}: {problem}")]
    Export { line: u64, problem: ExportProblem },
}

/// The audit key could not be made, read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("not an Ed25519 PKCS#8 key: {0}")]
    Rejected(String),
    #[error("PKCS#8 export failed")]
    Export,
}

/// What is wrong with one entry, in a segment or in an export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryProblem {
    #[error("{len} bytes, an entry is at most {MAX_ENTRY_LEN}")]
    TooLong { len: usize },
    #[error("not an entry: {reason}")]
    Malformed { reason: String },
    /// It parses, but is not byte for byte what the node wrote (spaces, field order,
    /// upper-case hex, unknown fields): something edited it.
    #[error("not in the canonical form the node writes")]
    NotCanonical,
    #[error("entry {found} where entry {expected} belongs")]
    Seq { expected: u64, found: u64 },
    #[error("entry {seq} does not link to the entry before it")]
    Prev { seq: u64 },
    #[error("entry {seq}: the signature does not verify under the log's key")]
    Signature { seq: u64 },
    #[error("entry {seq} names node {found}, the log is node {expected}'s")]
    Node {
        seq: u64,
        expected: NodeId,
        found: NodeId,
    },
}

/// What is wrong with a stored segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentProblem {
    #[error("{len} bytes, a segment is at most {max}")]
    TooLong { len: usize, max: usize },
    #[error("ends early, in {field}")]
    Truncated { field: &'static str },
    #[error("not an audit segment")]
    Magic,
    #[error("format version {0}, this build reads version 1")]
    Version(u8),
    #[error("{0} bytes after the last entry")]
    TrailingBytes(usize),
    /// A segment read in place `expected` says it is segment `found`: a segment was
    /// dropped, reordered or renamed.
    #[error("read where segment {expected} belongs, it is segment {found}")]
    Index { expected: u64, found: u64 },
    #[error("{count} entries, a segment holds 1 to {max}")]
    Count { count: u64, max: u64 },
    /// Its first entry is not the one after the previous segment's last.
    #[error("starts at entry {found}, entry {expected} comes next")]
    FirstSeq { expected: u64, found: u64 },
    #[error("the log is full, no segment may follow")]
    BeyondLimit,
    #[error("entry {position} of the segment: {problem}")]
    Entry {
        position: u64,
        problem: EntryProblem,
    },
}

/// What is wrong with one line of an export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportProblem {
    #[error("the export is empty")]
    Empty,
    #[error("an empty line")]
    EmptyLine,
    #[error("{len} bytes, a line is at most {max}")]
    LineTooLong { len: usize, max: usize },
    #[error("more than {max} lines")]
    TooManyLines { max: u64 },
    #[error("not an export header: {reason}")]
    Header { reason: String },
    #[error("format {found:?}, this build reads \"tee-custody-audit-v1\"")]
    Format { found: String },
    #[error("the attestation document does not verify: {0}")]
    Attestation(#[from] AppraisalError),
    #[error(
        "the attestation document comes from a TEE in debug mode, whose memory its host can read"
    )]
    DebugMode,
    #[error("the attestation document vouches for another key than the header's")]
    AttestedKey,
    #[error("the attestation document's nonce is not the binding of the header's count and head")]
    AttestedHead,
    #[error("the attestation document's user data is not the header's manifest hash")]
    AttestedManifest,
    #[error("{0}")]
    Entry(#[from] EntryProblem),
    /// The header promised `count` entries and the export has fewer.
    #[error("entry {seq} is missing: the header says the log has {count} entries")]
    Missing { seq: u64, count: u64 },
    /// An entry beyond the header's count.
    #[error("entry {seq} is beyond the header's count of {count}")]
    Extra { seq: u64, count: u64 },
    #[error("the last entry's hash is not the header's head")]
    Head,
}

impl From<VerifyError> for ExportProblem {
    fn from(e: VerifyError) -> Self {
        ExportProblem::Attestation(AppraisalError::Verify(e))
    }
}
