//! Attacks a review of the decision found, each kept as the test that now stops it: the
//! fee an Ethereum transaction may pay, input amounts no previous transaction proves, and
//! a Bitcoin network the requester names.

use super::*;

const ETHER: u128 = 1_000_000_000_000_000_000;

/// The BIP143 sighash of input `index` of `psbt`'s transaction, spending `sats` of ours:
/// what the input's signature must commit to for the network to accept it.
fn real_sighash(psbt: &Psbt, index: usize, sats: u64) -> ToSign {
    let hash = SighashCache::new(&psbt.unsigned_tx)
        .p2wpkh_signature_hash(
            index,
            &p2wpkh(OURS),
            Amount::from_sat(sats),
            EcdsaSighashType::All,
        )
        .unwrap();
    ToSign::Digest(hash.to_byte_array())
}

/// Finding: the Ethereum fee is bounded by no rule. The facts count `value` (or the token
/// amount) only, so a transaction within "small native" (at most 1000 wei) may carry a
/// priority fee of 100 ether, which the block's builder collects: one stolen operator key
/// under a one-approval rule drains the key's ether through fees, past `max_amount` and
/// `velocity`. The fee the transaction may pay (`gas_limit * max_fee_per_gas`, or
/// `gas_limit * gas_price`) must count with the amount, or be capped by a rule.
#[test]
fn the_fee_an_ethereum_transaction_may_pay_counts_against_the_limits() {
    let f = Fixture::new();
    let greedy = TxEip1559 {
        chain_id: 1,
        nonce: 3,
        gas_limit: 21_000,
        max_fee_per_gas: 100 * ETHER / 21_000,
        max_priority_fee_per_gas: 100 * ETHER / 21_000,
        to: TxKind::Call(Address::from(EXCHANGE)),
        value: U256::from(10u64),
        access_list: Default::default(),
        input: Default::default(),
    };
    let max_fee = u128::from(greedy.gas_limit) * greedy.max_fee_per_gas;
    if let Ok(allowed) = f.sign(eth(&greedy.encoded_for_signing()), &[0]) {
        assert!(
            allowed.spend.amount >= 10 + max_fee,
            "rule {:?} allowed a fee of up to {max_fee} wei; the spend counts {}",
            allowed.rule,
            allowed.spend.amount
        );
    }
}

/// Finding: an input's amount is taken from its `witness_utxo` alone, which nothing
/// proves (the `non_witness_utxo` is optional), and BIP143 commits each input's
/// signature to that input's own amount only. Two requests for one transaction spending
/// two coins of 500 000 sats, each understating a different input as 100 000, each see a
/// fee of 0 and 100 000 to the payee, within "btc payee" (102 000); input 0 signed for the
/// first and input 1 signed for the second carry the real amounts, so together they make
/// one valid transaction whose real fee, 400 000 sats, no evaluation saw. Fix: require
/// the `non_witness_utxo` of every input (it is already checked when present), as
/// hardware signers have done since 2020.
#[test]
fn an_input_amount_no_previous_transaction_proves_is_refused() {
    let f = Fixture::new();
    let real = psbt(
        &[(p2wpkh(OURS), 500_000), (p2wpkh(OURS), 500_000)],
        vec![pay(p2wpkh(PAYEE), 100_000), pay(p2wpkh(OURS), 500_000)],
    );
    // The real transaction pays a fee of 400 000 sats: over the rule's 102 000.
    assert_eq!(f.sign(btc(&real, "mainnet"), &[0]).unwrap_err(), no_rule());
    // Input 1 understated as 100 000 (a fee of 0 to the evaluation), with its previous
    // transaction: it contradicts the amount, refused.
    let mut understated = real.clone();
    understated.inputs[1].witness_utxo = Some(pay(p2wpkh(OURS), 100_000));
    assert!(matches!(
        f.sign(btc(&understated, "mainnet"), &[0]),
        Err(Denied::Payload { .. })
    ));
    // The same without the previous transaction: refused, whatever the amount says.
    understated.inputs[1].non_witness_utxo = None;
    let refused = f.sign(btc(&understated, "mainnet"), &[0]).unwrap_err();
    assert!(
        refused.to_string().contains("previous transaction"),
        "{refused}"
    );
}

/// Finding: the network a PSBT is decided on is the requester's word. A Bitcoin sighash
/// names no network and the node checks only that every input pays the key's HASH160,
/// so a mainnet coin spent to anyone is refused as `mainnet` yet allowed as `testnet` by a
/// lax test-network rule, with the very digest mainnet checks. Fix: bind a key to one
/// Bitcoin network (at creation, or in the policy's rules by key), and refuse a PSBT
/// named for another.
#[test]
fn a_mainnet_coin_is_not_signed_under_a_test_network_rule() {
    let mut policy = base_policy();
    // A rule for the test network must name its keys, and a key spends on one network:
    // the faucet rule cannot cover the treasury...
    let mut lax = policy.clone();
    lax["rules"].as_array_mut().unwrap().push(json!(
        {"name": "testnet faucet", "chain": "bitcoin:testnet", "approvals": 1,
         "action": "allow"}
    ));
    assert!(policy::Policy::parse(&serde_json::to_vec(&lax).unwrap()).is_err());
    let mut both = policy.clone();
    both["rules"].as_array_mut().unwrap().push(json!(
        {"name": "testnet faucet", "keys": ["treasury"], "chain": "bitcoin:testnet",
         "approvals": 1, "action": "allow"}
    ));
    assert!(policy::Policy::parse(&serde_json::to_vec(&both).unwrap()).is_err());
    // ...so it names another key, and a treasury PSBT named for testnet finds no rule.
    policy["rules"].as_array_mut().unwrap().push(json!(
        {"name": "testnet faucet", "keys": ["faucet"], "chain": "bitcoin:testnet",
         "approvals": 1, "action": "allow"}
    ));
    let f = Fixture::with_policy(&policy);
    let sweep = psbt(&[(p2wpkh(OURS), 150_000)], vec![pay(p2wpkh(2), 149_000)]);
    assert_eq!(
        f.sign(btc(&sweep, "mainnet"), &[0, 1, 2]).unwrap_err(),
        no_rule()
    );
    if let Ok(allowed) = f.sign(btc(&sweep, "testnet"), &[0]) {
        assert_ne!(
            allowed.parsed.to_sign(),
            vec![real_sighash(&sweep, 0, 150_000)],
            "rule {:?} signs the mainnet sweep the mainnet rules refuse",
            allowed.rule
        );
    }
}
