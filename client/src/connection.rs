//! One request to one node through its parent's client port: TCP to the parent, attested
//! TLS to the node inside (checked before anything is sent), one request, one answer.

use channel::ChannelError;
use channel::client_port::{self, NodeExpectation, VerifiedNode};
use protocol::operator_api::{
    self, MAX_REQUEST_LEN, MAX_RESPONSE_LEN, OperationFailure, OperatorRequest,
};
use std::time::Duration;
use transport::frame::{read_frame, write_frame};

/// Longest wait for the parent to accept the TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("cannot reach {node} at {address}: {reason}")]
    Unreachable {
        node: String,
        address: String,
        reason: String,
    },
    /// The node's attestation failed: nothing was sent to it.
    #[error("{node} failed attestation: {source}")]
    Attestation { node: String, source: ChannelError },
    #[error("{node}: {reason}")]
    Transport { node: String, reason: String },
    #[error("{node}: no answer within {} s", .patience.as_secs())]
    Timeout { node: String, patience: Duration },
}

/// What one request produced: the node as verified, and its answer (JSON, or the reason it
/// refused).
#[derive(Debug)]
pub struct Answer {
    pub node: VerifiedNode,
    pub answer: Result<String, String>,
    /// When the refusal is an operation its participants did not complete: per
    /// participant, how it failed and whom the protocol blamed (`answer` holds its text).
    pub failure: Option<OperationFailure>,
}

/// Connects to the node `expect` describes at `address`, verifies it, then sends the
/// request `make` builds from the connection's exporter value (commands are signed over
/// it) and waits up to `patience` for the answer.
pub async fn request(
    address: &str,
    expect: &NodeExpectation,
    make: impl FnOnce(&[u8; 32]) -> OperatorRequest,
    patience: Duration,
) -> Result<Answer, RequestError> {
    let node = expect.node_id.clone();
    let unreachable = |reason: String| RequestError::Unreachable {
        node: node.clone(),
        address: address.to_owned(),
        reason,
    };
    let transport = |reason: String| RequestError::Transport {
        node: node.clone(),
        reason,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| unreachable("connection timed out".to_owned()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut port, verified) = client_port::connect(stream, expect)
        .await
        .map_err(|source| match source {
            ChannelError::Io(e) => unreachable(format!("closed during the handshake: {e}")),
            ChannelError::Closed => unreachable("closed during the handshake".to_owned()),
            source => RequestError::Attestation {
                node: node.clone(),
                source,
            },
        })?;
    let request = make(&port.exporter).encode();
    write_frame(&mut port.stream, &request, MAX_REQUEST_LEN)
        .await
        .map_err(|e| transport(e.to_string()))?;
    let answer = tokio::time::timeout(patience, read_frame(&mut port.stream, MAX_RESPONSE_LEN))
        .await
        .map_err(|_| RequestError::Timeout {
            node: node.clone(),
            patience,
        })?
        .map_err(|e| transport(e.to_string()))?
        .ok_or_else(|| transport("closed the connection without an answer".to_owned()))?;
    let (answer, failure) = match operator_api::decode(&answer) {
        Ok(operator_api::Answer::Json(json)) => (Ok(json), None),
        Ok(operator_api::Answer::Refused(reason)) => (Err(reason), None),
        Ok(operator_api::Answer::Failed(failure)) => (Err(failure.to_string()), Some(failure)),
        Err(e) => return Err(transport(e.to_string())),
    };
    Ok(Answer {
        node: verified,
        answer,
        failure,
    })
}

/// [`request`] from synchronous code, on a runtime of its own.
pub fn request_blocking(
    address: &str,
    expect: &NodeExpectation,
    make: impl FnOnce(&[u8; 32]) -> OperatorRequest,
    patience: Duration,
) -> Result<Answer, RequestError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RequestError::Transport {
            node: expect.node_id.clone(),
            reason: format!("runtime: {e}"),
        })?;
    runtime.block_on(request(address, expect, make, patience))
}
