//! Signing from an ECDSA presignature: one round in which each signer broadcasts its partial
//! signature; each checks every partial against the presignature's commitments (naming the
//! signers whose partial does not match) before combining them.

use cggmp24::DataToSign;
use cggmp24::signing::{PartialSignature, PresignaturePublicData};
use generic_ec::coords::AlwaysHasAffineX;

use super::Signature;
use crate::Curve;
use crate::envelope::Recipient;
use crate::keys::PublicKey;
use crate::payload;
use crate::session::{Delivery, Driver, Failure, Outgoing};

/// The one round of signing from a presignature.
pub(super) const PRESIGNED_ROUND: u16 = 0;

/// Signing from a presignature: broadcast this party's partial signature, combine all of them.
pub(super) struct Presigned {
    secret: Option<cggmp24::Presignature<Curve>>,
    public: PresignaturePublicData<Curve>,
    me: u16,
    message: DataToSign<Curve>,
    prehash: [u8; 32],
    public_key: PublicKey,
    partials: Vec<Option<PartialSignature<Curve>>>,
}

impl Presigned {
    pub(super) fn new(
        secret: cggmp24::Presignature<Curve>,
        public: PresignaturePublicData<Curve>,
        me: u16,
        message: DataToSign<Curve>,
        prehash: [u8; 32],
        public_key: PublicKey,
    ) -> Self {
        let partials = vec![None; public.commitments.len()];
        Self {
            secret: Some(secret),
            public,
            me,
            message,
            prehash,
            public_key,
            partials,
        }
    }
}

impl Driver for Presigned {
    type Output = Signature;

    fn advance(&mut self, out: &mut Vec<Outgoing>) -> Result<Option<Signature>, Failure> {
        if let Some(secret) = self.secret.take() {
            let partial = secret.issue_partial_signature(self.message);
            out.push(Outgoing {
                round: PRESIGNED_ROUND,
                recipient: Recipient::Broadcast,
                payload: payload::encode(&partial).map_err(Failure::Internal)?,
            });
            if let Some(slot) = self.partials.get_mut(usize::from(self.me)) {
                *slot = Some(partial);
            }
        }
        let Some(partials) = self.partials.iter().copied().collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let gamma = self.public.Gamma;
        let r = gamma.x().to_scalar();
        let m = self.message.to_scalar();
        let culprits: Vec<u16> = partials
            .iter()
            .zip(&self.public.commitments)
            .enumerate()
            .filter(|(_, (partial, c))| partial.sigma * gamma != m * c.tilde_Delta + r * c.tilde_S)
            .filter_map(|(j, _)| u16::try_from(j).ok())
            .collect();
        if !culprits.is_empty() {
            return Err(Failure::Aborted {
                culprits,
                reason: "partial signature does not match the presignature".into(),
            });
        }
        let signature = PartialSignature::combine(&partials, &self.public, self.message)
            .ok_or_else(|| Failure::Internal("partial signatures do not combine".into()))?;
        let raw_s = partials.iter().map(|p| p.sigma).sum();
        Signature::from_library_with_nonce_point(
            &signature,
            &gamma,
            &raw_s,
            &self.public_key,
            &self.prehash,
        )
        .map(Some)
        .map_err(|e| Failure::BadSignature(e.into()))
    }

    fn deliver(
        &mut self,
        sender: u16,
        _delivery: Delivery,
        _round: u16,
        payload: &[u8],
    ) -> Result<(), String> {
        let partial: PartialSignature<Curve> = payload::decode(payload)?;
        let slot = self
            .partials
            .get_mut(usize::from(sender))
            .ok_or_else(|| "no such signer".to_string())?;
        *slot = Some(partial);
        Ok(())
    }
}
