//! Threshold keys at the node: the coordinator side of key creation and signing, the
//! participant side of every session, the presignature pool, and the sealed key shares.
//!
//! An operator's request reaches one node, the coordinator. It encodes a
//! [`SessionRequest`] and sends the same bytes to every other participant
//! (`SessionStart`), while taking part itself. Each participant checks the request itself,
//! runs its session on a blocking thread and sends its outcome back (`SessionDone`). Every
//! message travels on one long-lived attested link per peer ([`super::links`]), so an
//! operation pays no handshake. If any participant fails, the coordinator aborts the
//! session at every other one. A session never changes a stored share: outputs
//! are written only when a session finished, and key ids are never overwritten.

use super::Node;
use crate::core::aux_admission::{AuxAdmissions, AuxRefusal};
use crate::operator_api::{KeyCommand, parse_path};
use crate::provisioning::PeerMessage;
use crate::sealed::SealError;
use crate::threshold::request::{
    Data, FailureKind, MAX_SIGN_MESSAGE_LEN, Operation, Outcome, SessionRequest, Task, Verified,
};
use crate::threshold::router::Router;
use crate::threshold::runner::{self, RunError};
use mpc::{
    AuxInfo, DerivationPath, Envelope, KeyId, KeyShare, NodeId, PartySet, PoolKey,
    PresignaturePool, PrimePool, PublicKey, Session, SessionError, SessionId, Signature,
    SigningSet, ToSign,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sessions one node runs at once; more are refused as busy.
pub const MAX_SESSIONS: usize = 16;
/// Of those, sessions one coordinator may have running here: one peer cannot take every
/// slot.
pub const MAX_SESSIONS_PER_COORDINATOR: usize = 8;
/// Keys one node holds.
pub const MAX_KEYS: usize = 4096;
/// After aborting a session, how long the coordinator waits for the other participants to
/// confirm.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// Where the node's safe primes come from.
pub enum PrimeSource {
    /// Background threads search from boot and keep `depth` sets ready.
    Generate { depth: usize, generators: usize },
    /// Simulator only: sets loaded from a file the project generated, and nothing else.
    #[cfg(feature = "sim")]
    Preloaded(Vec<mpc::SafePrimes>),
}

impl std::fmt::Debug for PrimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrimeSource::Generate { depth, generators } => f
                .debug_struct("Generate")
                .field("depth", depth)
                .field("generators", generators)
                .finish(),
            #[cfg(feature = "sim")]
            PrimeSource::Preloaded(p) => write!(f, "Preloaded({} sets)", p.len()),
        }
    }
}

/// How the node runs threshold sessions.
#[derive(Debug)]
pub struct ThresholdConfig {
    /// A session ends when no message arrives for this long.
    pub round_timeout: Duration,
    /// Longest auxiliary-info generation waits for safe primes.
    pub prime_wait: Duration,
    /// Presignatures kept per key and signing set; 0 turns the pool off.
    pub presign_depth: usize,
    pub primes: PrimeSource,
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        Self {
            round_timeout: Duration::from_secs(60),
            prime_wait: Duration::from_secs(30 * 60),
            presign_depth: 4,
            primes: PrimeSource::Generate {
                depth: 2,
                generators: 1,
            },
        }
    }
}

/// The node's threshold state.
pub(crate) struct Keys {
    pub(super) round_timeout: Duration,
    pub(super) prime_wait: Duration,
    primes: Arc<PrimePool>,
    pub(super) router: Mutex<Router>,
    /// Coordinator of each running session: the only node that may abort it.
    coordinators: Mutex<BTreeMap<SessionId, NodeId>>,
    shares: Mutex<BTreeMap<KeyId, Arc<KeyShare>>>,
    /// Auxiliary info per party set, with the session that produced it.
    aux: Mutex<BTreeMap<PartySet, (SessionId, Arc<AuxInfo>)>>,
    /// Aux-info sessions admitted here, per coordinator and party set: each one costs a
    /// pair of safe primes.
    aux_admissions: Mutex<AuxAdmissions>,
    pub(super) presignatures: Mutex<PresignaturePool>,
    slots: Arc<tokio::sync::Semaphore>,
    /// Sessions this node coordinates, by the hash of their request: the participants
    /// whose outcome is still due, and where to deliver it.
    pending: Mutex<BTreeMap<[u8; 32], Pending>>,
}

struct Pending {
    waiting: BTreeSet<NodeId>,
    outcomes: tokio::sync::mpsc::UnboundedSender<(NodeId, Outcome)>,
}

impl Keys {
    pub(crate) fn new(config: ThresholdConfig) -> Result<Self, String> {
        let primes = match config.primes {
            PrimeSource::Generate { depth, generators } => {
                PrimePool::spawn(depth, generators).map_err(|e| format!("safe prime pool: {e}"))?
            }
            #[cfg(feature = "sim")]
            PrimeSource::Preloaded(sets) => PrimePool::preloaded(sets),
        };
        Ok(Self {
            round_timeout: config.round_timeout,
            prime_wait: config.prime_wait,
            primes: Arc::new(primes),
            router: Mutex::new(Router::new()),
            coordinators: Mutex::new(BTreeMap::new()),
            shares: Mutex::new(BTreeMap::new()),
            aux: Mutex::new(BTreeMap::new()),
            aux_admissions: Mutex::new(AuxAdmissions::new()),
            presignatures: Mutex::new(PresignaturePool::new(config.presign_depth)),
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS)),
            pending: Mutex::new(BTreeMap::new()),
        })
    }

    pub(super) fn router(&self) -> std::sync::MutexGuard<'_, Router> {
        lock(&self.router)
    }

    pub(super) fn share(&self, key: &KeyId) -> Option<Arc<KeyShare>> {
        lock(&self.shares).get(key).cloned()
    }

    pub(super) fn shares(&self) -> Vec<Arc<KeyShare>> {
        lock(&self.shares).values().cloned().collect()
    }

    fn aux_for(&self, group: &PartySet) -> Option<(SessionId, Arc<AuxInfo>)> {
        lock(&self.aux).get(group).cloned()
    }

    pub(super) fn presign_depth(&self) -> usize {
        lock(&self.presignatures).depth()
    }

    pub(super) fn presignatures_ready(&self) -> usize {
        lock(&self.presignatures).total()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn key_blob(key: &KeyId) -> String {
    format!("key-{key}")
}

/// Auxiliary info is stored per party set, under a name derived from its sorted ids.
fn aux_blob(group: &PartySet) -> String {
    let mut hash = Sha256::new();
    for node in group.nodes() {
        hash.update([u8::try_from(node.as_str().len()).unwrap_or(u8::MAX)]);
        hash.update(node.as_str());
    }
    format!(
        "aux-{}",
        hex::encode(hash.finalize().get(..16).unwrap_or_default())
    )
}

pub use protocol::operator_api::{CreatedKey, SignedDigest};

/// A session that did not complete, as the operator sees it.
#[derive(Debug, Clone)]
pub struct OperationFailed {
    pub step: &'static str,
    pub failures: Vec<(NodeId, FailureKind, String, Vec<String>)>,
}

impl std::fmt::Display for OperationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed:", self.step)?;
        for (node, kind, reason, blamed) in &self.failures {
            write!(f, " [{node}: {kind:?}: {reason}")?;
            if !blamed.is_empty() {
                write!(f, "; blamed: {}", blamed.join(", "))?;
            }
            write!(f, "]")?;
        }
        Ok(())
    }
}

impl Node {
    fn keys(&self) -> &Keys {
        &self.keys
    }

    fn me(&self) -> Result<NodeId, String> {
        NodeId::new(self.config.node_id.as_str()).map_err(|e| e.to_string())
    }

    /// The manifest's hash and node ids.
    fn manifest_view(&self) -> Result<([u8; 32], Vec<NodeId>), String> {
        let manifest = self.state().manifest.clone().ok_or("no manifest yet")?;
        let members = manifest
            .manifest()
            .nodes()
            .iter()
            .map(|n| NodeId::new(n.id()).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((*manifest.hash().as_bytes(), members))
    }

    /// Reads every sealed key share and auxiliary info into memory; run once the sealed
    /// store is open. A blob that does not parse is an error: the store authenticated it,
    /// so it is this node's own state and cannot be skipped.
    pub(super) async fn load_keys(&self) -> Result<(), String> {
        let store = self.state().store.clone().ok_or("sealed store not open")?;
        let store = store.lock().await;
        let mut shares = BTreeMap::new();
        let mut aux = BTreeMap::new();
        for name in store.list() {
            if name.starts_with("key-") {
                let bytes = store
                    .get(&name)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?
                    .ok_or(format!("{name} listed but missing"))?;
                let share =
                    KeyShare::from_sealed_bytes(&bytes).map_err(|e| format!("{name}: {e}"))?;
                shares.insert(share.key_id().clone(), Arc::new(share));
            } else if name.starts_with("aux-") {
                let bytes = store
                    .get(&name)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?
                    .ok_or(format!("{name} listed but missing"))?;
                let (id, info) = bytes
                    .split_first_chunk::<32>()
                    .ok_or(format!("{name}: too short"))?;
                let info = AuxInfo::from_sealed_bytes(info).map_err(|e| format!("{name}: {e}"))?;
                aux.insert(
                    info.group().clone(),
                    (SessionId::from_bytes(*id), Arc::new(info)),
                );
            }
        }
        tracing::info!(
            keys = shares.len(),
            aux_info = aux.len(),
            "key shares loaded from sealed storage"
        );
        *lock(&self.keys().shares) = shares;
        *lock(&self.keys().aux) = aux;
        Ok(())
    }

    async fn seal_new(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let store = self.state().store.clone().ok_or("sealed store not open")?;
        let mut store = store.lock().await;
        if name.starts_with("key-") && store.list().iter().any(|n| n == name) {
            return Err(format!("{name} already exists; key ids are never reused"));
        }
        store
            .put(name, bytes)
            .await
            .map(|_| ())
            .map_err(|e: SealError| e.to_string())
    }

    // ---- participant side ----------------------------------------------------------

    /// Checks a session request from `from` and takes part in its session; the answer
    /// goes back to the coordinator.
    pub(super) async fn participate(self: &Arc<Self>, from: &NodeId, bytes: &[u8]) -> Outcome {
        match self.admit(from, bytes) {
            Ok(admitted) => self.run_admitted(admitted).await,
            Err(outcome) => outcome,
        }
    }

    /// Checks a session request and registers its session, without waiting: a peer's link
    /// delivers the request, then the coordinator's later messages for it (an abort), in
    /// order, so the session must exist before the next message is read.
    fn admit(&self, from: &NodeId, bytes: &[u8]) -> Result<Admitted, Outcome> {
        let verified = self.verify_request(from, bytes).map_err(|reason| {
            tracing::warn!(%from, %reason, "session request refused");
            Outcome::failed(FailureKind::Refused, reason)
        })?;
        let from_this_coordinator = lock(&self.keys().coordinators)
            .values()
            .filter(|c| **c == verified.coordinator)
            .count();
        if from_this_coordinator >= MAX_SESSIONS_PER_COORDINATOR {
            return Err(Outcome::failed(
                FailureKind::Busy,
                format!(
                    "{} already runs {MAX_SESSIONS_PER_COORDINATOR} sessions here",
                    verified.coordinator
                ),
            ));
        }
        let permit = self
            .keys()
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Outcome::failed(FailureKind::Busy, "too many sessions at once"))?;
        if let Task::AuxInfo { group, renew } = &verified.task {
            let held = self.keys().aux_for(group).is_some();
            lock(&self.keys().aux_admissions)
                .admit(&verified.coordinator, group, held, *renew, Instant::now())
                .map_err(|refusal| {
                    tracing::warn!(coordinator = %verified.coordinator, %refusal, "auxiliary-info session refused");
                    let kind = match refusal {
                        AuxRefusal::AlreadyHeld => FailureKind::AuxInfoHeld,
                        _ => FailureKind::Busy,
                    };
                    Outcome::failed(kind, refusal.to_string())
                })?;
        }
        let session = verified.session;
        // Register first: the other participants' first messages may already be arriving.
        let registered = self.keys().router().register(session, Instant::now());
        let inbox = registered.map_err(|e| {
            self.aux_session_ended(&verified);
            Outcome::failed(FailureKind::Refused, e.to_string())
        })?;
        lock(&self.keys().coordinators).insert(session, verified.coordinator.clone());
        tracing::info!(%session, step = verified.task.name(), coordinator = %verified.coordinator, "session started");
        Ok(Admitted {
            verified,
            inbox,
            permit,
            started: Instant::now(),
        })
    }

    async fn run_admitted(self: &Arc<Self>, admitted: Admitted) -> Outcome {
        let Admitted {
            verified,
            inbox,
            permit,
            started,
        } = admitted;
        let session = verified.session;
        let name = verified.task.name();
        let admission = verified.clone();
        let outcome = match self.prepare(&verified) {
            Ok(input) => self.run_session(verified, input, inbox).await,
            Err(outcome) => outcome,
        };
        self.aux_session_ended(&admission);
        self.keys().router().end(session);
        lock(&self.keys().coordinators).remove(&session);
        drop(permit);
        match &outcome {
            Outcome::Failed {
                kind,
                reason,
                blamed,
            } => {
                tracing::warn!(%session, step = name, ?kind, %reason, ?blamed, "session failed");
            }
            _ => tracing::info!(
                %session,
                step = name,
                ms = started.elapsed().as_millis() as u64,
                "session finished"
            ),
        }
        outcome
    }

    /// An admitted aux-info session no longer runs here.
    fn aux_session_ended(&self, verified: &Verified) {
        if let Task::AuxInfo { group, .. } = &verified.task {
            lock(&self.keys().aux_admissions).finish(&verified.coordinator, group);
        }
    }

    fn verify_request(&self, from: &NodeId, bytes: &[u8]) -> Result<Verified, String> {
        match &self.state().phase {
            crate::core::phase::Phase::Running { .. } => {}
            crate::core::phase::Phase::Failed { .. } => {
                return Err("node has failed and refuses all work".to_owned());
            }
            other => return Err(format!("node is not running yet ({other})")),
        }
        let (hash, members) = self.manifest_view()?;
        SessionRequest::verify(bytes, from, &self.me()?, &hash, &members).map_err(|e| e.to_string())
    }

    /// Everything a session needs from this node's state, checked before it starts.
    fn prepare(&self, verified: &Verified) -> Result<Input, Outcome> {
        let refuse = |reason: String| Outcome::failed(FailureKind::Refused, reason);
        let share = |key_id: &KeyId| {
            self.keys()
                .share(key_id)
                .ok_or_else(|| refuse(format!("key {key_id} is not held by this node")))
        };
        let signing_set = |share: &KeyShare, signers: &[NodeId]| {
            share
                .signing_set(signers.iter().cloned())
                .map_err(|e| refuse(format!("signing set: {e}")))
        };
        Ok(match &verified.task {
            Task::AuxInfo { .. } => Input::AuxInfo,
            Task::Keygen {
                key_id,
                group,
                aux_info,
                ..
            } => {
                if self.keys().share(key_id).is_some() {
                    return Err(refuse(format!("key {key_id} already exists")));
                }
                if lock(&self.keys().shares).len() >= MAX_KEYS {
                    return Err(refuse(format!("this node holds {MAX_KEYS} keys already")));
                }
                match self.keys().aux_for(group) {
                    Some((id, aux)) if id == *aux_info => Input::Keygen(aux),
                    _ => {
                        return Err(Outcome::failed(
                            FailureKind::AuxInfoMissing,
                            format!("no auxiliary info {aux_info} for this party set"),
                        ));
                    }
                }
            }
            Task::Presign { key_id, signers } => {
                let share = share(key_id)?;
                let set = signing_set(&share, signers)?;
                Input::Presign(share, set)
            }
            Task::Sign {
                key_id, signers, ..
            } => {
                let share = share(key_id)?;
                let set = signing_set(&share, signers)?;
                Input::Sign(share, set)
            }
            Task::SignPresigned {
                key_id,
                signers,
                presignature,
                ..
            } => {
                let share = share(key_id)?;
                let set = signing_set(&share, signers)?;
                let pool_key = PoolKey {
                    key_id: key_id.clone(),
                    signers: set,
                    path: DerivationPath::master(),
                };
                // Taken out of the pool here: whatever happens next, it is never used again.
                let taken = lock(&self.keys().presignatures).take(&pool_key, presignature);
                match taken {
                    Some(p) => Input::SignPresigned(Box::new(p)),
                    None => {
                        return Err(Outcome::failed(
                            FailureKind::PresignatureMissing,
                            format!("presignature {presignature} is not held"),
                        ));
                    }
                }
            }
        })
    }

    /// Runs the session on a blocking thread, then stores what it produced.
    async fn run_session(
        self: &Arc<Self>,
        verified: Verified,
        input: Input,
        inbox: std::sync::mpsc::Receiver<crate::threshold::router::Inbound>,
    ) -> Outcome {
        let me = match self.me() {
            Ok(me) => me,
            Err(e) => return Outcome::failed(FailureKind::Refused, e),
        };
        let node = self.clone();
        let round_timeout = self.keys().round_timeout;
        // The whole session, however its messages trickle in: what the coordinator waits.
        let limit = self.keys().round_timeout * 8;
        let prime_wait = self.keys().prime_wait;
        let primes = self.keys().primes.clone();
        let session = verified.session;
        let task = verified.task.clone();
        let bytes = verified.bytes.clone();
        let handle = tokio::runtime::Handle::current();
        let joined = tokio::task::spawn_blocking(move || {
            let post = |to: &NodeId, envelope: &Envelope| {
                node.post(
                    &handle,
                    to,
                    PeerMessage::Protocol {
                        envelope: envelope.encode(),
                    },
                );
            };
            let made = |e: SessionError| RunError::Session(e);
            match (task, input) {
                (Task::AuxInfo { group, .. }, Input::AuxInfo) => {
                    let primes = primes.take_timeout(prime_wait).map_err(|e| {
                        made(SessionError::Internal(format!("no safe primes ready: {e}")))
                    })?;
                    let mut s = Session::aux_info(&bytes, &group, &me, primes).map_err(made)?;
                    runner::drive(&mut s, &inbox, round_timeout, limit, post).map(Output::AuxInfo)
                }
                (
                    Task::Keygen {
                        key_id,
                        group,
                        threshold,
                        ..
                    },
                    Input::Keygen(aux),
                ) => {
                    let t = mpc::Threshold::new(threshold, &group).map_err(|e| made(e.into()))?;
                    let mut s =
                        Session::keygen(&bytes, key_id, &group, &me, t, &aux).map_err(made)?;
                    runner::drive(&mut s, &inbox, round_timeout, limit, post).map(Output::Keygen)
                }
                (Task::Presign { .. }, Input::Presign(share, set)) => {
                    let mut s = Session::presign(&bytes, share, &set, &me, None).map_err(made)?;
                    runner::drive(&mut s, &inbox, round_timeout, limit, post).map(Output::Presign)
                }
                (Task::Sign { to_sign, path, .. }, Input::Sign(share, set)) => {
                    let path = (!path.is_master()).then_some(&path);
                    let mut s =
                        Session::sign(&bytes, share, &set, &me, to_sign, path).map_err(made)?;
                    runner::drive(&mut s, &inbox, round_timeout, limit, post).map(Output::Signature)
                }
                (Task::SignPresigned { to_sign, .. }, Input::SignPresigned(p)) => {
                    let mut s =
                        Session::sign_presigned(&bytes, *p, &me, &to_sign, None).map_err(made)?;
                    runner::drive(&mut s, &inbox, round_timeout, limit, post).map(Output::Signature)
                }
                _ => Err(made(SessionError::Internal(
                    "request and prepared input disagree".into(),
                ))),
            }
        })
        .await;
        let output = match joined {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return failure(e),
            Err(e) => {
                return Outcome::failed(FailureKind::Aborted, format!("session thread: {e}"));
            }
        };
        self.store_output(session, &verified.task, output).await
    }

    async fn store_output(&self, session: SessionId, task: &Task, output: Output) -> Outcome {
        let storage = |e: String| Outcome::failed(FailureKind::Storage, e);
        match output {
            Output::AuxInfo(aux) => {
                let bytes = match aux.to_sealed_bytes() {
                    Ok(b) => b,
                    Err(e) => return storage(e.to_string()),
                };
                let blob = [session.as_bytes().as_slice(), &bytes].concat();
                let blob = zeroize::Zeroizing::new(blob);
                if let Err(e) = self.seal_new(&aux_blob(aux.group()), &blob).await {
                    return storage(e);
                }
                lock(&self.keys().aux).insert(aux.group().clone(), (session, Arc::new(aux)));
                Outcome::AuxInfo
            }
            Output::Keygen(share) => {
                let public = match share.public_key() {
                    Ok(p) => p,
                    Err(e) => return storage(e.to_string()),
                };
                let bytes = match share.to_sealed_bytes() {
                    Ok(b) => b,
                    Err(e) => return storage(e.to_string()),
                };
                if let Err(e) = self.seal_new(&key_blob(share.key_id()), &bytes).await {
                    return storage(e);
                }
                tracing::info!(key = %share.key_id(), public_key = %hex::encode(public.to_sec1_compressed()), "key share sealed");
                lock(&self.keys().shares).insert(share.key_id().clone(), Arc::new(share));
                Outcome::Keygen {
                    public_key: hex::encode(public.to_sec1_compressed()),
                }
            }
            Output::Presign(p) => {
                let evicted = lock(&self.keys().presignatures).put(session, p);
                if evicted > 0 {
                    tracing::info!(evicted, "oldest presignatures destroyed to make room");
                }
                Outcome::Presigned
            }
            Output::Signature(sig) => {
                if let Task::Sign { .. } | Task::SignPresigned { .. } = task {
                    Outcome::Signature {
                        r: hex::encode(sig.r()),
                        s: hex::encode(sig.s()),
                        v: sig.recovery_id(),
                    }
                } else {
                    Outcome::failed(FailureKind::Aborted, "unexpected signature")
                }
            }
        }
    }

    /// The coordinator of `session` ends it here.
    pub(super) fn abort_session(&self, from: &NodeId, session: SessionId) {
        let coordinator = lock(&self.keys().coordinators).get(&session).cloned();
        match coordinator {
            Some(c) if c == *from => {
                tracing::info!(%session, %from, "session aborted by its coordinator");
                self.keys().router().end(session);
            }
            Some(_) => {
                tracing::warn!(%session, %from, "abort from a node that does not coordinate the session refused");
            }
            None => {
                // The start came first on the same link and was refused, or the session has
                // already ended here.
                tracing::info!(%session, %from, "abort for no running session ignored");
            }
        }
    }

    /// A protocol envelope from `from`, for a session running (or about to run) here.
    pub(super) fn deliver(&self, from: &NodeId, bytes: &[u8]) {
        let envelope = match Envelope::decode(bytes) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%from, error = %e, "protocol message refused");
                return;
            }
        };
        let mut router = self.keys().router();
        let now = Instant::now();
        for (peer, session) in router.expire(now) {
            tracing::warn!(%peer, %session, "message for a session that never started here dropped");
        }
        if let crate::threshold::router::Routed::Refused(reason) =
            router.route(from.clone(), envelope, now)
        {
            tracing::warn!(%from, %reason, "protocol message refused");
        }
    }

    // ---- coordinator side ----------------------------------------------------------

    /// An operator's key command, answered with JSON.
    pub(super) async fn key_command(
        self: &Arc<Self>,
        command: KeyCommand,
    ) -> Result<String, String> {
        let nodes = |ids: Vec<String>| {
            ids.into_iter()
                .map(|id| NodeId::new(id).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        };
        let started = Instant::now();
        let answer = match command {
            KeyCommand::CreateKey {
                key_id,
                threshold,
                parties,
                renew_aux,
            } => {
                let key_id = match key_id {
                    Some(id) => KeyId::new(id).map_err(|e| e.to_string())?,
                    None => {
                        let mut random = [0u8; 8];
                        aws_lc_rs::rand::fill(&mut random).map_err(|_| "no randomness")?;
                        KeyId::new(format!("key-{}", hex::encode(random)))
                            .map_err(|e| e.to_string())?
                    }
                };
                let created = self
                    .create_key(key_id, nodes(parties)?, threshold, renew_aux)
                    .await?;
                serde_json::to_string(&created)
            }
            KeyCommand::Sign {
                key_id,
                digest,
                message,
                path,
                signers,
            } => {
                let key_id = KeyId::new(key_id).map_err(|e| e.to_string())?;
                let to_sign = match (digest, message) {
                    (Some(digest), None) => {
                        let mut d = [0u8; 32];
                        hex::decode_to_slice(&digest, &mut d)
                            .map_err(|_| "digest must be 32 bytes of hex".to_owned())?;
                        ToSign::Digest(d)
                    }
                    (None, Some(message)) => {
                        if message.len() > 2 * MAX_SIGN_MESSAGE_LEN {
                            return Err(format!(
                                "message longer than {MAX_SIGN_MESSAGE_LEN} bytes"
                            ));
                        }
                        ToSign::Keccak256Message(
                            hex::decode(&message).map_err(|e| format!("message: {e}"))?,
                        )
                    }
                    _ => return Err("give exactly one of digest and message".to_owned()),
                };
                let path = match path {
                    Some(p) => DerivationPath::new(parse_path(&p)?).map_err(|e| e.to_string())?,
                    None => DerivationPath::master(),
                };
                let signed = self.sign(key_id, to_sign, path, nodes(signers)?).await?;
                serde_json::to_string(&signed)
            }
        };
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "key command done"
        );
        answer.map_err(|e| e.to_string())
    }

    /// Runs `operation` at every participant, this node included; returns each
    /// participant's outcome once all have ended. The first failure aborts the others; a
    /// participant that never answers is reported as such.
    async fn coordinate(
        self: &Arc<Self>,
        operation: Operation,
    ) -> Result<(SessionId, BTreeMap<NodeId, Outcome>), String> {
        let me = self.me()?;
        let (hash, members) = self.manifest_view()?;
        let mut nonce = [0u8; 32];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness".to_owned())?;
        let bytes = SessionRequest::new(&me, &hash, &nonce, operation)
            .encode()
            .map_err(|e| e.to_string())?;
        let verified =
            SessionRequest::verify(&bytes, &me, &me, &hash, &members).map_err(|e| e.to_string())?;
        let session = verified.session;
        let deadline = tokio::time::Instant::now() + self.session_deadline(&verified.task);
        let others: BTreeSet<NodeId> = verified
            .task
            .participants()
            .iter()
            .filter(|p| **p != me)
            .cloned()
            .collect();
        let request_hash: [u8; 32] = Sha256::digest(&bytes).into();
        let (sender, mut outcomes_in) = tokio::sync::mpsc::unbounded_channel();
        lock(&self.keys().pending).insert(
            request_hash,
            Pending {
                waiting: others.clone(),
                outcomes: sender.clone(),
            },
        );
        let runtime = tokio::runtime::Handle::current();
        for peer in &others {
            self.post(
                &runtime,
                peer,
                PeerMessage::SessionStart {
                    request: bytes.clone(),
                },
            );
        }
        {
            let node = self.clone();
            let me = me.clone();
            tokio::spawn(async move {
                let outcome = node.participate(&me, &bytes).await;
                let _ = sender.send((me, outcome));
            });
        }
        let expected = others.len() + 1;
        let mut outcomes = BTreeMap::new();
        let mut aborted: Option<tokio::time::Instant> = None;
        while outcomes.len() < expected {
            // Once aborted, the others only have to confirm; a dead one is not waited for.
            let until = aborted.map_or(deadline, |at| (at + ABORT_GRACE).min(deadline));
            let Ok(Some((node, outcome))) =
                tokio::time::timeout_at(until, outcomes_in.recv()).await
            else {
                break;
            };
            if matches!(outcome, Outcome::Failed { .. }) && aborted.is_none() {
                aborted = Some(tokio::time::Instant::now());
                self.keys().router().end(session);
                for peer in &others {
                    self.post(
                        &runtime,
                        peer,
                        PeerMessage::SessionAbort {
                            session: *session.as_bytes(),
                        },
                    );
                }
            }
            outcomes.insert(node, outcome);
        }
        lock(&self.keys().pending).remove(&request_hash);
        let silent: Vec<NodeId> = others
            .iter()
            .filter(|p| !outcomes.contains_key(*p))
            .cloned()
            .collect();
        if !silent.is_empty() || !outcomes.contains_key(&me) {
            if aborted.is_none() {
                self.keys().router().end(session);
                for peer in &others {
                    self.post(
                        &runtime,
                        peer,
                        PeerMessage::SessionAbort {
                            session: *session.as_bytes(),
                        },
                    );
                }
            }
            for peer in silent {
                outcomes.insert(
                    peer,
                    Outcome::failed(FailureKind::TimedOut, "no answer from this participant"),
                );
            }
        }
        Ok((session, outcomes))
    }

    /// A participant's outcome for a session this node coordinates.
    pub(super) fn session_done(&self, from: &NodeId, request: [u8; 32], outcome: &[u8]) {
        let mut pending = lock(&self.keys().pending);
        let Some(entry) = pending.get_mut(&request) else {
            tracing::warn!(%from, "outcome for no pending session dropped");
            return;
        };
        if !entry.waiting.remove(from) {
            tracing::warn!(%from, "outcome from a node that was not asked dropped");
            return;
        }
        let outcome = Outcome::decode(outcome)
            .unwrap_or_else(|e| Outcome::failed(FailureKind::Refused, e.to_string()));
        let _ = entry.outcomes.send((from.clone(), outcome));
    }

    /// A session request from `from`, arrived on its link: admit it at once (so that a later
    /// abort on the same link finds it), take part, and send the outcome back on this
    /// node's link to it.
    pub(super) fn session_start(self: &Arc<Self>, from: NodeId, request: Vec<u8>) {
        let admitted = self.admit(&from, &request);
        let node = self.clone();
        tokio::spawn(async move {
            let outcome = match admitted {
                Ok(admitted) => node.run_admitted(admitted).await,
                Err(outcome) => outcome,
            };
            let request: [u8; 32] = Sha256::digest(&request).into();
            node.post(
                &tokio::runtime::Handle::current(),
                &from,
                PeerMessage::SessionDone {
                    request,
                    outcome: outcome.encode(),
                },
            );
        });
    }

    /// Longest a session may take, as the coordinator waits for its participants.
    fn session_deadline(&self, task: &Task) -> Duration {
        let rounds = self.keys().round_timeout * 8;
        match task {
            Task::AuxInfo { .. } => rounds + self.keys().prime_wait,
            _ => rounds,
        }
    }

    /// Creates a key: auxiliary info for the party set first if any party lacks it or the
    /// operator asked to renew it (`renew_aux`), then the threshold key generation.
    pub(super) async fn create_key(
        self: &Arc<Self>,
        key_id: KeyId,
        parties: Vec<NodeId>,
        threshold: u16,
        renew_aux: bool,
    ) -> Result<CreatedKey, String> {
        let me = self.me()?;
        let (_, members) = self.manifest_view()?;
        let parties = if parties.is_empty() { members } else { parties };
        let group = PartySet::new(parties).map_err(|e| format!("parties: {e}"))?;
        if group.index_of(&me).is_none() {
            return Err(format!(
                "this node ({me}) is not among the parties; send the request to one of them"
            ));
        }
        mpc::Threshold::new(threshold, &group).map_err(|e| e.to_string())?;
        if self.keys().share(&key_id).is_some() {
            return Err(format!("key {key_id} already exists"));
        }
        let ids = |g: &PartySet| g.nodes().iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut aux = match self.keys().aux_for(&group) {
            Some((id, _)) if !renew_aux => id,
            _ => self.aux_info(&group, renew_aux).await?,
        };
        for attempt in 0..2 {
            let (_, outcomes) = self
                .coordinate(Operation::Keygen {
                    key_id: key_id.to_string(),
                    group: ids(&group),
                    threshold,
                    aux_info: aux.to_string(),
                })
                .await?;
            if any_failed(&outcomes, FailureKind::AuxInfoMissing) && attempt == 0 {
                tracing::info!("a party lacks this party set's auxiliary info; generating it");
                aux = self.aux_info(&group, true).await?;
                continue;
            }
            let public = agreed("key generation", &outcomes, |o| match o {
                Outcome::Keygen { public_key } => Some(public_key.clone()),
                _ => None,
            })?;
            let bytes = hex::decode(&public).map_err(|e| e.to_string())?;
            let key = PublicKey::from_sec1(&bytes).map_err(|e| e.to_string())?;
            return Ok(CreatedKey {
                key_id: key_id.to_string(),
                public_key: public,
                eth_address: chains::eth_address(key.as_k256()),
                btc_address: chains::btc_p2wpkh_address(key.as_k256()),
                parties: ids(&group),
                threshold,
            });
        }
        Err("key generation: auxiliary info kept missing".to_owned())
    }

    /// Runs auxiliary info for `group`. Without `renew`, parties that already hold it
    /// refuse; this node then lacks what they hold, and asks again for a renewal.
    async fn aux_info(
        self: &Arc<Self>,
        group: &PartySet,
        renew: bool,
    ) -> Result<SessionId, String> {
        let started = Instant::now();
        let run = |renew| {
            self.coordinate(Operation::AuxInfo {
                group: group.nodes().iter().map(|n| n.to_string()).collect(),
                renew,
            })
        };
        let (mut session, mut outcomes) = run(renew).await?;
        if !renew && any_failed(&outcomes, FailureKind::AuxInfoHeld) {
            tracing::info!("other parties hold auxiliary info this node lacks; renewing it");
            (session, outcomes) = run(true).await?;
        }
        agreed("auxiliary info", &outcomes, |o| match o {
            Outcome::AuxInfo => Some(()),
            _ => None,
        })?;
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "auxiliary info generated"
        );
        Ok(session)
    }

    /// Signs with `key_id`: from a pooled presignature when the request allows one,
    /// otherwise with the full protocol.
    pub(super) async fn sign(
        self: &Arc<Self>,
        key_id: KeyId,
        to_sign: ToSign,
        path: DerivationPath,
        signers: Vec<NodeId>,
    ) -> Result<SignedDigest, String> {
        let share = self
            .keys()
            .share(&key_id)
            .ok_or_else(|| format!("key {key_id} is not held by this node"))?;
        let me = self.me()?;
        let signers = if signers.is_empty() {
            self.choose_signers(&share, &me)
        } else {
            signers
        };
        let set = share
            .signing_set(signers)
            .map_err(|e| format!("signers: {e}"))?;
        if set.index_of(&me).is_none() {
            return Err(format!(
                "this node ({me}) is not among the signers; send the request to one of them"
            ));
        }
        let public = share
            .derived_public_key(&path)
            .map_err(|e| format!("derivation: {e}"))?;
        let names: Vec<String> = set.signers().iter().map(|n| n.to_string()).collect();
        let prehash = to_sign.prehash();
        if let (ToSign::Keccak256Message(message), true) = (&to_sign, path.is_master()) {
            let pool_key = PoolKey {
                key_id: key_id.clone(),
                signers: set.clone(),
                path: DerivationPath::master(),
            };
            let oldest = lock(&self.keys().presignatures).oldest(&pool_key);
            if let Some(presignature) = oldest {
                let (_, outcomes) = self
                    .coordinate(Operation::SignPresigned {
                        key_id: key_id.to_string(),
                        signers: names.clone(),
                        message: hex::encode(message),
                        presignature: presignature.to_string(),
                    })
                    .await?;
                if !any_failed(&outcomes, FailureKind::PresignatureMissing) {
                    return finish_signature(&outcomes, &public, prehash, names, true);
                }
                tracing::info!("a signer lacks the pooled presignature; signing without one");
            }
        }
        let (_, outcomes) = self
            .coordinate(Operation::Sign {
                key_id: key_id.to_string(),
                signers: names.clone(),
                data: Data::of(&to_sign),
                path: path.indices().to_vec(),
            })
            .await?;
        finish_signature(&outcomes, &public, prehash, names, false)
    }

    /// This node and the first other parties of the key, preferring those whose last
    /// attested check succeeded.
    fn choose_signers(&self, share: &KeyShare, me: &NodeId) -> Vec<NodeId> {
        let peers = self.state().peers.clone();
        let mut others: Vec<&NodeId> = share.group().nodes().iter().filter(|n| *n != me).collect();
        others.sort_by_key(|n| !peers.get(n.as_str()).is_some_and(|p| p.attested));
        std::iter::once(me.clone())
            .chain(others.into_iter().cloned())
            .take(usize::from(share.threshold().get()))
            .collect()
    }

    /// Fills the presignature pools this node coordinates: for each key, the signing sets
    /// whose first member is this node and whose other members answered the last check.
    /// One session at a time, and only while no other session runs here.
    pub(super) async fn refill_presignatures(self: &Arc<Self>) {
        if self.keys().presign_depth() == 0 || self.has_failed() {
            return;
        }
        let Ok(me) = self.me() else { return };
        let peers = self.state().peers.clone();
        for share in self.keys().shares() {
            let Some(sets) = pooled_signing_sets(&share, &me) else {
                tracing::debug!(key = %share.key_id(), "too many signing sets to keep pools for");
                continue;
            };
            for set in sets {
                let reachable = set
                    .signers()
                    .iter()
                    .filter(|s| **s != me)
                    .all(|s| peers.get(s.as_str()).is_some_and(|p| p.attested));
                let pool_key = PoolKey {
                    key_id: share.key_id().clone(),
                    signers: set.clone(),
                    path: DerivationPath::master(),
                };
                while reachable
                    && self.keys().router().running() == 0
                    && lock(&self.keys().presignatures).missing(&pool_key) > 0
                {
                    let result = self
                        .coordinate(Operation::Presign {
                            key_id: share.key_id().to_string(),
                            signers: set.signers().iter().map(|n| n.to_string()).collect(),
                        })
                        .await;
                    match result {
                        Ok((_, outcomes))
                            if outcomes.values().all(|o| *o == Outcome::Presigned) => {}
                        Ok((_, outcomes)) => {
                            let failed = failures("presignature generation", &outcomes);
                            tracing::warn!(error = %failed, "presignature pool not refilled");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "presignature pool not refilled");
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Most signing sets whose pools one node fills per key; a key with more (a large group
/// with a middling threshold has thousands) gets no pools from this node.
pub const MAX_POOLED_SETS: usize = 32;

/// The signing sets of `share`'s key whose first member (in id order) is `me`: `me` and
/// `t - 1` of the parties after it. `None` when there are more than [`MAX_POOLED_SETS`].
fn pooled_signing_sets(share: &KeyShare, me: &NodeId) -> Option<Vec<SigningSet>> {
    let nodes = share.group().nodes();
    let position = nodes.iter().position(|n| n == me)?;
    let after = nodes.get(position + 1..).unwrap_or_default();
    let k = usize::from(share.threshold().get()).checked_sub(1)?;
    if k > after.len() {
        return Some(Vec::new());
    }
    // C(after, k), stopping as soon as it passes the limit.
    let mut count: usize = 1;
    for i in 0..k {
        count = count.saturating_mul(after.len() - i) / (i + 1);
        if count > MAX_POOLED_SETS {
            return None;
        }
    }
    let mut sets = Vec::with_capacity(count);
    let mut chosen: Vec<usize> = (0..k).collect();
    loop {
        let members =
            std::iter::once(me.clone()).chain(chosen.iter().filter_map(|i| after.get(*i).cloned()));
        if let Ok(set) = share.signing_set(members) {
            sets.push(set);
        }
        // Next combination in lexicographic order.
        let Some(pos) = (0..k)
            .rev()
            .find(|&p| chosen.get(p).copied().unwrap_or(usize::MAX) < after.len() - k + p)
        else {
            return Some(sets);
        };
        if let Some(c) = chosen.get_mut(pos) {
            *c += 1;
        }
        let base = chosen.get(pos).copied().unwrap_or_default();
        for (j, c) in chosen.iter_mut().enumerate().skip(pos + 1) {
            *c = base + (j - pos);
        }
    }
}

/// A session request this node checked and registered, not yet run.
struct Admitted {
    verified: Verified,
    inbox: std::sync::mpsc::Receiver<crate::threshold::router::Inbound>,
    permit: tokio::sync::OwnedSemaphorePermit,
    started: Instant,
}

/// What a session needs, taken from this node's state before it starts.
enum Input {
    AuxInfo,
    Keygen(Arc<AuxInfo>),
    Presign(Arc<KeyShare>, SigningSet),
    Sign(Arc<KeyShare>, SigningSet),
    SignPresigned(Box<mpc::Presignature>),
}

enum Output {
    AuxInfo(AuxInfo),
    Keygen(KeyShare),
    Presign(mpc::Presignature),
    Signature(Signature),
}

fn failure(error: RunError) -> Outcome {
    match error {
        RunError::Cancelled => Outcome::failed(FailureKind::Aborted, "aborted by the coordinator"),
        RunError::Session(SessionError::Aborted { culprits, reason }) => Outcome::Failed {
            kind: FailureKind::Aborted,
            reason,
            blamed: culprits.iter().map(|c| c.to_string()).collect(),
        },
        RunError::Session(SessionError::TimedOut { waiting_for }) => Outcome::Failed {
            kind: FailureKind::TimedOut,
            reason: "a round passed its deadline".to_owned(),
            blamed: waiting_for.iter().map(|c| c.to_string()).collect(),
        },
        RunError::Session(e) => Outcome::failed(FailureKind::Aborted, e.to_string()),
    }
}

fn failures(step: &'static str, outcomes: &BTreeMap<NodeId, Outcome>) -> OperationFailed {
    OperationFailed {
        step,
        failures: outcomes
            .iter()
            .filter_map(|(node, o)| match o {
                Outcome::Failed {
                    kind,
                    reason,
                    blamed,
                } => Some((node.clone(), *kind, reason.clone(), blamed.clone())),
                _ => None,
            })
            .collect(),
    }
}

/// Whether some participant failed for this reason.
fn any_failed(outcomes: &BTreeMap<NodeId, Outcome>, reason: FailureKind) -> bool {
    outcomes
        .values()
        .any(|o| matches!(o, Outcome::Failed { kind, .. } if *kind == reason))
}

/// The value every participant reported; an error naming who failed or disagreed.
fn agreed<T: PartialEq>(
    step: &'static str,
    outcomes: &BTreeMap<NodeId, Outcome>,
    value: impl Fn(&Outcome) -> Option<T>,
) -> Result<T, String> {
    let failed = failures(step, outcomes);
    if !failed.failures.is_empty() {
        return Err(failed.to_string());
    }
    let mut values = outcomes.iter().map(|(n, o)| (n, value(o)));
    let Some((_, Some(first))) = values.next() else {
        return Err(format!("{step}: no result"));
    };
    for (node, v) in values {
        if v.as_ref() != Some(&first) {
            return Err(format!("{step}: {node} reported a different result"));
        }
    }
    Ok(first)
}

fn finish_signature(
    outcomes: &BTreeMap<NodeId, Outcome>,
    public: &PublicKey,
    prehash: [u8; 32],
    signers: Vec<String>,
    presigned: bool,
) -> Result<SignedDigest, String> {
    let step = if presigned {
        "signing from a presignature"
    } else {
        "signing"
    };
    let (r, s, v) = agreed(step, outcomes, |o| match o {
        Outcome::Signature { r, s, v } => Some((r.clone(), s.clone(), *v)),
        _ => None,
    })?;
    let parse = |h: &str| -> Result<[u8; 32], String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(h, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    };
    let signature = Signature::from_parts(parse(&r)?, parse(&s)?, v).map_err(|e| e.to_string())?;
    // Checked again here, against the key the operator expects, independently of the
    // sessions that produced it.
    signature
        .verify(public, &prehash)
        .map_err(|e| format!("{step}: signature does not verify: {e}"))?;
    Ok(SignedDigest {
        r,
        s,
        v,
        public_key: hex::encode(public.to_sec1_compressed()),
        digest: hex::encode(prehash),
        signers,
        presigned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sim")]
    #[test]
    fn each_node_pools_the_signing_sets_it_leads() {
        let group = PartySet::new(
            ["node-1", "node-2", "node-3", "node-4", "node-5"].map(|n| NodeId::new(n).unwrap()),
        )
        .unwrap();
        let json = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../mpc/fixtures/aux-info-5.json"
        ))
        .unwrap();
        let aux = mpc::sim::load_aux_info(&json, &group).unwrap();
        let threshold = mpc::Threshold::new(3, &group).unwrap();
        let sessions = group
            .nodes()
            .iter()
            .zip(&aux)
            .map(|(node, aux)| {
                let key = KeyId::new("k").unwrap();
                let s = Session::keygen(b"k", key, &group, node, threshold, aux).unwrap();
                (node.clone(), s)
            })
            .collect();
        let shares: Vec<KeyShare> = mpc::sim::run(sessions)
            .into_iter()
            .map(|(_, s)| s.unwrap())
            .collect();
        let mut all = BTreeSet::new();
        for (share, me) in shares.iter().zip(group.nodes()) {
            let sets = pooled_signing_sets(share, me).unwrap();
            for set in &sets {
                assert_eq!(set.signers().first(), Some(me));
                assert_eq!(set.len(), 3);
                assert!(all.insert(set.clone()), "each set is pooled by one node");
            }
        }
        // Every 3-of-5 signing set has exactly one leader: C(5, 3) = 10.
        assert_eq!(all.len(), 10);
    }

    #[test]
    fn aux_blob_names_depend_on_the_party_set_only() {
        let set =
            |ids: &[&str]| PartySet::new(ids.iter().map(|i| NodeId::new(*i).unwrap())).unwrap();
        assert_eq!(aux_blob(&set(&["a", "b"])), aux_blob(&set(&["b", "a"])));
        assert_ne!(aux_blob(&set(&["a", "b"])), aux_blob(&set(&["a", "c"])));
        assert_ne!(aux_blob(&set(&["ab", "c"])), aux_blob(&set(&["a", "bc"])));
        transport::blob::validate_name(&aux_blob(&set(&["a", "b"]))).unwrap();
        transport::blob::validate_name(&key_blob(&KeyId::new("k".repeat(64)).unwrap())).unwrap();
    }
}
