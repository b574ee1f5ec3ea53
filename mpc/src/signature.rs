//! Signatures of any scheme, tagged with the scheme that made them.
//!
//! Each scheme has its own signature type with its own checks ([`crate::ecdsa::Signature`]:
//! `(r, s)` with a low `s`, and a recovery id); [`Signature`] is what code that handles every
//! scheme holds, and names the scheme so that an answer or a record is never read as another
//! scheme's.

use std::fmt;

use crate::ecdsa;
use crate::scheme::SchemeId;

/// A signature, with its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signature {
    EcdsaSecp256k1(ecdsa::Signature),
}

impl Signature {
    pub fn scheme(&self) -> SchemeId {
        match self {
            Signature::EcdsaSecp256k1(_) => SchemeId::EcdsaSecp256k1,
        }
    }

    /// The scheme's fixed-size encoding (ECDSA: `r || s`, 64 bytes, without the recovery id).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Signature::EcdsaSecp256k1(signature) => signature.to_bytes().to_vec(),
        }
    }

    /// The ECDSA signature, if this is one.
    pub fn as_ecdsa(&self) -> Option<&ecdsa::Signature> {
        match self {
            Signature::EcdsaSecp256k1(signature) => Some(signature),
        }
    }
}

impl From<ecdsa::Signature> for Signature {
    fn from(signature: ecdsa::Signature) -> Self {
        Signature::EcdsaSecp256k1(signature)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme(), hex(&self.to_bytes()))
    }
}

/// A signature that failed its scheme's checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("ECDSA signature: {0}")]
    EcdsaSecp256k1(#[from] ecdsa::VerifyError),
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ecdsa_signature_is_tagged() {
        let r = [1u8; 32];
        let mut s = [0u8; 32];
        s[31] = 2;
        let inner = ecdsa::Signature::from_parts(r, s, 1).unwrap();
        let tagged = Signature::from(inner);
        assert_eq!(tagged.scheme(), SchemeId::EcdsaSecp256k1);
        assert_eq!(tagged.as_ecdsa(), Some(&inner));
        assert_eq!(tagged.to_bytes(), inner.to_bytes().to_vec());
        assert!(tagged.to_string().starts_with("ecdsa-secp256k1:0101"));
    }
}
