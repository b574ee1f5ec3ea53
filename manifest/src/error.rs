//! Errors: each names the node, operator or field at fault.

use attestation::{MeasurementError, Overlap, Provider, Unhosted, Unpinned};
use ids::SyntaxError;

/// Why a manifest or envelope was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("envelope is {len} bytes, the maximum is {max}")]
    EnvelopeTooLarge { len: usize, max: usize },
    #[error("manifest body is {len} bytes, the maximum is {max}")]
    BodyTooLarge { len: usize, max: usize },
    #[error("malformed envelope: {0}")]
    Envelope(String),
    #[error("envelope `manifest` is not standard base64: {0}")]
    Base64(String),
    #[error("malformed manifest body: {0}")]
    Body(String),
    #[error("`version` must be at least 1")]
    VersionZero,
    #[error("{count} operators, between 1 and {max} are allowed")]
    OperatorCount { count: usize, max: usize },
    #[error("operator id {id:?} refused: {source}")]
    OperatorId {
        id: String,
        #[source]
        source: SyntaxError,
    },
    #[error("operator {id:?} is listed twice")]
    DuplicateOperator { id: String },
    #[error("operator {operator:?}: `public_key` must be 64 hex characters (32 bytes)")]
    PublicKey { operator: String },
    #[error("operators {first:?} and {second:?} have the same public key")]
    DuplicateOperatorKey { first: String, second: String },
    #[error("`threshold` is {threshold}, it must be between 1 and the {operators} operators")]
    Threshold { threshold: usize, operators: usize },
    #[error("{count} nodes, between 1 and {max} are allowed")]
    NodeCount { count: usize, max: usize },
    #[error("node id {id:?} refused: {source}")]
    NodeId {
        id: String,
        #[source]
        source: SyntaxError,
    },
    #[error("node {id:?} is listed twice")]
    DuplicateNode { id: String },
    #[error("node {node:?}: address {address:?} refused: {reason}")]
    Address {
        node: String,
        address: String,
        reason: &'static str,
    },
    #[error("node {node:?}: {count} measurement sets, between 1 and {max} are allowed")]
    MeasurementSetCount {
        node: String,
        count: usize,
        max: usize,
    },
    #[error("node {node:?}: measurement set {set} is empty")]
    EmptyMeasurementSet { node: String, set: usize },
    /// One entry of a set: for Nitro, a PCR index and its value.
    #[error("node {node:?}: measurement set {set}, entry {index:?}: {reason}")]
    Pcr {
        node: String,
        set: usize,
        index: String,
        reason: &'static str,
    },
    #[error("node {node:?}: measurement set {set} {pinned}")]
    CodeNotPinned {
        node: String,
        set: usize,
        /// What the set pins, as its provider says.
        pinned: Unpinned,
    },
    #[error("node {node:?}, measurement set {set}: {unhosted}")]
    HostNotPinned {
        node: String,
        set: usize,
        /// What the set pins, as its provider says.
        unhosted: Unhosted,
    },
    #[error(
        "nodes {first:?} (measurement set {first_set}) and {second:?} (measurement set \
         {second_set}) could match the same attestation document: {shared}"
    )]
    IndistinguishableNodes {
        first: String,
        first_set: usize,
        second: String,
        second_set: usize,
        /// What both sets pin alike, as their provider says.
        shared: Overlap,
    },
    #[error("node {node:?}: measurement set {set} names an unknown provider {name:?}")]
    MeasurementProvider {
        node: String,
        set: usize,
        name: String,
    },
    #[error("node {node:?} runs on {runs_on}, but its measurement set {set} is of {measured}")]
    ProviderMismatch {
        node: String,
        set: usize,
        runs_on: Provider,
        measured: Provider,
    },
    #[error("node {node:?}: measurement set {set}: {source}")]
    Measurements {
        node: String,
        set: usize,
        #[source]
        source: MeasurementError,
    },
    #[error("node {node:?}: domain {domain:?} refused: {source}")]
    Domain {
        node: String,
        domain: String,
        #[source]
        source: SyntaxError,
    },
    #[error("`roots` names an unknown provider {name:?}")]
    RootProvider { name: String },
    #[error("`roots`: the root of {provider} must be 64 hex characters (the SHA-256 of its DER)")]
    RootHash { provider: Provider },
    #[error("`roots` names the root of {provider} twice")]
    DuplicateRoot { provider: Provider },
    #[error("signature {index}: operator id {operator:?} refused: {source}")]
    SignatureOperator {
        index: usize,
        operator: String,
        #[source]
        source: SyntaxError,
    },
    #[error("signature {index} (operator {operator:?}) must be 128 hex characters (64 bytes)")]
    SignatureEncoding { index: usize, operator: String },
    #[error(
        "signature by operator {operator:?} does not verify: the manifest or the signature was altered"
    )]
    BadSignature { operator: String },
    #[error("{found} valid operator signatures, {needed} needed")]
    NotEnoughSignatures { found: usize, needed: usize },
    #[error("candidate version {candidate} is not higher than the current version {current}")]
    VersionNotNewer { current: u64, candidate: u64 },
    /// A successor may not move a node to another provider or operator domain: the
    /// shares it holds were placed under the old assignment, and keys are not placed
    /// again. A node that moves is a new node, under a new id.
    #[error(
        "node {node:?} would move from {what} {from} to {to}: the keys it holds were placed \
         under the current assignment; list it under a new id instead"
    )]
    NodeMoved {
        node: String,
        what: &'static str,
        from: String,
        to: String,
    },
}

/// Why an operator key could not be generated, loaded or exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("Ed25519 key generation failed")]
    Generate,
    #[error("PKCS#8 Ed25519 key rejected: {0}")]
    Rejected(String),
    #[error("PKCS#8 export failed")]
    Export,
}
