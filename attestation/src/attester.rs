//! The attesting side: what a node asks of its TEE's attester, whatever the provider.
//!
//! A node holds one [`Attester`]: the Nitro Secure Module inside a Nitro Enclave
//! ([`crate::nitro::nsm::NitroNsm`], feature `nitro`), Confidential Space's launcher
//! ([`crate::gcp::launcher::Launcher`]), or a simulated one that issues evidence in
//! exactly the provider's format under its own root (feature `sim`). It asks
//! for evidence binding an [`AttestationRequest`] (the channel binding) and sends the
//! bytes as they are; the other end appraises them with [`crate::Verifier`].

use crate::provider::Provider;

/// What fresh evidence is to bind: the values a verifier reads back as its
/// [`crate::Binding`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestationRequest {
    /// The manifest hash, in the attested channel.
    pub user_data: Option<Vec<u8>>,
    /// The connection's TLS exporter value, in the attested channel.
    pub nonce: Option<Vec<u8>>,
    /// The key the evidence vouches for: a TLS key, or a key to encrypt secrets to.
    pub public_key: Option<Vec<u8>>,
}

/// An attester could not produce evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    #[error(
        "`{field}` is {len} bytes, the attester accepts at most {max} (and a public key at least 1)"
    )]
    InvalidRequest {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("cannot open the attester: {0}")]
    Unavailable(String),
    #[error("the attester refused the request: {0}")]
    Refused(String),
    #[error("the attester returned an unexpected response: {0}")]
    UnexpectedResponse(String),
    /// Confidential Space: the launcher's limits (at most 6 nonces of 10 to 74 bytes).
    #[error("launcher request: {what} is {found}, the launcher allows {min}..={max}")]
    LauncherLimit {
        what: &'static str,
        found: usize,
        min: usize,
        max: usize,
    },
    /// Nitro: the NSM has no such PCR.
    #[error("PCR{0} does not exist")]
    NoSuchPcr(u16),
    #[error("simulated attester: {0}")]
    Simulator(String),
}

/// Produces this node's evidence. Implementations must be safe to share across threads.
pub trait Attester: Send + Sync {
    /// The provider whose evidence this attester produces.
    fn provider(&self) -> Provider;
    /// Fresh evidence binding `request`, as the bytes that travel (for Nitro, an untagged
    /// COSE_Sign1 attestation document; for Confidential Space, a bundle).
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttestError>;
}
