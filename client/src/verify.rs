//! Offline signature checks, with `k256` alone: nothing here trusts the nodes.

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{Signature, VerifyingKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("{what} is not valid hex: {reason}")]
    Hex { what: &'static str, reason: String },
    #[error("{what} must be {expected} bytes")]
    Length { what: &'static str, expected: usize },
    #[error("not a secp256k1 public key")]
    PublicKey,
    #[error("r or s is out of range")]
    Scalars,
    #[error("s is not in the lower half of the order (as Bitcoin and Ethereum require)")]
    HighS,
    #[error("the signature does not match the public key and digest")]
    Invalid,
}

fn bytes<const N: usize>(what: &'static str, hex: &str) -> Result<[u8; N], VerifyError> {
    let decoded = hex::decode(hex.trim_start_matches("0x")).map_err(|e| VerifyError::Hex {
        what,
        reason: e.to_string(),
    })?;
    decoded
        .try_into()
        .map_err(|_| VerifyError::Length { what, expected: N })
}

/// Checks `(r, s)` over the 32-byte `digest` against a SEC1 `public_key` (compressed or
/// not), all hex; a high `s` is refused.
pub fn verify_hex(public_key: &str, digest: &str, r: &str, s: &str) -> Result<(), VerifyError> {
    let key = hex::decode(public_key.trim_start_matches("0x")).map_err(|e| VerifyError::Hex {
        what: "public key",
        reason: e.to_string(),
    })?;
    let key = VerifyingKey::from_sec1_bytes(&key).map_err(|_| VerifyError::PublicKey)?;
    let digest: [u8; 32] = bytes("digest", digest)?;
    let r: [u8; 32] = bytes("r", r)?;
    let s: [u8; 32] = bytes("s", s)?;
    let signature = Signature::from_scalars(r, s).map_err(|_| VerifyError::Scalars)?;
    if signature.normalize_s().is_some() {
        return Err(VerifyError::HighS);
    }
    key.verify_prehash(&digest, &signature)
        .map_err(|_| VerifyError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;

    #[test]
    fn accepts_valid_low_s_signatures_only() {
        let secret = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let public = hex::encode(secret.verifying_key().to_encoded_point(true).as_bytes());
        let digest = [5u8; 32];
        let (signature, _) = secret.sign_prehash_recoverable(&digest).unwrap();
        let signature = signature.normalize_s().unwrap_or(signature);
        let (r, s) = signature.split_bytes();
        let (r, s) = (hex::encode(r), hex::encode(s));
        assert_eq!(verify_hex(&public, &hex::encode(digest), &r, &s), Ok(()));
        assert_eq!(
            verify_hex(&public, &hex::encode([6u8; 32]), &r, &s),
            Err(VerifyError::Invalid)
        );
        // The same signature with s negated: valid ECDSA, but high s.
        let high = Signature::from_scalars(signature.r().to_bytes(), (-*signature.s()).to_bytes())
            .unwrap();
        assert_eq!(
            verify_hex(
                &public,
                &hex::encode(digest),
                &r,
                &hex::encode(high.s().to_bytes())
            ),
            Err(VerifyError::HighS)
        );
        assert!(matches!(
            verify_hex("zz", &hex::encode(digest), &r, &s),
            Err(VerifyError::Hex { .. })
        ));
        assert_eq!(
            verify_hex(&public, "00", &r, &s),
            Err(VerifyError::Length {
                what: "digest",
                expected: 32
            })
        );
        assert_eq!(
            verify_hex("02", &hex::encode(digest), &r, &s),
            Err(VerifyError::PublicKey)
        );
    }
}
