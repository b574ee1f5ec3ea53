//! Threshold ECDSA's key material: auxiliary info and key shares.
//!
//! [`AuxInfo`] and [`KeyShare`] hold secrets (Paillier primes, the secret share). They have no
//! `Clone`, no `Serialize` and a redacted `Debug`. The only way out is `to_sealed_bytes`, a
//! versioned encoding that exists to be written to the node's sealed storage and nowhere else;
//! `from_sealed_bytes` reads it back with a size limit and full validation. A key share's
//! record ([`crate::record`]) names the scheme and the share's epoch; auxiliary info, which
//! only this scheme has, keeps its own one-byte version. The secret scalar is zeroized on drop
//! by the library (`SecretScalar`); the big integers of the Paillier key cannot be, because
//! `num-bigint` gives no access to its limbs.

use std::fmt;

use cggmp24::key_share::{AnyKeyShare, IncompleteKeyShare};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Ecdsa, Level};
use crate::Curve;
use crate::keys::{DerivationPath, KeyError, KeyId, PublicKey, party_set_of};
use crate::party::{NodeId, PartyError, PartySet, SigningSet, Threshold};
use crate::record::{ShareRecord, seal_share, sealed_decode, sealed_encode};
use crate::scheme::{Epoch, Scheme, SchemeId, Share};

const SEALED_AUX_INFO_VERSION: u8 = 1;

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

/// One party's share of a threshold key, with the key's id, party set and epoch.
pub struct KeyShare {
    key_id: KeyId,
    group: PartySet,
    threshold: Threshold,
    epoch: Epoch,
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
        Self::new(key_id, group, Epoch::INITIAL, inner)
    }

    fn new(
        key_id: KeyId,
        group: PartySet,
        epoch: Epoch,
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
            epoch,
            inner,
        })
    }

    pub fn scheme(&self) -> SchemeId {
        Ecdsa::ID
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

    /// The generation of this share: [`Epoch::INITIAL`] from key generation.
    pub fn epoch(&self) -> Epoch {
        self.epoch
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
            .derive_child_public_key::<hd_wallet::Slip10, _>(crate::keys::non_hardened(path)?)
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

    /// For the node's sealed storage only: the current version of this share's record,
    /// naming the scheme and the epoch.
    pub fn to_sealed_bytes(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let sealed = SealedKeyShareRef {
            key_id: self.key_id.as_str(),
            group: self.group.nodes().iter().map(NodeId::as_str).collect(),
            share: &self.inner,
        };
        seal_share(Ecdsa::ID, self.epoch, &sealed)
    }

    /// Reads a record of either version back (one from before records named a scheme is an
    /// ECDSA share at epoch 0); refuses a record of another scheme.
    pub fn from_sealed_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let record = ShareRecord::parse(bytes)?;
        let sealed: SealedKeyShare = record.body(Ecdsa::ID)?;
        let group = party_set_of(sealed.group)?;
        Self::new(
            KeyId::new(sealed.key_id)?,
            group,
            record.epoch(),
            sealed.share,
        )
    }
}

impl Share for KeyShare {
    type PublicKey = PublicKey;

    fn scheme(&self) -> SchemeId {
        Ecdsa::ID
    }

    fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    fn group(&self) -> &PartySet {
        &self.group
    }

    fn threshold(&self) -> Threshold {
        self.threshold
    }

    fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn public_key(&self) -> Result<PublicKey, KeyError> {
        KeyShare::public_key(self)
    }

    fn to_sealed_bytes(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        KeyShare::to_sealed_bytes(self)
    }

    fn from_sealed_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        KeyShare::from_sealed_bytes(bytes)
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("key_id", &self.key_id)
            .field("index", &self.index())
            .field("threshold", &self.threshold.get())
            .field("epoch", &self.epoch.get())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MAX_SEALED_LEN;
    use crate::record::{LEGACY_SHARE_RECORD_VERSION, SHARE_RECORD_VERSION};

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
            KeyShare::from_sealed_bytes(&[LEGACY_SHARE_RECORD_VERSION, 0xa0]),
            Err(KeyError::SealedEncoding(_))
        ));
        let mut current = vec![SHARE_RECORD_VERSION, 15];
        current.extend_from_slice(b"ecdsa-secp256k1");
        current.extend_from_slice(&[0; 8]);
        current.push(0xa0);
        assert!(matches!(
            KeyShare::from_sealed_bytes(&current),
            Err(KeyError::SealedEncoding(_))
        ));
        // A share of a scheme this build does not implement is never read as ECDSA.
        let mut reserved = vec![SHARE_RECORD_VERSION, 7];
        reserved.extend_from_slice(b"ed25519");
        reserved.extend_from_slice(&[0; 8]);
        reserved.extend_from_slice(current.get(25..).unwrap());
        assert_eq!(
            KeyShare::from_sealed_bytes(&reserved).err(),
            Some(KeyError::SealedScheme(
                crate::scheme::SchemeError::NotImplemented("ed25519".into())
            ))
        );
    }

    /// A record written before records named their scheme (exactly what the previous
    /// version wrote: version 1 and the same body) reads as an ECDSA share at epoch 0, and is
    /// written back in the current version with the same share in it.
    #[cfg(feature = "sim")]
    #[test]
    fn legacy_and_current_records_hold_the_same_share() {
        let share = crate::sim::tests::ecdsa_shares("key-records")
            .pop()
            .unwrap();
        assert_eq!(share.epoch(), Epoch::INITIAL);
        assert_eq!(share.scheme(), SchemeId::EcdsaSecp256k1);
        let legacy = sealed_encode(
            LEGACY_SHARE_RECORD_VERSION,
            &SealedKeyShareRef {
                key_id: share.key_id.as_str(),
                group: share.group.nodes().iter().map(NodeId::as_str).collect(),
                share: &share.inner,
            },
        )
        .unwrap();
        let from_legacy = KeyShare::from_sealed_bytes(&legacy).unwrap();
        assert_eq!(from_legacy.scheme(), SchemeId::EcdsaSecp256k1);
        assert_eq!(from_legacy.epoch(), Epoch::INITIAL);
        assert_eq!(from_legacy.key_id(), share.key_id());
        assert_eq!(from_legacy.group(), share.group());
        assert_eq!(from_legacy.index(), share.index());
        assert_eq!(
            from_legacy.public_key().unwrap(),
            share.public_key().unwrap()
        );

        let current = from_legacy.to_sealed_bytes().unwrap();
        let record = ShareRecord::parse(&current).unwrap();
        assert_eq!(current.first(), Some(&SHARE_RECORD_VERSION));
        assert_eq!(
            (record.scheme(), record.epoch()),
            (SchemeId::EcdsaSecp256k1, Epoch::INITIAL)
        );
        // The body is the legacy body, unchanged.
        assert!(current.ends_with(legacy.get(1..).unwrap()));
        let back = KeyShare::from_sealed_bytes(&current).unwrap();
        assert_eq!(back.public_key().unwrap(), share.public_key().unwrap());
        assert_eq!(back.to_sealed_bytes().unwrap(), current);
    }

    /// The epoch survives the record; it is read from the header, whatever the body holds.
    #[cfg(feature = "sim")]
    #[test]
    fn the_epoch_is_stored_with_the_share() {
        let mut share = crate::sim::tests::ecdsa_shares("key-records")
            .pop()
            .unwrap();
        share.epoch = Epoch::new(41);
        let sealed = Share::to_sealed_bytes(&share).unwrap();
        let back = <KeyShare as Share>::from_sealed_bytes(&sealed).unwrap();
        assert_eq!(Share::epoch(&back), Epoch::new(41));
        assert_eq!(Share::scheme(&back), SchemeId::EcdsaSecp256k1);
        assert_eq!(Share::key_id(&back).as_str(), "key-records");

        let mut edited = sealed.to_vec();
        let epoch_at = 2 + SchemeId::EcdsaSecp256k1.name().len();
        edited
            .get_mut(epoch_at..epoch_at + 8)
            .unwrap()
            .copy_from_slice(&u64::MAX.to_be_bytes());
        let moved = KeyShare::from_sealed_bytes(&edited).unwrap();
        assert_eq!(moved.epoch(), Epoch::new(u64::MAX));
    }
}
