//! The node's own audit log ([`::audit`]): its key, its sealed segments, the appends every
//! decision makes, and the export operators fetch page by page.
//!
//! Stored, all sealed under the node's data key:
//! - `audit-key`: `[1][PKCS#8 v2 of the Ed25519 audit key]`, generated on the first start
//!   and loaded at every later one. A log whose key is gone is refused, never restarted
//!   under a new key.
//! - `audit-segment-NNNNNNNNNN` ([`::audit::segment_name`]): the log in segments, in the
//!   audit crate's segment format.
//! - `audit-head`: `[1][count u64 BE][hash of the last entry, 32 bytes]`, what the node
//!   last sealed. At start the restored log must reach it: a parent that withholds or
//!   rolls back the newest segment is caught even where the sealed store cannot tell
//!   (see [`check_reaches`]).
//!
//! An append signs the entry with the node's clock, then seals every segment it changed
//! and the head before it returns; appends take one lock, so entries and writes follow
//! one order. A failed append is logged as an error and returned: requests, records,
//! signatures and key shares are not acted on when their entry could not be sealed.
//! What a signing session already released cannot be taken back (a participant's share
//! went out in its last round): an entry that cannot be sealed after it makes the
//! participant report the session as failed, and no `signature` entry exists for it.
//!
//! An entry is a decision taken, not an action done: a `decision` with outcome `signed`
//! says this node's policy allows the signature (a participant decides before its share,
//! a party of the key before it records the spend); the `signature` entries say what was
//! signed. An entry that could not be sealed stays in memory and is sealed with the next
//! append; exports stop at what is sealed, so that no export shows an entry that a
//! restart could lose.

use super::{Blobs, Node, Trust};
use crate::core::authorization::{self, Allowed, Denied, SigningKey};
use crate::operator_api::{AuditPage, MAX_RESPONSE_LEN};
use crate::sealed::{SealError, SealedStore};
use crate::threshold::request::Task;
use ::audit::{AuditError, AuditKey, AuditLog, Event, Head, Outcome, Summary, segment_name};
use mpc::DerivationPath;
use protocol::authority::{Action, Authorized, Payload};
use tokio::sync::Mutex as AsyncMutex;
use zeroize::Zeroizing;

/// Sealed blob of the audit key.
const KEY_BLOB: &str = "audit-key";
/// Sealed blob of the head the node last sealed.
const HEAD_BLOB: &str = "audit-head";
/// What every segment's blob name starts with.
const SEGMENT_PREFIX: &str = "audit-segment-";
/// The format of `audit-key` and `audit-head` this build writes and reads.
const FORMAT: u8 = 1;
/// Length of `audit-head`.
const HEAD_LEN: usize = 1 + 8 + 32;
/// What an answer may hold: its two header bytes are not JSON.
const PAGE_BUDGET: usize = MAX_RESPONSE_LEN - 2;

/// The node's log, once restored at start.
#[derive(Default)]
pub(super) struct AuditBook {
    open: AsyncMutex<Option<OpenLog>>,
}

struct OpenLog {
    log: AuditLog,
    /// Entries sealed at the parent; those after are sealed with the next append.
    sealed: u64,
}

/// Why the audit log could not be restored, appended to or exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditFailure {
    #[error("the audit log is not open: the node does not run")]
    NotOpen,
    #[error("no manifest")]
    NoManifest,
    #[error("reading {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: SealError,
    },
    #[error("sealing {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: SealError,
    },
    #[error("{name}: {reason}")]
    Format { name: &'static str, reason: String },
    /// The log is stored but its key is not: the parent withheld it.
    #[error("{name} is stored but the audit key is not")]
    KeyMissing { name: String },
    /// The sealed index names a segment beyond the first one absent.
    #[error("segment {absent} is absent but the sealed index names {named} segments")]
    SegmentGap { absent: u64, named: usize },
    #[error(transparent)]
    Log(#[from] AuditError),
    #[error(transparent)]
    Id(#[from] ids::IdError),
    #[error("attestation: {0}")]
    Attestation(#[source] attestation::AttestError),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Not even one entry fits in an answer beside the header.
    #[error("entry {seq} does not fit in one answer")]
    PageTooSmall { seq: u64 },
}

fn read_error(name: &str) -> impl FnOnce(SealError) -> AuditFailure + '_ {
    move |source| AuditFailure::Read {
        name: name.to_owned(),
        source,
    }
}

fn write_error(name: &str) -> impl FnOnce(SealError) -> AuditFailure + '_ {
    move |source| AuditFailure::Write {
        name: name.to_owned(),
        source,
    }
}

/// `audit-key`'s content for `key`.
fn encode_key(key: &AuditKey) -> Result<Zeroizing<Vec<u8>>, AuditFailure> {
    let pkcs8 = key.to_pkcs8().map_err(AuditError::from)?;
    let mut out = Zeroizing::new(Vec::with_capacity(1 + pkcs8.len()));
    out.push(FORMAT);
    out.extend_from_slice(&pkcs8);
    Ok(out)
}

fn decode_key(bytes: &[u8]) -> Result<AuditKey, AuditFailure> {
    match bytes {
        [FORMAT, pkcs8 @ ..] => Ok(AuditKey::from_pkcs8(pkcs8).map_err(AuditError::from)?),
        _ => Err(AuditFailure::Format {
            name: KEY_BLOB,
            reason: format!("format {:?}, this build reads {FORMAT}", bytes.first()),
        }),
    }
}

/// `audit-head`'s content for `head`.
fn encode_head(head: Head) -> [u8; HEAD_LEN] {
    let mut out = [0u8; HEAD_LEN];
    let (format, rest) = out.split_at_mut(1);
    let (count, hash) = rest.split_at_mut(8);
    format.copy_from_slice(&[FORMAT]);
    count.copy_from_slice(&head.count.to_be_bytes());
    hash.copy_from_slice(&head.hash);
    out
}

fn decode_head(bytes: &[u8]) -> Result<Head, AuditFailure> {
    let format = |reason: String| AuditFailure::Format {
        name: HEAD_BLOB,
        reason,
    };
    let bytes = <&[u8; HEAD_LEN]>::try_from(bytes)
        .map_err(|_| format(format!("{} bytes, not {HEAD_LEN}", bytes.len())))?;
    let (version, rest) = bytes.split_at(1);
    let (count, hash) = rest.split_at(8);
    if version != [FORMAT] {
        return Err(format(format!(
            "format {version:?}, this build reads {FORMAT}"
        )));
    }
    let count = <[u8; 8]>::try_from(count).map_err(|_| format("count".to_owned()))?;
    let hash = <[u8; 32]>::try_from(hash).map_err(|_| format("hash".to_owned()))?;
    Ok(Head {
        count: u64::from_be_bytes(count),
        hash,
    })
}

/// The head of the first `count` entries of `log`, when it has them.
fn head_at(log: &AuditLog, count: u64) -> Option<Head> {
    match count.checked_sub(1) {
        None => Some(Head::EMPTY),
        Some(last) => log.entries_from(last).first().map(|entry| Head {
            count,
            hash: *entry.hash(),
        }),
    }
}

/// Checks that the restored `log` reaches `recorded`, the head the node last sealed: it
/// holds at least as many entries, and its entry at the recorded count is the recorded
/// one. A log that ends exactly there is what the node left; one entry or more beyond is
/// an append whose head write did not happen (the node stopped between the two writes):
/// those entries are genuine, signed and linked, and kept. A shorter log, or one that
/// differs at the recorded head, is refused.
fn check_reaches(log: &AuditLog, recorded: Head) -> Result<(), AuditError> {
    if head_at(log, recorded.count) == Some(recorded) {
        return Ok(());
    }
    let found = log.head();
    Err(AuditError::HeadMismatch {
        expected_count: recorded.count,
        expected_head: hex::encode(recorded.hash),
        found_count: found.count,
        found_head: hex::encode(found.hash),
    })
}

/// Seals every segment that holds an entry not yet sealed, then the head.
async fn seal_pending<B: Blobs>(
    open: &mut OpenLog,
    store: &mut SealedStore<B>,
) -> Result<(), AuditFailure> {
    let Some(first) = open.log.segment_of(open.sealed) else {
        return Ok(());
    };
    for index in first..open.log.segment_count() {
        let name = segment_name(index);
        let Some(bytes) = open.log.encode_segment(index) else {
            break;
        };
        let bytes = bytes?;
        store.put(&name, &bytes).await.map_err(write_error(&name))?;
    }
    store
        .put(HEAD_BLOB, &encode_head(open.log.head()))
        .await
        .map_err(write_error(HEAD_BLOB))?;
    open.sealed = open.log.len();
    Ok(())
}

/// Most a page's lines could take, before the header is known: more could never fit.
fn candidate_lines(log: &AuditLog, from: u64, end: u64) -> Result<Vec<String>, AuditError> {
    let mut lines = Vec::new();
    let mut total = 0usize;
    let count = usize::try_from(end.saturating_sub(from)).unwrap_or(usize::MAX);
    for entry in log.entries_from(from).iter().take(count) {
        let line = entry.to_line()?;
        total = total.saturating_add(line.len());
        if total > PAGE_BUDGET {
            break;
        }
        lines.push(line);
    }
    Ok(lines)
}

fn json_len(value: &impl serde::Serialize) -> Result<usize, serde_json::Error> {
    serde_json::to_string(value).map(|json| json.len())
}

/// The page of entries `from` onwards, up to `end` (exclusive), with as many of `lines`
/// (entry `from` first) as fit in `budget` bytes of JSON beside `header`. A page holds at
/// least one entry when any remains before `end`.
fn build_page(
    header: Option<String>,
    from: u64,
    end: u64,
    lines: Vec<String>,
    budget: usize,
) -> Result<AuditPage, AuditFailure> {
    let mut page = AuditPage {
        header,
        entries: Vec::new(),
        next: Some(u64::MAX),
    };
    let mut used = json_len(&page)?;
    let remaining = usize::try_from(end.saturating_sub(from)).unwrap_or(usize::MAX);
    for line in lines.into_iter().take(remaining) {
        let cost = json_len(&line)?.saturating_add(usize::from(!page.entries.is_empty()));
        if used.saturating_add(cost) > budget {
            break;
        }
        used = used.saturating_add(cost);
        page.entries.push(line);
    }
    if page.entries.is_empty() && from < end {
        return Err(AuditFailure::PageTooSmall { seq: from });
    }
    let after = from.saturating_add(page.entries.len() as u64);
    page.next = (after < end).then_some(after);
    Ok(page)
}

/// What a request asks, as this node reads it before deciding: what the policy would see
/// of a transaction (the key's public key is needed for a PSBT's change), or only what
/// kind of payload it is when that cannot be read.
fn summary(action: &Action, key: Option<SigningKey<'_>>) -> Summary {
    let Action::Sign { payload, .. } = action else {
        return Summary {
            chain: "create-key".to_owned(),
            to: None,
            amount: None,
        };
    };
    match key.map(|key| authorization::facts(payload, &key)) {
        Some(Ok(facts)) => {
            let to = facts.destinations();
            Summary {
                chain: facts.chain().to_string(),
                to: (!to.is_empty()).then(|| to.join(",")),
                amount: match payload {
                    Payload::Digest(_) => None,
                    _ => facts.amount().ok().map(|a| a.to_string()),
                },
            }
        }
        _ => Summary {
            chain: payload.kind().to_owned(),
            to: None,
            amount: None,
        },
    }
}

/// The decision entry for request `id`: allowed, pending or refused, with the rule and
/// the policy version when the policy decided.
pub(super) fn decision(id: &[u8; 32], decided: Result<&Allowed, &Denied>) -> Event {
    let (outcome, rule, policy_version, reason) = match decided {
        Ok(allowed) => (
            Outcome::Signed,
            Some(allowed.rule.clone()),
            Some(allowed.policy_version),
            None,
        ),
        Err(Denied::Pending {
            rule,
            policy_version,
            ..
        }) => (
            Outcome::Pending,
            Some(rule.clone()),
            Some(*policy_version),
            None,
        ),
        Err(Denied::Refused {
            rule,
            reason,
            policy_version,
        }) => (
            Outcome::Refused,
            rule.clone(),
            Some(*policy_version),
            Some(reason.to_string()),
        ),
        Err(other) => (Outcome::Refused, None, None, Some(other.to_string())),
    };
    Event::Decision {
        request_id: *id,
        outcome,
        rule,
        policy_version,
        reason,
    }
}

/// A key creation that waits for the manifest's threshold of operators.
pub(super) fn pending_key(id: &[u8; 32]) -> Event {
    Event::Decision {
        request_id: *id,
        outcome: Outcome::Pending,
        rule: None,
        policy_version: None,
        reason: None,
    }
}

/// A key creation this node refused to take up (the manifest's placement rule).
pub(super) fn refused_key(id: &[u8; 32], reason: String) -> Event {
    Event::Decision {
        request_id: *id,
        outcome: Outcome::Refused,
        rule: None,
        policy_version: None,
        reason: Some(reason),
    }
}

impl<B: Blobs> Node<B> {
    /// Restores the log from the store the node is about to run with (on a first start,
    /// makes its key), checks it, and records this start. Any stored segment that is not
    /// what this node wrote, in its place, fails the start with the reason.
    pub(super) async fn load_audit(
        &self,
        store: &mut SealedStore<B>,
        trust: &Trust,
    ) -> Result<(), AuditFailure> {
        let segments_named = store
            .list()
            .iter()
            .filter(|n| n.starts_with(SEGMENT_PREFIX))
            .count();
        let key = match store.get(KEY_BLOB).await.map_err(read_error(KEY_BLOB))? {
            Some(bytes) => decode_key(&bytes)?,
            None => {
                if let Some(name) = store
                    .list()
                    .into_iter()
                    .find(|n| n.starts_with(SEGMENT_PREFIX) || n == HEAD_BLOB)
                {
                    return Err(AuditFailure::KeyMissing { name });
                }
                let key = AuditKey::generate().map_err(AuditError::from)?;
                store
                    .put(KEY_BLOB, &encode_key(&key)?)
                    .await
                    .map_err(write_error(KEY_BLOB))?;
                tracing::info!(public_key = %hex::encode(key.public_key()), "audit key created");
                key
            }
        };
        let recorded = match store.get(HEAD_BLOB).await.map_err(read_error(HEAD_BLOB))? {
            Some(bytes) => decode_head(&bytes)?,
            None => Head::EMPTY,
        };
        let mut segments = Vec::new();
        for index in 0u64.. {
            let name = segment_name(index);
            match store.get(&name).await.map_err(read_error(&name))? {
                Some(bytes) => segments.push(bytes),
                None if segments.len() < segments_named => {
                    return Err(AuditFailure::SegmentGap {
                        absent: index,
                        named: segments_named,
                    });
                }
                None => break,
            }
        }
        let log = AuditLog::restore(
            self.me.clone(),
            key,
            segments.iter().map(|s| s.as_slice()),
            None,
        )?;
        check_reaches(&log, recorded)?;
        let mut open = OpenLog {
            sealed: log.len(),
            log,
        };
        let boot = Event::Boot {
            manifest_version: Some(trust.manifest.version()),
            manifest_hash: Some(*trust.manifest.hash().as_bytes()),
        };
        open.log.append(boot, self.clock.unix_ms())?;
        seal_pending(&mut open, store).await?;
        tracing::info!(
            entries = open.log.len(),
            segments = open.log.segment_count(),
            public_key = %hex::encode(open.log.public_key()),
            "audit log restored"
        );
        *self.audit.open.lock().await = Some(open);
        Ok(())
    }

    /// Appends `event` and seals it before returning. A failure is logged as an error.
    pub(super) async fn audit(&self, event: Event) -> Result<(), AuditFailure> {
        self.append_entry(event).await.inspect_err(|e| {
            tracing::error!(error = %e, "AUDIT ENTRY NOT RECORDED: the decision is not acted on");
        })
    }

    /// [`Self::audit`] while the log is open; nothing before the node runs (what it then
    /// runs under is in its boot entry).
    pub(super) async fn audit_when_running(&self, event: Event) -> Result<(), AuditFailure> {
        if self.audit.open.lock().await.is_none() {
            return Ok(());
        }
        self.audit(event).await
    }

    async fn append_entry(&self, event: Event) -> Result<(), AuditFailure> {
        let mut guard = self.audit.open.lock().await;
        let open = guard.as_mut().ok_or(AuditFailure::NotOpen)?;
        let sealed = self.sealed().ok_or(AuditFailure::NotOpen)?;
        open.log.append(event, self.clock.unix_ms())?;
        let mut store = sealed.store.lock().await;
        seal_pending(open, &mut store).await
    }

    /// Records a request as it arrived, before any decision.
    pub(super) async fn audit_request(&self, authorized: &Authorized) -> Result<(), AuditFailure> {
        let request = authorized.request();
        let key_id = ids::KeyId::new(request.key_id.as_str())?;
        let path = match &request.action {
            Action::Sign { path: Some(p), .. } => DerivationPath::parse(p).ok(),
            _ => Some(DerivationPath::master()),
        };
        let public = path.as_ref().and_then(|path| {
            let share = self.keys.share(&key_id)?;
            let public = share.derived_public_key(path).ok()?;
            Some(public.to_sec1_compressed())
        });
        let key = path
            .as_ref()
            .zip(public.as_ref())
            .map(|(path, public)| SigningKey {
                key_id: &key_id,
                path,
                public_key: public,
                signers: &[],
            });
        self.audit(Event::Request {
            request_id: *authorized.id(),
            key_id: key_id.clone(),
            requester: ids::OperatorId::new(request.requester.as_str())?,
            summary: summary(&request.action, key),
        })
        .await
    }

    /// Records an operator's approval of request `id`, verified.
    pub(super) async fn audit_approval(
        &self,
        id: &[u8; 32],
        operator: &str,
    ) -> Result<(), AuditFailure> {
        self.audit(Event::Approval {
            request_id: *id,
            operator: ids::OperatorId::new(operator)?,
        })
        .await
    }

    /// Records this node's decision on request `id`.
    pub(super) async fn audit_decision(
        &self,
        id: &[u8; 32],
        decided: Result<&Allowed, &Denied>,
    ) -> Result<(), AuditFailure> {
        self.audit(decision(id, decided)).await
    }

    /// Records a signature this node contributed a share to: `r || s || v`.
    pub(super) async fn audit_signature(
        &self,
        task: &Task,
        digest: Option<[u8; 32]>,
        signature: &mpc::ecdsa::Signature,
    ) -> Result<(), AuditFailure> {
        let (Task::Sign {
            signers, authority, ..
        }
        | Task::SignPresigned {
            signers, authority, ..
        }) = task
        else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(65);
        bytes.extend_from_slice(&signature.r());
        bytes.extend_from_slice(&signature.s());
        bytes.push(signature.recovery_id());
        self.audit(Event::Signature {
            request_id: authority.id(),
            digest: digest.unwrap_or_default(),
            signature: bytes,
            signers: signers.clone(),
        })
        .await
    }

    /// Records a key this node is about to seal its share of.
    pub(super) async fn audit_key_created(
        &self,
        task: &Task,
        public_key: &[u8],
    ) -> Result<(), AuditFailure> {
        let Task::Keygen {
            key_id,
            group,
            threshold,
            ..
        } = task
        else {
            return Ok(());
        };
        self.audit(Event::KeyCreated {
            key_id: key_id.clone(),
            public_key: public_key.to_vec(),
            parties: group.nodes().to_vec(),
            threshold: *threshold,
        })
        .await
    }

    /// One page of the export, from entry `from`. The page asked from 0 carries the
    /// header, with a fresh attestation document that binds the audit key, the log's
    /// sealed head at this moment and the manifest the node runs.
    pub(super) async fn audit_export(&self, from: u64) -> Result<String, AuditFailure> {
        let trust = self.trust().ok_or(AuditFailure::NoManifest)?;
        let manifest_hash = trust.manifest.hash();
        let (node, public_key, head, lines) = {
            let guard = self.audit.open.lock().await;
            let open = guard.as_ref().ok_or(AuditFailure::NotOpen)?;
            let head = head_at(&open.log, open.sealed).ok_or(AuditFailure::NotOpen)?;
            let lines = candidate_lines(&open.log, from, head.count)?;
            (open.log.node().clone(), open.log.public_key(), head, lines)
        };
        let header = if from == 0 {
            let request = ::audit::attestation_request(&public_key, head, &manifest_hash);
            let attester = self.attester.clone();
            let document = tokio::task::spawn_blocking(move || attester.attest(&request))
                .await?
                .map_err(AuditFailure::Attestation)?;
            Some(::audit::export_header(
                &node,
                &public_key,
                head,
                &manifest_hash,
                &document,
            )?)
        } else {
            None
        };
        let page = build_page(header, from, head.count, lines, PAGE_BUDGET)?;
        Ok(serde_json::to_string(&page)?)
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
