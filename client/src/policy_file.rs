//! Policy files as operators approve them: an operator's signature of a policy body, and
//! the envelope that carries the body with K operators' signatures to every node
//! (`{"policy": "<base64 of the body>", "signatures": [{"operator", "signature"}]}`, the
//! manifest envelope's shape). Operators sign [`POLICY_CONTEXT`] followed by the body's
//! exact bytes, so an approval of a policy is never an approval of a manifest or of a
//! request, nor the other way round.
//!
//! The client checks a body's form only (JSON with a version); what a policy means is
//! each node's business.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use manifest::{OperatorKey, OperatorSignature, Signature, SignatureWire};
use serde::{Deserialize, Serialize};

/// Prefix of every signed policy message.
pub const POLICY_CONTEXT: &[u8] = b"tee-custody policy v1\0";
/// Largest policy body.
pub const MAX_POLICY_BODY_LEN: usize = 64 * 1024;
/// Largest policy envelope: what a node accepts.
pub const MAX_POLICY_ENVELOPE_LEN: usize = protocol::operator_api::MAX_ENVELOPE_LEN;
/// Most signatures an envelope carries: one per operator a manifest may list.
pub const MAX_SIGNATURES: usize = manifest::MAX_OPERATORS;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFileError {
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the policy body is not JSON with a version: {0}")]
    Body(String),
    #[error("the envelope: {0}")]
    Envelope(String),
    #[error("{count} signatures; at most {MAX_SIGNATURES}")]
    TooManySignatures { count: usize },
    #[error("no signatures")]
    NoSignatures,
    #[error("signature {index}: {source}")]
    Signature {
        index: usize,
        #[source]
        source: manifest::ManifestError,
    },
    #[error("approvals: {0}")]
    Approval(#[source] manifest::ManifestError),
}

/// The version of a policy body, once it is checked to be a JSON object with one.
pub fn body_version(body: &[u8]) -> Result<u64, PolicyFileError> {
    if body.len() > MAX_POLICY_BODY_LEN {
        return Err(PolicyFileError::TooLarge {
            what: "policy body",
            len: body.len(),
            max: MAX_POLICY_BODY_LEN,
        });
    }
    let object = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .map_err(|e| PolicyFileError::Body(e.to_string()))?;
    object
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| PolicyFileError::Body("no version (an unsigned integer)".to_owned()))
}

/// `key`'s approval of the policy `body`.
pub fn sign_policy(body: &[u8], key: &OperatorKey) -> Result<Signature, PolicyFileError> {
    body_version(body)?;
    Ok(manifest::sign_in(POLICY_CONTEXT, body, key))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeWire {
    policy: String,
    signatures: Vec<SignatureWire>,
}

/// The envelope nodes accept for `body` with `signatures`.
pub fn assemble_policy(
    body: &[u8],
    signatures: &[OperatorSignature],
) -> Result<Vec<u8>, PolicyFileError> {
    body_version(body)?;
    if signatures.is_empty() {
        return Err(PolicyFileError::NoSignatures);
    }
    if signatures.len() > MAX_SIGNATURES {
        return Err(PolicyFileError::TooManySignatures {
            count: signatures.len(),
        });
    }
    let wire = EnvelopeWire {
        policy: STANDARD.encode(body),
        signatures: signatures.iter().map(SignatureWire::from).collect(),
    };
    let envelope =
        serde_json::to_vec(&wire).map_err(|e| PolicyFileError::Envelope(e.to_string()))?;
    if envelope.len() > MAX_POLICY_ENVELOPE_LEN {
        return Err(PolicyFileError::TooLarge {
            what: "policy envelope",
            len: envelope.len(),
            max: MAX_POLICY_ENVELOPE_LEN,
        });
    }
    Ok(envelope)
}

/// An envelope's body and signatures, decoded (not verified).
#[derive(Debug)]
pub struct PolicyEnvelope {
    pub body: Vec<u8>,
    pub version: u64,
    pub signatures: Vec<OperatorSignature>,
}

/// Decodes an envelope; its size is checked before it is parsed.
pub fn parse_envelope(envelope: &[u8]) -> Result<PolicyEnvelope, PolicyFileError> {
    if envelope.len() > MAX_POLICY_ENVELOPE_LEN {
        return Err(PolicyFileError::TooLarge {
            what: "policy envelope",
            len: envelope.len(),
            max: MAX_POLICY_ENVELOPE_LEN,
        });
    }
    let wire: EnvelopeWire =
        serde_json::from_slice(envelope).map_err(|e| PolicyFileError::Envelope(e.to_string()))?;
    if wire.signatures.len() > MAX_SIGNATURES {
        return Err(PolicyFileError::TooManySignatures {
            count: wire.signatures.len(),
        });
    }
    let body = STANDARD
        .decode(&wire.policy)
        .map_err(|e| PolicyFileError::Envelope(format!("policy: {e}")))?;
    let version = body_version(&body)?;
    let signatures = wire
        .signatures
        .into_iter()
        .enumerate()
        .map(|(index, s)| {
            s.decode(index)
                .map_err(|source| PolicyFileError::Signature { index, source })
        })
        .collect::<Result<_, _>>()?;
    Ok(PolicyEnvelope {
        body,
        version,
        signatures,
    })
}

/// Whether `threshold` of `operators` approved the envelope's policy (the nodes decide
/// the same with their own manifest); the operators that did.
pub fn verify_policy(
    envelope: &PolicyEnvelope,
    operators: &[manifest::Operator],
    threshold: usize,
) -> Result<Vec<String>, PolicyFileError> {
    manifest::verify_approvals(
        POLICY_CONTEXT,
        &envelope.body,
        &envelope.signatures,
        operators,
        threshold,
    )
    .map(|approval| approval.signers().to_vec())
    .map_err(PolicyFileError::Approval)
}

#[cfg(test)]
mod tests;
