//! The node runtime: the thin asynchronous shell around the I/O-free pieces ([`Phase`],
//! [`crate::provisioning`], [`crate::channel`] checks, manifest acceptance).
//!
//! Listeners (all through the parent, over vsock or its simulator stand-in):
//! - peer port: attested channels from other nodes (escrow, key release, liveness,
//!   threshold sessions);
//! - client port: operators submit manifests, read status, create keys and sign;
//! - status port: one JSON line for the parent's health endpoint.
//!
//! Lifecycle: boot, then the manifest stored at the parent (or wait for operators to
//! submit one), then provisioning (recover the data key from a peer, or on a first start
//! create one and escrow it with every peer), then reading the sealed key shares, then
//! running. Threshold keys: [`keys`]; outbound links for protocol messages: [`links`].

mod keys;
mod links;

pub use keys::{CreatedKey, PrimeSource, SignedDigest, ThresholdConfig};

use crate::blobs::ParentBlobs;
use crate::channel::{ChannelContext, PeerTrust, TlsIdentity};
use crate::core::phase::{Phase, PhaseError};
use crate::core::provisioning::{self as rules, Decision, EscrowVerdict};
use crate::hpke::{self, HpkePublicKey};
use crate::operator_api::{
    self, HealthLine, MAX_REQUEST_LEN, MAX_RESPONSE_LEN, NodeStatus, OperatorRequest, PeerStatus,
};
use crate::provisioning::{self, PeerAnswer, PeerMessage, release_info};
use crate::sealed::{BlobStore, DataKey, INDEX_NAME, SealError, SealedStore};
use attestation::Verifier;
use attestation::nsm::Nsm;
use manifest::{AcceptedManifest, SignedManifest};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex as AsyncMutex;
use transport::frame::{read_frame, write_frame};
use transport::{Backend, PARENT_CID, VsockAddr, ports};

/// Blob holding the signed manifest envelope (public, self-authenticating). The parent
/// keeps it in plain so that a restarted node knows its peers before it has its data key
/// back; it is trusted only provisionally until the sealed copy confirms it.
const MANIFEST_BLOB: &str = "manifest";
/// Sealed copy of the manifest the node last accepted: what the plain copy is checked
/// against once the sealed store is open.
const SEALED_MANIFEST_BLOB: &str = "accepted-manifest";
/// Sealed blob describing this node's state.
const NODE_INFO_BLOB: &str = "node-info";

/// Concurrent connections the node serves on each port; more are closed at once. The
/// parent decides who connects, so nothing it sends may grow without bound.
const MAX_PEER_CONNECTIONS: usize = 64;
const MAX_CLIENT_CONNECTIONS: usize = 32;
const MAX_STATUS_CONNECTIONS: usize = 16;
/// A peer channel with no request for this long is closed.
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a request to a peer may take, connection and attestation included.
const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between checks of the presignature pools this node fills.
const PRESIGN_REFILL_INTERVAL: Duration = Duration::from_secs(1);

/// Aborts a background task when its owner ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a request to a peer under [`PEER_REQUEST_TIMEOUT`].
async fn bounded<T>(
    what: &str,
    request: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(PEER_REQUEST_TIMEOUT, request)
        .await
        .unwrap_or_else(|_| Err(format!("{what} timed out")))
}

fn escrow_blob(peer: &str) -> String {
    format!("escrow-{peer}")
}

/// How a node runs.
#[derive(Debug)]
pub struct NodeConfig {
    pub node_id: String,
    pub cid: u32,
    pub backend: Backend,
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
    Identity(String),
    #[error("threshold engine: {0}")]
    Threshold(String),
    #[error("{0}")]
    Fatal(String),
}

struct State {
    phase: Phase,
    manifest: Option<Arc<AcceptedManifest>>,
    channels: Option<Arc<ChannelContext>>,
    /// The sealed store, published only together with a manifest checked against its
    /// sealed copy ([`Node::confirm_manifest`]). While it is `None` the manifest came from
    /// the parent (or an operator) and is only provisional: operators may replace it with
    /// any manifest they approve, and no escrow is stored or released under it.
    store: Option<Arc<AsyncMutex<SealedStore<ParentBlobs>>>>,
    peers: BTreeMap<String, PeerStatus>,
    state_created_ms: Option<u64>,
    /// Peers that have not yet confirmed holding this node's escrowed key.
    escrow_pending: BTreeSet<String>,
    /// Kept only until every peer holds it; then only the sealed store has it.
    escrow_key: Option<Arc<DataKey>>,
}

/// A running node.
pub struct Node {
    config: NodeConfig,
    keys: keys::Keys,
    links: Mutex<BTreeMap<mpc::NodeId, links::LinkSender>>,
    nsm: Arc<dyn Nsm>,
    identity: Arc<TlsIdentity>,
    client_tls: Arc<rustls::ServerConfig>,
    blobs: ParentBlobs,
    state: Mutex<State>,
    manifest_arrived: tokio::sync::Notify,
    /// Counts installed manifests; channels attested under an earlier one close when it
    /// changes.
    manifest_updates: tokio::sync::watch::Sender<u64>,
    /// Held while the manifest is checked or replaced, so that one change completes
    /// (parent copy, sealed copy, install) before the next starts.
    manifest_change: AsyncMutex<()>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node_id", &self.config.node_id)
            .field("phase", &self.state().phase)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Node {
    pub fn new(mut config: NodeConfig, nsm: Arc<dyn Nsm>) -> Result<Arc<Self>, NodeError> {
        let identity = TlsIdentity::generate(&config.node_id, SystemTime::now())
            .map_err(|e| NodeError::Identity(e.to_string()))?;
        mpc::NodeId::new(config.node_id.as_str())
            .map_err(|e| NodeError::Threshold(e.to_string()))?;
        // Safe prime search starts now, from boot.
        let threshold = std::mem::take(&mut config.threshold);
        let keys = keys::Keys::new(threshold).map_err(NodeError::Threshold)?;
        let client_tls = crate::channel::client_port::server_config(&identity)
            .map_err(|e| NodeError::Identity(e.to_string()))?;
        Ok(Arc::new(Node {
            client_tls,
            keys,
            links: Mutex::new(BTreeMap::new()),
            blobs: ParentBlobs::new(config.backend.clone()),
            config,
            nsm,
            identity: Arc::new(identity),
            state: Mutex::new(State {
                phase: Phase::Boot,
                manifest: None,
                channels: None,
                store: None,
                peers: BTreeMap::new(),
                state_created_ms: None,
                escrow_pending: BTreeSet::new(),
                escrow_key: None,
            }),
            manifest_arrived: tokio::sync::Notify::new(),
            manifest_updates: tokio::sync::watch::Sender::new(0),
            manifest_change: AsyncMutex::new(()),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way that
        // matters more than refusing to run: recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn advance(&self, next: Phase) -> Result<(), NodeError> {
        let mut state = self.state();
        let from = state.phase.clone();
        state.phase.advance(next)?;
        tracing::info!(from = %from, to = %state.phase, "phase change");
        Ok(())
    }

    fn fail(&self, reason: String) -> NodeError {
        tracing::error!(%reason, "node failed");
        let mut state = self.state();
        let _ = state.phase.advance(Phase::Failed {
            reason: reason.clone(),
            trust: None,
        });
        NodeError::Fatal(reason)
    }

    pub fn status(&self) -> NodeStatus {
        // Read before the state lock: no other lock is ever taken while it is held.
        let keys: Vec<_> = self
            .keys
            .shares()
            .iter()
            .map(|s| operator_api::KeyStatus {
                key_id: s.key_id().to_string(),
                // Empty only if the share's key were invalid: no client confirms it then.
                public_key: s
                    .public_key()
                    .map(|k| hex::encode(k.to_sec1_compressed()))
                    .unwrap_or_default(),
                parties: s.group().nodes().iter().map(|n| n.to_string()).collect(),
                threshold: s.threshold().get(),
            })
            .collect();
        let presignatures = self.keys.presignatures_ready();
        let state = self.state();
        NodeStatus {
            node_id: self.config.node_id.clone(),
            phase: state.phase.name().to_owned(),
            reason: state.phase.reason().map(str::to_owned),
            manifest_version: state.manifest.as_ref().map(|m| m.version()),
            manifest_hash: state.manifest.as_ref().map(|m| m.hash().to_string()),
            state_created_ms: state.state_created_ms,
            peers: state.peers.clone(),
            escrow_pending: state.escrow_pending.iter().cloned().collect(),
            key_count: keys.len(),
            keys,
            presignatures,
        }
    }

    fn has_failed(&self) -> bool {
        matches!(self.state().phase, Phase::Failed { .. })
    }

    /// Runs the node until `shutdown` completes or a fatal error occurs.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let listen = |port| VsockAddr::new(self.config.cid, port);
        let bind = |addr: VsockAddr| {
            let backend = self.config.backend.clone();
            async move {
                backend
                    .bind(addr)
                    .await
                    .map_err(|source| NodeError::Listen { addr, source })
            }
        };
        let status = bind(listen(ports::NODE_STATUS)).await?;
        let client = bind(listen(ports::NODE_CLIENT)).await?;
        let peer = bind(listen(ports::NODE_PEER)).await?;
        let servers = tokio::spawn({
            let node = self.clone();
            async move {
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
            }
        });
        tokio::pin!(shutdown);
        let result = tokio::select! {
            r = self.clone().lifecycle() => r,
            () = &mut shutdown => Ok(()),
        };
        if let Err(e) = &result {
            // A failed node stays up to say why (status, health), and refuses all work.
            tracing::error!(error = %e, "node stopped; serving status only until shut down");
            if !self.has_failed() {
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
            Ok(Some(accepted)) => {
                self.install_manifest(accepted)?;
                self.advance(Phase::WaitingForProvisioning {
                    reason: "asking peers for this node's key".to_owned(),
                    trust: (),
                })?;
            }
            Ok(None) => self.advance(Phase::WaitingForManifest)?,
            Err(e) => return Err(self.fail(e)),
        }
        while self.state().manifest.is_none() {
            self.manifest_arrived.notified().await;
        }
        let provisioned = self.provision().await?;
        self.confirm_manifest(provisioned).await?;
        if let Err(e) = self.load_keys().await {
            return Err(self.fail(format!("sealed key shares refused: {e}")));
        }
        self.advance(Phase::Running {
            trust: (),
            store: (),
        })?;
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

    /// The manifest stored at the parent, accepted provisionally: the sealed copy
    /// confirms or overrides it once the data key is back ([`Self::confirm_manifest`]). A
    /// parent that is not reachable yet (started after the node, or restarting) is
    /// waited for; a stored manifest that is invalid, or does not list this node, is
    /// ignored (logged), and the node waits for operators to submit one.
    async fn load_stored_manifest_when_reachable(
        &self,
    ) -> Result<Option<AcceptedManifest>, String> {
        let stored = loop {
            match self.blobs.get(MANIFEST_BLOB).await {
                Ok(stored) => break stored,
                Err(e) => {
                    tracing::warn!(error = %e, "parent's blob store not reachable yet; retrying");
                    tokio::time::sleep(self.config.retry_interval).await;
                }
            }
        };
        let Some(bytes) = stored else {
            return Ok(None);
        };
        let accepted = SignedManifest::parse(&bytes)
            .map_err(|e| format!("stored manifest is invalid: {e}"))
            .and_then(|signed| {
                manifest::accept(None, signed)
                    .map_err(|e| format!("stored manifest is not approved: {e}"))
            })
            .and_then(|accepted| self.lists_this_node(&accepted).map(|()| accepted));
        match accepted {
            Ok(accepted) => Ok(Some(accepted)),
            Err(reason) => {
                tracing::warn!(%reason, "manifest stored at the parent ignored; waiting for operators to submit one");
                Ok(None)
            }
        }
    }

    fn lists_this_node(&self, accepted: &AcceptedManifest) -> Result<(), String> {
        match accepted.node(&self.config.node_id) {
            Some(_) => Ok(()),
            None => Err(format!(
                "manifest version {} does not list this node ({})",
                accepted.version(),
                self.config.node_id
            )),
        }
    }

    /// Once the sealed store is open: checks the manifest the node now has (the parent's
    /// plain copy, or one submitted meanwhile) against the sealed copy or, in a store that
    /// has none yet (a new one), against the manifest under which the peers were asked
    /// for the key. The same manifest or an approved successor is kept (and sealed); an
    /// older or unrelated one is replaced by that reference, which is also written back to
    /// the parent. Only then is the store published with the confirmed manifest, in one
    /// step, and the data key handed to the escrow loop for the confirmed manifest's peers:
    /// nothing reads, writes or sends an escrow under a provisional manifest, however long
    /// the parent stalls these reads.
    async fn confirm_manifest(&self, provisioned: Provisioned) -> Result<(), NodeError> {
        let Provisioned {
            mut store,
            basis,
            escrow,
        } = provisioned;
        let _change = self.manifest_change.lock().await;
        let Some(current) = self.state().manifest.clone() else {
            return Err(self.fail("no manifest after provisioning".to_owned()));
        };
        let sealed = match store.get(SEALED_MANIFEST_BLOB).await {
            Ok(None) => None,
            Ok(Some(bytes)) => Some(
                SignedManifest::parse(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|signed| manifest::accept(None, signed).map_err(|e| e.to_string()))
                    .map_err(|e| self.fail(format!("sealed manifest does not verify: {e}")))?,
            ),
            Err(e) => return Err(self.fail(format!("sealed manifest unreadable: {e}"))),
        };
        let is_sealed = sealed.is_some();
        let reference = sealed.unwrap_or_else(|| (*basis).clone());
        match rules::check_boot_manifest(&current, Some(&reference)) {
            rules::BootManifest::Same if is_sealed => {}
            rules::BootManifest::Same
            | rules::BootManifest::Unrecorded
            | rules::BootManifest::Successor => {
                store
                    .put(SEALED_MANIFEST_BLOB, current.envelope_bytes())
                    .await
                    .map_err(|e| self.fail(format!("sealing the manifest: {e}")))?;
                tracing::info!(version = current.version(), hash = %current.hash(), "manifest confirmed and sealed");
            }
            rules::BootManifest::Refused(reason) => {
                tracing::warn!(%reason, version = reference.version(), sealed = is_sealed,
                    "parent's manifest refused; running under the sealed one (in a new store: the one the peers were asked under)");
                if !is_sealed {
                    store
                        .put(SEALED_MANIFEST_BLOB, reference.envelope_bytes())
                        .await
                        .map_err(|e| self.fail(format!("sealing the manifest: {e}")))?;
                }
                if let Err(e) = self
                    .blobs
                    .put(MANIFEST_BLOB, reference.envelope_bytes().to_vec())
                    .await
                {
                    tracing::warn!(error = %e, "could not rewrite the parent's manifest copy");
                }
                self.install_manifest(reference)?;
            }
        }
        self.state().store = Some(Arc::new(AsyncMutex::new(store)));
        if let Some(key) = escrow {
            self.escrow_with_every_peer(key);
        }
        Ok(())
    }

    /// Makes `accepted` the manifest channels are checked against.
    fn install_manifest(&self, accepted: AcceptedManifest) -> Result<(), NodeError> {
        let mut peers = BTreeMap::new();
        for node in accepted.manifest().nodes() {
            let sets = node
                .measurement_sets()
                .map_err(|e| NodeError::Fatal(e.to_string()))?;
            peers.insert(node.id().to_owned(), sets);
        }
        if !peers.contains_key(&self.config.node_id) {
            return Err(NodeError::Fatal(format!(
                "manifest version {} does not list this node ({})",
                accepted.version(),
                self.config.node_id
            )));
        }
        let trust = PeerTrust {
            manifest_hash: *accepted.hash().as_bytes(),
            peers,
            verifier: self.config.verifier.clone(),
            max_evidence_age: self.config.max_evidence_age,
            allow_debug: self.config.allow_debug,
        };
        let mut channels = ChannelContext::new(
            self.config.node_id.clone(),
            self.identity.clone(),
            self.nsm.clone(),
            trust,
        )
        .map_err(|e| NodeError::Fatal(e.to_string()))?;
        channels.lifetime = self.config.channel_lifetime;
        tracing::info!(version = accepted.version(), hash = %accepted.hash(), "manifest installed");
        let mut state = self.state();
        state.manifest = Some(Arc::new(accepted));
        state.channels = Some(Arc::new(channels));
        drop(state);
        // Channels attested under the previous manifest stop carrying traffic: accepted
        // connections close (they watch this counter) and outbound links are dropped,
        // to be dialled again under the new trust.
        self.manifest_updates
            .send_modify(|n| *n = n.wrapping_add(1));
        self.links.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.manifest_arrived.notify_one();
        Ok(())
    }

    fn peer_ids(&self) -> Vec<String> {
        let state = self.state();
        state
            .manifest
            .as_ref()
            .map(|m| {
                m.manifest()
                    .nodes()
                    .iter()
                    .map(|n| n.id().to_owned())
                    .filter(|id| *id != self.config.node_id)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn channels(&self) -> Option<Arc<ChannelContext>> {
        self.state().channels.clone()
    }

    /// Asks peers for the data key until it is recovered or created, and returns the
    /// sealed store it opens (not yet published: see [`Self::confirm_manifest`]).
    async fn provision(&self) -> Result<Provisioned, NodeError> {
        loop {
            // The manifest whose peers are asked this round: the reference the manifest
            // is confirmed against when the store holds no sealed copy.
            let Some(basis) = self.state().manifest.clone() else {
                return Err(self.fail("provisioning without a manifest".to_owned()));
            };
            let names = match self.blobs.list("").await {
                Ok(names) => names,
                Err(e) => {
                    self.wait(format!("cannot reach the parent's blob store: {e}"))?;
                    tokio::time::sleep(self.config.retry_interval).await;
                    continue;
                }
            };
            // Sealed state exists once its index does: blobs without an index are left
            // from a first write that never committed, and cannot be read.
            let has_state = names.iter().any(|n| n == INDEX_NAME);
            let mut answers = BTreeMap::new();
            let mut released = BTreeMap::new();
            for peer in self.peer_ids() {
                let (answer, key) = self.ask_release(&peer).await;
                if let Some(key) = key {
                    released.insert(peer.clone(), key);
                }
                answers.insert(peer, answer);
            }
            let unchanged = self
                .state()
                .manifest
                .as_ref()
                .is_some_and(|m| Arc::ptr_eq(m, &basis));
            if !unchanged {
                tracing::info!("the manifest changed while peers were asked; asking again");
                continue;
            }
            match rules::decide(has_state, &answers) {
                Decision::TryKeys { peers } => {
                    match self.try_released_keys(&peers, &mut released).await {
                        Ok((from, store)) => {
                            let opened = released_fingerprint(&answers, &from);
                            for liar in opened
                                .map(|f| rules::mismatched(&answers, &f))
                                .unwrap_or_default()
                            {
                                tracing::warn!(peer = %liar, "peer released a key that is not this node's; not used");
                            }
                            tracing::info!(peer = %from, "data key recovered: it opened the sealed state");
                            return Ok(Provisioned {
                                store,
                                basis,
                                escrow: None,
                            });
                        }
                        Err(StoreOpen::Tampered(reason)) => return Err(self.fail(reason)),
                        Err(StoreOpen::Retry(reason) | StoreOpen::WrongKey(reason)) => {
                            self.wait(reason)?;
                        }
                    }
                }
                Decision::RecoverFresh { from } => {
                    let Some(key) = from.first().and_then(|peer| released.remove(peer)) else {
                        continue;
                    };
                    let key = Arc::new(key);
                    let copy = DataKey::from_bytes(key.expose_secret());
                    match self.open_store(copy, false).await {
                        Ok(store) => {
                            tracing::warn!(
                                peers = %from.join(", "),
                                "no sealed state at the parent; every peer released the same key: new store under it"
                            );
                            return Ok(Provisioned {
                                store,
                                basis,
                                escrow: Some(key),
                            });
                        }
                        Err(StoreOpen::Tampered(reason)) => return Err(self.fail(reason)),
                        Err(StoreOpen::Retry(reason) | StoreOpen::WrongKey(reason)) => {
                            self.wait(reason)?;
                        }
                    }
                }
                Decision::CreateNew => {
                    let key = DataKey::generate().map_err(|e| self.fail(e.to_string()))?;
                    let key = Arc::new(key);
                    match self.open_store_new(key.clone()).await {
                        Ok(store) => {
                            tracing::info!("first start: data key created");
                            return Ok(Provisioned {
                                store,
                                basis,
                                escrow: Some(key),
                            });
                        }
                        Err(reason) => self.wait(reason)?,
                    }
                }
                Decision::Wait(reason) => self.wait(reason)?,
            }
            tokio::time::sleep(self.config.retry_interval).await;
        }
    }

    /// Tries the keys `peers` released, in order, on the existing sealed state. The first
    /// that opens the sealed index is used (`Ok((peer, store))`); a key that does not is logged
    /// with the peer that released it and dropped. When none opened it the error says
    /// why, per peer: the node waits and asks again (an honest peer may answer on a
    /// later round).
    async fn try_released_keys(
        &self,
        peers: &[String],
        released: &mut BTreeMap<String, DataKey>,
    ) -> Result<(String, SealedStore<ParentBlobs>), StoreOpen> {
        let mut failures = Vec::new();
        for peer in peers {
            let Some(key) = released.remove(peer) else {
                continue;
            };
            match self.open_store(key, true).await {
                Ok(store) => return Ok((peer.clone(), store)),
                Err(StoreOpen::WrongKey(reason)) => {
                    tracing::warn!(%peer, %reason, "key released by peer does not open the sealed state; not used");
                    failures.push(format!("{peer}'s key does not open the sealed state"));
                }
                Err(StoreOpen::Retry(reason)) => failures.push(format!("{peer}'s key: {reason}")),
                Err(tampered @ StoreOpen::Tampered(_)) => return Err(tampered),
            }
        }
        Err(StoreOpen::WrongKey(format!(
            "no released key opens the sealed state ({})",
            failures.join("; ")
        )))
    }

    /// Hands `key` to the escrow loop, to be stored with every peer again.
    fn escrow_with_every_peer(&self, key: Arc<DataKey>) {
        let peers = self.peer_ids();
        let mut state = self.state();
        state.escrow_pending = peers.into_iter().collect();
        state.escrow_key = Some(key);
    }

    fn wait(&self, reason: String) -> Result<(), NodeError> {
        tracing::warn!(%reason, "waiting for provisioning");
        self.advance(Phase::WaitingForProvisioning { reason, trust: () })
    }

    /// Opens the sealed store with a key a peer released and reads the node's state.
    /// `expect_state`: the sealed index existed when the peers were asked; without it,
    /// an index that has gone since is not taken for a new store (the key is unproven).
    async fn open_store(
        &self,
        key: DataKey,
        expect_state: bool,
    ) -> Result<SealedStore<ParentBlobs>, StoreOpen> {
        let store = SealedStore::open(self.blobs.clone(), key, &self.config.node_id)
            .await
            .map_err(StoreOpen::classify)?;
        if store.index().counter() == 0 {
            // No index: a new store.
            if expect_state {
                return Err(StoreOpen::Retry(
                    "the sealed index is gone from the parent".to_owned(),
                ));
            }
            // The parent lost everything but every peer still held the key: start the
            // state afresh under the same key (under a new store id, so no blob of the
            // earlier store can come back).
            return self.finish_new_store(store).await.map_err(StoreOpen::Retry);
        }
        let info = store
            .get(NODE_INFO_BLOB)
            .await
            .map_err(StoreOpen::classify)?;
        let created = match info {
            Some(bytes) => parse_created(&bytes).ok_or_else(|| {
                StoreOpen::Tampered(format!("sealed {NODE_INFO_BLOB} is not readable"))
            })?,
            None => {
                return Err(StoreOpen::Tampered(format!(
                    "sealed state exists but {NODE_INFO_BLOB} is missing"
                )));
            }
        };
        self.state().state_created_ms = Some(created);
        Ok(store)
    }

    async fn open_store_new(&self, key: Arc<DataKey>) -> Result<SealedStore<ParentBlobs>, String> {
        let copy = DataKey::from_bytes(key.expose_secret());
        let store = SealedStore::open(self.blobs.clone(), copy, &self.config.node_id)
            .await
            .map_err(|e| e.to_string())?;
        self.finish_new_store(store).await
    }

    async fn finish_new_store(
        &self,
        mut store: SealedStore<ParentBlobs>,
    ) -> Result<SealedStore<ParentBlobs>, String> {
        let created = now_ms();
        store
            .put(
                NODE_INFO_BLOB,
                format!("{{\"created_ms\":{created}}}").as_bytes(),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.state().state_created_ms = Some(created);
        Ok(store)
    }

    /// Opens an attested channel to `peer` through the parent.
    async fn dial(
        &self,
        peer: &str,
    ) -> Result<
        crate::channel::AttestedChannel<tokio_rustls::client::TlsStream<transport::Stream>>,
        String,
    > {
        let channels = self.channels().ok_or("no manifest yet")?;
        let mut stream = self
            .config
            .backend
            .connect(VsockAddr::new(PARENT_CID, ports::PARENT_OUTBOUND))
            .await
            .map_err(|e| format!("parent: {e}"))?;
        transport::connect::request(&mut stream, peer)
            .await
            .map_err(|e| e.to_string())?;
        channels
            .connect(stream, peer)
            .await
            .map_err(|e| e.to_string())
    }

    /// Sends one message on `channel` and returns the peer's answer, closing the channel.
    async fn ask<S>(
        channel: &mut crate::channel::AttestedChannel<S>,
        message: &PeerMessage,
    ) -> Result<PeerMessage, String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        channel
            .send(&message.encode())
            .await
            .map_err(|e| e.to_string())?;
        let answer = channel
            .recv()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("peer closed the channel")?;
        let _ = tokio::io::AsyncWriteExt::shutdown(channel.stream_mut()).await;
        PeerMessage::decode(&answer).map_err(|e| e.to_string())
    }

    /// Asks `peer` to release this node's data key.
    async fn ask_release(&self, peer: &str) -> (PeerAnswer, Option<DataKey>) {
        match bounded("key release request", self.try_release(peer)).await {
            Ok(result) => result,
            Err(e) => (PeerAnswer::Unreachable(e), None),
        }
    }

    /// Records what the last attested channel to `peer` showed: its PCR0, or the error.
    fn record_peer(&self, peer: &str, outcome: Result<String, String>) {
        let status = match outcome {
            Ok(pcr0) => PeerStatus {
                attested: true,
                pcr0: Some(pcr0),
                error: None,
                checked_ms: now_ms(),
            },
            Err(error) => {
                tracing::warn!(%peer, %error, "peer not attested");
                PeerStatus {
                    attested: false,
                    pcr0: None,
                    error: Some(error),
                    checked_ms: now_ms(),
                }
            }
        };
        self.state().peers.insert(peer.to_owned(), status);
    }

    async fn try_release(&self, peer: &str) -> Result<(PeerAnswer, Option<DataKey>), String> {
        let channels = self.channels().ok_or("no manifest yet")?;
        let dialled = self.dial(peer).await;
        self.record_peer(
            peer,
            dialled
                .as_ref()
                .map(|c| c.peer().pcr0.clone())
                .map_err(Clone::clone),
        );
        let mut channel = dialled?;
        let (secret, public) = hpke::generate_keypair().map_err(|e| e.to_string())?;
        let exporter = *channel.exporter();
        let document = channels
            .attest(&exporter, public.to_bytes().to_vec())
            .await
            .map_err(|e| e.to_string())?;
        Ok(
            match Self::ask(&mut channel, &PeerMessage::ReleaseRequest { document }).await? {
                PeerMessage::Released { enc, ciphertext } => {
                    let info = release_info(&self.config.node_id);
                    let plain = hpke::open(&secret, &enc, &info, &exporter, &ciphertext)
                        .map_err(|e| format!("released key does not decrypt: {e}"))?;
                    let key = DataKey::from_slice(&plain).map_err(|e| e.to_string())?;
                    let fingerprint = provisioning::KeyFingerprint::of(key.expose_secret());
                    (PeerAnswer::Released(fingerprint), Some(key))
                }
                PeerMessage::NotHeld => (PeerAnswer::NotHeld, None),
                PeerMessage::Unavailable { reason } => (PeerAnswer::Unavailable(reason), None),
                PeerMessage::Refused { reason } => (PeerAnswer::Refused(reason), None),
                other => return Err(format!("unexpected answer {other:?}")),
            },
        )
    }

    /// Sends the data key to every peer that does not yet hold it.
    async fn retry_escrows(&self) {
        // Only peers of the manifest the node runs now: the list was taken while the
        // manifest was still provisional.
        let current: BTreeSet<String> = self.peer_ids().into_iter().collect();
        let (pending, key) = {
            let mut state = self.state();
            state.escrow_pending.retain(|peer| current.contains(peer));
            if state.escrow_pending.is_empty() {
                state.escrow_key = None;
            }
            (state.escrow_pending.clone(), state.escrow_key.clone())
        };
        let Some(key) = key else { return };
        for peer in pending {
            match bounded("escrow", self.send_escrow(&peer, &key)).await {
                Ok(()) => {
                    tracing::info!(%peer, "data key escrowed");
                    let mut state = self.state();
                    state.escrow_pending.remove(&peer);
                    if state.escrow_pending.is_empty() {
                        state.escrow_key = None;
                    }
                }
                Err(e) => tracing::warn!(%peer, error = %e, "escrow not stored yet"),
            }
        }
    }

    async fn send_escrow(&self, peer: &str, key: &DataKey) -> Result<(), String> {
        let mut channel = self.dial(peer).await?;
        let escrow = PeerMessage::EscrowPut {
            key: zeroize::Zeroizing::new(*key.expose_secret()),
        };
        match Self::ask(&mut channel, &escrow).await? {
            PeerMessage::EscrowStored => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }

    /// Opens a fresh attested channel to every peer and records the outcome.
    async fn check_peers(&self) {
        for peer in self.peer_ids() {
            let outcome = bounded("liveness check", async {
                let mut channel = self.dial(&peer).await?;
                match Self::ask(&mut channel, &PeerMessage::Ping).await? {
                    PeerMessage::Pong => Ok(channel.peer().pcr0.clone()),
                    other => Err(format!("unexpected answer {other:?}")),
                }
            })
            .await;
            self.record_peer(&peer, outcome);
        }
    }

    /// Accepts connections on `listener`, serving at most `max` at once with `handle`;
    /// further connections are closed at once.
    async fn serve<F, Fut>(
        self: Arc<Self>,
        listener: transport::Listener,
        max: usize,
        what: &'static str,
        handle: F,
    ) where
        F: Fn(Arc<Self>, transport::Stream) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let slots = Arc::new(tokio::sync::Semaphore::new(max));
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
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
    async fn status_connection(self: Arc<Self>, mut stream: transport::Stream) {
        let mut line = serde_json::to_vec(&HealthLine::of(&self.status())).unwrap_or_default();
        line.push(b'\n');
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = stream.write_all(&line).await;
            let _ = stream.shutdown().await;
        })
        .await;
    }

    /// Client port: attested TLS, then one operator request and one answer.
    async fn client_connection(self: Arc<Self>, stream: transport::Stream) {
        let manifest_hash = self.state().manifest.as_ref().map(|m| *m.hash().as_bytes());
        let accepted = crate::channel::client_port::accept(
            stream,
            self.client_tls.clone(),
            &self.config.node_id,
            &self.identity,
            self.nsm.clone(),
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
            Ok(Err(e)) => Err(format!("bad request: {e}")),
            Err(_) => Err("request timed out".to_owned()),
        };
        let _ = write_frame(
            &mut port.stream,
            &operator_api::encode_answer(&answer),
            MAX_RESPONSE_LEN,
        )
        .await;
        let _ = port.stream.shutdown().await;
    }

    async fn handle_operator(
        self: &Arc<Self>,
        bytes: &[u8],
        exporter: &[u8; 32],
    ) -> Result<String, String> {
        match OperatorRequest::decode(bytes).map_err(|e| e.to_string())? {
            OperatorRequest::Command(signed) => {
                // One lock at a time: `status()` takes the state lock itself.
                let phase = self.state().phase.clone();
                if !matches!(phase, Phase::Running { .. }) {
                    let reason = self.status().reason.unwrap_or_default();
                    return Err(format!("node is not running ({phase}): {reason}"));
                }
                let manifest = self.state().manifest.clone().ok_or("no manifest")?;
                let command = signed.verify(manifest.manifest(), exporter).map_err(|e| {
                    tracing::warn!(operator = %crate::provisioning::printable(&signed.operator), error = %e, "operator command refused");
                    e.to_string()
                })?;
                tracing::info!(operator = %signed.operator, ?command, "operator command");
                self.key_command(command).await
            }
            OperatorRequest::Attest { nonce } => {
                let request = attestation::nsm::AttestationRequest {
                    user_data: self
                        .state()
                        .manifest
                        .as_ref()
                        .map(|m| m.hash().as_bytes().to_vec()),
                    nonce: Some(nonce),
                    public_key: None,
                };
                let nsm = self.nsm.clone();
                let document = tokio::task::spawn_blocking(move || nsm.attest(&request))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("attestation: {e}"))?;
                Ok(serde_json::json!({ "document": hex::encode(document) }).to_string())
            }
            OperatorRequest::Status => self.status().into_answer(),
            OperatorRequest::Key { key_id } => {
                let key = self
                    .status()
                    .keys
                    .into_iter()
                    .find(|k| k.key_id == key_id)
                    .ok_or_else(|| operator_api::no_key(&key_id))?;
                serde_json::to_string(&key).map_err(|e| e.to_string())
            }
            OperatorRequest::SubmitManifest(envelope) => self.submit_manifest(&envelope).await,
        }
    }

    /// An operator submits a manifest. While the current one is only provisional (loaded
    /// from the parent, not yet confirmed by the sealed state) any manifest its own
    /// operators approve replaces it: that is how the real operators undo a forged one the
    /// parent installed, and the sealed copy still decides once the data key is back.
    /// Once confirmed, only an approved successor is accepted. Stored at the parent first,
    /// then sealed, so that a stop in between leaves a successor at boot.
    async fn submit_manifest(&self, envelope: &[u8]) -> Result<String, String> {
        let phase = self.state().phase.clone();
        if !phase.accepts_manifests() {
            return Err(format!(
                "manifests are not accepted while the node is {phase}"
            ));
        }
        let signed = SignedManifest::parse(envelope).map_err(|e| e.to_string())?;
        let _change = self.manifest_change.lock().await;
        // The manifest is confirmed exactly when the sealed store is published.
        let (current, store) = {
            let state = self.state();
            (state.manifest.clone(), state.store.clone())
        };
        let base = if store.is_some() {
            current.as_deref()
        } else {
            None
        };
        let accepted = manifest::accept(base, signed).map_err(|e| {
            tracing::warn!(error = %e, "manifest refused");
            e.to_string()
        })?;
        self.lists_this_node(&accepted).inspect_err(|e| {
            tracing::warn!(error = %e, "manifest refused");
        })?;
        let version = accepted.version();
        self.blobs
            .put(MANIFEST_BLOB, accepted.envelope_bytes().to_vec())
            .await
            .map_err(|e| format!("storing the manifest at the parent: {e}"))?;
        if let Some(store) = store {
            store
                .lock()
                .await
                .put(SEALED_MANIFEST_BLOB, accepted.envelope_bytes())
                .await
                .map_err(|e| format!("sealing the manifest: {e}"))?;
        }
        self.install_manifest(accepted).map_err(|e| e.to_string())?;
        if self.state().phase == Phase::WaitingForManifest {
            self.advance(Phase::WaitingForProvisioning {
                reason: "asking peers for this node's key".to_owned(),
                trust: (),
            })
            .map_err(|e| e.to_string())?;
        }
        Ok(format!("{{\"accepted_version\":{version}}}"))
    }

    /// Peer port: an attested channel, then requests until the peer is done or idle.
    async fn peer_connection(self: Arc<Self>, stream: transport::Stream) {
        // The trust this channel is checked against, and a watch that ends the channel
        // when a manifest update replaces it.
        let mut updates = self.manifest_updates.subscribe();
        let Some(channels) = self.channels() else {
            return;
        };
        let mut channel = match channels.accept(stream).await {
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
            let reply = match PeerMessage::decode(&bytes) {
                Ok(PeerMessage::Protocol { envelope }) => {
                    self.deliver(&peer_id, &envelope);
                    continue;
                }
                Ok(PeerMessage::SessionAbort { session }) => {
                    self.abort_session(&peer_id, mpc::SessionId::from_bytes(session));
                    continue;
                }
                Ok(PeerMessage::SessionStart { request }) => {
                    self.session_start(peer_id.clone(), request);
                    continue;
                }
                Ok(PeerMessage::SessionDone { request, outcome }) => {
                    self.session_done(&peer_id, request, &outcome);
                    continue;
                }
                Ok(message) => {
                    self.handle_peer(&channels, &peer, channel.exporter(), message)
                        .await
                }
                Err(e) => PeerMessage::Refused {
                    reason: e.to_string(),
                },
            };
            if channel.send(&reply.encode()).await.is_err() {
                break;
            }
        }
    }

    /// Whether `channels` is the trust of the manifest the node runs under, confirmed
    /// against its sealed state. Escrows are stored and released only then: checked after
    /// the store's lock is taken, so a manifest installed while a request waited for it
    /// (a provisional one an attacker submitted, or any update) is seen.
    fn serves_escrows(&self, channels: &Arc<ChannelContext>) -> Result<(), PeerMessage> {
        let state = self.state();
        let current = state
            .channels
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, channels));
        if state.store.is_some() && current {
            Ok(())
        } else {
            Err(PeerMessage::Unavailable {
                reason: "this channel was not attested under the manifest the node runs, confirmed by its sealed state".to_owned(),
            })
        }
    }

    async fn handle_peer(
        &self,
        channels: &Arc<ChannelContext>,
        peer: &str,
        exporter: &[u8; 32],
        message: PeerMessage,
    ) -> PeerMessage {
        if self.has_failed() {
            return PeerMessage::Refused {
                reason: "node has failed and refuses all work".to_owned(),
            };
        }
        let store = self.state().store.clone();
        match message {
            PeerMessage::Ping => PeerMessage::Pong,
            PeerMessage::EscrowPut { key } => {
                let Some(store) = store else {
                    return PeerMessage::Unavailable {
                        reason: "waiting for its own data key".to_owned(),
                    };
                };
                let mut store = store.lock().await;
                if let Err(refusal) = self.serves_escrows(channels) {
                    return refusal;
                }
                let held = match store.get(&escrow_blob(peer)).await {
                    Ok(held) => held,
                    Err(e) => {
                        return PeerMessage::Unavailable {
                            reason: format!("cannot read the escrow it holds: {e}"),
                        };
                    }
                };
                match rules::escrow_verdict(held.as_deref().map(Vec::as_slice), &key) {
                    EscrowVerdict::AlreadyHeld => PeerMessage::EscrowStored,
                    EscrowVerdict::Conflict => {
                        tracing::warn!(%peer, "escrow refused: another key is already held for this node");
                        PeerMessage::Refused {
                            reason: format!(
                                "already holds a different escrowed key for {peer}; an escrow is never replaced"
                            ),
                        }
                    }
                    EscrowVerdict::Store => {
                        match store.put(&escrow_blob(peer), key.as_slice()).await {
                            Ok(_) => {
                                tracing::info!(%peer, "holding escrowed key");
                                PeerMessage::EscrowStored
                            }
                            Err(e) => PeerMessage::Unavailable {
                                reason: format!("cannot store: {e}"),
                            },
                        }
                    }
                }
            }
            PeerMessage::ReleaseRequest { document } => {
                self.release(channels, store, peer, exporter, &document)
                    .await
            }
            other => PeerMessage::Refused {
                reason: format!("unexpected request {other:?}"),
            },
        }
    }

    /// Releases `peer`'s escrowed key, encrypted to the HPKE key in its fresh evidence.
    async fn release(
        &self,
        channels: &Arc<ChannelContext>,
        store: Option<Arc<AsyncMutex<SealedStore<ParentBlobs>>>>,
        peer: &str,
        exporter: &[u8; 32],
        document: &[u8],
    ) -> PeerMessage {
        let refuse = |reason: String| {
            tracing::warn!(%peer, %reason, "key release refused");
            PeerMessage::Refused { reason }
        };
        let public = match channels.check_peer_document(peer, document, exporter) {
            Ok(Some(key)) => key,
            Ok(None) => return refuse("evidence binds no public key".to_owned()),
            Err(e) => return refuse(e.to_string()),
        };
        let Ok(recipient) = HpkePublicKey::from_bytes(&public) else {
            return refuse("evidence does not bind an X25519 key".to_owned());
        };
        let Some(store) = store else {
            // Only a listing that positively lacks the escrow may say "not held": that
            // answer lets a peer create a new key.
            return match self.blobs.list(&escrow_blob(peer)).await {
                Ok(names) if names.contains(&escrow_blob(peer)) => PeerMessage::Unavailable {
                    reason: "holds the key but is waiting for its own".to_owned(),
                },
                Ok(_) => PeerMessage::NotHeld,
                Err(e) => PeerMessage::Unavailable {
                    reason: format!("cannot read its blob store: {e}"),
                },
            };
        };
        let store = store.lock().await;
        if let Err(refusal) = self.serves_escrows(channels) {
            return refusal;
        }
        let escrowed = match store.get(&escrow_blob(peer)).await {
            Ok(Some(key)) => key,
            Ok(None) => return PeerMessage::NotHeld,
            Err(e) => {
                return PeerMessage::Unavailable {
                    reason: format!("escrow unreadable: {e}"),
                };
            }
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

/// What provisioning hands to the manifest's confirmation.
struct Provisioned {
    /// Open, not yet published.
    store: SealedStore<ParentBlobs>,
    /// The manifest under which the peers were asked for the key.
    basis: Arc<AcceptedManifest>,
    /// A key to escrow with every peer of the confirmed manifest (a new one, or one
    /// recovered into a new store).
    escrow: Option<Arc<DataKey>>,
}

/// Why a released key could not open the sealed state.
enum StoreOpen {
    /// The key does not open the sealed index: not this node's key (a lying or confused
    /// peer). Never used; other keys are tried, and peers asked again.
    WrongKey(String),
    /// The key opened the index, so it is this node's, but the state itself is
    /// altered, swapped or rolled back: stop.
    Tampered(String),
    /// Something transient (the parent unreachable): ask again later.
    Retry(String),
}

impl StoreOpen {
    /// A key that fails to authenticate the index is the wrong key; failures of the
    /// blob transport are worth retrying; anything else the sealing layer detected about
    /// the bytes themselves stops the node.
    fn classify(error: SealError) -> Self {
        match error {
            SealError::Store(e) => StoreOpen::Retry(format!("parent blob store: {e}")),
            SealError::Tampered { ref name } if name == INDEX_NAME => {
                StoreOpen::WrongKey(format!("sealed state refused: {error}"))
            }
            other => StoreOpen::Tampered(format!("sealed state refused: {other}")),
        }
    }
}

/// The fingerprint `peer` answered with, if it released a key.
fn released_fingerprint(
    answers: &BTreeMap<String, PeerAnswer>,
    peer: &str,
) -> Option<provisioning::KeyFingerprint> {
    match answers.get(peer) {
        Some(PeerAnswer::Released(fingerprint)) => Some(*fingerprint),
        _ => None,
    }
}

fn parse_created(bytes: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value.get("created_ms")?.as_u64()
}
