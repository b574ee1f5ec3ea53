//! Key material: auxiliary info, key shares, public keys and non-hardened derivation paths.
//!
//! [`AuxInfo`] and [`KeyShare`] hold secrets (Paillier primes, the secret share). They have no
//! `Clone`, no `Serialize` and a redacted `Debug`. The only way out is `to_sealed_bytes`, a
//! versioned encoding that exists to be written to the node's sealed storage and nowhere else;
//! `from_sealed_bytes` reads it back with a size limit and full validation. The secret scalar
//! is zeroized on drop by the library (`SecretScalar`); the big integers of the Paillier key
//! cannot be, because `num-bigint` gives no access to its limbs.

use std::fmt;

use cggmp24::key_share::{AnyKeyShare, IncompleteKeyShare};
use generic_ec::Point;
use hd_wallet::NonHardenedIndex;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::party::{NodeId, PartyError, PartySet, SigningSet, Threshold};
use crate::{Curve, Level};
use ids::IdError;
pub use ids::KeyId;
pub use protocol::path::{DerivationPath, MAX_DERIVATION_DEPTH, PathError};

/// Largest sealed key share or auxiliary info accepted back from storage.
pub const MAX_SEALED_LEN: usize = 1024 * 1024;
const SEALED_KEY_SHARE_VERSION: u8 = 1;
const SEALED_AUX_INFO_VERSION: u8 = 1;

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

/// One party's auxiliary info for a fixed party set: its Paillier key and everyone's public
/// Paillier and ring-Pedersen parameters. Reusable for every key of the same party set.
pub struct AuxInfo {
    group: PartySet,
    index: u16,
    inner: cggmp24::key_share::AuxInfo<Level>,
}

impl AuxInfo {
    pub(crate) fn new(
        group: PartySet,
        index: u16,
        inner: cggmp24::key_share::AuxInfo<Level>,
    ) -> Result<Self, KeyError> {
        if inner.N.len() != usize::from(group.len()) {
            return Err(KeyError::Inconsistent(
                "auxiliary info is for another number of parties",
            ));
        }
        let own_modulus = inner
            .N
            .get(usize::from(index))
            .ok_or(KeyError::Inconsistent("index out of range"))?;
        if *own_modulus != &inner.p * &inner.q {
            return Err(KeyError::Inconsistent(
                "auxiliary info belongs to another index",
            ));
        }
        Ok(Self {
            group,
            index,
            inner,
        })
    }

    pub fn group(&self) -> &PartySet {
        &self.group
    }

    pub fn index(&self) -> u16 {
        self.index
    }

    /// Each key share completed with this auxiliary info takes its own copy of it.
    pub(crate) fn inner(&self) -> &cggmp24::key_share::AuxInfo<Level> {
        &self.inner
    }

    /// For the node's sealed storage only: the versioned encoding of this auxiliary info.
    pub fn to_sealed_bytes(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let sealed = SealedAuxInfoRef {
            group: self.group.nodes().iter().map(NodeId::as_str).collect(),
            index: self.index,
            aux: &self.inner,
        };
        sealed_encode(SEALED_AUX_INFO_VERSION, &sealed)
    }

    pub fn from_sealed_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let sealed: SealedAuxInfo = sealed_decode(SEALED_AUX_INFO_VERSION, bytes)?;
        let group = party_set_of(sealed.group)?;
        Self::new(group, sealed.index, sealed.aux)
    }
}

impl fmt::Debug for AuxInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuxInfo")
            .field("group", &self.group)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// One party's share of a threshold key, with the key's id and party set.
pub struct KeyShare {
    key_id: KeyId,
    group: PartySet,
    threshold: Threshold,
    inner: cggmp24::KeyShare<Curve, Level>,
}

impl KeyShare {
    /// Completes the key generation's output with this party's auxiliary info for `group`.
    pub(crate) fn assemble(
        key_id: KeyId,
        group: PartySet,
        core: IncompleteKeyShare<Curve>,
        aux: cggmp24::key_share::AuxInfo<Level>,
    ) -> Result<Self, KeyError> {
        let inner = cggmp24::KeyShare::<Curve, Level>::from_parts((core, aux))
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        Self::new(key_id, group, inner)
    }

    fn new(
        key_id: KeyId,
        group: PartySet,
        inner: cggmp24::KeyShare<Curve, Level>,
    ) -> Result<Self, KeyError> {
        if inner.n() != group.len() {
            return Err(KeyError::Inconsistent(
                "key share is for another number of parties",
            ));
        }
        if !inner.is_hd_wallet() {
            return Err(KeyError::NotHd);
        }
        let threshold = Threshold::new(inner.min_signers(), &group)?;
        Ok(Self {
            key_id,
            group,
            threshold,
            inner,
        })
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    pub fn group(&self) -> &PartySet {
        &self.group
    }

    pub fn threshold(&self) -> Threshold {
        self.threshold
    }

    /// This party's index at key generation.
    pub fn index(&self) -> u16 {
        self.inner.core.i
    }

    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        PublicKey::from_point(&self.inner.shared_public_key())
    }

    /// The public key at `path` (non-hardened SLIP-10, as the signing protocol derives it).
    pub fn derived_public_key(&self, path: &DerivationPath) -> Result<PublicKey, KeyError> {
        let child = self
            .inner
            .core
            .derive_child_public_key::<hd_wallet::Slip10, _>(non_hardened(path)?)
            .map_err(|_| KeyError::NotHd)?;
        PublicKey::from_point(&child.public_key)
    }

    /// A signing set of this key.
    pub fn signing_set(
        &self,
        signers: impl IntoIterator<Item = NodeId>,
    ) -> Result<SigningSet, PartyError> {
        SigningSet::new(&self.group, self.threshold, signers)
    }

    pub(crate) fn inner(&self) -> &cggmp24::KeyShare<Curve, Level> {
        &self.inner
    }

    /// For the node's sealed storage only: the versioned encoding of this key share.
    pub fn to_sealed_bytes(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let sealed = SealedKeyShareRef {
            key_id: self.key_id.as_str(),
            group: self.group.nodes().iter().map(NodeId::as_str).collect(),
            share: &self.inner,
        };
        sealed_encode(SEALED_KEY_SHARE_VERSION, &sealed)
    }

    pub fn from_sealed_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let sealed: SealedKeyShare = sealed_decode(SEALED_KEY_SHARE_VERSION, bytes)?;
        let group = party_set_of(sealed.group)?;
        Self::new(KeyId::new(sealed.key_id)?, group, sealed.share)
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("key_id", &self.key_id)
            .field("index", &self.index())
            .field("threshold", &self.threshold.get())
            .field("public_key", &self.public_key().ok())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct SealedKeyShareRef<'a> {
    key_id: &'a str,
    group: Vec<&'a str>,
    share: &'a cggmp24::KeyShare<Curve, Level>,
}

#[derive(Deserialize)]
struct SealedKeyShare {
    key_id: String,
    group: Vec<String>,
    share: cggmp24::KeyShare<Curve, Level>,
}

#[derive(Serialize)]
struct SealedAuxInfoRef<'a> {
    group: Vec<&'a str>,
    index: u16,
    aux: &'a cggmp24::key_share::AuxInfo<Level>,
}

#[derive(Deserialize)]
struct SealedAuxInfo {
    group: Vec<String>,
    index: u16,
    aux: cggmp24::key_share::AuxInfo<Level>,
}

fn sealed_encode<T: Serialize>(version: u8, value: &T) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut out = SecretBuffer(Zeroizing::new(Vec::with_capacity(64 * 1024)));
    out.0.push(version);
    ciborium::into_writer(value, &mut out).map_err(|e| KeyError::SealedEncoding(e.to_string()))?;
    Ok(out.0)
}

fn sealed_decode<T: serde::de::DeserializeOwned>(version: u8, bytes: &[u8]) -> Result<T, KeyError> {
    if bytes.len() > MAX_SEALED_LEN {
        return Err(KeyError::SealedTooLarge { len: bytes.len() });
    }
    match bytes.split_first() {
        Some((v, body)) if *v == version => {
            crate::payload::decode(body).map_err(KeyError::SealedEncoding)
        }
        Some((v, _)) => Err(KeyError::SealedVersion(Some(*v))),
        None => Err(KeyError::SealedVersion(None)),
    }
}

/// A growable buffer that wipes every allocation it leaves behind.
struct SecretBuffer(Zeroizing<Vec<u8>>);

impl std::io::Write for SecretBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let needed = self.0.len().saturating_add(bytes.len());
        if needed > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.saturating_mul(2)));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger;
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The party set named by ids read back from sealed storage, validated again.
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

fn party_set_of(ids: Vec<String>) -> Result<PartySet, KeyError> {
    let nodes = ids
        .into_iter()
        .map(NodeId::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PartySet::new(nodes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_blobs_are_checked_before_decoding() {
        assert_eq!(
            KeyShare::from_sealed_bytes(&[]).err(),
            Some(KeyError::SealedVersion(None))
        );
        assert_eq!(
            KeyShare::from_sealed_bytes(&[9, 0]).err(),
            Some(KeyError::SealedVersion(Some(9)))
        );
        assert_eq!(
            AuxInfo::from_sealed_bytes(&vec![1; MAX_SEALED_LEN + 1]).err(),
            Some(KeyError::SealedTooLarge {
                len: MAX_SEALED_LEN + 1
            })
        );
        assert!(matches!(
            KeyShare::from_sealed_bytes(&[SEALED_KEY_SHARE_VERSION, 0xa0]),
            Err(KeyError::SealedEncoding(_))
        ));
    }

    #[test]
    fn secret_buffer_keeps_everything_written() {
        let mut buffer = SecretBuffer(Zeroizing::new(Vec::with_capacity(1)));
        for chunk in 0..100u8 {
            std::io::Write::write_all(&mut buffer, &[chunk; 7]).unwrap();
        }
        assert_eq!(buffer.0.len(), 700);
        assert!(
            buffer
                .0
                .chunks(7)
                .enumerate()
                .all(|(i, c)| c == [i as u8; 7])
        );
    }
}
