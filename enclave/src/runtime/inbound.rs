//! The peer port: an attested channel from another node of the manifest, then its
//! messages until it is done, idle, or attested under a manifest that has been replaced.
//! What each phase serves is [`Phase::admits`]; the escrow rules are
//! [`crate::core::provisioning`]'s.
//!
//! [`Phase::admits`]: crate::core::phase::Phase::admits

use super::{Blobs, Node, Trust, escrow_blob};
use crate::core::phase::{Admit, PeerKind, Request};
use crate::core::provisioning::{EscrowVerdict, escrow_verdict};
use crate::hpke::{self, HpkePublicKey};
use crate::provisioning::{KEY_LEN, PeerMessage, release_info};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// A peer channel with no request for this long is closed.
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn refused(reason: impl Into<String>) -> PeerMessage {
    PeerMessage::Refused {
        reason: reason.into(),
    }
}

fn unavailable(reason: impl Into<String>) -> PeerMessage {
    PeerMessage::Unavailable {
        reason: reason.into(),
    }
}

const FAILED: &str = "node has failed and refuses all work";

impl<B: Blobs> Node<B> {
    /// Peer port: an attested channel, then requests until the peer is done or idle.
    pub(super) async fn peer_connection(self: Arc<Self>, stream: super::env::Stream) {
        // The trust this channel is checked against, and a watch that ends the channel
        // when a manifest update replaces it.
        let mut updates = self.manifest_updates.subscribe();
        let Some(trust) = self.trust() else {
            return;
        };
        let mut channel = match trust.channels.accept(stream).await {
            Ok(channel) => channel,
            Err(e) => {
                tracing::warn!(error = %e, "incoming peer refused");
                return;
            }
        };
        let peer = channel.peer().node_id.clone();
        let Ok(peer_id) = mpc::NodeId::new(peer.as_str()) else {
            return;
        };
        loop {
            let next = tokio::select! {
                // An update wins over a message that is ready at the same time.
                biased;
                _ = updates.changed() => {
                    tracing::info!(%peer, "manifest updated: closing a channel attested under the previous one");
                    break;
                }
                next = tokio::time::timeout(PEER_IDLE_TIMEOUT, channel.recv()) => next,
            };
            let Ok(Ok(Some(bytes))) = next else { break };
            let message = match PeerMessage::decode(&bytes) {
                Ok(message) => message,
                Err(e) => {
                    if channel
                        .send(&refused(e.to_string()).encode())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
            };
            let kind = PeerKind::of(&message);
            let admit = self.state().phase.admits(Request::Peer(kind));
            let reply = match message {
                // One-way messages of threshold sessions: no answer on this channel.
                PeerMessage::Protocol { envelope } => {
                    if admit == Admit::Serve {
                        self.deliver(&peer_id, &envelope);
                    }
                    continue;
                }
                PeerMessage::SessionAbort { session } => {
                    if admit == Admit::Serve {
                        self.abort_session(&peer_id, mpc::SessionId::from_bytes(session));
                    }
                    continue;
                }
                PeerMessage::SessionDone { request, outcome } => {
                    if admit == Admit::Serve {
                        self.session_done(&peer_id, request, &outcome);
                    }
                    continue;
                }
                // Answered on the coordinator's own link, refusal included.
                PeerMessage::SessionStart { request } => {
                    self.session_start(peer_id.clone(), request);
                    continue;
                }
                message => match admit {
                    Admit::Serve => {
                        self.handle_peer(&trust, &peer, channel.exporter(), message)
                            .await
                    }
                    Admit::NotYet => unavailable("waiting for its own data key"),
                    Admit::Failed => refused(FAILED),
                    Admit::Never => refused(format!("unexpected request {message:?}")),
                },
            };
            if channel.send(&reply.encode()).await.is_err() {
                break;
            }
        }
    }

    /// Whether `trust` is the trust of the manifest the node runs, confirmed against its
    /// sealed state. Escrows are stored and released only then: checked after the
    /// store's lock is taken, so a manifest installed while a request waited for it (a
    /// provisional one an attacker submitted, or any update) is seen.
    fn serves_escrows(&self, trust: &Arc<Trust>) -> Result<(), PeerMessage> {
        let state = self.state();
        let current = state.phase.trust().is_some_and(|t| Arc::ptr_eq(t, trust));
        if state.phase.store().is_some() && current {
            Ok(())
        } else {
            Err(unavailable(
                "this channel was not attested under the manifest the node runs, confirmed by its sealed state",
            ))
        }
    }

    /// A request the phase serves.
    async fn handle_peer(
        &self,
        trust: &Arc<Trust>,
        peer: &str,
        exporter: &[u8; 32],
        message: PeerMessage,
    ) -> PeerMessage {
        match message {
            PeerMessage::Ping => PeerMessage::Pong,
            PeerMessage::EscrowPut { key } => self.keep_escrow(trust, peer, &key).await,
            PeerMessage::ReleaseRequest { document } => {
                self.release(trust, peer, exporter, &document).await
            }
            other => refused(format!("unexpected request {other:?}")),
        }
    }

    /// Keeps `peer`'s escrowed key, unless another one is held for it already.
    async fn keep_escrow(
        &self,
        trust: &Arc<Trust>,
        peer: &str,
        key: &Zeroizing<[u8; KEY_LEN]>,
    ) -> PeerMessage {
        let Some(sealed) = self.sealed() else {
            return unavailable("waiting for its own data key");
        };
        let mut store = sealed.store.lock().await;
        if let Err(refusal) = self.serves_escrows(trust) {
            return refusal;
        }
        let held = match store.get(&escrow_blob(peer)).await {
            Ok(held) => held,
            Err(e) => return unavailable(format!("cannot read the escrow it holds: {e}")),
        };
        match escrow_verdict(held.as_deref().map(Vec::as_slice), key) {
            EscrowVerdict::AlreadyHeld => PeerMessage::EscrowStored,
            EscrowVerdict::Conflict => {
                tracing::warn!(%peer, "escrow refused: another key is already held for this node");
                refused(format!(
                    "already holds a different escrowed key for {peer}; an escrow is never replaced"
                ))
            }
            EscrowVerdict::Store => match store.put(&escrow_blob(peer), key.as_slice()).await {
                Ok(_) => {
                    tracing::info!(%peer, "holding escrowed key");
                    PeerMessage::EscrowStored
                }
                Err(e) => unavailable(format!("cannot store: {e}")),
            },
        }
    }

    /// Releases `peer`'s escrowed key, encrypted to the HPKE key in its fresh evidence.
    async fn release(
        &self,
        trust: &Arc<Trust>,
        peer: &str,
        exporter: &[u8; 32],
        document: &[u8],
    ) -> PeerMessage {
        let refuse = |reason: String| {
            tracing::warn!(%peer, %reason, "key release refused");
            refused(reason)
        };
        let public = match trust.channels.check_peer_document(peer, document, exporter) {
            Ok(Some(key)) => key,
            Ok(None) => return refuse("evidence binds no public key".to_owned()),
            Err(e) => return refuse(e.to_string()),
        };
        let Ok(recipient) = HpkePublicKey::from_bytes(&public) else {
            return refuse("evidence does not bind an X25519 key".to_owned());
        };
        let Some(sealed) = self.sealed() else {
            // Only a listing that positively lacks the escrow may say "not held": that
            // answer lets a peer create a new key.
            return match self.blobs.list(&escrow_blob(peer)).await {
                Ok(names) if names.contains(&escrow_blob(peer)) => {
                    unavailable("holds the key but is waiting for its own")
                }
                Ok(_) => PeerMessage::NotHeld,
                Err(e) => unavailable(format!("cannot read its blob store: {e}")),
            };
        };
        let store = sealed.store.lock().await;
        if let Err(refusal) = self.serves_escrows(trust) {
            return refusal;
        }
        let escrowed = match store.get(&escrow_blob(peer)).await {
            Ok(Some(key)) => key,
            Ok(None) => return PeerMessage::NotHeld,
            Err(e) => return unavailable(format!("escrow unreadable: {e}")),
        };
        match hpke::seal(&recipient, &release_info(peer), exporter, &escrowed) {
            Ok((enc, ciphertext)) => match <[u8; 32]>::try_from(enc.as_slice()) {
                Ok(enc) => {
                    tracing::info!(%peer, "escrowed key released");
                    PeerMessage::Released { enc, ciphertext }
                }
                Err(_) => refuse("unexpected encapsulation length".to_owned()),
            },
            Err(e) => refuse(e.to_string()),
        }
    }
}
