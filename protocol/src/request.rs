//! The request that starts one threshold session at every participant, and what each
//! participant answers.
//!
//! The coordinator (the node an operator asked) encodes a [`SessionRequest`] once and sends
//! the same bytes to every participant over its attested channel. Each participant checks
//! them itself with [`SessionRequest::verify`] (the sender is the coordinator it names, the
//! manifest is the one it runs, every party is a manifest node, it is one of them) and derives
//! the session id from those bytes, so protocol messages can only join the execution that this
//! request started. A fresh 32-byte nonce makes two requests with the same content distinct.
//!
//! A request that signs, records a spend or creates a key carries the operators' request
//! and approvals ([`Authority`]) that every participant checks against its own manifest
//! and policy; what is signed is computed by each signer from that request, never taken
//! from the coordinator.
//!
//! A request names the scheme of the key it is about in `scheme`. A request without one is
//! for an ECDSA key ([`SchemeId::LEGACY`]): requests written before the field existed read
//! that way, and ECDSA requests are still written without it, so that they keep their bytes
//! and nodes of an earlier release, which refuse fields they do not know, still accept them
//! while a cluster is upgraded. A request of any other scheme carries the field.

use crate::authority::Authority;
use crate::path::DerivationPath;
use crate::session_id::{Protocol, SessionId};
use ids::{KeyId, NodeId, PartySet, SchemeId};
use serde::{Deserialize, Serialize};

/// Largest encoded request.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;
/// Largest encoded outcome.
pub const MAX_OUTCOME_LEN: usize = 8 * 1024;
const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("session request of {0} bytes exceeds the limit of {MAX_REQUEST_LEN}")]
    TooLarge(usize),
    #[error("session request is not valid: {0}")]
    Malformed(String),
    #[error("session request version {0} is not supported")]
    Version(u8),
    #[error("session request names coordinator {named}, but came from {from}")]
    WrongCoordinator { named: String, from: String },
    #[error("session request was made under another manifest")]
    OtherManifest,
    #[error("{0} is not a node of the manifest")]
    NotInManifest(String),
    #[error("this node ({0}) is not a participant of the request")]
    NotParticipant(String),
    #[error("{0}")]
    Invalid(String),
}

/// What a session computes; hex for every byte string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Operation {
    AuxInfo {
        group: Vec<String>,
        /// Replace auxiliary info the parties may already hold for `group`: asked by an
        /// operator, or because a party reported it lacks it. Without it, a party that
        /// holds auxiliary info for `group` refuses (the node's auxiliary-info admission).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        renew: bool,
    },
    Keygen {
        key_id: String,
        group: Vec<String>,
        threshold: u16,
        /// The session that produced the auxiliary info every party must use.
        aux_info: String,
        /// The request to create this key and its approvals, which every party checks.
        authority: Authority,
    },
    Presign {
        key_id: String,
        signers: Vec<String>,
    },
    /// Signs what the request in `authority` asks for (its `input`-th digest: a PSBT's
    /// input, 0 otherwise), which each signer computes itself from the request.
    Sign {
        key_id: String,
        signers: Vec<String>,
        path: Vec<u32>,
        authority: Authority,
        #[serde(default, skip_serializing_if = "is_zero")]
        input: u16,
    },
    SignPresigned {
        key_id: String,
        signers: Vec<String>,
        /// The presignature session whose output every signer consumes.
        presignature: String,
        authority: Authority,
        #[serde(default, skip_serializing_if = "is_zero")]
        input: u16,
    },
    /// Every party of `key_id` records the spend the request in `authority` makes, after
    /// checking it against its own policy, before any signer contributes a share.
    Record {
        key_id: String,
        /// Every party of the key, the asking signer included.
        parties: Vec<String>,
        /// The signing set the spend is for (a rule may name mandatory signers).
        signers: Vec<String>,
        authority: Authority,
    },
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub version: u8,
    pub coordinator: String,
    pub manifest_hash: String,
    pub nonce: String,
    /// The scheme of the key the session is about; left out for ECDSA.
    #[serde(
        default = "SchemeId::legacy",
        skip_serializing_if = "SchemeId::is_legacy"
    )]
    pub scheme: SchemeId,
    pub operation: Operation,
}

/// A request this node checked, with the session id every participant derives from it.
#[derive(Debug, Clone)]
pub struct Verified {
    pub session: SessionId,
    pub coordinator: NodeId,
    /// The scheme the request names (ECDSA when it names none).
    pub scheme: SchemeId,
    pub task: Task,
    /// The bytes the session id was derived from.
    pub bytes: Vec<u8>,
}

/// A checked [`Operation`]. Signing sets are checked against the key share, which only the
/// runtime holds.
#[derive(Debug, Clone)]
pub enum Task {
    AuxInfo {
        group: PartySet,
        renew: bool,
    },
    Keygen {
        key_id: KeyId,
        group: PartySet,
        threshold: u16,
        aux_info: SessionId,
        /// Not yet checked: the node checks it against its manifest.
        authority: Authority,
    },
    Presign {
        key_id: KeyId,
        signers: Vec<NodeId>,
    },
    /// What is signed is not here: each signer computes it from the request in
    /// `authority` after checking it (its `input`-th digest).
    Sign {
        key_id: KeyId,
        signers: Vec<NodeId>,
        path: DerivationPath,
        authority: Authority,
        input: u16,
    },
    SignPresigned {
        key_id: KeyId,
        signers: Vec<NodeId>,
        presignature: SessionId,
        authority: Authority,
        input: u16,
    },
    /// Checked against the key share by the runtime: `parties` must be the key's.
    Record {
        key_id: KeyId,
        parties: Vec<NodeId>,
        signers: Vec<NodeId>,
        authority: Authority,
    },
}

impl Task {
    pub fn protocol(&self) -> Protocol {
        match self {
            Task::AuxInfo { .. } => Protocol::AuxInfo,
            Task::Keygen { .. } => Protocol::Keygen,
            Task::Presign { .. } => Protocol::Presign,
            Task::Sign { .. } => Protocol::Sign,
            Task::SignPresigned { .. } => Protocol::SignPresigned,
            Task::Record { .. } => Protocol::Record,
        }
    }

    /// Every node that takes part, coordinator included.
    pub fn participants(&self) -> &[NodeId] {
        match self {
            Task::AuxInfo { group, .. } | Task::Keygen { group, .. } => group.nodes(),
            Task::Presign { signers, .. }
            | Task::Sign { signers, .. }
            | Task::SignPresigned { signers, .. } => signers,
            Task::Record { parties, .. } => parties,
        }
    }

    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Task::AuxInfo { .. } => "auxiliary info",
            Task::Keygen { .. } => "key generation",
            Task::Presign { .. } => "presignature generation",
            Task::Sign { .. } => "signing",
            Task::SignPresigned { .. } => "signing from a presignature",
            Task::Record { .. } => "recording a spend",
        }
    }
}

impl SessionRequest {
    /// A request about an ECDSA key; [`with_scheme`](Self::with_scheme) names another.
    pub fn new(
        coordinator: &NodeId,
        manifest_hash: &[u8; 32],
        nonce: &[u8; 32],
        operation: Operation,
    ) -> Self {
        Self {
            version: VERSION,
            coordinator: coordinator.as_str().to_owned(),
            manifest_hash: hex::encode(manifest_hash),
            nonce: hex::encode(nonce),
            scheme: SchemeId::LEGACY,
            operation,
        }
    }

    /// The same request, about a key of `scheme`.
    pub fn with_scheme(mut self, scheme: SchemeId) -> Self {
        self.scheme = scheme;
        self
    }

    pub fn encode(&self) -> Result<Vec<u8>, RequestError> {
        let bytes = serde_json::to_vec(self).map_err(|e| RequestError::Malformed(e.to_string()))?;
        if bytes.len() > MAX_REQUEST_LEN {
            return Err(RequestError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Checks `bytes` as received from `from` by node `me`, under the manifest with hash
    /// `manifest_hash` listing `members`.
    pub fn verify(
        bytes: &[u8],
        from: &NodeId,
        me: &NodeId,
        manifest_hash: &[u8; 32],
        members: &[NodeId],
    ) -> Result<Verified, RequestError> {
        if bytes.len() > MAX_REQUEST_LEN {
            return Err(RequestError::TooLarge(bytes.len()));
        }
        let request: SessionRequest =
            serde_json::from_slice(bytes).map_err(|e| RequestError::Malformed(e.to_string()))?;
        if request.version != VERSION {
            return Err(RequestError::Version(request.version));
        }
        if request.coordinator != from.as_str() {
            return Err(RequestError::WrongCoordinator {
                named: short(&request.coordinator),
                from: from.to_string(),
            });
        }
        if hex32(&request.manifest_hash, "manifest hash")? != *manifest_hash {
            return Err(RequestError::OtherManifest);
        }
        hex32(&request.nonce, "nonce")?;
        let member = |id: &String| -> Result<NodeId, RequestError> {
            let node = NodeId::new(id.as_str())
                .map_err(|e| RequestError::Invalid(format!("party: {e}")))?;
            if members.contains(&node) {
                Ok(node)
            } else {
                Err(RequestError::NotInManifest(short(id)))
            }
        };
        let members_of = |ids: &[String]| ids.iter().map(member).collect::<Result<Vec<_>, _>>();
        let key = |id: &str| KeyId::new(id).map_err(|e| RequestError::Invalid(e.to_string()));
        let signers_of = |ids: &[String]| -> Result<Vec<NodeId>, RequestError> {
            let nodes = members_of(ids)?;
            // The signing set is checked against the key share later; here only its shape.
            PartySet::new(nodes.iter().cloned())
                .map_err(|e| RequestError::Invalid(format!("signers: {e}")))?;
            Ok(nodes)
        };
        let task = match &request.operation {
            Operation::AuxInfo { group, renew } => Task::AuxInfo {
                group: group_of(members_of(group)?)?,
                renew: *renew,
            },
            Operation::Keygen {
                key_id,
                group,
                threshold,
                aux_info,
                authority,
            } => {
                let group = group_of(members_of(group)?)?;
                ids::Threshold::new(*threshold, &group)
                    .map_err(|e| RequestError::Invalid(e.to_string()))?;
                Task::Keygen {
                    key_id: key(key_id)?,
                    group,
                    threshold: *threshold,
                    aux_info: SessionId::from_bytes(hex32(aux_info, "auxiliary info id")?),
                    authority: authority.clone(),
                }
            }
            Operation::Presign { key_id, signers } => Task::Presign {
                key_id: key(key_id)?,
                signers: signers_of(signers)?,
            },
            Operation::Sign {
                key_id,
                signers,
                path,
                authority,
                input,
            } => Task::Sign {
                key_id: key(key_id)?,
                signers: signers_of(signers)?,
                path: DerivationPath::new(path.iter().copied())
                    .map_err(|e| RequestError::Invalid(e.to_string()))?,
                authority: authority.clone(),
                input: *input,
            },
            Operation::SignPresigned {
                key_id,
                signers,
                presignature,
                authority,
                input,
            } => Task::SignPresigned {
                key_id: key(key_id)?,
                signers: signers_of(signers)?,
                presignature: SessionId::from_bytes(hex32(presignature, "presignature id")?),
                authority: authority.clone(),
                input: *input,
            },
            Operation::Record {
                key_id,
                parties,
                signers,
                authority,
            } => Task::Record {
                key_id: key(key_id)?,
                parties: group_of(members_of(parties)?)?.nodes().to_vec(),
                signers: signers_of(signers)?,
                authority: authority.clone(),
            },
        };
        if !task.participants().contains(me) {
            return Err(RequestError::NotParticipant(me.to_string()));
        }
        if !task.participants().contains(from) {
            return Err(RequestError::Invalid(format!(
                "the coordinator {from} is not a participant"
            )));
        }
        Ok(Verified {
            session: SessionId::derive(task.protocol(), bytes),
            coordinator: from.clone(),
            scheme: request.scheme,
            task,
            bytes: bytes.to_vec(),
        })
    }
}

fn group_of(nodes: Vec<NodeId>) -> Result<PartySet, RequestError> {
    PartySet::new(nodes).map_err(|e| RequestError::Invalid(format!("group: {e}")))
}

fn hex32(text: &str, what: &str) -> Result<[u8; 32], RequestError> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return Err(RequestError::Invalid(format!(
            "{what} must be 32 bytes of hex"
        )));
    }
    hex::decode_to_slice(text, &mut out)
        .map_err(|e| RequestError::Invalid(format!("{what} is not hex: {e}")))?;
    Ok(out)
}

/// A peer-supplied name, shortened for an error message.
fn short(text: &str) -> String {
    crate::text::printable(&text.chars().take(64).collect::<String>())
}

/// Why a participant did not produce a result; the coordinator acts on some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The participant lacks the auxiliary info the keygen request names: run it first.
    AuxInfoMissing,
    /// The participant holds auxiliary info for the party set and the request did not ask
    /// to renew it.
    AuxInfoHeld,
    /// The participant does not hold the named presignature: sign without one.
    PresignatureMissing,
    /// Too many sessions at once.
    Busy,
    /// The request was refused before any protocol message.
    Refused,
    /// The protocol aborted; `blamed` names the parties the library blamed, if any.
    Aborted,
    /// A round passed its deadline; `blamed` names the parties that were awaited.
    TimedOut,
    /// Storing the result failed.
    Storage,
}

/// What one participant answers the coordinator when its session ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Outcome {
    AuxInfo,
    Keygen {
        public_key: String,
    },
    Presigned,
    /// The party recorded the spend (or had already).
    Recorded,
    Signature {
        r: String,
        s: String,
        v: u8,
    },
    Failed {
        kind: FailureKind,
        reason: String,
        blamed: Vec<String>,
    },
}

impl Outcome {
    pub fn failed(kind: FailureKind, reason: impl Into<String>) -> Self {
        Outcome::Failed {
            kind,
            reason: reason.into(),
            blamed: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut outcome = self.clone();
        if let Outcome::Failed { reason, blamed, .. } = &mut outcome {
            reason.truncate(floor_char_boundary(reason, 1024));
            blamed.truncate(32);
        }
        serde_json::to_vec(&outcome).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RequestError> {
        if bytes.len() > MAX_OUTCOME_LEN {
            return Err(RequestError::TooLarge(bytes.len()));
        }
        let mut outcome: Outcome =
            serde_json::from_slice(bytes).map_err(|e| RequestError::Malformed(e.to_string()))?;
        if let Outcome::Failed { reason, blamed, .. } = &mut outcome {
            *reason = crate::text::printable(reason);
            for b in blamed.iter_mut() {
                *b = short(b);
            }
        }
        Ok(outcome)
    }
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests;
