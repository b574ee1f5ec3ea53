//! The real NSM, through `/dev/nsm` inside a Nitro Enclave. Compiled with the `nitro`
//! feature; it can only be exercised on Nitro hardware.

use super::{AttestationRequest, NsmError, PcrDescription};
use crate::{Attester, Provider};
use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver;
use serde_bytes::ByteBuf;
use std::fmt;

/// Largest `random` request served at once.
pub const MAX_RANDOM_LEN: usize = 64 * 1024;

/// An open handle to the NSM device, closed on drop.
pub struct NitroNsm {
    fd: i32,
}

impl fmt::Debug for NitroNsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NitroNsm").field("fd", &self.fd).finish()
    }
}

impl NitroNsm {
    /// Opens `/dev/nsm`. Fails outside a Nitro Enclave.
    pub fn open() -> Result<Self, NsmError> {
        let fd = driver::nsm_init();
        if fd < 0 {
            return Err(NsmError::Unavailable(
                "/dev/nsm could not be opened (not inside a Nitro Enclave?)".to_owned(),
            ));
        }
        Ok(NitroNsm { fd })
    }

    fn call(&self, request: Request) -> Result<Response, NsmError> {
        match driver::nsm_process_request(self.fd, request) {
            Response::Error(code) => Err(NsmError::Refused(format!("{code:?}"))),
            response => Ok(response),
        }
    }
}

impl Drop for NitroNsm {
    fn drop(&mut self) {
        driver::nsm_exit(self.fd);
    }
}

impl Attester for NitroNsm {
    fn provider(&self) -> Provider {
        Provider::Nitro
    }

    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        super::validate(request)?;
        let response = self.call(Request::Attestation {
            user_data: request.user_data.clone().map(ByteBuf::from),
            nonce: request.nonce.clone().map(ByteBuf::from),
            public_key: request.public_key.clone().map(ByteBuf::from),
        })?;
        match response {
            Response::Attestation { document } => Ok(document),
            other => Err(NsmError::UnexpectedResponse(format!("{other:?}"))),
        }
    }
}

impl NitroNsm {
    /// `len` bytes from the NSM's random number generator.
    pub fn random(&self, len: usize) -> Result<Vec<u8>, NsmError> {
        if len > MAX_RANDOM_LEN {
            return Err(NsmError::InvalidRequest {
                field: "random length",
                len,
                max: MAX_RANDOM_LEN,
            });
        }
        // Each GetRandom call returns a device-defined number of bytes; gather enough.
        let mut out = Vec::new();
        while out.len() < len {
            match self.call(Request::GetRandom)? {
                Response::GetRandom { random } if !random.is_empty() => {
                    let take = random.len().min(len - out.len());
                    out.extend(random.iter().take(take));
                }
                other => return Err(NsmError::UnexpectedResponse(format!("{other:?}"))),
            }
        }
        Ok(out)
    }

    /// The current value of PCR `index`.
    pub fn describe_pcr(&self, index: u16) -> Result<PcrDescription, NsmError> {
        match self.call(Request::DescribePCR { index })? {
            Response::DescribePCR { lock, data } => Ok(PcrDescription {
                locked: lock,
                value: data,
            }),
            other => Err(NsmError::UnexpectedResponse(format!("{other:?}"))),
        }
    }
}
