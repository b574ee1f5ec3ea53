//! Getting a node's data key back after a restart, without any party outside the
//! enclaves ever seeing it.
//!
//! - When a node first creates its data key it sends it to each peer over an attested
//!   channel (`EscrowPut`); each peer keeps it sealed under its own data key.
//! - A restarted node asks each peer (`ReleaseRequest`) with a fresh attestation document
//!   bound to that channel (nonce = the channel's exporter value) whose public key is a
//!   one-time HPKE key. A peer that holds the escrow and can open it answers `Released`:
//!   the key encrypted to that HPKE key. A peer that holds none says `NotHeld`; one that
//!   holds one but cannot open it (it is waiting for its own key) says `Unavailable`.
//! - [`decide`] turns the answers into recover, create, or keep waiting. A node never
//!   creates a new key over existing state, and never while a peer might hold its escrow.
//!
//! The same channels carry threshold sessions, as one-way messages on long-lived links:
//! `SessionStart` (a request the peer checks itself), `SessionDone` (the participant's
//! outcome, sent back to the coordinator with the hash of the request it answers),
//! `Protocol` (one protocol envelope) and `SessionAbort` (from the coordinator only).
//!
//! Messages: `[1][kind][body]`, each body bounded.

use crate::threshold::request::{MAX_OUTCOME_LEN, MAX_REQUEST_LEN};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
/// Data keys are 32 bytes.
pub const KEY_LEN: usize = 32;
/// X25519 HPKE encapsulated key length.
pub const ENC_LEN: usize = 32;
/// Largest peer message: a release request carries an attestation document, a protocol
/// message one envelope.
pub const MAX_MESSAGE_LEN: usize = 2 + max(
    attestation::MAX_DOCUMENT_LEN,
    mpc::envelope::MAX_ENVELOPE_LEN,
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
    /// "Take part in this session": an encoded `threshold::request::SessionRequest`.
    SessionStart {
        request: Vec<u8>,
    },
    /// The participant's encoded `threshold::request::Outcome` for the request whose
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

/// A peer's text with control characters replaced, so it cannot break a log line or a
/// terminal; printable text passes through unchanged, so relaying it does not grow it.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
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
            12 if !body.is_empty() && body.len() <= mpc::envelope::MAX_ENVELOPE_LEN => {
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

/// A one-way digest of a released data key, so that the decision can tell keys apart
/// without holding them. Never logged.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyFingerprint([u8; 32]);

impl KeyFingerprint {
    /// SHA-256 over a domain label and the key.
    pub fn of(key: &[u8; KEY_LEN]) -> Self {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"tee-custody data key fingerprint v1\0");
        hasher.update(key);
        KeyFingerprint(hasher.finalize().into())
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyFingerprint(..)")
    }
}

/// What one peer said when asked for this node's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAnswer {
    /// It released a key (decrypted by the caller, not yet known to be the right one).
    Released(KeyFingerprint),
    NotHeld,
    Unavailable(String),
    /// No attested channel could be established, or it failed.
    Unreachable(String),
    Refused(String),
}

/// What a starting node does about its data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Sealed state exists and these peers released keys (one peer per distinct key, in
    /// order): use the first key that opens the sealed index, never one that does not.
    TryKeys { peers: Vec<String> },
    /// No sealed state, but every peer released the same key (the parent lost the
    /// state): start a new store under it and escrow it again with every peer.
    RecoverFresh { from: Vec<String> },
    /// No state here and every peer confirmed it holds no key for this node: first start.
    CreateNew,
    /// Anything else: wait and ask again. The reason is shown on the health endpoint.
    Wait(String),
}

/// Decides from the answers of every peer in the manifest (`answers` must have one entry
/// per peer) and whether sealed state (its index) already exists at the parent.
///
/// No single peer decides which key a node uses: with state, a released key is only a
/// candidate that must open the sealed index; without state, a key is adopted only when
/// every peer released the same one, and a new key is created only when every peer
/// positively holds none.
pub fn decide(has_state: bool, answers: &BTreeMap<String, PeerAnswer>) -> Decision {
    let released: Vec<(&String, KeyFingerprint)> = answers
        .iter()
        .filter_map(|(peer, answer)| match answer {
            PeerAnswer::Released(fingerprint) => Some((peer, *fingerprint)),
            _ => None,
        })
        .collect();
    if has_state {
        let mut seen: Vec<KeyFingerprint> = Vec::new();
        let mut peers = Vec::new();
        for (peer, fingerprint) in &released {
            if !seen.contains(fingerprint) {
                seen.push(*fingerprint);
                peers.push((*peer).clone());
            }
        }
        if peers.is_empty() {
            return Decision::Wait(format!(
                "sealed state exists but no peer released its key ({})",
                summarize(answers)
            ));
        }
        return Decision::TryKeys { peers };
    }
    if answers.values().all(|a| *a == PeerAnswer::NotHeld) {
        return Decision::CreateNew;
    }
    if released.is_empty() {
        return Decision::Wait(format!(
            "first start needs every peer to confirm it holds no key ({})",
            summarize(answers)
        ));
    }
    let names = |list: Vec<&String>| {
        list.iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let keys: Vec<KeyFingerprint> = released.iter().map(|(_, f)| *f).collect();
    let first = keys.first().copied();
    if keys.iter().any(|k| Some(*k) != first) {
        return Decision::Wait(format!(
            "no sealed state here and peers released different keys ({}): \
             not adopting any ({})",
            names(released.iter().map(|(p, _)| *p).collect()),
            summarize(answers)
        ));
    }
    if released.len() == answers.len() {
        return Decision::RecoverFresh {
            from: released.iter().map(|(p, _)| (*p).clone()).collect(),
        };
    }
    Decision::Wait(format!(
        "no sealed state here; {} released a key but recovering it needs the same key \
         from every peer ({})",
        names(released.iter().map(|(p, _)| *p).collect()),
        summarize(answers)
    ))
}

/// Peers whose released key differs from `opened`, the key that opened the sealed
/// state: they released a key that is not this node's.
pub fn mismatched(answers: &BTreeMap<String, PeerAnswer>, opened: &KeyFingerprint) -> Vec<String> {
    answers
        .iter()
        .filter(|(_, answer)| matches!(answer, PeerAnswer::Released(f) if f != opened))
        .map(|(peer, _)| peer.clone())
        .collect()
}

/// What a node does with an `EscrowPut`, given the escrow it already holds for the
/// sender, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscrowVerdict {
    /// Nothing held yet: keep it.
    Store,
    /// The same key again: nothing to do, confirm.
    AlreadyHeld,
    /// Another key is held for this owner: refuse. An escrow is never replaced, or a
    /// node claiming the owner's id could swap the key the owner will get back.
    Conflict,
}

/// Decides an `EscrowPut` of `offered` when `held` is already kept for its owner.
pub fn escrow_verdict(held: Option<&[u8]>, offered: &[u8; KEY_LEN]) -> EscrowVerdict {
    match held {
        None => EscrowVerdict::Store,
        Some(held) => {
            if aws_lc_rs::constant_time::verify_slices_are_equal(held, offered).is_ok() {
                EscrowVerdict::AlreadyHeld
            } else {
                EscrowVerdict::Conflict
            }
        }
    }
}

/// How the manifest a node booted with (the parent's plain copy, trusted only
/// provisionally) stands against the one its sealed state recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootManifest {
    /// The sealed state records none yet (a store created just before a stop): record
    /// the boot manifest.
    Unrecorded,
    /// The recorded manifest itself.
    Same,
    /// An approved successor of the recorded one (an update whose parent copy was
    /// stored but whose sealed copy was not): record it.
    Successor,
    /// Older than the recorded one, or not approved through its chain: the parent's copy
    /// is refused and the recorded manifest is installed instead.
    Refused(String),
}

/// Checks the boot manifest against the recorded one. A node that has run under a
/// manifest never goes back to an older or differently-rooted one, whatever the parent
/// stores.
pub fn check_boot_manifest(
    boot: &manifest::AcceptedManifest,
    recorded: Option<&manifest::AcceptedManifest>,
) -> BootManifest {
    let Some(recorded) = recorded else {
        return BootManifest::Unrecorded;
    };
    if boot.hash() == recorded.hash() {
        return BootManifest::Same;
    }
    match manifest::accept(Some(recorded), boot.signed().clone()) {
        Ok(_) => BootManifest::Successor,
        Err(e) => BootManifest::Refused(format!(
            "the parent's manifest (version {}, {}) is not the sealed one (version {}, {}) \
             nor approved by it: {e}",
            boot.version(),
            boot.hash(),
            recorded.version(),
            recorded.hash()
        )),
    }
}

fn summarize(answers: &BTreeMap<String, PeerAnswer>) -> String {
    if answers.is_empty() {
        return "no peers".to_owned();
    }
    answers
        .iter()
        .map(|(peer, answer)| match answer {
            PeerAnswer::Released(_) => format!("{peer}: released a key"),
            PeerAnswer::NotHeld => format!("{peer}: holds none"),
            PeerAnswer::Unavailable(r) => format!("{peer}: unavailable: {r}"),
            PeerAnswer::Unreachable(r) => format!("{peer}: unreachable: {r}"),
            PeerAnswer::Refused(r) => format!("{peer}: refused: {r}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[(&str, PeerAnswer)]) -> BTreeMap<String, PeerAnswer> {
        list.iter()
            .map(|(p, a)| (p.to_string(), a.clone()))
            .collect()
    }

    fn key(byte: u8) -> KeyFingerprint {
        KeyFingerprint::of(&[byte; KEY_LEN])
    }

    #[test]
    fn fingerprints_tell_keys_apart_and_do_not_print_them() {
        assert_eq!(key(1), key(1));
        assert_ne!(key(1), key(2));
        assert_eq!(format!("{:?}", key(1)), "KeyFingerprint(..)");
    }

    #[test]
    fn with_state_every_distinct_released_key_is_a_candidate() {
        use PeerAnswer::*;
        let down = || Unreachable("connection refused".into());
        assert_eq!(
            decide(true, &answers(&[("b", down()), ("c", Released(key(1)))])),
            Decision::TryKeys {
                peers: vec!["c".into()]
            }
        );
        // A liar first in order does not hide the honest key: both are tried.
        assert_eq!(
            decide(
                true,
                &answers(&[("b", Released(key(9))), ("c", Released(key(1)))])
            ),
            Decision::TryKeys {
                peers: vec!["b".into(), "c".into()]
            }
        );
        // The same key from two peers is tried once.
        assert_eq!(
            decide(
                true,
                &answers(&[
                    ("b", Released(key(1))),
                    ("c", Released(key(1))),
                    ("d", Released(key(2)))
                ])
            ),
            Decision::TryKeys {
                peers: vec!["b".into(), "d".into()]
            }
        );
        // Existing state and nobody releases: wait, never create.
        for list in [
            vec![("b", NotHeld), ("c", NotHeld)],
            vec![("b", Unavailable("waiting".into())), ("c", down())],
        ] {
            assert!(matches!(decide(true, &answers(&list)), Decision::Wait(_)));
        }
        assert!(matches!(decide(true, &BTreeMap::new()), Decision::Wait(_)));
    }

    #[test]
    fn a_first_start_needs_not_held_from_every_peer() {
        use PeerAnswer::*;
        let down = || Unreachable("connection refused".into());
        assert_eq!(
            decide(false, &answers(&[("b", NotHeld), ("c", NotHeld)])),
            Decision::CreateNew
        );
        let wait = decide(false, &answers(&[("b", NotHeld), ("c", down())]));
        assert!(matches!(&wait, Decision::Wait(r) if r.contains("c: unreachable")));
        assert!(matches!(
            decide(
                false,
                &answers(&[("b", NotHeld), ("c", Unavailable("x".into()))])
            ),
            Decision::Wait(_)
        ));
        // One peer releasing a key of its choosing while the other holds none: neither
        // create nor adopt, and say who released it.
        let wait = decide(false, &answers(&[("b", Released(key(6))), ("c", NotHeld)]));
        assert!(
            matches!(&wait, Decision::Wait(r) if r.contains("b released") && r.contains("c: holds none")),
            "{wait:?}"
        );
        // A single-node cluster.
        assert_eq!(decide(false, &BTreeMap::new()), Decision::CreateNew);
    }

    #[test]
    fn without_state_a_key_is_recovered_only_from_every_peer_agreeing() {
        use PeerAnswer::*;
        assert_eq!(
            decide(
                false,
                &answers(&[("b", Released(key(1))), ("c", Released(key(1)))])
            ),
            Decision::RecoverFresh {
                from: vec!["b".into(), "c".into()]
            }
        );
        // Disagreement: wait, naming both.
        let wait = decide(
            false,
            &answers(&[("b", Released(key(1))), ("c", Released(key(2)))]),
        );
        assert!(
            matches!(&wait, Decision::Wait(r) if r.contains("different keys") && r.contains("b, c")),
            "{wait:?}"
        );
        // One peer missing: wait, even if the others agree.
        let wait = decide(
            false,
            &answers(&[
                ("b", Released(key(1))),
                ("c", Released(key(1))),
                ("d", Unreachable("down".into())),
            ]),
        );
        assert!(
            matches!(&wait, Decision::Wait(r) if r.contains("every peer") && r.contains("d: unreachable")),
            "{wait:?}"
        );
    }

    #[test]
    fn peers_that_released_another_key_are_named() {
        use PeerAnswer::*;
        let list = answers(&[
            ("b", Released(key(9))),
            ("c", Released(key(1))),
            ("d", NotHeld),
        ]);
        assert_eq!(mismatched(&list, &key(1)), ["b"]);
        assert!(mismatched(&list, &key(9)).contains(&"c".to_owned()));
    }

    #[test]
    fn an_escrow_is_never_replaced() {
        let held = [5u8; KEY_LEN];
        assert_eq!(escrow_verdict(None, &held), EscrowVerdict::Store);
        assert_eq!(
            escrow_verdict(Some(&held), &held),
            EscrowVerdict::AlreadyHeld
        );
        let mut other = held;
        other[KEY_LEN - 1] ^= 1;
        assert_eq!(escrow_verdict(Some(&held), &other), EscrowVerdict::Conflict);
        // A held value of another length (a damaged escrow) is not the same key.
        assert_eq!(
            escrow_verdict(Some(&held[..31]), &held),
            EscrowVerdict::Conflict
        );
    }

    mod boot_manifest {
        use super::super::*;
        use manifest::{OperatorKey, OperatorSignature, SignedManifest};

        struct Operators(Vec<OperatorKey>);

        impl Operators {
            fn new() -> Self {
                Operators((0..3).map(|_| OperatorKey::generate().unwrap()).collect())
            }

            /// A manifest of `version` listing these operators, signed by the first two
            /// of `signers`, accepted on its own (as at a first boot).
            fn manifest(&self, version: u64, signers: &Operators) -> manifest::AcceptedManifest {
                let operators: Vec<_> = self
                    .0
                    .iter()
                    .enumerate()
                    .map(|(i, k)| serde_json::json!({"id": format!("op-{i}"), "public_key": k.public_key_hex()}))
                    .collect();
                let body = serde_json::to_vec(&serde_json::json!({
                    "version": version,
                    "threshold": 2,
                    "operators": operators,
                    "nodes": [{
                        "id": "node-1",
                        "provider": "sim",
                        "address": "127.0.0.1:1",
                        "measurements": [{"0": "00".repeat(48), "1": "11".repeat(48), "2": "22".repeat(48)}],
                    }],
                }))
                .unwrap();
                let signatures: Vec<_> = signers
                    .0
                    .iter()
                    .take(2)
                    .enumerate()
                    .map(|(i, k)| OperatorSignature {
                        operator: format!("op-{i}"),
                        signature: manifest::sign(&body, k),
                    })
                    .collect();
                let signed = SignedManifest::assemble(&body, &signatures).unwrap();
                manifest::accept(None, signed).unwrap()
            }
        }

        #[test]
        fn the_boot_manifest_must_be_the_sealed_one_or_its_successor() {
            let real = Operators::new();
            let v1 = real.manifest(1, &real);
            let v2 = real.manifest(2, &real);
            assert_eq!(check_boot_manifest(&v1, None), BootManifest::Unrecorded);
            assert_eq!(check_boot_manifest(&v2, Some(&v2)), BootManifest::Same);
            assert_eq!(check_boot_manifest(&v2, Some(&v1)), BootManifest::Successor);
            // Rolled back.
            assert!(matches!(
                check_boot_manifest(&v1, Some(&v2)),
                BootManifest::Refused(r) if r.contains("version 1") && r.contains("version 2")
            ));
            // Forged: newer, but approved only by operators of its own.
            let attacker = Operators::new();
            let forged = attacker.manifest(9, &attacker);
            assert!(matches!(
                check_boot_manifest(&forged, Some(&v2)),
                BootManifest::Refused(_)
            ));
        }
    }

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
                envelope: vec![1; mpc::envelope::MAX_ENVELOPE_LEN],
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
            (12, mpc::envelope::MAX_ENVELOPE_LEN),
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
