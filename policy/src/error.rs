//! Errors: each names the rule, allowlist entry or field at fault, or the operator whose
//! signature failed.

use std::fmt;

/// Where in a policy document a field was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// A top-level field.
    Document,
    /// The allowlist entry at this position, by its name when it has a usable one.
    Entry { index: usize, name: String },
    /// The rule at this position, by its name when it has a usable one.
    Rule { index: usize, name: String },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Document => f.write_str("policy"),
            Place::Entry { index, name } => write!(f, "allowlist entry {index} ({name:?})"),
            Place::Rule { index, name } => write!(f, "rule {index} ({name:?})"),
        }
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    #[error("is empty")]
    Empty,
    #[error("is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("may only hold printable ASCII")]
    NotPrintable,
    #[error("lists {0:?} twice")]
    Duplicate(String),
    #[error("must be a decimal string of base units (digits only, at most 2^128 - 1)")]
    NotAmount,
    #[error("is {value}, it must be between {min} and {max}")]
    OutOfRange { value: u64, min: u64, max: u64 },
    #[error("{0:?} is not `ethereum:<chain id>`, `bitcoin:<network>` or `digest`")]
    Chain(String),
    #[error("{0:?} is not `0x` followed by 40 hex digits")]
    EthereumAddress(String),
    #[error("{0:?} is not 1 to 90 ASCII letters and digits")]
    BitcoinAddress(String),
    #[error("has no address on the digest chain")]
    DigestAddress,
    #[error("{0:?} is neither `native` nor an ERC-20 contract address on an ethereum chain")]
    Asset(String),
    #[error("names {0:?}, which is not in the allowlist")]
    UnknownEntry(String),
    #[error("names {entry:?}, which is on {entry_chain}, not on the rule's chain")]
    WrongChain { entry: String, entry_chain: String },
    #[error("is not allowed on a `digest` rule")]
    NotOnDigest,
    #[error("must be [from, to) with 0 <= from < to <= 24")]
    Hours,
    #[error("is {approvals}, it must be at least 1 and at most the {approvers} approvers listed")]
    Approvals { approvals: usize, approvers: usize },
    #[error("is required on an allow rule")]
    Missing,
    #[error(
        "is required on an ethereum rule that limits amounts: base units of different assets are not comparable"
    )]
    AssetRequired,
    #[error(
        "is required on an allow rule for bitcoin: a key is bound to one network by the rules that name it"
    )]
    KeysRequired,
    #[error(
        "names key {key:?}, which another rule names on {other}: a key spends on one bitcoin network only"
    )]
    KeyOnTwoNetworks { key: String, other: String },
    #[error("is only allowed on an ethereum rule")]
    OnlyOnEthereum,
    #[error(transparent)]
    Id(#[from] ids::IdError),
}

/// Why a policy document, envelope or state was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("policy body is {len} bytes, the maximum is {max}")]
    BodyTooLarge { len: usize, max: usize },
    #[error("policy envelope is {len} bytes, the maximum is {max}")]
    EnvelopeTooLarge { len: usize, max: usize },
    #[error("malformed policy body: {0}")]
    Body(String),
    #[error("malformed policy envelope: {0}")]
    Envelope(String),
    #[error("envelope `policy` is not standard base64: {0}")]
    Base64(String),
    #[error("`version` must be at least 1")]
    VersionZero,
    #[error("{count} {what}, at most {max} are allowed")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{place}: `{field}` {reason}")]
    Field {
        place: Place,
        field: &'static str,
        reason: Reason,
    },
    #[error("two rules are named {0:?}")]
    DuplicateRule(String),
    #[error("two allowlist entries are named {0:?}")]
    DuplicateEntry(String),
    #[error("signature {index}: {source}")]
    SignatureEntry {
        index: usize,
        #[source]
        source: manifest::ManifestError,
    },
    #[error(
        "signature by operator {operator:?} does not verify: the policy or the signature was altered"
    )]
    BadSignature { operator: String },
    #[error("{found} valid operator signatures, {needed} needed")]
    NotEnoughSignatures { found: usize, needed: usize },
    #[error("signatures refused: {0}")]
    Signatures(#[source] manifest::ManifestError),
    #[error("policy version {candidate} is not higher than the version {current} held")]
    VersionNotNewer { current: u64, candidate: u64 },
    #[error("stored policy state refused: {0}")]
    State(String),
}

impl PolicyError {
    /// A field error at `place`.
    pub(crate) fn field(place: &Place, field: &'static str, reason: Reason) -> Self {
        PolicyError::Field {
            place: place.clone(),
            field,
            reason,
        }
    }
}

impl From<manifest::ManifestError> for PolicyError {
    fn from(e: manifest::ManifestError) -> Self {
        match e {
            manifest::ManifestError::BadSignature { operator } => {
                PolicyError::BadSignature { operator }
            }
            manifest::ManifestError::NotEnoughSignatures { found, needed } => {
                PolicyError::NotEnoughSignatures { found, needed }
            }
            other => PolicyError::Signatures(other),
        }
    }
}

/// Why the facts of a request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FactsError {
    #[error("transfer {index}: destination {reason}")]
    Destination { index: usize, reason: Reason },
    #[error("{count} transfers, at most {max} are allowed")]
    TooManyTransfers { count: usize, max: usize },
    #[error("a digest request has no transfers, asset or fee")]
    DigestWithTransfers,
    #[error("asset {0}")]
    Asset(Reason),
    #[error("the transfers and the fee add up to more than 2^128 - 1 base units")]
    AmountOverflow,
}

/// Why the ledger refused a spend or a stored ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    #[error("the ledger holds {max} live spends already; prune it or refuse to sign")]
    Full { max: usize },
    #[error("spend {request} has {count} destinations, at most {max} are allowed")]
    TooManyDestinations {
        request: String,
        count: usize,
        max: usize,
    },
    #[error("the spends in the window add up to more than 2^128 - 1 base units")]
    Overflow,
    #[error("stored ledger refused: {0}")]
    Format(String),
}
