//! The attacker's view of the decision every participant makes before it contributes a
//! share, as one node sees it: a manifest of three operators (K = 2) and three nodes, one
//! accepted policy, a ledger, and the key `treasury`. This module holds that node and the
//! builders of what it is asked to sign: transactions and PSBTs are built with alloy and
//! rust-bitcoin, the libraries the chains use, never by hand. Every refusal is asserted by
//! its typed reason.
//!
//! - [`approvals`]: the request's authority, the request against the session, key
//!   creation;
//! - [`transactions`]: what the node parses from Ethereum transactions and PSBTs;
//! - [`rules`]: raw digests, velocity across signing sets, the policy in force, mandatory
//!   signers;
//! - [`placement`]: a new key's party set against the manifest's placement rule.

use super::*;
use alloy_consensus::{SignableTransaction, TxEip1559, TxLegacy};
use alloy_primitives::{Address, TxKind, U256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash as _;
use bitcoin::psbt::Psbt;
use bitcoin::sighash::SighashCache;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, CompressedPublicKey, EcdsaSighashType, Network, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Witness,
};
use ids::OperatorId;
use manifest::{OperatorKey, OperatorSignature};
use policy::SignedPolicy;
use protocol::authority::{Approval, DEFAULT_TTL_MS, MAX_CLOCK_SKEW_MS, Request, request_id};
use serde_json::{Value, json};
use std::cell::Cell;

const DAY: u64 = 86_400;
/// When the node accepted its policy (Unix seconds, its own clock).
const ACCEPTED: u64 = 1_800_000_000;
/// When decisions are made unless a test says otherwise: every allowlist delay is over.
const NOW: u64 = ACCEPTED + 2 * DAY;
const EXCHANGE: [u8; 20] = [0x11; 20];
const STRANGER: [u8; 20] = [0x33; 20];
const TOKEN: [u8; 20] = [0x44; 20];
const DESK: [u8; 20] = [0x55; 20];
const OTHER_TOKEN: [u8; 20] = [0x66; 20];
const SEPOLIA: u64 = 11_155_111;
/// The signing key's secp256k1 secret (as `[n; 32]`), and another key's.
const OURS: u8 = 1;
const PAYEE: u8 = 9;

fn op(i: usize) -> String {
    format!("operator-{i}")
}

fn node(i: usize) -> NodeId {
    NodeId::new(format!("node-{i}")).unwrap()
}

fn nodes(ids: &[usize]) -> Vec<NodeId> {
    ids.iter().map(|i| node(*i)).collect()
}

fn eth_address(a: [u8; 20]) -> String {
    format!("0x{}", hex::encode(a))
}

/// Three operators, K = 2, and three nodes told apart by PCR4, all of one provider, with
/// `placement` and each node's operator domain.
fn manifest_with(
    operators: &[OperatorKey],
    placement: Value,
    domains: [Option<&str>; 3],
) -> (manifest::Manifest, [u8; 32]) {
    let pcr = |b: &str| b.repeat(96);
    let operators: Vec<Value> = operators
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"id": op(i), "public_key": k.public_key_hex()}))
        .collect();
    let nodes: Vec<Value> = ["d", "e", "f"]
        .iter()
        .zip(domains)
        .enumerate()
        .map(|(i, (p4, domain))| {
            let mut node = json!({
                "id": format!("node-{}", i + 1), "provider": "sim",
                "address": format!("127.0.0.1:710{}", i + 1),
                "measurements": [{"0": pcr("a"), "1": pcr("b"), "2": pcr("c"), "4": pcr(p4)}],
            });
            if let Some(domain) = domain {
                node["domain"] = json!(domain);
            }
            node
        })
        .collect();
    let body = serde_json::to_vec(&json!({
        "version": 1,
        "threshold": 2,
        "operators": operators,
        "nodes": nodes,
        "placement": placement,
    }))
    .unwrap();
    (
        manifest::Manifest::parse(&body).unwrap(),
        *manifest::hash_of(&body).as_bytes(),
    )
}

/// The policy most tests run under: native transfers to the exchange (one approval up to
/// 1000 wei, two above), one token to the desk, anything on Sepolia with all three
/// operators, bitcoin to one payee, and no digest rule.
fn base_policy() -> Value {
    json!({
        "version": 1,
        "effective_after_secs": DAY,
        "allowlist_delay_secs": DAY,
        "allowlist": [
            {"name": "exchange", "chain": "ethereum:1", "address": eth_address(EXCHANGE)},
            {"name": "desk", "chain": "ethereum:1", "address": eth_address(DESK)},
            {"name": "btc-payee", "chain": "bitcoin:mainnet",
             "address": btc_address(&secp(PAYEE), Network::Bitcoin)},
        ],
        "rules": [
            {"name": "small native", "keys": ["treasury"], "chain": "ethereum:1",
             "asset": "native", "to": ["exchange"], "max_amount": "1000",
             "approvals": 1, "action": "allow"},
            {"name": "large native", "keys": ["treasury"], "chain": "ethereum:1",
             "asset": "native", "to": ["exchange"], "approvals": 2, "action": "allow"},
            {"name": "token to desk", "chain": "ethereum:1", "asset": eth_address(TOKEN),
             "to": ["desk"], "max_amount": "5000", "max_fee": "1000000", "approvals": 1,
             "action": "allow"},
            {"name": "sepolia", "chain": format!("ethereum:{SEPOLIA}"), "approvals": 3,
             "action": "allow"},
            {"name": "btc payee", "keys": ["treasury"], "chain": "bitcoin:mainnet", "to": ["btc-payee"],
             "max_amount": "102000", "approvals": 1, "action": "allow"},
        ]
    })
}

/// `base_policy` with `rules` instead of its own.
fn policy_with_rules(rules: Value) -> Value {
    let mut policy = base_policy();
    policy["rules"] = rules;
    policy
}

/// One node's state and the key a session signs with: `treasury` at the master path,
/// signed by nodes 1 and 2 unless a test changes it.
struct Fixture {
    operators: Vec<OperatorKey>,
    manifest: manifest::Manifest,
    hash: [u8; 32],
    policy: PolicyState,
    ledger: Ledger,
    now_ms: u64,
    key_id: KeyId,
    path: DerivationPath,
    public_key: [u8; 33],
    signers: Vec<NodeId>,
    nonce: Cell<u8>,
}

impl Fixture {
    /// No policy yet; the manifest lets the nodes' one provider hold a key's quorum.
    fn bare() -> Self {
        Self::placed(json!({"allow_provider_quorum": true}), [None, None, None])
    }

    /// No policy yet, under a manifest with `placement` and these operator domains.
    fn placed(placement: Value, domains: [Option<&str>; 3]) -> Self {
        let operators: Vec<OperatorKey> =
            (0..3).map(|_| OperatorKey::generate().unwrap()).collect();
        let (manifest, hash) = manifest_with(&operators, placement, domains);
        Fixture {
            operators,
            manifest,
            hash,
            policy: PolicyState::new(),
            ledger: Ledger::new(),
            now_ms: NOW * 1000,
            key_id: KeyId::new("treasury").unwrap(),
            path: DerivationPath::master(),
            public_key: secp(OURS),
            signers: nodes(&[1, 2]),
            nonce: Cell::new(0),
        }
    }

    fn new() -> Self {
        Self::with_policy(&base_policy())
    }

    /// `policy`, accepted at [`ACCEPTED`].
    fn with_policy(policy: &Value) -> Self {
        let mut f = Self::bare();
        f.accept_policy(policy, ACCEPTED);
        f
    }

    /// Accepts `policy`, approved by operators 0 and 1, at `at`; returns when it takes
    /// effect.
    fn accept_policy(&mut self, policy: &Value, at: u64) -> u64 {
        let body = serde_json::to_vec(policy).unwrap();
        let signatures: Vec<OperatorSignature> = [0, 1]
            .iter()
            .map(|i| OperatorSignature {
                operator: op(*i),
                signature: policy::sign(&body, &self.operators[*i]),
            })
            .collect();
        let signed = SignedPolicy::assemble(&body, &signatures).unwrap();
        let accepted =
            policy::accept(&self.manifest, self.policy.newest_version(), signed).unwrap();
        self.policy.accept(accepted, at).unwrap()
    }

    fn at(&mut self, now_secs: u64) {
        self.now_ms = now_secs * 1000;
    }

    fn governance(&self) -> Governance<'_> {
        Governance {
            manifest: &self.manifest,
            manifest_hash: &self.hash,
            policy: &self.policy,
            ledger: &self.ledger,
            now_ms: self.now_ms,
        }
    }

    fn key(&self) -> SigningKey<'_> {
        SigningKey {
            key_id: &self.key_id,
            path: &self.path,
            public_key: &self.public_key,
            signers: &self.signers,
        }
    }

    /// The bytes of a request for `action` with `key_id`, by operator `requester`, made
    /// at `created_ms` under `manifest_hash`; each has its own nonce.
    fn request_bytes(
        &self,
        manifest_hash: &[u8; 32],
        key_id: &str,
        action: Action,
        requester: &str,
        created_ms: u64,
    ) -> Vec<u8> {
        let nonce = self.nonce.get();
        self.nonce.set(nonce + 1);
        Request::new(
            manifest_hash,
            &KeyId::new(key_id).unwrap(),
            action,
            &OperatorId::new(requester).unwrap(),
            created_ms,
            DEFAULT_TTL_MS,
            &[nonce; 16],
        )
        .encode()
        .unwrap()
    }

    /// `bytes` approved by the operators `approvers`, in that order.
    fn approved(&self, bytes: Vec<u8>, approvers: &[usize]) -> Authority {
        let id = request_id(&bytes);
        let (first, rest) = approvers.split_first().unwrap();
        let mut authority = Authority::new(
            bytes,
            Approval::sign(&op(*first), &self.operators[*first], &id),
        );
        for i in rest {
            authority
                .add(Approval::sign(&op(*i), &self.operators[*i], &id))
                .unwrap();
        }
        authority
    }

    /// A request for `action` with `treasury` made now by the first of `approvers` and
    /// approved by all of them.
    fn authority(&self, action: Action, approvers: &[usize]) -> Authority {
        let bytes = self.request_bytes(
            &self.hash,
            "treasury",
            action,
            &op(approvers[0]),
            self.now_ms,
        );
        self.approved(bytes, approvers)
    }

    fn check(&self, authority: &Authority) -> Result<Allowed, Denied> {
        check_sign(&self.governance(), authority, &self.key())
    }

    /// Asks to sign `payload` at the master path with the approvals of `approvers`.
    fn sign(&self, payload: Payload, approvers: &[usize]) -> Result<Allowed, Denied> {
        self.check(&self.authority(sign(payload), approvers))
    }

    fn create(
        &self,
        authority: &Authority,
        key_id: &str,
        group: &[usize],
        threshold: u16,
    ) -> Result<Authorized, Denied> {
        check_create(
            &self.governance(),
            authority,
            &KeyId::new(key_id).unwrap(),
            &nodes(group),
            threshold,
        )
    }
}

fn sign(payload: Payload) -> Action {
    Action::Sign {
        path: None,
        payload,
        signers: Vec::new(),
    }
}

fn create_key(threshold: u16, parties: &[usize]) -> Action {
    Action::CreateKey {
        threshold,
        parties: parties.iter().map(|i| format!("node-{i}")).collect(),
        renew_aux: false,
    }
}

fn allowed_by(result: Result<Allowed, Denied>, rule: &str) -> Allowed {
    let allowed = result.unwrap();
    assert_eq!(allowed.rule, rule);
    allowed
}

fn refused(rule: Option<&str>, reason: Refusal, policy_version: u64) -> Denied {
    Denied::Refused {
        rule: rule.map(str::to_owned),
        reason,
        policy_version,
    }
}

fn no_rule() -> Denied {
    refused(None, Refusal::NoRule, 1)
}

fn pending(rule: &str, approvals: usize, approvals_needed: usize) -> Denied {
    Denied::Pending {
        rule: rule.to_owned(),
        approvals,
        approvals_needed,
        policy_version: 1,
    }
}

// Ethereum transactions, as alloy encodes them unsigned.

fn eip1559(chain_id: u64, to: [u8; 20], value: u128, input: Vec<u8>) -> TxEip1559 {
    TxEip1559 {
        chain_id,
        nonce: 3,
        // Gas at price 0, so that amounts are the values; gas is tested on its own.
        gas_limit: 60_000,
        max_fee_per_gas: 0,
        max_priority_fee_per_gas: 0,
        to: TxKind::Call(Address::from(to)),
        value: U256::from(value),
        access_list: Default::default(),
        input: input.into(),
    }
}

fn legacy(chain_id: u64, to: [u8; 20], value: u128) -> TxLegacy {
    TxLegacy {
        chain_id: Some(chain_id),
        nonce: 7,
        gas_price: 0,
        gas_limit: 21_000,
        to: TxKind::Call(Address::from(to)),
        value: U256::from(value),
        input: Default::default(),
    }
}

fn eth(bytes: &[u8]) -> Payload {
    Payload::EthTx(format!("0x{}", hex::encode(bytes)))
}

/// `value` wei to `to` on `chain_id`.
fn native(chain_id: u64, to: [u8; 20], value: u128) -> Payload {
    eth(&eip1559(chain_id, to, value, vec![]).encoded_for_signing())
}

/// ERC-20 `transfer(recipient, amount)` calldata.
fn transfer_call(recipient: [u8; 20], amount: u128) -> Vec<u8> {
    let mut data = chains::eth::ERC20_TRANSFER_SELECTOR.to_vec();
    data.extend([0u8; 12]);
    data.extend(recipient);
    data.extend(U256::from(amount).to_be_bytes::<32>());
    data
}

/// `amount` of `token` to `recipient` on mainnet, with `value` wei attached.
fn erc20(token: [u8; 20], recipient: [u8; 20], amount: u128, value: u128) -> Payload {
    eth(&eip1559(1, token, value, transfer_call(recipient, amount)).encoded_for_signing())
}

// Bitcoin PSBTs, as rust-bitcoin builds them.

/// The compressed public key of the secret `[n; 32]`.
fn secp(n: u8) -> [u8; 33] {
    k256::ecdsa::SigningKey::from_slice(&[n; 32])
        .unwrap()
        .verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .try_into()
        .unwrap()
}

fn compressed(public_key: &[u8; 33]) -> CompressedPublicKey {
    CompressedPublicKey::from_slice(public_key).unwrap()
}

fn p2wpkh(n: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&compressed(&secp(n)).wpubkey_hash())
}

fn btc_address(public_key: &[u8; 33], network: Network) -> String {
    bitcoin::Address::p2wpkh(&compressed(public_key), network).to_string()
}

fn pay(script: ScriptBuf, sats: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: script,
    }
}

/// Spends `inputs` (script, amount), each described by its witness UTXO, to `outputs`.
fn psbt(inputs: &[(ScriptBuf, u64)], outputs: Vec<TxOut>) -> Psbt {
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: Vec::new(),
        output: outputs,
    };
    // Each input spends output `i` of a previous transaction of its own, which the PSBT
    // carries whole (as a signer requires).
    let previous: Vec<Transaction> = inputs
        .iter()
        .enumerate()
        .map(|(i, (script, amount))| {
            let mut output: Vec<TxOut> = (0..i).map(|_| pay(ScriptBuf::new(), 0)).collect();
            output.push(pay(script.clone(), *amount));
            Transaction {
                version: Version::TWO,
                lock_time: LockTime::from_consensus(i as u32 + 1),
                input: vec![],
                output,
            }
        })
        .collect();
    tx.input = previous
        .iter()
        .enumerate()
        .map(|(i, prev)| TxIn {
            previous_output: OutPoint {
                txid: prev.compute_txid(),
                vout: i as u32,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        })
        .collect();
    let mut psbt = Psbt::from_unsigned_tx(tx).unwrap();
    for ((input, (script, amount)), prev) in psbt.inputs.iter_mut().zip(inputs).zip(previous) {
        input.witness_utxo = Some(pay(script.clone(), *amount));
        input.non_witness_utxo = Some(prev);
    }
    psbt
}

fn btc(psbt: &Psbt, network: &str) -> Payload {
    Payload::BtcPsbt {
        psbt: BASE64.encode(psbt.serialize()),
        network: network.to_owned(),
    }
}

/// 150 000 sats of ours: `to_payee` to the payee, `change` back to us, the rest is fee.
fn payment(to_payee: u64, change: u64) -> Psbt {
    psbt(
        &[(p2wpkh(OURS), 150_000)],
        vec![pay(p2wpkh(PAYEE), to_payee), pay(p2wpkh(OURS), change)],
    )
}

mod approvals;
mod findings;
mod placement;
mod rules;
mod transactions;
