//! A compromised node that claims another node's id.
//!
//! It runs the genuine enclave code (built from the enclave library) with everything a
//! node that an attacker took over has: the cluster's manifest, an NSM that attests to its
//! own real measurements (the real binary's PCR0..2 and its own instance's PCR4) and, in
//! simulator mode, the simulated root. What it cannot change is what its documents say.
//! It dials another node's peer port as any node's parent would, and sends the hello of
//! the node it claims to be.

use crate::cluster::Cluster;
use attestation::nsm::sim::SimMeasurements;
use channel::{AttestedChannel, ChannelContext, ChannelError};
use enclave::hpke;
use protocol::peer::{PeerMessage, release_info};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Node `own`'s genuine code and NSM, speaking as `claimed`.
#[derive(Debug)]
pub struct Impostor {
    claimed: String,
    context: Arc<ChannelContext>,
}

/// What a node answered a request for the claimed node's escrowed key.
#[derive(Debug)]
pub enum ReleaseOutcome {
    /// The key, decrypted with the impostor's one-time HPKE key.
    Released(Vec<u8>),
    /// Any other answer, printed.
    Other(String),
}

impl Impostor {
    /// A compromised `own` of `cluster`, running under `envelope`, that will claim to be
    /// `claimed`. Its NSM measures the binary `own` was started from and extends `own`
    /// into PCR4, as `enclave --sim run --node-id <own>` does.
    pub fn new(
        cluster: &Cluster,
        envelope: &[u8],
        own: &str,
        claimed: &str,
    ) -> Result<Self, String> {
        let measurements = SimMeasurements::of_file(&cluster.node(own)?.enclave_binary)
            .map_err(|e| e.to_string())?
            .with_pcr4(own.as_bytes().to_vec());
        let context = crate::hostile_peer::endpoint(cluster, claimed, envelope, &measurements)?;
        Ok(Impostor {
            claimed: claimed.to_owned(),
            context,
        })
    }

    /// Opens a channel to `target` over TCP straight to its parent's peer port, as the
    /// claimed node.
    pub async fn dial(
        &self,
        cluster: &Cluster,
        target: &str,
    ) -> Result<AttestedChannel<impl AsyncRead + AsyncWrite + Unpin + Send>, ChannelError> {
        let port = cluster
            .node(target)
            .map_err(|e| ChannelError::Io(std::io::Error::other(e)))?
            .peer_port;
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        self.context.connect(stream, target).await
    }

    /// Asks for the claimed node's escrowed data key over `channel`, with a fresh document
    /// binding a one-time HPKE key, exactly as the claimed node does when it restarts.
    pub async fn request_release<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &self,
        channel: &mut AttestedChannel<S>,
    ) -> Result<ReleaseOutcome, String> {
        let (secret, public) = hpke::generate_keypair().map_err(|e| e.to_string())?;
        let exporter = *channel.exporter();
        let document = self
            .context
            .attest(&exporter, public.to_bytes().to_vec())
            .await
            .map_err(|e| e.to_string())?;
        channel
            .send(&PeerMessage::ReleaseRequest { document }.encode())
            .await
            .map_err(|e| e.to_string())?;
        let answer = channel
            .recv()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the node closed the channel")?;
        match PeerMessage::decode(&answer).map_err(|e| e.to_string())? {
            PeerMessage::Released { enc, ciphertext } => {
                let key = hpke::open(
                    &secret,
                    &enc,
                    &release_info(&self.claimed),
                    &exporter,
                    &ciphertext,
                )
                .map_err(|e| format!("released key does not decrypt: {e}"))?;
                Ok(ReleaseOutcome::Released(key.to_vec()))
            }
            other => Ok(ReleaseOutcome::Other(format!("{other:?}"))),
        }
    }
}
