//! The node runtime: the thin asynchronous shell around the I/O-free core
//! ([`crate::core`]). It turns socket and timer events into the core's inputs, with the
//! current time from its [`Clock`], and does what the core decides: send, store, answer,
//! start a session, wait, stop.
//!
//! Listeners (through the parent, over vsock or its simulator stand-in; a node without a
//! parent listens on TCP itself, [`direct`]):
//! - peer port: attested channels from other nodes (escrow, key release, liveness,
//!   threshold sessions) — `inbound`;
//! - client port: operators submit manifests, read status, create keys and sign —
//!   `operator`;
//! - status port: one JSON line for the parent's health endpoint.
//!
//! Lifecycle ([`crate::core::phase`]): boot, then the manifest stored at the parent (or
//! wait for operators to submit one), then provisioning (`boot`: recover the data key
//! from a peer, or on a first start create one and escrow it with every peer), then
//! reading the sealed key shares, then running. What the node sends its peers:
//! `outbound` (requests that need an answer) and `links` (one-way messages).
//! Threshold keys: `keys`. The world (clock, sockets, blob store) is behind the small
//! traits of [`env`](mod@env) and [`crate::sealed::BlobStore`].

mod audit;
mod boot;
pub mod direct;
pub mod env;
mod governance;
mod inbound;
mod keys;
mod links;
mod operator;
mod outbound;

pub use audit::AuditFailure;
pub use direct::{DirectListen, DirectNetwork};
pub use env::{Clock, Network, SystemClock};
#[cfg(any(test, feature = "sim"))]
pub use env::{ManualClock, MemoryNetwork};
pub use governance::GovernanceError;
pub use keys::{CreatedKey, OperationError, PrimeSource, SignedDigest, ThresholdConfig};
pub use operator::OperatorError;
pub use outbound::PeerError;

use crate::blobs::ParentBlobs;
use crate::channel::{ChannelContext, ChannelError, PeerTrust, TlsIdentity};
use crate::core::phase::{Phase, PhaseError};
use crate::core::provisioning::EscrowPlan;
use crate::operator_api::{NodeStatus, PeerStatus};
use crate::sealed::{BlobStore, DataKey, SealedStore};
use attestation::Attester;
use attestation::Verifier;
use manifest::AcceptedManifest;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;
use transport::{Backend, VsockAddr};

/// Blob holding the signed manifest envelope (public, self-authenticating). The parent
/// keeps it in plain so that a restarted node knows its peers before it has its data key
/// back; it is trusted only provisionally until the sealed copy confirms it.
const MANIFEST_BLOB: &str = "manifest";
/// Sealed copy of the manifest the node last accepted: what the plain copy is checked
/// against once the sealed store is open.
const SEALED_MANIFEST_BLOB: &str = "accepted-manifest";
/// Sealed blob describing this node's state.
const NODE_INFO_BLOB: &str = "node-info";

/// Pause between checks of the presignature pools this node fills.
const PRESIGN_REFILL_INTERVAL: Duration = Duration::from_secs(1);

/// What a node's blob store must be: the parent's over vsock in production (a directory
/// of its own without a parent), an in-memory one in tests.
pub trait Blobs: BlobStore + Clone + std::fmt::Debug + 'static {}
impl<T: BlobStore + Clone + std::fmt::Debug + 'static> Blobs for T {}

/// How a node runs.
#[derive(Debug)]
pub struct NodeConfig {
    pub node_id: String,
    pub cid: u32,
    /// Roots trusted for peers' attestation documents.
    pub verifier: Verifier,
    pub allow_debug: bool,
    pub max_evidence_age: Duration,
    pub channel_lifetime: Duration,
    /// Pause between rounds of asking peers for the data key.
    pub retry_interval: Duration,
    /// Pause between liveness checks of every peer.
    pub peer_check_interval: Duration,
    pub threshold: ThresholdConfig,
}

/// The world a node runs in: its blob store, its sockets and its clock.
#[derive(Debug)]
pub struct Environment<B> {
    pub blobs: B,
    pub net: Arc<dyn Network>,
    pub clock: Arc<dyn Clock>,
}

impl Environment<ParentBlobs> {
    /// Production (and the simulator's processes): everything through the parent, over
    /// `backend`, on tokio's clock.
    pub fn parent(backend: Backend) -> Self {
        Environment {
            blobs: ParentBlobs::new(backend.clone()),
            net: Arc::new(backend),
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("phase: {0}")]
    Phase(#[from] PhaseError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: VsockAddr,
        source: std::io::Error,
    },
    #[error("TLS identity: {0}")]
    Identity(#[source] crate::channel::identity::IdentityError),
    #[error("TLS identity: {0}")]
    ClientTls(#[source] ChannelError),
    #[error("threshold engine: {0}")]
    NodeId(#[source] ids::IdError),
    #[error("threshold engine: safe prime pool: {0}")]
    Primes(#[source] mpc::ecdsa::PrimePoolError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("{reason}")]
    Fatal { reason: String },
}

/// Why a manifest could not be made the one channels are checked against.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    #[error("{0}")]
    Measurements(#[source] manifest::ManifestError),
    #[error(transparent)]
    NotListed(#[from] NotListed),
    #[error("{0}")]
    Channel(#[source] ChannelError),
    #[error(transparent)]
    Phase(#[from] PhaseError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest version {version} does not list this node ({node})")]
pub struct NotListed {
    pub version: u64,
    pub node: String,
}

/// What a manifest installs: the manifest, and the channel checks made from it. One
/// allocation per installed manifest, so that "the manifest a request was checked under
/// is still the one installed" is a pointer comparison.
pub(crate) struct Trust {
    manifest: AcceptedManifest,
    channels: ChannelContext,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("version", &self.manifest.version())
            .field("hash", &self.manifest.hash().to_string())
            .finish_non_exhaustive()
    }
}

impl Trust {
    /// The manifest's hash and every node id it lists, as sessions name them.
    fn members(&self) -> Result<([u8; 32], Vec<ids::NodeId>), ids::IdError> {
        let members = self
            .manifest
            .manifest()
            .nodes()
            .iter()
            .map(|n| ids::NodeId::new(n.id()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((*self.manifest.hash().as_bytes(), members))
    }

    /// Every node of the manifest but `me`.
    fn peers(&self, me: &str) -> Vec<String> {
        self.manifest
            .manifest()
            .nodes()
            .iter()
            .map(|n| n.id().to_owned())
            .filter(|id| id != me)
            .collect()
    }
}

/// What a running node holds: its open sealed store, read once at start, and its data key
/// while some peer does not yet hold it in escrow.
pub(crate) struct Sealed<B> {
    store: AsyncMutex<SealedStore<B>>,
    /// When the sealed state was created, read back from it.
    created_ms: u64,
    escrow: Mutex<Escrow>,
}

impl<B> std::fmt::Debug for Sealed<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

/// The escrow this node still owes its peers.
#[derive(Default)]
struct Escrow {
    plan: EscrowPlan,
    /// Kept only until every peer holds it; then only the sealed store has it.
    key: Option<Arc<DataKey>>,
}

type NodePhase<B> = Phase<Arc<Trust>, Arc<Sealed<B>>>;

struct State<B> {
    phase: NodePhase<B>,
    /// What this node last learned about each peer.
    peers: BTreeMap<String, PeerStatus>,
}

/// A running node.
pub struct Node<B: Blobs = ParentBlobs> {
    config: NodeConfig,
    /// `config.node_id`, checked.
    me: mpc::NodeId,
    keys: keys::Keys,
    /// Policy, ledger and the requests held.
    books: governance::Books,
    /// The audit log, once restored.
    audit: audit::AuditBook,
    links: Mutex<BTreeMap<mpc::NodeId, links::LinkSender>>,
    attester: Arc<dyn Attester>,
    identity: Arc<TlsIdentity>,
    client_tls: Arc<rustls::ServerConfig>,
    blobs: B,
    net: Arc<dyn Network>,
    clock: Arc<dyn Clock>,
    state: Mutex<State<B>>,
    manifest_arrived: tokio::sync::Notify,
    /// Counts installed manifests; channels attested under an earlier one close when it
    /// changes.
    manifest_updates: tokio::sync::watch::Sender<u64>,
    /// Held while the manifest is checked or replaced, so that one change completes
    /// (parent copy, sealed copy, install) before the next starts.
    manifest_change: AsyncMutex<()>,
}

impl<B: Blobs> std::fmt::Debug for Node<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node_id", &self.config.node_id)
            .field("phase", &self.state().phase.name())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave the state half-updated in a way that
    // matters more than refusing to run: recover the guard.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Blobs> Node<B> {
    pub fn new(
        mut config: NodeConfig,
        attester: Arc<dyn Attester>,
        env: Environment<B>,
    ) -> Result<Arc<Self>, NodeError> {
        let identity = TlsIdentity::generate(&config.node_id, std::time::SystemTime::now())
            .map_err(NodeError::Identity)?;
        let me = mpc::NodeId::new(config.node_id.as_str()).map_err(NodeError::NodeId)?;
        // Safe prime search starts now, from boot.
        let threshold = std::mem::take(&mut config.threshold);
        let keys = keys::Keys::new(threshold).map_err(NodeError::Primes)?;
        let client_tls =
            crate::channel::client_port::server_config(&identity).map_err(NodeError::ClientTls)?;
        Ok(Arc::new(Node {
            client_tls,
            keys,
            books: governance::Books::default(),
            audit: audit::AuditBook::default(),
            me,
            links: Mutex::new(BTreeMap::new()),
            blobs: env.blobs,
            net: env.net,
            clock: env.clock,
            config,
            attester,
            identity: Arc::new(identity),
            state: Mutex::new(State {
                phase: Phase::Boot,
                peers: BTreeMap::new(),
            }),
            manifest_arrived: tokio::sync::Notify::new(),
            manifest_updates: tokio::sync::watch::Sender::new(0),
            manifest_change: AsyncMutex::new(()),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State<B>> {
        lock(&self.state)
    }

    /// The core's `now`.
    fn now(&self) -> std::time::Instant {
        self.clock.now().into_std()
    }

    /// The phase as it is now (its data is shared, not copied).
    fn phase(&self) -> NodePhase<B> {
        self.state().phase.clone()
    }

    /// The trust installed from the current manifest, if any.
    fn trust(&self) -> Option<Arc<Trust>> {
        self.state().phase.trust().cloned()
    }

    /// The sealed state, while running.
    fn sealed(&self) -> Option<Arc<Sealed<B>>> {
        self.state().phase.store().cloned()
    }

    fn advance(&self, next: NodePhase<B>) -> Result<(), NodeError> {
        let mut state = self.state();
        let from = state.phase.name();
        state.phase.advance(next)?;
        tracing::info!(from = %from, to = %state.phase, "phase change");
        Ok(())
    }

    fn fail(&self, reason: String) -> NodeError {
        tracing::error!(%reason, "node failed");
        let mut state = self.state();
        let failed = state.phase.failed(reason.clone());
        let _ = state.phase.advance(failed);
        NodeError::Fatal { reason }
    }

    fn wait(&self, reason: String) -> Result<(), NodeError> {
        tracing::warn!(%reason, "waiting for provisioning");
        let mut state = self.state();
        let next = state.phase.waiting(reason)?;
        state.phase.advance(next)?;
        Ok(())
    }

    pub fn status(&self) -> NodeStatus {
        // Read before the state lock: no other lock is ever taken while it is held.
        let keys = self.keys.statuses();
        let presignatures = self.keys.presignatures_ready();
        let (policy_version, policy_pending) = self.policy_status();
        let (phase, peers) = {
            let state = self.state();
            (state.phase.clone(), state.peers.clone())
        };
        let manifest = phase.trust().map(|t| &t.manifest);
        let sealed = phase.store();
        NodeStatus {
            node_id: self.config.node_id.clone(),
            phase: phase.name().to_owned(),
            reason: phase.reason().map(str::to_owned),
            manifest_version: manifest.map(|m| m.version()),
            manifest_hash: manifest.map(|m| m.hash().to_string()),
            state_created_ms: sealed.map(|s| s.created_ms),
            peers,
            escrow_pending: sealed
                .map(|s| lock(&s.escrow).plan.pending().iter().cloned().collect())
                .unwrap_or_default(),
            key_count: keys.len(),
            keys,
            presignatures,
            policy_version,
            policy_pending,
        }
    }

    /// Runs the node until `shutdown` completes or a fatal error occurs.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let servers = self.clone().listen().await?;
        tokio::pin!(shutdown);
        let result = tokio::select! {
            r = self.clone().lifecycle() => r,
            () = &mut shutdown => Ok(()),
        };
        if let Err(e) = &result {
            // A failed node stays up to say why (status, health), and refuses all work.
            tracing::error!(error = %e, "node stopped; serving status only until shut down");
            if !self.state().phase.is_failed() {
                let _ = self.fail(e.to_string());
            }
            shutdown.await;
        }
        tracing::info!("shutting down");
        servers.abort();
        result
    }

    async fn lifecycle(self: Arc<Self>) -> Result<(), NodeError> {
        match self.load_stored_manifest_when_reachable().await {
            Some(accepted) => self.install(accepted)?,
            None => self.advance(Phase::WaitingForManifest)?,
        }
        while self.trust().is_none() {
            self.manifest_arrived.notified().await;
        }
        let provisioned = self.provision().await?;
        self.confirm_and_run(provisioned).await?;
        let refill = tokio::spawn({
            let node = self.clone();
            async move {
                loop {
                    tokio::time::sleep(PRESIGN_REFILL_INTERVAL).await;
                    node.refill_presignatures().await;
                }
            }
        });
        let _refill = AbortOnDrop(refill);
        loop {
            self.retry_escrows().await;
            self.check_peers().await;
            tokio::time::sleep(self.config.peer_check_interval).await;
        }
    }

    fn lists_this_node(&self, accepted: &AcceptedManifest) -> Result<(), NotListed> {
        match accepted.node(&self.config.node_id) {
            Some(_) => Ok(()),
            None => Err(NotListed {
                version: accepted.version(),
                node: self.config.node_id.clone(),
            }),
        }
    }

    /// Makes `accepted` the manifest channels are checked against: a node without one
    /// moves on to provisioning; a waiting or running node takes it in place of the one
    /// it had. Peers' evidence must chain to the roots this node trusts, narrowed to the
    /// one the manifest pins for each provider it names (`"roots"`).
    fn install(&self, accepted: AcceptedManifest) -> Result<(), InstallError> {
        let mut peers = BTreeMap::new();
        for node in accepted.manifest().nodes() {
            let sets = node
                .measurement_sets()
                .map_err(InstallError::Measurements)?;
            peers.insert(node.id().to_owned(), sets);
        }
        self.lists_this_node(&accepted)?;
        let trust = PeerTrust {
            manifest_hash: *accepted.hash().as_bytes(),
            peers,
            verifier: self
                .config
                .verifier
                .restricted_to(accepted.manifest().roots()),
            max_evidence_age: self.config.max_evidence_age,
            allow_debug: self.config.allow_debug,
        };
        let mut channels = ChannelContext::new(
            self.config.node_id.clone(),
            self.identity.clone(),
            self.attester.clone(),
            trust,
        )
        .map_err(InstallError::Channel)?;
        channels.lifetime = self.config.channel_lifetime;
        let (version, hash) = (accepted.version(), accepted.hash().to_string());
        let trust = Arc::new(Trust {
            manifest: accepted,
            channels,
        });
        {
            let mut state = self.state();
            match state.phase {
                Phase::Boot | Phase::WaitingForManifest => {
                    let from = state.phase.name();
                    state.phase.advance(Phase::WaitingForProvisioning {
                        reason: "asking peers for this node's key".to_owned(),
                        trust,
                    })?;
                    tracing::info!(from = %from, to = %state.phase, "phase change");
                }
                _ => {
                    state.phase.replace_trust(trust)?;
                }
            }
        }
        tracing::info!(version, hash = %hash, "manifest installed");
        // Channels attested under the previous manifest stop carrying traffic: accepted
        // connections close (they watch this counter) and outbound links are dropped,
        // to be dialled again under the new trust.
        self.manifest_updates
            .send_modify(|n| *n = n.wrapping_add(1));
        lock(&self.links).clear();
        self.manifest_arrived.notify_one();
        Ok(())
    }

    /// Every peer of the current manifest.
    fn peer_ids(&self) -> Vec<String> {
        self.trust()
            .map(|t| t.peers(&self.config.node_id))
            .unwrap_or_default()
    }
}

/// Aborts a background task when its owner ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The escrow blob a node keeps for `peer`.
fn escrow_blob(peer: &str) -> String {
    format!("escrow-{peer}")
}

/// A peer's status as its last attested check left it.
fn peer_status(outcome: Result<&str, &PeerError>, checked_ms: u64) -> PeerStatus {
    match outcome {
        Ok(pcr0) => PeerStatus {
            attested: true,
            pcr0: Some(pcr0.to_owned()),
            error: None,
            checked_ms,
        },
        Err(error) => PeerStatus {
            attested: false,
            pcr0: None,
            error: Some(error.to_string()),
            checked_ms,
        },
    }
}
