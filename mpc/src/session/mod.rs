//! Sessions: one execution of one protocol at one party, without I/O, whatever the scheme.
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
//!
//! The session knows nothing of the scheme behind it: a scheme ([`crate::scheme::Scheme`])
//! builds a session from a `Driver` (its protocol) and a schedule, and the session does the
//! framing, admission, blame and timeouts for all of them.
//!
//! - [`error`]: refusals, configuration errors and session errors.
//! - `driver`: what a scheme plugs in, and the adaptor for round-based protocols.

mod driver;
pub mod error;

use std::fmt;
use std::panic::AssertUnwindSafe;

use crate::envelope::{Envelope, Recipient};
use crate::party::NodeId;
use crate::session_id::{Protocol, SessionId};

pub(crate) use driver::{Delivery, Driver, Failure, Machine, Outgoing, Step, internal, step};
pub use error::{ConfigError, Refusal, SessionError};

/// Where a session is in its life.
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
    pub(crate) fn assemble(
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

/// `me`'s index among `nodes`, which must include it.
pub(crate) fn index_in(nodes: &[NodeId], me: &NodeId) -> Result<u16, SessionError> {
    nodes
        .iter()
        .position(|n| n == me)
        .and_then(|i| u16::try_from(i).ok())
        .ok_or_else(|| ConfigError::NotAParticipant(me.clone()).into())
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
            vec![Step {
                round: 1,
                delivery: Delivery::Broadcast,
            }],
            Box::new(Exploding),
        );
        assert!(matches!(session.start(), Err(SessionError::Panicked)));
        assert_eq!(session.state(), SessionState::Failed);
    }
}
