//! PSBTs built with rust-bitcoin, signed with k256 over the sighashes this module computes,
//! finalized, and checked independently: every witness signature verifies against the
//! sighash recomputed from the extracted transaction. Then every refusal.

use alloy_primitives::U256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash as _;
use bitcoin::psbt::{Psbt, PsbtSighashType, raw};
use bitcoin::sighash::SighashCache;
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, CompressedPublicKey, EcdsaSighashType, Network, OutPoint, PubkeyHash,
    ScriptBuf, Sequence, Transaction, TxIn, TxOut, WScriptHash, Witness,
};
use k256::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use k256::ecdsa::{Signature, SigningKey};

use super::*;
use crate::{TxError, btc_p2wpkh_address};

/// The secp256k1 group order.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

fn key(n: u8) -> SigningKey {
    SigningKey::from_slice(&[n; 32]).unwrap()
}

fn pubkey(key: &SigningKey) -> [u8; 33] {
    key.verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .try_into()
        .unwrap()
}

fn compressed(key: &SigningKey) -> CompressedPublicKey {
    CompressedPublicKey::from_slice(&pubkey(key)).unwrap()
}

fn p2wpkh(key: &SigningKey) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&compressed(key).wpubkey_hash())
}

/// A PSBT spending `inputs` (script, amount) and paying `outputs`, with witness UTXOs.
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

fn pay(script: ScriptBuf, sats: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: script,
    }
}

fn b64(psbt: &Psbt) -> String {
    BASE64.encode(psbt.serialize())
}

/// Two inputs of `ours`, a payment to key 9 and change back to `ours`.
fn two_by_two(ours: &SigningKey) -> Psbt {
    psbt(
        &[(p2wpkh(ours), 150_000), (p2wpkh(ours), 60_000)],
        vec![pay(p2wpkh(&key(9)), 120_000), pay(p2wpkh(ours), 88_000)],
    )
}

fn sign_all(psbt: &BtcPsbt, key: &SigningKey) -> Vec<([u8; 32], [u8; 32])> {
    psbt.sighashes()
        .iter()
        .map(|sighash| {
            let sig: Signature = key.sign_prehash(sighash).unwrap();
            (sig.r().to_bytes().into(), sig.s().to_bytes().into())
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_two_input_two_output_psbt_is_signed_and_checks_out_independently() {
    let ours = key(1);
    let unsigned = two_by_two(&ours);
    let parsed = BtcPsbt::parse(&b64(&unsigned), BtcNetwork::Mainnet).unwrap();
    let txid = |i: usize| unsigned.unsigned_tx.input[i - 1].previous_output.txid;
    let our_hash = compressed(&ours).wpubkey_hash().to_byte_array();
    assert_eq!(
        parsed.inputs(),
        [
            BtcInput {
                txid: txid(1).to_string(),
                vout: 0,
                pubkey_hash: our_hash,
                amount_sats: 150_000
            },
            BtcInput {
                txid: txid(2).to_string(),
                vout: 1,
                pubkey_hash: our_hash,
                amount_sats: 60_000
            },
        ]
    );
    // The output addresses agree with the crate's own bech32 encoding of the same keys.
    let address = |k: &SigningKey| btc_p2wpkh_address(&k256::PublicKey::from(k.verifying_key()));
    assert_eq!(
        parsed.outputs(),
        [
            BtcOutput {
                destination: BtcDestination::Address(address(&key(9))),
                amount_sats: 120_000
            },
            BtcOutput {
                destination: BtcDestination::Address(address(&ours)),
                amount_sats: 88_000
            },
        ]
    );
    assert_eq!(parsed.fee(), 2_000);
    assert_eq!(parsed.network(), BtcNetwork::Mainnet);
    parsed.check_key(&pubkey(&ours)).unwrap();

    let sighashes = parsed.sighashes();
    assert_eq!(sighashes.len(), 2);
    assert_ne!(sighashes[0], sighashes[1]);
    let signatures = sign_all(&parsed, &ours);
    for (sighash, (r, s)) in sighashes.iter().zip(&signatures) {
        let sig = Signature::from_scalars(*r, *s).unwrap();
        ours.verifying_key().verify_prehash(sighash, &sig).unwrap();
    }

    let signed = parsed.finalize(&pubkey(&ours), &signatures).unwrap();
    let finalized = Psbt::deserialize(&BASE64.decode(&signed).unwrap()).unwrap();
    for input in &finalized.inputs {
        assert!(input.partial_sigs.is_empty());
        assert!(input.sighash_type.is_none());
        assert!(input.witness_utxo.is_some());
        let witness = input.final_script_witness.as_ref().unwrap();
        assert_eq!(witness.len(), 2);
        assert_eq!(witness.nth(1), Some(&pubkey(&ours)[..]));
    }
    // A finalized PSBT is not signed again.
    assert_eq!(
        BtcPsbt::parse(&signed, BtcNetwork::Mainnet),
        Err(TxError::AlreadyFinalized { index: 0 })
    );

    // The extracted transaction: each witness is [DER || SIGHASH_ALL, key], and the signature
    // verifies over the BIP143 sighash recomputed from the transaction itself.
    let raw = unhex(&extract_tx_hex(&signed).unwrap());
    let tx: Transaction = bitcoin::consensus::encode::deserialize(&raw).unwrap();
    assert_eq!(
        tx.compute_txid(),
        two_by_two(&ours).unsigned_tx.compute_txid()
    );
    let mut cache = SighashCache::new(&tx);
    for (index, (input, amount)) in tx.input.iter().zip([150_000, 60_000]).enumerate() {
        let [sig, key_bytes] = input.witness.to_vec().try_into().unwrap();
        assert_eq!(key_bytes, pubkey(&ours));
        let (sighash_type, der) = sig.split_last().unwrap();
        assert_eq!(*sighash_type, 0x01);
        let sighash = cache
            .p2wpkh_signature_hash(
                index,
                &p2wpkh(&ours),
                Amount::from_sat(amount),
                EcdsaSighashType::All,
            )
            .unwrap();
        assert_eq!(sighash.to_byte_array(), sighashes[index]);
        let sig = Signature::from_der(der).unwrap();
        assert!(sig.normalize_s().is_none(), "low s");
        ours.verifying_key()
            .verify_prehash(&sighash.to_byte_array(), &sig)
            .unwrap();
    }
}

#[test]
fn a_high_s_is_normalized_in_the_witness() {
    let ours = key(2);
    let parsed = BtcPsbt::parse(&b64(&two_by_two(&ours)), BtcNetwork::Regtest).unwrap();
    let low = sign_all(&parsed, &ours);
    let n = bitcoin::secp256k1::constants::CURVE_ORDER;
    assert_eq!(n, N);
    let high: Vec<_> = low
        .iter()
        .map(|(r, s)| {
            let s = U256::from_be_bytes(N) - U256::from_be_bytes(*s);
            (*r, s.to_be_bytes())
        })
        .collect();
    assert_ne!(high, low);
    assert_eq!(
        parsed.finalize(&pubkey(&ours), &high).unwrap(),
        parsed.finalize(&pubkey(&ours), &low).unwrap()
    );
}

#[test]
fn another_keys_input_is_refused() {
    let (ours, theirs) = (key(3), key(4));
    let mixed = psbt(
        &[(p2wpkh(&ours), 50_000), (p2wpkh(&theirs), 50_000)],
        vec![pay(p2wpkh(&ours), 99_000)],
    );
    let parsed = BtcPsbt::parse(&b64(&mixed), BtcNetwork::Mainnet).unwrap();
    assert_eq!(
        parsed.check_key(&pubkey(&ours)),
        Err(TxError::NotOurInput { index: 1 })
    );
    assert_eq!(
        parsed.check_key(&pubkey(&theirs)),
        Err(TxError::NotOurInput { index: 0 })
    );
    let signatures = sign_all(&parsed, &ours);
    assert_eq!(
        parsed.finalize(&pubkey(&ours), &signatures),
        Err(TxError::NotOurInput { index: 1 })
    );
    let mut bad_key = pubkey(&ours);
    bad_key[0] = 0x05;
    assert_eq!(parsed.check_key(&bad_key), Err(TxError::InvalidPublicKey));
}

#[test]
fn wrong_or_missing_signatures_are_refused() {
    let ours = key(5);
    let parsed = BtcPsbt::parse(&b64(&two_by_two(&ours)), BtcNetwork::Mainnet).unwrap();
    let mut signatures = sign_all(&parsed, &ours);
    assert_eq!(
        parsed.finalize(&pubkey(&ours), &signatures[..1]),
        Err(TxError::SignatureCount {
            expected: 2,
            got: 1
        })
    );
    // Input 1 signed with the signature of input 0: valid, but not for its sighash.
    signatures[1] = signatures[0];
    assert_eq!(
        parsed.finalize(&pubkey(&ours), &signatures),
        Err(TxError::BadSignature { index: 1 })
    );
    signatures[1] = ([0; 32], [1; 32]);
    assert_eq!(
        parsed.finalize(&pubkey(&ours), &signatures),
        Err(TxError::BadSignature { index: 1 })
    );
    let theirs = sign_all(&parsed, &key(6));
    assert_eq!(
        parsed.finalize(&pubkey(&ours), &theirs),
        Err(TxError::BadSignature { index: 0 })
    );
}

#[test]
fn non_p2wpkh_inputs_are_refused() {
    let ours = key(7);
    let hash = compressed(&ours).wpubkey_hash().to_byte_array();
    for script in [
        ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array(hash)),
        ScriptBuf::new_p2wsh(&WScriptHash::from_byte_array([3; 32])),
        ScriptBuf::new_op_return([1, 2, 3]),
        ScriptBuf::from_bytes(vec![0x51, 0x20].into_iter().chain([4; 32]).collect()),
    ] {
        let spend = psbt(
            &[(p2wpkh(&ours), 10_000), (script, 10_000)],
            vec![pay(p2wpkh(&ours), 19_000)],
        );
        assert_eq!(
            BtcPsbt::parse(&b64(&spend), BtcNetwork::Mainnet),
            Err(TxError::NotP2wpkh { index: 1 })
        );
    }
}

/// Without the whole previous transaction the amount a BIP143 signature commits to is
/// the requester's word: two PSBTs of one transaction, each understating another input,
/// could each pass a limit while the real fee is far larger. Refused.
#[test]
fn an_input_needs_its_previous_transaction() {
    let ours = key(1);
    let mut spend = two_by_two(&ours);
    spend.inputs[1].non_witness_utxo = None;
    assert_eq!(
        BtcPsbt::parse(&b64(&spend), BtcNetwork::Mainnet).unwrap_err(),
        TxError::MissingPreviousTransaction { index: 1 }
    );
}

#[test]
fn an_input_needs_a_witness_utxo() {
    let ours = key(8);
    let mut spend = two_by_two(&ours);
    let previous = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![],
        output: vec![pay(p2wpkh(&ours), 60_000), pay(p2wpkh(&ours), 60_000)],
    };
    spend.inputs[1].witness_utxo = None;
    assert_eq!(
        BtcPsbt::parse(&b64(&spend), BtcNetwork::Mainnet),
        Err(TxError::MissingWitnessUtxo { index: 1 })
    );
    // A non-witness UTXO alone is not enough.
    spend.inputs[1].non_witness_utxo = Some(previous);
    assert_eq!(
        BtcPsbt::parse(&b64(&spend), BtcNetwork::Mainnet),
        Err(TxError::MissingWitnessUtxo { index: 1 })
    );
}

#[test]
fn a_previous_transaction_must_match_the_outpoint_and_amount() {
    let ours = key(10);
    let previous = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![],
        output: vec![pay(p2wpkh(&ours), 150_000)],
    };
    let matching = psbt(
        &[(p2wpkh(&ours), 150_000)],
        vec![pay(p2wpkh(&ours), 149_000)],
    );
    let mut spend = matching.clone();
    spend.unsigned_tx.input[0].previous_output = OutPoint {
        txid: previous.compute_txid(),
        vout: 0,
    };
    spend.inputs[0].non_witness_utxo = Some(previous.clone());
    assert_eq!(
        BtcPsbt::parse(&b64(&spend), BtcNetwork::Mainnet)
            .unwrap()
            .fee(),
        1_000
    );
    // The witness UTXO claims less than the previous transaction shows.
    let mut lying = spend.clone();
    lying.inputs[0].witness_utxo = Some(pay(p2wpkh(&ours), 149_500));
    assert_eq!(
        BtcPsbt::parse(&b64(&lying), BtcNetwork::Mainnet),
        Err(TxError::UtxoMismatch { index: 0 })
    );
    // Another transaction, or an output it does not have.
    let mut other = matching.clone();
    other.inputs[0].non_witness_utxo = Some(previous.clone());
    assert_eq!(
        BtcPsbt::parse(&b64(&other), BtcNetwork::Mainnet),
        Err(TxError::UtxoMismatch { index: 0 })
    );
    let mut missing = spend;
    missing.unsigned_tx.input[0].previous_output.vout = 1;
    assert_eq!(
        BtcPsbt::parse(&b64(&missing), BtcNetwork::Mainnet),
        Err(TxError::UtxoMismatch { index: 0 })
    );
}

#[test]
fn only_sighash_all_is_signed() {
    let ours = key(11);
    let mut spend = two_by_two(&ours);
    spend.inputs[0].sighash_type = Some(PsbtSighashType::from(EcdsaSighashType::All));
    assert!(BtcPsbt::parse(&b64(&spend), BtcNetwork::Mainnet).is_ok());
    for other in [
        EcdsaSighashType::None,
        EcdsaSighashType::Single,
        EcdsaSighashType::AllPlusAnyoneCanPay,
    ] {
        spend.inputs[1].sighash_type = Some(PsbtSighashType::from(other));
        assert_eq!(
            BtcPsbt::parse(&b64(&spend), BtcNetwork::Mainnet),
            Err(TxError::SighashType { index: 1 })
        );
    }
    spend.inputs[1].sighash_type = Some(PsbtSighashType::from_u32(0x1234));
    assert_eq!(
        BtcPsbt::parse(&b64(&spend), BtcNetwork::Mainnet),
        Err(TxError::SighashType { index: 1 })
    );
}

#[test]
fn inputs_and_outputs_at_64_and_65() {
    let ours = key(12);
    let inputs = |n: usize| vec![(p2wpkh(&ours), 1_000); n];
    let at_max = psbt(&inputs(64), vec![pay(p2wpkh(&ours), 60_000)]);
    assert_eq!(
        BtcPsbt::parse(&b64(&at_max), BtcNetwork::Mainnet)
            .unwrap()
            .sighashes()
            .len(),
        64
    );
    let over = psbt(&inputs(65), vec![pay(p2wpkh(&ours), 60_000)]);
    assert_eq!(
        BtcPsbt::parse(&b64(&over), BtcNetwork::Mainnet),
        Err(TxError::TooManyInputs { count: 65, max: 64 })
    );
    let outputs = |n: usize| vec![pay(p2wpkh(&key(9)), 1_000); n];
    let at_max = psbt(&inputs(1), outputs(1));
    assert!(BtcPsbt::parse(&b64(&at_max), BtcNetwork::Mainnet).is_ok());
    let at_max = psbt(&[(p2wpkh(&ours), 64_000)], outputs(64));
    assert_eq!(
        BtcPsbt::parse(&b64(&at_max), BtcNetwork::Mainnet)
            .unwrap()
            .outputs()
            .len(),
        64
    );
    let over = psbt(&[(p2wpkh(&ours), 65_000)], outputs(65));
    assert_eq!(
        BtcPsbt::parse(&b64(&over), BtcNetwork::Mainnet),
        Err(TxError::TooManyOutputs { count: 65, max: 64 })
    );
    let none = psbt(&[(p2wpkh(&ours), 65_000)], vec![]);
    assert_eq!(
        BtcPsbt::parse(&b64(&none), BtcNetwork::Mainnet),
        Err(TxError::NoInputsOrOutputs { part: "outputs" })
    );
}

#[test]
fn the_length_limit_at_max_and_max_plus_one() {
    let ours = key(13);
    let mut padded = two_by_two(&ours);
    let filler = raw::Key {
        type_value: 0xf0,
        key: vec![],
    };
    // 256 KiB of base64 is 192 KiB of PSBT; pad with an unknown global field to exactly that.
    let target = MAX_PSBT_LEN / 4 * 3;
    let mut pad = target - padded.serialize().len() - 16;
    loop {
        padded.unknown.insert(filler.clone(), vec![0x5a; pad]);
        let len = padded.serialize().len();
        match len.cmp(&target) {
            core::cmp::Ordering::Equal => break,
            core::cmp::Ordering::Less => pad += target - len,
            core::cmp::Ordering::Greater => pad -= len - target,
        }
    }
    let at_max = b64(&padded);
    assert_eq!(at_max.len(), MAX_PSBT_LEN);
    assert_eq!(
        BtcPsbt::parse(&at_max, BtcNetwork::Mainnet).unwrap().fee(),
        2_000
    );

    let too_long = Err(TxError::TooLong {
        what: "PSBT",
        len: MAX_PSBT_LEN + 1,
        max: MAX_PSBT_LEN,
    });
    assert_eq!(
        BtcPsbt::parse(&format!("{at_max}="), BtcNetwork::Mainnet),
        too_long
    );
    // Checked before decoding: anything of that length gets the same answer.
    assert_eq!(
        BtcPsbt::parse(&"!".repeat(MAX_PSBT_LEN + 1), BtcNetwork::Mainnet),
        too_long
    );
    assert_eq!(
        extract_tx_hex(&"A".repeat(MAX_PSBT_LEN + 1)),
        too_long.map(|_: BtcPsbt| String::new())
    );
}

#[test]
fn garbage_and_overspending_are_refused() {
    assert_eq!(
        BtcPsbt::parse("not base64!", BtcNetwork::Mainnet),
        Err(TxError::Base64)
    );
    assert!(matches!(
        BtcPsbt::parse(&BASE64.encode(b"psbt\xff\x00"), BtcNetwork::Mainnet),
        Err(TxError::Malformed { part: "PSBT", .. })
    ));
    let valid = b64(&two_by_two(&key(14)));
    let truncated = BASE64.encode(&BASE64.decode(&valid).unwrap()[..100]);
    assert!(matches!(
        BtcPsbt::parse(&truncated, BtcNetwork::Mainnet),
        Err(TxError::Malformed { .. })
    ));
    let ours = key(14);
    let over = psbt(&[(p2wpkh(&ours), 10_000)], vec![pay(p2wpkh(&ours), 10_001)]);
    assert_eq!(
        BtcPsbt::parse(&b64(&over), BtcNetwork::Mainnet),
        Err(TxError::OutputsExceedInputs {
            inputs: 10_000,
            outputs: 10_001
        })
    );
    let no_fee = psbt(&[(p2wpkh(&ours), 10_000)], vec![pay(p2wpkh(&ours), 10_000)]);
    assert_eq!(
        BtcPsbt::parse(&b64(&no_fee), BtcNetwork::Mainnet)
            .unwrap()
            .fee(),
        0
    );
    let too_much = psbt(
        &[(p2wpkh(&ours), Amount::MAX_MONEY.to_sat() + 1)],
        vec![pay(p2wpkh(&ours), 1)],
    );
    assert_eq!(
        BtcPsbt::parse(&b64(&too_much), BtcNetwork::Mainnet),
        Err(TxError::AmountTooLarge {
            field: "input amount"
        })
    );
}

#[test]
fn outputs_that_are_not_addresses_are_reported_as_such() {
    let ours = key(15);
    let op_return = ScriptBuf::new_op_return([7; 10]);
    let bare = ScriptBuf::from_bytes(vec![0x51]); // OP_TRUE
    let spend = psbt(
        &[(p2wpkh(&ours), 10_000)],
        vec![
            pay(op_return.clone(), 0),
            pay(bare.clone(), 500),
            pay(p2wpkh(&ours), 9_000),
        ],
    );
    let parsed = BtcPsbt::parse(&b64(&spend), BtcNetwork::Testnet).unwrap();
    let tb1 = Address::p2wpkh(&compressed(&ours), Network::Testnet).to_string();
    assert!(tb1.starts_with("tb1q"));
    assert_eq!(
        parsed.outputs(),
        [
            BtcOutput {
                destination: BtcDestination::OpReturn(op_return.to_bytes()),
                amount_sats: 0
            },
            BtcOutput {
                destination: BtcDestination::NonStandard(bare.to_bytes()),
                amount_sats: 500
            },
            BtcOutput {
                destination: BtcDestination::Address(tb1),
                amount_sats: 9_000
            },
        ]
    );
    assert_eq!(parsed.fee(), 500);
    let regtest = BtcPsbt::parse(&b64(&spend), BtcNetwork::Regtest).unwrap();
    assert!(matches!(
        &regtest.outputs()[2].destination,
        BtcDestination::Address(a) if a.starts_with("bcrt1q")
    ));
}

#[test]
fn network_names() {
    for network in BtcNetwork::ALL {
        assert_eq!(network.name().parse::<BtcNetwork>(), Ok(network));
        assert_eq!(network.to_string(), network.name());
    }
    assert_eq!(
        "bitcoin".parse::<BtcNetwork>(),
        Err(TxError::UnknownNetwork {
            name: "bitcoin".to_owned()
        })
    );
    assert!("Mainnet".parse::<BtcNetwork>().is_err());
}
