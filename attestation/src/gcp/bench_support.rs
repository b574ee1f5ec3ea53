//! The signature checks that [`crate::gcp::Verifier`] performs on a token, exposed so a
//! benchmark can time them on their own and compare them with full verification.
//! Not part of the API.

use crate::error::{CertProblem, CertSlot, VerifyError};
use crate::gcp::chain::rsa_public_key;
use crate::gcp::evidence::CsEvidence;
use crate::nitro::chain::ParsedCert;
use aws_lc_rs::signature::{self, RsaParameters};

/// One RSA PKCS #1 v1.5 SHA-256 check: `algorithm` verifies `signature` over `message`
/// with `public_key` (DER `RSAPublicKey`).
#[derive(Debug, Clone)]
pub struct SignatureCheck {
    pub algorithm: &'static RsaParameters,
    pub public_key: Vec<u8>,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The signature checks that verifying `bytes` (a token or a bundle) performs: one per
/// link of `x5c` from the root down (issuer key, the certificate's TBS bytes, its
/// signature), then the token's (leaf key, signing input, signature).
///
/// Only extracts; nothing is verified here. Fails where the evidence or one of its
/// certificates cannot be decoded.
pub fn signature_checks(bytes: &[u8]) -> Result<Vec<SignatureCheck>, VerifyError> {
    let evidence = CsEvidence::parse(bytes)?;
    let token = evidence.token();
    let certs = token
        .x5c()
        .iter()
        .enumerate()
        .map(|(i, der)| ParsedCert::parse(der).map_err(at(CertSlot::X5c(i))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut checks = Vec::with_capacity(certs.len());
    for (i, pair) in certs.windows(2).enumerate().rev() {
        let [cert, issuer] = pair else {
            continue;
        };
        let slot = CertSlot::X5c(i);
        let signature = cert
            .cert
            .signature()
            .as_bytes()
            .ok_or(CertProblem::BadSignature)
            .map_err(at(slot))?;
        checks.push(SignatureCheck {
            algorithm: &signature::RSA_PKCS1_2048_8192_SHA256,
            public_key: rsa_public_key(issuer).map_err(at(slot))?.to_vec(),
            message: cert.tbs().to_vec(),
            signature: signature.to_vec(),
        });
    }
    let leaf = certs.first().ok_or(VerifyError::Certificate {
        slot: CertSlot::X5c(0),
        problem: CertProblem::Malformed("missing".to_owned()),
    })?;
    checks.push(SignatureCheck {
        algorithm: &signature::RSA_PKCS1_2048_8192_SHA256,
        public_key: rsa_public_key(leaf).map_err(at(CertSlot::X5c(0)))?.to_vec(),
        message: token.signing_input().to_vec(),
        signature: token.signature().to_vec(),
    });
    Ok(checks)
}

fn at(slot: CertSlot) -> impl Fn(CertProblem) -> VerifyError {
    move |problem| VerifyError::Certificate { slot, problem }
}
