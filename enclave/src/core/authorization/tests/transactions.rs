//! What the node parses itself decides: an Ethereum transaction's chain, destination,
//! value or ERC-20 transfer and the hash it signs; a PSBT's inputs, outputs, change, fee
//! and network.

use super::*;

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

/// Gas is a spend: its most (gas limit times the highest price offered) counts in a native
/// transfer's amount, and a token transfer's is bounded by the rule's `max_fee`. A
/// requester cannot pay out through a fee what a rule would refuse as a transfer.
#[test]
fn gas_counts_and_is_bounded() {
    let f = Fixture::new();
    let with_gas = |value, input: Vec<u8>, to, price| {
        let mut tx = eip1559(1, to, value, input);
        tx.max_fee_per_gas = price;
        tx.max_priority_fee_per_gas = price;
        eth(&tx.encoded_for_signing())
    };
    // 10 wei with 60 000 gas at 1 wei: 60 010 counted, over the one-approval limit.
    assert_eq!(
        f.sign(with_gas(10, vec![], EXCHANGE, 1), &[0]).unwrap_err(),
        pending("large native", 1, 2)
    );
    let allowed = allowed_by(
        f.sign(with_gas(10, vec![], EXCHANGE, 1), &[0, 1]),
        "large native",
    );
    assert_eq!(allowed.spend.amount, 60_010);
    // A token transfer's gas within the rule's max_fee (60 000 x 16 wei), then past it.
    allowed_by(
        f.sign(with_gas(0, transfer_call(DESK, 10), TOKEN, 16), &[0]),
        "token to desk",
    );
    assert_eq!(
        f.sign(with_gas(0, transfer_call(DESK, 10), TOKEN, 17), &[0])
            .unwrap_err(),
        no_rule()
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
        {"name": "listed", "keys": ["treasury"], "chain": "bitcoin:regtest", "to": ["payee"], "approvals": 1,
         "action": "allow"},
        {"name": "any", "keys": ["treasury"], "chain": "bitcoin:regtest", "approvals": 3, "action": "allow"},
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
