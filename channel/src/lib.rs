//! Attested mutual TLS between nodes, and between an operator's client and a node.
//!
//! - this module: [`ChannelContext`] opens and accepts node-to-node channels,
//!   [`AttestedChannel`] carries framed messages over one.
//! - [`evidence`]: the check each side applies to the other's hello, a pure function of
//!   its inputs and the time.
//! - [`client_port`]: the one-sided variant for operators and tools: the node attests,
//!   the client checks it against what it pins.
//! - [`identity`]: a node's per-boot TLS key and self-signed certificate.
//! - `verifier`: rustls certificate verifiers that only check possession of the key;
//!   identity comes from attestation.
//! - `adversary` (feature `adversary`, tests only): a peer that sends whatever evidence
//!   a test makes.
//!
//! How a node-to-node channel is set up:
//!
//! 1. TLS 1.3 (rustls on aws-lc-rs) with each node's per-boot key; the certificate
//!    verifiers only check that each side holds the key it presents.
//! 2. Both sides derive the connection's exporter value (RFC 8446 §7.5, label
//!    [`EXPORTER_LABEL`], 32 bytes). A hello is a node id and fresh evidence binding
//!    (nonce = exporter, public key = the sender's TLS key, user data = its manifest
//!    hash).
//! 3. The dialling side speaks first: it sends its hello. The accepting side checks it
//!    ([`evidence`], the check a client also applies to a node) and sends its verdict;
//!    only when it accepted does it ask its attester for evidence and send its own hello,
//!    which the dialling side checks in turn and answers with its verdict. A channel
//!    exists only when both accepted, and no application byte flows before that.
//! 4. Anyone who reaches the peer port can open a connection, so the accepting side
//!    spends only bounded work on a dialler that has not proven itself: no attester call,
//!    one size-limited hello, and [`ChannelContext::hello_timeout`] for TLS and that hello
//!    together, after which the connection is dropped and its slot freed.
//! 5. A channel refuses to carry traffic once older than its lifetime: the caller then
//!    closes it and connects again, attesting afresh. The lifetime is the configured one,
//!    cut short to end [`EXPIRY_MARGIN`] before the earliest expiry of the evidence either
//!    side showed ([`effective_lifetime`]): a Confidential Space token lives an hour, and
//!    a channel must not outlive what proved its ends.

#![forbid(unsafe_code)]

#[cfg(feature = "adversary")]
mod adversary;
pub mod client_port;
pub mod evidence;
pub mod identity;
mod verifier;

pub use evidence::{PeerTrust, VerifiedPeer};
pub use identity::TlsIdentity;

use attestation::{AttestError, AttestationRequest, Attester, PolicyError, VerifyError};
use evidence::{
    Hello, MAX_HELLO_LEN, MAX_VERDICT_LEN, check_hello, decode_verdict, encode_verdict,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite};
use transport::frame::{FrameError, read_frame, write_frame};

/// Label of the TLS exporter whose value each attestation document carries as nonce.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-tee-custody-attested-channel-v1";
/// Largest application message carried by a channel.
pub const MAX_MESSAGE_LEN: usize = 1024 * 1024;
/// Default [`ChannelContext::hello_timeout`]: TLS plus one NSM call and one frame take a
/// genuine dialler well under this.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// Name presented in TLS; identity comes from attestation, not from names.
const TLS_SERVER_NAME: &str = "node.tee-custody.internal";
/// How long before the earliest expiry of either side's evidence a channel stops carrying
/// traffic, so that it is re-attested while the evidence is still valid.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The lifetime of a channel set up at `now`: `configured`, or less, so that it ends
/// [`EXPIRY_MARGIN`] before the earliest of `expiries` (each since the Unix epoch, `None`
/// for evidence that does not expire). Evidence expiring within the margin leaves no
/// lifetime at all.
pub fn effective_lifetime(
    configured: Duration,
    expiries: [Option<Duration>; 2],
    now: SystemTime,
) -> Duration {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    expiries
        .into_iter()
        .flatten()
        .map(|expires| expires.saturating_sub(EXPIRY_MARGIN).saturating_sub(now))
        .fold(configured, Duration::min)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("peer closed the connection during the attestation exchange")]
    Closed,
    #[error("attestation exchange timed out")]
    Timeout,
    #[error("this node's attester failed: {0}")]
    Attester(#[from] AttestError),
    #[error("peer claims to be this node")]
    SelfConnection,
    #[error("dialled {expected} but the peer claims to be {claimed}")]
    WrongPeer { expected: String, claimed: String },
    #[error("{0} is not a node of the manifest")]
    UnknownNode(String),
    #[error("{peer}: evidence does not verify: {source}")]
    Evidence { peer: String, source: VerifyError },
    #[error("{peer}: evidence refused: {source}")]
    Policy { peer: String, source: PolicyError },
    #[error("{peer}: evidence does not bind the TLS key the peer presented")]
    KeyBinding { peer: String },
    #[error("{peer}: runs under a different manifest")]
    ManifestMismatch { peer: String },
    /// A client-port check: the node's attested hello names a manifest the client does
    /// not pin (or none where one is required). Nothing was sent to the node.
    #[error("{peer} runs manifest {runs}, not the pinned manifest {pinned}")]
    ManifestNotPinned {
        peer: String,
        runs: String,
        pinned: String,
    },
    #[error("peer refused this node: {0}")]
    PeerRefused(String),
    #[error("channel is older than its lifetime of {0:?}; reconnect to attest again")]
    Expired(Duration),
}

impl From<protocol::hello::HelloError> for ChannelError {
    fn from(e: protocol::hello::HelloError) -> Self {
        ChannelError::Malformed(e.reason())
    }
}

/// Everything a node needs to open and accept attested channels.
pub struct ChannelContext {
    node_id: String,
    identity: Arc<TlsIdentity>,
    attester: Arc<dyn Attester>,
    trust: PeerTrust,
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    /// Time allowed for TLS plus the attestation exchange.
    pub handshake_timeout: Duration,
    /// Time an accepted connection may take for TLS and the dialler's hello, before the
    /// dialler has proven anything: an unauthenticated connection holds a slot no longer.
    pub hello_timeout: Duration,
    /// Age after which a channel stops carrying traffic, unless the evidence of its ends
    /// expires sooner ([`effective_lifetime`]).
    pub lifetime: Duration,
}

impl std::fmt::Debug for ChannelContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelContext")
            .field("node_id", &self.node_id)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The rustls configurations of a channel endpoint holding `identity`: TLS 1.3 only,
/// certificates required both ways and checked only for the handshake signature (the
/// attestation exchange decides who the peer is), and every connection a full
/// handshake: no tickets, no session cache, no resumption, so each side signs with its
/// TLS key again rather than relying on a key proof from another connection.
pub fn tls_configs(
    identity: &TlsIdentity,
) -> Result<(Arc<ClientConfig>, Arc<ServerConfig>), ChannelError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = |e: rustls::Error| ChannelError::Tls(e.to_string());
    let verifier = Arc::new(verifier::DeferToAttestation::new(provider.clone()));
    let mut client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_auth_cert(vec![identity.certificate()], identity.private_key())
        .map_err(tls)?;
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.certificate()], identity.private_key())
        .map_err(tls)?;
    client.resumption = rustls::client::Resumption::disabled();
    server.send_tls13_tickets = 0;
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok((Arc::new(client), Arc::new(server)))
}

impl ChannelContext {
    pub fn new(
        node_id: String,
        identity: Arc<TlsIdentity>,
        attester: Arc<dyn Attester>,
        trust: PeerTrust,
    ) -> Result<Self, ChannelError> {
        let (client, server) = tls_configs(&identity)?;
        Ok(ChannelContext {
            node_id,
            identity,
            attester,
            trust,
            client,
            server,
            handshake_timeout: Duration::from_secs(10),
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            lifetime: Duration::from_secs(3600),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// What this node trusts in its peers.
    pub fn trust(&self) -> &PeerTrust {
        &self.trust
    }

    /// Checks a further document from `peer`, bound to a channel by `nonce` (its exporter
    /// value), with the same rules as the channel's own evidence. Returns the public key
    /// the document binds.
    pub fn check_peer_document(
        &self,
        peer: &str,
        document: &[u8],
        nonce: &[u8],
    ) -> Result<Option<Vec<u8>>, ChannelError> {
        evidence::check_peer_document(&self.trust, peer, document, nonce, SystemTime::now())
    }

    /// Fresh evidence of this node bound to `nonce`, carrying `public_key`.
    pub async fn attest(&self, nonce: &[u8], public_key: Vec<u8>) -> Result<Vec<u8>, ChannelError> {
        let request = AttestationRequest {
            user_data: Some(self.trust.manifest_hash.to_vec()),
            nonce: Some(nonce.to_vec()),
            public_key: Some(public_key),
        };
        let attester = self.attester.clone();
        tokio::task::spawn_blocking(move || attester.attest(&request))
            .await
            .map_err(|e| ChannelError::Io(std::io::Error::other(e.to_string())))?
            .map_err(ChannelError::Attester)
    }

    /// Opens a channel over `stream` to the node `peer_id`.
    pub async fn connect<S>(
        &self,
        stream: S,
        peer_id: &str,
    ) -> Result<AttestedChannel<tokio_rustls::client::TlsStream<S>>, ChannelError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        tokio::time::timeout(self.handshake_timeout, async {
            let name = ServerName::try_from(TLS_SERVER_NAME)
                .map_err(|e| ChannelError::Tls(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(self.client.clone())
                .connect(name, stream)
                .await?;
            let (exporter, spki) = {
                let (_, conn) = tls.get_ref();
                (exporter(conn)?, peer_spki(conn.peer_certificates())?)
            };
            self.dial_exchange(tls, &exporter, &spki, peer_id).await
        })
        .await
        .map_err(|_| ChannelError::Timeout)?
    }

    /// Accepts a channel from whichever node of the manifest is on the other end.
    ///
    /// Until the dialler's hello has been checked, this costs one TLS handshake and the
    /// verification of one bounded piece of evidence, within [`Self::hello_timeout`]; this
    /// node's attester is asked for evidence only for a dialler it accepted.
    pub async fn accept<S>(
        &self,
        stream: S,
    ) -> Result<AttestedChannel<tokio_rustls::server::TlsStream<S>>, ChannelError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        tokio::time::timeout(self.handshake_timeout, async {
            let (mut tls, exporter, spki, theirs) =
                tokio::time::timeout(self.hello_timeout, async {
                    let mut tls = tokio_rustls::TlsAcceptor::from(self.server.clone())
                        .accept(stream)
                        .await?;
                    let (exporter, spki) = {
                        let (_, conn) = tls.get_ref();
                        (exporter(conn)?, peer_spki(conn.peer_certificates())?)
                    };
                    let theirs = read_frame(&mut tls, MAX_HELLO_LEN)
                        .await?
                        .ok_or(ChannelError::Closed)?;
                    Ok::<_, ChannelError>((tls, exporter, spki, theirs))
                })
                .await
                .map_err(|_| ChannelError::Timeout)??;
            let verdict = self.judge(&theirs, &exporter, &spki, None);
            let sent = write_frame(&mut tls, &encode_verdict(&verdict), MAX_VERDICT_LEN).await;
            let peer = verdict?;
            sent?;
            // The dialler proved itself: now, and only now, this node attests.
            let (hello, own_expiry) = self.own_hello(&exporter).await?;
            write_frame(&mut tls, &hello, MAX_HELLO_LEN).await?;
            let answer = read_frame(&mut tls, MAX_VERDICT_LEN)
                .await?
                .ok_or(ChannelError::Closed)?;
            decode_verdict(&answer)?.map_err(ChannelError::PeerRefused)?;
            Ok(self.channel(tls, peer, exporter, own_expiry))
        })
        .await
        .map_err(|_| ChannelError::Timeout)?
    }

    /// This node's encoded hello for the connection with `exporter`, and when the evidence
    /// in it expires.
    async fn own_hello(
        &self,
        exporter: &[u8],
    ) -> Result<(Vec<u8>, Option<Duration>), ChannelError> {
        let document = self
            .attest(exporter, self.identity.spki_der().to_vec())
            .await?;
        // This node's own attester made it: read, not verified (the peer verifies it).
        let expires = attestation::Evidence::parse(&document)
            .ok()
            .and_then(|evidence| evidence.expires());
        let hello = Hello {
            node_id: self.node_id.clone(),
            document,
        }
        .encode()?;
        Ok((hello, expires))
    }

    /// The verdict on a peer's encoded hello, logged.
    fn judge(
        &self,
        theirs: &[u8],
        exporter: &[u8; 32],
        peer_spki: &[u8],
        expected_peer: Option<&str>,
    ) -> Result<VerifiedPeer, ChannelError> {
        let verdict = Hello::decode(theirs)
            .map_err(ChannelError::from)
            .and_then(|hello| {
                check_hello(
                    &self.trust,
                    &self.node_id,
                    expected_peer,
                    &hello,
                    exporter,
                    peer_spki,
                    SystemTime::now(),
                )
            });
        match &verdict {
            Ok(peer) => {
                tracing::info!(peer = %peer.node_id, provider = %peer.provider, module = %peer.module_id, pcr0 = %peer.pcr0, "peer attested")
            }
            Err(e) => tracing::warn!(error = %e, "peer refused"),
        }
        verdict
    }

    /// The dialling side: our hello, the acceptor's verdict on it, then (if accepted) its
    /// hello and our verdict on that. Each side learns why a channel failed.
    async fn dial_exchange<S>(
        &self,
        mut tls: S,
        exporter: &[u8; 32],
        peer_spki: &[u8],
        expected_peer: &str,
    ) -> Result<AttestedChannel<S>, ChannelError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (hello, own_expiry) = self.own_hello(exporter).await?;
        write_frame(&mut tls, &hello, MAX_HELLO_LEN).await?;
        let answer = read_frame(&mut tls, MAX_VERDICT_LEN)
            .await?
            .ok_or(ChannelError::Closed)?;
        decode_verdict(&answer)?.map_err(ChannelError::PeerRefused)?;
        let theirs = read_frame(&mut tls, MAX_HELLO_LEN)
            .await?
            .ok_or(ChannelError::Closed)?;
        let verdict = self.judge(&theirs, exporter, peer_spki, Some(expected_peer));
        // Our refusal is sent before it is returned, so the acceptor learns the reason.
        let sent = write_frame(&mut tls, &encode_verdict(&verdict), MAX_VERDICT_LEN).await;
        let peer = verdict?;
        sent?;
        Ok(self.channel(tls, peer, *exporter, own_expiry))
    }

    fn channel<S>(
        &self,
        stream: S,
        peer: VerifiedPeer,
        exporter: [u8; 32],
        own_expiry: Option<Duration>,
    ) -> AttestedChannel<S> {
        let lifetime =
            effective_lifetime(self.lifetime, [own_expiry, peer.expires], SystemTime::now());
        AttestedChannel {
            stream,
            peer,
            exporter,
            established: Instant::now(),
            lifetime,
        }
    }
}

fn exporter<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; 32], ChannelError> {
    conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
        .map_err(|e| ChannelError::Tls(e.to_string()))
}

fn peer_spki(
    certs: Option<&[rustls::pki_types::CertificateDer<'_>]>,
) -> Result<Vec<u8>, ChannelError> {
    certs
        .and_then(|c| c.first())
        .and_then(|cert| identity::spki_of(cert))
        .ok_or(ChannelError::Tls(
            "peer presented no usable certificate".to_owned(),
        ))
}

impl From<tokio::time::error::Elapsed> for ChannelError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        ChannelError::Timeout
    }
}

/// A channel to a verified peer. Messages are length-prefixed frames.
#[derive(Debug)]
pub struct AttestedChannel<S> {
    stream: S,
    peer: VerifiedPeer,
    exporter: [u8; 32],
    established: Instant,
    lifetime: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AttestedChannel<S> {
    pub fn peer(&self) -> &VerifiedPeer {
        &self.peer
    }

    /// This connection's TLS exporter value: the nonce of any further evidence that must
    /// be bound to this connection (a key-release request, for one).
    pub fn exporter(&self) -> &[u8; 32] {
        &self.exporter
    }

    /// How long ago the peer was attested.
    pub fn age(&self) -> Duration {
        self.established.elapsed()
    }

    /// The age at which this channel stops carrying traffic: the configured lifetime, or
    /// less when the evidence of either end expires sooner.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn check_lifetime(&self) -> Result<(), ChannelError> {
        if self.age() > self.lifetime {
            return Err(ChannelError::Expired(self.lifetime));
        }
        Ok(())
    }

    pub async fn send(&mut self, message: &[u8]) -> Result<(), ChannelError> {
        self.check_lifetime()?;
        write_frame(&mut self.stream, message, MAX_MESSAGE_LEN).await?;
        Ok(())
    }

    /// The next message, or `None` when the peer closed the channel.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, ChannelError> {
        self.check_lifetime()?;
        Ok(read_frame(&mut self.stream, MAX_MESSAGE_LEN).await?)
    }

    /// The underlying stream, for closing it in place.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    pub async fn close(mut self) -> Result<(), ChannelError> {
        tokio::io::AsyncWriteExt::shutdown(&mut self.stream).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
