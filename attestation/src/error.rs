//! Typed errors. Each variant says what failed: which field, which certificate,
//! which PCR, so that an operator reading a refusal knows where to look.
//!
//! [`VerifyError`] and [`PolicyError`] are what every provider's verification and policy
//! return; the variants that only one provider can produce say so ([`ParseError`] is
//! the Nitro document's, [`TokenError`] the Confidential Space token's and bundle's; a
//! certificate slot is in Nitro's `cabundle` or in a token's `x5c`).

use crate::provider::Provider;
use std::fmt;

/// Where a certificate sits in a document's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertSlot {
    /// `cabundle[i]`; index 0 is the root.
    Bundle(usize),
    /// The `certificate` field: the leaf that signed the document.
    Leaf,
    /// A Confidential Space token's `x5c[i]`; index 0 is the leaf, the last the root.
    X5c(usize),
}

impl fmt::Display for CertSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertSlot::Bundle(0) => write!(f, "cabundle[0] (root)"),
            CertSlot::Bundle(i) => write!(f, "cabundle[{i}]"),
            CertSlot::Leaf => write!(f, "leaf certificate"),
            CertSlot::X5c(0) => write!(f, "x5c[0] (leaf)"),
            CertSlot::X5c(i) => write!(f, "x5c[{i}]"),
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
    #[error("signature algorithm {0} is not sha256WithRSAEncryption")]
    RsaSignatureAlgorithm(String),
    #[error("public key is not an RSA key (rsaEncryption, RSAPublicKey)")]
    RsaPublicKey,
    #[error("RSA key has {bits} bits, allowed {min}..={max}")]
    RsaKeySize { bits: usize, min: usize, max: usize },
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
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("JWS signature does not verify with the x5c leaf certificate's key")]
    TokenSignature,
    #[error("token issued at {iat} (iat), outside its leaf certificate's validity")]
    IssuedOutsideLeafValidity { iat: String },
    #[error(
        "{provider}: no trusted root has the pinned SHA-256 {pin}, so none of its evidence \
         is accepted"
    )]
    NoRootForPin { provider: Provider, pin: String },
}

/// A Confidential Space token (compact JWS) or the bundle carrying it could not be
/// decoded, or breaks one of the rules its parser enforces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("token is {len} bytes, the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("token is empty")]
    Empty,
    #[error("token has a byte that is neither base64url nor a dot at offset {offset}")]
    Character { offset: usize },
    #[error("token must be three dot-separated parts (compact JWS), found {found}")]
    Parts { found: usize },
    #[error("token {part} is not canonical unpadded base64url")]
    Base64 { part: &'static str },
    #[error("token {part} is not a JSON object: {reason}")]
    Json { part: &'static str, reason: String },
    #[error("JWS algorithm must be RS256, found {found}")]
    Algorithm { found: String },
    #[error("JWS header `typ` must be \"JWT\", found {found}")]
    Type { found: String },
    #[error("JWS header parameter `{0}` is refused")]
    ForbiddenHeader(&'static str),
    #[error("JWS header has no `x5c` certificate chain")]
    MissingX5c,
    #[error("`x5c` has {count} certificates, allowed {min}..={max}")]
    X5cCount {
        count: usize,
        min: usize,
        max: usize,
    },
    #[error("`x5c[{index}]`: {reason}")]
    X5cEntry { index: usize, reason: String },
    #[error("RS256 signature is {len} bytes, allowed {min}..={max}")]
    SignatureLength { len: usize, min: usize, max: usize },
    #[error("required claim `{0}` is missing")]
    MissingClaim(&'static str),
    #[error("`{field}` must be {expected}")]
    FieldType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("`{field}` is {len} long, allowed {min}..={max}")]
    FieldLength {
        field: &'static str,
        len: usize,
        min: usize,
        max: usize,
    },
    #[error("`{field}` {reason}")]
    FieldFormat {
        field: &'static str,
        reason: &'static str,
    },
    #[error("evidence is neither a token (`eyJ..`) nor a bundle (`{{..}}`)")]
    NotCsEvidence,
    #[error("bundle is {len} bytes, the limit is {max}")]
    BundleTooLarge { len: usize, max: usize },
    #[error("bundle is not valid: {0}")]
    Bundle(String),
    #[error("bundle version is {0}, only 1 is known")]
    BundleVersion(u64),
    #[error(
        "bundle values are not the ones its token binds: `eat_nonce` lacks their binding \
         digest"
    )]
    BindingMismatch,
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
    #[error("claim `{claim}` is missing")]
    ClaimMissing { claim: &'static str },
    #[error("claim `{claim}` is {found:?}, expected {expected:?}")]
    ClaimValue {
        claim: &'static str,
        expected: String,
        found: String,
    },
    #[error(
        "token comes from a debuggable workload (dbgstat {dbgstat:?}, production needs \
         \"disabled-since-boot\")"
    )]
    DebugToken { dbgstat: String },
    #[error("support_attributes lack STABLE: not a supported production image")]
    NotStable,
    #[error("hardware model {hwmodel:?} is not one this policy accepts")]
    HardwareModel { hwmodel: String },
    #[error("secure boot is off (secboot is not true)")]
    SecureBootOff,
    #[error("token expired at {exp}")]
    Expired { exp: String },
    #[error("token is not valid before {nbf}")]
    NotYetValid { nbf: String },
    #[error("claims match no accepted set: {}", describe_claim_mismatches(.0))]
    Claims(Vec<ClaimMismatch>),
}

/// The first difference between a Confidential Space token's claims and one accepted
/// measurement set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMismatch {
    /// Which accepted set (0-based, in the order given) this compares against.
    pub set: usize,
    /// The set's key: `image_digest`, `project_id`, `zone`, `instance_id` or `hwmodel`.
    pub key: &'static str,
    pub expected: String,
    /// The token's value; `None` when the claim is absent.
    pub found: Option<String>,
}

fn describe_claim_mismatches(all: &[ClaimMismatch]) -> String {
    let parts: Vec<String> = all
        .iter()
        .map(|m| match &m.found {
            Some(found) => format!(
                "set {}: {} is {found:?}, expected {:?}",
                m.set, m.key, m.expected
            ),
            None => format!("set {}: {} is absent", m.set, m.key),
        })
        .collect();
    parts.join("; ")
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
