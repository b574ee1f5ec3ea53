//! What the node asks its peers, each over a fresh attested channel dialled through the
//! parent (or, without one, directly: [`super::env::Network::dial`]): this node's data key back (a release request), to keep it in escrow, and
//! whether they are alive and attested (recorded for the status answer and for choosing
//! signers). One-way messages of threshold sessions travel on [`super::links`] instead.

use super::env::{DialError, PeerRoute};
use super::{Blobs, Node, peer_status};
use crate::channel::{AttestedChannel, ChannelError};
use crate::hpke::{self, HpkeError};
use crate::provisioning::{KeyFingerprint, MessageError, PeerAnswer, PeerMessage, release_info};
use crate::sealed::{DataKey, SealError};
use std::time::Duration;
use tokio_rustls::client::TlsStream;

/// Longest a request to a peer may take, connection and attestation included.
pub(super) const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An attested channel this node dialled.
pub(super) type Outbound = AttestedChannel<TlsStream<super::env::Stream>>;

/// Why a request to a peer did not get its answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    #[error("no manifest yet")]
    NoManifest,
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("peer closed the channel")]
    Closed,
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("unexpected answer {0}")]
    Unexpected(String),
    #[error("{what} timed out")]
    TimedOut { what: &'static str },
    #[error(transparent)]
    Hpke(#[from] HpkeError),
    #[error("released key does not decrypt: {0}")]
    Decrypt(#[source] HpkeError),
    #[error(transparent)]
    Key(#[from] SealError),
}

impl PeerError {
    fn unexpected(answer: &PeerMessage) -> Self {
        PeerError::Unexpected(format!("{answer:?}"))
    }
}

/// Runs a request to a peer under [`PEER_REQUEST_TIMEOUT`].
pub(super) async fn bounded<T>(
    what: &'static str,
    request: impl std::future::Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
    tokio::time::timeout(PEER_REQUEST_TIMEOUT, request)
        .await
        .unwrap_or(Err(PeerError::TimedOut { what }))
}

/// Sends one message on `channel` and returns the peer's answer, closing the channel.
async fn ask(channel: &mut Outbound, message: &PeerMessage) -> Result<PeerMessage, PeerError> {
    channel.send(&message.encode()).await?;
    let answer = channel.recv().await?.ok_or(PeerError::Closed)?;
    let _ = tokio::io::AsyncWriteExt::shutdown(channel.stream_mut()).await;
    Ok(PeerMessage::decode(&answer)?)
}

impl<B: Blobs> Node<B> {
    /// Opens an attested channel to `peer`, reached as this node's network reaches peers.
    pub(super) async fn dial(&self, peer: &str) -> Result<Outbound, PeerError> {
        let trust = self.trust().ok_or(PeerError::NoManifest)?;
        let route = PeerRoute {
            own_id: &self.config.node_id,
            peer,
            manifest: trust.manifest.manifest(),
        };
        let stream = self.net.dial(route).await?;
        Ok(trust.channels.connect(stream, peer).await?)
    }

    /// Records what the last attested channel to `peer` showed: its PCR0, or the error.
    fn record_peer(&self, peer: &str, outcome: Result<&str, &PeerError>) {
        if let Err(error) = outcome {
            tracing::warn!(%peer, %error, "peer not attested");
        }
        let status = peer_status(outcome, self.clock.unix_ms());
        self.state().peers.insert(peer.to_owned(), status);
    }

    /// Asks `peer` to release this node's data key.
    pub(super) async fn ask_release(&self, peer: &str) -> (PeerAnswer, Option<DataKey>) {
        match bounded("key release request", self.try_release(peer)).await {
            Ok(result) => result,
            Err(e) => (PeerAnswer::Unreachable(e.to_string()), None),
        }
    }

    async fn try_release(&self, peer: &str) -> Result<(PeerAnswer, Option<DataKey>), PeerError> {
        let trust = self.trust().ok_or(PeerError::NoManifest)?;
        let dialled = self.dial(peer).await;
        self.record_peer(peer, dialled.as_ref().map(|c| c.peer().pcr0.as_str()));
        let mut channel = dialled?;
        let (secret, public) = hpke::generate_keypair()?;
        let exporter = *channel.exporter();
        let document = trust
            .channels
            .attest(&exporter, public.to_bytes().to_vec())
            .await?;
        Ok(
            match ask(&mut channel, &PeerMessage::ReleaseRequest { document }).await? {
                PeerMessage::Released { enc, ciphertext } => {
                    let info = release_info(&self.config.node_id);
                    let plain = hpke::open(&secret, &enc, &info, &exporter, &ciphertext)
                        .map_err(PeerError::Decrypt)?;
                    let key = DataKey::from_slice(&plain)?;
                    let fingerprint = KeyFingerprint::of(key.expose_secret());
                    (PeerAnswer::Released(fingerprint), Some(key))
                }
                PeerMessage::NotHeld => (PeerAnswer::NotHeld, None),
                PeerMessage::Unavailable { reason } => (PeerAnswer::Unavailable(reason), None),
                PeerMessage::Refused { reason } => (PeerAnswer::Refused(reason), None),
                other => return Err(PeerError::unexpected(&other)),
            },
        )
    }

    /// Gives `peer` this node's data key to keep.
    pub(super) async fn send_escrow(&self, peer: &str, key: &DataKey) -> Result<(), PeerError> {
        let mut channel = self.dial(peer).await?;
        let escrow = PeerMessage::EscrowPut {
            key: zeroize::Zeroizing::new(*key.expose_secret()),
        };
        match ask(&mut channel, &escrow).await? {
            PeerMessage::EscrowStored => Ok(()),
            other => Err(PeerError::unexpected(&other)),
        }
    }

    /// Opens a fresh attested channel to every peer and records the outcome.
    pub(super) async fn check_peers(&self) {
        for peer in self.peer_ids() {
            let outcome = bounded("liveness check", async {
                let mut channel = self.dial(&peer).await?;
                match ask(&mut channel, &PeerMessage::Ping).await? {
                    PeerMessage::Pong => Ok(channel.peer().pcr0.clone()),
                    other => Err(PeerError::unexpected(&other)),
                }
            })
            .await;
            self.record_peer(&peer, outcome.as_deref());
        }
    }
}
