//! What this node decides requests with, kept sealed at the parent: the policy versions it
//! accepted (with when it accepted each), its ledger of what each key spent, and the
//! requests it holds for operators. Each is read once when the node starts running and
//! written after every change, before the change is acted on: a spend is sealed before
//! this node says it recorded it, a policy before the operator hears it was accepted.
//!
//! The decisions themselves are [`crate::core::authorization`] (whether to contribute)
//! and [`crate::core::requests`] (the requests held); this module holds their state and
//! does their I/O.

use super::{Blobs, Node, lock};
use crate::core::authorization::Governance;
use crate::core::requests::RequestBook;
use crate::sealed::{SealError, SealedStore};
use policy::{Ledger, LedgerError, PolicyError, PolicyState, Recorded, SignedPolicy, Spend};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use tokio::sync::Mutex as AsyncMutex;

/// Sealed blob of the policy versions this node holds.
const POLICY_BLOB: &str = "policy";
/// Sealed blob of the ledger of spends.
const LEDGER_BLOB: &str = "ledger";
/// Sealed blob of the requests held for operators.
const REQUESTS_BLOB: &str = "requests";
/// Sealed blob of the signatures this node contributed to, by request and input.
const SIGNED_BLOB: &str = "signed";
/// Most signatures remembered; a request is remembered until it expires, and requests
/// live at most a day, so this bounds the signing rate a replay check covers.
const MAX_SIGNED: usize = 65_536;
/// Requests remembered as recorded at every party; beyond, the oldest are forgotten (and
/// recorded again if asked: recording is idempotent).
const MAX_RECORDED_EVERYWHERE: usize = 4096;

/// The governance state of a running node.
#[derive(Default)]
pub(super) struct Books {
    pub(super) policy: Mutex<PolicyState>,
    pub(super) ledger: Mutex<Ledger>,
    pub(super) requests: Mutex<RequestBook>,
    /// The request inputs this node contributed a completed signature to, with when
    /// each request expires: a replay of one is refused.
    pub(super) signed: Mutex<BTreeMap<([u8; 32], u16), u64>>,
    /// Requests whose spend every party of their key recorded, as this node saw.
    pub(super) everywhere: Mutex<BTreeSet<[u8; 32]>>,
    /// Held from a change to its sealed write, so that writes land in change order.
    write: AsyncMutex<()>,
    /// Held from a spend's check against the ledger to its record, so that no other
    /// spend is checked in between.
    pub(super) spending: AsyncMutex<()>,
}

/// Why governance state could not be read, written or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GovernanceError {
    #[error("{name}: {source}")]
    Read {
        name: &'static str,
        #[source]
        source: SealError,
    },
    #[error("{name}: {reason}")]
    Format { name: &'static str, reason: String },
    #[error("sealing {name}: {source}")]
    Write {
        name: &'static str,
        #[source]
        source: SealError,
    },
    #[error("sealed store not open")]
    NotOpen,
    #[error("no manifest")]
    NoManifest,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("audit log: {0}")]
    Audit(#[from] super::AuditFailure),
}

fn format_error(name: &'static str) -> impl Fn(serde_json::Error) -> GovernanceError {
    move |e| GovernanceError::Format {
        name,
        reason: e.to_string(),
    }
}

async fn read<B: Blobs>(
    store: &SealedStore<B>,
    name: &'static str,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, GovernanceError> {
    store
        .get(name)
        .await
        .map_err(|source| GovernanceError::Read { name, source })
}

impl<B: Blobs> Node<B> {
    /// Reads the sealed policy, ledger and requests, from the store the node is about to
    /// run with. Absent blobs are a node that has none yet; a blob that does not parse is
    /// an error (the store authenticated it: it is this node's own state).
    pub(super) async fn load_governance(
        &self,
        store: &SealedStore<B>,
    ) -> Result<(), GovernanceError> {
        let policy = match read(store, POLICY_BLOB).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(format_error(POLICY_BLOB))?,
            None => PolicyState::new(),
        };
        let ledger = match read(store, LEDGER_BLOB).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(format_error(LEDGER_BLOB))?,
            None => Ledger::new(),
        };
        let requests = match read(store, REQUESTS_BLOB).await? {
            Some(bytes) => RequestBook::decode(&bytes).map_err(|e| GovernanceError::Format {
                name: REQUESTS_BLOB,
                reason: e.to_string(),
            })?,
            None => RequestBook::default(),
        };
        let now = self.clock.unix_ms() / 1000;
        tracing::info!(
            policy_version = ?policy.active_version(now),
            spends = ledger.len(),
            requests = requests.len(),
            "policy, ledger and requests loaded from sealed storage"
        );
        *lock(&self.books.policy) = policy;
        *lock(&self.books.ledger) = ledger;
        let signed: Vec<(String, u16, u64)> = match read(store, SIGNED_BLOB).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(format_error(SIGNED_BLOB))?,
            None => Vec::new(),
        };
        let mut by_input = BTreeMap::new();
        for (id, input, expires) in signed {
            let mut request = [0u8; 32];
            hex::decode_to_slice(&id, &mut request).map_err(|e| GovernanceError::Format {
                name: SIGNED_BLOB,
                reason: e.to_string(),
            })?;
            by_input.insert((request, input), expires);
        }
        *lock(&self.books.requests) = requests;
        *lock(&self.books.signed) = by_input;
        Ok(())
    }

    /// Whether this node already contributed a completed signature to `input` of
    /// request `id`: a second session for it is a replay.
    pub(super) fn already_signed(&self, id: &[u8; 32], input: u16) -> bool {
        lock(&self.books.signed).contains_key(&(*id, input))
    }

    /// Remembers, sealed, that this node contributed a completed signature to `input`
    /// of request `id`, which expires at `expires_ms`.
    pub(super) async fn mark_signed(
        &self,
        id: [u8; 32],
        input: u16,
        expires_ms: u64,
    ) -> Result<(), GovernanceError> {
        let _write = self.books.write.lock().await;
        let now = self.clock.unix_ms();
        let bytes = {
            let mut signed = lock(&self.books.signed);
            let skew = protocol::authority::MAX_CLOCK_SKEW_MS;
            signed.retain(|_, expires| expires.saturating_add(skew) >= now);
            if signed.len() >= MAX_SIGNED {
                return Err(GovernanceError::Format {
                    name: SIGNED_BLOB,
                    reason: format!("{MAX_SIGNED} signatures within a day"),
                });
            }
            signed.insert((id, input), expires_ms);
            let list: Vec<(String, u16, u64)> = signed
                .iter()
                .map(|((id, input), expires)| (hex::encode(id), *input, *expires))
                .collect();
            serde_json::to_vec(&list).map_err(format_error(SIGNED_BLOB))?
        };
        self.seal_book(SIGNED_BLOB, &bytes).await
    }

    /// Calls `f` with this node's governance as it is now.
    pub(super) fn with_governance<T>(
        &self,
        f: impl FnOnce(&Governance<'_>) -> T,
    ) -> Result<T, GovernanceError> {
        let trust = self.trust().ok_or(GovernanceError::NoManifest)?;
        let hash = *trust.manifest.hash().as_bytes();
        let policy = lock(&self.books.policy);
        let ledger = lock(&self.books.ledger);
        Ok(f(&Governance {
            manifest: trust.manifest.manifest(),
            manifest_hash: &hash,
            policy: &policy,
            ledger: &ledger,
            now_ms: self.clock.unix_ms(),
        }))
    }

    /// Seals `bytes` as `name` under the write lock the caller holds.
    async fn seal_book(&self, name: &'static str, bytes: &[u8]) -> Result<(), GovernanceError> {
        let sealed = self.sealed().ok_or(GovernanceError::NotOpen)?;
        sealed
            .store
            .lock()
            .await
            .put(name, bytes)
            .await
            .map(|_| ())
            .map_err(|source| GovernanceError::Write { name, source })
    }

    /// An operator submits a policy: accepted with the manifest's threshold of its
    /// operators' approvals and a version above every one this node holds, sealed, then in
    /// force from when [`PolicyState::accept`] says. Answers the version and when it takes
    /// effect.
    pub(super) async fn submit_policy(&self, envelope: &[u8]) -> Result<String, GovernanceError> {
        let signed = SignedPolicy::parse(envelope)?;
        let trust = self.trust().ok_or(GovernanceError::NoManifest)?;
        let _write = self.books.write.lock().await;
        let now = self.clock.unix_ms() / 1000;
        let (bytes, version, effective_at, policy_hash) = {
            let mut state = lock(&self.books.policy).clone();
            let accepted =
                policy::accept(trust.manifest.manifest(), state.newest_version(), signed)?;
            let (version, policy_hash) = (accepted.version(), accepted.signed().hash());
            let effective_at = state.accept(accepted, now)?;
            let bytes = serde_json::to_vec(&state).map_err(format_error(POLICY_BLOB))?;
            (bytes, version, effective_at, policy_hash)
        };
        self.audit(::audit::Event::PolicyChange {
            version,
            policy_hash,
            effective_at_secs: effective_at,
        })
        .await?;
        self.seal_book(POLICY_BLOB, &bytes).await?;
        let state = serde_json::from_slice(&bytes).map_err(format_error(POLICY_BLOB))?;
        *lock(&self.books.policy) = state;
        tracing::info!(version, effective_at, "policy accepted");
        Ok(serde_json::json!({
            "accepted_version": version,
            "effective_at_secs": effective_at,
        })
        .to_string())
    }

    /// Records `spend` in this node's ledger and seals it before returning.
    pub(super) async fn record_spend(&self, spend: Spend) -> Result<Recorded, GovernanceError> {
        let _write = self.books.write.lock().await;
        let (recorded, bytes) = {
            let mut ledger = lock(&self.books.ledger);
            ledger.prune(spend.at_secs);
            let recorded = ledger.record(spend)?;
            if recorded == Recorded::AlreadyRecorded {
                return Ok(recorded);
            }
            let bytes = serde_json::to_vec(&*ledger).map_err(format_error(LEDGER_BLOB))?;
            (recorded, bytes)
        };
        self.seal_book(LEDGER_BLOB, &bytes).await?;
        Ok(recorded)
    }

    /// Seals the requests held, as they are now.
    pub(super) async fn seal_requests(&self) -> Result<(), GovernanceError> {
        let _write = self.books.write.lock().await;
        let bytes = lock(&self.books.requests)
            .encode()
            .map_err(|e| GovernanceError::Format {
                name: REQUESTS_BLOB,
                reason: e.to_string(),
            })?;
        self.seal_book(REQUESTS_BLOB, &bytes).await
    }

    /// Remembers that every party of its key recorded request `id`.
    pub(super) fn recorded_everywhere(&self, id: [u8; 32]) {
        let mut set = lock(&self.books.everywhere);
        if set.len() >= MAX_RECORDED_EVERYWHERE {
            set.clear();
        }
        set.insert(id);
    }

    pub(super) fn is_recorded_everywhere(&self, id: &[u8; 32]) -> bool {
        lock(&self.books.everywhere).contains(id)
    }

    /// The policy version in force and a newer one waiting, for the status answer.
    pub(super) fn policy_status(&self) -> (Option<u64>, Option<(u64, u64)>) {
        let now = self.clock.unix_ms() / 1000;
        let state = lock(&self.books.policy);
        (
            state.active_version(now),
            state
                .pending(now)
                .map(|held| (held.policy().version(), held.effective_at())),
        )
    }

    /// Whether the policy in force has a rule with a velocity limit: then every spend is
    /// recorded at every party of its key before any share, so that no signing set can
    /// spend past a limit another set already used up.
    pub(super) fn policy_counts_spends(&self) -> bool {
        let now = self.clock.unix_ms() / 1000;
        lock(&self.books.policy)
            .active(now)
            .is_some_and(|p| p.rules().iter().any(|r| r.velocity().is_some()))
    }
}
