//! Key material every scheme shares: key ids, non-hardened derivation paths, secp256k1 public
//! keys, and the errors of key material and of its stored records.
//!
//! Each scheme's secret types (ECDSA's in [`crate::ecdsa`]) have no `Clone`, no `Serialize`
//! and a redacted `Debug`; the only way out is a versioned record ([`crate::record`]) that
//! exists to be written to the node's sealed storage and nowhere else.

use std::fmt;

use generic_ec::Point;
use hd_wallet::NonHardenedIndex;

use crate::Curve;
use crate::party::{NodeId, PartyError, PartySet};
pub use crate::record::MAX_SEALED_LEN;
use crate::scheme::{MAX_SCHEME_NAME_LEN, SchemeError, SchemeId};
use ids::IdError;
pub use ids::KeyId;
pub use protocol::path::{DerivationPath, MAX_DERIVATION_DEPTH, PathError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("the key was not generated for HD derivation")]
    NotHd,
    #[error("invalid public key")]
    PublicKey,
    #[error("sealed blob of {len} bytes exceeds the limit of {max}", max = MAX_SEALED_LEN)]
    SealedTooLarge { len: usize },
    #[error("sealed blob: unsupported version {0:?}")]
    SealedVersion(Option<u8>),
    #[error("sealed blob: {0}")]
    SealedEncoding(String),
    #[error("sealed blob truncated: {len} bytes")]
    SealedTruncated { len: usize },
    #[error("sealed blob: a scheme name of {len} bytes; 1 to {max} bytes of text are allowed", max = MAX_SCHEME_NAME_LEN)]
    SealedSchemeName { len: usize },
    #[error("sealed blob: {0}")]
    SealedScheme(#[from] SchemeError),
    #[error("a share of scheme {found} where one of {expected} was expected")]
    WrongScheme { expected: SchemeId, found: SchemeId },
    #[error(transparent)]
    Party(#[from] PartyError),
    #[error("inconsistent key material: {0}")]
    Inconsistent(&'static str),
    #[error("the library refused the key material: {0}")]
    Invalid(String),
}

/// A secp256k1 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(k256::PublicKey);

impl PublicKey {
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        k256::PublicKey::from_sec1_bytes(bytes)
            .map(Self)
            .map_err(|_| KeyError::PublicKey)
    }

    /// Compressed SEC1 encoding, 33 bytes.
    pub fn to_sec1_compressed(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        let encoded = k256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&self.0, true);
        out.copy_from_slice(encoded.as_bytes());
        out
    }

    pub fn as_k256(&self) -> &k256::PublicKey {
        &self.0
    }

    pub(crate) fn from_k256(key: k256::PublicKey) -> Self {
        Self(key)
    }

    pub(crate) fn from_point(point: &Point<Curve>) -> Result<Self, KeyError> {
        Self::from_sec1(point.to_bytes(true).as_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKey({})",
            crate::signature::hex(&self.to_sec1_compressed())
        )
    }
}

/// The path's indices as the library takes them; a [`DerivationPath`] holds only
/// non-hardened ones, so this fails only if that rule and the library's ever disagree.
pub(crate) fn non_hardened(path: &DerivationPath) -> Result<Vec<NonHardenedIndex>, KeyError> {
    path.indices()
        .iter()
        .map(|i| {
            NonHardenedIndex::try_from(*i).map_err(|_| KeyError::Path(PathError::HardenedIndex(*i)))
        })
        .collect()
}

/// The party set named by ids read back from sealed storage, validated again.
pub(crate) fn party_set_of(ids: Vec<String>) -> Result<PartySet, KeyError> {
    let nodes = ids
        .into_iter()
        .map(NodeId::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PartySet::new(nodes)?)
}
