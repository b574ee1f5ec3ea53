//! Policy files as operators approve them: an operator's signature of a policy body, and
//! the envelope that carries the body with K operators' signatures to every node. The
//! formats and checks are the `policy` crate's, the very code the nodes run: a body is
//! checked whole here (a misspelt field is refused before anyone signs it), and an
//! approval of a policy is never an approval of a manifest or of a request.

use manifest::{OperatorKey, OperatorSignature, Signature};
use policy::{Policy, SignedPolicy};

/// Prefix of every signed policy message.
pub const POLICY_CONTEXT: &[u8] = policy::SIGNING_CONTEXT;
/// Largest policy body.
pub const MAX_POLICY_BODY_LEN: usize = policy::MAX_POLICY_LEN;
/// Largest policy envelope: what a node accepts.
pub const MAX_POLICY_ENVELOPE_LEN: usize = policy::MAX_POLICY_ENVELOPE_LEN;
const _: () = assert!(MAX_POLICY_ENVELOPE_LEN <= protocol::operator_api::MAX_ENVELOPE_LEN);
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
    #[error("the policy body: {0}")]
    Body(#[source] policy::PolicyError),
    #[error("the envelope: {0}")]
    Envelope(#[source] policy::PolicyError),
    #[error("{count} signatures; at most {MAX_SIGNATURES}")]
    TooManySignatures { count: usize },
    #[error("no signatures")]
    NoSignatures,
    #[error("approvals: {0}")]
    Approval(#[source] manifest::ManifestError),
}

/// The version of a policy body, once the body is checked whole as the nodes check it.
pub fn body_version(body: &[u8]) -> Result<u64, PolicyFileError> {
    if body.len() > MAX_POLICY_BODY_LEN {
        return Err(PolicyFileError::TooLarge {
            what: "policy body",
            len: body.len(),
            max: MAX_POLICY_BODY_LEN,
        });
    }
    Policy::parse(body)
        .map(|p| p.version())
        .map_err(PolicyFileError::Body)
}

/// `key`'s approval of the policy `body`.
pub fn sign_policy(body: &[u8], key: &OperatorKey) -> Result<Signature, PolicyFileError> {
    body_version(body)?;
    Ok(policy::sign(body, key))
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
    let signed = SignedPolicy::assemble(body, signatures).map_err(PolicyFileError::Envelope)?;
    Ok(signed.envelope_bytes().to_vec())
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
    let signed = SignedPolicy::parse(envelope).map_err(PolicyFileError::Envelope)?;
    if signed.signatures().len() > MAX_SIGNATURES {
        return Err(PolicyFileError::TooManySignatures {
            count: signed.signatures().len(),
        });
    }
    Ok(PolicyEnvelope {
        body: signed.body().to_vec(),
        version: signed.policy().version(),
        signatures: signed.signatures().to_vec(),
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
