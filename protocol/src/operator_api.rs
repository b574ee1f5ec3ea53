//! What operators and tools send to a node's client port, and what it answers.
//!
//! Requests, each inside the client port's attested TLS (the channel's client port):
//! `[1][1][signed manifest envelope]` submits a manifest; `[1][2]` asks for the node's
//! status; `[1][4][operator-signed command]` is a [`KeyCommand`] (create a key, sign) with
//! its operator's signature ([`SignedCommand`]); `[1][5][nonce]` asks for a fresh
//! attestation document; `[1][6][key id]` asks for one key's record ([`KeyStatus`]).
//! Answers ([`Answer`]): `[1][0][JSON]`, `[1][1][reason]`, or `[1][2][JSON]` for an
//! operation the participants did not complete ([`OperationFailure`]: per participant,
//! its node id, the kind of failure, its reason and the nodes the protocol blamed). An
//! answer never exceeds [`MAX_RESPONSE_LEN`], and JSON that would is refused whole, never
//! cut. Kind 2 is newer than kinds 0 and 1: a client that predates it reports the answer
//! as unreadable, so it still sees that the operation did not complete. A manifest needs no
//! channel security to be safe: the node accepts it only with enough valid operator
//! signatures. (Operator-signed requests over attested TLS, for key operations, come with
//! the `custody` client.)
//!
//! Every answer about a key names the key's scheme (`"scheme": "ecdsa-secp256k1"`): the
//! created key, the signature, and each key of a status or key answer. Answers from nodes
//! that predate the field have none, and read as ECDSA's ([`SchemeId::LEGACY`]).

use crate::request::FailureKind;
use ids::SchemeId;
use serde::Serialize;
use std::collections::BTreeMap;

const VERSION: u8 = 1;
/// Largest request: a manifest envelope plus the header.
pub const MAX_REQUEST_LEN: usize = 2 + manifest::MAX_ENVELOPE_LEN;
/// Largest answer.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorRequest {
    SubmitManifest(Vec<u8>),
    Status,
    Command(SignedCommand),
    /// A fresh attestation document with this nonce, for auditors.
    Attest {
        nonce: Vec<u8>,
    },
    /// The record of one key this node holds a share of.
    Key {
        key_id: String,
    },
}

/// Longest nonce an attestation request may carry (the NSM's limit).
pub const MAX_ATTEST_NONCE_LEN: usize = 512;
/// Longest encoded key command.
pub const MAX_COMMAND_LEN: usize = 64 * 1024;

/// A [`KeyCommand`] (its JSON bytes, exactly as signed) with the signature of an operator
/// of the node's manifest over them and the connection's exporter value
/// ([`manifest::command_message`]). Encoded `[id length][operator id][64-byte
/// signature][command]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCommand {
    pub operator: String,
    pub signature: [u8; 64],
    pub command: Vec<u8>,
}

impl SignedCommand {
    /// Signs `command` as `operator` for the connection with exporter value `exporter`.
    pub fn sign(
        operator: &str,
        key: &manifest::OperatorKey,
        exporter: &[u8; 32],
        command: &KeyCommand,
    ) -> Self {
        let command = serde_json::to_vec(command).unwrap_or_default();
        SignedCommand {
            operator: operator.to_owned(),
            signature: key.sign_command(exporter, &command),
            command,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let id = self.operator.as_bytes();
        let mut out = Vec::with_capacity(1 + id.len() + 64 + self.command.len());
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(
            id.get(..usize::from(u8::MAX).min(id.len()))
                .unwrap_or_default(),
        );
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.command);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, ApiError> {
        let malformed = |what: &str| ApiError::Malformed(what.to_owned());
        let [id_len, rest @ ..] = bytes else {
            return Err(malformed("empty command"));
        };
        let id_len = usize::from(*id_len);
        if id_len == 0 || rest.len() < id_len + 64 {
            return Err(malformed("command too short"));
        }
        let (id, rest) = rest.split_at(id_len);
        let (signature, command) = rest.split_at(64);
        let operator = std::str::from_utf8(id)
            .map_err(|_| malformed("operator id is not UTF-8"))?
            .to_owned();
        if command.is_empty() || command.len() > MAX_COMMAND_LEN {
            return Err(malformed("command length"));
        }
        Ok(SignedCommand {
            operator,
            signature: signature
                .try_into()
                .map_err(|_| malformed("signature length"))?,
            command: command.to_vec(),
        })
    }

    /// The command, once its signature is checked against `manifest` for `exporter`.
    pub fn verify(
        &self,
        manifest: &manifest::Manifest,
        exporter: &[u8; 32],
    ) -> Result<KeyCommand, CommandError> {
        let operator =
            manifest
                .operator(&self.operator)
                .ok_or_else(|| CommandError::NotOperator {
                    operator: crate::text::printable(&self.operator),
                })?;
        if !manifest::verify_command(
            operator.public_key(),
            exporter,
            &self.command,
            &self.signature,
        ) {
            return Err(CommandError::Signature {
                operator: self.operator.clone(),
            });
        }
        serde_json::from_slice(&self.command).map_err(CommandError::Malformed)
    }
}

/// Why a signed command was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    #[error("{operator} is not an operator of the manifest")]
    NotOperator { operator: String },
    #[error("the signature of operator {operator} does not verify")]
    Signature { operator: String },
    #[error("malformed command: {0}")]
    Malformed(#[source] serde_json::Error),
}

/// A key operation; hex for byte strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum KeyCommand {
    /// Creates a key shared by `parties` (every manifest node when empty) with threshold
    /// `threshold`; `key_id` is chosen by the node when absent. With `renew_aux`, the
    /// parties' auxiliary info for that set is generated afresh first.
    CreateKey {
        #[serde(default)]
        key_id: Option<String>,
        threshold: u16,
        #[serde(default)]
        parties: Vec<String>,
        #[serde(default)]
        renew_aux: bool,
    },
    /// Signs a 32-byte `digest`, or a `message` the nodes hash with Keccak-256, at `path`
    /// (`m/0/1`; the master key when absent), by `signers` (chosen by the node when empty).
    Sign {
        key_id: String,
        #[serde(default)]
        digest: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        signers: Vec<String>,
    },
}

/// Parses a non-hardened derivation path in its one canonical spelling (`m`, `m/0/1`);
/// see [`DerivationPath::parse`](crate::path::DerivationPath::parse).
pub fn parse_path(text: &str) -> Result<Vec<u32>, String> {
    crate::path::DerivationPath::parse(text)
        .map(|p| p.indices().to_vec())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("request too large")]
    TooLarge,
    #[error("unknown request")]
    Unknown,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("malformed answer")]
    MalformedAnswer,
}

impl OperatorRequest {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            OperatorRequest::SubmitManifest(envelope) => {
                [&[VERSION, 1][..], envelope.as_slice()].concat()
            }
            OperatorRequest::Status => vec![VERSION, 2],
            OperatorRequest::Command(command) => {
                [&[VERSION, 4][..], command.encode().as_slice()].concat()
            }
            OperatorRequest::Attest { nonce } => [&[VERSION, 5][..], nonce.as_slice()].concat(),
            OperatorRequest::Key { key_id } => [&[VERSION, 6][..], key_id.as_bytes()].concat(),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.len() > MAX_REQUEST_LEN {
            return Err(ApiError::TooLarge);
        }
        match bytes {
            [VERSION, 1, envelope @ ..] if !envelope.is_empty() => {
                Ok(OperatorRequest::SubmitManifest(envelope.to_vec()))
            }
            [VERSION, 2] => Ok(OperatorRequest::Status),
            [VERSION, 4, command @ ..] => {
                SignedCommand::decode(command).map(OperatorRequest::Command)
            }
            [VERSION, 5, nonce @ ..] if nonce.len() <= MAX_ATTEST_NONCE_LEN => {
                Ok(OperatorRequest::Attest {
                    nonce: nonce.to_vec(),
                })
            }
            [VERSION, 6, key_id @ ..] => {
                let key_id = std::str::from_utf8(key_id)
                    .map_err(|_| ApiError::Malformed("key id is not UTF-8".to_owned()))?;
                ids::KeyId::new(key_id).map_err(|e| ApiError::Malformed(e.to_string()))?;
                Ok(OperatorRequest::Key {
                    key_id: key_id.to_owned(),
                })
            }
            _ => Err(ApiError::Unknown),
        }
    }
}

/// What a node answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Done: the result, as JSON.
    Json(String),
    /// Refused, with the reason.
    Refused(String),
    /// The operation ran but its participants did not complete it.
    Failed(OperationFailure),
}

/// Encodes an answer: JSON on success, a reason otherwise. JSON longer than an answer may
/// be is never cut (a client would read something else than was meant, or nothing): the
/// answer is then a refusal that says so. A reason is cut to fit.
pub fn encode_answer(answer: &Result<String, String>) -> Vec<u8> {
    match answer {
        Ok(json) => encode(&Answer::Json(json.clone())),
        Err(reason) => encode(&Answer::Refused(reason.clone())),
    }
}

/// Encodes an [`Answer`], as [`encode_answer`] does; a failure whose JSON does not fit is
/// sent as a refusal with its text, cut to fit.
pub fn encode(answer: &Answer) -> Vec<u8> {
    let too_large;
    let failure;
    let (code, text) = match answer {
        Answer::Json(json) if json.len() > MAX_RESPONSE_LEN - 2 => {
            too_large = format!(
                "the answer ({} bytes) is larger than the {} bytes an answer may be",
                json.len(),
                MAX_RESPONSE_LEN - 2
            );
            (1, too_large.as_str())
        }
        Answer::Json(json) => (0, json.as_str()),
        Answer::Refused(reason) => (1, reason.as_str()),
        Answer::Failed(failed) => {
            failure = serde_json::to_string(failed)
                .ok()
                .filter(|json| json.len() <= MAX_RESPONSE_LEN - 2)
                .map(|json| (2, json))
                .unwrap_or_else(|| (1, failed.to_string()));
            (failure.0, failure.1.as_str())
        }
    };
    [
        &[VERSION, code][..],
        cut(text, MAX_RESPONSE_LEN - 2).as_bytes(),
    ]
    .concat()
}

/// Decodes an [`Answer`].
pub fn decode(bytes: &[u8]) -> Result<Answer, ApiError> {
    match bytes {
        [VERSION, 0, json @ ..] => Ok(Answer::Json(String::from_utf8_lossy(json).into_owned())),
        [VERSION, 1, reason @ ..] => Ok(Answer::Refused(
            String::from_utf8_lossy(reason).into_owned(),
        )),
        [VERSION, 2, json @ ..] => serde_json::from_slice(json)
            .map(Answer::Failed)
            .map_err(|_| ApiError::MalformedAnswer),
        _ => Err(ApiError::MalformedAnswer),
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Decodes an answer as JSON or a reason; a failed operation's reason is its text.
pub fn decode_answer(bytes: &[u8]) -> Result<Result<String, String>, ApiError> {
    Ok(match decode(bytes)? {
        Answer::Json(json) => Ok(json),
        Answer::Refused(reason) => Err(reason),
        Answer::Failed(failed) => Err(failed.to_string()),
    })
}

/// An operation its participants did not complete: the step that failed and, for each
/// participant that failed, who it is, how it failed and whom the protocol blamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OperationFailure {
    /// What was being done ("signing", "key generation"...).
    pub step: String,
    pub failures: Vec<ParticipantFailure>,
}

/// One participant's failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ParticipantFailure {
    /// The participant's node id.
    pub node: String,
    pub kind: FailureKind,
    pub reason: String,
    /// The node ids the protocol blamed: the parties that misbehaved, or that a round
    /// waited for in vain.
    pub blamed: Vec<String>,
}

impl std::fmt::Display for OperationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed:", self.step)?;
        for failure in &self.failures {
            write!(
                f,
                " [{}: {:?}: {}",
                failure.node, failure.kind, failure.reason
            )?;
            if !failure.blamed.is_empty() {
                write!(f, "; blamed: {}", failure.blamed.join(", "))?;
            }
            write!(f, "]")?;
        }
        Ok(())
    }
}

impl std::error::Error for OperationFailure {}

/// A node's status, as served on the status port (one JSON line) and to operators.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: String,
    pub phase: String,
    pub reason: Option<String>,
    pub manifest_version: Option<u64>,
    pub manifest_hash: Option<String>,
    /// Creation time of this node's sealed state, read back from it (so a restarted node
    /// that recovered its key shows the same value).
    pub state_created_ms: Option<u64>,
    /// What this node last learned about each peer.
    pub peers: BTreeMap<String, PeerStatus>,
    /// Peers that do not yet hold this node's escrowed data key. Until this is empty, a
    /// restart of this node could not be recovered by every peer.
    pub escrow_pending: Vec<String>,
    /// The keys this node holds a share of, in id order. In an operator's answer, only
    /// the first ones that fit ([`NodeStatus::into_answer`]); `key_count` says how many
    /// there are. A client confirms a new key with each party by [`OperatorRequest::Key`].
    #[serde(default)]
    pub keys: Vec<KeyStatus>,
    /// How many keys this node holds a share of, listed or not.
    #[serde(default)]
    pub key_count: usize,
    /// Presignatures ready in this node's pools.
    #[serde(default)]
    pub presignatures: usize,
}

/// Most keys a status answer lists; with more, the first by id (as many as fit).
pub const MAX_STATUS_KEYS: usize = 100;
/// Longest peer error or PCR0 in a status answer, in bytes.
pub const MAX_STATUS_TEXT: usize = 128;
/// Longest reason in a status answer, in bytes: it names every peer's answer while the
/// node waits, which operators need whole.
pub const MAX_STATUS_REASON: usize = 2048;
/// Most peers and pending escrows a status answer lists (a manifest's node limit).
pub const MAX_STATUS_PEERS: usize = manifest::MAX_NODES;

impl NodeStatus {
    /// The status as an operator's answer, which fits [`MAX_RESPONSE_LEN`] by
    /// construction: the reason cut to [`MAX_STATUS_REASON`] bytes, other texts to
    /// [`MAX_STATUS_TEXT`] and ids to a node id's length,
    /// with control characters, quotes and backslashes replaced by `?` (so JSON escapes
    /// nothing in them), at most [`MAX_STATUS_PEERS`] peers and pending escrows, and the keys in id order, at most [`MAX_STATUS_KEYS`] and only
    /// as many as fit what is left. `key_count` counts them all.
    pub fn into_answer(mut self) -> Result<String, serde_json::Error> {
        let plain = |t: &str, max: usize| {
            cut(t, max)
                .chars()
                .map(|c| {
                    if c.is_control() || c == '"' || c == '\\' {
                        '?'
                    } else {
                        c
                    }
                })
                .collect::<String>()
        };
        let text = |t: &str| plain(t, MAX_STATUS_TEXT);
        let id = |t: &str| plain(t, ids::MAX_ID_LEN);
        self.reason = self.reason.as_deref().map(|t| plain(t, MAX_STATUS_REASON));
        self.peers = std::mem::take(&mut self.peers)
            .into_iter()
            .take(MAX_STATUS_PEERS)
            .map(|(peer_id, mut peer)| {
                peer.error = peer.error.as_deref().map(text);
                peer.pcr0 = peer.pcr0.as_deref().map(text);
                (id(&peer_id), peer)
            })
            .collect();
        self.escrow_pending.truncate(MAX_STATUS_PEERS);
        self.escrow_pending = self.escrow_pending.iter().map(|p| id(p)).collect();
        self.node_id = id(&self.node_id);
        self.phase = text(&self.phase);
        self.manifest_hash = self.manifest_hash.as_deref().map(text);
        let mut keys = std::mem::take(&mut self.keys);
        self.key_count = self.key_count.max(keys.len());
        keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        let json = |s: &NodeStatus| serde_json::to_string(s);
        let mut room = (MAX_RESPONSE_LEN - 2).saturating_sub(json(&self)?.len());
        for key in keys.into_iter().take(MAX_STATUS_KEYS) {
            // The record and the comma before it.
            let len = json_len(&key)? + 1;
            if len > room {
                break;
            }
            room -= len;
            self.keys.push(key);
        }
        json(&self)
    }
}

fn json_len(value: &impl Serialize) -> Result<usize, serde_json::Error> {
    serde_json::to_vec(value).map(|v| v.len())
}

/// The refusal of [`OperatorRequest::Key`] by a node that holds no share of `key_id`.
pub fn no_key(key_id: &str) -> String {
    format!("no key {key_id}")
}

/// One key as a party reports it: what it holds a share of.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyStatus {
    pub key_id: String,
    /// The key's signature scheme; ECDSA in an answer that names none.
    #[serde(default = "SchemeId::legacy")]
    pub scheme: SchemeId,
    /// Compressed SEC1, hex.
    pub public_key: String,
    /// The key's parties, sorted.
    pub parties: Vec<String>,
    /// Signers needed.
    pub threshold: u16,
}

/// The one line the status port serves to the parent's health endpoint: small, and
/// free of anything a peer chose (peer errors stay on the operator API).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct HealthLine {
    pub node_id: String,
    pub phase: String,
    pub reason: Option<String>,
}

/// Longest reason carried in a health line: even fully escaped (6 bytes a character)
/// the line stays under the parent's 1 KiB limit.
pub const MAX_HEALTH_REASON: usize = 120;

impl HealthLine {
    pub fn of(status: &NodeStatus) -> Self {
        let reason = status.reason.as_ref().map(|r| {
            let mut end = r.len().min(MAX_HEALTH_REASON);
            while !r.is_char_boundary(end) {
                end -= 1;
            }
            r.get(..end).unwrap_or_default().to_owned()
        });
        HealthLine {
            node_id: status.node_id.clone(),
            phase: status.phase.clone(),
            reason,
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PeerStatus {
    pub attested: bool,
    pub pcr0: Option<String>,
    pub error: Option<String>,
    pub checked_ms: u64,
}

/// What the coordinator answers an operator who created a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CreatedKey {
    pub key_id: String,
    /// The key's signature scheme; ECDSA in an answer that names none.
    #[serde(default = "SchemeId::legacy")]
    pub scheme: SchemeId,
    /// Compressed SEC1, hex.
    pub public_key: String,
    pub eth_address: String,
    pub btc_address: String,
    pub parties: Vec<String>,
    pub threshold: u16,
}

/// What the coordinator answers an operator who asked for a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SignedDigest {
    /// The signing key's scheme, which says how to read the signature: `r`, `s` and `v`
    /// are ECDSA's. ECDSA in an answer that names none.
    #[serde(default = "SchemeId::legacy")]
    pub scheme: SchemeId,
    pub r: String,
    pub s: String,
    pub v: u8,
    /// The key that signed: the derived one when a path was given.
    pub public_key: String,
    /// The 32 bytes that were signed.
    pub digest: String,
    pub signers: Vec<String>,
    /// Whether a pooled presignature was used.
    pub presigned: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        for r in [
            OperatorRequest::SubmitManifest(b"{}".to_vec()),
            OperatorRequest::Status,
            OperatorRequest::Command(SignedCommand {
                operator: "operator-0".into(),
                signature: [9; 64],
                command: br#"{"op":"sign"}"#.to_vec(),
            }),
            OperatorRequest::Attest {
                nonce: vec![1; 512],
            },
            OperatorRequest::Attest { nonce: Vec::new() },
            OperatorRequest::Key {
                key_id: "k".repeat(64),
            },
        ] {
            assert_eq!(OperatorRequest::decode(&r.encode()).unwrap(), r);
        }
        assert_eq!(OperatorRequest::decode(&[1, 1]), Err(ApiError::Unknown));
        assert_eq!(OperatorRequest::decode(&[1, 2, 0]), Err(ApiError::Unknown));
        assert_eq!(OperatorRequest::decode(&[2, 2]), Err(ApiError::Unknown));
        assert_eq!(
            OperatorRequest::decode(&vec![1; MAX_REQUEST_LEN + 1]),
            Err(ApiError::TooLarge)
        );
        for a in [Ok("{}".to_owned()), Err("no".to_owned())] {
            assert_eq!(decode_answer(&encode_answer(&a)).unwrap(), a);
        }
        assert!(decode_answer(&[1, 7]).is_err());
        // Unsigned key commands are not a request at all.
        assert_eq!(
            OperatorRequest::decode(b"\x01\x03{\"op\":\"sign\"}"),
            Err(ApiError::Unknown)
        );
        assert_eq!(
            OperatorRequest::decode(&[&[1u8, 5][..], &[0; MAX_ATTEST_NONCE_LEN + 1]].concat()),
            Err(ApiError::Unknown)
        );
        // A key id by the key id rule: 1 to 64 characters of a small alphabet.
        for bad in [
            &[1u8, 6][..],
            &[&[1u8, 6][..], &[b'k'; 65]].concat(),
            b"\x01\x06a b",
            &[1, 6, 0xff],
        ] {
            assert!(
                matches!(OperatorRequest::decode(bad), Err(ApiError::Malformed(_))),
                "{bad:?}"
            );
        }
        for bad in [
            &[1u8, 4][..],
            &[1, 4, 0],
            &[1, 4, 1, b'a'],
            &[&[1u8, 4, 1, b'a'][..], &[0; 64]].concat(),
        ] {
            assert!(
                matches!(OperatorRequest::decode(bad), Err(ApiError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn commands_are_accepted_only_from_manifest_operators_on_their_connection() {
        let key = manifest::OperatorKey::generate().unwrap();
        let stranger = manifest::OperatorKey::generate().unwrap();
        let body = serde_json::json!({
            "version": 1, "threshold": 1,
            "operators": [{"id": "operator-0", "public_key": key.public_key_hex()}],
            "nodes": [{"id": "n1", "provider": "sim", "address": "127.0.0.1:1",
                "measurements": [{"8": "00".repeat(48)}]}],
        });
        let manifest = manifest::Manifest::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        let command = KeyCommand::Sign {
            key_id: "k".into(),
            digest: Some("00".repeat(32)),
            message: None,
            path: None,
            signers: Vec::new(),
        };
        let exporter = [5u8; 32];
        let signed = SignedCommand::sign("operator-0", &key, &exporter, &command);
        let decoded =
            match OperatorRequest::decode(&OperatorRequest::Command(signed.clone()).encode()) {
                Ok(OperatorRequest::Command(c)) => c,
                other => panic!("{other:?}"),
            };
        assert_eq!(decoded.verify(&manifest, &exporter).unwrap(), command);
        // Another connection, another operator id, a key not in the manifest.
        assert!(
            decoded
                .verify(&manifest, &[6u8; 32])
                .unwrap_err()
                .to_string()
                .contains("does not verify")
        );
        let unknown = SignedCommand::sign("operator-9", &key, &exporter, &command);
        assert!(
            unknown
                .verify(&manifest, &exporter)
                .unwrap_err()
                .to_string()
                .contains("not an operator")
        );
        let forged = SignedCommand::sign("operator-0", &stranger, &exporter, &command);
        assert!(
            forged
                .verify(&manifest, &exporter)
                .unwrap_err()
                .to_string()
                .contains("does not verify")
        );
    }

    #[test]
    fn derivation_paths() {
        assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_path("m/0/1").unwrap(), vec![0, 1]);
        assert_eq!(parse_path("m/2147483647").unwrap(), vec![0x7fff_ffff]);
        for bad in [
            "",
            "0/1",
            "m/",
            "m/1'",
            "m/1h",
            "m/x",
            "m/2147483648",
            "m//1",
            "M/1",
            "m/+1",
            "m/007",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn health_lines_stay_under_the_parents_limit() {
        let status = NodeStatus {
            node_id: "n".repeat(64),
            phase: "waiting_for_provisioning".into(),
            reason: Some("\u{1}".repeat(10_000)),
            manifest_version: None,
            manifest_hash: None,
            state_created_ms: None,
            peers: BTreeMap::new(),
            escrow_pending: Vec::new(),
            keys: Vec::new(),
            key_count: 0,
            presignatures: 0,
        };
        let line = serde_json::to_vec(&HealthLine::of(&status)).unwrap();
        assert!(line.len() < 1024, "{}", line.len());
    }

    /// JSON that does not fit an answer is refused whole, never cut.
    #[test]
    fn answers_are_whole_or_refused() {
        let json = |len: usize| format!("\"{}\"", "x".repeat(len - 2));
        let fits = json(MAX_RESPONSE_LEN - 2);
        let encoded = encode_answer(&Ok(fits.clone()));
        assert_eq!(encoded.len(), MAX_RESPONSE_LEN);
        assert_eq!(decode_answer(&encoded).unwrap(), Ok(fits));
        let encoded = encode_answer(&Ok(json(MAX_RESPONSE_LEN - 1)));
        assert!(encoded.len() <= MAX_RESPONSE_LEN);
        let reason = decode_answer(&encoded).unwrap().unwrap_err();
        assert!(reason.contains("larger than"), "{reason}");
        // A reason is text: cut to fit, at a character boundary.
        let encoded = encode_answer(&Err("é".repeat(MAX_RESPONSE_LEN)));
        assert!(encoded.len() <= MAX_RESPONSE_LEN);
        assert!(
            decode_answer(&encoded)
                .unwrap()
                .unwrap_err()
                .starts_with("éé")
        );
    }

    /// A failed operation travels typed: per participant, the node, the kind of failure
    /// and whom the protocol blamed; a client reading answers as text gets its text.
    #[test]
    fn failed_operations_travel_typed() {
        let failed = OperationFailure {
            step: "signing".into(),
            failures: vec![
                ParticipantFailure {
                    node: "node-2".into(),
                    kind: FailureKind::Aborted,
                    reason: "bad proof".into(),
                    blamed: vec!["node-3".into()],
                },
                ParticipantFailure {
                    node: "node-3".into(),
                    kind: FailureKind::TimedOut,
                    reason: "no answer from this participant".into(),
                    blamed: Vec::new(),
                },
            ],
        };
        let text = "signing failed: [node-2: Aborted: bad proof; blamed: node-3] \
                    [node-3: TimedOut: no answer from this participant]";
        assert_eq!(failed.to_string(), text);
        let encoded = encode(&Answer::Failed(failed.clone()));
        assert_eq!(encoded.get(..2), Some(&[1u8, 2][..]));
        assert_eq!(decode(&encoded).unwrap(), Answer::Failed(failed.clone()));
        assert_eq!(decode_answer(&encoded).unwrap(), Err(text.to_owned()));
        let json: serde_json::Value = serde_json::from_slice(encoded.get(2..).unwrap()).unwrap();
        assert_eq!(json["failures"][0]["kind"], "aborted");
        assert_eq!(json["failures"][0]["blamed"][0], "node-3");
        // The earlier kinds are unchanged.
        assert_eq!(encode(&Answer::Json("{}".into())), b"\x01\x00{}");
        assert_eq!(encode(&Answer::Refused("no".into())), b"\x01\x01no");
        // A failure too large for an answer is sent as its text, cut.
        let huge = OperationFailure {
            step: "signing".into(),
            failures: vec![
                ParticipantFailure {
                    node: "n".into(),
                    kind: FailureKind::Refused,
                    reason: "x".repeat(MAX_RESPONSE_LEN),
                    blamed: Vec::new(),
                };
                2
            ],
        };
        let encoded = encode(&Answer::Failed(huge));
        assert!(encoded.len() <= MAX_RESPONSE_LEN);
        assert!(
            matches!(decode(&encoded).unwrap(), Answer::Refused(r) if r.starts_with("signing failed:"))
        );
        // Garbage under kind 2 is refused, not taken as text.
        assert_eq!(decode(&[1, 2, b'{']), Err(ApiError::MalformedAnswer));
    }

    fn key(i: usize, parties: usize) -> KeyStatus {
        KeyStatus {
            key_id: format!("{i:0>64}"),
            scheme: SchemeId::EcdsaSecp256k1,
            public_key: "02".repeat(33),
            parties: (0..parties).map(|p| format!("{p:n>64}")).collect(),
            threshold: u16::MAX,
        }
    }

    /// A status as large as anything outside may make it: every text at its longest and
    /// full of characters JSON escapes, a peer for every node a manifest may list.
    fn largest(keys: Vec<KeyStatus>) -> NodeStatus {
        let hostile = "\"\\\u{1}".repeat(10_000);
        NodeStatus {
            node_id: hostile.clone(),
            phase: hostile.clone(),
            reason: Some(hostile.clone()),
            manifest_version: Some(u64::MAX),
            manifest_hash: Some(hostile.clone()),
            state_created_ms: Some(u64::MAX),
            peers: (0..MAX_STATUS_PEERS + 10)
                .map(|i| {
                    (
                        format!("{i:0>64}{hostile}"),
                        PeerStatus {
                            attested: false,
                            pcr0: Some(hostile.clone()),
                            error: Some(hostile.clone()),
                            checked_ms: u64::MAX,
                        },
                    )
                })
                .collect(),
            escrow_pending: (0..MAX_STATUS_PEERS + 10)
                .map(|i| format!("{i}{hostile}"))
                .collect(),
            key_count: keys.len(),
            keys,
            presignatures: usize::MAX,
        }
    }

    fn answer(status: NodeStatus) -> NodeStatus {
        let json = status.into_answer().unwrap();
        let encoded = encode_answer(&Ok(json));
        assert!(encoded.len() <= MAX_RESPONSE_LEN, "{}", encoded.len());
        serde_json::from_str(&decode_answer(&encoded).unwrap().unwrap()).unwrap()
    }

    /// The status answer fits by construction: up to MAX_STATUS_KEYS keys, the first
    /// by id, and how many there are.
    #[test]
    fn status_answers_fit_and_list_the_first_keys_by_id() {
        let small = |n: usize| {
            let mut status = largest(Vec::new());
            status.peers.clear();
            status.escrow_pending.clear();
            // Out of order: the answer lists them by id.
            status.keys = (0..n).rev().map(|i| key(i, 3)).collect();
            status.key_count = n;
            status
        };
        let all = answer(small(MAX_STATUS_KEYS));
        assert_eq!(all.keys.len(), MAX_STATUS_KEYS);
        assert_eq!(all.key_count, MAX_STATUS_KEYS);
        assert_eq!(all.keys.first().unwrap(), &key(0, 3));
        let more = answer(small(MAX_STATUS_KEYS + 1));
        assert_eq!(more.keys.len(), MAX_STATUS_KEYS);
        assert_eq!(more.key_count, MAX_STATUS_KEYS + 1);
        assert_eq!(more.keys, all.keys);

        // The largest records and every other field at its worst: it still fits, lists
        // keys in order as far as they fit, and counts them all.
        let keys: Vec<_> = (0..4096).map(|i| key(i, ids::party::MAX_PARTIES)).collect();
        let worst = answer(largest(keys.clone()));
        assert_eq!(worst.key_count, 4096);
        // What the README promises whatever the status holds.
        assert!(worst.keys.len() >= 7, "{}", worst.keys.len());
        assert_eq!(worst.keys.as_slice(), keys.get(..worst.keys.len()).unwrap());
        assert_eq!(worst.peers.len(), MAX_STATUS_PEERS);
        assert_eq!(worst.escrow_pending.len(), MAX_STATUS_PEERS);
        assert!(worst.reason.unwrap().len() <= MAX_STATUS_REASON);
    }

    /// Each key answer names the key's scheme, and an answer from a node that predates the
    /// field reads as ECDSA; a scheme this build does not implement is refused, not guessed.
    #[test]
    fn key_answers_name_their_scheme_and_old_ones_read_as_ecdsa() {
        fn check<T>(value: T, old: &str)
        where
            T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let json = serde_json::to_value(&value).unwrap();
            assert_eq!(json["scheme"], "ecdsa-secp256k1");
            assert_eq!(serde_json::from_value::<T>(json.clone()).unwrap(), value);
            // What a node wrote before answers named a scheme.
            let mut without = json.clone();
            without.as_object_mut().unwrap().remove("scheme");
            assert_eq!(
                without,
                serde_json::from_str::<serde_json::Value>(old).unwrap()
            );
            assert_eq!(serde_json::from_str::<T>(old).unwrap(), value);
            for refused in [
                serde_json::json!("ed25519"),
                serde_json::json!("schnorr-secp256k1-tr"),
                serde_json::json!("ECDSA-secp256k1"),
                serde_json::json!(null),
                serde_json::json!(1),
            ] {
                let mut other = json.clone();
                other["scheme"] = refused.clone();
                assert!(serde_json::from_value::<T>(other).is_err(), "{refused}");
            }
        }
        check(
            KeyStatus {
                key_id: "k".into(),
                scheme: SchemeId::EcdsaSecp256k1,
                public_key: "02".repeat(33),
                parties: vec!["a".into(), "b".into()],
                threshold: 2,
            },
            &format!(
                r#"{{"key_id":"k","public_key":"{}","parties":["a","b"],"threshold":2}}"#,
                "02".repeat(33)
            ),
        );
        check(
            CreatedKey {
                key_id: "k".into(),
                scheme: SchemeId::EcdsaSecp256k1,
                public_key: "02".repeat(33),
                eth_address: "0xab".into(),
                btc_address: "bc1q".into(),
                parties: vec!["a".into(), "b".into()],
                threshold: 2,
            },
            &format!(
                r#"{{"key_id":"k","public_key":"{}","eth_address":"0xab","btc_address":"bc1q","parties":["a","b"],"threshold":2}}"#,
                "02".repeat(33)
            ),
        );
        check(
            SignedDigest {
                scheme: SchemeId::EcdsaSecp256k1,
                r: "01".repeat(32),
                s: "02".repeat(32),
                v: 1,
                public_key: "02".repeat(33),
                digest: "03".repeat(32),
                signers: vec!["a".into(), "b".into()],
                presigned: true,
            },
            &format!(
                r#"{{"r":"{}","s":"{}","v":1,"public_key":"{}","digest":"{}","signers":["a","b"],"presigned":true}}"#,
                "01".repeat(32),
                "02".repeat(32),
                "02".repeat(33),
                "03".repeat(32)
            ),
        );
        // A key record still refuses fields it does not know.
        let mut extra = serde_json::to_value(key(0, 1)).unwrap();
        extra["epoch"] = 0.into();
        assert!(serde_json::from_value::<KeyStatus>(extra).is_err());
    }

    /// Every key a status answer lists names its scheme.
    #[test]
    fn status_answers_name_each_keys_scheme() {
        let mut status = largest(Vec::new());
        status.peers.clear();
        status.escrow_pending.clear();
        status.keys = (0..3).map(|i| key(i, 3)).collect();
        let json = status.into_answer().unwrap();
        assert_eq!(json.matches(r#""scheme":"ecdsa-secp256k1""#).count(), 3);
        let back: NodeStatus = serde_json::from_str(&json).unwrap();
        assert!(
            back.keys
                .iter()
                .all(|k| k.scheme == SchemeId::EcdsaSecp256k1)
        );
    }

    /// One key's record, the largest there is, fits an answer with room to spare.
    #[test]
    fn the_largest_key_record_fits() {
        let json = serde_json::to_string(&key(0, ids::party::MAX_PARTIES)).unwrap();
        let encoded = encode_answer(&Ok(json.clone()));
        assert_eq!(decode_answer(&encoded).unwrap(), Ok(json));
        assert!(encoded.len() < MAX_RESPONSE_LEN / 8);
    }
}
