//! What ECDSA signs, and its signatures `(r, s, v)` checked with `k256` independently of the
//! MPC library.

use std::fmt;

use k256::ecdsa::{self, RecoveryId, VerifyingKey, signature::hazmat::PrehashVerifier};

use crate::signature::hex;
use crate::{Curve, keys::PublicKey};
pub use protocol::to_sign::ToSign;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("r or s is not a valid non-zero scalar")]
    Scalars,
    #[error("s is not in the lower half of the order")]
    HighS,
    #[error("recovery id {0} is not 0 to 3")]
    RecoveryIdRange(u8),
    #[error("the signature does not verify against the public key")]
    Invalid,
    #[error("the recovery id does not give back the public key")]
    Recovery,
}

/// An ECDSA signature `(r, s)` with `s` in the lower half of the order, and the recovery id
/// (0 to 3) that gives back the signing key from the signature and the prehash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature {
    r: [u8; 32],
    s: [u8; 32],
    recovery_id: u8,
}

impl Signature {
    /// Normalizes `s`, verifies against `key` and finds the recovery id; used on every signature
    /// the library outputs before it leaves a session.
    pub(crate) fn from_library(
        signature: &cggmp24::Signature<Curve>,
        key: &PublicKey,
        prehash: &[u8; 32],
    ) -> Result<Self, VerifyError> {
        let (r, low, verifying) = Self::checked_low_s(signature, key, prehash)?;
        let recovery_id = RecoveryId::trial_recovery_from_prehash(&verifying, prehash, &low)
            .map_err(|_| VerifyError::Recovery)?;
        Ok(Self {
            r,
            s: low.s().to_bytes().into(),
            recovery_id: recovery_id.to_byte(),
        })
    }

    /// `r`, and the signature with `s` normalized to the lower half, once it verifies
    /// against `key` with `k256`.
    fn checked_low_s(
        signature: &cggmp24::Signature<Curve>,
        key: &PublicKey,
        prehash: &[u8; 32],
    ) -> Result<([u8; 32], ecdsa::Signature, VerifyingKey), VerifyError> {
        let bytes = |scalar: &generic_ec::Scalar<Curve>| -> Result<[u8; 32], VerifyError> {
            scalar
                .to_be_bytes()
                .as_bytes()
                .try_into()
                .map_err(|_| VerifyError::Scalars)
        };
        let r = bytes(&signature.r)?;
        let parsed = ecdsa::Signature::from_scalars(r, bytes(&signature.s)?)
            .map_err(|_| VerifyError::Scalars)?;
        let low = parsed.normalize_s().unwrap_or(parsed);
        let verifying = VerifyingKey::from(key.as_k256());
        verifying
            .verify_prehash(prehash, &low)
            .map_err(|_| VerifyError::Invalid)?;
        Ok((r, low, verifying))
    }

    /// Like [`from_library`](Self::from_library) when the nonce point `R` is known (signing
    /// from a presignature) together with `raw_s`, the `s` that goes with `R` before any
    /// normalization: the recovery id is read off `R` (parity of y, and whether x was
    /// reduced modulo the order) instead of trying each candidate, which costs a key
    /// recovery per try. The signature is still verified against `key` with `k256`.
    pub(crate) fn from_library_with_nonce_point(
        signature: &cggmp24::Signature<Curve>,
        nonce_point: &generic_ec::Point<Curve>,
        raw_s: &generic_ec::Scalar<Curve>,
        key: &PublicKey,
        prehash: &[u8; 32],
    ) -> Result<Self, VerifyError> {
        let (r, low, _) = Self::checked_low_s(signature, key, prehash)?;
        let compressed = nonce_point.to_bytes(true);
        let [prefix, x @ ..] = compressed.as_bytes() else {
            return Err(VerifyError::Recovery);
        };
        let y_odd = match prefix {
            0x02 => false,
            0x03 => true,
            _ => return Err(VerifyError::Recovery),
        };
        // Negating s is signing with -k, whose point has the other y: compare the s we
        // output with the one that goes with R.
        let low_s: [u8; 32] = low.s().to_bytes().into();
        let y_odd = y_odd ^ (low_s.as_slice() != raw_s.to_be_bytes().as_bytes());
        let x_reduced = x != r.as_slice();
        let recovery_id = RecoveryId::new(y_odd, x_reduced);
        Ok(Self {
            r,
            s: low.s().to_bytes().into(),
            recovery_id: recovery_id.to_byte(),
        })
    }

    /// Parses `(r, s, recovery id)`; refuses a high `s`.
    pub fn from_parts(r: [u8; 32], s: [u8; 32], recovery_id: u8) -> Result<Self, VerifyError> {
        if RecoveryId::from_byte(recovery_id).is_none() {
            return Err(VerifyError::RecoveryIdRange(recovery_id));
        }
        let parsed = ecdsa::Signature::from_scalars(r, s).map_err(|_| VerifyError::Scalars)?;
        if parsed.normalize_s().is_some() {
            return Err(VerifyError::HighS);
        }
        Ok(Self { r, s, recovery_id })
    }

    pub fn r(&self) -> [u8; 32] {
        self.r
    }

    pub fn s(&self) -> [u8; 32] {
        self.s
    }

    pub fn recovery_id(&self) -> u8 {
        self.recovery_id
    }

    /// `r || s`, 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        let (r, s) = out.split_at_mut(32);
        r.copy_from_slice(&self.r);
        s.copy_from_slice(&self.s);
        out
    }

    fn to_k256(self) -> Result<(ecdsa::Signature, RecoveryId), VerifyError> {
        let signature =
            ecdsa::Signature::from_scalars(self.r, self.s).map_err(|_| VerifyError::Scalars)?;
        let recovery_id = RecoveryId::from_byte(self.recovery_id)
            .ok_or(VerifyError::RecoveryIdRange(self.recovery_id))?;
        Ok((signature, recovery_id))
    }

    /// Verifies against `key`, with `k256`, and checks that the recovery id recovers `key`.
    pub fn verify(&self, key: &PublicKey, prehash: &[u8; 32]) -> Result<(), VerifyError> {
        let (signature, _) = self.to_k256()?;
        VerifyingKey::from(key.as_k256())
            .verify_prehash(prehash, &signature)
            .map_err(|_| VerifyError::Invalid)?;
        if self.recover(prehash)? != *key {
            return Err(VerifyError::Recovery);
        }
        Ok(())
    }

    /// The public key that produced this signature over `prehash`, from the recovery id.
    pub fn recover(&self, prehash: &[u8; 32]) -> Result<PublicKey, VerifyError> {
        let (signature, recovery_id) = self.to_k256()?;
        let key = VerifyingKey::recover_from_prehash(prehash, &signature, recovery_id)
            .map_err(|_| VerifyError::Recovery)?;
        Ok(PublicKey::from_k256(key.into()))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("r", &hex(&self.r))
            .field("s", &hex(&self.s))
            .field("recovery_id", &self.recovery_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;

    /// The recovery id read off the nonce point matches trial recovery, whatever the parity
    /// of R and whether the library's s was normalized.
    #[test]
    fn recovery_id_from_the_nonce_point() {
        use generic_ec::coords::HasAffineX;
        use generic_ec::{NonZero, Point, Scalar};
        let mut rng = rand_core::OsRng;
        let x = Scalar::<Curve>::random(&mut rng);
        let key = PublicKey::from_point(&(Point::generator() * x)).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0u8..64 {
            let prehash = [i; 32];
            let m = Scalar::<Curve>::from_be_bytes_mod_order(prehash);
            let k = Scalar::<Curve>::random(&mut rng);
            let nonce_point = Point::generator() * k;
            let r = nonce_point.x().unwrap().to_scalar();
            let raw_s = k.invert().unwrap() * (m + r * x);
            for library_s in [raw_s, -raw_s] {
                let signature = cggmp24::Signature {
                    r: NonZero::from_scalar(r).unwrap(),
                    s: NonZero::from_scalar(library_s).unwrap(),
                };
                let fast = Signature::from_library_with_nonce_point(
                    &signature,
                    &nonce_point,
                    &raw_s,
                    &key,
                    &prehash,
                )
                .unwrap();
                let slow = Signature::from_library(&signature, &key, &prehash).unwrap();
                assert_eq!(fast, slow);
                seen.insert(fast.recovery_id());
            }
        }
        assert_eq!(seen.len(), 2, "both parities were exercised");
    }

    #[test]
    fn checks_a_k256_signature() {
        let secret = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let key = PublicKey::from_k256(secret.verifying_key().into());
        let to_sign = ToSign::Keccak256Message(b"hello".to_vec());
        let prehash = to_sign.prehash();
        let (sig, recid) = secret.sign_prehash_recoverable(&prehash).unwrap();
        let sig = sig.normalize_s().unwrap_or(sig);
        let recid = RecoveryId::trial_recovery_from_prehash(secret.verifying_key(), &prehash, &sig)
            .unwrap_or(recid);
        let r: [u8; 32] = sig.r().to_bytes().into();
        let s: [u8; 32] = sig.s().to_bytes().into();
        let ours = Signature::from_parts(r, s, recid.to_byte()).unwrap();
        ours.verify(&key, &prehash).unwrap();
        assert_eq!(ours.recover(&prehash).unwrap(), key);

        let mut other = prehash;
        other[0] ^= 1;
        assert_eq!(ours.verify(&key, &other), Err(VerifyError::Invalid));

        let flipped = Signature::from_parts(r, s, recid.to_byte() ^ 1).unwrap();
        assert_eq!(flipped.verify(&key, &prehash), Err(VerifyError::Recovery));

        let high: [u8; 32] = (-*sig.s()).to_bytes().into();
        assert_eq!(Signature::from_parts(r, high, 0), Err(VerifyError::HighS));
        assert_eq!(
            Signature::from_parts(r, s, 4),
            Err(VerifyError::RecoveryIdRange(4))
        );
    }
}
