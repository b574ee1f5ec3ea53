//! A compromised node that claims another node's id.
//!
//! It runs the genuine enclave code (built from the enclave library) with everything a
//! node that an attacker took over has: the cluster's manifest, an NSM that attests to its
//! own real measurements (the real binary's PCR0..2 and its own instance's PCR4) and, in
//! simulator mode, the simulated root. What it cannot change is what its documents say.
//! It dials another node's peer port as any node's parent would, and sends the hello of
//! the node it claims to be.

use crate::cluster::Cluster;
use attestation::Verifier;
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use enclave::channel::{AttestedChannel, ChannelContext, ChannelError, PeerTrust, TlsIdentity};
use enclave::hpke;
use enclave::provisioning::{PeerMessage, release_info};
use manifest::SignedManifest;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Node `own`'s genuine code and NSM, speaking as `claimed`.
#[derive(Debug)]
pub struct Impostor {
    claimed: String,
    context: ChannelContext,
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
        let now = SystemTime::now();
        let signed = SignedManifest::parse(envelope).map_err(|e| e.to_string())?;
        let mut peers = BTreeMap::new();
        for node in signed.manifest().nodes() {
            peers.insert(
                node.id().to_owned(),
                node.measurement_sets().map_err(|e| e.to_string())?,
            );
        }
        let ca = SimCa::load_or_create(&cluster.dir.path().join("sim-ca"), now)
            .map_err(|e| e.to_string())?;
        let measurements = SimMeasurements::of_file(&cluster.node(own)?.enclave_binary)
            .map_err(|e| e.to_string())?
            .with_pcr4(own.as_bytes().to_vec());
        let nsm = SimNsm::new(&ca, &measurements, now).map_err(|e| e.to_string())?;
        let trust = PeerTrust {
            manifest_hash: *signed.hash().as_bytes(),
            peers,
            verifier: Verifier::aws_nitro()
                .trust_simulated_root(ca.root_der(), now)
                .map_err(|e| e.to_string())?,
            max_evidence_age: Duration::from_secs(60),
            allow_debug: false,
        };
        let identity = Arc::new(TlsIdentity::generate(claimed, now).map_err(|e| e.to_string())?);
        let context = ChannelContext::new(claimed.to_owned(), identity, Arc::new(nsm), trust)
            .map_err(|e| e.to_string())?;
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
