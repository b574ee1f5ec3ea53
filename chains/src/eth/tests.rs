//! Transactions built with alloy, signed with k256 over the hash this module computes, and
//! checked independently: the sender recovered from the signed transaction is the key's
//! address. Then every refusal, as an attacker would try it.

use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxEip2930, TxLegacy};
use alloy_primitives::{Address, Signature, TxKind, U256};
use k256::ecdsa::SigningKey;

use super::*;
use crate::{TxError, eth_address, keccak256};

/// The secp256k1 group order.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];
const CHAINS: [u64; 2] = [1, 11_155_111];
const DEST: [u8; 20] = [0xab; 20];
const TOKEN: [u8; 20] = [0x7c; 20];

fn key(n: u8) -> SigningKey {
    SigningKey::from_slice(&[n; 32]).unwrap()
}

fn address_of(key: &SigningKey) -> String {
    eth_address(&k256::PublicKey::from(key.verifying_key()))
}

fn to(address: [u8; 20]) -> TxKind {
    TxKind::Call(Address::from(address))
}

fn legacy(chain_id: Option<u64>, to: TxKind, value: U256, input: Vec<u8>) -> TxLegacy {
    TxLegacy {
        chain_id,
        nonce: 7,
        gas_price: 20_000_000_000,
        gas_limit: 21_000,
        to,
        value,
        input: input.into(),
    }
}

fn eip1559(chain_id: u64, to: TxKind, value: U256, input: Vec<u8>) -> TxEip1559 {
    TxEip1559 {
        chain_id,
        nonce: 3,
        gas_limit: 60_000,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        value,
        access_list: Default::default(),
        input: input.into(),
    }
}

/// Both accepted types on `chain`, unsigned, as the node receives them.
fn both(chain: u64, value: U256, input: Vec<u8>) -> [Vec<u8>; 2] {
    [
        legacy(Some(chain), to(DEST), value, input.clone()).encoded_for_signing(),
        eip1559(chain, to(DEST), value, input).encoded_for_signing(),
    ]
}

/// Signs the node's signing hash with `key` and assembles the signed transaction.
fn sign(tx: &EthTx, key: &SigningKey) -> Vec<u8> {
    let (sig, recid) = key.sign_prehash_recoverable(&tx.signing_hash()).unwrap();
    assert!(sig.normalize_s().is_none(), "k256 signs with low s");
    tx.signed_raw(
        sig.r().to_bytes().into(),
        sig.s().to_bytes().into(),
        recid.is_y_odd(),
    )
    .unwrap()
}

fn transfer_calldata(recipient_word: [u8; 32], amount_word: [u8; 32]) -> Vec<u8> {
    let mut data = ERC20_TRANSFER_SELECTOR.to_vec();
    data.extend(recipient_word);
    data.extend(amount_word);
    data
}

fn address_word(address: [u8; 20]) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&address);
    word
}

fn amount_word(amount: u128) -> [u8; 32] {
    U256::from(amount).to_be_bytes()
}

fn lower(address: [u8; 20]) -> String {
    format!("0x{}", crate::address::hex(&address))
}

/// A legacy transaction whose unsigned encoding is exactly `len` bytes.
fn legacy_of_len(len: usize) -> Vec<u8> {
    let mut data_len = len - 64;
    loop {
        let bytes =
            legacy(Some(1), to(DEST), U256::ZERO, vec![0xee; data_len]).encoded_for_signing();
        match bytes.len() {
            l if l == len => return bytes,
            l if l < len => data_len += len - l,
            l => data_len -= l - len,
        }
    }
}

#[test]
fn legacy_and_1559_on_two_chains_recover_to_the_signing_key() {
    let signer = key(1);
    let expected = address_of(&signer);
    for chain in CHAINS {
        for (bytes, ty) in both(
            chain,
            U256::from(5u64) * U256::from(10u64).pow(U256::from(17u64)),
            vec![],
        )
        .into_iter()
        .zip([EthTxType::Legacy, EthTxType::Eip1559])
        {
            let tx = EthTx::parse_unsigned(&bytes).unwrap();
            assert_eq!(tx.tx_type(), ty);
            assert_eq!(tx.chain_id(), chain);
            assert_eq!(tx.to(), lower(DEST));
            assert_eq!(tx.value(), 500_000_000_000_000_000);
            assert_eq!(tx.nonce(), if ty == EthTxType::Legacy { 7 } else { 3 });
            assert_eq!(tx.calldata_kind(), CalldataKind::Empty);
            assert_eq!(tx.erc20_transfer(), None);
            // The accepted bytes are exactly what the signing hash covers.
            assert_eq!(tx.signing_hash(), keccak256(&bytes));

            let raw = sign(&tx, &signer);
            assert_eq!(recover_sender(&raw).unwrap(), expected);
            assert_ne!(recover_sender(&raw).unwrap(), address_of(&key(2)));
            // A signed transaction is not accepted for signing again.
            assert_eq!(EthTx::parse_unsigned(&raw), Err(TxError::AlreadySigned));
            // alloy reads back the same transaction, with the chain id in its EIP-155 v.
            match ty {
                EthTxType::Legacy => {
                    let signed = Signed::<TxLegacy>::rlp_decode(&mut raw.as_slice()).unwrap();
                    assert_eq!(signed.tx().chain_id, Some(chain));
                    assert_eq!(signed.tx().encoded_for_signing(), bytes);
                }
                EthTxType::Eip1559 => {
                    let signed = Signed::<TxEip1559>::eip2718_decode(&mut raw.as_slice()).unwrap();
                    assert_eq!(signed.tx().encoded_for_signing(), bytes);
                }
            }
        }
    }
}

#[test]
fn the_signing_hash_differs_by_chain() {
    let [legacy_1, eip1559_1] = both(1, U256::from(1u64), vec![]);
    let [legacy_2, eip1559_2] = both(5, U256::from(1u64), vec![]);
    let hash = |b: &[u8]| EthTx::parse_unsigned(b).unwrap().signing_hash();
    assert_ne!(hash(&legacy_1), hash(&legacy_2));
    assert_ne!(hash(&eip1559_1), hash(&eip1559_2));
    // The nodes hash the signing payload themselves: it is what the hash covers.
    for bytes in [legacy_1, eip1559_1] {
        let tx = EthTx::parse_unsigned(&bytes).unwrap();
        assert_eq!(crate::keccak256(&tx.signing_payload()), tx.signing_hash());
    }
}

#[test]
fn an_erc20_transfer_is_parsed_signed_and_recovered() {
    let recipient = [0x42; 20];
    let data = transfer_calldata(address_word(recipient), amount_word(1_234_567));
    let signer = key(3);
    for chain in CHAINS {
        for kind in [
            legacy(Some(chain), to(TOKEN), U256::ZERO, data.clone()).encoded_for_signing(),
            eip1559(chain, to(TOKEN), U256::ZERO, data.clone()).encoded_for_signing(),
        ] {
            let tx = EthTx::parse_unsigned(&kind).unwrap();
            assert_eq!(tx.calldata_kind(), CalldataKind::Erc20Transfer);
            assert_eq!(tx.to(), lower(TOKEN));
            assert_eq!(tx.value(), 0);
            assert_eq!(
                tx.erc20_transfer(),
                Some(Erc20Transfer {
                    token: lower(TOKEN),
                    recipient: lower(recipient),
                    amount: 1_234_567,
                })
            );
            let raw = sign(&tx, &signer);
            assert_eq!(recover_sender(&raw).unwrap(), address_of(&signer));
        }
    }
}

#[test]
fn erc20_amount_at_u128_max_and_one_more() {
    let data = transfer_calldata(address_word([1; 20]), amount_word(u128::MAX));
    let [l, e] = both(1, U256::ZERO, data);
    for bytes in [l, e] {
        let tx = EthTx::parse_unsigned(&bytes).unwrap();
        assert_eq!(tx.erc20_transfer().unwrap().amount, u128::MAX);
    }
    let over = (U256::from(u128::MAX) + U256::from(1u64)).to_be_bytes();
    let [l, e] = both(
        1,
        U256::ZERO,
        transfer_calldata(address_word([1; 20]), over),
    );
    for bytes in [l, e] {
        assert_eq!(
            EthTx::parse_unsigned(&bytes),
            Err(TxError::AmountTooLarge {
                field: "erc20 amount"
            })
        );
    }
}

#[test]
fn a_malformed_transfer_is_refused_not_taken_for_another_call() {
    let good = transfer_calldata(address_word([1; 20]), amount_word(5));
    let mut dirty_address = address_word([1; 20]);
    dirty_address[0] = 1;
    let mut short = good.clone();
    short.pop();
    let mut long = good.clone();
    long.push(0);
    for data in [
        short,
        long,
        ERC20_TRANSFER_SELECTOR.to_vec(),
        transfer_calldata(dirty_address, amount_word(5)),
    ] {
        let [l, e] = both(1, U256::ZERO, data);
        for bytes in [l, e] {
            assert!(matches!(
                EthTx::parse_unsigned(&bytes),
                Err(TxError::MalformedErc20Transfer { .. })
            ));
        }
    }
}

#[test]
fn other_calldata_is_marked_for_refusal() {
    let mut approve = transfer_calldata(address_word([1; 20]), amount_word(5));
    approve[..4].copy_from_slice(&[0x09, 0x5e, 0xa7, 0xb3]); // approve(address,uint256)
    for data in [approve, vec![0xa9, 0x05, 0x9c], vec![0]] {
        let [l, e] = both(1, U256::ZERO, data);
        for bytes in [l, e] {
            let tx = EthTx::parse_unsigned(&bytes).unwrap();
            assert_eq!(tx.calldata_kind(), CalldataKind::Other);
            assert_eq!(tx.erc20_transfer(), None);
        }
    }
}

#[test]
fn value_at_u128_max_and_one_more() {
    for bytes in both(1, U256::from(u128::MAX), vec![]) {
        assert_eq!(EthTx::parse_unsigned(&bytes).unwrap().value(), u128::MAX);
    }
    for bytes in both(1, U256::from(u128::MAX) + U256::from(1u64), vec![]) {
        assert_eq!(
            EthTx::parse_unsigned(&bytes),
            Err(TxError::AmountTooLarge { field: "value" })
        );
    }
}

#[test]
fn a_transaction_without_a_chain_is_refused() {
    let pre_eip155 = legacy(None, to(DEST), U256::from(1u64), vec![]).encoded_for_signing();
    let zero_legacy = legacy(Some(0), to(DEST), U256::from(1u64), vec![]).encoded_for_signing();
    let zero_1559 = eip1559(0, to(DEST), U256::from(1u64), vec![]).encoded_for_signing();
    for bytes in [pre_eip155, zero_legacy, zero_1559] {
        assert_eq!(EthTx::parse_unsigned(&bytes), Err(TxError::MissingChainId));
    }
}

#[test]
fn other_transaction_types_are_refused() {
    let eip2930 = TxEip2930 {
        chain_id: 1,
        nonce: 0,
        gas_price: 1,
        gas_limit: 21_000,
        to: to(DEST),
        value: U256::from(1u64),
        access_list: Default::default(),
        input: Default::default(),
    }
    .encoded_for_signing();
    assert_eq!(eip2930.first(), Some(&0x01));
    assert_eq!(
        EthTx::parse_unsigned(&eip2930),
        Err(TxError::UnsupportedTxType { ty: 1 })
    );
    let [_, eip1559] = both(1, U256::from(1u64), vec![]);
    for ty in [0x00, 0x03, 0x04, 0x7f] {
        let mut retyped = eip1559.clone();
        retyped[0] = ty;
        assert_eq!(
            EthTx::parse_unsigned(&retyped),
            Err(TxError::UnsupportedTxType { ty })
        );
        assert_eq!(
            recover_sender(&retyped),
            Err(TxError::UnsupportedTxType { ty })
        );
    }
}

#[test]
fn contract_creation_is_refused() {
    let create_legacy =
        legacy(Some(1), TxKind::Create, U256::ZERO, vec![0x60]).encoded_for_signing();
    let create_1559 = eip1559(1, TxKind::Create, U256::ZERO, vec![0x60]).encoded_for_signing();
    for bytes in [create_legacy, create_1559] {
        assert_eq!(
            EthTx::parse_unsigned(&bytes),
            Err(TxError::ContractCreation)
        );
    }
}

#[test]
fn trailing_bytes_and_truncation_are_refused() {
    for bytes in both(1, U256::from(1u64), vec![1, 2, 3]) {
        let mut trailing = bytes.clone();
        trailing.extend([0x80, 0x80]);
        assert_eq!(
            EthTx::parse_unsigned(&trailing),
            Err(TxError::TrailingBytes { count: 2 })
        );
        for cut in 1..bytes.len() {
            assert!(
                EthTx::parse_unsigned(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
    assert_eq!(EthTx::parse_unsigned(&[]), Err(TxError::Empty));
    assert!(matches!(
        EthTx::parse_unsigned(&[0x80]),
        Err(TxError::Malformed { .. })
    ));
}

#[test]
fn extra_or_missing_eip155_fields_are_refused() {
    // A legacy list with the chain id but without the two zeros, and one with a tenth field.
    let tx = legacy(Some(1), to(DEST), U256::from(1u64), vec![]);
    let mut fields = Vec::new();
    alloy_consensus::transaction::RlpEcdsaEncodableTx::rlp_encode_fields(&tx, &mut fields);
    let list = |extra: &[u8]| {
        let mut payload = fields.clone();
        payload.extend(extra);
        let mut out = Vec::new();
        alloy_rlp::Header {
            list: true,
            payload_length: payload.len(),
        }
        .encode(&mut out);
        out.extend(payload);
        out
    };
    assert_eq!(
        EthTx::parse_unsigned(&list(&[0x01, 0x80, 0x80]))
            .unwrap()
            .chain_id(),
        1
    );
    for extra in [&[0x01][..], &[0x01, 0x80], &[0x01, 0x80, 0x80, 0x80]] {
        assert!(matches!(
            EthTx::parse_unsigned(&list(extra)),
            Err(TxError::Malformed { .. })
        ));
    }
    // r and s must be zero: anything else is a signature.
    assert_eq!(
        EthTx::parse_unsigned(&list(&[0x01, 0x01, 0x80])),
        Err(TxError::AlreadySigned)
    );
    assert_eq!(
        EthTx::parse_unsigned(&list(&[0x01, 0x80, 0x01])),
        Err(TxError::AlreadySigned)
    );
}

#[test]
fn signed_transactions_are_refused_even_with_a_pre_eip155_v() {
    let signer = key(4);
    let unsigned = legacy(None, to(DEST), U256::from(1u64), vec![]);
    let (sig, recid) = signer
        .sign_prehash_recoverable(&unsigned.signature_hash().0)
        .unwrap();
    let signature = Signature::from_signature_and_parity(sig, recid.is_y_odd());
    let mut raw = Vec::new();
    unsigned.into_signed(signature).rlp_encode(&mut raw);
    assert_eq!(EthTx::parse_unsigned(&raw), Err(TxError::AlreadySigned));
    // And recover_sender does not vouch for a transaction without replay protection.
    assert_eq!(recover_sender(&raw), Err(TxError::MissingChainId));
}

#[test]
fn the_length_limit_at_max_and_max_plus_one() {
    let at_max = legacy_of_len(MAX_ETH_TX_LEN);
    assert_eq!(at_max.len(), MAX_ETH_TX_LEN);
    let tx = EthTx::parse_unsigned(&at_max).unwrap();
    assert_eq!(tx.calldata_kind(), CalldataKind::Other);

    let over = legacy_of_len(MAX_ETH_TX_LEN + 1);
    let too_long = Err(TxError::TooLong {
        what: "transaction",
        len: MAX_ETH_TX_LEN + 1,
        max: MAX_ETH_TX_LEN,
    });
    assert_eq!(EthTx::parse_unsigned(&over), too_long);
    // Checked before anything else: garbage of that length gets the same answer.
    assert_eq!(
        EthTx::parse_unsigned(&vec![0x01; MAX_ETH_TX_LEN + 1]),
        too_long
    );
    assert_eq!(
        recover_sender(&vec![0xc0; MAX_ETH_TX_LEN + 1]).map(|_| ()),
        too_long.map(|_: EthTx| ())
    );
}

#[test]
fn signed_raw_refuses_high_and_invalid_scalars() {
    let [bytes, _] = both(1, U256::from(1u64), vec![]);
    let tx = EthTx::parse_unsigned(&bytes).unwrap();
    let (sig, recid) = key(5).sign_prehash_recoverable(&tx.signing_hash()).unwrap();
    let (r, s): ([u8; 32], [u8; 32]) = (sig.r().to_bytes().into(), sig.s().to_bytes().into());
    let high_s: [u8; 32] = (U256::from_be_bytes(N) - U256::from_be_bytes(s)).to_be_bytes();
    assert_eq!(
        tx.signed_raw(r, high_s, !recid.is_y_odd()),
        Err(TxError::HighS)
    );
    for (r, s) in [([0; 32], s), (r, [0; 32]), (N, s), (r, N), ([0xff; 32], s)] {
        assert_eq!(
            tx.signed_raw(r, s, false),
            Err(TxError::InvalidSignature { part: "r or s" })
        );
    }
    // The right parity matters: the other one recovers someone else.
    let wrong = tx.signed_raw(r, s, !recid.is_y_odd()).unwrap();
    assert_ne!(recover_sender(&wrong).ok(), Some(address_of(&key(5))));
}

#[test]
fn recover_sender_refuses_high_s_and_trailing_bytes() {
    let signer = key(6);
    for bytes in both(1, U256::from(1u64), vec![]) {
        let tx = EthTx::parse_unsigned(&bytes).unwrap();
        let (sig, recid) = signer.sign_prehash_recoverable(&tx.signing_hash()).unwrap();
        let s = U256::from_be_bytes(<[u8; 32]>::from(sig.s().to_bytes()));
        let high = Signature::new(
            U256::from_be_bytes(<[u8; 32]>::from(sig.r().to_bytes())),
            U256::from_be_bytes(N) - s,
            !recid.is_y_odd(),
        );
        let mut raw = Vec::new();
        match tx.tx_type() {
            EthTxType::Legacy => legacy(Some(1), to(DEST), U256::from(1u64), vec![])
                .into_signed(high)
                .rlp_encode(&mut raw),
            EthTxType::Eip1559 => eip1559(1, to(DEST), U256::from(1u64), vec![])
                .into_signed(high)
                .eip2718_encode(&mut raw),
        }
        assert_eq!(recover_sender(&raw), Err(TxError::HighS));

        let mut good = sign(&tx, &signer);
        good.push(0x80);
        assert_eq!(
            recover_sender(&good),
            Err(TxError::TrailingBytes { count: 1 })
        );
        // An unsigned transaction has no sender.
        assert!(recover_sender(&bytes).is_err());
    }
}

#[test]
fn an_unsigned_transfer_is_what_the_node_accepts() {
    let to = "0x1111111111111111111111111111111111111111";
    let bytes = unsigned_transfer(&Transfer {
        chain_id: 1,
        nonce: 7,
        to,
        value: 5,
        gas_limit: 21_000,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
    })
    .unwrap();
    let tx = EthTx::parse_unsigned(&bytes).unwrap();
    assert_eq!(
        (tx.chain_id(), tx.nonce(), tx.to(), tx.value()),
        (1, 7, to, 5)
    );
    let bad = Transfer {
        to: "0x11",
        ..Transfer {
            chain_id: 1,
            nonce: 0,
            to,
            value: 0,
            gas_limit: 21_000,
            max_fee_per_gas: 1,
            max_priority_fee_per_gas: 1,
        }
    };
    assert!(unsigned_transfer(&bad).is_err());
}
