//! Presignatures and the pool they are signed from.
//!
//! A presignature signs exactly once: signing with the same presignature twice reveals the
//! private key. The library does not enforce that; this module does, by construction:
//! [`Presignature`] has no `Clone`, no `Serialize` (it is never written to storage, so a restart
//! cannot replay it) and no way to be used except by moving it into
//! [`Ecdsa::sign_presigned`](crate::Scheme::sign_presigned), which issues its partial
//! signature once and drops it. [`PresignaturePool::take`] removes what it returns. The secret
//! scalars are zeroized when dropped.
//!
//! The library's rules on what a presignature may sign are kept, and surface as
//! [`PresignRefusal`]:
//! - only a message the nodes hash themselves, never a digest from the requester: a digest
//!   with no known preimage, chosen after the presignature's public part is known, can be
//!   crafted to forge a signature on another message;
//! - the derivation path is fixed when the presignature is generated; the library offers no
//!   way to move an existing presignature to another path, so the pool keys presignatures by
//!   path as well as by key and signing set.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use cggmp24::signing::PresignaturePublicData;

use super::ToSign;
use crate::Curve;
use crate::keys::{DerivationPath, KeyId, PublicKey};
use crate::party::SigningSet;
use crate::session_id::SessionId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresignRefusal {
    #[error(
        "a presignature only signs a message the nodes hash themselves, not a requester's digest"
    )]
    PrehashedDigest,
    #[error("the presignature is for {bound}, the request for {requested}")]
    PathMismatch {
        bound: DerivationPath,
        requested: DerivationPath,
    },
}

impl PresignRefusal {
    /// Checks the library's rule on data: a presignature never signs a bare digest.
    pub fn check(to_sign: &ToSign) -> Result<(), PresignRefusal> {
        match to_sign {
            ToSign::Digest(_) => Err(PresignRefusal::PrehashedDigest),
            ToSign::Keccak256Message(_) => Ok(()),
        }
    }
}

/// This party's presignature for one key, signing set and derivation path.
pub struct Presignature {
    key_id: KeyId,
    signers: SigningSet,
    path: DerivationPath,
    index: u16,
    public_key: PublicKey,
    secret: cggmp24::Presignature<Curve>,
    public: PresignaturePublicData<Curve>,
}

impl Presignature {
    pub(crate) fn new(
        key_id: KeyId,
        signers: SigningSet,
        path: DerivationPath,
        index: u16,
        public_key: PublicKey,
        secret: cggmp24::Presignature<Curve>,
        public: PresignaturePublicData<Curve>,
    ) -> Self {
        Self {
            key_id,
            signers,
            path,
            index,
            public_key,
            secret,
            public,
        }
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    pub fn signers(&self) -> &SigningSet {
        &self.signers
    }

    pub fn path(&self) -> &DerivationPath {
        &self.path
    }

    /// This party's index in the signing set.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The (derived) public key signatures from this presignature verify against.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The library's rules for signing `to_sign` at `path` (the master key if `None`) with
    /// this presignature; [`Ecdsa::sign_presigned`](crate::Scheme::sign_presigned) applies
    /// them before it consumes the presignature.
    pub fn check(
        &self,
        to_sign: &ToSign,
        path: Option<&DerivationPath>,
    ) -> Result<(), PresignRefusal> {
        PresignRefusal::check(to_sign)?;
        let requested = path.cloned().unwrap_or_default();
        if self.path != requested {
            return Err(PresignRefusal::PathMismatch {
                bound: self.path.clone(),
                requested,
            });
        }
        Ok(())
    }

    pub fn pool_key(&self) -> PoolKey {
        PoolKey {
            key_id: self.key_id.clone(),
            signers: self.signers.clone(),
            path: self.path.clone(),
        }
    }

    pub(crate) fn into_parts(
        self,
    ) -> (cggmp24::Presignature<Curve>, PresignaturePublicData<Curve>) {
        (self.secret, self.public)
    }
}

impl fmt::Debug for Presignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presignature")
            .field("key_id", &self.key_id)
            .field("signers", &self.signers.signers())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What a presignature can be used for: a key, a signing set and a derivation path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolKey {
    pub key_id: KeyId,
    pub signers: SigningSet,
    pub path: DerivationPath,
}

/// Presignatures kept in memory, up to `depth` per [`PoolKey`], each under the id of the
/// session that produced it (every signer of that session holds its own part under the
/// same id, so a signing request names the one all of them consume).
pub struct PresignaturePool {
    depth: usize,
    slots: BTreeMap<PoolKey, VecDeque<(SessionId, Presignature)>>,
}

impl PresignaturePool {
    pub fn new(depth: usize) -> Self {
        Self {
            depth,
            slots: BTreeMap::new(),
        }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Adds a presignature under `id`. When the pool for its key is full, the oldest ones
    /// are destroyed to make room (a peer that lost its pool in a restart leaves the others
    /// holding parts nobody can use; they age out this way). Returns how many were
    /// destroyed; with a depth of 0 that includes `presignature` itself.
    pub fn put(&mut self, id: SessionId, presignature: Presignature) -> usize {
        if self.depth == 0 {
            return 1;
        }
        let slot = self.slots.entry(presignature.pool_key()).or_default();
        if slot.iter().any(|(held, _)| *held == id) {
            // An id is never reused; a second presignature under it is destroyed.
            return 1;
        }
        let mut evicted = 0;
        while slot.len() >= self.depth {
            slot.pop_front();
            evicted += 1;
        }
        slot.push_back((id, presignature));
        evicted
    }

    /// The id of the oldest presignature for `key`, which stays in the pool.
    pub fn oldest(&self, key: &PoolKey) -> Option<SessionId> {
        self.slots.get(key)?.front().map(|(id, _)| *id)
    }

    /// Removes and returns presignature `id` for `key`; it will never be returned again.
    pub fn take(&mut self, key: &PoolKey, id: &SessionId) -> Option<Presignature> {
        let slot = self.slots.get_mut(key)?;
        let position = slot.iter().position(|(held, _)| held == id)?;
        let presignature = slot.remove(position).map(|(_, p)| p);
        if slot.is_empty() {
            self.slots.remove(key);
        }
        presignature
    }

    /// Like [`take`](Self::take) for the oldest presignature, but first refuses data a
    /// presignature must not sign, so that none is spent on a request that has to go to full
    /// signing anyway.
    pub fn take_for(
        &mut self,
        key: &PoolKey,
        to_sign: &ToSign,
    ) -> Result<Option<(SessionId, Presignature)>, PresignRefusal> {
        PresignRefusal::check(to_sign)?;
        let Some(id) = self.oldest(key) else {
            return Ok(None);
        };
        Ok(self.take(key, &id).map(|p| (id, p)))
    }

    pub fn available(&self, key: &PoolKey) -> usize {
        self.slots.get(key).map_or(0, VecDeque::len)
    }

    /// Presignatures held for every key.
    pub fn total(&self) -> usize {
        self.slots.values().map(VecDeque::len).sum()
    }

    /// How many presignatures to generate to fill the pool for `key`.
    pub fn missing(&self, key: &PoolKey) -> usize {
        self.depth.saturating_sub(self.available(key))
    }

    /// Destroys every presignature of `key_id` (after a refresh, a reshare or a deletion).
    pub fn discard_key(&mut self, key_id: &KeyId) -> usize {
        let before = self.total();
        self.slots.retain(|k, _| k.key_id != *key_id);
        before - self.total()
    }
}

impl fmt::Debug for PresignaturePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresignaturePool")
            .field("depth", &self.depth)
            .field(
                "available",
                &self
                    .slots
                    .iter()
                    .map(|(k, v)| (k, v.len()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Compile-time proof that secret types cannot be copied or serialized: each `const` below
/// becomes ambiguous, and fails to compile, if the type gains `Clone` or `Serialize`.
mod never_copied {
    use super::Presignature;
    use crate::ecdsa::{AuxInfo, KeyShare, SafePrimes};

    trait AmbiguousIfClone<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfClone<()> for T {}
    impl<T: Clone> AmbiguousIfClone<u8> for T {}

    trait AmbiguousIfSerialize<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSerialize<()> for T {}
    impl<T: ?Sized + serde::Serialize> AmbiguousIfSerialize<u8> for T {}

    const _: fn() = || {
        <Presignature as AmbiguousIfClone<_>>::check();
        <Presignature as AmbiguousIfSerialize<_>>::check();
        <KeyShare as AmbiguousIfClone<_>>::check();
        <KeyShare as AmbiguousIfSerialize<_>>::check();
        <AuxInfo as AmbiguousIfClone<_>>::check();
        <AuxInfo as AmbiguousIfSerialize<_>>::check();
        <SafePrimes as AmbiguousIfClone<_>>::check();
        <SafePrimes as AmbiguousIfSerialize<_>>::check();
    };
}
