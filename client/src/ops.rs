//! The operations `custody` performs against a cluster, shared by its commands and the
//! demo: status of every node, key creation, signing, attestation documents.

use crate::cluster_file::{ClusterFile, ClusterFileError};
use crate::connection::{RequestError, request_blocking};
use crate::operator;
use enclave::operator_api::{KeyCommand, NodeStatus, OperatorRequest, SignedCommand};
use serde::Serialize;
use std::time::Duration;

/// Longest wait for a status answer.
pub const STATUS_PATIENCE: Duration = Duration::from_secs(15);
/// Longest wait for a key operation (auxiliary info may wait for safe primes).
pub const OPERATION_PATIENCE: Duration = Duration::from_secs(45 * 60);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    #[error(transparent)]
    Cluster(#[from] ClusterFileError),
    #[error(transparent)]
    Request(#[from] Box<RequestError>),
    #[error("operator key: {0}")]
    Key(#[from] operator::KeyFileError),
    #[error("{node} refused: {reason}")]
    Refused { node: String, reason: String },
    #[error("{node} answered something unreadable: {reason}")]
    Answer { node: String, reason: String },
}

/// One node as `custody status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub id: String,
    /// The node's phase, or `unreachable` / `unverified` when it could not be asked.
    pub phase: String,
    /// Whether its attestation verified against the cluster file.
    pub attested: bool,
    pub pcr0: Option<String>,
    /// Why it is not attested or not reachable.
    pub error: Option<String>,
    /// The node's full status, when it answered.
    #[serde(skip)]
    pub status: Option<NodeStatus>,
}

/// Asks every node of `file` for its status.
pub fn status(file: &ClusterFile) -> Vec<NodeReport> {
    file.nodes
        .iter()
        .map(|node| {
            let report = |phase: &str, error: String| NodeReport {
                id: node.id.clone(),
                phase: phase.to_owned(),
                attested: false,
                pcr0: None,
                error: Some(error),
                status: None,
            };
            let expect = match file.expectation(&node.id) {
                Ok(e) => e,
                Err(e) => return report("unverified", e.to_string()),
            };
            match request_blocking(
                &node.client,
                &expect,
                |_| OperatorRequest::Status,
                STATUS_PATIENCE,
            ) {
                Ok(answer) => {
                    let parsed = answer.answer.and_then(|json| {
                        serde_json::from_str::<NodeStatus>(&json).map_err(|e| e.to_string())
                    });
                    match parsed {
                        Ok(status) => NodeReport {
                            id: node.id.clone(),
                            phase: status.phase.clone(),
                            attested: true,
                            pcr0: Some(answer.node.pcr0),
                            error: status.reason.clone(),
                            status: Some(status),
                        },
                        Err(e) => NodeReport {
                            id: node.id.clone(),
                            phase: "unknown".to_owned(),
                            attested: true,
                            pcr0: Some(answer.node.pcr0),
                            error: Some(e),
                            status: None,
                        },
                    }
                }
                Err(e @ RequestError::Attestation { .. }) => report("unverified", e.to_string()),
                Err(e) => report("unreachable", e.to_string()),
            }
        })
        .collect()
}

/// Sends the request `make` builds to node `node` and returns its JSON answer; a refusal
/// names the node.
fn ask(
    file: &ClusterFile,
    node: &str,
    make: impl FnOnce(&[u8; 32]) -> OperatorRequest,
    patience: Duration,
) -> Result<serde_json::Value, OpError> {
    let expect = file.expectation(node)?;
    let entry = file.node(node)?;
    let answer = request_blocking(&entry.client, &expect, make, patience).map_err(Box::new)?;
    let json = answer.answer.map_err(|reason| OpError::Refused {
        node: node.to_owned(),
        reason,
    })?;
    serde_json::from_str(&json).map_err(|e| OpError::Answer {
        node: node.to_owned(),
        reason: e.to_string(),
    })
}

/// Sends `command`, signed with the cluster file's operator key, to node `node`.
pub fn command(
    file: &ClusterFile,
    node: &str,
    command: &KeyCommand,
) -> Result<serde_json::Value, OpError> {
    let key = operator::load(&file.operator.key_file)?;
    ask(
        file,
        node,
        |exporter| {
            OperatorRequest::Command(SignedCommand::sign(
                &file.operator.id,
                &key,
                exporter,
                command,
            ))
        },
        OPERATION_PATIENCE,
    )
}

/// Submits a signed manifest envelope to `node`; returns its answer.
pub fn submit_manifest(
    file: &ClusterFile,
    node: &str,
    envelope: &[u8],
) -> Result<serde_json::Value, OpError> {
    let envelope = envelope.to_vec();
    ask(
        file,
        node,
        move |_| OperatorRequest::SubmitManifest(envelope),
        STATUS_PATIENCE,
    )
}

/// A fresh attestation document from `node`, bound to `nonce`.
pub fn attest(file: &ClusterFile, node: &str, nonce: &[u8]) -> Result<Vec<u8>, OpError> {
    let nonce = nonce.to_vec();
    let value = ask(
        file,
        node,
        move |_| OperatorRequest::Attest { nonce },
        STATUS_PATIENCE,
    )?;
    let unreadable = |reason: String| OpError::Answer {
        node: node.to_owned(),
        reason,
    };
    let document = value
        .get("document")
        .and_then(|d| d.as_str())
        .ok_or_else(|| unreadable("no document".to_owned()))?;
    hex::decode(document).map_err(|e| unreadable(e.to_string()))
}
