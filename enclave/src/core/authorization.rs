//! Whether this node contributes to what a request asks: the one decision every node that
//! takes part makes itself, whoever coordinates. For a signature it checks the operators'
//! approvals against its own manifest, parses the transaction itself and computes what it
//! signs from it, and evaluates its own policy on what it parsed, with its own ledger of
//! what the key spent. For a new key it checks that the manifest's threshold of operators
//! approved it and that no provider or operator domain would hold a signing quorum of it
//! unless the manifest allows that ([`manifest::check_placement`]). Nothing here does I/O
//! or reads a clock: the node passes `now_ms`.
//!
//! What is signed: an Ethereum transaction's signing payload (each node hashes it), each
//! input's BIP143 sighash of a PSBT (every input must spend an output of the signing key),
//! or a raw digest, which only a `"chain": "digest"` rule allows. Facts for the policy: an
//! Ethereum transaction moves its value to its destination, or, for an ERC-20
//! `transfer`, the token amount to its recipient; any other contract call is refused. A
//! PSBT moves each output to its address, except outputs that pay back to the signing key
//! itself (change), and its fee counts with the amount; an output that is no address
//! (data carrier, non-standard script) is refused unless it carries no value. Ethereum
//! gas (gas limit times the highest price offered) counts in a native transfer's amount,
//! and a rule's `max_fee` bounds it for any transfer.

use chains::btc::{BtcDestination, BtcPsbt};
use chains::eth::{CalldataKind, EthTx};
use ids::{KeyId, NodeId};
use policy::{Asset, Chain, Decision, Facts, Ledger, PolicyState, Refusal, Spend, Transfer};
use protocol::authority::{Action, Authority, AuthorityError, Authorized, Payload};
use protocol::{DerivationPath, ToSign};

/// What this node checks a request against: its own state.
#[derive(Debug, Clone, Copy)]
pub struct Governance<'a> {
    pub manifest: &'a manifest::Manifest,
    pub manifest_hash: &'a [u8; 32],
    pub policy: &'a PolicyState,
    pub ledger: &'a Ledger,
    pub now_ms: u64,
}

/// The key a session signs with, as this node holds it.
#[derive(Debug, Clone, Copy)]
pub struct SigningKey<'a> {
    pub key_id: &'a KeyId,
    pub path: &'a DerivationPath,
    /// The public key at `path`, compressed SEC1.
    pub public_key: &'a [u8; 33],
    /// Its P2WPKH address on each network is derived from it when a PSBT names change.
    pub signers: &'a [NodeId],
}

/// A request's payload, parsed by this node.
#[derive(Debug, Clone)]
pub enum Parsed {
    Eth(EthTx),
    Btc(BtcPsbt),
    Digest([u8; 32]),
}

impl Parsed {
    /// What is signed, in order: one digest, or one per PSBT input.
    pub fn to_sign(&self) -> Vec<ToSign> {
        match self {
            // Hashed by each node itself, which also lets a pooled presignature sign it.
            Parsed::Eth(tx) => vec![ToSign::Keccak256Message(tx.signing_payload())],
            Parsed::Btc(psbt) => psbt.sighashes().into_iter().map(ToSign::Digest).collect(),
            Parsed::Digest(digest) => vec![ToSign::Digest(*digest)],
        }
    }
}

/// A request this node allows: what it parsed, the deciding rule and the spend it makes.
#[derive(Debug, Clone)]
pub struct Allowed {
    pub authorized: Authorized,
    pub parsed: Parsed,
    pub rule: String,
    pub policy_version: u64,
    pub spend: Spend,
}

/// Why this node does not contribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    #[error("the request asks for {asked}, not for this")]
    OtherAction { asked: &'static str },
    #[error("the request is for key {requested}, the session signs with {session}")]
    OtherKey { requested: String, session: String },
    #[error("the request is for path {requested}, the session signs at {session}")]
    OtherPath { requested: String, session: String },
    #[error("the request names another signing set than the session's")]
    OtherSigners,
    #[error("the request asks to sign {count} digests; the session signs number {input}")]
    NoSuchInput { count: usize, input: u16 },
    #[error("{what}: {reason}")]
    Payload { what: &'static str, reason: String },
    #[error("the transaction calls a contract other than with an ERC-20 transfer")]
    ContractCall,
    #[error("output {index} pays {amount} satoshis to a script that is no address")]
    NotAnAddress { index: usize, amount: u64 },
    #[error("no policy is in force on this node")]
    NoPolicy,
    #[error("pending: {approvals} of {approvals_needed} approvals (rule {rule})")]
    Pending {
        rule: String,
        approvals: usize,
        approvals_needed: usize,
        policy_version: u64,
    },
    #[error("refused{}: {reason}", .rule.as_ref().map(|r| format!(" by rule {r}")).unwrap_or_default())]
    Refused {
        rule: Option<String>,
        reason: Refusal,
        policy_version: u64,
    },
    #[error(
        "key creation needs {needed} approvals of the manifest's operators; {approvals} so far"
    )]
    KeyApprovals { approvals: usize, needed: usize },
    #[error("the request creates key {requested} with {what} other than the session's")]
    OtherKeyCreation {
        requested: String,
        what: &'static str,
    },
    #[error("the key's placement is refused: {0}")]
    Placement(#[from] manifest::PlacementError),
}

fn payload_error(what: &'static str, reason: impl ToString) -> Denied {
    Denied::Payload {
        what,
        reason: reason.to_string(),
    }
}

/// A signature request as this node read it, before its policy decides: the checked
/// request, what is signed and the facts the policy evaluates.
#[derive(Debug, Clone)]
pub struct Proposed {
    pub authorized: Authorized,
    pub parsed: Parsed,
    facts: Facts,
}

impl Proposed {
    /// The request allowed by `rule` of policy version `policy_version` at `now_secs`,
    /// with the spend it makes.
    pub fn allow(
        self,
        key_id: &KeyId,
        rule: String,
        policy_version: u64,
        now_secs: u64,
    ) -> Result<Allowed, Denied> {
        let spend = Spend {
            request: *self.authorized.id(),
            key_id: key_id.clone(),
            chain: *self.facts.chain(),
            asset: self.facts.asset().clone(),
            to: self.facts.destinations(),
            amount: self
                .facts
                .amount()
                .map_err(|e| payload_error("amount", e))?,
            at_secs: now_secs,
        };
        Ok(Allowed {
            authorized: self.authorized,
            parsed: self.parsed,
            rule,
            policy_version,
            spend,
        })
    }
}

/// Checks `authority` for a signature with `key` and decides it under this node's policy.
/// `Ok` only when the policy allows it now with the approvals it carries.
pub fn check_sign(
    g: &Governance<'_>,
    authority: &Authority,
    key: &SigningKey<'_>,
) -> Result<Allowed, Denied> {
    let proposed = propose_sign(g, authority, key)?;
    let now_secs = g.now_ms / 1000;
    let held = g.policy.active_held(now_secs).ok_or(Denied::NoPolicy)?;
    let policy_version = held.policy().version();
    let listed_since = |chain: &Chain, address: &str| g.policy.listed_since(chain, address);
    let context = policy::Context {
        now_secs,
        facts: &proposed.facts,
        approvals: proposed.authorized.approvers(),
        signers: key.signers,
        ledger: g.ledger,
        listed_since: &listed_since,
        request: *proposed.authorized.id(),
    };
    match policy::evaluate(held.policy(), &context) {
        Decision::Allow { rule } => proposed.allow(key.key_id, rule, policy_version, now_secs),
        Decision::Pending {
            rule,
            approvals,
            approvals_needed,
        } => Err(Denied::Pending {
            rule,
            approvals,
            approvals_needed,
            policy_version,
        }),
        Decision::Refused { rule, reason } => Err(Denied::Refused {
            rule,
            reason,
            policy_version,
        }),
    }
}

/// Checks `authority` for a signature with `key` and parses what it asks to sign: the
/// approvals against this node's manifest and clock, the key and path against the
/// session's, the payload by this node's own parser. The policy has not decided yet.
pub fn propose_sign(
    g: &Governance<'_>,
    authority: &Authority,
    key: &SigningKey<'_>,
) -> Result<Proposed, Denied> {
    let authorized = authority.verify(g.manifest, g.manifest_hash, g.now_ms)?;
    let request = authorized.request();
    let Action::Sign {
        path,
        payload,
        signers,
    } = &request.action
    else {
        return Err(Denied::OtherAction { asked: "a new key" });
    };
    if request.key_id != key.key_id.as_str() {
        return Err(Denied::OtherKey {
            requested: protocol::printable(&request.key_id),
            session: key.key_id.to_string(),
        });
    }
    let requested = match path {
        Some(p) => DerivationPath::parse(p).map_err(|e| payload_error("path", e))?,
        None => DerivationPath::master(),
    };
    if requested != *key.path {
        return Err(Denied::OtherPath {
            requested: protocol::printable(path.as_deref().unwrap_or("m")),
            session: key.path.to_string(),
        });
    }
    if !signers.is_empty() {
        let mut named: Vec<&str> = signers.iter().map(String::as_str).collect();
        named.sort_unstable();
        named.dedup();
        let mut session: Vec<&str> = key.signers.iter().map(NodeId::as_str).collect();
        session.sort_unstable();
        if named != session {
            return Err(Denied::OtherSigners);
        }
    }
    let (parsed, facts) = parse(payload, key)?;
    Ok(Proposed {
        authorized,
        parsed,
        facts,
    })
}

/// [`check_sign`], and the session's digest must be the request's `input`-th.
pub fn check_session(
    g: &Governance<'_>,
    authority: &Authority,
    key: &SigningKey<'_>,
    input: u16,
) -> Result<(Allowed, ToSign), Denied> {
    let allowed = check_sign(g, authority, key)?;
    let digests = allowed.parsed.to_sign();
    let to_sign = digests
        .get(usize::from(input))
        .cloned()
        .ok_or(Denied::NoSuchInput {
            count: digests.len(),
            input,
        })?;
    Ok((allowed, to_sign))
}

/// Checks `authority` for creating `key_id` shared by `group` with `threshold`: the
/// request says exactly that, its party set obeys this node's manifest's placement rule
/// (whatever the coordinator decided), and the manifest's threshold of its operators
/// approved it.
pub fn check_create(
    g: &Governance<'_>,
    authority: &Authority,
    key_id: &KeyId,
    group: &[NodeId],
    threshold: u16,
) -> Result<Authorized, Denied> {
    let authorized = authority.verify(g.manifest, g.manifest_hash, g.now_ms)?;
    let request = authorized.request();
    let Action::CreateKey {
        threshold: asked,
        parties,
        ..
    } = &request.action
    else {
        return Err(Denied::OtherAction {
            asked: "a signature",
        });
    };
    let other = |what| Denied::OtherKeyCreation {
        requested: protocol::printable(&request.key_id),
        what,
    };
    if request.key_id != key_id.as_str() {
        return Err(other("an id"));
    }
    if *asked != threshold {
        return Err(other("a threshold"));
    }
    // No parties in the request means every node of the manifest.
    let mut requested: Vec<&str> = if parties.is_empty() {
        g.manifest.nodes().iter().map(|n| n.id()).collect()
    } else {
        parties.iter().map(String::as_str).collect()
    };
    requested.sort_unstable();
    let mut session: Vec<&str> = group.iter().map(NodeId::as_str).collect();
    session.sort_unstable();
    if requested != session {
        return Err(other("parties"));
    }
    manifest::check_placement(g.manifest, &requested, threshold)?;
    let needed = g.manifest.threshold();
    if authorized.approvers().len() < needed {
        return Err(Denied::KeyApprovals {
            approvals: authorized.approvers().len(),
            needed,
        });
    }
    Ok(authorized)
}

/// What `payload` moves, as this node parses it for `key`: what its audit log records of
/// a request before deciding it.
pub fn facts(payload: &Payload, key: &SigningKey<'_>) -> Result<Facts, Denied> {
    parse(payload, key).map(|(_, facts)| facts)
}

/// Parses a payload into what is signed and what the policy evaluates.
fn parse(payload: &Payload, key: &SigningKey<'_>) -> Result<(Parsed, Facts), Denied> {
    let facts_error = |e: policy::FactsError| payload_error("transaction", e);
    match payload {
        Payload::Digest(text) => {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(text, &mut digest)
                .map_err(|e| payload_error("digest (32 bytes, hex)", e))?;
            Ok((Parsed::Digest(digest), Facts::digest(key.key_id.clone())))
        }
        Payload::EthTx(text) => {
            let text = text.strip_prefix("0x").unwrap_or(text);
            if text.len() > 2 * chains::eth::MAX_ETH_TX_LEN {
                return Err(payload_error("transaction", "too long"));
            }
            let bytes = hex::decode(text).map_err(|e| payload_error("transaction hex", e))?;
            let tx = EthTx::parse_unsigned(&bytes).map_err(|e| payload_error("transaction", e))?;
            let chain = Chain::Ethereum {
                chain_id: tx.chain_id(),
            };
            let (asset, transfer) = match tx.calldata_kind() {
                CalldataKind::Empty => (Asset::Native, Transfer::new(tx.to(), tx.value())),
                CalldataKind::Erc20Transfer => {
                    let call = tx.erc20_transfer().ok_or(Denied::ContractCall)?;
                    if tx.value() != 0 {
                        // A token transfer that also moves ether would hide the ether.
                        return Err(Denied::ContractCall);
                    }
                    (
                        Asset::Erc20(call.token.clone()),
                        Transfer::new(call.recipient.clone(), call.amount),
                    )
                }
                CalldataKind::Other => return Err(Denied::ContractCall),
            };
            // Gas is a spend too: of ether, so it counts in a native transfer's amount, and
            // a rule's `max_fee` bounds it whatever the asset.
            let gas = tx
                .max_fee_wei()
                .ok_or_else(|| payload_error("transaction", "gas limit times price overflows"))?;
            let fee = if asset == Asset::Native { gas } else { 0 };
            let facts = Facts::transaction(key.key_id.clone(), chain, asset, vec![transfer], fee)
                .map_err(facts_error)?
                .with_network_fee(gas);
            Ok((Parsed::Eth(tx), facts))
        }
        Payload::BtcPsbt { psbt, network } => {
            let chain: Chain = format!("bitcoin:{network}")
                .parse()
                .map_err(|e| payload_error("bitcoin network", e))?;
            let net = chains::btc::BtcNetwork::ALL
                .into_iter()
                .find(|n| n.name() == network)
                .ok_or_else(|| payload_error("bitcoin network", protocol::printable(network)))?;
            let psbt = BtcPsbt::parse(psbt, net).map_err(|e| payload_error("PSBT", e))?;
            psbt.check_key(key.public_key)
                .map_err(|e| payload_error("PSBT", e))?;
            let change = chains::btc::p2wpkh_address(key.public_key, net)
                .map_err(|e| payload_error("PSBT", e))?;
            let mut transfers = Vec::new();
            for (index, output) in psbt.outputs().iter().enumerate() {
                match &output.destination {
                    BtcDestination::Address(address) if *address == change => {}
                    BtcDestination::Address(address) => transfers.push(Transfer::new(
                        address.clone(),
                        u128::from(output.amount_sats),
                    )),
                    BtcDestination::OpReturn(_) | BtcDestination::NonStandard(_)
                        if output.amount_sats == 0 => {}
                    BtcDestination::OpReturn(_) | BtcDestination::NonStandard(_) => {
                        return Err(Denied::NotAnAddress {
                            index,
                            amount: output.amount_sats,
                        });
                    }
                }
            }
            let facts = Facts::transaction(
                key.key_id.clone(),
                chain,
                Asset::Native,
                transfers,
                u128::from(psbt.fee()),
            )
            .map_err(facts_error)?;
            Ok((Parsed::Btc(psbt), facts))
        }
    }
}

#[cfg(test)]
mod tests;
