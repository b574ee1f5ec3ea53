//! What operators and tools send to a node's client port, and what it answers.
//!
//! Requests: `[1][1][signed manifest envelope]` submits a manifest; `[1][2]` asks for the
//! node's status; `[1][3][JSON]` is a [`KeyCommand`] (create a key, sign). Answers:
//! `[1][0][JSON]` or `[1][1][reason]`. A manifest needs no
//! channel security to be safe: the node accepts it only with enough valid operator
//! signatures. (Operator-signed requests over attested TLS, for key operations, come with
//! the `custody` client.)

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
    Keys(KeyCommand),
}

/// A key operation; hex for byte strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum KeyCommand {
    /// Creates a key shared by `parties` (every manifest node when empty) with threshold
    /// `threshold`; `key_id` is chosen by the node when absent.
    CreateKey {
        #[serde(default)]
        key_id: Option<String>,
        threshold: u16,
        #[serde(default)]
        parties: Vec<String>,
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

/// Parses a non-hardened derivation path: `m`, or `m/` followed by indices separated by
/// `/`. Hardened indices (`'` or `h`) are refused: threshold keys derive only
/// non-hardened children.
pub fn parse_path(text: &str) -> Result<Vec<u32>, String> {
    let mut parts = text.split('/');
    if parts.next() != Some("m") {
        return Err(format!("derivation path {text:?} must start with m"));
    }
    parts
        .map(|part| {
            if part.ends_with('\'') || part.ends_with('h') || part.ends_with('H') {
                return Err(format!("hardened index {part:?} cannot be derived"));
            }
            let index: u32 = part
                .parse()
                .map_err(|_| format!("derivation index {part:?} is not a number"))?;
            if index >= 0x8000_0000 {
                return Err(format!("index {index} is in the hardened range"));
            }
            Ok(index)
        })
        .collect()
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
            OperatorRequest::Keys(command) => {
                let json = serde_json::to_vec(command).unwrap_or_default();
                [&[VERSION, 3][..], json.as_slice()].concat()
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
            [VERSION, 3, json @ ..] => serde_json::from_slice(json)
                .map(OperatorRequest::Keys)
                .map_err(|e| ApiError::Malformed(e.to_string())),
            _ => Err(ApiError::Unknown),
        }
    }
}

/// Encodes an answer: JSON on success, a reason otherwise.
pub fn encode_answer(answer: &Result<String, String>) -> Vec<u8> {
    let (code, text) = match answer {
        Ok(json) => (0, json.as_str()),
        Err(reason) => (1, reason.as_str()),
    };
    let mut end = text.len().min(MAX_RESPONSE_LEN - 2);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    [
        &[VERSION, code][..],
        text.as_bytes().get(..end).unwrap_or_default(),
    ]
    .concat()
}

pub fn decode_answer(bytes: &[u8]) -> Result<Result<String, String>, ApiError> {
    match bytes {
        [VERSION, 0, json @ ..] => Ok(Ok(String::from_utf8_lossy(json).into_owned())),
        [VERSION, 1, reason @ ..] => Ok(Err(String::from_utf8_lossy(reason).into_owned())),
        _ => Err(ApiError::MalformedAnswer),
    }
}

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
    /// Ids of the keys this node holds a share of.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Presignatures ready in this node's pools.
    #[serde(default)]
    pub presignatures: usize,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        for r in [
            OperatorRequest::SubmitManifest(b"{}".to_vec()),
            OperatorRequest::Status,
            OperatorRequest::Keys(KeyCommand::CreateKey {
                key_id: None,
                threshold: 2,
                parties: vec!["a".into()],
            }),
            OperatorRequest::Keys(KeyCommand::Sign {
                key_id: "k".into(),
                digest: Some("00".into()),
                message: None,
                path: Some("m/0".into()),
                signers: Vec::new(),
            }),
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
        assert!(matches!(
            OperatorRequest::decode(b"\x01\x03{\"op\":\"sign\",\"key_id\":\"k\",\"x\":1}"),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            OperatorRequest::decode(b"\x01\x03{\"op\":\"delete-key\"}"),
            Err(ApiError::Malformed(_))
        ));
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
            presignatures: 0,
        };
        let line = serde_json::to_vec(&HealthLine::of(&status)).unwrap();
        assert!(line.len() < 1024, "{}", line.len());
    }
}
