//! The participant's own authorization of a session, before it contributes anything: the
//! request and approvals a signing or key-creation session carries are checked against
//! this node's manifest and policy ([`crate::core::authorization`]), what is signed is
//! computed here from the request, and the spend is recorded in this node's ledger, and,
//! when the policy counts spends, at every party of the key, before any share.

use crate::core::authorization::{Allowed, SigningKey, check_create, check_session, check_sign};
use crate::runtime::{Blobs, Node};
use crate::threshold::request::{FailureKind, Operation, Outcome, Task, Verified};
use mpc::ecdsa::KeyShare;
use mpc::{DerivationPath, KeyId, NodeId};
use protocol::ToSign;
use protocol::authority::{Action, Authority, Request};
use std::sync::Arc;

fn refused(reason: impl ToString) -> Outcome {
    Outcome::failed(FailureKind::Refused, reason.to_string())
}

fn unrecorded(error: crate::runtime::AuditFailure) -> Outcome {
    Outcome::failed(FailureKind::Storage, error.to_string())
}

impl<B: Blobs> Node<B> {
    fn held_share(&self, key_id: &KeyId) -> Result<Arc<KeyShare>, Outcome> {
        self.keys
            .share(key_id)
            .ok_or_else(|| refused(format!("key {key_id} is not held by this node")))
    }

    /// Checks what the session's request authorizes, and for a signature records its
    /// spend; what is signed, when the session signs.
    pub(super) async fn authorize(
        self: &Arc<Self>,
        verified: &Verified,
    ) -> Result<Option<ToSign>, Outcome> {
        match &verified.task {
            Task::Sign {
                key_id,
                signers,
                path,
                authority,
                input,
            } => self
                .authorize_signature(key_id, signers, path, authority, *input)
                .await
                .map(Some),
            Task::SignPresigned {
                key_id,
                signers,
                authority,
                input,
                ..
            } => self
                .authorize_signature(
                    key_id,
                    signers,
                    &DerivationPath::master(),
                    authority,
                    *input,
                )
                .await
                .map(Some),
            Task::Keygen {
                key_id,
                group,
                threshold,
                authority,
                ..
            } => {
                let checked = self
                    .with_governance(|g| {
                        check_create(g, authority, key_id, group.nodes(), *threshold)
                    })
                    .map_err(refused)?;
                if let Err(denied) = &checked {
                    let _ = self.audit_decision(&authority.id(), Err(denied)).await;
                }
                let authorized = checked.map_err(|denied| {
                    tracing::warn!(coordinator = %verified.coordinator, %denied, "key creation refused");
                    refused(denied)
                })?;
                tracing::info!(request = %hex::encode(authorized.id()), key = %key_id, approvers = ?authorized.approvers(), "key creation authorized");
                Ok(None)
            }
            Task::AuxInfo { .. } | Task::Presign { .. } | Task::Record { .. } => Ok(None),
        }
    }

    async fn authorize_signature(
        self: &Arc<Self>,
        key_id: &KeyId,
        signers: &[NodeId],
        path: &DerivationPath,
        authority: &Authority,
        input: u16,
    ) -> Result<ToSign, Outcome> {
        let share = self.held_share(key_id)?;
        let public = share
            .derived_public_key(path)
            .map_err(|e| refused(format!("derivation: {e}")))?
            .to_sec1_compressed();
        let key = SigningKey {
            key_id,
            path,
            public_key: &public,
            signers,
        };
        // The check and the record of its spend are one step: two requests checked at
        // once cannot both pass a limit that only one of them fits.
        let spending = self.books.spending.lock().await;
        let decided = self
            .with_governance(|g| check_session(g, authority, &key, input))
            .map_err(refused)?;
        let recorded = self
            .audit_decision(
                &authority.id(),
                decided.as_ref().map(|(allowed, _)| allowed),
            )
            .await;
        let (allowed, to_sign) = decided.map_err(|denied| {
            tracing::warn!(key = %key_id, %denied, "signature refused by this node's policy");
            refused(denied)
        })?;
        recorded.map_err(unrecorded)?;
        if self.already_signed(allowed.authorized.id(), input) {
            tracing::warn!(request = %hex::encode(allowed.authorized.id()), input, "a request this node signed before, replayed: refused");
            return Err(refused(format!(
                "this node already signed input {input} of request {}: a replay",
                hex::encode(allowed.authorized.id())
            )));
        }
        if self.policy_counts_spends() {
            self.record_spend(allowed.spend.clone())
                .await
                .map_err(|e| Outcome::failed(FailureKind::Storage, e.to_string()))?;
        }
        drop(spending);
        self.ensure_recorded(&allowed, &share, signers, authority)
            .await?;
        tracing::info!(request = %hex::encode(allowed.authorized.id()), rule = %allowed.rule, policy_version = allowed.policy_version, input, "signature authorized");
        Ok(to_sign)
    }

    /// When the policy counts spends, has the spend (already recorded here) recorded at
    /// every party of the key: each of them checks it against its own policy and ledger
    /// first, and one that does not record it means no share from this node.
    async fn ensure_recorded(
        self: &Arc<Self>,
        allowed: &Allowed,
        share: &KeyShare,
        signers: &[NodeId],
        authority: &Authority,
    ) -> Result<(), Outcome> {
        let id = *allowed.authorized.id();
        if !self.policy_counts_spends() || self.is_recorded_everywhere(&id) {
            return Ok(());
        }
        let parties: Vec<String> = share
            .group()
            .nodes()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let (_, outcomes) = self
            .coordinate(Operation::Record {
                key_id: share.key_id().to_string(),
                parties,
                signers: signers.iter().map(|n| n.to_string()).collect(),
                authority: authority.clone(),
            })
            .await
            .map_err(refused)?;
        let missing: Vec<String> = share
            .group()
            .nodes()
            .iter()
            .filter(|n| !matches!(outcomes.get(*n), Some(Outcome::Recorded)))
            .map(|n| match outcomes.get(n) {
                Some(Outcome::Failed { reason, .. }) => format!("{n}: {reason}"),
                _ => format!("{n}: no answer"),
            })
            .collect();
        if !missing.is_empty() {
            tracing::warn!(request = %hex::encode(id), ?missing, "a party of the key did not record the spend");
            return Err(refused(format!(
                "every party of the key must record the spend first; not recorded by {}",
                missing.join("; ")
            )));
        }
        self.recorded_everywhere(id);
        Ok(())
    }

    /// A signer asks this node, a party of the key, to record a spend: checked against this
    /// node's own policy and ledger as if it were to sign, then sealed.
    pub(super) async fn record_here(self: &Arc<Self>, verified: &Verified) -> Outcome {
        let Task::Record {
            key_id,
            parties,
            signers,
            authority,
        } = &verified.task
        else {
            return refused("not a record");
        };
        let share = match self.held_share(key_id) {
            Ok(share) => share,
            Err(outcome) => return outcome,
        };
        if share.group().nodes() != parties.as_slice() {
            return refused("the record names other parties than the key's");
        }
        let path = match Request::parse(authority.request_bytes()).map(|r| r.action) {
            Ok(Action::Sign { path: Some(p), .. }) => match DerivationPath::parse(&p) {
                Ok(path) => path,
                Err(e) => return refused(e),
            },
            Ok(_) => DerivationPath::master(),
            Err(e) => return refused(e),
        };
        let public = match share.derived_public_key(&path) {
            Ok(p) => p.to_sec1_compressed(),
            Err(e) => return refused(format!("derivation: {e}")),
        };
        let key = SigningKey {
            key_id,
            path: &path,
            public_key: &public,
            signers,
        };
        // Checked and recorded as one step (see `authorize_signature`).
        let _spending = self.books.spending.lock().await;
        let allowed = match self.with_governance(|g| check_sign(g, authority, &key)) {
            Ok(Ok(allowed)) => allowed,
            Ok(Err(denied)) => {
                tracing::warn!(key = %key_id, coordinator = %verified.coordinator, %denied, "spend not recorded: refused by this node's policy");
                let _ = self.audit_decision(&authority.id(), Err(&denied)).await;
                return refused(denied);
            }
            Err(e) => return refused(e),
        };
        if let Err(e) = self
            .audit_decision(allowed.authorized.id(), Ok(&allowed))
            .await
        {
            return unrecorded(e);
        }
        match self.record_spend(allowed.spend.clone()).await {
            Ok(recorded) => {
                tracing::info!(request = %hex::encode(allowed.authorized.id()), ?recorded, asked_by = %verified.coordinator, "spend recorded");
                Outcome::Recorded
            }
            Err(e) => Outcome::failed(FailureKind::Storage, e.to_string()),
        }
    }
}
