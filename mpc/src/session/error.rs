//! What can go wrong in a session: a refused message (the session goes on), parameters it
//! cannot run with, and the ways a session ends without output.
//!
//! A scheme's own configuration errors are variants of [`ConfigError`] (ECDSA's auxiliary info
//! and presignature rules today); everything else is scheme-neutral.

use crate::ecdsa::PresignRefusal;
use crate::keys::KeyError;
use crate::party::{NodeId, PartyError};
use crate::scheme::SchemeId;
use crate::session_id::SessionId;
use crate::signature::VerifyError;

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
    #[error("{scheme} does not support {operation}")]
    Unsupported {
        scheme: SchemeId,
        operation: &'static str,
    },
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
