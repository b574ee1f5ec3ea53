//! One entry of the log, its hash, its signature, its one canonical JSON form, and the
//! chain check that every reader of entries (a node restoring its segments, an auditor
//! reading an export) runs the same way.
//!
//! An entry is the JSON object
//! `{"seq":N,"prev":"<hex>","at_ms":N,"node":"<id>","event":{"kind":..},"signature":"<hex>"}`
//! written by `serde_json` from the struct, so its field order is fixed, with no spaces,
//! and byte fields in lower-case hex. A reader re-serializes what it parsed and refuses a
//! line that is not byte for byte that form ([`EntryProblem::NotCanonical`]).
//!
//! Its hash is SHA-256 of [`HASH_CONTEXT`] followed by the same JSON without the
//! `signature` field: `{"seq":..,"prev":..,"at_ms":..,"node":..,"event":{..}}`. `prev` is
//! the previous entry's hash, all zeros for entry 0. The signature is Ed25519 by the
//! node's audit key over [`crate::SIGNATURE_CONTEXT`] followed by the hash.

use crate::error::{AuditError, EntryProblem};
use crate::event::Event;
use crate::hex_serde;
use crate::key::{self, AuditKey};
use aws_lc_rs::digest::{self, SHA256};
use ids::NodeId;
use serde::{Deserialize, Serialize};

/// Longest entry, as its JSON line (without the line break).
pub const MAX_ENTRY_LEN: usize = 16 * 1024;
/// What the hashed encoding of an entry starts with.
pub const HASH_CONTEXT: &[u8] = b"tee-custody audit entry v1\0";

/// One signed entry. Only [`crate::AuditLog::append`] and [`Entry::parse`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    seq: u64,
    prev: [u8; 32],
    at_ms: u64,
    node: NodeId,
    event: Event,
    signature: [u8; 64],
    hash: [u8; 32],
}

/// The hashed part of an entry, in its field order.
#[derive(Serialize)]
struct Unsigned<'a> {
    seq: u64,
    #[serde(with = "hex_serde::array")]
    prev: [u8; 32],
    at_ms: u64,
    node: &'a NodeId,
    event: &'a Event,
}

/// The whole entry, in its field order.
#[derive(Serialize)]
struct Signed<'a> {
    seq: u64,
    #[serde(with = "hex_serde::array")]
    prev: [u8; 32],
    at_ms: u64,
    node: &'a NodeId,
    event: &'a Event,
    #[serde(with = "hex_serde::array")]
    signature: [u8; 64],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    seq: u64,
    #[serde(with = "hex_serde::array")]
    prev: [u8; 32],
    at_ms: u64,
    node: NodeId,
    event: Event,
    #[serde(with = "hex_serde::array")]
    signature: [u8; 64],
}

fn encode(what: &'static str, value: &impl Serialize) -> Result<String, AuditError> {
    serde_json::to_string(value).map_err(|e| AuditError::Encoding {
        what,
        reason: e.to_string(),
    })
}

fn hash_of(unsigned: &Unsigned<'_>) -> Result<[u8; 32], AuditError> {
    let json = encode("entry", unsigned)?;
    let mut context = digest::Context::new(&SHA256);
    context.update(HASH_CONTEXT);
    context.update(json.as_bytes());
    let digest = context.finish();
    <[u8; 32]>::try_from(digest.as_ref()).map_err(|_| AuditError::Encoding {
        what: "entry hash",
        reason: "SHA-256 gave other than 32 bytes".to_owned(),
    })
}

impl Entry {
    /// Signs the entry that follows `prev` as number `seq`. Refuses one whose line would
    /// be longer than [`MAX_ENTRY_LEN`].
    pub(crate) fn sign(
        seq: u64,
        prev: [u8; 32],
        at_ms: u64,
        node: NodeId,
        event: Event,
        key: &AuditKey,
    ) -> Result<Entry, AuditError> {
        let signed = Signed {
            seq,
            prev,
            at_ms,
            node: &node,
            event: &event,
            signature: [0; 64],
        };
        // Every signature is 128 hex characters: the length is known before signing.
        let len = encode("entry", &signed)?.len();
        if len > MAX_ENTRY_LEN {
            return Err(AuditError::EntryTooLarge { len });
        }
        let hash = hash_of(&Unsigned {
            seq,
            prev,
            at_ms,
            node: &node,
            event: &event,
        })?;
        let signature = key.sign(&hash);
        Ok(Entry {
            seq,
            prev,
            at_ms,
            node,
            event,
            signature,
            hash,
        })
    }

    /// Parses one line in the canonical form and computes its hash. Nothing about the
    /// chain or the signature is checked: [`Chain::accept`] does that.
    pub fn parse(line: &str) -> Result<Entry, EntryProblem> {
        if line.len() > MAX_ENTRY_LEN {
            return Err(EntryProblem::TooLong { len: line.len() });
        }
        let wire: Wire = serde_json::from_str(line).map_err(|e| EntryProblem::Malformed {
            reason: e.to_string(),
        })?;
        let malformed = |e: AuditError| EntryProblem::Malformed {
            reason: e.to_string(),
        };
        let hash = hash_of(&Unsigned {
            seq: wire.seq,
            prev: wire.prev,
            at_ms: wire.at_ms,
            node: &wire.node,
            event: &wire.event,
        })
        .map_err(malformed)?;
        let entry = Entry {
            seq: wire.seq,
            prev: wire.prev,
            at_ms: wire.at_ms,
            node: wire.node,
            event: wire.event,
            signature: wire.signature,
            hash,
        };
        if entry.to_line().map_err(malformed)? != line {
            return Err(EntryProblem::NotCanonical);
        }
        Ok(entry)
    }

    /// The canonical JSON line, without the line break.
    pub fn to_line(&self) -> Result<String, AuditError> {
        encode(
            "entry",
            &Signed {
                seq: self.seq,
                prev: self.prev,
                at_ms: self.at_ms,
                node: &self.node,
                event: &self.event,
                signature: self.signature,
            },
        )
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The previous entry's hash; all zeros for entry 0.
    pub fn prev(&self) -> &[u8; 32] {
        &self.prev
    }

    /// When the node recorded it, in milliseconds since the Unix epoch, by its clock.
    pub fn at_ms(&self) -> u64 {
        self.at_ms
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// This entry's hash: the next entry's `prev`.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
}

/// Where a log stands: how many entries it has and the last one's hash (all zeros when
/// it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub count: u64,
    pub hash: [u8; 32],
}

impl Head {
    /// The head of an empty log.
    pub const EMPTY: Head = Head {
        count: 0,
        hash: [0; 32],
    };
}

/// The reader's side of the chain: the next entry must be number `head.count`, link to
/// `head.hash`, name the log's node and carry a valid signature by its key.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    node: NodeId,
    public_key: [u8; 32],
    head: Head,
}

impl Chain {
    pub(crate) fn new(node: NodeId, public_key: [u8; 32]) -> Self {
        Chain {
            node,
            public_key,
            head: Head::EMPTY,
        }
    }

    pub(crate) fn head(&self) -> Head {
        self.head
    }

    /// Checks `entry` and moves the head past it. A refused entry leaves the head where
    /// it was.
    pub(crate) fn accept(&mut self, entry: &Entry) -> Result<(), EntryProblem> {
        if entry.seq != self.head.count {
            return Err(EntryProblem::Seq {
                expected: self.head.count,
                found: entry.seq,
            });
        }
        if entry.prev != self.head.hash {
            return Err(EntryProblem::Prev { seq: entry.seq });
        }
        if entry.node != self.node {
            return Err(EntryProblem::Node {
                seq: entry.seq,
                expected: self.node.clone(),
                found: entry.node.clone(),
            });
        }
        key::check(&self.public_key, &entry.hash, &entry.signature)
            .map_err(|key::BadSignature| EntryProblem::Signature { seq: entry.seq })?;
        self.head = Head {
            count: self.head.count.saturating_add(1),
            hash: entry.hash,
        };
        Ok(())
    }
}
