//! Requests as an operator makes them: a request built under the pinned manifest and
//! approved by this operator, sent to one node; another operator's approval of a request
//! a node holds; what the nodes hold. Every node that takes part checks the request and
//! its approvals itself: the client only builds, signs and carries them.
//!
//! What a node answers is a [`RequestAnswer`]; [`exit_code`] is what `custody` exits
//! with for it, and [`describe`] how it prints it.

use crate::cluster_file::ClusterFile;
use crate::operator;
use crate::ops::{self, OpError};
use ids::{KeyId, OperatorId};
use protocol::authority::{
    Action, Approval, Authority, DEFAULT_TTL_MS, MAX_TTL_MS, Payload, Request,
};
use protocol::operator_api::{KeyCommand, RequestAnswer, RequestStatus, RequestView};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest lifetime a request may be given, in seconds.
pub const MAX_TTL_SECS: u64 = MAX_TTL_MS / 1000;

/// The refusal of a node that holds no request `request_id`.
pub fn no_request(request_id: &str) -> String {
    format!("no request {request_id}")
}

/// Whether `reason` is a node's refusal for holding no request `request_id`.
pub fn is_no_request(reason: &str, request_id: &str) -> bool {
    reason == no_request(request_id)
}

/// A request's lifetime in milliseconds: `secs` when given (1 s to [`MAX_TTL_SECS`]),
/// [`DEFAULT_TTL_MS`] otherwise.
pub fn ttl_ms(secs: Option<u64>) -> Result<u64, OpError> {
    match secs {
        None => Ok(DEFAULT_TTL_MS),
        Some(secs) if (1..=MAX_TTL_SECS).contains(&secs) => Ok(secs * 1000),
        Some(secs) => Err(OpError::Ttl { secs }),
    }
}

/// A key id for a key created without one: `key-` and 16 random hex digits.
pub fn new_key_id() -> Result<String, OpError> {
    let mut bytes = [0u8; 8];
    fill_random(&mut bytes)?;
    Ok(format!("key-{}", hex::encode(bytes)))
}

fn fill_random(bytes: &mut [u8]) -> Result<(), OpError> {
    use rand_core::RngCore as _;
    rand_core::OsRng
        .try_fill_bytes(bytes)
        .map_err(|e| OpError::Random(e.to_string()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The request `requester` (with `key`) makes under the manifest `manifest_hash` at
/// `created_ms`, with its own approval: everything but the clock and the nonce is given,
/// so that the same inputs make the same bytes.
#[allow(clippy::too_many_arguments)]
pub fn authority(
    manifest_hash: &[u8; 32],
    requester: &str,
    key: &manifest::OperatorKey,
    key_id: &str,
    action: Action,
    created_ms: u64,
    ttl_ms: u64,
    nonce: &[u8; 16],
) -> Result<Authority, OpError> {
    let key_id = KeyId::new(key_id).map_err(|e| OpError::Usage(format!("key id: {e}")))?;
    let requester_id =
        OperatorId::new(requester).map_err(|e| OpError::Usage(format!("operator id: {e}")))?;
    let request = Request::new(
        manifest_hash,
        &key_id,
        action,
        &requester_id,
        created_ms,
        ttl_ms,
        nonce,
    );
    let bytes = request.encode()?;
    let id = protocol::authority::request_id(&bytes);
    Ok(Authority::new(bytes, Approval::sign(requester, key, &id)))
}

/// A new request by the cluster file's operator under its pinned manifest, made now,
/// living `ttl_ms`, with a fresh nonce and the operator's approval.
pub fn make(
    file: &ClusterFile,
    key_id: &str,
    action: Action,
    ttl_ms: u64,
) -> Result<Authority, OpError> {
    let key = operator::load(&file.operator.key_file)?;
    let mut nonce = [0u8; 16];
    fill_random(&mut nonce)?;
    authority(
        &file.pin()?.hash(),
        &file.operator.id,
        &key,
        key_id,
        action,
        now_ms(),
        ttl_ms,
        &nonce,
    )
}

/// The payload a command line names: exactly one of a transaction, a PSBT or a digest,
/// checked for form here so that a typo is a usage error rather than a node's refusal.
pub fn payload(
    eth_tx: Option<&str>,
    btc_psbt: Option<&str>,
    btc_network: &str,
    digest: Option<&str>,
) -> Result<Payload, OpError> {
    let usage = |m: &str| OpError::Usage(m.to_owned());
    match (eth_tx, btc_psbt, digest) {
        (Some(tx), None, None) => {
            let tx = tx.strip_prefix("0x").unwrap_or(tx);
            if tx.is_empty() || hex::decode(tx).is_err() {
                return Err(usage("--eth-tx: an unsigned transaction in hex"));
            }
            Ok(Payload::EthTx(tx.to_ascii_lowercase()))
        }
        (None, Some(psbt), None) => {
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode(psbt)
                .map_or(true, |b| b.is_empty())
            {
                return Err(usage("--btc-psbt: a PSBT in base64"));
            }
            if chains::btc::BtcNetwork::ALL
                .iter()
                .all(|n| n.name() != btc_network)
            {
                return Err(usage(
                    "--btc-network: mainnet, testnet, testnet4, signet or regtest",
                ));
            }
            Ok(Payload::BtcPsbt {
                psbt: psbt.to_owned(),
                network: btc_network.to_owned(),
            })
        }
        (None, None, Some(digest)) => {
            let digest = digest.strip_prefix("0x").unwrap_or(digest);
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(digest, &mut bytes)
                .map_err(|_| usage("--digest: 32 bytes in hex"))?;
            Ok(Payload::Digest(hex::encode(bytes)))
        }
        _ => Err(usage(
            "give exactly one of --eth-tx, --btc-psbt and --digest",
        )),
    }
}

/// Reads a node's answer about request `id` (hex); an answer about another request is
/// refused, as a node that mixes requests up cannot be believed about either.
fn answer_for(node: &str, id: &str, value: serde_json::Value) -> Result<RequestAnswer, OpError> {
    let answer: RequestAnswer = serde_json::from_value(value).map_err(|e| OpError::Answer {
        node: node.to_owned(),
        reason: e.to_string(),
    })?;
    if !answer.request_id.eq_ignore_ascii_case(id) {
        return Err(OpError::Answer {
            node: node.to_owned(),
            reason: format!("answered about request {}, not {id}", answer.request_id),
        });
    }
    Ok(answer)
}

/// Sends `authority` to `node`; its answer.
pub fn submit(
    file: &ClusterFile,
    node: &str,
    authority: Authority,
) -> Result<RequestAnswer, OpError> {
    let id = hex::encode(authority.id());
    let value = ops::command(file, node, &KeyCommand::Submit { authority })?;
    answer_for(node, &id, value)
}

/// Parses a request id as printed (64 hex digits).
pub fn parse_id(text: &str) -> Result<[u8; 32], OpError> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(text, &mut id)
        .map_err(|_| OpError::Usage(format!("{text:?} is not a request id (64 hex digits)")))?;
    Ok(id)
}

/// Asks `node`, or when `None` each node of the cluster file in turn until one holds
/// request `id`: a node's refusal for holding no such request moves on to the next, any
/// other error is the answer. The node that answered, with its answer.
pub fn at_holder<T>(
    file: &ClusterFile,
    node: Option<&str>,
    id: &str,
    mut ask: impl FnMut(&str) -> Result<T, OpError>,
) -> Result<(String, T), OpError> {
    if let Some(node) = node {
        return ask(node).map(|answer| (node.to_owned(), answer));
    }
    for entry in &file.nodes {
        match ask(&entry.id) {
            Ok(answer) => return Ok((entry.id.clone(), answer)),
            Err(OpError::Refused { reason, .. }) if is_no_request(&reason, id) => {}
            Err(e) => return Err(e),
        }
    }
    Err(OpError::NoRequest {
        request_id: id.to_owned(),
    })
}

/// Approves request `id` as the cluster file's operator, at `node` or at the first node
/// that holds it; the node that answered, with its answer.
pub fn approve(
    file: &ClusterFile,
    node: Option<&str>,
    id: &str,
) -> Result<(String, RequestAnswer), OpError> {
    let request_id = parse_id(id)?;
    let key = operator::load(&file.operator.key_file)?;
    let approval = Approval::sign(&file.operator.id, &key, &request_id);
    let id = hex::encode(request_id);
    at_holder(file, node, &id, |node| {
        let command = KeyCommand::Approve {
            request_id: id.clone(),
            approval: approval.clone(),
        };
        answer_for(node, &id, ops::command(file, node, &command)?)
    })
}

/// Request `id` as `node`, or the first node that holds it, shows it.
pub fn show(
    file: &ClusterFile,
    node: Option<&str>,
    id: &str,
) -> Result<(String, RequestView), OpError> {
    let id = hex::encode(parse_id(id)?);
    at_holder(file, node, &id, |node| {
        let command = KeyCommand::ShowRequest {
            request_id: id.clone(),
        };
        let view: RequestView = serde_json::from_value(ops::command(file, node, &command)?)
            .map_err(|e| OpError::Answer {
                node: node.to_owned(),
                reason: e.to_string(),
            })?;
        if !view.answer.request_id.eq_ignore_ascii_case(&id) {
            return Err(OpError::Answer {
                node: node.to_owned(),
                reason: format!("showed request {}, not {id}", view.answer.request_id),
            });
        }
        Ok(view)
    })
}

/// One request as the nodes that hold it show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Held {
    #[serde(flatten)]
    pub view: RequestView,
    /// The nodes that hold it, in cluster file order.
    pub nodes: Vec<String>,
}

/// What `custody request list` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Listing {
    /// Every request some node holds, once, newest first.
    pub requests: Vec<Held>,
    /// The nodes that could not be asked, with why.
    pub errors: BTreeMap<String, String>,
}

/// Every request the nodes of the cluster file hold.
pub fn list(file: &ClusterFile) -> Listing {
    let answers = file.nodes.iter().map(|entry| {
        let views = ops::command(file, &entry.id, &KeyCommand::ListRequests).and_then(|value| {
            serde_json::from_value::<Vec<RequestView>>(value).map_err(|e| OpError::Answer {
                node: entry.id.clone(),
                reason: e.to_string(),
            })
        });
        (entry.id.clone(), views.map_err(|e| e.to_string()))
    });
    merge(answers)
}

/// Merges what each node listed: one entry per request id, naming every node that holds
/// it, with the first node's view of it (the one that answered first in file order);
/// newest first, by expiry.
pub fn merge(
    answers: impl IntoIterator<Item = (String, Result<Vec<RequestView>, String>)>,
) -> Listing {
    let mut listing = Listing::default();
    for (node, answer) in answers {
        match answer {
            Ok(views) => {
                for view in views {
                    let id = view.answer.request_id.to_ascii_lowercase();
                    match listing
                        .requests
                        .iter_mut()
                        .find(|h| h.view.answer.request_id.eq_ignore_ascii_case(&id))
                    {
                        Some(held) => {
                            if !held.nodes.contains(&node) {
                                held.nodes.push(node.clone());
                            }
                        }
                        None => listing.requests.push(Held {
                            view,
                            nodes: vec![node.clone()],
                        }),
                    }
                }
            }
            Err(reason) => {
                listing.errors.insert(node, reason);
            }
        }
    }
    listing
        .requests
        .sort_by_key(|h| std::cmp::Reverse(h.view.expires_ms));
    listing
}

/// What `custody` exits with for an answer: 0 signed or created, 3 pending, 1 refused,
/// failed or expired.
pub fn exit_code(status: RequestStatus) -> u8 {
    match status {
        RequestStatus::Signed | RequestStatus::Created => 0,
        RequestStatus::Pending => 3,
        RequestStatus::Refused | RequestStatus::Failed | RequestStatus::Expired => 1,
    }
}

/// The status as answers spell it.
pub fn status_name(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Signed => "signed",
        RequestStatus::Created => "created",
        RequestStatus::Pending => "pending",
        RequestStatus::Refused => "refused",
        RequestStatus::Failed => "failed",
        RequestStatus::Expired => "expired",
    }
}

/// An answer for people: one line per field that matters for its status. Text a node
/// chose (rule names, reasons) is made printable first.
pub fn describe(answer: &RequestAnswer) -> String {
    let shown = protocol::printable;
    let mut lines = vec![
        format!("request:     {}", shown(&answer.request_id)),
        format!("status:      {}", status_name(answer.status)),
    ];
    if let Some(rule) = &answer.rule {
        let version = answer
            .policy_version
            .map_or(String::new(), |v| format!(" (policy version {v})"));
        lines.push(format!("rule:        {}{version}", shown(rule)));
    }
    if let Some(reason) = &answer.reason {
        lines.push(format!("reason:      {}", shown(reason)));
    }
    if answer.status == RequestStatus::Pending {
        let count = |n: Option<usize>| n.map_or("?".to_owned(), |n| n.to_string());
        lines.push(format!(
            "approvals:   {} of {} needed; another operator runs: custody request approve {}",
            count(answer.approvals),
            count(answer.approvals_needed),
            shown(&answer.request_id)
        ));
    }
    if let Some(signature) = &answer.signature {
        lines.push(format!("scheme:      {}", signature.scheme));
        lines.push(format!("digest:      {}", shown(&signature.digest)));
        lines.push(format!("r:           {}", shown(&signature.r)));
        lines.push(format!("s:           {}", shown(&signature.s)));
        lines.push(format!("v:           {}", signature.v));
        lines.push(format!("public key:  {}", shown(&signature.public_key)));
        if !signature.signers.is_empty() {
            lines.push(format!(
                "signers:     {}",
                shown(&signature.signers.join(", "))
            ));
        }
    }
    for (i, input) in answer.inputs.iter().enumerate() {
        lines.push(format!(
            "input {i}:     digest {} r {} s {} v {} key {}",
            shown(&input.digest),
            shown(&input.r),
            shown(&input.s),
            input.v,
            shown(&input.public_key)
        ));
    }
    if let Some(tx) = &answer.signed_tx {
        lines.push(format!("signed tx:   {}", shown(tx)));
    }
    if let Some(key) = &answer.key {
        lines.push(format!("key id:      {}", shown(&key.key_id)));
        lines.push(format!("public key:  {}", shown(&key.public_key)));
        lines.push(format!(
            "parties:     {} (threshold {})",
            shown(&key.parties.join(", ")),
            key.threshold
        ));
        lines.push(format!("Ethereum:    {}", shown(&key.eth_address)));
        lines.push(format!("Bitcoin:     {}", shown(&key.btc_address)));
    }
    lines.join("\n")
}

/// A request a node holds, for people: its answer, then what it asks and who approved.
pub fn describe_view(view: &RequestView) -> String {
    let shown = protocol::printable;
    format!(
        "{}\nkey:         {}\naction:      {}\nrequester:   {}\napproved by: {}\nexpires:     {} ms",
        describe(&view.answer),
        shown(&view.key_id),
        shown(&view.action),
        shown(&view.requester),
        shown(&view.approvers.join(", ")),
        view.expires_ms
    )
}

#[cfg(test)]
mod tests;
