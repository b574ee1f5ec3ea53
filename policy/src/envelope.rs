//! The signed envelope of a policy: the exact body bytes plus operator signatures over
//! them, the same shape as a manifest's envelope (`{"policy": "<base64 of the body>",
//! "signatures": [{"operator", "signature": "<hex>"}]}`) and checked by the same code in
//! the `manifest` crate, under a context of its own ([`SIGNING_CONTEXT`]) so that an
//! operator's approval of a manifest never counts as an approval of a policy, nor the
//! reverse.

use crate::document::{MAX_POLICY_LEN, Policy};
use crate::error::PolicyError;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use manifest::{OperatorKey, OperatorSignature, Signature, SignatureWire};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Prefix of every message operators sign to approve a policy: `SIGNING_CONTEXT || body`.
/// Its `v1` is the version of the body's format.
pub const SIGNING_CONTEXT: &[u8] = b"tee-custody policy v1\0";
/// Largest envelope, checked before parsing: a body of [`MAX_POLICY_LEN`] in base64 (4/3
/// larger) and a signature from each of the most operators a manifest lists.
pub const MAX_POLICY_ENVELOPE_LEN: usize = 128 * 1024;

/// Signs `SIGNING_CONTEXT || body` with an operator's key.
pub fn sign(body: &[u8], key: &OperatorKey) -> Signature {
    manifest::sign_in(SIGNING_CONTEXT, body, key)
}

/// A parsed envelope whose body is a valid policy. Signatures are decoded but NOT
/// verified: only [`crate::accept`] turns this into something to act on.
#[derive(Clone)]
pub struct SignedPolicy {
    envelope: Vec<u8>,
    body: Vec<u8>,
    policy: Policy,
    signatures: Vec<OperatorSignature>,
    hash: [u8; 32],
}

impl fmt::Debug for SignedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPolicy")
            .field("version", &self.policy.version())
            .field("hash", &hex::encode(self.hash))
            .field("signatures", &self.signatures)
            .finish_non_exhaustive()
    }
}

impl SignedPolicy {
    /// Decodes the envelope and the body and validates their structure; sizes are checked
    /// before each parse.
    pub fn parse(envelope: &[u8]) -> Result<Self, PolicyError> {
        if envelope.len() > MAX_POLICY_ENVELOPE_LEN {
            return Err(PolicyError::EnvelopeTooLarge {
                len: envelope.len(),
                max: MAX_POLICY_ENVELOPE_LEN,
            });
        }
        let wire: EnvelopeWire =
            serde_json::from_slice(envelope).map_err(|e| PolicyError::Envelope(e.to_string()))?;
        let body = STANDARD
            .decode(&wire.policy)
            .map_err(|e| PolicyError::Base64(e.to_string()))?;
        let policy = Policy::parse(&body)?;
        let signatures = wire
            .signatures
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                entry
                    .decode(index)
                    .map_err(|source| PolicyError::SignatureEntry { index, source })
            })
            .collect::<Result<_, _>>()?;
        Ok(SignedPolicy {
            envelope: envelope.to_vec(),
            hash: hash_of(&body),
            body,
            policy,
            signatures,
        })
    }

    /// Builds the envelope for `body` and `signatures` and parses it back, so only an
    /// envelope [`SignedPolicy::parse`] accepts comes out.
    pub fn assemble(body: &[u8], signatures: &[OperatorSignature]) -> Result<Self, PolicyError> {
        if body.len() > MAX_POLICY_LEN {
            return Err(PolicyError::BodyTooLarge {
                len: body.len(),
                max: MAX_POLICY_LEN,
            });
        }
        let wire = EnvelopeWire {
            policy: STANDARD.encode(body),
            signatures: signatures.iter().map(SignatureWire::from).collect(),
        };
        let envelope =
            serde_json::to_vec(&wire).map_err(|e| PolicyError::Envelope(e.to_string()))?;
        SignedPolicy::parse(&envelope)
    }

    /// Signs `SIGNING_CONTEXT || body` with an operator's key (as [`sign`]).
    pub fn sign(body: &[u8], key: &OperatorKey) -> Signature {
        sign(body, key)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The exact body bytes that were signed.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// SHA-256 of the body bytes: what names this policy in records and the audit log.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The envelope as received, to store or forward unchanged.
    pub fn envelope_bytes(&self) -> &[u8] {
        &self.envelope
    }

    pub fn signatures(&self) -> &[OperatorSignature] {
        &self.signatures
    }
}

/// SHA-256 of policy body bytes.
pub fn hash_of(body: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.iter_mut()
        .zip(digest(&SHA256, body).as_ref())
        .for_each(|(o, b)| *o = *b);
    out
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeWire {
    policy: String,
    signatures: Vec<SignatureWire>,
}
