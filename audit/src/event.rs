//! What an entry records: one decision or change, as a JSON object tagged by `"kind"`.
//!
//! Byte fields are lower-case hex. Strings that come from outside (a request's summary, a
//! rule's name, a refusal's reason) are not cut: the entry as a whole is bounded by
//! [`crate::MAX_ENTRY_LEN`], and an append that would exceed it is refused.

use crate::hex_serde;
use ids::{KeyId, NodeId, OperatorId};
use serde::{Deserialize, Serialize};

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Event {
    /// A signing request as the node received it, before any decision.
    Request {
        #[serde(with = "hex_serde::array")]
        request_id: [u8; 32],
        key_id: KeyId,
        requester: OperatorId,
        summary: Summary,
    },
    /// An operator's approval of a request, verified by the node.
    Approval {
        #[serde(with = "hex_serde::array")]
        request_id: [u8; 32],
        operator: OperatorId,
    },
    /// The policy's decision on a request.
    Decision {
        #[serde(with = "hex_serde::array")]
        request_id: [u8; 32],
        outcome: Outcome,
        /// The deciding rule's name; none when no rule matched.
        rule: Option<String>,
        /// The policy version that decided; none when the node has no policy.
        policy_version: Option<u64>,
        /// Why a request was refused.
        reason: Option<String>,
    },
    /// A signature the node contributed a share to.
    Signature {
        #[serde(with = "hex_serde::array")]
        request_id: [u8; 32],
        #[serde(with = "hex_serde::array")]
        digest: [u8; 32],
        #[serde(with = "hex_serde::bytes")]
        signature: Vec<u8>,
        signers: Vec<NodeId>,
    },
    /// A policy version the node accepted, and when it takes effect.
    PolicyChange {
        version: u64,
        #[serde(with = "hex_serde::array")]
        policy_hash: [u8; 32],
        effective_at_secs: u64,
    },
    /// A manifest the node accepted.
    ManifestChange {
        version: u64,
        #[serde(with = "hex_serde::array")]
        hash: [u8; 32],
    },
    /// A key the node holds a share of.
    KeyCreated {
        key_id: KeyId,
        #[serde(with = "hex_serde::bytes")]
        public_key: Vec<u8>,
        parties: Vec<NodeId>,
        threshold: u16,
    },
    /// The node started and restored its log: the manifest it runs under, if any.
    Boot {
        manifest_version: Option<u64>,
        #[serde(with = "hex_serde::option_array")]
        manifest_hash: Option<[u8; 32]>,
    },
}

/// What a request asks for, as the node parsed it: `"ethereum:1"`, `"bitcoin:main"` or
/// `"digest"`; the destination and the amount in base units, when the transaction has
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub chain: String,
    pub to: Option<String>,
    pub amount: Option<String>,
}

/// What the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Signed,
    Pending,
    Refused,
}
