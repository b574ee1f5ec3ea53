//! The node's listeners, and what it answers on its client port (operators and tools, one
//! request per attested TLS connection) and its status port (one health line). Which
//! request each phase serves is [`Phase::admits`]; a failed operation is answered with
//! its typed failure ([`Answer::Failed`]).
//!
//! [`Phase::admits`]: crate::core::phase::Phase::admits

use super::env::{Listen, Stream};
use super::{Blobs, InstallError, MANIFEST_BLOB, Node, NodeError, OperationError};
use crate::core::phase::{Admit, OperatorKind, PhaseError, Request};
use crate::operator_api::{
    self, Answer, ApiError, CommandError, HealthLine, MAX_REQUEST_LEN, MAX_RESPONSE_LEN,
    OperatorRequest,
};
use crate::sealed::{BlobError, SealError};
use manifest::SignedManifest;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use transport::frame::{FrameError, read_frame, write_frame};
use transport::{VsockAddr, ports};

/// Concurrent connections the node serves on each port; more are closed at once. The
/// parent decides who connects, so nothing it sends may grow without bound.
const MAX_PEER_CONNECTIONS: usize = 64;
const MAX_CLIENT_CONNECTIONS: usize = 32;
const MAX_STATUS_CONNECTIONS: usize = 16;

/// Why an operator's request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("bad request: {0}")]
    BadRequest(#[source] FrameError),
    #[error("request timed out")]
    TimedOut,
    #[error("node is not running ({phase}): {reason}")]
    NotRunning { phase: String, reason: String },
    #[error("manifests are not accepted while the node is {phase}")]
    ManifestsRefused { phase: String },
    #[error("no manifest")]
    NoManifest,
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Operation(#[from] OperationError),
    #[error("{}", operator_api::no_key(.key_id))]
    NoKey { key_id: String },
    #[error("attestation: {0}")]
    Attestation(#[source] attestation::AttestError),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(transparent)]
    Phase(#[from] PhaseError),
    #[error("storing the manifest at the parent: {0}")]
    StoreManifest(#[source] BlobError),
    #[error("sealing the manifest: {0}")]
    SealManifest(#[source] SealError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Governance(#[from] super::GovernanceError),
    #[error("audit log: {0}")]
    Audit(#[from] super::AuditFailure),
}

impl OperatorError {
    /// The answer the operator gets: a failed operation with its typed failure, anything
    /// else as a refusal with its reason.
    pub fn into_answer(self) -> Answer {
        match self {
            OperatorError::Operation(e) => match e.failure() {
                Some(failure) => Answer::Failed(failure.clone()),
                None => Answer::Refused(e.to_string()),
            },
            other => Answer::Refused(other.to_string()),
        }
    }
}

impl<B: Blobs> Node<B> {
    /// Binds the status, client and peer ports and serves them in the background.
    pub(super) async fn listen(self: Arc<Self>) -> Result<tokio::task::JoinHandle<()>, NodeError> {
        let bind = |port| {
            let addr = VsockAddr::new(self.config.cid, port);
            let net = self.net.clone();
            async move {
                net.bind(addr)
                    .await
                    .map_err(|source| NodeError::Listen { addr, source })
            }
        };
        let status = bind(ports::NODE_STATUS).await?;
        let client = bind(ports::NODE_CLIENT).await?;
        let peer = bind(ports::NODE_PEER).await?;
        let node = self.clone();
        Ok(tokio::spawn(async move {
            tokio::join!(
                node.clone().serve(
                    status,
                    MAX_STATUS_CONNECTIONS,
                    "status",
                    Self::status_connection
                ),
                node.clone().serve(
                    client,
                    MAX_CLIENT_CONNECTIONS,
                    "client",
                    Self::client_connection
                ),
                node.clone()
                    .serve(peer, MAX_PEER_CONNECTIONS, "peer", Self::peer_connection),
            );
        }))
    }

    /// Accepts connections on `listener`, serving at most `max` at once with `handle`;
    /// further connections are closed at once.
    async fn serve<F, Fut>(
        self: Arc<Self>,
        listener: Box<dyn Listen>,
        max: usize,
        what: &'static str,
        handle: F,
    ) where
        F: Fn(Arc<Self>, Stream) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let slots = Arc::new(tokio::sync::Semaphore::new(max));
        loop {
            let stream = match listener.accept().await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(port = what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(port = what, "connection refused: too many at once");
                continue;
            };
            let task = handle(self.clone(), stream);
            tokio::spawn(async move {
                let _permit = permit;
                task.await;
            });
        }
    }

    /// Status port: one health line, then close.
    async fn status_connection(self: Arc<Self>, mut stream: Stream) {
        let mut line = serde_json::to_vec(&HealthLine::of(&self.status())).unwrap_or_default();
        line.push(b'\n');
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = stream.write_all(&line).await;
            let _ = stream.shutdown().await;
        })
        .await;
    }

    /// Client port: attested TLS, then one operator request and one answer.
    async fn client_connection(self: Arc<Self>, stream: Stream) {
        let manifest_hash = self.trust().map(|t| *t.manifest.hash().as_bytes());
        let accepted = crate::channel::client_port::accept(
            stream,
            self.client_tls.clone(),
            &self.config.node_id,
            &self.identity,
            self.attester.clone(),
            manifest_hash,
        )
        .await;
        let mut port = match accepted {
            Ok(port) => port,
            Err(e) => {
                tracing::warn!(error = %e, "client connection failed before its request");
                return;
            }
        };
        let request = tokio::time::timeout(
            Duration::from_secs(10),
            read_frame(&mut port.stream, MAX_REQUEST_LEN),
        )
        .await;
        let answer = match request {
            Ok(Ok(Some(bytes))) => self.handle_operator(&bytes, &port.exporter).await,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => Err(OperatorError::BadRequest(e)),
            Err(_) => Err(OperatorError::TimedOut),
        };
        let answer = answer.map_or_else(OperatorError::into_answer, Answer::Json);
        let _ = write_frame(
            &mut port.stream,
            &operator_api::encode(&answer),
            MAX_RESPONSE_LEN,
        )
        .await;
        let _ = port.stream.shutdown().await;
    }

    async fn handle_operator(
        self: &Arc<Self>,
        bytes: &[u8],
        exporter: &[u8; 32],
    ) -> Result<String, OperatorError> {
        let request = OperatorRequest::decode(bytes)?;
        let phase = self.phase();
        if phase.admits(Request::Operator(OperatorKind::of(&request))) != Admit::Serve {
            return Err(match request {
                OperatorRequest::SubmitManifest(_) => OperatorError::ManifestsRefused {
                    phase: phase.to_string(),
                },
                _ => OperatorError::NotRunning {
                    phase: phase.to_string(),
                    reason: phase.reason().unwrap_or_default().to_owned(),
                },
            });
        }
        match request {
            OperatorRequest::Command(signed) => {
                let trust = phase.trust().ok_or(OperatorError::NoManifest)?;
                let command = signed.verify(trust.manifest.manifest(), exporter).map_err(|e| {
                    tracing::warn!(operator = %crate::provisioning::printable(&signed.operator), error = %e, "operator command refused");
                    e
                })?;
                tracing::info!(operator = %signed.operator, "operator command");
                Ok(self.key_command(command, &signed.operator).await?)
            }
            OperatorRequest::Attest { nonce } => {
                let request = attestation::AttestationRequest {
                    user_data: phase.trust().map(|t| t.manifest.hash().as_bytes().to_vec()),
                    nonce: Some(nonce),
                    public_key: None,
                };
                let attester = self.attester.clone();
                let document = tokio::task::spawn_blocking(move || attester.attest(&request))
                    .await?
                    .map_err(OperatorError::Attestation)?;
                Ok(serde_json::json!({ "document": hex::encode(document) }).to_string())
            }
            OperatorRequest::Status => Ok(self.status().into_answer()?),
            OperatorRequest::Key { key_id } => {
                let key = self
                    .status()
                    .keys
                    .into_iter()
                    .find(|k| k.key_id == key_id)
                    .ok_or(OperatorError::NoKey { key_id })?;
                Ok(serde_json::to_string(&key)?)
            }
            OperatorRequest::SubmitManifest(envelope) => self.submit_manifest(&envelope).await,
            OperatorRequest::AuditExport { from } => Ok(self.audit_export(from).await?),
            OperatorRequest::SubmitPolicy(envelope) => {
                Ok(self.submit_policy(&envelope).await.inspect_err(|e| {
                    tracing::warn!(error = %e, "policy refused");
                })?)
            }
        }
    }

    /// An operator submits a manifest. While the current one is only provisional (loaded
    /// from the parent, not yet confirmed by the sealed state) any manifest its own
    /// operators approve replaces it: that is how the real operators undo a forged one the
    /// parent installed, and the sealed copy still decides once the data key is back.
    /// Once confirmed (the node runs), only an approved successor is accepted. Stored at
    /// the parent first, then sealed, so that a stop in between leaves a successor at
    /// boot.
    async fn submit_manifest(&self, envelope: &[u8]) -> Result<String, OperatorError> {
        let signed = SignedManifest::parse(envelope)?;
        let _change = self.manifest_change.lock().await;
        // The manifest is confirmed exactly when the node runs with its sealed store.
        let (current, sealed) = {
            let state = self.state();
            (state.phase.trust().cloned(), state.phase.store().cloned())
        };
        let base = match (&current, &sealed) {
            (Some(trust), Some(_)) => Some(&trust.manifest),
            _ => None,
        };
        let accepted = manifest::accept(base, signed).inspect_err(|e| {
            tracing::warn!(error = %e, "manifest refused");
        })?;
        self.lists_this_node(&accepted).inspect_err(|e| {
            tracing::warn!(error = %e, "manifest refused");
        })?;
        let version = accepted.version();
        let hash = *accepted.hash().as_bytes();
        self.audit_when_running(::audit::Event::ManifestChange { version, hash })
            .await?;
        self.blobs
            .put(MANIFEST_BLOB, accepted.envelope_bytes().to_vec())
            .await
            .map_err(OperatorError::StoreManifest)?;
        if let Some(sealed) = sealed {
            sealed
                .store
                .lock()
                .await
                .put(super::SEALED_MANIFEST_BLOB, accepted.envelope_bytes())
                .await
                .map_err(OperatorError::SealManifest)?;
        }
        self.install(accepted)?;
        Ok(format!("{{\"accepted_version\":{version}}}"))
    }
}

impl From<super::NotListed> for OperatorError {
    fn from(e: super::NotListed) -> Self {
        OperatorError::Install(InstallError::NotListed(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::coordination::AgreementError;
    use crate::operator_api::{OperationFailure, ParticipantFailure};
    use crate::threshold::request::FailureKind;

    /// A session its participants did not complete reaches the operator typed; every
    /// other refusal as its text, as before.
    #[test]
    fn failed_operations_are_answered_typed() {
        let failure = OperationFailure {
            step: "signing".into(),
            failures: vec![ParticipantFailure {
                node: "node-3".into(),
                kind: FailureKind::TimedOut,
                reason: "no answer from this participant".into(),
                blamed: Vec::new(),
            }],
        };
        let failed = OperatorError::Operation(OperationError::Outcomes(AgreementError::Failed(
            failure.clone(),
        )));
        assert_eq!(failed.into_answer(), Answer::Failed(failure));
        let disagreed =
            OperatorError::Operation(OperationError::Outcomes(AgreementError::NoResult {
                step: "signing".into(),
            }));
        assert_eq!(
            disagreed.into_answer(),
            Answer::Refused("signing: no result".into())
        );
        let not_running = OperatorError::NotRunning {
            phase: "waiting_for_provisioning (asking)".into(),
            reason: "asking".into(),
        };
        assert_eq!(
            not_running.into_answer(),
            Answer::Refused(
                "node is not running (waiting_for_provisioning (asking)): asking".into()
            )
        );
        let no_key = OperatorError::NoKey { key_id: "k".into() };
        assert_eq!(no_key.to_string(), operator_api::no_key("k"));
    }
}
