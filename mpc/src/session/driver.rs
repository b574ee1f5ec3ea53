//! What a scheme plugs into a session: a [`Driver`] runs the protocol and takes admitted
//! messages, and a schedule of [`Step`]s says which message every other participant sends
//! next. The session does everything else (framing, admission, blame, deadlines).
//!
//! [`Machine`] drives any protocol written against round-based's state machine (cggmp24's
//! are); a protocol without one implements [`Driver`] itself, as signing from an ECDSA
//! presignature does.

use std::fmt;
use std::future::Future;

use round_based::state_machine::{MpcParty, ProceedResult, StateMachine};
use round_based::{Incoming, MessageDestination, MessageType, ProtocolMessage, RoundMessage};
use serde::{Serialize, de::DeserializeOwned};

use crate::envelope::Recipient;
use crate::payload;
use crate::signature::VerifyError;

/// Whether a round's messages go to everyone or to one party each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Broadcast,
    P2p,
}

impl Delivery {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Delivery::Broadcast => "a broadcast",
            Delivery::P2p => "addressed to one party",
        }
    }
}

/// One message every other participant sends this party, in the order they send them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    pub(crate) round: u16,
    pub(crate) delivery: Delivery,
}

/// The step of round `M::ROUND` of a protocol written with round-based.
pub(crate) fn step<M: RoundMessage<R>, R>(delivery: Delivery) -> Step {
    Step {
        round: M::ROUND,
        delivery,
    }
}

/// Why a protocol stopped.
pub(crate) enum Failure {
    Aborted { culprits: Vec<u16>, reason: String },
    BadSignature(VerifyError),
    Internal(String),
    Panicked,
}

pub(crate) fn internal(e: impl fmt::Display) -> Failure {
    Failure::Internal(e.to_string())
}

/// A message a protocol wants sent; the session frames it in an envelope.
pub(crate) struct Outgoing {
    pub(crate) round: u16,
    pub(crate) recipient: Recipient,
    pub(crate) payload: Vec<u8>,
}

/// A protocol behind a session: runs until it needs a message, and takes messages.
pub(crate) trait Driver {
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
pub(crate) struct Machine<M: 'static, O> {
    machine: Box<dyn StateMachine<Output = Result<O, Failure>, Msg = M>>,
    next_id: u64,
}

impl<M, O> Machine<M, O>
where
    M: ProtocolMessage + Serialize + DeserializeOwned + 'static,
    O: 'static,
{
    pub(crate) fn new<F>(protocol: impl FnOnce(MpcParty<M>) -> F) -> Self
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
