//! The Nitro Secure Module: Nitro's [`crate::Attester`], real and simulated.
//!
//! The node holds it as an `Arc<dyn Nsm>`, which is the provider-neutral
//! [`crate::Attester`] under the name the node has always used. What only the NSM offers
//! (its random number generator, PCR descriptions) is on the implementations themselves.

#[cfg(feature = "nitro")]
mod nitro;
#[cfg(feature = "sim")]
pub mod sim;

#[cfg(feature = "nitro")]
pub use nitro::NitroNsm;

pub use crate::attester::{AttestError as NsmError, AttestationRequest, Attester as Nsm};

#[cfg(any(feature = "sim", feature = "nitro"))]
use crate::nitro::document::{MAX_NONCE_LEN, MAX_PUBLIC_KEY_LEN, MAX_USER_DATA_LEN};

/// Checks the AWS size limits of `request` before anything is sent to the NSM.
#[cfg(any(feature = "sim", feature = "nitro"))]
pub(crate) fn validate(request: &AttestationRequest) -> Result<(), NsmError> {
    let check = |field: &'static str, v: &Option<Vec<u8>>, min: usize, max: usize| match v {
        Some(b) if b.len() < min || b.len() > max => Err(NsmError::InvalidRequest {
            field,
            len: b.len(),
            max,
        }),
        _ => Ok(()),
    };
    check("user_data", &request.user_data, 0, MAX_USER_DATA_LEN)?;
    check("nonce", &request.nonce, 0, MAX_NONCE_LEN)?;
    check("public_key", &request.public_key, 1, MAX_PUBLIC_KEY_LEN)
}

/// The current value of one PCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrDescription {
    /// True when the PCR can no longer be extended.
    pub locked: bool,
    pub value: Vec<u8>,
}
