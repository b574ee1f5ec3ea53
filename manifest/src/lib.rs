//! The cluster manifest: a versioned document listing the nodes (id, provider, address,
//! accepted measurement sets), the operators' Ed25519 keys and the approval threshold K.
//!
//! Wire formats:
//! - body: JSON, `{"version", "threshold", "operators": [{"id", "public_key"}],
//!   "nodes": [{"id", "provider", "address", "domain"?, "measurements":
//!   [{"<provider>": {..}}]}], "roots"?: {"<provider>": "<hex>"}, "placement"?:
//!   {"allow_provider_quorum"?, "allow_domain_quorum"?}}`, unknown fields refused.
//!   `roots` pins, per provider, the SHA-256 of the root certificate (DER) its evidence
//!   must chain to; `domain` puts a node in an operator domain (an id); `placement` lifts
//!   the placement rule ([`check_placement`]) for providers or domains, which without it
//!   refuses any key a single provider or domain could sign alone. `provider` is where the node runs (`"aws-nitro"`, `"sim"`);
//!   each measurement set names its provider and that provider's values (Nitro:
//!   `{"nitro": {"<pcr>": "<hex>"}}`); a set written without one, `{"<pcr>": "<hex>"}`,
//!   as every manifest was before sets named their provider, is Nitro's. Every set pins
//!   the code (Nitro: PCR0-2, or PCR8), and no evidence can match the sets of two nodes
//!   (see [`Manifest::parse`]);
//! - envelope (what travels and is stored): JSON, `{"manifest": "<base64 of the exact
//!   body bytes>", "signatures": [{"operator", "signature": "<hex>"}]}`, each signature
//!   over [`SIGNING_CONTEXT`] followed by the body bytes, so no canonicalization is needed;
//! - hash: SHA-256 of the body bytes ([`ManifestHash`], computed by [`hash_of`]), bound
//!   into every attestation.
//!
//! [`SignedManifest::parse`] checks structure only; [`accept`] checks signatures and
//! versions and is the only way to obtain an [`AcceptedManifest`].

#![forbid(unsafe_code)]

mod accept;
mod approval;
mod body;
mod command;
mod envelope;
mod error;
mod key;
mod placement;

pub use accept::{AcceptedManifest, accept};
pub use approval::{APPROVAL_CONTEXT, approval_message, verify_approval};
pub use body::{
    MAX_ADDRESS_LEN, MAX_BODY_LEN, MAX_MEASUREMENT_SETS, MAX_NODES, MAX_OPERATORS, Manifest, Node,
    Operator, Provider,
};
pub use command::{COMMAND_CONTEXT, command_message, verify_command};
pub use envelope::{
    Approval, MAX_ENVELOPE_LEN, ManifestHash, OperatorSignature, SIGNING_CONTEXT, Signature,
    SignatureWire, SignedManifest, hash_of, signed_message, signed_message_in, verify_approvals,
};
pub use error::{KeyError, ManifestError};
pub use key::{OperatorKey, sign, sign_in};
pub use placement::{Domain, Placement, PlacementError, check_placement};

use std::collections::BTreeMap;

/// Node id to `host:port`, after structural validation of the envelope. Signatures are
/// not checked: this is for the untrusted parent, which only needs to know where to
/// dial; the enclaves authenticate each other over the attested channel.
pub fn addresses(envelope: &[u8]) -> Result<BTreeMap<String, String>, ManifestError> {
    let signed = SignedManifest::parse(envelope)?;
    Ok(signed
        .manifest()
        .nodes()
        .iter()
        .map(|node| (node.id().to_owned(), node.address().to_owned()))
        .collect())
}
