//! A request that changes what the cluster signs (a signature, a new key) and the
//! operators' approvals that authorize it. Every node that contributes a share checks
//! both itself ([`Authority::verify`]); the node an operator asked is only a messenger.
//!
//! Formats:
//! - the request ([`Request`]): JSON, unknown fields refused, at most
//!   [`MAX_REQUEST_LEN`] bytes. Its id is SHA-256 of [`REQUEST_ID_CONTEXT`] followed by
//!   its exact bytes, so no canonical form is needed and nobody can alter a byte of an
//!   approved request;
//! - an approval ([`Approval`]): an operator of the manifest and its Ed25519 signature of
//!   the id ([`manifest::approval_message`]). The requester's approval is the first;
//! - the authority ([`Authority`]): JSON `{"request": "<base64 of the request bytes>",
//!   "approvals": [..]}`, at most [`MAX_AUTHORITY_LEN`] bytes, which travels from the
//!   client to a node and from it, inside a session request, to every participant.
//!
//! Time: a request says when it was made and when it expires (at most [`MAX_TTL_MS`]
//! later); a node refuses it once its own clock passes the expiry, and refuses one made
//! more than [`MAX_CLOCK_SKEW_MS`] in its future. Replays within that window are the
//! business of each node's record of what it signed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ids::{KeyId, OperatorId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Largest request document.
pub const MAX_REQUEST_LEN: usize = 16 * 1024;
/// Most approvals an authority carries: one per operator a manifest may list.
pub const MAX_APPROVALS: usize = manifest::MAX_OPERATORS;
/// Largest encoded authority: the request in base64 and every approval.
pub const MAX_AUTHORITY_LEN: usize = MAX_REQUEST_LEN * 4 / 3 + 4 + MAX_APPROVALS * 256 + 64;
/// Longest a request may live.
pub const MAX_TTL_MS: u64 = 24 * 3600 * 1000;
/// How long a request lives unless its requester says otherwise.
pub const DEFAULT_TTL_MS: u64 = 3600 * 1000;
/// How far in a node's future a request may say it was made.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// Prefix of the hashed request bytes.
pub const REQUEST_ID_CONTEXT: &[u8] = b"tee-custody request v1\0";
const VERSION: u8 = 1;

/// What an operator asks the cluster for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub version: u8,
    /// The manifest the request is made under (hex): a request for one cluster is void
    /// in any other.
    pub manifest_hash: String,
    pub key_id: String,
    pub action: Action,
    /// The operator who asks; its approval comes first.
    pub requester: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// 16 random bytes, hex: two requests with the same content have distinct ids.
    pub nonce: String,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// A signature with key `key_id` at `path` (the master key when absent), by
    /// `signers` (chosen by the node asked when empty).
    Sign {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        payload: Payload,
        /// The signing set, when the requester names one: then no other set signs it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        signers: Vec<String>,
    },
    /// A new key `key_id` shared by `parties` (every manifest node when empty), of
    /// which `threshold` sign.
    CreateKey {
        threshold: u16,
        #[serde(default)]
        parties: Vec<String>,
        /// Generate the parties' auxiliary info afresh first.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        renew_aux: bool,
    },
}

/// What is to be signed, exactly as the requester gave it: the nodes parse it and compute
/// what they sign themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Payload {
    /// An unsigned Ethereum transaction (legacy with EIP-155, or EIP-1559), hex.
    EthTx(String),
    /// A PSBT spending P2WPKH inputs, base64, on `network` (`mainnet`, `testnet`,
    /// `testnet4`, `signet`, `regtest`), which decides how its outputs' addresses read.
    BtcPsbt { psbt: String, network: String },
    /// A raw 32-byte digest, hex.
    Digest(String),
}

impl Payload {
    /// The payload kind, as answers and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::EthTx(_) => "eth-tx",
            Payload::BtcPsbt { .. } => "btc-psbt",
            Payload::Digest(_) => "digest",
        }
    }
}

/// The id of the request with these exact bytes.
pub fn request_id(bytes: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(REQUEST_ID_CONTEXT);
    hash.update(bytes);
    hash.finalize().into()
}

/// One operator's approval of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub operator: String,
    /// Ed25519, hex.
    pub signature: String,
}

impl Approval {
    /// `operator`'s approval, with `key`, of the request with id `id`.
    pub fn sign(operator: &str, key: &manifest::OperatorKey, id: &[u8; 32]) -> Self {
        Approval {
            operator: operator.to_owned(),
            signature: hex::encode(key.approve_request(id)),
        }
    }
}

/// A request's bytes and the approvals gathered for it. As JSON (inside a session
/// request) it is its wire form; decoding checks the limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Wire", into = "Wire")]
pub struct Authority {
    request: Vec<u8>,
    approvals: Vec<Approval>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    request: String,
    approvals: Vec<Approval>,
}

impl TryFrom<Wire> for Authority {
    type Error = AuthorityError;

    fn try_from(wire: Wire) -> Result<Self, AuthorityError> {
        if wire.request.len() > MAX_REQUEST_LEN * 4 / 3 + 4 {
            return Err(AuthorityError::TooLarge {
                what: "request",
                len: wire.request.len() * 3 / 4,
                max: MAX_REQUEST_LEN,
            });
        }
        if wire.approvals.len() > MAX_APPROVALS {
            return Err(AuthorityError::TooManyApprovals {
                count: wire.approvals.len(),
            });
        }
        let request = STANDARD
            .decode(&wire.request)
            .map_err(|e| malformed("request encoding", e))?;
        Ok(Authority {
            request,
            approvals: wire.approvals,
        })
    }
}

impl From<Authority> for Wire {
    fn from(authority: Authority) -> Self {
        Wire {
            request: STANDARD.encode(&authority.request),
            approvals: authority.approvals,
        }
    }
}

/// Why a request or its approvals were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("request version {0} is not supported")]
    Version(u8),
    #[error("the request was made under another manifest")]
    OtherManifest,
    #[error("{0} is not an operator of the manifest")]
    NotOperator(String),
    #[error("the approval of {0} does not verify")]
    BadApproval(String),
    #[error("{0} approved twice")]
    Duplicate(String),
    #[error("the request carries no approval of its requester {0}")]
    NoRequesterApproval(String),
    #[error("{count} approvals; at most {MAX_APPROVALS}")]
    TooManyApprovals { count: usize },
    #[error("the request expired at {expires_ms} ms (now {now_ms} ms)")]
    Expired { expires_ms: u64, now_ms: u64 },
    #[error("the request says it was made at {created_ms} ms, in this node's future ({now_ms} ms)")]
    FromTheFuture { created_ms: u64, now_ms: u64 },
    #[error(
        "the request lives from {created_ms} ms to {expires_ms} ms: longer than {MAX_TTL_MS} ms, or not at all"
    )]
    Lifetime { created_ms: u64, expires_ms: u64 },
}

fn malformed(what: &'static str, reason: impl ToString) -> AuthorityError {
    AuthorityError::Malformed {
        what,
        reason: reason.to_string(),
    }
}

impl Request {
    /// A request by `requester` made at `created_ms`, living `ttl_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        manifest_hash: &[u8; 32],
        key_id: &KeyId,
        action: Action,
        requester: &OperatorId,
        created_ms: u64,
        ttl_ms: u64,
        nonce: &[u8; 16],
    ) -> Self {
        Request {
            version: VERSION,
            manifest_hash: hex::encode(manifest_hash),
            key_id: key_id.as_str().to_owned(),
            action,
            requester: requester.as_str().to_owned(),
            created_ms,
            expires_ms: created_ms.saturating_add(ttl_ms),
            nonce: hex::encode(nonce),
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, AuthorityError> {
        let bytes = serde_json::to_vec(self).map_err(|e| malformed("request", e))?;
        if bytes.len() > MAX_REQUEST_LEN {
            return Err(AuthorityError::TooLarge {
                what: "request",
                len: bytes.len(),
                max: MAX_REQUEST_LEN,
            });
        }
        Ok(bytes)
    }

    /// Parses request bytes and checks what needs no manifest or clock: the version and
    /// the shape of each field.
    pub fn parse(bytes: &[u8]) -> Result<Self, AuthorityError> {
        if bytes.len() > MAX_REQUEST_LEN {
            return Err(AuthorityError::TooLarge {
                what: "request",
                len: bytes.len(),
                max: MAX_REQUEST_LEN,
            });
        }
        let request: Request =
            serde_json::from_slice(bytes).map_err(|e| malformed("request", e))?;
        if request.version != VERSION {
            return Err(AuthorityError::Version(request.version));
        }
        KeyId::new(&request.key_id).map_err(|e| malformed("request key id", e))?;
        OperatorId::new(&request.requester).map_err(|e| malformed("requester", e))?;
        let mut nonce = [0u8; 16];
        hex::decode_to_slice(&request.nonce, &mut nonce).map_err(|e| malformed("nonce", e))?;
        if request.expires_ms <= request.created_ms
            || request.expires_ms - request.created_ms > MAX_TTL_MS
        {
            return Err(AuthorityError::Lifetime {
                created_ms: request.created_ms,
                expires_ms: request.expires_ms,
            });
        }
        Ok(request)
    }
}

/// A request whose approvals one node checked against its manifest and clock. Only
/// [`Authority::verify`] builds one.
#[derive(Debug, Clone)]
pub struct Authorized {
    id: [u8; 32],
    request: Request,
    approvers: BTreeSet<String>,
}

impl Authorized {
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The distinct operators whose approval verified, the requester included.
    pub fn approvers(&self) -> &BTreeSet<String> {
        &self.approvers
    }
}

impl Authority {
    /// A request with its requester's approval.
    pub fn new(request_bytes: Vec<u8>, requester_approval: Approval) -> Self {
        Authority {
            request: request_bytes,
            approvals: vec![requester_approval],
        }
    }

    /// The request's exact bytes.
    pub fn request_bytes(&self) -> &[u8] {
        &self.request
    }

    /// The request's id.
    pub fn id(&self) -> [u8; 32] {
        request_id(&self.request)
    }

    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }

    /// Adds an approval; a second approval by the same operator replaces the first.
    pub fn add(&mut self, approval: Approval) -> Result<(), AuthorityError> {
        if let Some(held) = self
            .approvals
            .iter_mut()
            .find(|a| a.operator == approval.operator)
        {
            *held = approval;
            return Ok(());
        }
        if self.approvals.len() >= MAX_APPROVALS {
            return Err(AuthorityError::TooManyApprovals {
                count: self.approvals.len() + 1,
            });
        }
        self.approvals.push(approval);
        Ok(())
    }

    pub fn encode(&self) -> Result<Vec<u8>, AuthorityError> {
        let wire = Wire {
            request: STANDARD.encode(&self.request),
            approvals: self.approvals.clone(),
        };
        let bytes = serde_json::to_vec(&wire).map_err(|e| malformed("authority", e))?;
        if bytes.len() > MAX_AUTHORITY_LEN {
            return Err(AuthorityError::TooLarge {
                what: "authority",
                len: bytes.len(),
                max: MAX_AUTHORITY_LEN,
            });
        }
        Ok(bytes)
    }

    /// Parses an encoded authority. Nothing is checked but its shape and limits; see
    /// [`Authority::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AuthorityError> {
        if bytes.len() > MAX_AUTHORITY_LEN {
            return Err(AuthorityError::TooLarge {
                what: "authority",
                len: bytes.len(),
                max: MAX_AUTHORITY_LEN,
            });
        }
        let wire: Wire = serde_json::from_slice(bytes).map_err(|e| malformed("authority", e))?;
        Self::try_from(wire)
    }
    /// Checks the request and every approval against `manifest` (whose hash is
    /// `manifest_hash`) at `now_ms` by this node's clock: the request is well formed,
    /// made under this manifest and neither expired nor from the future; every approval
    /// is by a distinct operator of the manifest and verifies; the requester's is among
    /// them. One bad approval refuses the whole authority: a forged approval is a
    /// finding to report, not noise to skip.
    pub fn verify(
        &self,
        manifest: &manifest::Manifest,
        manifest_hash: &[u8; 32],
        now_ms: u64,
    ) -> Result<Authorized, AuthorityError> {
        let request = Request::parse(&self.request)?;
        if request.manifest_hash != hex::encode(manifest_hash) {
            return Err(AuthorityError::OtherManifest);
        }
        if now_ms > request.expires_ms {
            return Err(AuthorityError::Expired {
                expires_ms: request.expires_ms,
                now_ms,
            });
        }
        if request.created_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(AuthorityError::FromTheFuture {
                created_ms: request.created_ms,
                now_ms,
            });
        }
        if self.approvals.len() > MAX_APPROVALS {
            return Err(AuthorityError::TooManyApprovals {
                count: self.approvals.len(),
            });
        }
        let id = self.id();
        let mut approvers = BTreeSet::new();
        for approval in &self.approvals {
            let shown = crate::text::printable(&approval.operator);
            let operator = manifest
                .operator(&approval.operator)
                .ok_or_else(|| AuthorityError::NotOperator(shown.clone()))?;
            let mut signature = [0u8; 64];
            hex::decode_to_slice(&approval.signature, &mut signature)
                .map_err(|_| AuthorityError::BadApproval(shown.clone()))?;
            if !manifest::verify_approval(operator.public_key(), &id, &signature) {
                return Err(AuthorityError::BadApproval(shown));
            }
            if !approvers.insert(approval.operator.clone()) {
                return Err(AuthorityError::Duplicate(shown));
            }
        }
        if !approvers.contains(&request.requester) {
            return Err(AuthorityError::NoRequesterApproval(crate::text::printable(
                &request.requester,
            )));
        }
        Ok(Authorized {
            id,
            request,
            approvers,
        })
    }
}

#[cfg(test)]
mod tests;
