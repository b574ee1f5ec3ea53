//! The operations `custody` performs against a cluster, shared by its commands and the
//! demo: status of every node, key creation, signing, attestation documents, audit log
//! exports.

use crate::cluster_file::{ClusterFile, ClusterFileError, Purpose};
use crate::connection::{RequestError, request_blocking};
use crate::operator;
use crate::pin::{self, Pin, PinError, Submitted};
use protocol::SchemeId;
use protocol::operator_api::{
    self, AuditPage, KeyCommand, KeyStatus, NodeStatus, OperatorRequest, SignedCommand,
};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Longest wait for a status answer.
pub const STATUS_PATIENCE: Duration = Duration::from_secs(15);
/// Longest wait for a key operation (auxiliary info may wait for safe primes).
pub const OPERATION_PATIENCE: Duration = Duration::from_secs(45 * 60);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    #[error(transparent)]
    Cluster(#[from] ClusterFileError),
    #[error(transparent)]
    Request(#[from] Box<RequestError>),
    #[error("operator key: {0}")]
    Key(#[from] operator::KeyFileError),
    #[error("{node} refused: {reason}")]
    Refused { node: String, reason: String },
    /// The operation ran, but its participants did not complete it: typed, per
    /// participant.
    #[error("{node} refused: {failure}")]
    Failed {
        node: String,
        failure: operator_api::OperationFailure,
    },
    #[error("{node} answered something unreadable: {reason}")]
    Answer { node: String, reason: String },
    /// The coordinator's report of a new key disagrees with what was asked, or with what
    /// a party holds: no address is given out for it.
    #[error("key {key_id} not confirmed by {node}: {reason}")]
    KeyNotConfirmed {
        key_id: String,
        node: String,
        reason: String,
    },
    #[error("manifest envelope: {0}")]
    Envelope(#[source] manifest::ManifestError),
    /// A command line that asks for something no node would do.
    #[error("{0}")]
    Usage(String),
    #[error(
        "--ttl {secs}: a request lives 1 to {} seconds",
        crate::requests::MAX_TTL_SECS
    )]
    Ttl { secs: u64 },
    #[error("random bytes: {0}")]
    Random(String),
    #[error("request: {0}")]
    Authority(#[from] protocol::authority::AuthorityError),
    /// No node of the cluster file holds the request.
    #[error("no node of the cluster file holds request {request_id}")]
    NoRequest { request_id: String },
    /// The answer says the operation was done, but this client's own check of its
    /// result failed: nothing of it is to be used.
    #[error("{node}'s answer does not check: {source}")]
    Unchecked {
        node: String,
        #[source]
        source: crate::verify::AnswerCheckError,
    },
    /// Refused before anything was sent to a node.
    #[error("not a successor of the pinned manifest (version {pinned}): {source}")]
    NotSuccessor {
        pinned: u64,
        #[source]
        source: PinError,
    },
}

/// One node as `custody status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub id: String,
    /// The node's phase, or `unreachable` / `unverified` when it could not be asked.
    pub phase: String,
    /// Whether its attestation verified against the cluster file.
    pub attested: bool,
    /// The provider whose evidence it gave (`nitro`, `gcp-cs`), when it verified.
    pub provider: Option<String>,
    /// The measurement of its code (Nitro: PCR0; Confidential Space: the image digest),
    /// when it verified.
    pub pcr0: Option<String>,
    /// Why it is not attested or not reachable.
    pub error: Option<String>,
    /// The keys it holds a share of, as it reports them: the first ones by id.
    pub keys: Vec<KeyStatus>,
    /// How many keys it holds a share of, listed or not.
    pub key_count: usize,
    /// The node's full status, when it answered.
    #[serde(skip)]
    pub status: Option<NodeStatus>,
}

/// Asks every node of `file` for its status.
pub fn status(file: &ClusterFile) -> Vec<NodeReport> {
    file.nodes
        .iter()
        .map(|node| {
            let report = |phase: &str, error: String| NodeReport {
                id: node.id.clone(),
                phase: phase.to_owned(),
                attested: false,
                provider: None,
                pcr0: None,
                error: Some(error),
                keys: Vec::new(),
                key_count: 0,
                status: None,
            };
            let expect = match file.expectation(&node.id, Purpose::Status) {
                Ok(e) => e,
                Err(e) => return report("unverified", e.to_string()),
            };
            match request_blocking(
                &node.client,
                &expect,
                |_| OperatorRequest::Status,
                STATUS_PATIENCE,
            ) {
                Ok(answer) => {
                    let provider = Some(answer.node.provider.name().to_owned());
                    let parsed = answer.answer.and_then(|json| {
                        serde_json::from_str::<NodeStatus>(&json).map_err(|e| e.to_string())
                    });
                    match parsed {
                        Ok(status) => NodeReport {
                            id: node.id.clone(),
                            phase: status.phase.clone(),
                            attested: true,
                            provider,
                            pcr0: Some(answer.node.pcr0),
                            error: status.reason.clone(),
                            keys: status.keys.clone(),
                            key_count: status.key_count.max(status.keys.len()),
                            status: Some(status),
                        },
                        Err(e) => NodeReport {
                            id: node.id.clone(),
                            phase: "unknown".to_owned(),
                            attested: true,
                            provider,
                            pcr0: Some(answer.node.pcr0),
                            error: Some(e),
                            keys: Vec::new(),
                            key_count: 0,
                            status: None,
                        },
                    }
                }
                Err(e @ RequestError::Attestation { .. }) => report("unverified", e.to_string()),
                Err(e) => report("unreachable", e.to_string()),
            }
        })
        .collect()
}

/// Sends the request `make` builds to node `node` and returns its JSON answer; a refusal
/// names the node.
fn ask(
    file: &ClusterFile,
    node: &str,
    purpose: Purpose,
    make: impl FnOnce(&[u8; 32]) -> OperatorRequest,
    patience: Duration,
) -> Result<serde_json::Value, OpError> {
    let expect = file.expectation(node, purpose)?;
    let entry = file.node(node)?;
    let answer = request_blocking(&entry.client, &expect, make, patience).map_err(Box::new)?;
    if let Some(failure) = answer.failure {
        return Err(OpError::Failed {
            node: node.to_owned(),
            failure,
        });
    }
    let json = answer.answer.map_err(|reason| OpError::Refused {
        node: node.to_owned(),
        reason,
    })?;
    serde_json::from_str(&json).map_err(|e| OpError::Answer {
        node: node.to_owned(),
        reason: e.to_string(),
    })
}

/// Sends `command`, signed with the cluster file's operator key, to node `node`.
pub fn command(
    file: &ClusterFile,
    node: &str,
    command: &KeyCommand,
) -> Result<serde_json::Value, OpError> {
    let key = operator::load(&file.operator.key_file)?;
    ask(
        file,
        node,
        Purpose::Command,
        |exporter| {
            OperatorRequest::Command(SignedCommand::sign(
                &file.operator.id,
                &key,
                exporter,
                command,
            ))
        },
        OPERATION_PATIENCE,
    )
}

/// Submits a signed manifest envelope to `node` (which may run the pinned manifest, the
/// envelope's, or none yet); returns its answer.
pub fn submit_manifest(
    file: &ClusterFile,
    node: &str,
    envelope: &[u8],
) -> Result<serde_json::Value, OpError> {
    let manifest = *manifest::SignedManifest::parse(envelope)
        .map_err(OpError::Envelope)?
        .hash()
        .as_bytes();
    let envelope = envelope.to_vec();
    ask(
        file,
        node,
        Purpose::Submit { manifest },
        move |_| OperatorRequest::SubmitManifest(envelope),
        STATUS_PATIENCE,
    )
}

/// Submits a policy envelope to `node`, which runs the pinned manifest; its answer
/// (`accepted_version`, `effective_at_secs`).
pub fn submit_policy(
    file: &ClusterFile,
    node: &str,
    envelope: &[u8],
) -> Result<serde_json::Value, OpError> {
    let envelope = envelope.to_vec();
    ask(
        file,
        node,
        Purpose::Command,
        move |_| OperatorRequest::SubmitPolicy(envelope),
        STATUS_PATIENCE,
    )
}

/// What `custody manifest submit` did.
#[derive(Debug, Clone)]
pub struct SubmitReport {
    /// Each node asked, with what it did.
    pub outcomes: Vec<(String, Submitted)>,
    /// The pin now in the cluster file.
    pub pin: Pin,
    pub pin_moved: bool,
    /// Nodes of the cluster file that do not run the envelope's manifest.
    pub behind: Vec<String>,
    pub success: bool,
}

/// Submits `envelope` to `targets` (every node when empty), after checking that it is
/// the pinned manifest or a successor approved by K of the pinned operators (otherwise
/// nothing is sent). Moves the pin in `file`, saved at `path`, once every node of the
/// cluster file runs the envelope's manifest.
pub fn submit(
    file: &mut ClusterFile,
    path: &Path,
    envelope: &[u8],
    targets: &[String],
) -> Result<SubmitReport, OpError> {
    let signed = manifest::SignedManifest::parse(envelope).map_err(OpError::Envelope)?;
    let pinned = file.pin()?;
    pinned
        .successor(&signed)
        .map_err(|source| OpError::NotSuccessor {
            pinned: pinned.version(),
            source,
        })?;
    let hash = *signed.hash().as_bytes();
    let all: Vec<String> = file.nodes.iter().map(|n| n.id.clone()).collect();
    let targets = if targets.is_empty() {
        all.clone()
    } else {
        targets.to_vec()
    };
    let mut outcomes = Vec::new();
    for id in targets {
        let outcome = submit_one(file, &id, hash, envelope);
        outcomes.push((id, outcome));
    }
    let decision = pin::decide(&pinned, &signed, &all, &outcomes);
    let pin_moved = decision.new_pin.is_some();
    let pin = match decision.new_pin {
        Some(next) => {
            file.manifest = next.entry();
            file.save(path)?;
            next
        }
        None => pinned,
    };
    Ok(SubmitReport {
        outcomes,
        pin,
        pin_moved,
        behind: decision.behind,
        success: decision.success,
    })
}

fn submit_one(file: &ClusterFile, id: &str, hash: [u8; 32], envelope: &[u8]) -> Submitted {
    let not = |reason: String| Submitted::NotAccepted { reason };
    let (expect, entry) = match (
        file.expectation(id, Purpose::Submit { manifest: hash }),
        file.node(id),
    ) {
        (Ok(expect), Ok(entry)) => (expect, entry),
        (Err(e), _) | (_, Err(e)) => return not(e.to_string()),
    };
    let request = OperatorRequest::SubmitManifest(envelope.to_vec());
    match request_blocking(&entry.client, &expect, |_| request, STATUS_PATIENCE) {
        Ok(answer) => match answer.answer {
            Ok(_) => Submitted::Accepted,
            Err(reason) if answer.node.manifest_hash == Some(hash) => {
                Submitted::AlreadyRuns { reason }
            }
            Err(reason) => not(reason),
        },
        Err(e) => not(e.to_string()),
    }
}

pub use protocol::operator_api::CreatedKey;

/// What an operator asked of a new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAsked {
    pub key_id: String,
    pub threshold: u16,
    /// Every node of the manifest when empty.
    pub parties: Vec<String>,
}

/// Confirms the key `coordinator` reports it created with every party, each over its
/// own attested connection to a node running the pinned manifest: each must hold the key
/// with the same public key, parties and threshold. The addresses are computed here from
/// the confirmed public key and must match the coordinator's. A coordinator that reports
/// a key the parties do not hold, or other parties or threshold than asked (`asked`,
/// when this client knows it), is refused, named.
pub fn confirm_created(
    file: &ClusterFile,
    coordinator: &str,
    asked: Option<&KeyAsked>,
    created: &CreatedKey,
) -> Result<(), OpError> {
    check_created(file, coordinator, asked, created)?;
    for party in &created.parties {
        let key_id = created.key_id.clone();
        let held =
            match ask(
                file,
                party,
                Purpose::Command,
                move |_| OperatorRequest::Key { key_id },
                STATUS_PATIENCE,
            ) {
                Ok(held) => Some(serde_json::from_value::<KeyStatus>(held).map_err(|e| {
                    OpError::Answer {
                        node: party.clone(),
                        reason: e.to_string(),
                    }
                })?),
                Err(OpError::Refused { reason, .. })
                    if reason == operator_api::no_key(&created.key_id) =>
                {
                    None
                }
                Err(e) => return Err(e),
            };
        confirm_key(created, party, held.as_ref())?;
    }
    Ok(())
}

/// Whether the coordinator's report matches the request and names parties this client can
/// ask, and the addresses it reports are those of the public key.
pub fn check_created(
    file: &ClusterFile,
    coordinator: &str,
    asked: Option<&KeyAsked>,
    created: &CreatedKey,
) -> Result<(), OpError> {
    let refuse = |node: &str, reason: String| OpError::KeyNotConfirmed {
        key_id: created.key_id.clone(),
        node: node.to_owned(),
        reason,
    };
    if let Some(KeyAsked {
        key_id,
        threshold,
        parties,
    }) = asked
    {
        if *key_id != created.key_id {
            return Err(refuse(coordinator, "reports another key id".to_owned()));
        }
        if *threshold != created.threshold {
            return Err(refuse(
                coordinator,
                format!(
                    "reports threshold {}, {threshold} was asked",
                    created.threshold
                ),
            ));
        }
        if !parties.is_empty() && sorted(parties) != sorted(&created.parties) {
            return Err(refuse(
                coordinator,
                format!(
                    "reports parties {:?}, {:?} were asked",
                    created.parties, parties
                ),
            ));
        }
    }
    if created.parties.is_empty() || !created.parties.iter().any(|p| p == coordinator) {
        return Err(refuse(
            coordinator,
            format!(
                "reports parties {:?}, which do not include it",
                created.parties
            ),
        ));
    }
    if let Some(unknown) = created.parties.iter().find(|p| file.node(p).is_err()) {
        return Err(refuse(
            coordinator,
            format!("reports party {unknown}, which the cluster file does not list"),
        ));
    }
    let key = hex::decode(&created.public_key)
        .ok()
        .and_then(|bytes| k256::PublicKey::from_sec1_bytes(&bytes).ok())
        .ok_or_else(|| refuse(coordinator, "reports an invalid public key".to_owned()))?;
    if chains::eth_address(&key) != created.eth_address
        || chains::btc_p2wpkh_address(&key) != created.btc_address
    {
        return Err(refuse(
            coordinator,
            "reports addresses that are not the public key's".to_owned(),
        ));
    }
    Ok(())
}

/// Whether `party` (over a connection attested as that node) holds the key exactly as
/// `created` reports it: `held` is its record of the key, `None` when it has none.
pub fn confirm_key(
    created: &CreatedKey,
    party: &str,
    held: Option<&KeyStatus>,
) -> Result<(), OpError> {
    let refuse = |reason: String| OpError::KeyNotConfirmed {
        key_id: created.key_id.clone(),
        node: party.to_owned(),
        reason,
    };
    let held = held.ok_or_else(|| refuse("holds no share of it".to_owned()))?;
    if held.key_id != created.key_id {
        return Err(refuse(format!("answered for key {}", held.key_id)));
    }
    if held.scheme != created.scheme {
        return Err(refuse(format!(
            "holds it as a {} key, the coordinator reported {}",
            held.scheme, created.scheme
        )));
    }
    if !held.public_key.eq_ignore_ascii_case(&created.public_key) {
        return Err(refuse(format!(
            "holds public key {}, the coordinator reported {}",
            held.public_key, created.public_key
        )));
    }
    if sorted(&held.parties) != sorted(&created.parties) || held.threshold != created.threshold {
        return Err(refuse(format!(
            "holds it as {}-of-{:?}, the coordinator reported {}-of-{:?}",
            held.threshold, held.parties, created.threshold, created.parties
        )));
    }
    Ok(())
}

/// The scheme `node`'s answer about a key names: ECDSA when it names none, as nodes
/// answered before answers named a scheme. A name this client does not know is refused,
/// never read as ECDSA.
pub fn scheme_of(node: &str, answer: &serde_json::Value) -> Result<SchemeId, OpError> {
    match answer.get("scheme") {
        None => Ok(SchemeId::LEGACY),
        Some(name) => serde::Deserialize::deserialize(name).map_err(|e| OpError::Answer {
            node: node.to_owned(),
            reason: format!("scheme: {e}"),
        }),
    }
}

fn sorted(ids: &[String]) -> Vec<&str> {
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids
}

/// A fresh attestation document from `node`, bound to `nonce`.
pub fn attest(file: &ClusterFile, node: &str, nonce: &[u8]) -> Result<Vec<u8>, OpError> {
    let nonce = nonce.to_vec();
    let value = ask(
        file,
        node,
        Purpose::Command,
        move |_| OperatorRequest::Attest { nonce },
        STATUS_PATIENCE,
    )?;
    let unreadable = |reason: String| OpError::Answer {
        node: node.to_owned(),
        reason,
    };
    let document = value
        .get("document")
        .and_then(|d| d.as_str())
        .ok_or_else(|| unreadable("no document".to_owned()))?;
    hex::decode(document).map_err(|e| unreadable(e.to_string()))
}

/// Fetches `node`'s audit log, page by page, and writes it to `out` as the JSON Lines
/// export [`audit::verify_export`] reads: the first page's header, then every entry up to
/// the header's count, each line ending with `\n`. Returns that count. Nothing here is
/// trusted: the caller verifies what was written.
pub fn audit_export(
    file: &ClusterFile,
    node: &str,
    out: &mut impl std::io::Write,
) -> Result<u64, OpError> {
    let unreadable = |reason: String| OpError::Answer {
        node: node.to_owned(),
        reason,
    };
    let fetch = |from: u64| -> Result<AuditPage, OpError> {
        let value = ask(
            file,
            node,
            Purpose::Command,
            move |_| OperatorRequest::AuditExport { from },
            STATUS_PATIENCE,
        )?;
        serde_json::from_value(value).map_err(|e| unreadable(format!("audit page: {e}")))
    };
    write_pages(node, fetch, out)
}

/// [`audit_export`]'s assembly: the pages `fetch` returns for each `from`, written out.
/// A header anywhere but on the first page, or a page that does not continue where the
/// last ended, is refused; entries past the header's count are not written.
pub(crate) fn write_pages(
    node: &str,
    mut fetch: impl FnMut(u64) -> Result<AuditPage, OpError>,
    out: &mut impl std::io::Write,
) -> Result<u64, OpError> {
    let unreadable = |reason: String| OpError::Answer {
        node: node.to_owned(),
        reason,
    };
    let written = |e: std::io::Error| unreadable(format!("writing the export: {e}"));
    let mut page = fetch(0)?;
    let header = page
        .header
        .take()
        .ok_or_else(|| unreadable("the first audit page has no header".to_owned()))?;
    let count = audit::ExportHeader::parse(&header)
        .map_err(|e| unreadable(e.to_string()))?
        .head()
        .count;
    writeln!(out, "{header}").map_err(written)?;
    let mut have = 0u64;
    loop {
        if page.header.is_some() {
            return Err(unreadable(format!(
                "a header on the page from entry {have}"
            )));
        }
        let remaining = usize::try_from(count.saturating_sub(have)).unwrap_or(usize::MAX);
        for line in page.entries.iter().take(remaining) {
            writeln!(out, "{line}").map_err(written)?;
            have = have.saturating_add(1);
        }
        match page.next {
            _ if have >= count => return Ok(have),
            // Fewer entries than the header says: the verifier names the first missing.
            None => return Ok(have),
            Some(next) if next == have && !page.entries.is_empty() => page = fetch(next)?,
            Some(next) => {
                return Err(unreadable(format!(
                    "the audit page that ends at entry {have} says the next starts at {next}"
                )));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
