//! One long-lived outbound attested channel per peer for messages that need no answer
//! (protocol envelopes, session aborts), so a session does not pay a handshake and two
//! attestations per message.
//!
//! Each peer has a queue and a task that dials on demand, writes messages in order,
//! re-dials before the channel reaches its lifetime, and closes the channel when idle. A
//! message that cannot be sent after one re-dial is dropped and logged: the session that
//! needed it times out and names the peer it waited for.
//!
//! A manifest update drops every link (the node clears its map); a link task still
//! draining its queue re-dials rather than use a channel attested under the previous
//! manifest.

use super::{Blobs, Node};
use crate::provisioning::PeerMessage;
use mpc::NodeId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};

/// Messages waiting for one peer's link; more are dropped.
pub const LINK_QUEUE: usize = 1024;
/// A link with nothing to send for this long is closed (peers close idle channels after
/// their own, longer, timeout).
pub const LINK_IDLE: Duration = Duration::from_secs(20);
/// Longest one message may take to write; a link that stalls longer is re-dialled.
pub const LINK_SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type LinkSender = mpsc::Sender<zeroize::Zeroizing<Vec<u8>>>;

impl<B: Blobs> Node<B> {
    /// Queues `message` for `peer`; callable from any thread.
    pub(super) fn post(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        peer: &NodeId,
        message: PeerMessage,
    ) {
        let bytes = message.encode();
        let mut links = super::lock(&self.links);
        let sender = links
            .entry(peer.clone())
            .or_insert_with(|| self.open_link(runtime, peer));
        let bytes = match sender.try_send(bytes) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(%peer, "link queue full; message dropped");
                return;
            }
            Err(TrySendError::Closed(bytes)) => bytes,
        };
        let sender = self.open_link(runtime, peer);
        if sender.try_send(bytes).is_err() {
            tracing::warn!(%peer, "link closed; message dropped");
        }
        links.insert(peer.clone(), sender);
    }

    fn open_link(self: &Arc<Self>, runtime: &tokio::runtime::Handle, peer: &NodeId) -> LinkSender {
        let (sender, receiver) = mpsc::channel(LINK_QUEUE);
        runtime.spawn(self.clone().link(peer.clone(), receiver));
        sender
    }

    async fn link(
        self: Arc<Self>,
        peer: NodeId,
        mut queue: mpsc::Receiver<zeroize::Zeroizing<Vec<u8>>>,
    ) {
        let mut channel = None;
        // The manifest installed when `channel` was dialled.
        let mut dialled_under = 0u64;
        loop {
            let message = match tokio::time::timeout(LINK_IDLE, queue.recv()).await {
                Ok(Some(message)) => message,
                Ok(None) => return,
                Err(_) => {
                    if let Some(open) = channel.take() {
                        close(open).await;
                    }
                    continue;
                }
            };
            // A peer that restarted since the last message closed this channel; a write
            // to it could still succeed locally and the message would be lost.
            if let Some(open) = channel.as_mut()
                && peer_closed(open).await
            {
                tracing::info!(%peer, "link closed by the peer; re-dialling");
                channel = None;
            }
            let mut sent = false;
            for _attempt in 0..2 {
                let current = *self.manifest_updates.borrow();
                let fresh = dialled_under == current
                    && channel
                        .as_ref()
                        .is_some_and(|c: &Channel| c.age() < c.lifetime() * 9 / 10);
                if !fresh {
                    if let Some(old) = channel.take() {
                        close(old).await;
                    }
                    match super::outbound::bounded("link", self.dial(peer.as_str())).await {
                        Ok(c) => {
                            channel = Some(c);
                            dialled_under = current;
                        }
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "link to peer not established");
                            break;
                        }
                    }
                }
                let Some(open) = channel.as_mut() else { break };
                // A peer (or its parent) that stops reading must not hold this link.
                match tokio::time::timeout(LINK_SEND_TIMEOUT, open.send(&message)).await {
                    Ok(Ok(())) => {
                        sent = true;
                        break;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "link broke; re-dialling");
                        channel = None;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "link stalled; re-dialling");
                        channel = None;
                    }
                }
            }
            if !sent {
                tracing::warn!(%peer, "message to peer dropped");
            }
        }
    }
}

type Channel = super::outbound::Outbound;

/// Whether the peer has closed `channel`. Peers never write on a link, so anything
/// readable (end of stream, an error, or unexpected bytes) means it is no longer usable.
///
/// The read is polled exactly once and never waited for: a zero-length timer would only
/// fire at the runtime's next timer tick, delaying every message by a millisecond or two.
async fn peer_closed(channel: &mut Channel) -> bool {
    let mut read = std::pin::pin!(channel.recv());
    std::future::poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx).is_ready())).await
}

async fn close(channel: Channel) {
    let _ = tokio::time::timeout(Duration::from_secs(2), channel.close()).await;
}
