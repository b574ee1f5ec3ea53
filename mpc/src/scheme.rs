//! The seam between the session driver and a signature scheme.
//!
//! A scheme supplies key generation, signing, optional presigning (whatever it can compute
//! before the data to sign is known: ECDSA presignatures, FROST's round-one nonce
//! commitments), and the types that go with them: its key share, public key, data to sign,
//! presigned material and signature. Everything else is the scheme-neutral [`Session`]:
//! framing, the per-round schedule and its refusals, blame mapped from indices to node ids, and
//! the runtime's deadlines. [`SchemeId`] names a scheme on the wire and in stored records.
//!
//! **A trait, not an enum.** Each scheme is a type implementing [`Scheme`] (threshold ECDSA is
//! [`crate::ecdsa::Ecdsa`]), with associated types. The alternative, one enum per concept
//! (`KeyShare::{Ecdsa, Frost}`, `Presignature::{..}`) and a `match` in every constructor,
//! would make "an ECDSA share with a FROST nonce commitment" a run-time error in every
//! function, and a new scheme an arm in each of them. With the trait, the compiler pairs a
//! share with its own scheme's presignatures and signatures; adding a scheme is one module, one
//! `impl Scheme` and one [`SchemeId`] variant, and neither the session driver nor the node's
//! routing (which sees only session ids and envelopes) changes. Enums remain only at the two
//! edges where values of every scheme meet in one place: [`crate::Signature`] (an answer of any
//! scheme) and the stored record's header ([`crate::record`]), which says which scheme's
//! decoder reads the body.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::keys::{DerivationPath, KeyError, KeyId};
use crate::party::{NodeId, PartySet, SigningSet, Threshold};
use crate::session::{ConfigError, Session, SessionError};
use crate::signature::Signature;

/// Scheme names live with the other identifiers, so that the wire types name a key's
/// scheme without this engine.
pub use ids::scheme::{MAX_SCHEME_NAME_LEN, SchemeError, SchemeId};

/// The generation of a key's shares: 0 when the key is created, one more at each refresh.
/// A share of one epoch never combines with a share of another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(u64);

impl Epoch {
    /// The epoch of a share that key generation produced.
    pub const INITIAL: Epoch = Epoch(0);

    pub fn new(epoch: u64) -> Self {
        Self(epoch)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The epoch after this one; `None` at `u64::MAX`, where shares can no longer be refreshed.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What any scheme's key share tells about itself, and how it is stored.
pub trait Share {
    type PublicKey;

    fn scheme(&self) -> SchemeId;
    fn key_id(&self) -> &KeyId;
    fn group(&self) -> &PartySet;
    fn threshold(&self) -> Threshold;
    fn epoch(&self) -> Epoch;
    fn public_key(&self) -> Result<Self::PublicKey, KeyError>;

    /// For the node's sealed storage only: a [`crate::record`] naming the scheme and epoch.
    fn to_sealed_bytes(&self) -> Result<Zeroizing<Vec<u8>>, KeyError>;

    /// Reads back what [`to_sealed_bytes`](Self::to_sealed_bytes) wrote (or an older version
    /// of it); refuses a record of another scheme.
    fn from_sealed_bytes(bytes: &[u8]) -> Result<Self, KeyError>
    where
        Self: Sized;
}

/// A threshold signature scheme: the sessions it runs and the types they produce.
///
/// Each constructor checks its parameters against the key share and returns a
/// [`Session`] that is not started yet; `request` is the canonical request every
/// participant verified, from which the session id is derived.
pub trait Scheme: 'static {
    const ID: SchemeId;

    /// What each party must hold for a party set before key generation (ECDSA: auxiliary
    /// info; `()` for a scheme that needs nothing).
    type Setup;
    type KeyShare: Share<PublicKey = Self::PublicKey>;
    type PublicKey;
    /// The data a signature covers, as this scheme takes it.
    type ToSign;
    /// One party's part of a presigning, used for exactly one signature and never stored.
    type Presigned;
    type Signature: Into<Signature>;

    /// Threshold key generation for `group`; the share is at [`Epoch::INITIAL`].
    fn keygen(
        request: &[u8],
        key_id: KeyId,
        group: &PartySet,
        me: &NodeId,
        threshold: Threshold,
        setup: &Self::Setup,
    ) -> Result<Session<Self::KeyShare>, SessionError>;

    /// Interactive signing by `signers`, at `path` if the scheme derives keys.
    fn sign(
        request: &[u8],
        key: Arc<Self::KeyShare>,
        signers: &SigningSet,
        me: &NodeId,
        to_sign: Self::ToSign,
        path: Option<&DerivationPath>,
    ) -> Result<Session<Self::Signature>, SessionError>;

    /// Presigning by `signers`, before the data is known. A scheme without presigning keeps
    /// this default, which refuses.
    fn presign(
        _request: &[u8],
        _key: Arc<Self::KeyShare>,
        _signers: &SigningSet,
        _me: &NodeId,
        _path: Option<&DerivationPath>,
    ) -> Result<Session<Self::Presigned>, SessionError> {
        Err(unsupported::<Self>("presigning"))
    }

    /// Signing with presigned material, which the session consumes.
    fn sign_presigned(
        _request: &[u8],
        _presigned: Self::Presigned,
        _me: &NodeId,
        _to_sign: &Self::ToSign,
        _path: Option<&DerivationPath>,
    ) -> Result<Session<Self::Signature>, SessionError> {
        Err(unsupported::<Self>("presigning"))
    }
}

fn unsupported<S: Scheme + ?Sized>(operation: &'static str) -> SessionError {
    ConfigError::Unsupported {
        scheme: S::ID,
        operation,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_uses_the_name() {
        let mut bytes = Vec::new();
        ciborium::into_writer(&SchemeId::EcdsaSecp256k1, &mut bytes).unwrap();
        let mut expected = Vec::new();
        ciborium::into_writer("ecdsa-secp256k1", &mut expected).unwrap();
        assert_eq!(bytes, expected);
        let back: SchemeId = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(back, SchemeId::EcdsaSecp256k1);
        let mut reserved = Vec::new();
        ciborium::into_writer("ed25519", &mut reserved).unwrap();
        assert!(ciborium::from_reader::<SchemeId, _>(reserved.as_slice()).is_err());
        let mut number = Vec::new();
        ciborium::into_writer(&0u8, &mut number).unwrap();
        assert!(ciborium::from_reader::<SchemeId, _>(number.as_slice()).is_err());
    }

    /// A scheme that does not presign keeps the default, which refuses with the scheme named.
    #[cfg(feature = "sim")]
    #[test]
    fn presigning_is_optional() {
        use crate::ecdsa::{AuxInfo, Ecdsa, KeyShare, ToSign};
        use crate::keys::PublicKey;

        struct NoPresigning;
        impl Scheme for NoPresigning {
            const ID: SchemeId = SchemeId::EcdsaSecp256k1;
            type Setup = AuxInfo;
            type KeyShare = KeyShare;
            type PublicKey = PublicKey;
            type ToSign = ToSign;
            type Presigned = std::convert::Infallible;
            type Signature = crate::ecdsa::Signature;

            fn keygen(
                request: &[u8],
                key_id: KeyId,
                group: &PartySet,
                me: &NodeId,
                threshold: Threshold,
                setup: &AuxInfo,
            ) -> Result<Session<KeyShare>, SessionError> {
                Ecdsa::keygen(request, key_id, group, me, threshold, setup)
            }

            fn sign(
                request: &[u8],
                key: Arc<KeyShare>,
                signers: &SigningSet,
                me: &NodeId,
                to_sign: ToSign,
                path: Option<&DerivationPath>,
            ) -> Result<Session<Self::Signature>, SessionError> {
                Ecdsa::sign(request, key, signers, me, to_sign, path)
            }
        }

        let share = Arc::new(crate::sim::tests::ecdsa_shares("key-optional").remove(0));
        let me = share.group().nodes()[0].clone();
        let signers = share
            .signing_set(share.group().nodes()[..2].iter().cloned())
            .unwrap();
        let refused = NoPresigning::presign(b"presign", Arc::clone(&share), &signers, &me, None);
        assert!(matches!(
            refused,
            Err(SessionError::Config(ConfigError::Unsupported {
                scheme: SchemeId::EcdsaSecp256k1,
                operation: "presigning"
            }))
        ));
        // The same share presigns through the scheme that implements it.
        assert!(Ecdsa::presign(b"presign", share, &signers, &me, None).is_ok());
    }

    #[test]
    fn epochs_count_up_and_stop() {
        assert_eq!(Epoch::INITIAL.get(), 0);
        assert_eq!(Epoch::default(), Epoch::INITIAL);
        assert_eq!(Epoch::INITIAL.next(), Some(Epoch::new(1)));
        assert_eq!(Epoch::new(u64::MAX - 1).next(), Some(Epoch::new(u64::MAX)));
        assert_eq!(Epoch::new(u64::MAX).next(), None);
    }
}
