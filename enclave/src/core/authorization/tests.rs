//! The attacker's view of the decision every participant makes before it contributes a
//! share: approvals that are forged, unlisted, missing, stale or made for another cluster;
//! a request for something other than what the session signs; and the policy decided on
//! transactions and PSBTs this node parses itself (allowlist delay, limits, fall-through,
//! contract calls, change and fee, networks, raw digests, velocity across signing sets,
//! mandatory signers). Transactions are built with alloy and rust-bitcoin, the libraries the
//! chains use, never by hand; every refusal is asserted by its typed reason.

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
    Transaction, TxIn, TxOut, Txid, Witness,
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

/// Three operators, K = 2, and three nodes told apart by PCR4.
fn manifest_of(operators: &[OperatorKey]) -> (manifest::Manifest, [u8; 32]) {
    let pcr = |b: &str| b.repeat(96);
    let operators: Vec<Value> = operators
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"id": op(i), "public_key": k.public_key_hex()}))
        .collect();
    let nodes: Vec<Value> = ["d", "e", "f"]
        .iter()
        .enumerate()
        .map(|(i, p4)| {
            json!({
                "id": format!("node-{}", i + 1), "provider": "sim",
                "address": format!("127.0.0.1:710{}", i + 1),
                "measurements": [{"0": pcr("a"), "1": pcr("b"), "2": pcr("c"), "4": pcr(p4)}],
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({
        "version": 1,
        "threshold": 2,
        "operators": operators,
        "nodes": nodes,
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
             "to": ["desk"], "max_amount": "5000", "approvals": 1, "action": "allow"},
            {"name": "sepolia", "chain": format!("ethereum:{SEPOLIA}"), "approvals": 3,
             "action": "allow"},
            {"name": "btc payee", "chain": "bitcoin:mainnet", "to": ["btc-payee"],
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
    /// No policy yet.
    fn bare() -> Self {
        let operators: Vec<OperatorKey> =
            (0..3).map(|_| OperatorKey::generate().unwrap()).collect();
        let (manifest, hash) = manifest_of(&operators);
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
        gas_limit: 60_000,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
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
        gas_price: 20_000_000_000,
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
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: (0..inputs.len())
            .map(|i| TxIn {
                previous_output: OutPoint {
                    txid: Txid::from_byte_array([i as u8 + 1; 32]),
                    vout: i as u32,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    };
    let mut psbt = Psbt::from_unsigned_tx(tx).unwrap();
    for (input, (script, amount)) in psbt.inputs.iter_mut().zip(inputs) {
        input.witness_utxo = Some(pay(script.clone(), *amount));
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

// The approvals.

#[test]
fn a_forged_approval_under_a_listed_name_refuses_the_whole_request() {
    let f = Fixture::new();
    let outsider = OperatorKey::generate().unwrap();
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 2000)),
        &op(0),
        f.now_ms,
    );
    let id = request_id(&bytes);
    let mut authority = f.approved(bytes, &[0, 2]);
    // Two genuine approvals would be enough; a third, forged, still refuses the request.
    assert_eq!(f.check(&authority).unwrap().rule, "large native");
    authority
        .add(Approval::sign(&op(1), &outsider, &id))
        .unwrap();
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::BadApproval(op(1)))
    );
    // An approval of another request does not verify for this one either.
    let other = f.authority(sign(native(1, EXCHANGE, 2000)), &[1]);
    let mut replayed = f.approved(
        f.request_bytes(
            &f.hash,
            "treasury",
            sign(native(1, EXCHANGE, 2000)),
            &op(0),
            f.now_ms,
        ),
        &[0],
    );
    replayed.add(other.approvals()[0].clone()).unwrap();
    assert_eq!(
        f.check(&replayed).unwrap_err(),
        Denied::Authority(AuthorityError::BadApproval(op(1)))
    );
}

#[test]
fn an_operator_the_manifest_does_not_list_is_refused() {
    let f = Fixture::new();
    let outsider = OperatorKey::generate().unwrap();
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 2000)),
        &op(0),
        f.now_ms,
    );
    let id = request_id(&bytes);
    let mut authority = f.approved(bytes, &[0]);
    authority
        .add(Approval::sign(&op(9), &outsider, &id))
        .unwrap();
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::NotOperator(op(9)))
    );
    // Nor may an outsider make a request of its own.
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(9),
        f.now_ms,
    );
    let id = request_id(&bytes);
    let authority = Authority::new(bytes, Approval::sign(&op(9), &outsider, &id));
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::NotOperator(op(9)))
    );
}

#[test]
fn a_request_without_its_requesters_approval_is_refused() {
    let f = Fixture::new();
    // Made in operator-0's name, approved by the two others only: enough approvals, but
    // operator-0 never asked.
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms,
    );
    let authority = f.approved(bytes, &[1, 2]);
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::NoRequesterApproval(op(0)))
    );
}

#[test]
fn an_expired_request_is_refused_from_the_millisecond_after_its_expiry() {
    let mut f = Fixture::new();
    let created = f.now_ms - DEFAULT_TTL_MS;
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        created,
    );
    let authority = f.approved(bytes, &[0]);
    let expires_ms = created + DEFAULT_TTL_MS;
    allowed_by(f.check(&authority), "small native");
    f.now_ms = expires_ms + 1;
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::Expired {
            expires_ms,
            now_ms: expires_ms + 1
        })
    );
}

#[test]
fn a_request_from_the_future_is_refused_past_the_clock_skew() {
    let f = Fixture::new();
    let at_skew = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms + MAX_CLOCK_SKEW_MS,
    );
    allowed_by(f.check(&f.approved(at_skew, &[0])), "small native");
    let past_skew = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms + MAX_CLOCK_SKEW_MS + 1,
    );
    assert_eq!(
        f.check(&f.approved(past_skew, &[0])).unwrap_err(),
        Denied::Authority(AuthorityError::FromTheFuture {
            created_ms: f.now_ms + MAX_CLOCK_SKEW_MS + 1,
            now_ms: f.now_ms
        })
    );
}

#[test]
fn a_request_made_under_another_manifest_is_refused() {
    let f = Fixture::new();
    // Genuinely approved by this cluster's operators, for another cluster.
    let bytes = f.request_bytes(
        &[7; 32],
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms,
    );
    let authority = f.approved(bytes, &[0, 1, 2]);
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::OtherManifest)
    );
    assert_eq!(
        f.create(&authority, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::Authority(AuthorityError::OtherManifest)
    );
}

// The request against the session.

#[test]
fn a_request_for_another_key_is_refused() {
    let f = Fixture::new();
    let bytes = f.request_bytes(
        &f.hash,
        "cold",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms,
    );
    assert_eq!(
        f.check(&f.approved(bytes, &[0])).unwrap_err(),
        Denied::OtherKey {
            requested: "cold".into(),
            session: "treasury".into()
        }
    );
}

#[test]
fn a_request_for_another_path_is_refused() {
    let mut f = Fixture::new();
    let at = |path: Option<&str>| Action::Sign {
        path: path.map(str::to_owned),
        payload: native(1, EXCHANGE, 10),
    };
    assert_eq!(
        f.check(&f.authority(at(Some("m/1")), &[0])).unwrap_err(),
        Denied::OtherPath {
            requested: "m/1".into(),
            session: "m".into()
        }
    );
    f.path = DerivationPath::parse("m/0/1").unwrap();
    assert_eq!(
        f.check(&f.authority(at(None), &[0])).unwrap_err(),
        Denied::OtherPath {
            requested: "m".into(),
            session: "m/0/1".into()
        }
    );
    assert_eq!(
        f.check(&f.authority(at(Some("m/0/2")), &[0])).unwrap_err(),
        Denied::OtherPath {
            requested: "m/0/2".into(),
            session: "m/0/1".into()
        }
    );
    allowed_by(
        f.check(&f.authority(at(Some("m/0/1")), &[0])),
        "small native",
    );
}

#[test]
fn a_key_creation_is_no_signature_and_a_signature_no_key_creation() {
    let f = Fixture::new();
    let creation = f.authority(create_key(2, &[]), &[0, 1]);
    assert_eq!(
        f.check(&creation).unwrap_err(),
        Denied::OtherAction { asked: "a new key" }
    );
    let signature = f.authority(sign(native(1, EXCHANGE, 10)), &[0, 1]);
    assert_eq!(
        f.create(&signature, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::OtherAction {
            asked: "a signature"
        }
    );
}

#[test]
fn a_session_signs_no_input_past_the_requests_last() {
    let f = Fixture::new();
    let g = f.governance();
    let two_inputs = psbt(
        &[(p2wpkh(OURS), 150_000), (p2wpkh(OURS), 60_000)],
        vec![pay(p2wpkh(PAYEE), 100_000), pay(p2wpkh(OURS), 108_000)],
    );
    let authority = f.authority(sign(btc(&two_inputs, "mainnet")), &[0]);
    for input in [0, 1] {
        check_session(&g, &authority, &f.key(), input).unwrap();
    }
    for input in [2, u16::MAX] {
        assert_eq!(
            check_session(&g, &authority, &f.key(), input).unwrap_err(),
            Denied::NoSuchInput { count: 2, input }
        );
    }
    let authority = f.authority(sign(native(1, EXCHANGE, 10)), &[0]);
    check_session(&g, &authority, &f.key(), 0).unwrap();
    assert_eq!(
        check_session(&g, &authority, &f.key(), 1).unwrap_err(),
        Denied::NoSuchInput { count: 1, input: 1 }
    );
}

#[test]
fn a_session_signs_the_requests_own_digests_and_no_other() {
    let f = Fixture::new();
    let g = f.governance();
    let two_inputs = psbt(
        &[(p2wpkh(OURS), 150_000), (p2wpkh(OURS), 60_000)],
        vec![pay(p2wpkh(PAYEE), 100_000), pay(p2wpkh(OURS), 108_000)],
    );
    // Each input's BIP143 sighash, recomputed here from the transaction by rust-bitcoin.
    let mut cache = SighashCache::new(&two_inputs.unsigned_tx);
    let expected: Vec<[u8; 32]> = [150_000, 60_000]
        .into_iter()
        .enumerate()
        .map(|(index, sats)| {
            cache
                .p2wpkh_signature_hash(
                    index,
                    &p2wpkh(OURS),
                    Amount::from_sat(sats),
                    EcdsaSighashType::All,
                )
                .unwrap()
                .to_byte_array()
        })
        .collect();
    assert_ne!(expected[0], expected[1]);
    let authority = f.authority(sign(btc(&two_inputs, "mainnet")), &[0]);
    for (input, sighash) in expected.iter().enumerate() {
        let (_, to_sign) = check_session(&g, &authority, &f.key(), input as u16).unwrap();
        assert_eq!(to_sign, ToSign::Digest(*sighash));
    }

    // A raw digest is signed as it is, under a policy with a digest rule.
    let f = Fixture::with_policy(&policy_with_rules(json!([
        {"name": "digests", "chain": "digest", "approvals": 1, "action": "allow"}
    ])));
    let authority = f.authority(sign(Payload::Digest("ab".repeat(32))), &[0]);
    let (_, to_sign) = check_session(&f.governance(), &authority, &f.key(), 0).unwrap();
    assert_eq!(to_sign, ToSign::Digest([0xab; 32]));
}

// Ethereum.

#[test]
fn the_node_signs_the_transactions_own_signing_hash() {
    let f = Fixture::new();
    let txs = [
        (
            legacy(1, EXCHANGE, 10).encoded_for_signing(),
            legacy(1, EXCHANGE, 10).signature_hash(),
        ),
        (
            eip1559(1, EXCHANGE, 10, vec![]).encoded_for_signing(),
            eip1559(1, EXCHANGE, 10, vec![]).signature_hash(),
        ),
    ];
    for (bytes, alloy_hash) in txs {
        let authority = f.authority(sign(eth(&bytes)), &[0]);
        let (allowed, to_sign) = check_session(&f.governance(), &authority, &f.key(), 0).unwrap();
        assert_eq!(allowed.rule, "small native");
        // The nodes hash the transaction's own signing payload, the exact bytes asked for.
        assert_eq!(to_sign, ToSign::Keccak256Message(bytes.clone()));
        let Parsed::Eth(tx) = &allowed.parsed else {
            panic!(
                "not parsed as an Ethereum transaction: {:?}",
                allowed.parsed
            );
        };
        assert_eq!(chains::keccak256(&tx.signing_payload()), tx.signing_hash());
        assert_eq!(to_sign.prehash(), tx.signing_hash());
        assert_eq!(to_sign.prehash(), alloy_hash.0);
    }
}

#[test]
fn an_allowlisted_address_is_usable_only_after_the_allowlist_delay() {
    let mut f = Fixture::new();
    f.at(ACCEPTED + DAY - 1);
    assert_eq!(
        f.sign(native(1, EXCHANGE, 10), &[0]).unwrap_err(),
        no_rule()
    );
    // Not even with every operator: no rule takes an address that is not usable yet.
    assert_eq!(
        f.sign(native(1, EXCHANGE, 10), &[0, 1, 2]).unwrap_err(),
        no_rule()
    );
    f.at(ACCEPTED + DAY);
    let allowed = allowed_by(f.sign(native(1, EXCHANGE, 10), &[0]), "small native");
    assert_eq!(allowed.policy_version, 1);
    let spend = &allowed.spend;
    assert_eq!(spend.request, *allowed.authorized.id());
    assert_eq!(spend.key_id, f.key_id);
    assert_eq!(spend.chain, Chain::Ethereum { chain_id: 1 });
    assert_eq!(spend.asset, Asset::Native);
    assert_eq!(spend.to, [eth_address(EXCHANGE)]);
    assert_eq!(spend.amount, 10);
    assert_eq!(spend.at_secs, ACCEPTED + DAY);
    // An address the policy does not list never is.
    assert_eq!(
        f.sign(native(1, STRANGER, 10), &[0, 1, 2]).unwrap_err(),
        no_rule()
    );
}

#[test]
fn over_the_per_transaction_limit_falls_through_to_the_two_approval_rule() {
    let f = Fixture::new();
    let at_max = allowed_by(f.sign(native(1, EXCHANGE, 1000), &[0]), "small native");
    assert_eq!(at_max.spend.amount, 1000);
    assert_eq!(
        f.sign(native(1, EXCHANGE, 1001), &[0]).unwrap_err(),
        pending("large native", 1, 2)
    );
    let allowed = allowed_by(f.sign(native(1, EXCHANGE, 1001), &[0, 2]), "large native");
    assert_eq!(allowed.spend.amount, 1001);
    assert_eq!(
        allowed.authorized.approvers().iter().collect::<Vec<_>>(),
        [&op(0), &op(2)]
    );
}

#[test]
fn an_erc20_transfer_is_judged_on_its_token_and_recipient() {
    let f = Fixture::new();
    let allowed = allowed_by(f.sign(erc20(TOKEN, DESK, 5000, 0), &[0]), "token to desk");
    assert_eq!(allowed.spend.asset, Asset::Erc20(eth_address(TOKEN)));
    assert_eq!(allowed.spend.to, [eth_address(DESK)]);
    assert_eq!(allowed.spend.amount, 5000);
    // The token amount is what the limit counts.
    assert_eq!(
        f.sign(erc20(TOKEN, DESK, 5001, 0), &[0]).unwrap_err(),
        no_rule()
    );
    // Another token, or this token to an address listed for another rule (or not at all).
    for payload in [
        erc20(OTHER_TOKEN, DESK, 10, 0),
        erc20(TOKEN, EXCHANGE, 10, 0),
        erc20(TOKEN, STRANGER, 10, 0),
    ] {
        assert_eq!(f.sign(payload, &[0, 1, 2]).unwrap_err(), no_rule());
    }
    // A token contract that is an allowlisted address is no native transfer to it.
    assert_eq!(
        f.sign(erc20(EXCHANGE, EXCHANGE, 10, 0), &[0, 1, 2])
            .unwrap_err(),
        no_rule()
    );
}

#[test]
fn ether_attached_to_a_token_transfer_and_any_other_call_are_refused() {
    let f = Fixture::new();
    assert_eq!(
        f.sign(erc20(TOKEN, DESK, 10, 1), &[0, 1, 2]).unwrap_err(),
        Denied::ContractCall
    );
    // approve(desk, 10): a call whose effect the policy cannot judge.
    let mut approve = transfer_call(DESK, 10);
    approve.splice(0..4, [0x09, 0x5e, 0xa7, 0xb3]);
    for (to, data) in [
        (TOKEN, approve),
        (EXCHANGE, vec![0x00]),
        (EXCHANGE, vec![0xa9, 0x05, 0x9c]),
    ] {
        let payload = eth(&eip1559(1, to, 0, data).encoded_for_signing());
        assert_eq!(
            f.sign(payload, &[0, 1, 2]).unwrap_err(),
            Denied::ContractCall
        );
    }
}

#[test]
fn a_transaction_is_decided_by_the_rules_of_its_own_chain() {
    let f = Fixture::new();
    allowed_by(f.sign(native(1, EXCHANGE, 10), &[0]), "small native");
    assert_eq!(
        f.sign(native(SEPOLIA, EXCHANGE, 10), &[0]).unwrap_err(),
        pending("sepolia", 1, 3)
    );
    let allowed = allowed_by(f.sign(native(SEPOLIA, EXCHANGE, 10), &[0, 1, 2]), "sepolia");
    assert_eq!(allowed.spend.chain, Chain::Ethereum { chain_id: SEPOLIA });
    assert_eq!(
        f.sign(native(5, EXCHANGE, 10), &[0, 1, 2]).unwrap_err(),
        no_rule()
    );
}

// Bitcoin.

#[test]
fn change_back_to_the_key_is_no_transfer_and_the_fee_counts() {
    let f = Fixture::new();
    // 100 000 to the payee, 48 000 change, 2 000 fee: 102 000 is the rule's maximum.
    let allowed = allowed_by(
        f.sign(btc(&payment(100_000, 48_000), "mainnet"), &[0]),
        "btc payee",
    );
    assert_eq!(
        allowed.spend.chain,
        Chain::Bitcoin {
            network: policy::BtcNetwork::Mainnet
        }
    );
    assert_eq!(
        allowed.spend.to,
        [btc_address(&secp(PAYEE), Network::Bitcoin)]
    );
    assert_eq!(allowed.spend.amount, 102_000);
    // One satoshi more fee: 102 001.
    assert_eq!(
        f.sign(btc(&payment(100_000, 47_999), "mainnet"), &[0, 1, 2])
            .unwrap_err(),
        no_rule()
    );
    // "Change" to a key other than the signing key is a transfer, to an unlisted address.
    let elsewhere = psbt(
        &[(p2wpkh(OURS), 150_000)],
        vec![pay(p2wpkh(PAYEE), 100), pay(p2wpkh(2), 148_000)],
    );
    assert_eq!(
        f.sign(btc(&elsewhere, "mainnet"), &[0, 1, 2]).unwrap_err(),
        no_rule()
    );
}

#[test]
fn an_input_of_another_key_is_refused() {
    let f = Fixture::new();
    let theirs = psbt(
        &[(p2wpkh(OURS), 150_000), (p2wpkh(2), 60_000)],
        vec![pay(p2wpkh(PAYEE), 10_000), pay(p2wpkh(OURS), 198_000)],
    );
    assert_eq!(
        f.sign(btc(&theirs, "mainnet"), &[0, 1, 2]).unwrap_err(),
        Denied::Payload {
            what: "PSBT",
            reason: chains::TxError::NotOurInput { index: 1 }.to_string()
        }
    );
}

#[test]
fn an_output_that_is_no_address_is_refused_when_it_carries_value() {
    let f = Fixture::new();
    let op_return = ScriptBuf::from_bytes(vec![0x6a, 0x03, 0x01, 0x02, 0x03]);
    let with = |script: ScriptBuf, sats: u64| {
        psbt(
            &[(p2wpkh(OURS), 150_000)],
            vec![
                pay(p2wpkh(PAYEE), 10_000),
                pay(script, sats),
                pay(p2wpkh(OURS), 138_000 - sats),
            ],
        )
    };
    let allowed = allowed_by(
        f.sign(btc(&with(op_return.clone(), 0), "mainnet"), &[0]),
        "btc payee",
    );
    assert_eq!(
        allowed.spend.to,
        [btc_address(&secp(PAYEE), Network::Bitcoin)]
    );
    assert_eq!(allowed.spend.amount, 12_000);
    assert_eq!(
        f.sign(btc(&with(op_return, 1), "mainnet"), &[0, 1, 2])
            .unwrap_err(),
        Denied::NotAnAddress {
            index: 1,
            amount: 1
        }
    );
    // OP_TRUE: anyone can spend it, and it is no address.
    assert_eq!(
        f.sign(
            btc(&with(ScriptBuf::from_bytes(vec![0x51]), 546), "mainnet"),
            &[0, 1, 2]
        )
        .unwrap_err(),
        Denied::NotAnAddress {
            index: 1,
            amount: 546
        }
    );
}

#[test]
fn the_network_decides_how_the_addresses_read() {
    let f = Fixture::new();
    let tx = payment(100_000, 48_000);
    allowed_by(f.sign(btc(&tx, "mainnet"), &[0]), "btc payee");
    // The same PSBT on regtest: no mainnet rule takes it.
    assert_eq!(
        f.sign(btc(&tx, "regtest"), &[0, 1, 2]).unwrap_err(),
        no_rule()
    );
    // A regtest allowlist entry written with the mainnet address does not match what the
    // output reads on regtest.
    let mut policy = base_policy();
    policy["allowlist"] = json!([{"name": "payee", "chain": "bitcoin:regtest",
        "address": btc_address(&secp(PAYEE), Network::Bitcoin)}]);
    policy["rules"] = json!([
        {"name": "listed", "chain": "bitcoin:regtest", "to": ["payee"], "approvals": 1,
         "action": "allow"},
        {"name": "any", "chain": "bitcoin:regtest", "approvals": 3, "action": "allow"},
    ]);
    let f = Fixture::with_policy(&policy);
    assert_eq!(
        f.sign(btc(&tx, "regtest"), &[0]).unwrap_err(),
        pending("any", 1, 3)
    );
    let allowed = allowed_by(f.sign(btc(&tx, "regtest"), &[0, 1, 2]), "any");
    assert_eq!(
        allowed.spend.to,
        [btc_address(&secp(PAYEE), Network::Regtest)]
    );
    // A network the node does not know is no network.
    assert!(matches!(
        f.sign(btc(&tx, "litecoin"), &[0, 1, 2]).unwrap_err(),
        Denied::Payload {
            what: "bitcoin network",
            ..
        }
    ));
}

// Raw digests.

#[test]
fn a_raw_digest_is_signed_only_under_a_digest_rule() {
    let f = Fixture::new();
    let digest = || Payload::Digest("ab".repeat(32));
    assert_eq!(f.sign(digest(), &[0, 1, 2]).unwrap_err(), no_rule());
    let f = Fixture::with_policy(&policy_with_rules(json!([
        {"name": "any ethereum", "chain": "ethereum:1", "approvals": 1,
         "action": "allow"},
        {"name": "digests", "keys": ["treasury"], "chain": "digest", "approvals": 1,
         "action": "allow"},
    ])));
    let allowed = allowed_by(f.sign(digest(), &[0]), "digests");
    assert_eq!(allowed.spend.chain, Chain::Digest);
    assert_eq!(allowed.spend.amount, 0);
    assert!(allowed.spend.to.is_empty());
    // Not 32 bytes: refused before the policy.
    assert!(matches!(
        f.sign(Payload::Digest("ab".repeat(31)), &[0]).unwrap_err(),
        Denied::Payload {
            what: "digest (32 bytes, hex)",
            ..
        }
    ));
}

// Velocity.

/// 2000 wei a day to the exchange with one approval, more with two.
fn daily_limit() -> Value {
    policy_with_rules(json!([
        {"name": "daily", "chain": "ethereum:1", "asset": "native", "to": ["exchange"],
         "velocity": {"window_secs": DAY, "max_amount": "2000"}, "approvals": 1,
         "action": "allow"},
        {"name": "over daily", "chain": "ethereum:1", "asset": "native", "to": ["exchange"],
         "approvals": 2, "action": "allow"},
    ]))
}

#[test]
fn spends_of_every_signing_set_count_against_one_limit() {
    // Node 3's view. With 2-of-3, {1,2} and {1,3} each spend 1000; as a party of the key,
    // node 3 recorded both, the one it did not sign included.
    let mut f = Fixture::with_policy(&daily_limit());
    let mut recorded = Vec::new();
    for set in [[1, 2], [1, 3]] {
        f.signers = nodes(&set);
        let allowed = allowed_by(f.sign(native(1, EXCHANGE, 1000), &[0]), "daily");
        f.ledger.record(allowed.spend.clone()).unwrap();
        recorded.push(allowed.spend);
    }
    // {2,3} would take the key past its limit: the request falls through to the next rule.
    f.signers = nodes(&[2, 3]);
    let third = f.authority(sign(native(1, EXCHANGE, 1000)), &[0]);
    assert_eq!(f.check(&third).unwrap_err(), pending("over daily", 1, 2));
    let third_twice = f.approved(third.request_bytes().to_vec(), &[0, 1]);
    allowed_by(f.check(&third_twice), "over daily");
    // At the limit exactly, and one wei past it.
    allowed_by(f.sign(native(1, EXCHANGE, 0), &[0]), "daily");
    assert_eq!(
        f.sign(native(1, EXCHANGE, 1), &[0]).unwrap_err(),
        pending("over daily", 1, 2)
    );
    // What only node 3's own signatures would allow: the limit three times over.
    let every_set = std::mem::take(&mut f.ledger);
    f.ledger.record(recorded[1].clone()).unwrap();
    allowed_by(f.check(&third), "daily");
    f.ledger = every_set;
    // A spend just outside the window no longer counts; one at its edge does.
    for (at_secs, counted) in [(NOW - DAY - 1, false), (NOW - DAY, true)] {
        let mut first = recorded[0].clone();
        first.at_secs = at_secs;
        f.ledger = Ledger::new();
        f.ledger.record(first).unwrap();
        f.ledger.record(recorded[1].clone()).unwrap();
        if counted {
            assert_eq!(f.check(&third).unwrap_err(), pending("over daily", 1, 2));
        } else {
            allowed_by(f.check(&third), "daily");
        }
    }
}

#[test]
fn a_request_already_in_the_ledger_is_not_counted_twice() {
    let mut f = Fixture::with_policy(&daily_limit());
    let first = f.authority(sign(native(1, EXCHANGE, 1000)), &[0]);
    let spend = allowed_by(f.check(&first), "daily").spend;
    f.ledger.record(spend).unwrap();
    let second = f.authority(sign(native(1, EXCHANGE, 1000)), &[0]);
    let spend = allowed_by(f.check(&second), "daily").spend;
    f.ledger.record(spend).unwrap();
    // The first request again (another share of it, a retried session): 1000 + 1000.
    allowed_by(f.check(&first), "daily");
    allowed_by(f.check(&second), "daily");
    // A new request of the same amount: 3000.
    let third = f.authority(sign(native(1, EXCHANGE, 1000)), &[0]);
    assert_eq!(f.check(&third).unwrap_err(), pending("over daily", 1, 2));
}

// The policy in force.

#[test]
fn no_policy_in_force_refuses() {
    let f = Fixture::bare();
    assert_eq!(
        f.sign(native(1, EXCHANGE, 10), &[0, 1, 2]).unwrap_err(),
        Denied::NoPolicy
    );
    assert_eq!(
        f.sign(Payload::Digest("ab".repeat(32)), &[0, 1, 2])
            .unwrap_err(),
        Denied::NoPolicy
    );
}

#[test]
fn a_policy_accepted_but_not_yet_effective_is_not_applied() {
    let mut f = Fixture::new();
    let mut next = policy_with_rules(json!([
        {"name": "digests", "chain": "digest", "approvals": 1, "action": "allow"}
    ]));
    next["version"] = json!(2);
    let effective = f.accept_policy(&next, NOW);
    assert_eq!(effective, NOW + DAY);
    f.at(NOW + DAY - 1);
    let digest = || Payload::Digest("ab".repeat(32));
    assert_eq!(f.sign(digest(), &[0, 1, 2]).unwrap_err(), no_rule());
    allowed_by(f.sign(native(1, EXCHANGE, 10), &[0]), "small native");
    f.at(NOW + DAY);
    let allowed = allowed_by(f.sign(digest(), &[0]), "digests");
    assert_eq!(allowed.policy_version, 2);
    assert_eq!(
        f.sign(native(1, EXCHANGE, 10), &[0]).unwrap_err(),
        refused(None, Refusal::NoRule, 2)
    );
}

#[test]
fn a_rule_naming_mandatory_signers_refuses_a_set_without_them() {
    let mut f = Fixture::with_policy(&policy_with_rules(json!([
        {"name": "with node-3", "chain": "ethereum:1", "to": ["exchange"],
         "signers_include": ["node-3"], "approvals": 1, "action": "allow"},
        {"name": "anything", "chain": "ethereum:1", "approvals": 1, "action": "allow"},
    ])));
    // The later rule that would allow it does not get the request: no fall-through.
    assert_eq!(
        f.sign(native(1, EXCHANGE, 10), &[0, 1, 2]).unwrap_err(),
        refused(
            Some("with node-3"),
            Refusal::SignersMissing {
                missing: nodes(&[3])
            },
            1
        )
    );
    for set in [[1, 3], [3, 2]] {
        f.signers = nodes(&set);
        allowed_by(f.sign(native(1, EXCHANGE, 10), &[0]), "with node-3");
    }
}

// Key creation.

#[test]
fn key_creation_needs_the_manifests_threshold_of_approvals() {
    let f = Fixture::new();
    let one = f.authority(create_key(2, &[]), &[1]);
    assert_eq!(
        f.create(&one, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::KeyApprovals {
            approvals: 1,
            needed: 2
        }
    );
    for approvers in [&[1, 0][..], &[2, 0, 1]] {
        let authority = f.authority(create_key(2, &[]), approvers);
        let authorized = f.create(&authority, "treasury", &[1, 2, 3], 2).unwrap();
        assert_eq!(authorized.approvers().len(), approvers.len());
    }
    // A policy is not needed to create a key.
    let bare = Fixture::bare();
    let authority = bare.authority(create_key(2, &[]), &[0, 1]);
    bare.create(&authority, "treasury", &[1, 2, 3], 2).unwrap();
}

#[test]
fn key_creation_approvals_are_checked_not_counted() {
    let f = Fixture::new();
    let outsider = OperatorKey::generate().unwrap();
    let bytes = f.request_bytes(&f.hash, "treasury", create_key(2, &[]), &op(0), f.now_ms);
    let id = request_id(&bytes);
    // A forged second approval does not make up the quorum.
    let mut forged = f.approved(bytes.clone(), &[0]);
    forged.add(Approval::sign(&op(1), &outsider, &id)).unwrap();
    assert_eq!(
        f.create(&forged, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::Authority(AuthorityError::BadApproval(op(1)))
    );
    let mut unlisted = f.approved(bytes, &[0]);
    unlisted
        .add(Approval::sign(&op(5), &outsider, &id))
        .unwrap();
    assert_eq!(
        f.create(&unlisted, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::Authority(AuthorityError::NotOperator(op(5)))
    );
}

#[test]
fn key_creation_must_be_exactly_the_sessions() {
    let f = Fixture::new();
    let other = |what| Denied::OtherKeyCreation {
        requested: "treasury".into(),
        what,
    };
    // Parties listed in any order, or none for every node of the manifest.
    for parties in [&[3, 1, 2][..], &[]] {
        let authority = f.authority(create_key(2, parties), &[0, 1]);
        f.create(&authority, "treasury", &[1, 2, 3], 2).unwrap();
    }
    let listed = f.authority(create_key(2, &[1, 2]), &[0, 1]);
    f.create(&listed, "treasury", &[2, 1], 2).unwrap();
    assert_eq!(
        f.create(&listed, "treasury", &[1, 2, 3], 2).unwrap_err(),
        other("parties")
    );
    assert_eq!(
        f.create(&listed, "treasury", &[1, 3], 2).unwrap_err(),
        other("parties")
    );
    let every = f.authority(create_key(2, &[]), &[0, 1]);
    assert_eq!(
        f.create(&every, "treasury", &[1, 2], 2).unwrap_err(),
        other("parties")
    );
    assert_eq!(
        f.create(&every, "treasury", &[1, 2, 3], 3).unwrap_err(),
        other("a threshold")
    );
    assert_eq!(
        f.create(&every, "cold", &[1, 2, 3], 2).unwrap_err(),
        other("an id")
    );
}
