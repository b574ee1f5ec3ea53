//! What nodes send each other over an attested channel: the escrow and release of a
//! node's data key, liveness checks, and the one-way messages of threshold sessions.
//!
//! - `EscrowPut` / `EscrowStored`: a node hands its data key to a peer, which keeps it
//!   sealed under its own.
//! - `ReleaseRequest` (a fresh attestation document bound to the channel, whose public
//!   key is a one-time HPKE key) / `Released` (the key encrypted to it), `NotHeld`,
//!   `Unavailable`, `Refused`.
//! - `Ping` / `Pong`: liveness over a freshly attested channel.
//! - `SessionStart` (a request the peer checks itself), `SessionDone` (the participant's
//!   outcome, sent back to the coordinator with the hash of the request it answers),
//!   `Protocol` (one protocol envelope) and `SessionAbort` (from the coordinator only),
//!   one-way messages on long-lived links.
//!
//! Messages: `[1][kind][body]`, each body bounded.

use crate::request::{MAX_OUTCOME_LEN, MAX_REQUEST_LEN};
use crate::text::printable;
use std::fmt;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
/// Data keys are 32 bytes.
pub const KEY_LEN: usize = 32;
/// X25519 HPKE encapsulated key length.
pub const ENC_LEN: usize = 32;
/// Largest peer message: a release request carries evidence, a protocol message one
/// envelope.
pub const MAX_MESSAGE_LEN: usize = 2 + max(
    attestation::MAX_EVIDENCE_LEN,
    crate::envelope::MAX_ENVELOPE_LEN,
);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}
const MAX_REASON_LEN: usize = 256;
/// Largest sealed key in a `Released` answer (key plus AEAD tag, with room to spare).
const MAX_CIPHERTEXT_LEN: usize = 256;

/// HPKE `info` for releasing `node_id`'s key: binds the ciphertext to its purpose and owner.
pub fn release_info(node_id: &str) -> Vec<u8> {
    [
        b"tee-custody key release v1\0".as_slice(),
        node_id.as_bytes(),
    ]
    .concat()
}

#[derive(Clone, PartialEq, Eq)]
pub enum PeerMessage {
    /// "Keep my data key." Only ever sent inside an attested channel.
    EscrowPut {
        key: Zeroizing<[u8; KEY_LEN]>,
    },
    EscrowStored,
    /// A fresh document: nonce = channel exporter, public key = one-time HPKE key.
    ReleaseRequest {
        document: Vec<u8>,
    },
    Released {
        enc: [u8; ENC_LEN],
        ciphertext: Vec<u8>,
    },
    NotHeld,
    Unavailable {
        reason: String,
    },
    Refused {
        reason: String,
    },
    /// Liveness check over a freshly attested channel.
    Ping,
    Pong,
    /// "Take part in this session": an encoded [`crate::request::SessionRequest`].
    SessionStart {
        request: Vec<u8>,
    },
    /// The participant's encoded [`crate::request::Outcome`] for the request whose
    /// SHA-256 is `request`.
    SessionDone {
        request: [u8; 32],
        outcome: Vec<u8>,
    },
    /// One protocol envelope; no answer.
    Protocol {
        envelope: Vec<u8>,
    },
    /// The coordinator ends a session early; no answer.
    SessionAbort {
        session: [u8; 32],
    },
}

impl fmt::Debug for PeerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerMessage::EscrowPut { .. } => write!(f, "EscrowPut(<redacted>)"),
            PeerMessage::EscrowStored => write!(f, "EscrowStored"),
            PeerMessage::ReleaseRequest { document } => {
                write!(f, "ReleaseRequest({} byte document)", document.len())
            }
            PeerMessage::Released { ciphertext, .. } => {
                write!(f, "Released({} byte ciphertext)", ciphertext.len())
            }
            PeerMessage::NotHeld => write!(f, "NotHeld"),
            PeerMessage::Unavailable { reason } => write!(f, "Unavailable({reason:?})"),
            PeerMessage::Refused { reason } => write!(f, "Refused({reason:?})"),
            PeerMessage::Ping => write!(f, "Ping"),
            PeerMessage::SessionStart { request } => {
                write!(f, "SessionStart({} byte request)", request.len())
            }
            PeerMessage::SessionDone { outcome, .. } => {
                write!(f, "SessionDone({} byte outcome)", outcome.len())
            }
            PeerMessage::Protocol { envelope } => write!(f, "Protocol({} bytes)", envelope.len()),
            PeerMessage::SessionAbort { session } => {
                write!(f, "SessionAbort({})", hex::encode(session))
            }
            PeerMessage::Pong => write!(f, "Pong"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error("provisioning message too large ({0} bytes)")]
    TooLarge(usize),
    #[error("unsupported provisioning message version or kind")]
    Unknown,
    #[error("malformed provisioning message: {0}")]
    Malformed(&'static str),
}

fn reason_bytes(reason: &str) -> &[u8] {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.as_bytes().get(..end).unwrap_or_default()
}

fn reason_of(body: &[u8]) -> Result<String, MessageError> {
    if body.len() > MAX_REASON_LEN {
        return Err(MessageError::Malformed("reason too long"));
    }
    Ok(printable(&String::from_utf8_lossy(body)))
}

impl PeerMessage {
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![VERSION]);
        match self {
            PeerMessage::EscrowPut { key } => {
                out.push(1);
                out.extend_from_slice(key.as_slice());
            }
            PeerMessage::EscrowStored => out.push(2),
            PeerMessage::ReleaseRequest { document } => {
                out.push(3);
                out.extend_from_slice(document);
            }
            PeerMessage::Released { enc, ciphertext } => {
                out.push(4);
                out.extend_from_slice(enc);
                out.extend_from_slice(ciphertext);
            }
            PeerMessage::NotHeld => out.push(5),
            PeerMessage::Unavailable { reason } => {
                out.push(6);
                out.extend_from_slice(reason_bytes(reason));
            }
            PeerMessage::Refused { reason } => {
                out.push(7);
                out.extend_from_slice(reason_bytes(reason));
            }
            PeerMessage::Ping => out.push(8),
            PeerMessage::Pong => out.push(9),
            PeerMessage::SessionStart { request } => {
                out.push(10);
                out.extend_from_slice(request);
            }
            PeerMessage::SessionDone { request, outcome } => {
                out.push(11);
                out.extend_from_slice(request);
                out.extend_from_slice(outcome);
            }
            PeerMessage::Protocol { envelope } => {
                out.push(12);
                out.extend_from_slice(envelope);
            }
            PeerMessage::SessionAbort { session } => {
                out.push(13);
                out.extend_from_slice(session);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(MessageError::TooLarge(bytes.len()));
        }
        let [VERSION, kind, body @ ..] = bytes else {
            return Err(MessageError::Unknown);
        };
        let empty = |m: PeerMessage| {
            if body.is_empty() {
                Ok(m)
            } else {
                Err(MessageError::Malformed("unexpected body"))
            }
        };
        match kind {
            1 => {
                let key: [u8; KEY_LEN] = body
                    .try_into()
                    .map_err(|_| MessageError::Malformed("key must be 32 bytes"))?;
                Ok(PeerMessage::EscrowPut {
                    key: Zeroizing::new(key),
                })
            }
            2 => empty(PeerMessage::EscrowStored),
            3 if !body.is_empty() => Ok(PeerMessage::ReleaseRequest {
                document: body.to_vec(),
            }),
            4 => {
                if body.len() <= ENC_LEN || body.len() > ENC_LEN + MAX_CIPHERTEXT_LEN {
                    return Err(MessageError::Malformed("release ciphertext length"));
                }
                let (enc, ciphertext) = body.split_at(ENC_LEN);
                let enc: [u8; ENC_LEN] = enc
                    .try_into()
                    .map_err(|_| MessageError::Malformed("encapsulated key"))?;
                Ok(PeerMessage::Released {
                    enc,
                    ciphertext: ciphertext.to_vec(),
                })
            }
            5 => empty(PeerMessage::NotHeld),
            6 => Ok(PeerMessage::Unavailable {
                reason: reason_of(body)?,
            }),
            7 => Ok(PeerMessage::Refused {
                reason: reason_of(body)?,
            }),
            8 => empty(PeerMessage::Ping),
            9 => empty(PeerMessage::Pong),
            10 if !body.is_empty() && body.len() <= MAX_REQUEST_LEN => {
                Ok(PeerMessage::SessionStart {
                    request: body.to_vec(),
                })
            }
            11 if body.len() > 32 && body.len() <= 32 + MAX_OUTCOME_LEN => {
                let (request, outcome) = body.split_at(32);
                Ok(PeerMessage::SessionDone {
                    request: request
                        .try_into()
                        .map_err(|_| MessageError::Malformed("request hash"))?,
                    outcome: outcome.to_vec(),
                })
            }
            12 if !body.is_empty() && body.len() <= crate::envelope::MAX_ENVELOPE_LEN => {
                Ok(PeerMessage::Protocol {
                    envelope: body.to_vec(),
                })
            }
            13 => Ok(PeerMessage::SessionAbort {
                session: body
                    .try_into()
                    .map_err(|_| MessageError::Malformed("session id must be 32 bytes"))?,
            }),
            10..=12 => Err(MessageError::Malformed("session message length")),
            _ => Err(MessageError::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            PeerMessage::EscrowPut {
                key: Zeroizing::new([7; 32]),
            },
            PeerMessage::EscrowStored,
            PeerMessage::ReleaseRequest {
                document: vec![0x84; 100],
            },
            PeerMessage::Released {
                enc: [1; 32],
                ciphertext: vec![2; 48],
            },
            PeerMessage::NotHeld,
            PeerMessage::Unavailable {
                reason: "waiting".into(),
            },
            PeerMessage::Refused {
                reason: "measurements".into(),
            },
            PeerMessage::Ping,
            PeerMessage::Pong,
            PeerMessage::SessionStart {
                request: b"{}".to_vec(),
            },
            PeerMessage::SessionDone {
                request: [4; 32],
                outcome: b"{}".to_vec(),
            },
            PeerMessage::Protocol {
                envelope: vec![1; crate::envelope::MAX_ENVELOPE_LEN],
            },
            PeerMessage::SessionAbort { session: [3; 32] },
        ] {
            assert_eq!(PeerMessage::decode(&m.encode()).unwrap(), m);
        }
        assert!(
            !format!(
                "{:?}",
                PeerMessage::EscrowPut {
                    key: Zeroizing::new([7; 32])
                }
            )
            .contains('7')
        );
    }

    #[test]
    fn hostile_messages_are_refused() {
        assert_eq!(PeerMessage::decode(&[]), Err(MessageError::Unknown));
        assert_eq!(PeerMessage::decode(&[2, 1]), Err(MessageError::Unknown));
        assert_eq!(PeerMessage::decode(&[1, 99]), Err(MessageError::Unknown));
        assert!(PeerMessage::decode(&[1, 1, 0, 0]).is_err());
        assert!(PeerMessage::decode(&[1, 2, 0]).is_err());
        assert!(PeerMessage::decode(&[1, 3]).is_err());
        assert!(PeerMessage::decode(&[&[1u8, 4][..], &[0; 32]].concat()).is_err());
        assert!(PeerMessage::decode(&[&[1u8, 4][..], &[0; 32 + 257]].concat()).is_err());
        let big = vec![1u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            PeerMessage::decode(&big),
            Err(MessageError::TooLarge(MAX_MESSAGE_LEN + 1))
        );
        // Session messages: empty bodies and bodies one byte over their limit.
        for (kind, max) in [
            (10u8, MAX_REQUEST_LEN),
            (11, 32 + MAX_OUTCOME_LEN),
            (12, crate::envelope::MAX_ENVELOPE_LEN),
        ] {
            assert!(PeerMessage::decode(&[1, kind]).is_err());
            let over = [&[1u8, kind][..], &vec![b'x'; max + 1]].concat();
            assert!(matches!(
                PeerMessage::decode(&over),
                Err(MessageError::Malformed("session message length") | MessageError::TooLarge(_))
            ));
            let at = [&[1u8, kind][..], &vec![b'x'; max]].concat();
            assert!(PeerMessage::decode(&at).is_ok());
        }
        assert!(PeerMessage::decode(&[&[1u8, 13][..], &[0; 31]].concat()).is_err());
        // An outcome needs its request hash and at least one byte.
        assert!(PeerMessage::decode(&[&[1u8, 11][..], &[0; 32]].concat()).is_err());
        let mut long_reason = vec![1u8, 6];
        long_reason.extend(vec![b'a'; MAX_REASON_LEN + 1]);
        assert!(PeerMessage::decode(&long_reason).is_err());
    }

    #[test]
    fn reasons_are_made_printable_and_survive_relaying() {
        let m = PeerMessage::decode(b"\x01\x06a\\b\nc\x1b[31m").unwrap();
        let PeerMessage::Unavailable { reason } = &m else {
            panic!("{m:?}")
        };
        assert_eq!(reason, "a\\b\u{fffd}c\u{fffd}[31m");
        assert_eq!(PeerMessage::decode(&m.encode()).unwrap(), m);
    }
}
