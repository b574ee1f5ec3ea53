//! What operators and tools send to a node's client port, and what it answers.
//!
//! Requests, each inside the client port's attested TLS (the channel's client port):
//! `[1][1][signed manifest envelope]` submits a manifest; `[1][7][policy envelope]` a
//! policy; `[1][2]` asks for the node's
//! status; `[1][4][operator-signed command]` is a [`KeyCommand`] (create a key, sign) with
//! its operator's signature ([`SignedCommand`]); `[1][5][nonce]` asks for a fresh
//! attestation document; `[1][6][key id]` asks for one key's record ([`KeyStatus`]);
//! `[1][8][from u64 BE]` asks for a page of the node's audit log ([`AuditPage`]).
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

use crate::authority::{Approval, Authority};
use crate::request::FailureKind;
use ids::SchemeId;
use serde::Serialize;
use std::collections::BTreeMap;

const VERSION: u8 = 1;
/// Largest request: a manifest or policy envelope (each at most 128 KiB) plus the header.
pub const MAX_REQUEST_LEN: usize = 2 + MAX_ENVELOPE_LEN;
/// Largest manifest or policy envelope a request carries.
pub const MAX_ENVELOPE_LEN: usize = 128 * 1024;
const _: () = assert!(manifest::MAX_ENVELOPE_LEN <= MAX_ENVELOPE_LEN);
/// Largest answer.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorRequest {
    SubmitManifest(Vec<u8>),
    /// A policy envelope approved by the manifest's operators.
    SubmitPolicy(Vec<u8>),
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
    /// A page of the node's audit log, from entry `from` ([`AuditPage`]).
    AuditExport {
        from: u64,
    },
}

/// One page of a node's audit log export, the answer to [`OperatorRequest::AuditExport`].
///
/// `header` is present exactly on the page asked `from` 0: the export's header line,
/// whose attestation document is fresh and binds the log's head at that moment; its count
/// is where the export ends, and the pages after the first continue up to it. `entries`
/// are entry lines in order, starting with entry `from`; `next` is the `from` of the next
/// page, `null` when the log (as it stands, or at the header's count) has no more. Lines
/// are exactly what the export file holds, without their line breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPage {
    pub header: Option<String>,
    pub entries: Vec<String>,
    pub next: Option<u64>,
}

/// Longest nonce an attestation request may carry (the NSM's limit).
pub const MAX_ATTEST_NONCE_LEN: usize = 512;
/// Longest encoded key command: an authority with room for its JSON wrapping.
pub const MAX_COMMAND_LEN: usize = crate::authority::MAX_AUTHORITY_LEN + 1024;

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

/// A key operation. Every operation that changes what the cluster signs travels as a
/// [`Request`](crate::authority::Request) with its approvals ([`Authority`]), which every
/// node that takes part checks itself; the node asked holds requests that await more
/// approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum KeyCommand {
    /// A new request with its requester's approval: answered with a [`RequestAnswer`]
    /// (signed, created, pending or refused).
    Submit { authority: Authority },
    /// An operator's approval of a request the node holds: answered as `Submit` is, once
    /// the approval is added.
    Approve {
        request_id: String,
        approval: Approval,
    },
    /// One request the node holds ([`RequestView`]).
    ShowRequest { request_id: String },
    /// The requests the node holds, newest first ([`RequestView`]s, at most
    /// [`MAX_LISTED_REQUESTS`]).
    ListRequests,
}

/// Most requests a list answer carries.
pub const MAX_LISTED_REQUESTS: usize = 64;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestStatus {
    /// Signed: the answer carries the signature.
    Signed,
    /// The key was created: the answer carries it.
    Created,
    /// Waiting for more approvals.
    Pending,
    /// Refused by the policy (or, for a key, by the manifest's rules).
    Refused,
    /// Approved, but the participants did not complete it.
    Failed,
    /// Expired before enough approvals arrived.
    Expired,
}

/// What a node answers about a request: the issue's `sign` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RequestAnswer {
    pub request_id: String,
    pub status: RequestStatus,
    /// The deciding rule of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The policy version that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<u64>,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// While pending: approvals that count, and how many are needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_needed: Option<usize>,
    /// When signed: the (first) signature, the digest and the key.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignedDigest>,
    /// When a transaction was signed: the signed transaction (hex for Ethereum, the
    /// signed PSBT in base64 for Bitcoin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_tx: Option<String>,
    /// A PSBT's signatures, one per input, in input order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<SignedDigest>,
    /// When a key was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<CreatedKey>,
}

impl RequestAnswer {
    /// An answer with only the id and the status.
    pub fn new(request_id: &[u8; 32], status: RequestStatus) -> Self {
        RequestAnswer {
            request_id: hex::encode(request_id),
            status,
            rule: None,
            policy_version: None,
            reason: None,
            approvals: None,
            approvals_needed: None,
            signature: None,
            signed_tx: None,
            inputs: Vec::new(),
            key: None,
        }
    }
}

/// A request a node holds, with where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RequestView {
    #[serde(flatten)]
    pub answer: RequestAnswer,
    pub key_id: String,
    pub requester: String,
    /// What is asked: `sign eth-tx`, `sign btc-psbt`, `sign digest`, `create-key`.
    pub action: String,
    pub approvers: Vec<String>,
    pub expires_ms: u64,
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
            OperatorRequest::SubmitPolicy(envelope) => {
                [&[VERSION, 7][..], envelope.as_slice()].concat()
            }
            OperatorRequest::Command(command) => {
                [&[VERSION, 4][..], command.encode().as_slice()].concat()
            }
            OperatorRequest::Attest { nonce } => [&[VERSION, 5][..], nonce.as_slice()].concat(),
            OperatorRequest::Key { key_id } => [&[VERSION, 6][..], key_id.as_bytes()].concat(),
            OperatorRequest::AuditExport { from } => {
                [&[VERSION, 8][..], from.to_be_bytes().as_slice()].concat()
            }
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
            [VERSION, 7, envelope @ ..] if !envelope.is_empty() => {
                Ok(OperatorRequest::SubmitPolicy(envelope.to_vec()))
            }
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
            [VERSION, 8, from @ ..] => {
                let from = <[u8; 8]>::try_from(from).map_err(|_| {
                    ApiError::Malformed("an audit export names its first entry in 8 bytes".into())
                })?;
                Ok(OperatorRequest::AuditExport {
                    from: u64::from_be_bytes(from),
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
    /// The version of the policy in force here, if any.
    #[serde(default)]
    pub policy_version: Option<u64>,
    /// A newer accepted policy version and when it takes effect (Unix seconds).
    #[serde(default)]
    pub policy_pending: Option<(u64, u64)>,
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
mod tests;
