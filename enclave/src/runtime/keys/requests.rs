//! The node an operator asked: it holds the operators' requests while approvals arrive
//! ([`crate::core::requests`]), decides each with its own policy like every other node
//! ([`crate::core::authorization`]), and once its own decision allows one, carries it
//! out: one signing session per digest (a PSBT has one per input) or a key creation. Every
//! participant of those sessions checks the request and its approvals again itself: what
//! this node decided convinces nobody else.

use super::{OperationError, lock};
use crate::core::admission::admit_key_creation;
use crate::core::authorization::{Allowed, Denied, Parsed, SigningKey, check_sign};
use crate::core::coordination::agreed;
use crate::operator_api::{
    CreatedKey, KeyCommand, MAX_LISTED_REQUESTS, RequestAnswer, RequestStatus, SignedDigest,
};
use crate::runtime::{Blobs, Node};
use crate::threshold::request::{Operation, Outcome};
use mpc::ecdsa::{Ecdsa, KeyShare, PoolKey};
use mpc::{DerivationPath, KeyId, NodeId, Scheme};
use protocol::ToSign;
use protocol::authority::{Action, Authority, Authorized};
use std::sync::Arc;

/// The short name of what a request asks, as lists show it.
fn action_name(action: &Action) -> String {
    match action {
        Action::Sign { payload, .. } => format!("sign {}", payload.kind()),
        Action::CreateKey { .. } => "create-key".to_owned(),
    }
}

fn request_id(text: &str) -> Result<[u8; 32], OperationError> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(text, &mut id).map_err(|_| OperationError::RequestId)?;
    Ok(id)
}

impl<B: Blobs> Node<B> {
    /// An operator's key command, answered with JSON. `operator` is who signed it.
    pub(in crate::runtime) async fn key_command(
        self: &Arc<Self>,
        command: KeyCommand,
        operator: &str,
    ) -> Result<String, OperationError> {
        let now = self.clock.unix_ms();
        match command {
            KeyCommand::Submit { authority } => {
                let authorized = self.with_governance(|g| {
                    authority.verify(g.manifest, g.manifest_hash, g.now_ms)
                })??;
                if authorized.request().requester != operator {
                    return Err(OperationError::NotRequester);
                }
                let id = *authorized.id();
                let action = action_name(&authorized.request().action);
                tracing::info!(request = %hex::encode(id), %operator, %action, key = %authorized.request().key_id, "request submitted");
                self.audit_request(&authorized).await?;
                lock(&self.books.requests).submit(&authorized, authority, &action, now)?;
                self.seal_requests().await?;
                self.decide(id).await
            }
            KeyCommand::Approve {
                request_id: text,
                approval,
            } => {
                let id = request_id(&text)?;
                if approval.operator != operator {
                    return Err(OperationError::NotRequester);
                }
                let authority = lock(&self.books.requests).approve(&id, approval, now)?;
                // Whole again: a forged approval is refused here and never stored.
                self.with_governance(|g| authority.verify(g.manifest, g.manifest_hash, g.now_ms))??;
                tracing::info!(request = %text, %operator, "request approved");
                self.audit_approval(&id, operator).await?;
                {
                    let mut book = lock(&self.books.requests);
                    let answer = book.get(&id).map(|h| h.answer.clone());
                    if let Some(answer) = answer {
                        book.update(&id, authority, answer);
                    }
                }
                self.seal_requests().await?;
                self.decide(id).await
            }
            KeyCommand::ShowRequest { request_id: text } => {
                let id = request_id(&text)?;
                let view = lock(&self.books.requests)
                    .get(&id)
                    .map(|h| h.view(now))
                    .ok_or(crate::core::requests::BookError::Unknown(text))?;
                Ok(serde_json::to_string(&view)?)
            }
            KeyCommand::ListRequests => {
                let list = lock(&self.books.requests).list(now, MAX_LISTED_REQUESTS);
                Ok(serde_json::to_string(&list)?)
            }
        }
    }

    /// Decides request `id` as it stands and, when allowed, carries it out.
    async fn decide(self: &Arc<Self>, id: [u8; 32]) -> Result<String, OperationError> {
        let now = self.clock.unix_ms();
        let (authority, answer) = {
            let book = lock(&self.books.requests);
            let held = book
                .get(&id)
                .ok_or_else(|| crate::core::requests::BookError::Unknown(hex::encode(id)))?;
            (held.authority.clone(), held.view(now).answer)
        };
        if answer.status != RequestStatus::Pending {
            return Ok(serde_json::to_string(&answer)?);
        }
        let authorized =
            self.with_governance(|g| authority.verify(g.manifest, g.manifest_hash, g.now_ms))??;
        let result = match authorized.request().action.clone() {
            Action::Sign { .. } => self.decide_signature(id, &authority, &authorized).await,
            Action::CreateKey {
                threshold,
                parties,
                renew_aux,
            } => {
                self.decide_key(id, &authority, &authorized, threshold, parties, renew_aux)
                    .await
            }
        };
        let answer = match result {
            Ok(answer) => answer,
            Err(error) => {
                // The participants did not complete it: the operator gets the typed
                // failure, the request says it failed.
                let mut failed = RequestAnswer::new(&id, RequestStatus::Failed);
                failed.reason = Some(error.to_string());
                lock(&self.books.requests).update(&id, authority, failed);
                self.seal_requests().await?;
                return Err(error);
            }
        };
        lock(&self.books.requests).update(&id, authority, answer.clone());
        self.seal_requests().await?;
        Ok(serde_json::to_string(&answer)?)
    }

    /// A signature request: this node's own decision first, then the sessions.
    async fn decide_signature(
        self: &Arc<Self>,
        id: [u8; 32],
        authority: &Authority,
        authorized: &Authorized,
    ) -> Result<RequestAnswer, OperationError> {
        let request = authorized.request();
        let key_id = KeyId::new(request.key_id.as_str())?;
        let share = self
            .keys
            .share(&key_id)
            .ok_or_else(|| OperationError::NotHeld(key_id.clone()))?;
        let Action::Sign { path, signers, .. } = &request.action else {
            return Err(OperationError::RequestId);
        };
        let named = signers
            .iter()
            .map(|s| NodeId::new(s.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let path = match path {
            Some(p) => DerivationPath::parse(p)?,
            None => DerivationPath::master(),
        };
        let public = share
            .derived_public_key(&path)
            .map_err(OperationError::Derivation)?;
        let public_bytes = public.to_sec1_compressed();
        let mut mandatory: Vec<NodeId> = Vec::new();
        let mut signers = if named.is_empty() {
            self.choose_signers(&share, &mandatory)
        } else {
            named.clone()
        };
        let mut decided = self.decide_with(authority, &key_id, &path, &public_bytes, &signers)?;
        // A rule that names mandatory signers (and a request that names no set): choose
        // them too, and decide again. Each try adds the ones still missing (choosing some
        // may push out others the rule names), so this ends within the rule's list.
        while let (
            true,
            Err(Denied::Refused {
                reason: policy::Refusal::SignersMissing { missing },
                ..
            }),
        ) = (named.is_empty(), &decided)
        {
            let new: Vec<NodeId> = missing
                .iter()
                .filter(|m| !mandatory.contains(m))
                .cloned()
                .collect();
            if new.is_empty() {
                break;
            }
            mandatory.extend(new);
            signers = self.choose_signers(&share, &mandatory);
            decided = self.decide_with(authority, &key_id, &path, &public_bytes, &signers)?;
        }
        self.audit_decision(&id, decided.as_ref()).await?;
        let allowed = match decided {
            Ok(allowed) => allowed,
            // A test-only build (enclave/Cargo.toml): a compromised coordinator that
            // ignores its own decision and asks the participants to sign anyway.
            #[cfg(feature = "insecure-coordinator")]
            Err(denied) => {
                let key = SigningKey {
                    key_id: &key_id,
                    path: &path,
                    public_key: &public_bytes,
                    signers: &signers,
                };
                let skipped = "(the coordinator skipped its own check)".to_owned();
                tracing::warn!(%denied, "insecure coordinator: its own decision ignored");
                match self.with_governance(|g| {
                    crate::core::authorization::propose_sign(g, authority, &key)
                        .and_then(|p| p.allow(&key_id, skipped, 0, g.now_ms / 1000))
                })? {
                    Ok(allowed) => allowed,
                    Err(_) => return Ok(denied_answer(&id, denied)),
                }
            }
            #[cfg(not(feature = "insecure-coordinator"))]
            Err(denied) => return Ok(denied_answer(&id, denied)),
        };
        if !lock(&self.books.requests).start(&id, self.clock.unix_ms()) {
            return Err(OperationError::Running);
        }
        tracing::info!(request = %hex::encode(id), rule = %allowed.rule, policy_version = allowed.policy_version, "request allowed; signing");
        let mut signatures = Vec::new();
        for (input, to_sign) in allowed.parsed.to_sign().into_iter().enumerate() {
            let input = u16::try_from(input).map_err(|_| OperationError::RequestId)?;
            let signed = self
                .sign_input(&key_id, &share, &signers, &path, authority, input, to_sign)
                .await?;
            signatures.push(signed);
        }
        signed_answer(&id, &allowed, &public_bytes, signatures)
    }

    fn decide_with(
        &self,
        authority: &Authority,
        key_id: &KeyId,
        path: &DerivationPath,
        public_key: &[u8; 33],
        signers: &[NodeId],
    ) -> Result<Result<Allowed, Denied>, OperationError> {
        Ok(self.with_governance(|g| {
            check_sign(
                g,
                authority,
                &SigningKey {
                    key_id,
                    path,
                    public_key,
                    signers,
                },
            )
        })?)
    }

    /// One signature of an allowed request: from a pooled presignature when what is
    /// signed is hashed by the nodes at the master path, otherwise with the full protocol.
    #[allow(clippy::too_many_arguments)]
    async fn sign_input(
        self: &Arc<Self>,
        key_id: &KeyId,
        share: &Arc<KeyShare>,
        signers: &[NodeId],
        path: &DerivationPath,
        authority: &Authority,
        input: u16,
        to_sign: ToSign,
    ) -> Result<SignedDigest, OperationError> {
        let set = share
            .signing_set(signers.iter().cloned())
            .map_err(OperationError::Signers)?;
        if set.index_of(&self.me).is_none() {
            return Err(OperationError::NotSigner(self.me.clone()));
        }
        let public = share
            .derived_public_key(path)
            .map_err(OperationError::Derivation)?;
        let names: Vec<String> = set.signers().iter().map(|n| n.to_string()).collect();
        let prehash = to_sign.prehash();
        if let (ToSign::Keccak256Message(_), true) = (&to_sign, path.is_master()) {
            let pool_key = PoolKey {
                key_id: key_id.clone(),
                signers: set.clone(),
                path: DerivationPath::master(),
            };
            let oldest = lock(&self.keys.presignatures).oldest(&pool_key);
            if let Some(presignature) = oldest {
                let (_, outcomes) = self
                    .coordinate(Operation::SignPresigned {
                        key_id: key_id.to_string(),
                        signers: names.clone(),
                        presignature: presignature.to_string(),
                        authority: authority.clone(),
                        input,
                    })
                    .await?;
                if !crate::core::coordination::any_failed(
                    &outcomes,
                    crate::threshold::request::FailureKind::PresignatureMissing,
                ) {
                    return super::coordinator::finish_signature(
                        &outcomes, &public, prehash, names, true,
                    );
                }
                tracing::info!("a signer lacks the pooled presignature; signing without one");
            }
        }
        let (_, outcomes) = self
            .coordinate(Operation::Sign {
                key_id: key_id.to_string(),
                signers: names.clone(),
                path: path.indices().to_vec(),
                authority: authority.clone(),
                input,
            })
            .await?;
        super::coordinator::finish_signature(&outcomes, &public, prehash, names, false)
    }

    /// A key-creation request: refused at once when the manifest's placement rule refuses
    /// its party set, pending until the manifest's threshold of operators approved it,
    /// then created.
    async fn decide_key(
        self: &Arc<Self>,
        id: [u8; 32],
        authority: &Authority,
        authorized: &Authorized,
        threshold: u16,
        parties: Vec<String>,
        renew_aux: bool,
    ) -> Result<RequestAnswer, OperationError> {
        let (needed, admitted) = {
            let trust = self.trust().ok_or(OperationError::NoManifest)?;
            let manifest = trust.manifest.manifest();
            (
                manifest.threshold(),
                admit_key_creation(manifest, &parties, threshold),
            )
        };
        if let Err(refusal) = admitted {
            tracing::warn!(request = %hex::encode(id), %refusal, "key creation refused");
            let reason = refusal.to_string();
            self.audit(crate::runtime::audit::refused_key(&id, reason.clone()))
                .await?;
            let mut refused = RequestAnswer::new(&id, RequestStatus::Refused);
            refused.reason = Some(reason);
            return Ok(refused);
        }
        let approvals = authorized.approvers().len();
        if approvals < needed {
            let mut pending = RequestAnswer::new(&id, RequestStatus::Pending);
            pending.approvals = Some(approvals);
            pending.approvals_needed = Some(needed);
            self.audit(crate::runtime::audit::pending_key(&id)).await?;
            return Ok(pending);
        }
        if !lock(&self.books.requests).start(&id, self.clock.unix_ms()) {
            return Err(OperationError::Running);
        }
        let key_id = KeyId::new(authorized.request().key_id.as_str())?;
        let parties = parties
            .into_iter()
            .map(NodeId::new)
            .collect::<Result<Vec<_>, _>>()?;
        let created = self
            .create_key(key_id, parties, threshold, renew_aux, authority)
            .await?;
        let mut answer = RequestAnswer::new(&id, RequestStatus::Created);
        answer.key = Some(created);
        Ok(answer)
    }

    /// The signers of a request: this node, then `first`, then the other parties of the
    /// key, preferring those whose last attested check succeeded; as many as the key's
    /// threshold.
    fn choose_signers(&self, share: &KeyShare, first: &[NodeId]) -> Vec<NodeId> {
        let peers = self.state().peers.clone();
        let me = &self.me;
        let mut others: Vec<&NodeId> = share
            .group()
            .nodes()
            .iter()
            .filter(|n| *n != me && !first.contains(n))
            .collect();
        others.sort_by_key(|n| !peers.get(n.as_str()).is_some_and(|p| p.attested));
        let mut chosen = vec![me.clone()];
        for node in first.iter().filter(|n| *n != me) {
            chosen.push(node.clone());
        }
        chosen.extend(others.into_iter().cloned());
        chosen.truncate(usize::from(share.threshold().get()).max(1 + first.len()));
        chosen
    }
}

/// The answer for a request this node's policy does not allow (yet).
fn denied_answer(id: &[u8; 32], denied: Denied) -> RequestAnswer {
    match denied {
        Denied::Pending {
            rule,
            approvals,
            approvals_needed,
            policy_version,
        } => {
            let mut answer = RequestAnswer::new(id, RequestStatus::Pending);
            answer.rule = Some(rule);
            answer.approvals = Some(approvals);
            answer.approvals_needed = Some(approvals_needed);
            answer.policy_version = Some(policy_version);
            answer
        }
        Denied::Refused {
            rule,
            reason,
            policy_version,
        } => {
            let mut answer = RequestAnswer::new(id, RequestStatus::Refused);
            answer.rule = rule;
            answer.reason = Some(reason.to_string());
            answer.policy_version = Some(policy_version);
            answer
        }
        Denied::Authority(protocol::authority::AuthorityError::Expired { .. }) => {
            let mut answer = RequestAnswer::new(id, RequestStatus::Expired);
            answer.reason = Some(denied.to_string());
            answer
        }
        other => {
            let mut answer = RequestAnswer::new(id, RequestStatus::Refused);
            answer.reason = Some(other.to_string());
            answer
        }
    }
}

/// The answer for a signed request: the first signature at the top, a transaction
/// assembled with every signature.
fn signed_answer(
    id: &[u8; 32],
    allowed: &Allowed,
    public_key: &[u8; 33],
    signatures: Vec<SignedDigest>,
) -> Result<RequestAnswer, OperationError> {
    let mut answer = RequestAnswer::new(id, RequestStatus::Signed);
    answer.rule = Some(allowed.rule.clone());
    answer.policy_version = Some(allowed.policy_version);
    let parts = |s: &SignedDigest| -> Result<([u8; 32], [u8; 32]), OperationError> {
        let mut r = [0u8; 32];
        let mut sv = [0u8; 32];
        hex::decode_to_slice(&s.r, &mut r)?;
        hex::decode_to_slice(&s.s, &mut sv)?;
        Ok((r, sv))
    };
    match &allowed.parsed {
        Parsed::Eth(tx) => {
            let first = signatures.first().ok_or(OperationError::RequestId)?;
            let (r, s) = parts(first)?;
            let raw = tx
                .signed_raw(r, s, first.v & 1 == 1)
                .map_err(|e| OperationError::Assemble(e.to_string()))?;
            answer.signed_tx = Some(hex::encode(raw));
        }
        Parsed::Btc(psbt) => {
            let sigs = signatures
                .iter()
                .map(parts)
                .collect::<Result<Vec<_>, _>>()?;
            let signed = psbt
                .finalize(public_key, &sigs)
                .map_err(|e| OperationError::Assemble(e.to_string()))?;
            answer.signed_tx = Some(signed);
            answer.inputs = signatures.clone();
        }
        Parsed::Digest(_) => {}
    }
    answer.signature = signatures.into_iter().next();
    Ok(answer)
}

/// What a participant answers for the created key, checked by the caller.
pub(super) fn created_key(
    key_id: &KeyId,
    outcomes: &std::collections::BTreeMap<NodeId, Outcome>,
    parties: Vec<String>,
    threshold: u16,
) -> Result<CreatedKey, OperationError> {
    let public = agreed("key generation", outcomes, |o| match o {
        Outcome::Keygen { public_key } => Some(public_key.clone()),
        _ => None,
    })?;
    let bytes = hex::decode(&public)?;
    let key = mpc::PublicKey::from_sec1(&bytes)?;
    Ok(CreatedKey {
        scheme: Ecdsa::ID,
        key_id: key_id.to_string(),
        public_key: public,
        eth_address: chains::eth_address(key.as_k256()),
        btc_address: chains::btc_p2wpkh_address(key.as_k256()),
        parties,
        threshold,
    })
}
