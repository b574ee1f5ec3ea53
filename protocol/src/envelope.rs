//! The wire frame of one protocol message between nodes.
//!
//! ```text
//! version        u8      = 1
//! session id     [u8; 32]
//! round          u16 BE  the library's round number of the payload
//! sender         u16 BE  the sender's index in the session
//! recipient      u8      0 = every other participant, 1 = one participant
//!                u16 BE  that participant's index (0 for a broadcast)
//! payload length u32 BE  then exactly that many bytes: the message, in CBOR
//! ```
//!
//! Decoding checks the total length against [`MAX_ENVELOPE_LEN`] before looking at anything
//! else, never allocates more than the input's length, and refuses trailing bytes.

use std::fmt;

use crate::session_id::SessionId;

pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 1 + 32 + 2 + 2 + 1 + 2 + 4;
/// Largest encoded envelope. The largest messages are the auxiliary-info protocol's proofs
/// about the Paillier and ring-Pedersen moduli, about 212 KB each whatever the number of
/// parties; signing messages are at most 28 KB. This leaves more than twice the room and stays
/// at half the attested channel's 1 MiB frame limit.
pub const MAX_ENVELOPE_LEN: usize = 512 * 1024;
/// Largest payload, so that the encoded envelope is at most [`MAX_ENVELOPE_LEN`].
pub const MAX_PAYLOAD_LEN: usize = MAX_ENVELOPE_LEN - HEADER_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("envelope of {len} bytes exceeds the limit of {max}", max = MAX_ENVELOPE_LEN)]
    Oversized { len: usize },
    #[error("payload of {len} bytes exceeds the limit of {max}", max = MAX_PAYLOAD_LEN)]
    PayloadTooLarge { len: usize },
    #[error("envelope truncated: {len} bytes")]
    Truncated { len: usize },
    #[error("unsupported envelope version {0}")]
    Version(u8),
    #[error("unknown recipient kind {0}")]
    RecipientKind(u8),
    #[error("a broadcast names recipient {0}")]
    BroadcastWithIndex(u16),
    #[error("{0} bytes after the payload")]
    TrailingBytes(usize),
}

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// Every other participant of the session.
    Broadcast,
    /// One participant, by index in the session.
    Party(u16),
}

/// One protocol message with its routing header.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    session: SessionId,
    round: u16,
    sender: u16,
    recipient: Recipient,
    payload: Vec<u8>,
}

impl Envelope {
    pub fn new(
        session: SessionId,
        round: u16,
        sender: u16,
        recipient: Recipient,
        payload: Vec<u8>,
    ) -> Result<Self, EnvelopeError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(EnvelopeError::PayloadTooLarge { len: payload.len() });
        }
        Ok(Self {
            session,
            round,
            sender,
            recipient,
            payload,
        })
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    pub fn round(&self) -> u16 {
        self.round
    }

    pub fn sender(&self) -> u16 {
        self.sender
    }

    pub fn recipient(&self) -> Recipient {
        self.recipient
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let (kind, index) = match self.recipient {
            Recipient::Broadcast => (0u8, 0u16),
            Recipient::Party(i) => (1u8, i),
        };
        let len = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(self.session.as_bytes());
        out.extend_from_slice(&self.round.to_be_bytes());
        out.extend_from_slice(&self.sender.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::Oversized { len: bytes.len() });
        }
        let truncated = EnvelopeError::Truncated { len: bytes.len() };
        let mut reader = Reader(bytes);
        let version = reader.u8().ok_or(truncated.clone())?;
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(version));
        }
        let session = SessionId::from_bytes(reader.array().ok_or(truncated.clone())?);
        let round = reader.u16().ok_or(truncated.clone())?;
        let sender = reader.u16().ok_or(truncated.clone())?;
        let kind = reader.u8().ok_or(truncated.clone())?;
        let index = reader.u16().ok_or(truncated.clone())?;
        let recipient = match (kind, index) {
            (0, 0) => Recipient::Broadcast,
            (0, i) => return Err(EnvelopeError::BroadcastWithIndex(i)),
            (1, i) => Recipient::Party(i),
            (k, _) => return Err(EnvelopeError::RecipientKind(k)),
        };
        let len = reader.u32().ok_or(truncated.clone())?;
        let len = usize::try_from(len).map_err(|_| truncated.clone())?;
        let payload = reader.take(len).ok_or(truncated)?;
        if !reader.0.is_empty() {
            return Err(EnvelopeError::TrailingBytes(reader.0.len()));
        }
        Self::new(session, round, sender, recipient, payload.to_vec())
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("session", &self.session)
            .field("round", &self.round)
            .field("sender", &self.sender)
            .field("recipient", &self.recipient)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_id::Protocol;

    fn sample(recipient: Recipient, payload_len: usize) -> Envelope {
        let id = SessionId::derive(Protocol::Sign, b"request");
        Envelope::new(id, 3, 1, recipient, vec![0xab; payload_len]).unwrap()
    }

    #[test]
    fn round_trips() {
        for recipient in [Recipient::Broadcast, Recipient::Party(2)] {
            let envelope = sample(recipient, 100);
            let bytes = envelope.encode();
            assert_eq!(bytes.len(), envelope.encoded_len());
            assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
        }
    }

    #[test]
    fn limit_is_exact() {
        let at_limit = sample(Recipient::Broadcast, MAX_PAYLOAD_LEN);
        let bytes = at_limit.encode();
        assert_eq!(bytes.len(), MAX_ENVELOPE_LEN);
        assert_eq!(Envelope::decode(&bytes).unwrap(), at_limit);

        let mut over = bytes;
        over.push(0);
        assert_eq!(
            Envelope::decode(&over),
            Err(EnvelopeError::Oversized {
                len: MAX_ENVELOPE_LEN + 1
            })
        );
        let id = SessionId::derive(Protocol::Sign, b"request");
        assert_eq!(
            Envelope::new(id, 0, 0, Recipient::Broadcast, vec![0; MAX_PAYLOAD_LEN + 1]),
            Err(EnvelopeError::PayloadTooLarge {
                len: MAX_PAYLOAD_LEN + 1
            })
        );
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        let bytes = sample(Recipient::Party(0), 10).encode();

        for cut in 0..bytes.len() {
            assert!(matches!(
                Envelope::decode(&bytes[..cut]),
                Err(EnvelopeError::Truncated { .. })
            ));
        }

        let mut trailing = bytes.clone();
        trailing.push(7);
        assert_eq!(
            Envelope::decode(&trailing),
            Err(EnvelopeError::TrailingBytes(1))
        );

        let mut version = bytes.clone();
        version[0] = 2;
        assert_eq!(Envelope::decode(&version), Err(EnvelopeError::Version(2)));

        let kind_at = 1 + 32 + 2 + 2;
        let mut kind = bytes.clone();
        kind[kind_at] = 9;
        assert_eq!(
            Envelope::decode(&kind),
            Err(EnvelopeError::RecipientKind(9))
        );

        let mut broadcast = sample(Recipient::Broadcast, 10).encode();
        broadcast[kind_at + 2] = 5;
        assert_eq!(
            Envelope::decode(&broadcast),
            Err(EnvelopeError::BroadcastWithIndex(5))
        );

        let mut long = bytes.clone();
        let len_at = HEADER_LEN - 4;
        long[len_at..HEADER_LEN].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Envelope::decode(&long),
            Err(EnvelopeError::Truncated { .. })
        ));
    }
}
