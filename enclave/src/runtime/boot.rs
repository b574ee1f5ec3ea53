//! Boot: the manifest stored at the parent, then provisioning as
//! [`crate::core::provisioning`] decides it (this module only lists blobs, asks peers and
//! opens stores when told to), then the manifest's confirmation against the sealed copy,
//! the sealed key shares, and the move to running.

use super::{
    Blobs, Escrow, MANIFEST_BLOB, NODE_INFO_BLOB, Node, NodeError, SEALED_MANIFEST_BLOB, Sealed,
    Trust, lock,
};
use crate::core::phase::Phase;
use crate::core::provisioning::{
    self, Confirmation, EscrowPlan, Open, Provisioned, Provisioning, Step,
};
use crate::sealed::{DataKey, SealError, SealedStore};
use manifest::{AcceptedManifest, SignedManifest};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Mutex as AsyncMutex;

/// A store provisioning opened, not yet published.
pub(super) struct Opened<B> {
    store: SealedStore<B>,
    created_ms: u64,
    /// The manifest under which the peers were asked for the key.
    basis: Arc<Trust>,
    /// A key to escrow with every peer of the confirmed manifest (a new one, or one
    /// recovered into a new store).
    escrow: Option<Arc<DataKey>>,
}

/// Why the manifest stored at the parent is not used.
#[derive(Debug, thiserror::Error)]
enum StoredManifest {
    #[error("stored manifest is invalid: {0}")]
    Invalid(#[source] manifest::ManifestError),
    #[error("stored manifest is not approved: {0}")]
    NotApproved(#[source] manifest::ManifestError),
    #[error(transparent)]
    NotListed(#[from] super::NotListed),
}

fn parse_created(bytes: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value.get("created_ms")?.as_u64()
}

impl<B: Blobs> Node<B> {
    /// The manifest stored at the parent, accepted provisionally: the sealed copy
    /// confirms or overrides it once the data key is back ([`Self::confirm_and_run`]). A
    /// parent that is not reachable yet (started after the node, or restarting) is
    /// waited for; a stored manifest that is invalid, or does not list this node, is
    /// ignored (logged), and the node waits for operators to submit one.
    pub(super) async fn load_stored_manifest_when_reachable(&self) -> Option<AcceptedManifest> {
        let stored = loop {
            match self.blobs.get(MANIFEST_BLOB).await {
                Ok(stored) => break stored,
                Err(e) => {
                    tracing::warn!(error = %e, "parent's blob store not reachable yet; retrying");
                    tokio::time::sleep(self.config.retry_interval).await;
                }
            }
        };
        let bytes = stored?;
        let accepted = SignedManifest::parse(&bytes)
            .map_err(StoredManifest::Invalid)
            .and_then(|signed| manifest::accept(None, signed).map_err(StoredManifest::NotApproved))
            .and_then(|accepted| {
                self.lists_this_node(&accepted)?;
                Ok(accepted)
            });
        match accepted {
            Ok(accepted) => Some(accepted),
            Err(reason) => {
                tracing::warn!(%reason, "manifest stored at the parent ignored; waiting for operators to submit one");
                None
            }
        }
    }

    /// Asks peers for the data key, round by round as [`Provisioning`] decides, until it is
    /// recovered or created, and returns the sealed store it opens (not yet published:
    /// see [`Self::confirm_and_run`]).
    pub(super) async fn provision(&self) -> Result<Opened<B>, NodeError> {
        let mut machine = Provisioning::new(self.config.retry_interval);
        let mut step = machine.next_round();
        // The manifest whose peers are asked this round: the reference the manifest is
        // confirmed against when the store holds no sealed copy.
        let mut basis = self.basis()?;
        let mut released: BTreeMap<String, DataKey> = BTreeMap::new();
        let mut opened: Option<(SealedStore<B>, u64)> = None;
        let mut escrow: Option<Arc<DataKey>> = None;
        loop {
            step = match step {
                Step::ListBlobs => {
                    basis = self.basis()?;
                    released.clear();
                    match self.blobs.list("").await {
                        Ok(names) => machine.listed(provisioning::has_state(&names), self.now()),
                        Err(e) => machine.list_failed(&e, self.now()),
                    }
                }
                Step::AskPeers => {
                    let mut answers = BTreeMap::new();
                    for peer in basis.peers(&self.config.node_id) {
                        let (answer, key) = self.ask_release(&peer).await;
                        if let Some(key) = key {
                            released.insert(peer.clone(), key);
                        }
                        answers.insert(peer, answer);
                    }
                    let unchanged = self.trust().is_some_and(|t| Arc::ptr_eq(&t, &basis));
                    if !unchanged {
                        tracing::info!("the manifest changed while peers were asked; asking again");
                    }
                    machine.answered(answers, unchanged, self.now())
                }
                Step::TryKey { peer } => {
                    let open = match released.remove(&peer) {
                        Some(key) => match self.open_store(key, true).await {
                            Ok(store) => {
                                opened = Some(store);
                                Open::Opened
                            }
                            Err(open) => {
                                if let Open::WrongKey(reason) = &open {
                                    tracing::warn!(%peer, %reason, "key released by peer does not open the sealed state; not used");
                                }
                                open
                            }
                        },
                        None => Open::Retry(format!("{peer} released no key")),
                    };
                    machine.opened(open, self.now())
                }
                Step::RecoverFresh { from } => {
                    let Some(key) = from.first().and_then(|peer| released.remove(peer)) else {
                        step = machine.next_round();
                        continue;
                    };
                    let key = Arc::new(key);
                    let copy = DataKey::from_bytes(key.expose_secret());
                    escrow = Some(key);
                    let open = match self.open_store(copy, false).await {
                        Ok(store) => {
                            opened = Some(store);
                            Open::Opened
                        }
                        Err(open) => open,
                    };
                    machine.opened(open, self.now())
                }
                Step::CreateKey => {
                    let open = match DataKey::generate() {
                        Ok(key) => {
                            let key = Arc::new(key);
                            escrow = Some(key.clone());
                            match self.open_store_new(&key).await {
                                Ok(store) => {
                                    opened = Some(store);
                                    Open::Opened
                                }
                                Err(e) => Open::Retry(e.to_string()),
                            }
                        }
                        Err(e) => Open::Fatal(e.to_string()),
                    };
                    machine.opened(open, self.now())
                }
                Step::Wait { reason, until } => {
                    self.wait(reason)?;
                    tokio::time::sleep(until.saturating_duration_since(self.now())).await;
                    machine.next_round()
                }
                Step::Fail { reason } => return Err(self.fail(reason)),
                Step::Done(how) => {
                    match &how {
                        Provisioned::Recovered { peer, liars } => {
                            for liar in liars {
                                tracing::warn!(peer = %liar, "peer released a key that is not this node's; not used");
                            }
                            tracing::info!(peer = %peer, "data key recovered: it opened the sealed state");
                        }
                        Provisioned::RecoveredFresh { from } => tracing::warn!(
                            peers = %from.join(", "),
                            "no sealed state at the parent; every peer released the same key: new store under it"
                        ),
                        Provisioned::Created => tracing::info!("first start: data key created"),
                    }
                    let Some((store, created_ms)) = opened.take() else {
                        return Err(self.fail("provisioning ended without a store".to_owned()));
                    };
                    return Ok(Opened {
                        store,
                        created_ms,
                        basis,
                        escrow: if how.needs_escrow() { escrow } else { None },
                    });
                }
            };
        }
    }

    fn basis(&self) -> Result<Arc<Trust>, NodeError> {
        self.trust()
            .ok_or_else(|| self.fail("provisioning without a manifest".to_owned()))
    }

    /// Opens the sealed store with a key a peer released and reads the node's state.
    /// `expect_state`: the sealed index existed when the peers were asked; without it,
    /// an index that has gone since is not taken for a new store (the key is unproven).
    async fn open_store(
        &self,
        key: DataKey,
        expect_state: bool,
    ) -> Result<(SealedStore<B>, u64), Open> {
        let store = SealedStore::open(self.blobs.clone(), key, &self.config.node_id)
            .await
            .map_err(|e| Open::classify(&e))?;
        if store.index().counter() == 0 {
            // No index: a new store.
            if expect_state {
                return Err(Open::Retry(
                    "the sealed index is gone from the parent".to_owned(),
                ));
            }
            // The parent lost everything but every peer still held the key: start the
            // state afresh under the same key (under a new store id, so no blob of the
            // earlier store can come back).
            return self
                .finish_new_store(store)
                .await
                .map_err(|e| Open::Retry(e.to_string()));
        }
        let info = store
            .get(NODE_INFO_BLOB)
            .await
            .map_err(|e| Open::classify(&e))?;
        let created = match info {
            Some(bytes) => parse_created(&bytes)
                .ok_or_else(|| Open::Fatal(format!("sealed {NODE_INFO_BLOB} is not readable")))?,
            None => {
                return Err(Open::Fatal(format!(
                    "sealed state exists but {NODE_INFO_BLOB} is missing"
                )));
            }
        };
        Ok((store, created))
    }

    async fn open_store_new(&self, key: &DataKey) -> Result<(SealedStore<B>, u64), SealError> {
        let copy = DataKey::from_bytes(key.expose_secret());
        let store = SealedStore::open(self.blobs.clone(), copy, &self.config.node_id).await?;
        self.finish_new_store(store).await
    }

    async fn finish_new_store(
        &self,
        mut store: SealedStore<B>,
    ) -> Result<(SealedStore<B>, u64), SealError> {
        let created = self.clock.unix_ms();
        store
            .put(
                NODE_INFO_BLOB,
                format!("{{\"created_ms\":{created}}}").as_bytes(),
            )
            .await?;
        Ok((store, created))
    }

    /// Once the sealed store is open: checks the manifest the node now has against the
    /// sealed copy or, in a store that has none yet (a new one), against the manifest
    /// under which the peers were asked for the key ([`provisioning::confirm`]). The same
    /// manifest or an approved successor is kept (and sealed); an older or unrelated one
    /// is replaced by that reference, which is also written back to the parent. Then the
    /// sealed key shares are read, and only then does the node run, with the store and
    /// the data key for the confirmed manifest's peers, in one step: nothing reads,
    /// writes or sends an escrow under a provisional manifest, however long the parent
    /// stalls these reads, and a manifest submitted meanwhile waits for this to finish.
    pub(super) async fn confirm_and_run(&self, opened: Opened<B>) -> Result<(), NodeError> {
        let Opened {
            mut store,
            created_ms,
            basis,
            escrow,
        } = opened;
        let _change = self.manifest_change.lock().await;
        let Some(current) = self.trust() else {
            return Err(self.fail("no manifest after provisioning".to_owned()));
        };
        let sealed = match store.get(SEALED_MANIFEST_BLOB).await {
            Ok(None) => None,
            Ok(Some(bytes)) => Some(
                SignedManifest::parse(&bytes)
                    .and_then(|signed| manifest::accept(None, signed))
                    .map_err(|e| self.fail(format!("sealed manifest does not verify: {e}")))?,
            ),
            Err(e) => return Err(self.fail(format!("sealed manifest unreadable: {e}"))),
        };
        match provisioning::confirm(&current.manifest, sealed.as_ref(), &basis.manifest) {
            Confirmation::Confirmed => {}
            Confirmation::Seal => {
                store
                    .put(SEALED_MANIFEST_BLOB, current.manifest.envelope_bytes())
                    .await
                    .map_err(|e| self.fail(format!("sealing the manifest: {e}")))?;
                tracing::info!(version = current.manifest.version(), hash = %current.manifest.hash(), "manifest confirmed and sealed");
            }
            Confirmation::Revert {
                reason,
                seal_reference,
            } => {
                let reference = sealed.unwrap_or_else(|| basis.manifest.clone());
                tracing::warn!(%reason, version = reference.version(), sealed = !seal_reference,
                    "parent's manifest refused; running under the sealed one (in a new store: the one the peers were asked under)");
                if seal_reference {
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
                self.install(reference)?;
            }
        }
        if let Err(e) = self.load_keys(&store).await {
            return Err(self.fail(format!("sealed key shares refused: {e}")));
        }
        if let Err(e) = self.load_governance(&store).await {
            return Err(self.fail(format!("sealed policy, ledger or requests refused: {e}")));
        }
        let Some(trust) = self.trust() else {
            return Err(self.fail("no manifest after provisioning".to_owned()));
        };
        if let Err(e) = self.load_audit(&mut store, &trust).await {
            return Err(self.fail(format!("sealed audit log refused: {e}")));
        }
        let escrow = match escrow {
            Some(key) => Escrow {
                plan: EscrowPlan::new(trust.peers(&self.config.node_id)),
                key: Some(key),
            },
            None => Escrow::default(),
        };
        let sealed = Arc::new(Sealed {
            store: AsyncMutex::new(store),
            created_ms,
            escrow: Mutex::new(escrow),
        });
        self.advance(Phase::Running {
            trust,
            store: sealed,
        })
    }

    /// Sends the data key to every peer of the manifest the node runs now that does not
    /// yet hold it.
    pub(super) async fn retry_escrows(&self) {
        let Some(sealed) = self.sealed() else { return };
        let current = self.peer_ids().into_iter().collect();
        let (pending, key) = {
            let mut escrow = lock(&sealed.escrow);
            escrow.plan.retain(&current);
            if escrow.plan.is_done() {
                escrow.key = None;
            }
            (escrow.plan.pending().clone(), escrow.key.clone())
        };
        let Some(key) = key else { return };
        for peer in pending {
            match super::outbound::bounded("escrow", self.send_escrow(&peer, &key)).await {
                Ok(()) => {
                    tracing::info!(%peer, "data key escrowed");
                    let mut escrow = lock(&sealed.escrow);
                    escrow.plan.stored(&peer);
                    if escrow.plan.is_done() {
                        escrow.key = None;
                    }
                }
                Err(e) => tracing::warn!(%peer, error = %e, "escrow not stored yet"),
            }
        }
    }
}
