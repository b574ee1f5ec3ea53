//! Typed errors. Each variant says what failed: which field, which certificate,
//! which PCR, so that an operator reading a refusal knows where to look.
//!
//! [`VerifyError`] and [`PolicyError`] are what every provider's verification and policy
//! return; the variants that only one provider can produce say so ([`ParseError`] is
//! the Nitro document's, a certificate slot is in Nitro's `cabundle`).

use crate::provider::Provider;
use std::fmt;

/// Where a certificate sits in a document's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertSlot {
    /// `cabundle[i]`; index 0 is the root.
    Bundle(usize),
    /// The `certificate` field: the leaf that signed the document.
    Leaf,
}

impl fmt::Display for CertSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertSlot::Bundle(0) => write!(f, "cabundle[0] (root)"),
            CertSlot::Bundle(i) => write!(f, "cabundle[{i}]"),
            CertSlot::Leaf => write!(f, "leaf certificate"),
        }
    }
}

/// A Nitro document could not be decoded, or breaks one of the AWS field rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("document is {len} bytes, the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("document is empty")]
    Empty,
    #[error("COSE_Sign1 envelope: {0}")]
    Envelope(String),
    #[error("COSE_Sign1 envelope must be untagged or carry tag 18 as the single byte 0xd2")]
    WrongTag,
    #[error("COSE unprotected header must be empty")]
    UnprotectedHeader,
    #[error("COSE_Sign1 has no payload")]
    MissingPayload,
    #[error("COSE algorithm must be ES384 in the protected header, found {found}")]
    Algorithm { found: String },
    #[error("COSE protected header lists critical parameters, which are not supported")]
    CriticalHeader,
    #[error("ES384 signature must be 96 bytes, found {len}")]
    SignatureLength { len: usize },
    #[error("payload is not valid CBOR: {0}")]
    PayloadCbor(String),
    #[error("payload is not a CBOR map")]
    PayloadNotMap,
    #[error("payload has a key that is not a text string")]
    NonTextKey,
    #[error("payload has the field {0:?} twice")]
    DuplicateField(String),
    #[error("payload has an unknown field {0:?}")]
    UnknownField(String),
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("required field `{0}` is null")]
    NullField(&'static str),
    #[error("field `{field}` must be {expected}, found {found}")]
    FieldType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{field}` is {len} long, allowed {min}..={max}")]
    FieldLength {
        field: &'static str,
        len: usize,
        min: usize,
        max: usize,
    },
    #[error("digest must be \"SHA384\", found {0:?}")]
    Digest(String),
    #[error("timestamp {0} is not a time in milliseconds since the Unix epoch")]
    TimestampNotMillis(u64),
    #[error("PCR index {0} is outside 0..=31")]
    PcrIndex(i128),
    #[error("PCR{0} appears twice")]
    DuplicatePcr(u8),
    #[error("PCR{index} is {len} bytes; PCRs are 32, 48 or 64 bytes")]
    PcrLength { index: u8, len: usize },
}

/// What is wrong with one certificate of the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertProblem {
    #[error("not a valid DER X.509 certificate: {0}")]
    Malformed(String),
    #[error("signature algorithm {0} is not ecdsa-with-SHA384")]
    SignatureAlgorithm(String),
    #[error("inner and outer signature algorithms differ")]
    AlgorithmMismatch,
    #[error("public key is not an uncompressed P-384 point")]
    PublicKey,
    #[error("not valid before {not_before}")]
    NotYetValid { not_before: String },
    #[error("expired at {not_after}")]
    Expired { not_after: String },
    #[error("issuer does not match the subject of the certificate before it")]
    IssuerMismatch,
    #[error("signature does not verify with the issuer's key")]
    BadSignature,
    #[error("is used as a CA but is not marked as one (basic constraints)")]
    NotCa,
    #[error("path length constraint {limit} allows fewer CAs than the {below} below it")]
    PathLength { limit: u8, below: usize },
    #[error("key usage does not allow {0}")]
    KeyUsage(&'static str),
    #[error("leaf certificate is marked as a CA")]
    LeafIsCa,
    #[error("extension {0} appears twice")]
    DuplicateExtension(String),
    #[error("unknown critical extension {0}")]
    UnknownCriticalExtension(String),
    #[error("version is not X.509 v3")]
    Version,
}

/// Evidence failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("root certificate (SHA-256 {fingerprint}) is not a trusted root")]
    UntrustedRoot { fingerprint: String },
    #[error("{slot}: {problem}")]
    Certificate {
        slot: CertSlot,
        problem: CertProblem,
    },
    #[error("COSE signature does not verify with the leaf certificate's key")]
    Signature,
    #[error("document timestamp {timestamp_ms} ms is outside the leaf certificate's validity")]
    TimestampOutsideLeafValidity { timestamp_ms: u64 },
    #[error("simulated root certificate given to trust: {0}")]
    SimulatedRoot(CertProblem),
    #[error("verification time is before the Unix epoch")]
    TimeBeforeEpoch,
    #[error("evidence is in no known provider's format")]
    UnrecognisedEvidence,
}

/// Verified evidence does not satisfy the caller's trust policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("a measurement set must name at least one PCR")]
    EmptyMeasurementSet,
    #[error("a policy needs at least one accepted measurement set")]
    NoMeasurementSets,
    #[error("evidence comes from {provider}, and no accepted measurement set is of {provider}")]
    NoSetForProvider { provider: Provider },
    #[error("document comes from a debug-mode enclave (PCR0, PCR1 and PCR2 all zero)")]
    DebugMode,
    #[error("measurements match no accepted set: {}", describe_mismatches(.0))]
    Measurements(Vec<PcrMismatch>),
    #[error("document is {age_ms} ms old, the maximum is {max_ms} ms")]
    TooOld { age_ms: u64, max_ms: u64 },
    #[error("document is dated {ahead_ms} ms in the future")]
    FromTheFuture { ahead_ms: u64 },
    #[error("document carries no nonce, one was expected")]
    NonceMissing,
    #[error("document nonce does not match the expected one")]
    NonceMismatch,
    #[error("verification time is before the Unix epoch")]
    TimeBeforeEpoch,
}

/// The first difference between a document and one accepted measurement set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrMismatch {
    /// Which accepted set (0-based, in the order given) this compares against.
    pub set: usize,
    pub index: u8,
    /// Lowercase hex of the expected value.
    pub expected: String,
    /// Lowercase hex of the value in the document; `None` when the PCR is absent.
    pub found: Option<String>,
}

fn describe_mismatches(all: &[PcrMismatch]) -> String {
    let parts: Vec<String> = all
        .iter()
        .map(|m| match &m.found {
            Some(found) => format!(
                "set {}: PCR{} is {found}, expected {}",
                m.set, m.index, m.expected
            ),
            None => format!("set {}: PCR{} is absent", m.set, m.index),
        })
        .collect();
    parts.join("; ")
}
