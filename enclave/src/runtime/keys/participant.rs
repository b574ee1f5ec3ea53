//! The participant side of every session: check the request, be admitted
//! ([`crate::core::admission`]), take from this node's state what the session needs, run it
//! on a blocking thread, store what it produced, and answer the coordinator.

use super::records::{aux_blob, key_blob};
use super::{Keys, lock};
use crate::core::admission::{Abort, AuxRequest, KeyRequest, Refusal, check_new_key};
use crate::core::phase::{Admit, PeerKind, Request};
use crate::provisioning::PeerMessage;
use crate::runtime::{Blobs, Node};
use crate::threshold::request::{
    FailureKind, Outcome, RequestError, SessionRequest, Task, Verified,
};
use crate::threshold::router::{Inbound, Routed};
use crate::threshold::runner::{self, RunError};
use mpc::ecdsa::{AuxInfo, Ecdsa, KeyShare, PoolKey, Signature};
use mpc::{DerivationPath, Envelope, KeyId, NodeId, Scheme, SessionError, SessionId, SigningSet};
use protocol::ToSign;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;

/// Why this node does not take part in a session it was asked to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotTaken {
    #[error("node has failed and refuses all work")]
    Failed,
    #[error("node is not running yet ({phase})")]
    NotRunning { phase: String },
    #[error("no manifest yet")]
    NoManifest,
    #[error(transparent)]
    Id(#[from] ids::IdError),
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// A session request this node checked and registered, not yet run.
pub(super) struct Admitted {
    verified: Verified,
    inbox: std::sync::mpsc::Receiver<Inbound>,
    started: Instant,
}

/// What a session needs, taken from this node's state before it starts.
enum Input {
    AuxInfo,
    Keygen(Arc<AuxInfo>),
    Presign(Arc<KeyShare>, SigningSet),
    Sign(Arc<KeyShare>, SigningSet, ToSign),
    SignPresigned(Box<mpc::ecdsa::Presignature>, ToSign),
}

impl Input {
    /// What a signing session signs, for the node's audit log.
    fn digest(&self) -> Option<[u8; 32]> {
        match self {
            Input::Sign(_, _, to_sign) | Input::SignPresigned(_, to_sign) => {
                Some(to_sign.prehash())
            }
            _ => None,
        }
    }
}

enum Output {
    AuxInfo(AuxInfo),
    Keygen(KeyShare),
    Presign(mpc::ecdsa::Presignature),
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

impl<B: Blobs> Node<B> {
    fn threshold(&self) -> &Keys {
        &self.keys
    }

    /// Checks a session request from `from` and takes part in its session.
    pub(super) async fn participate(self: &Arc<Self>, from: &NodeId, bytes: &[u8]) -> Outcome {
        match self.admit(from, bytes) {
            Ok(admitted) => self.run_admitted(admitted).await,
            Err(outcome) => outcome,
        }
    }

    /// A session request from `from`, arrived on its link: admit it at once (so that a later
    /// abort on the same link finds it), take part, and send the outcome back on this
    /// node's link to it.
    pub(in crate::runtime) fn session_start(self: &Arc<Self>, from: NodeId, request: Vec<u8>) {
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

    /// Checks a session request and registers its session, without waiting: a peer's link
    /// delivers the request, then the coordinator's later messages for it (an abort), in
    /// order, so the session must exist before the next message is read.
    fn admit(&self, from: &NodeId, bytes: &[u8]) -> Result<Admitted, Outcome> {
        let verified = self.verify_request(from, bytes).map_err(|reason| {
            tracing::warn!(%from, %reason, "session request refused");
            Outcome::failed(FailureKind::Refused, reason.to_string())
        })?;
        let aux = match &verified.task {
            Task::AuxInfo { group, renew } => Some(AuxRequest {
                group,
                held: self.threshold().aux_for(group).is_some(),
                renew: *renew,
            }),
            _ => None,
        };
        let key = match &verified.task {
            Task::Keygen { key_id, .. } => {
                let shares = lock(&self.threshold().shares);
                Some((key_id, shares.contains_key(key_id), shares.len()))
            }
            _ => None,
        };
        let key = key.map(|(key_id, exists, held)| KeyRequest {
            key_id,
            exists,
            held,
        });
        let session = verified.session;
        let now = self.now();
        self.threshold()
            .admissions()
            .admit(session, &verified.coordinator, aux, key, now)
            .map_err(|refusal| {
                if let Refusal::AuxInfo(refusal) = &refusal {
                    tracing::warn!(coordinator = %verified.coordinator, %refusal, "auxiliary-info session refused");
                }
                Outcome::failed(refusal.kind(), refusal.to_string())
            })?;
        // Register at once: the other participants' first messages may already be arriving.
        let registered = self.threshold().router().register(session, now);
        let inbox = registered.map_err(|e| {
            self.threshold().admissions().finish(&session);
            Outcome::failed(FailureKind::Refused, e.to_string())
        })?;
        tracing::info!(%session, step = verified.task.name(), coordinator = %verified.coordinator, "session started");
        Ok(Admitted {
            verified,
            inbox,
            started: now,
        })
    }

    async fn run_admitted(self: &Arc<Self>, admitted: Admitted) -> Outcome {
        let Admitted {
            verified,
            inbox,
            started,
        } = admitted;
        let session = verified.session;
        let name = verified.task.name();
        let outcome = match &verified.task {
            Task::Record { .. } => self.record_here(&verified).await,
            _ => match self.authorize(&verified).await {
                Ok(to_sign) => match self.prepare(&verified, to_sign) {
                    Ok(input) => self.run_session(verified, input, inbox).await,
                    Err(outcome) => outcome,
                },
                Err(outcome) => outcome,
            },
        };
        self.threshold().router().end(session);
        self.threshold().admissions().finish(&session);
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
                ms = self.now().saturating_duration_since(started).as_millis() as u64,
                "session finished"
            ),
        }
        outcome
    }

    fn verify_request(&self, from: &NodeId, bytes: &[u8]) -> Result<Verified, NotTaken> {
        let phase = self.phase();
        match phase.admits(Request::Peer(PeerKind::SessionStart)) {
            Admit::Serve => {}
            Admit::Failed => return Err(NotTaken::Failed),
            Admit::NotYet | Admit::Never => {
                return Err(NotTaken::NotRunning {
                    phase: phase.to_string(),
                });
            }
        }
        let trust = phase.trust().ok_or(NotTaken::NoManifest)?;
        let (hash, members) = trust.members()?;
        Ok(SessionRequest::verify(
            bytes, from, &self.me, &hash, &members,
        )?)
    }

    /// Everything a session needs from this node's state, checked before it starts;
    /// `to_sign` is what [`Self::authorize`] found the request asks to sign.
    fn prepare(&self, verified: &Verified, to_sign: Option<ToSign>) -> Result<Input, Outcome> {
        let refuse = |reason: String| Outcome::failed(FailureKind::Refused, reason);
        let share = |key_id: &KeyId| {
            self.threshold()
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
                let (exists, held) = {
                    let shares = lock(&self.threshold().shares);
                    (shares.contains_key(key_id), shares.len())
                };
                check_new_key(key_id, exists, held)
                    .map_err(|r| Outcome::failed(r.kind(), r.to_string()))?;
                match self.threshold().aux_for(group) {
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
                let to_sign = to_sign.ok_or_else(|| refuse("nothing to sign".to_owned()))?;
                Input::Sign(share, set, to_sign)
            }
            Task::SignPresigned {
                key_id,
                signers,
                presignature,
                ..
            } => {
                let share = share(key_id)?;
                let set = signing_set(&share, signers)?;
                let to_sign = to_sign.ok_or_else(|| refuse("nothing to sign".to_owned()))?;
                let pool_key = PoolKey {
                    key_id: key_id.clone(),
                    signers: set,
                    path: DerivationPath::master(),
                };
                // Taken out of the pool here: whatever happens next, it is never used again.
                let taken = lock(&self.threshold().presignatures).take(&pool_key, presignature);
                match taken {
                    Some(p) => Input::SignPresigned(Box::new(p), to_sign),
                    None => {
                        return Err(Outcome::failed(
                            FailureKind::PresignatureMissing,
                            format!("presignature {presignature} is not held"),
                        ));
                    }
                }
            }
            Task::Record { .. } => return Err(refuse("a record runs no session".to_owned())),
        })
    }

    /// Runs the session on a blocking thread, then stores what it produced.
    async fn run_session(
        self: &Arc<Self>,
        verified: Verified,
        input: Input,
        inbox: std::sync::mpsc::Receiver<Inbound>,
    ) -> Outcome {
        let me = self.me.clone();
        let node = self.clone();
        let round_timeout = self.threshold().round_timeout;
        // The whole session, however its messages trickle in: what the coordinator waits.
        let limit = self.threshold().round_timeout * 8;
        let prime_wait = self.threshold().prime_wait;
        let primes = self.threshold().primes.clone();
        let session = verified.session;
        let task = verified.task.clone();
        let bytes = verified.bytes.clone();
        let digest = input.digest();
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
                    let mut s = Ecdsa::aux_info(&bytes, &group, &me, primes).map_err(made)?;
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
                        Ecdsa::keygen(&bytes, key_id, &group, &me, t, &aux).map_err(made)?;
                    runner::drive(&mut s, &inbox, round_timeout, limit, post).map(Output::Keygen)
                }
                (Task::Presign { .. }, Input::Presign(share, set)) => {
                    let mut s = Ecdsa::presign(&bytes, share, &set, &me, None).map_err(made)?;
                    runner::drive(&mut s, &inbox, round_timeout, limit, post).map(Output::Presign)
                }
                (Task::Sign { path, .. }, Input::Sign(share, set, to_sign)) => {
                    let path = (!path.is_master()).then_some(&path);
                    let mut s =
                        Ecdsa::sign(&bytes, share, &set, &me, to_sign, path).map_err(made)?;
                    runner::drive(&mut s, &inbox, round_timeout, limit, post).map(Output::Signature)
                }
                (Task::SignPresigned { .. }, Input::SignPresigned(p, to_sign)) => {
                    let mut s =
                        Ecdsa::sign_presigned(&bytes, *p, &me, &to_sign, None).map_err(made)?;
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
        self.store_output(session, &verified.task, output, digest)
            .await
    }

    async fn store_output(
        &self,
        session: SessionId,
        task: &Task,
        output: Output,
        digest: Option<[u8; 32]>,
    ) -> Outcome {
        let storage =
            |e: &dyn std::fmt::Display| Outcome::failed(FailureKind::Storage, e.to_string());
        match output {
            Output::AuxInfo(aux) => {
                let bytes = match aux.to_sealed_bytes() {
                    Ok(b) => b,
                    Err(e) => return storage(&e),
                };
                let blob = [session.as_bytes().as_slice(), &bytes].concat();
                let blob = zeroize::Zeroizing::new(blob);
                if let Err(e) = self.seal_new(&aux_blob(aux.group()), &blob).await {
                    return storage(&e);
                }
                lock(&self.threshold().aux).insert(aux.group().clone(), (session, Arc::new(aux)));
                Outcome::AuxInfo
            }
            Output::Keygen(share) => {
                let public = match share.public_key() {
                    Ok(p) => p,
                    Err(e) => return storage(&e),
                };
                let bytes = match share.to_sealed_bytes() {
                    Ok(b) => b,
                    Err(e) => return storage(&e),
                };
                let public_bytes = public.to_sec1_compressed();
                if let Err(e) = self.audit_key_created(task, &public_bytes).await {
                    return storage(&e);
                }
                if let Err(e) = self.seal_new(&key_blob(share.key_id()), &bytes).await {
                    return storage(&e);
                }
                tracing::info!(key = %share.key_id(), public_key = %hex::encode(public.to_sec1_compressed()), "key share sealed");
                lock(&self.threshold().shares).insert(share.key_id().clone(), Arc::new(share));
                Outcome::Keygen {
                    public_key: hex::encode(public.to_sec1_compressed()),
                }
            }
            Output::Presign(p) => {
                let evicted = lock(&self.threshold().presignatures).put(session, p);
                if evicted > 0 {
                    tracing::info!(evicted, "oldest presignatures destroyed to make room");
                }
                Outcome::Presigned
            }
            Output::Signature(sig) => {
                if let Task::Sign {
                    authority, input, ..
                }
                | Task::SignPresigned {
                    authority, input, ..
                } = task
                {
                    let expires = protocol::authority::Request::parse(authority.request_bytes())
                        .map(|r| r.expires_ms)
                        .unwrap_or(u64::MAX);
                    if let Err(e) = self.mark_signed(authority.id(), *input, expires).await {
                        // The signature exists now; a later replay of it is the risk.
                        tracing::error!(error = %e, "could not remember a signature for the replay check");
                        return storage(&e);
                    }
                    if let Err(e) = self.audit_signature(task, digest, &sig).await {
                        return storage(&e);
                    }
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

    /// An abort of `session` from `from`: only its coordinator may end it here.
    pub(in crate::runtime) fn abort_session(&self, from: &NodeId, session: SessionId) {
        let verdict = self.threshold().admissions().abort(from, &session);
        match verdict {
            Abort::End => {
                tracing::info!(%session, %from, "session aborted by its coordinator");
                self.threshold().router().end(session);
            }
            Abort::NotCoordinator { .. } => {
                tracing::warn!(%session, %from, "abort from a node that does not coordinate the session refused");
            }
            Abort::NoSession => {
                // The start came first on the same link and was refused, or the session has
                // already ended here.
                tracing::info!(%session, %from, "abort for no running session ignored");
            }
        }
    }

    /// A protocol envelope from `from`, for a session running (or about to run) here.
    pub(in crate::runtime) fn deliver(&self, from: &NodeId, bytes: &[u8]) {
        let envelope = match Envelope::decode(bytes) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%from, error = %e, "protocol message refused");
                return;
            }
        };
        let now = self.now();
        let mut router = self.threshold().router();
        for (peer, session) in router.expire(now) {
            tracing::warn!(%peer, %session, "message for a session that never started here dropped");
        }
        if let Routed::Refused(reason) = router.route(from.clone(), envelope, now) {
            tracing::warn!(%from, %reason, "protocol message refused");
        }
    }
}
