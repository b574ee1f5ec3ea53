//! Sessions: one execution of one protocol at one party, without I/O.
//!
//! A [`Session`] is built from the request that started it (the session id is derived from the
//! request's canonical bytes), [`start`](Session::start)ed, then fed every envelope its peers
//! send with [`handle`](Session::handle); both return the envelopes to send. The output is
//! taken with [`take_output`](Session::take_output) once the session has finished.
//!
//! Each protocol has a fixed schedule: the rounds every party sends, in order, each either a
//! broadcast or a message to one party. Before anything reaches the library, an envelope must
//! belong to this session, come from the participant the channel authenticated (the sender
//! index must be that node's), be addressed to this party or broadcast, and be the next message
//! of the schedule from that sender: anything else is a [`Refusal`], which leaves the session as
//! it was. Only a message that passes all of this and decodes can make the protocol abort, and
//! then [`SessionError::Aborted`] names the parties the library blamed.
//!
//! The session has no clock: the runtime sets a deadline per round and calls
//! [`time_out`](Session::time_out), which names the participants the session was waiting on.
//! Messages that arrive before the session is started are refused ([`Refusal::NotStarted`]);
//! the runtime keeps them until it has verified the request and started the session.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use cggmp24::signing::{PartialSignature, PresignaturePublicData, SigningBuilder};
use cggmp24::{DataToSign, ExecutionId, PrehashedDataToSign};
use generic_ec::coords::AlwaysHasAffineX;
use rand_core::OsRng;
use round_based::state_machine::{MpcParty, ProceedResult, StateMachine};
use round_based::{Incoming, MessageDestination, MessageType, ProtocolMessage, RoundMessage};
use serde::{Serialize, de::DeserializeOwned};
use sha2::Sha256;
use sha3::Keccak256;

use crate::envelope::{Envelope, Recipient};
use crate::keys::{AuxInfo, DerivationPath, KeyError, KeyId, KeyShare, PublicKey};
use crate::party::{NodeId, PartyError, PartySet, SigningSet, Threshold};
use crate::presign::{PresignRefusal, Presignature};
use crate::primes::SafePrimes;
use crate::session_id::{Protocol, SessionId};
use crate::signature::{Signature, ToSign, VerifyError};
use crate::{Curve, Level, blame, payload};

/// A message that was not accepted; the session is unaffected and keeps running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("the session has not started")]
    NotStarted,
    #[error("message for session {got}, this is session {expected}")]
    WrongSession { expected: SessionId, got: SessionId },
    #[error("{from} is not a participant of this session")]
    NotAParticipant { from: NodeId },
    #[error("{from} sent a message claiming sender index {claimed}")]
    SenderMismatch { from: NodeId, claimed: u16 },
    #[error("{sender}: message addressed to party {recipient}")]
    NotForMe { sender: NodeId, recipient: u16 },
    #[error("{sender}: round {round} is not a round of this protocol")]
    UnknownRound { sender: NodeId, round: u16 },
    #[error("{sender}: round {round} was already received")]
    Duplicate { sender: NodeId, round: u16 },
    #[error("{sender}: round {round} arrived while round {expected} is due")]
    OutOfOrder {
        sender: NodeId,
        round: u16,
        expected: u16,
    },
    #[error("{sender}: round {round} must be {expected}")]
    WrongDelivery {
        sender: NodeId,
        round: u16,
        expected: &'static str,
    },
    #[error("{sender}: round {round}: malformed payload: {reason}")]
    Malformed {
        sender: NodeId,
        round: u16,
        reason: String,
    },
}

/// Parameters a session cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{0} is not a participant")]
    NotAParticipant(NodeId),
    #[error(transparent)]
    Party(#[from] PartyError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the auxiliary info is for another party set or party")]
    AuxInfoMismatch,
    #[error("the signing set is not one of this key")]
    SigningSetMismatch,
    #[error("the key share belongs to another party")]
    ShareMismatch,
    #[error(transparent)]
    Presign(#[from] PresignRefusal),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The message was refused; the session continues.
    #[error("message refused: {0}")]
    Refused(#[from] Refusal),
    /// The protocol failed; `culprits` are the parties the library blamed, if it named any.
    #[error("protocol aborted ({reason}); blamed: {culprits:?}")]
    Aborted {
        culprits: Vec<NodeId>,
        reason: String,
    },
    #[error("timed out waiting for {waiting_for:?}")]
    TimedOut { waiting_for: Vec<NodeId> },
    #[error("the protocol output a signature that does not verify: {0}")]
    BadSignature(VerifyError),
    #[error("the session has already started")]
    AlreadyStarted,
    #[error("the session is over")]
    Closed,
    #[error("invalid session: {0}")]
    Config(#[from] ConfigError),
    #[error("internal error: {0}")]
    Internal(String),
    /// The library panicked; the session is closed and the node keeps running.
    #[error("the protocol panicked")]
    Panicked,
}

impl SessionError {
    /// True when only the message was refused and the session goes on.
    pub fn is_refusal(&self) -> bool {
        matches!(self, SessionError::Refused(_))
    }
}

impl From<KeyError> for SessionError {
    fn from(e: KeyError) -> Self {
        SessionError::Config(ConfigError::Key(e))
    }
}

impl From<PartyError> for SessionError {
    fn from(e: PartyError) -> Self {
        SessionError::Config(ConfigError::Party(e))
    }
}

impl From<PresignRefusal> for SessionError {
    fn from(e: PresignRefusal) -> Self {
        SessionError::Config(ConfigError::Presign(e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Created,
    Running,
    Finished,
    Failed,
}

/// One execution of one protocol at one party; `O` is what it outputs.
pub struct Session<O> {
    id: SessionId,
    protocol: Protocol,
    participants: Vec<NodeId>,
    me: u16,
    schedule: Vec<Step>,
    received: Vec<usize>,
    state: SessionState,
    output: Option<O>,
    driver: Box<dyn Driver<Output = O>>,
}

impl<O: 'static> Session<O> {
    fn assemble(
        protocol: Protocol,
        request: &[u8],
        participants: Vec<NodeId>,
        me: u16,
        schedule: Vec<Step>,
        driver: Box<dyn Driver<Output = O>>,
    ) -> Self {
        let received = vec![0; participants.len()];
        Self {
            id: SessionId::derive(protocol, request),
            protocol,
            participants,
            me,
            schedule,
            received,
            state: SessionState::Created,
            output: None,
            driver,
        }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The participants, by index in this session.
    pub fn participants(&self) -> &[NodeId] {
        &self.participants
    }

    pub fn my_index(&self) -> u16 {
        self.me
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The nodes an outgoing envelope goes to.
    pub fn recipients(&self, envelope: &Envelope) -> Vec<&NodeId> {
        match envelope.recipient() {
            Recipient::Broadcast => self
                .participants
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != usize::from(self.me))
                .map(|(_, node)| node)
                .collect(),
            Recipient::Party(i) => self.participants.get(usize::from(i)).into_iter().collect(),
        }
    }

    /// The participants this party is waiting on: those furthest behind in the schedule.
    /// Empty unless the session is running.
    pub fn awaiting(&self) -> Vec<&NodeId> {
        if self.state != SessionState::Running {
            return Vec::new();
        }
        let others = || {
            self.participants
                .iter()
                .zip(&self.received)
                .enumerate()
                .filter(|(i, _)| *i != usize::from(self.me))
                .map(|(_, pair)| pair)
        };
        let Some(behind) = others().map(|(_, got)| *got).min() else {
            return Vec::new();
        };
        if behind >= self.schedule.len() {
            return Vec::new();
        }
        others()
            .filter(|(_, got)| **got == behind)
            .map(|(node, _)| node)
            .collect()
    }

    /// Ends the session because the runtime's deadline passed; names the participants it was
    /// waiting on.
    pub fn time_out(&mut self) -> SessionError {
        let waiting_for = self.awaiting().into_iter().cloned().collect();
        self.state = SessionState::Failed;
        self.output = None;
        SessionError::TimedOut { waiting_for }
    }

    /// Runs the first step; returns the first messages to send.
    pub fn start(&mut self) -> Result<Vec<Envelope>, SessionError> {
        if self.state != SessionState::Created {
            return Err(SessionError::AlreadyStarted);
        }
        self.state = SessionState::Running;
        self.advance()
    }

    /// Takes one envelope that `from` (as authenticated by the channel) sent; returns the
    /// messages to send in response.
    pub fn handle(
        &mut self,
        from: &NodeId,
        envelope: &Envelope,
    ) -> Result<Vec<Envelope>, SessionError> {
        match self.state {
            SessionState::Created => return Err(Refusal::NotStarted.into()),
            SessionState::Finished | SessionState::Failed => return Err(SessionError::Closed),
            SessionState::Running => {}
        }
        let (sender, step) = self.admit(from, envelope)?;
        self.driver
            .deliver(sender, step.delivery, step.round, envelope.payload())
            .map_err(|reason| Refusal::Malformed {
                sender: from.clone(),
                round: step.round,
                reason,
            })?;
        if let Some(count) = self.received.get_mut(usize::from(sender)) {
            *count += 1;
        }
        self.advance()
    }

    /// The output, once the session has finished; `None` before that and after it was taken.
    pub fn take_output(&mut self) -> Option<O> {
        self.output.take()
    }

    /// Every check that decides whether an envelope reaches the protocol.
    fn admit(&self, from: &NodeId, envelope: &Envelope) -> Result<(u16, Step), Refusal> {
        if envelope.session() != self.id {
            return Err(Refusal::WrongSession {
                expected: self.id,
                got: envelope.session(),
            });
        }
        let Some(position) = self.participants.iter().position(|p| p == from) else {
            return Err(Refusal::NotAParticipant { from: from.clone() });
        };
        let sender = envelope.sender();
        if usize::from(sender) != position || sender == self.me {
            return Err(Refusal::SenderMismatch {
                from: from.clone(),
                claimed: sender,
            });
        }
        let delivery = match envelope.recipient() {
            Recipient::Broadcast => Delivery::Broadcast,
            Recipient::Party(i) if i == self.me => Delivery::P2p,
            Recipient::Party(i) => {
                return Err(Refusal::NotForMe {
                    sender: from.clone(),
                    recipient: i,
                });
            }
        };
        let round = envelope.round();
        let Some(at) = self.schedule.iter().position(|s| s.round == round) else {
            return Err(Refusal::UnknownRound {
                sender: from.clone(),
                round,
            });
        };
        let due = self.received.get(position).copied().unwrap_or(usize::MAX);
        if at < due {
            return Err(Refusal::Duplicate {
                sender: from.clone(),
                round,
            });
        }
        if at > due {
            let expected = self.schedule.get(due).map_or(round, |s| s.round);
            return Err(Refusal::OutOfOrder {
                sender: from.clone(),
                round,
                expected,
            });
        }
        let step = self
            .schedule
            .get(at)
            .copied()
            .ok_or(Refusal::UnknownRound {
                sender: from.clone(),
                round,
            })?;
        if step.delivery != delivery {
            return Err(Refusal::WrongDelivery {
                sender: from.clone(),
                round,
                expected: step.delivery.describe(),
            });
        }
        Ok((sender, step))
    }

    fn advance(&mut self) -> Result<Vec<Envelope>, SessionError> {
        let mut outgoing = Vec::new();
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.driver.advance(&mut outgoing)))
                .unwrap_or_else(|_| Err(Failure::Panicked));
        let envelopes = outgoing
            .into_iter()
            .map(|o| Envelope::new(self.id, o.round, self.me, o.recipient, o.payload))
            .collect::<Result<Vec<_>, _>>();
        match (result, envelopes) {
            (Ok(output), Ok(envelopes)) => {
                if let Some(output) = output {
                    self.output = Some(output);
                    self.state = SessionState::Finished;
                }
                Ok(envelopes)
            }
            (Err(failure), _) => Err(self.fail(failure)),
            (Ok(_), Err(e)) => Err(self.fail(Failure::Internal(e.to_string()))),
        }
    }

    fn fail(&mut self, failure: Failure) -> SessionError {
        self.state = SessionState::Failed;
        self.output = None;
        match failure {
            Failure::Aborted { culprits, reason } => SessionError::Aborted {
                culprits: culprits
                    .iter()
                    .filter_map(|i| self.participants.get(usize::from(*i)))
                    .cloned()
                    .collect(),
                reason,
            },
            Failure::BadSignature(e) => SessionError::BadSignature(e),
            Failure::Internal(reason) => SessionError::Internal(reason),
            Failure::Panicked => SessionError::Panicked,
        }
    }
}

impl<O> fmt::Debug for Session<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("protocol", &self.protocol)
            .field("me", &self.me)
            .field("participants", &self.participants)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Session<AuxInfo> {
    /// Auxiliary-info generation for `group`, run once per party set; consumes one set of
    /// safe primes.
    pub fn aux_info(
        request: &[u8],
        group: &PartySet,
        me: &NodeId,
        primes: SafePrimes,
    ) -> Result<Self, SessionError> {
        let i = index_in(group.nodes(), me)?;
        let n = group.len();
        let id = SessionId::derive(Protocol::AuxInfo, request);
        let group_out = group.clone();
        let driver = Machine::<AuxMsg, AuxInfo>::new(move |party| async move {
            let eid = ExecutionId::new(id.as_bytes());
            let aux = cggmp24::aux_info_gen(eid, i, n, primes.into_library())
                .start(&mut OsRng, party)
                .await
                .map_err(|e| Failure::library(&e))?;
            AuxInfo::new(group_out, i, aux).map_err(|e| Failure::Internal(e.to_string()))
        });
        Ok(Self::assemble(
            Protocol::AuxInfo,
            request,
            group.nodes().to_vec(),
            i,
            aux_schedule(),
            Box::new(driver),
        ))
    }
}

impl Session<KeyShare> {
    /// Threshold key generation (HD-capable) for `group`, completed with this party's
    /// auxiliary info for the same group.
    pub fn keygen(
        request: &[u8],
        key_id: KeyId,
        group: &PartySet,
        me: &NodeId,
        threshold: Threshold,
        aux: &AuxInfo,
    ) -> Result<Self, SessionError> {
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
                .map_err(|e| Failure::library(&e))?;
            KeyShare::assemble(key_id, group_out, core, aux)
                .map_err(|e| Failure::Internal(e.to_string()))
        });
        Ok(Self::assemble(
            Protocol::Keygen,
            request,
            group.nodes().to_vec(),
            i,
            keygen_schedule(),
            Box::new(driver),
        ))
    }
}

impl Session<Signature> {
    /// Full interactive signing by `signers` (exactly the key's threshold), at `path` if given.
    ///
    /// A requester's digest is accepted here: in full signing the data is fixed before any
    /// nonce exists, so the presignature forgery does not apply.
    pub fn sign(
        request: &[u8],
        key: Arc<KeyShare>,
        signers: &SigningSet,
        me: &NodeId,
        to_sign: ToSign,
        path: Option<&DerivationPath>,
    ) -> Result<Self, SessionError> {
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
            .map_err(|e| Failure::library(&e))?;
            Signature::from_library(&signature, &public_key, &prehash)
                .map_err(Failure::BadSignature)
        });
        Ok(Self::assemble(
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
    pub fn sign_presigned(
        request: &[u8],
        presignature: Presignature,
        me: &NodeId,
        to_sign: &ToSign,
        path: Option<&DerivationPath>,
    ) -> Result<Self, SessionError> {
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
        let driver = Presigned {
            secret: Some(secret),
            partials: vec![None; participants.len()],
            public,
            me: i,
            message,
            prehash: to_sign.prehash(),
            public_key,
        };
        Ok(Self::assemble(
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
}

impl Session<Presignature> {
    /// Presignature generation by `signers` for `path` (the master key if `None`); the path
    /// cannot be changed afterwards.
    pub fn presign(
        request: &[u8],
        key: Arc<KeyShare>,
        signers: &SigningSet,
        me: &NodeId,
        path: Option<&DerivationPath>,
    ) -> Result<Self, SessionError> {
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
                .map_err(|e| Failure::library(&e))?;
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
        Ok(Self::assemble(
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

fn index_in(nodes: &[NodeId], me: &NodeId) -> Result<u16, SessionError> {
    nodes
        .iter()
        .position(|n| n == me)
        .and_then(|i| u16::try_from(i).ok())
        .ok_or_else(|| ConfigError::NotAParticipant(me.clone()).into())
}

fn internal(e: impl fmt::Display) -> Failure {
    Failure::Internal(e.to_string())
}

type AuxMsg = cggmp24::key_refresh::msg::Msg<Sha256, Level>;
type KeygenMsg = cggmp24::keygen::msg::threshold::Msg<Curve, Level, Sha256>;
type SignMsg = cggmp24::signing::msg::Msg<Curve, Sha256>;

/// Whether a round's messages go to everyone or to one party each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Broadcast,
    P2p,
}

impl Delivery {
    fn describe(self) -> &'static str {
        match self {
            Delivery::Broadcast => "a broadcast",
            Delivery::P2p => "addressed to one party",
        }
    }
}

/// One message every other participant sends this party, in the order they send them.
#[derive(Debug, Clone, Copy)]
struct Step {
    round: u16,
    delivery: Delivery,
}

fn step<M: RoundMessage<R>, R>(delivery: Delivery) -> Step {
    Step {
        round: M::ROUND,
        delivery,
    }
}

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

/// Why a protocol stopped.
enum Failure {
    Aborted { culprits: Vec<u16>, reason: String },
    BadSignature(VerifyError),
    Internal(String),
    Panicked,
}

impl Failure {
    /// A library error: an abort names whom the library blamed; anything else is internal.
    fn library<E: std::error::Error + fmt::Debug>(error: &E) -> Self {
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
}

struct Outgoing {
    round: u16,
    recipient: Recipient,
    payload: Vec<u8>,
}

/// A protocol behind a session: runs until it needs a message, and takes messages.
trait Driver {
    type Output;

    /// Runs as far as possible; `Some` once the protocol has its output.
    fn advance(&mut self, out: &mut Vec<Outgoing>) -> Result<Option<Self::Output>, Failure>;

    /// Takes one admitted message; `Err` (the payload is malformed) leaves the protocol as it
    /// was.
    fn deliver(
        &mut self,
        sender: u16,
        delivery: Delivery,
        round: u16,
        payload: &[u8],
    ) -> Result<(), String>;
}

/// A library protocol, driven through round-based's state machine.
struct Machine<M: 'static, O> {
    machine: Box<dyn StateMachine<Output = Result<O, Failure>, Msg = M>>,
    next_id: u64,
}

impl<M, O> Machine<M, O>
where
    M: ProtocolMessage + Serialize + DeserializeOwned + 'static,
    O: 'static,
{
    fn new<F>(protocol: impl FnOnce(MpcParty<M>) -> F) -> Self
    where
        F: Future<Output = Result<O, Failure>> + 'static,
    {
        Self {
            machine: Box::new(round_based::state_machine::wrap_protocol(protocol)),
            next_id: 0,
        }
    }
}

impl<M, O> Driver for Machine<M, O>
where
    M: ProtocolMessage + Serialize + DeserializeOwned + 'static,
{
    type Output = O;

    fn advance(&mut self, out: &mut Vec<Outgoing>) -> Result<Option<O>, Failure> {
        loop {
            match self.machine.proceed() {
                ProceedResult::SendMsg(message) => {
                    let recipient = match message.recipient {
                        MessageDestination::AllParties => Recipient::Broadcast,
                        MessageDestination::OneParty(j) => Recipient::Party(j),
                    };
                    out.push(Outgoing {
                        round: message.msg.round(),
                        recipient,
                        payload: payload::encode(&message.msg).map_err(Failure::Internal)?,
                    });
                }
                ProceedResult::NeedsOneMoreMessage => return Ok(None),
                ProceedResult::Yielded => {}
                ProceedResult::Output(output) => return output.map(Some),
                ProceedResult::Error(e) => return Err(internal(e)),
            }
        }
    }

    fn deliver(
        &mut self,
        sender: u16,
        delivery: Delivery,
        round: u16,
        payload: &[u8],
    ) -> Result<(), String> {
        let msg: M = payload::decode(payload)?;
        if msg.round() != round {
            return Err(format!("a message of round {}", msg.round()));
        }
        let msg_type = match delivery {
            Delivery::Broadcast => MessageType::Broadcast,
            Delivery::P2p => MessageType::P2P,
        };
        let id = self.next_id;
        self.machine
            .received_msg(Incoming {
                id,
                sender,
                msg_type,
                msg,
            })
            .map_err(|_| "the protocol is not waiting for a message".to_string())?;
        self.next_id += 1;
        Ok(())
    }
}

const PRESIGNED_ROUND: u16 = 0;

/// Signing from a presignature: broadcast this party's partial signature, combine all of them.
struct Presigned {
    secret: Option<cggmp24::Presignature<Curve>>,
    public: PresignaturePublicData<Curve>,
    me: u16,
    message: DataToSign<Curve>,
    prehash: [u8; 32],
    public_key: PublicKey,
    partials: Vec<Option<PartialSignature<Curve>>>,
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
        .map_err(Failure::BadSignature)
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Exploding;

    impl Driver for Exploding {
        type Output = ();

        fn advance(&mut self, _: &mut Vec<Outgoing>) -> Result<Option<()>, Failure> {
            panic!("a bug in the protocol")
        }

        fn deliver(&mut self, _: u16, _: Delivery, _: u16, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn a_panicking_protocol_closes_the_session() {
        let nodes: Vec<NodeId> = ["a", "b"]
            .iter()
            .map(|n| NodeId::new(*n).unwrap())
            .collect();
        let mut session = Session::assemble(
            Protocol::Sign,
            b"request",
            nodes,
            0,
            sign_schedule(true),
            Box::new(Exploding),
        );
        assert!(matches!(session.start(), Err(SessionError::Panicked)));
        assert_eq!(session.state(), SessionState::Failed);
    }
}
