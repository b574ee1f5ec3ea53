//! What the node needs from the Nitro Secure Module, and its implementations.

#[cfg(feature = "nitro")]
mod nitro;
#[cfg(feature = "sim")]
pub mod sim;

#[cfg(feature = "nitro")]
pub use nitro::NitroNsm;

use crate::document::{MAX_NONCE_LEN, MAX_PUBLIC_KEY_LEN, MAX_USER_DATA_LEN};

/// Inputs bound into an attestation document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestationRequest {
    pub user_data: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
}

impl AttestationRequest {
    /// Checks the AWS size limits before anything is sent to the NSM.
    pub fn validate(&self) -> Result<(), NsmError> {
        let check = |field: &'static str, v: &Option<Vec<u8>>, min: usize, max: usize| match v {
            Some(b) if b.len() < min || b.len() > max => Err(NsmError::InvalidRequest {
                field,
                len: b.len(),
                max,
            }),
            _ => Ok(()),
        };
        check("user_data", &self.user_data, 0, MAX_USER_DATA_LEN)?;
        check("nonce", &self.nonce, 0, MAX_NONCE_LEN)?;
        check("public_key", &self.public_key, 1, MAX_PUBLIC_KEY_LEN)
    }
}

/// The current value of one PCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrDescription {
    /// True when the PCR can no longer be extended.
    pub locked: bool,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NsmError {
    #[error(
        "`{field}` is {len} bytes, the NSM accepts at most {max} (and a public key at least 1)"
    )]
    InvalidRequest {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("cannot open the NSM device: {0}")]
    Unavailable(String),
    #[error("NSM refused the request: {0}")]
    Refused(String),
    #[error("NSM returned an unexpected response: {0}")]
    UnexpectedResponse(String),
    #[error("PCR{0} does not exist")]
    NoSuchPcr(u16),
    #[error("simulated NSM: {0}")]
    Simulator(String),
}

/// The operations the node uses. Implementations must be safe to share across threads.
pub trait Nsm: Send + Sync {
    /// A fresh attestation document (untagged COSE_Sign1 bytes) binding the request.
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError>;
    /// `len` bytes from the NSM's random number generator.
    fn random(&self, len: usize) -> Result<Vec<u8>, NsmError>;
    /// The current value of PCR `index`.
    fn describe_pcr(&self, index: u16) -> Result<PcrDescription, NsmError>;
}
