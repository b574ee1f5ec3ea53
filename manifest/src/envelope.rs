//! The signed envelope: exact body bytes plus operator signatures over them.

use crate::body::{MAX_BODY_LEN, Manifest, Operator};
use crate::error::ManifestError;
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
pub use ids::ManifestHash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Largest envelope, checked before parsing: room for a body of [`MAX_BODY_LEN`] in
/// base64 (4/3 larger) and a signature from each of the most operators allowed.
pub const MAX_ENVELOPE_LEN: usize = 96 * 1024;
/// Prefix of every signed message (domain separation): operators sign
/// `SIGNING_CONTEXT || body`.
pub const SIGNING_CONTEXT: &[u8] = b"tee-custody manifest v1\0";

/// SHA-256 of the exact body bytes: the [`ManifestHash`] that goes into the `user_data`
/// of every attestation.
pub fn hash_of(body: &[u8]) -> ManifestHash {
    ManifestHash(to_array(digest(&SHA256, body).as_ref()))
}

/// An Ed25519 signature over `SIGNING_CONTEXT || body`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl From<[u8; 64]> for Signature {
    fn from(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// One entry of the envelope's `signatures`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSignature {
    pub operator: String,
    pub signature: Signature,
}

/// The message operators sign for `body`.
pub fn signed_message(body: &[u8]) -> Vec<u8> {
    signed_message_in(SIGNING_CONTEXT, body)
}

/// The message operators sign for `body` under `context`: every kind of document that
/// operators approve has its own context, so an approval of one is never an approval of
/// another.
pub fn signed_message_in(context: &[u8], body: &[u8]) -> Vec<u8> {
    [context, body].concat()
}

/// A parsed envelope whose body is structurally valid. Signatures are decoded but NOT
/// verified: only [`crate::accept`] turns this into something to act on.
#[derive(Clone)]
pub struct SignedManifest {
    envelope: Vec<u8>,
    body: Vec<u8>,
    manifest: Manifest,
    signatures: Vec<OperatorSignature>,
    hash: ManifestHash,
}

impl fmt::Debug for SignedManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedManifest")
            .field("version", &self.manifest.version())
            .field("hash", &self.hash)
            .field("signatures", &self.signatures)
            .finish_non_exhaustive()
    }
}

impl SignedManifest {
    /// Decodes the envelope and the body and validates their structure. Sizes are
    /// checked before each JSON parse.
    pub fn parse(envelope: &[u8]) -> Result<Self, ManifestError> {
        if envelope.len() > MAX_ENVELOPE_LEN {
            return Err(ManifestError::EnvelopeTooLarge {
                len: envelope.len(),
                max: MAX_ENVELOPE_LEN,
            });
        }
        let wire: EnvelopeWire =
            serde_json::from_slice(envelope).map_err(|e| ManifestError::Envelope(e.to_string()))?;
        let body = STANDARD
            .decode(&wire.manifest)
            .map_err(|e| ManifestError::Base64(e.to_string()))?;
        let manifest = Manifest::parse(&body)?;
        let signatures = wire
            .signatures
            .into_iter()
            .enumerate()
            .map(|(index, entry)| entry.decode(index))
            .collect::<Result<_, _>>()?;
        Ok(SignedManifest {
            envelope: envelope.to_vec(),
            hash: hash_of(&body),
            body,
            manifest,
            signatures,
        })
    }

    /// Builds the envelope JSON for `body` and `signatures`, and parses it back so that
    /// only an envelope [`SignedManifest::parse`] accepts comes out.
    pub fn assemble(body: &[u8], signatures: &[OperatorSignature]) -> Result<Self, ManifestError> {
        if body.len() > MAX_BODY_LEN {
            return Err(ManifestError::BodyTooLarge {
                len: body.len(),
                max: MAX_BODY_LEN,
            });
        }
        let wire = EnvelopeWire {
            manifest: STANDARD.encode(body),
            signatures: signatures.iter().map(SignatureWire::from).collect(),
        };
        let envelope =
            serde_json::to_vec(&wire).map_err(|e| ManifestError::Envelope(e.to_string()))?;
        SignedManifest::parse(&envelope)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn hash(&self) -> ManifestHash {
        self.hash
    }

    /// The exact body bytes that were signed and hashed.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The envelope as received, to store or forward unchanged.
    pub fn envelope_bytes(&self) -> &[u8] {
        &self.envelope
    }

    pub fn signatures(&self) -> &[OperatorSignature] {
        &self.signatures
    }

    /// Counts the distinct `approvers` whose signature verifies and requires at least
    /// `threshold` of them.
    ///
    /// - A signature naming an operator not in `approvers` is ignored.
    /// - A signature from a listed operator that does not verify is an error naming that
    ///   operator: it is evidence that the body or the signature was tampered with.
    /// - An operator (or a public key) signing several times counts once.
    pub fn verify_signatures(
        &self,
        approvers: &[Operator],
        threshold: usize,
    ) -> Result<Approval, ManifestError> {
        verify_approvals(
            SIGNING_CONTEXT,
            &self.body,
            &self.signatures,
            approvers,
            threshold,
        )
    }
}

/// [`SignedManifest::verify_signatures`] for any document operators approve: counts the
/// distinct `approvers` whose signature of `context || body` verifies, with the same
/// rules.
pub fn verify_approvals(
    context: &[u8],
    body: &[u8],
    signatures: &[OperatorSignature],
    approvers: &[Operator],
    threshold: usize,
) -> Result<Approval, ManifestError> {
    if threshold == 0 {
        return Err(ManifestError::Threshold {
            threshold,
            operators: approvers.len(),
        });
    }
    let message = signed_message_in(context, body);
    let mut keys = BTreeSet::new();
    let mut signers = Vec::new();
    for sig in signatures {
        let Some(operator) = approvers.iter().find(|op| op.id() == sig.operator) else {
            continue;
        };
        UnparsedPublicKey::new(&ED25519, operator.public_key())
            .verify(&message, &sig.signature.0)
            .map_err(|_| ManifestError::BadSignature {
                operator: operator.id().to_owned(),
            })?;
        if keys.insert(*operator.public_key()) {
            signers.push(operator.id().to_owned());
        }
    }
    if signers.len() < threshold {
        return Err(ManifestError::NotEnoughSignatures {
            found: signers.len(),
            needed: threshold,
        });
    }
    Ok(Approval { signers })
}

/// The operators whose valid signatures met the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    signers: Vec<String>,
}

impl Approval {
    /// Distinct signers, in envelope order.
    pub fn signers(&self) -> &[String] {
        &self.signers
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeWire {
    manifest: String,
    signatures: Vec<SignatureWire>,
}

/// One entry of an envelope's `signatures` as it travels, `{"operator", "signature":
/// "<hex>"}`: the same for every document operators approve.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureWire {
    operator: String,
    signature: String,
}

impl SignatureWire {
    /// Checks the operator id and decodes the signature of entry `index`.
    pub fn decode(self, index: usize) -> Result<OperatorSignature, ManifestError> {
        let SignatureWire {
            operator,
            signature,
        } = self;
        if let Err(source) = ids::check(&operator) {
            return Err(ManifestError::SignatureOperator {
                index,
                operator,
                source,
            });
        }
        let mut bytes = [0u8; 64];
        if signature.len() != 128 || hex::decode_to_slice(&signature, &mut bytes).is_err() {
            return Err(ManifestError::SignatureEncoding { index, operator });
        }
        Ok(OperatorSignature {
            operator,
            signature: Signature(bytes),
        })
    }
}

impl From<&OperatorSignature> for SignatureWire {
    fn from(s: &OperatorSignature) -> Self {
        SignatureWire {
            operator: s.operator.clone(),
            signature: hex::encode(s.signature.0),
        }
    }
}

/// Copies an output whose length the algorithm fixes (digest, signature, public key)
/// into an array without a panicking path.
pub(crate) fn to_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.iter_mut().zip(bytes).for_each(|(o, b)| *o = *b);
    out
}
