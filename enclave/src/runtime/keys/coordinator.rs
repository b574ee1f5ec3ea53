//! The coordinator side: an operator's request becomes one or more sessions this node
//! coordinates ([`crate::core::coordination`] decides who is waited for, when to abort
//! and what the operator is told), and their outcomes become the answer.

use super::{CreatedKey, OperationError, Pending, SignedDigest, lock};
use crate::core::coordination::{Action, Coordination, agreed, any_failed};
use crate::provisioning::PeerMessage;
use crate::runtime::{Blobs, Node};
use crate::threshold::request::{FailureKind, Operation, Outcome, SessionRequest, Task};
use mpc::ecdsa::{Ecdsa, Signature};
use mpc::{KeyId, NodeId, PartySet, PublicKey, Scheme, SessionId};
use protocol::authority::Authority;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

impl<B: Blobs> Node<B> {
    /// The manifest's hash and node ids.
    fn manifest_view(&self) -> Result<([u8; 32], Vec<NodeId>), OperationError> {
        let trust = self.trust().ok_or(OperationError::NoManifest)?;
        Ok(trust.members()?)
    }

    /// Runs `operation` at every participant, this node included; returns each
    /// participant's outcome once all have ended, or the session is over
    /// ([`Coordination`]).
    pub(super) async fn coordinate(
        self: &Arc<Self>,
        operation: Operation,
    ) -> Result<(SessionId, BTreeMap<NodeId, Outcome>), OperationError> {
        let (hash, members) = self.manifest_view()?;
        let mut nonce = [0u8; 32];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| OperationError::Randomness)?;
        let bytes = SessionRequest::new(&self.me, &hash, &nonce, operation).encode()?;
        let verified = SessionRequest::verify(&bytes, &self.me, &self.me, &hash, &members)?;
        let session = verified.session;
        let (coordination, actions) = Coordination::start(
            session,
            self.me.clone(),
            verified.task.participants(),
            self.now(),
            self.session_deadline(&verified.task),
        );
        let request: [u8; 32] = Sha256::digest(&bytes).into();
        let wake = Arc::new(tokio::sync::Notify::new());
        lock(&self.keys.pending).insert(
            request,
            Pending {
                coordination,
                wake: wake.clone(),
            },
        );
        let bytes = Arc::new(bytes);
        self.act(session, &bytes, request, actions);
        loop {
            let wake_at = {
                let pending = lock(&self.keys.pending);
                match pending.get(&request) {
                    Some(p) if !p.coordination.is_over(self.now()) => p.coordination.wake_at(),
                    _ => break,
                }
            };
            let wait = wake_at.saturating_duration_since(self.now());
            let _ = tokio::time::timeout(wait, wake.notified()).await;
        }
        let Some(pending) = lock(&self.keys.pending).remove(&request) else {
            return Ok((session, BTreeMap::new()));
        };
        let (outcomes, actions) = pending.coordination.finish();
        self.act(session, &bytes, request, actions);
        Ok((session, outcomes))
    }

    /// Does what a coordination decided.
    fn act(
        self: &Arc<Self>,
        session: SessionId,
        bytes: &Arc<Vec<u8>>,
        request: [u8; 32],
        actions: Vec<Action>,
    ) {
        let runtime = tokio::runtime::Handle::current();
        for action in actions {
            match action {
                Action::Start { to } => self.post(
                    &runtime,
                    &to,
                    PeerMessage::SessionStart {
                        request: bytes.to_vec(),
                    },
                ),
                Action::RunHere => {
                    let node = self.clone();
                    let bytes = bytes.clone();
                    tokio::spawn(async move {
                        let me = node.me.clone();
                        let outcome = node.participate(&me, &bytes).await;
                        node.outcome_arrived(&me, request, outcome);
                    });
                }
                Action::Abort { to } => {
                    self.keys.router().end(session);
                    for peer in &to {
                        self.post(
                            &runtime,
                            peer,
                            PeerMessage::SessionAbort {
                                session: *session.as_bytes(),
                            },
                        );
                    }
                }
            }
        }
    }

    /// A participant's outcome for a session this node coordinates, from its link.
    pub(in crate::runtime) fn session_done(
        self: &Arc<Self>,
        from: &NodeId,
        request: [u8; 32],
        outcome: &[u8],
    ) {
        let outcome = Outcome::decode(outcome)
            .unwrap_or_else(|e| Outcome::failed(FailureKind::Refused, e.to_string()));
        self.outcome_arrived(from, request, outcome);
    }

    fn outcome_arrived(self: &Arc<Self>, from: &NodeId, request: [u8; 32], outcome: Outcome) {
        let now = self.now();
        let decided = {
            let mut pending = lock(&self.keys.pending);
            let Some(entry) = pending.get_mut(&request) else {
                tracing::warn!(%from, "outcome for no pending session dropped");
                return;
            };
            let session = entry.coordination.session();
            match entry.coordination.on_outcome(from, outcome, now) {
                Ok(actions) => {
                    entry.wake.notify_one();
                    (session, actions)
                }
                Err(dropped) => {
                    tracing::warn!(%from, "{dropped}");
                    return;
                }
            }
        };
        let (session, actions) = decided;
        if !actions.is_empty() {
            // The session request itself is only sent by `Action::Start`, which a later
            // outcome never asks for.
            self.act(session, &Arc::new(Vec::new()), request, actions);
        }
    }

    /// Longest a session may take, as the coordinator waits for its participants.
    fn session_deadline(&self, task: &Task) -> Duration {
        let rounds = self.keys.round_timeout * 8;
        match task {
            Task::AuxInfo { .. } => rounds + self.keys.prime_wait,
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
        authority: &Authority,
    ) -> Result<CreatedKey, OperationError> {
        let (_, members) = self.manifest_view()?;
        let parties = if parties.is_empty() { members } else { parties };
        let group = PartySet::new(parties).map_err(OperationError::Parties)?;
        if group.index_of(&self.me).is_none() {
            return Err(OperationError::NotParty(self.me.clone()));
        }
        mpc::Threshold::new(threshold, &group)?;
        if self.keys.share(&key_id).is_some() {
            return Err(OperationError::Exists(key_id));
        }
        let ids = |g: &PartySet| g.nodes().iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut aux = match self.keys.aux_for(&group) {
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
                    authority: authority.clone(),
                })
                .await?;
            if any_failed(&outcomes, FailureKind::AuxInfoMissing) && attempt == 0 {
                tracing::info!("a party lacks this party set's auxiliary info; generating it");
                aux = self.aux_info(&group, true).await?;
                continue;
            }
            return super::requests::created_key(&key_id, &outcomes, ids(&group), threshold);
        }
        Err(OperationError::AuxKeptMissing)
    }

    /// Runs auxiliary info for `group`. Without `renew`, parties that already hold it
    /// refuse; this node then lacks what they hold, and asks again for a renewal.
    async fn aux_info(
        self: &Arc<Self>,
        group: &PartySet,
        renew: bool,
    ) -> Result<SessionId, OperationError> {
        let started = self.now();
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
            ms = self.now().saturating_duration_since(started).as_millis() as u64,
            "auxiliary info generated"
        );
        Ok(session)
    }
}

pub(super) fn finish_signature(
    outcomes: &BTreeMap<NodeId, Outcome>,
    public: &PublicKey,
    prehash: [u8; 32],
    signers: Vec<String>,
    presigned: bool,
) -> Result<SignedDigest, OperationError> {
    let step = if presigned {
        "signing from a presignature"
    } else {
        "signing"
    };
    let (r, s, v) = agreed(step, outcomes, |o| match o {
        Outcome::Signature { r, s, v } => Some((r.clone(), s.clone(), *v)),
        _ => None,
    })?;
    let parse = |h: &str| -> Result<[u8; 32], OperationError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(h, &mut out)?;
        Ok(out)
    };
    let signature =
        Signature::from_parts(parse(&r)?, parse(&s)?, v).map_err(OperationError::Signature)?;
    // Checked again here, against the key the operator expects, independently of the
    // sessions that produced it.
    signature
        .verify(public, &prehash)
        .map_err(|source| OperationError::Unverified { step, source })?;
    Ok(SignedDigest {
        scheme: Ecdsa::ID,
        r,
        s,
        v,
        public_key: hex::encode(public.to_sec1_compressed()),
        digest: hex::encode(prehash),
        signers,
        presigned,
    })
}
