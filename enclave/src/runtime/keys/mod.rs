//! Threshold keys at the node: the coordinator side of key creation and signing
//! ([`coordinator`]), the participant side of every session ([`participant`]), the
//! presignature pools ([`presign`]), and the sealed key records ([`records`]).
//!
//! An operator's request reaches one node, the coordinator, which holds it while
//! approvals arrive ([`requests`]) and carries it out once its own policy allows it.
//! Every participant authorizes the session itself before it contributes
//! ([`authorize`]). It encodes a
//! [`SessionRequest`] and sends the same bytes to every other participant
//! (`SessionStart`), while taking part itself. Each participant checks the request itself,
//! is admitted or refused by [`crate::core::admission`], runs its session on a blocking
//! thread and sends its outcome back (`SessionDone`). Every message travels on one
//! long-lived attested link per peer ([`super::links`]), so an operation pays no
//! handshake. The coordinator's side is [`crate::core::coordination`]: if any participant
//! fails, the session is aborted at every other one, and the operator is told, per
//! participant, how it failed and whom the protocol blamed. A session never changes a
//! stored share: outputs are written only when a session finished, and key ids are never
//! overwritten.
//!
//! [`SessionRequest`]: crate::threshold::request::SessionRequest

mod authorize;
mod coordinator;
mod participant;
mod presign;
mod records;
mod requests;

use crate::core::admission::Admissions;
use crate::core::coordination::{AgreementError, Coordination};
use crate::operator_api::{KeyStatus, OperationFailure};
use crate::threshold::request::RequestError;
use crate::threshold::router::Router;
use mpc::ecdsa::{AuxInfo, KeyShare, PresignaturePool, PrimePool, VerifyError};
use mpc::{KeyId, NodeId, PartySet, SessionId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Where the node's safe primes come from.
pub enum PrimeSource {
    /// Background threads search from boot and keep `depth` sets ready.
    Generate { depth: usize, generators: usize },
    /// Simulator only: sets loaded from a file the project generated, and nothing else.
    #[cfg(feature = "sim")]
    Preloaded(Vec<mpc::ecdsa::SafePrimes>),
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
pub(super) struct Keys {
    round_timeout: Duration,
    prime_wait: Duration,
    primes: Arc<PrimePool>,
    router: Mutex<Router>,
    /// The sessions running here as a participant: caps, and who may abort each.
    admissions: Mutex<Admissions>,
    shares: Mutex<BTreeMap<KeyId, Arc<KeyShare>>>,
    /// Auxiliary info per party set, with the session that produced it.
    aux: Mutex<BTreeMap<PartySet, (SessionId, Arc<AuxInfo>)>>,
    presignatures: Mutex<PresignaturePool>,
    /// Sessions this node coordinates, by the hash of their request.
    pending: Mutex<BTreeMap<[u8; 32], Pending>>,
}

/// A session this node coordinates, and the task that waits for it.
struct Pending {
    coordination: Coordination,
    wake: Arc<tokio::sync::Notify>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    super::lock(mutex)
}

impl Keys {
    pub(super) fn new(config: ThresholdConfig) -> Result<Self, mpc::ecdsa::PrimePoolError> {
        let primes = match config.primes {
            PrimeSource::Generate { depth, generators } => PrimePool::spawn(depth, generators)?,
            #[cfg(feature = "sim")]
            PrimeSource::Preloaded(sets) => PrimePool::preloaded(sets),
        };
        Ok(Self {
            round_timeout: config.round_timeout,
            prime_wait: config.prime_wait,
            primes: Arc::new(primes),
            router: Mutex::new(Router::new()),
            admissions: Mutex::new(Admissions::new()),
            shares: Mutex::new(BTreeMap::new()),
            aux: Mutex::new(BTreeMap::new()),
            presignatures: Mutex::new(PresignaturePool::new(config.presign_depth)),
            pending: Mutex::new(BTreeMap::new()),
        })
    }

    fn router(&self) -> MutexGuard<'_, Router> {
        lock(&self.router)
    }

    fn admissions(&self) -> MutexGuard<'_, Admissions> {
        lock(&self.admissions)
    }

    pub(super) fn share(&self, key: &KeyId) -> Option<Arc<KeyShare>> {
        lock(&self.shares).get(key).cloned()
    }

    fn shares(&self) -> Vec<Arc<KeyShare>> {
        lock(&self.shares).values().cloned().collect()
    }

    fn aux_for(&self, group: &PartySet) -> Option<(SessionId, Arc<AuxInfo>)> {
        lock(&self.aux).get(group).cloned()
    }

    fn presign_depth(&self) -> usize {
        lock(&self.presignatures).depth()
    }

    pub(super) fn presignatures_ready(&self) -> usize {
        lock(&self.presignatures).total()
    }

    /// Every key this node holds a share of, as the status answer lists them.
    pub(super) fn statuses(&self) -> Vec<KeyStatus> {
        self.shares()
            .iter()
            .map(|s| KeyStatus {
                scheme: s.scheme(),
                key_id: s.key_id().to_string(),
                // Empty only if the share's key were invalid: no client confirms it then.
                public_key: s
                    .public_key()
                    .map(|k| hex::encode(k.to_sec1_compressed()))
                    .unwrap_or_default(),
                parties: s.group().nodes().iter().map(|n| n.to_string()).collect(),
                threshold: s.threshold().get(),
            })
            .collect()
    }
}

pub use protocol::operator_api::{CreatedKey, SignedDigest};

/// Why an operator's key command (create a key, sign) did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperationError {
    #[error("no manifest yet")]
    NoManifest,
    #[error("no randomness")]
    Randomness,
    #[error(transparent)]
    Id(#[from] ids::IdError),
    #[error(transparent)]
    Party(#[from] mpc::PartyError),
    #[error(transparent)]
    Key(#[from] mpc::KeyError),
    #[error("parties: {0}")]
    Parties(#[source] mpc::PartyError),
    #[error("signers: {0}")]
    Signers(#[source] mpc::PartyError),
    #[error("derivation: {0}")]
    Derivation(#[source] mpc::KeyError),
    #[error(transparent)]
    Path(#[from] protocol::path::PathError),
    #[error("a request id is 32 bytes of hex")]
    RequestId,
    #[error("an operator submits its own requests and approvals only")]
    NotRequester,
    #[error("the request is being carried out")]
    Running,
    #[error("assembling the signed transaction: {0}")]
    Assemble(String),
    #[error(transparent)]
    Authority(#[from] protocol::authority::AuthorityError),
    #[error(transparent)]
    Book(#[from] crate::core::requests::BookError),
    #[error(transparent)]
    Governance(#[from] super::governance::GovernanceError),
    #[error("key {0} is not held by this node")]
    NotHeld(KeyId),
    #[error("key {0} already exists")]
    Exists(KeyId),
    #[error("this node ({0}) is not among the parties; send the request to one of them")]
    NotParty(NodeId),
    #[error("this node ({0}) is not among the signers; send the request to one of them")]
    NotSigner(NodeId),
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The participants did not complete it, or disagreed: typed, per participant.
    #[error(transparent)]
    Outcomes(#[from] AgreementError),
    #[error("{0}")]
    Hex(#[from] hex::FromHexError),
    #[error("{0}")]
    Signature(#[source] VerifyError),
    #[error("{step}: signature does not verify: {source}")]
    Unverified {
        step: &'static str,
        #[source]
        source: VerifyError,
    },
    #[error("key generation: auxiliary info kept missing")]
    AuxKeptMissing,
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("audit log: {0}")]
    Audit(#[from] super::AuditFailure),
}

impl OperationError {
    /// The participants' failures, when that is why the operation did not complete.
    pub fn failure(&self) -> Option<&OperationFailure> {
        match self {
            OperationError::Outcomes(AgreementError::Failed(failure)) => Some(failure),
            _ => None,
        }
    }
}
