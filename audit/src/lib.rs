//! The node's audit log: every decision and change a node makes (requests, approvals,
//! the policy's decisions, signatures, policy and manifest changes, key creation,
//! restarts), as a hash chain of entries each signed with the node's audit key, which
//! the node's attestation binds when it exports the log.
//!
//! This crate is pure: no I/O, no clock (times are passed in), no async. The node keeps
//! an [`AuditLog`] in memory, seals its segments and stores them at the parent; an
//! auditor checks an export offline with [`verify_export`] (or [`ExportVerifier`], one
//! line at a time).
//!
//! - [`event`]: what an entry records ([`Event`]).
//! - [`entry`]: one entry, its canonical JSON line, its hash and signature.
//! - [`key`]: [`AuditKey`], the Ed25519 key that signs entries.
//! - [`log`]: [`AuditLog`]: append, head, entries, and restore from segments.
//! - [`segment`]: the stored form, in segments of at most [`SEGMENT_LEN`] entries.
//! - [`export`]: the JSON Lines export with its attestation, and its verification.
//! - [`error`]: [`AuditError`] and the problems it names.
//!
//! Formats, each written down in its module: the entry line and hash ([`entry`]), the
//! segment encoding, version 1 ([`segment`]), the export ([`export`]).
#![forbid(unsafe_code)]

pub mod entry;
pub mod error;
pub mod event;
pub mod export;
mod hex_serde;
pub mod key;
pub mod log;
pub mod segment;

pub use entry::{Entry, HASH_CONTEXT, Head, MAX_ENTRY_LEN};
pub use error::{AuditError, EntryProblem, ExportProblem, KeyError, SegmentProblem};
pub use event::{Event, Outcome, Summary};
pub use export::{
    EXPORT_FORMAT, ExportHeader, ExportVerifier, HEAD_NONCE_CONTEXT, MAX_HEADER_LEN, MAX_LINE_LEN,
    MAX_LINES, VerifiedExport, attestation_request, export_header, head_nonce, verify_export,
};
pub use hex_serde::MAX_HEX_BYTES;
pub use key::{AuditKey, SIGNATURE_CONTEXT};
pub use log::{AuditLog, MAX_ENTRIES};
pub use segment::{MAX_SEGMENT_LEN, SEGMENT_LEN, SEGMENT_MAGIC, SEGMENT_VERSION, segment_name};

#[cfg(test)]
mod tests;
