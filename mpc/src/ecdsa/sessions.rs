//! Threshold ECDSA's sessions over cggmp24: auxiliary info, key generation, presigning, and
//! signing (full, or from a presignature), each a [`Session`] the scheme-neutral driver runs.

use std::fmt;
use std::sync::Arc;

use cggmp24::signing::SigningBuilder;
use cggmp24::{DataToSign, ExecutionId, PrehashedDataToSign};
use rand_core::OsRng;
use sha2::Sha256;
use sha3::Keccak256;

use super::presigned::{PRESIGNED_ROUND, Presigned};
use super::{
    AuxInfo, Ecdsa, KeyShare, Level, PresignRefusal, Presignature, SafePrimes, Signature, ToSign,
    blame,
};
use crate::Curve;
use crate::keys::{DerivationPath, KeyId, PublicKey};
use crate::party::{NodeId, PartySet, SigningSet, Threshold};
use crate::scheme::{Scheme, SchemeId};
use crate::session::{
    ConfigError, Delivery, Failure, Machine, Session, SessionError, Step, index_in, internal, step,
};
use crate::session_id::{Protocol, SessionId};

impl Ecdsa {
    /// Auxiliary-info generation for `group`, run once per party set; consumes one set of
    /// safe primes. The output is the [`Scheme::Setup`] of key generation for that set.
    pub fn aux_info(
        request: &[u8],
        group: &PartySet,
        me: &NodeId,
        primes: SafePrimes,
    ) -> Result<Session<AuxInfo>, SessionError> {
        let i = index_in(group.nodes(), me)?;
        let n = group.len();
        let id = SessionId::derive(Protocol::AuxInfo, request);
        let group_out = group.clone();
        let driver = Machine::<AuxMsg, AuxInfo>::new(move |party| async move {
            let eid = ExecutionId::new(id.as_bytes());
            let aux = cggmp24::aux_info_gen(eid, i, n, primes.into_library())
                .start(&mut OsRng, party)
                .await
                .map_err(|e| library_failure(&e))?;
            AuxInfo::new(group_out, i, aux).map_err(|e| Failure::Internal(e.to_string()))
        });
        Ok(Session::assemble(
            Protocol::AuxInfo,
            request,
            group.nodes().to_vec(),
            i,
            aux_schedule(),
            Box::new(driver),
        ))
    }
}

impl Scheme for Ecdsa {
    const ID: SchemeId = SchemeId::EcdsaSecp256k1;

    type Setup = AuxInfo;
    type KeyShare = KeyShare;
    type PublicKey = PublicKey;
    type ToSign = ToSign;
    type Presigned = Presignature;
    type Signature = Signature;

    /// Threshold key generation (HD-capable) for `group`, completed with this party's
    /// auxiliary info for the same group.
    fn keygen(
        request: &[u8],
        key_id: KeyId,
        group: &PartySet,
        me: &NodeId,
        threshold: Threshold,
        aux: &AuxInfo,
    ) -> Result<Session<KeyShare>, SessionError> {
        let i = index_in(group.nodes(), me)?;
        if aux.group() != group || aux.index() != i {
            return Err(ConfigError::AuxInfoMismatch.into());
        }
        let threshold = Threshold::new(threshold.get(), group)?;
        let n = group.len();
        let t = threshold.get();
        let id = SessionId::derive(Protocol::Keygen, request);
        let group_out = group.clone();
        let aux = aux.inner().clone();
        let driver = Machine::<KeygenMsg, KeyShare>::new(move |party| async move {
            let eid = ExecutionId::new(id.as_bytes());
            let core = cggmp24::keygen::<Curve>(eid, i, n)
                .set_threshold(t)
                .hd_wallet(true)
                .start(&mut OsRng, party)
                .await
                .map_err(|e| library_failure(&e))?;
            KeyShare::assemble(key_id, group_out, core, aux)
                .map_err(|e| Failure::Internal(e.to_string()))
        });
        Ok(Session::assemble(
            Protocol::Keygen,
            request,
            group.nodes().to_vec(),
            i,
            keygen_schedule(),
            Box::new(driver),
        ))
    }

    /// Full interactive signing by `signers` (exactly the key's threshold), at `path` if given.
    ///
    /// A requester's digest is accepted here: in full signing the data is fixed before any
    /// nonce exists, so the presignature forgery does not apply.
    fn sign(
        request: &[u8],
        key: Arc<KeyShare>,
        signers: &SigningSet,
        me: &NodeId,
        to_sign: ToSign,
        path: Option<&DerivationPath>,
    ) -> Result<Session<Signature>, SessionError> {
        let signing = SigningParams::new(&key, signers, me, path)?;
        let i = signing.index;
        let id = SessionId::derive(Protocol::Sign, request);
        let driver = Machine::<SignMsg, Signature>::new(move |party| async move {
            let SigningParams {
                index,
                keygen_indices,
                path,
                public_key,
            } = signing;
            let eid = ExecutionId::new(id.as_bytes());
            let builder = at_path(
                cggmp24::signing(eid, index, &keygen_indices, key.inner()),
                &path,
            )?;
            let prehash = to_sign.prehash();
            let signature = match &to_sign {
                ToSign::Digest(_) => {
                    let data = PrehashedDataToSign::from_scalar(
                        generic_ec::Scalar::<Curve>::from_be_bytes_mod_order(to_sign.prehash()),
                    );
                    builder.sign(&mut OsRng, party, &data).await
                }
                ToSign::Keccak256Message(message) => {
                    let data = DataToSign::digest::<Keccak256>(message);
                    builder.sign(&mut OsRng, party, &data).await
                }
            }
            .map_err(|e| library_failure(&e))?;
            Signature::from_library(&signature, &public_key, &prehash)
                .map_err(|e| Failure::BadSignature(e.into()))
        });
        Ok(Session::assemble(
            Protocol::Sign,
            request,
            signers.signers().to_vec(),
            i,
            sign_schedule(true),
            Box::new(driver),
        ))
    }

    /// Signing from a presignature: one round in which each signer broadcasts its partial
    /// signature. The presignature is consumed by [`start`](Session::start) (or destroyed
    /// with the session if it never starts); it cannot be used again.
    ///
    /// Refused, per the library's rules: a requester's digest (a message is required), and a
    /// path other than the one the presignature was generated for.
    fn sign_presigned(
        request: &[u8],
        presignature: Presignature,
        me: &NodeId,
        to_sign: &ToSign,
        path: Option<&DerivationPath>,
    ) -> Result<Session<Signature>, SessionError> {
        presignature.check(to_sign, path)?;
        let message = match to_sign {
            ToSign::Digest(_) => return Err(PresignRefusal::PrehashedDigest.into()),
            ToSign::Keccak256Message(message) => DataToSign::digest::<Keccak256>(message),
        };
        let participants = presignature.signers().signers().to_vec();
        let i = presignature.index();
        if participants.get(usize::from(i)) != Some(me) {
            return Err(ConfigError::ShareMismatch.into());
        }
        let public_key = *presignature.public_key();
        let (secret, public) = presignature.into_parts();
        if public.commitments.len() != participants.len() {
            return Err(SessionError::Internal(
                "presignature commitments do not match the signing set".into(),
            ));
        }
        let driver = Presigned::new(secret, public, i, message, to_sign.prehash(), public_key);
        Ok(Session::assemble(
            Protocol::SignPresigned,
            request,
            participants,
            i,
            vec![Step {
                round: PRESIGNED_ROUND,
                delivery: Delivery::Broadcast,
            }],
            Box::new(driver),
        ))
    }

    /// Presignature generation by `signers` for `path` (the master key if `None`); the path
    /// cannot be changed afterwards.
    fn presign(
        request: &[u8],
        key: Arc<KeyShare>,
        signers: &SigningSet,
        me: &NodeId,
        path: Option<&DerivationPath>,
    ) -> Result<Session<Presignature>, SessionError> {
        let signing = SigningParams::new(&key, signers, me, path)?;
        let i = signing.index;
        let id = SessionId::derive(Protocol::Presign, request);
        let signers_out = signers.clone();
        let driver = Machine::<SignMsg, Presignature>::new(move |party| async move {
            let SigningParams {
                index,
                keygen_indices,
                path,
                public_key,
            } = signing;
            let eid = ExecutionId::new(id.as_bytes());
            let builder = at_path(
                cggmp24::signing(eid, index, &keygen_indices, key.inner()),
                &path,
            )?;
            let (secret, public) = builder
                .generate_presignature(&mut OsRng, party)
                .await
                .map_err(|e| library_failure(&e))?;
            Ok(Presignature::new(
                key.key_id().clone(),
                signers_out,
                path,
                index,
                public_key,
                secret,
                public,
            ))
        });
        Ok(Session::assemble(
            Protocol::Presign,
            request,
            signers.signers().to_vec(),
            i,
            sign_schedule(false),
            Box::new(driver),
        ))
    }
}

/// What a signing or presigning session needs, checked against the key share.
struct SigningParams {
    index: u16,
    keygen_indices: Vec<u16>,
    path: DerivationPath,
    public_key: PublicKey,
}

impl SigningParams {
    fn new(
        key: &KeyShare,
        signers: &SigningSet,
        me: &NodeId,
        path: Option<&DerivationPath>,
    ) -> Result<Self, SessionError> {
        if key.signing_set(signers.signers().iter().cloned())? != *signers {
            return Err(ConfigError::SigningSetMismatch.into());
        }
        let index = index_in(signers.signers(), me)?;
        if key.group().index_of(me) != Some(key.index()) {
            return Err(ConfigError::ShareMismatch.into());
        }
        let path = path.cloned().unwrap_or_default();
        Ok(Self {
            index,
            keygen_indices: signers.keygen_indices().to_vec(),
            public_key: key.derived_public_key(&path)?,
            path,
        })
    }
}

fn at_path<'r>(
    builder: SigningBuilder<'r, Curve, Level>,
    path: &DerivationPath,
) -> Result<SigningBuilder<'r, Curve, Level>, Failure> {
    if path.is_master() {
        return Ok(builder);
    }
    builder
        .set_derivation_path(crate::keys::non_hardened(path).map_err(internal)?)
        .map_err(internal)
}

type AuxMsg = cggmp24::key_refresh::msg::Msg<Sha256, Level>;
type KeygenMsg = cggmp24::keygen::msg::threshold::Msg<Curve, Level, Sha256>;
type SignMsg = cggmp24::signing::msg::Msg<Curve, Sha256>;

fn aux_schedule() -> Vec<Step> {
    use cggmp24::key_refresh::msg::{MsgReliabilityCheck, MsgRound1, MsgRound2, MsgRound3};
    vec![
        step::<AuxMsg, MsgRound1<Sha256>>(Delivery::Broadcast),
        step::<AuxMsg, MsgReliabilityCheck<Sha256>>(Delivery::Broadcast),
        step::<AuxMsg, MsgRound2<Level>>(Delivery::Broadcast),
        step::<AuxMsg, MsgRound3>(Delivery::P2p),
    ]
}

fn keygen_schedule() -> Vec<Step> {
    use cggmp24::keygen::msg::threshold::{
        MsgReliabilityCheck, MsgRound1, MsgRound2Broad, MsgRound2Uni, MsgRound3,
    };
    vec![
        step::<KeygenMsg, MsgRound1<Sha256>>(Delivery::Broadcast),
        step::<KeygenMsg, MsgReliabilityCheck<Sha256>>(Delivery::Broadcast),
        step::<KeygenMsg, MsgRound2Broad<Curve, Level>>(Delivery::Broadcast),
        step::<KeygenMsg, MsgRound2Uni<Curve>>(Delivery::P2p),
        step::<KeygenMsg, MsgRound3<Curve>>(Delivery::Broadcast),
    ]
}

/// Presigning is signing without its last round.
fn sign_schedule(with_signature_round: bool) -> Vec<Step> {
    use cggmp24::signing::msg::{
        MsgReliabilityCheck, MsgRound1a, MsgRound1b, MsgRound2, MsgRound3, MsgRound4,
    };
    let mut schedule = vec![
        step::<SignMsg, MsgRound1a<Curve>>(Delivery::Broadcast),
        step::<SignMsg, MsgRound1b<Curve>>(Delivery::P2p),
        step::<SignMsg, MsgReliabilityCheck<Sha256>>(Delivery::Broadcast),
        step::<SignMsg, MsgRound2<Curve>>(Delivery::P2p),
        step::<SignMsg, MsgRound3<Curve>>(Delivery::Broadcast),
    ];
    if with_signature_round {
        schedule.push(step::<SignMsg, MsgRound4<Curve>>(Delivery::Broadcast));
    }
    schedule
}

/// A library error: an abort names whom the library blamed; anything else is internal.
fn library_failure<E: std::error::Error + fmt::Debug>(error: &E) -> Failure {
    let debug = format!("{error:?}");
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    if debug.contains("Aborted(") {
        Failure::Aborted {
            culprits: blame::culprits(&debug),
            reason,
        }
    } else {
        Failure::Internal(reason)
    }
}
