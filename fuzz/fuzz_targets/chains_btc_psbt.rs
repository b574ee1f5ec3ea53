//! Arbitrary bytes as a PSBT (base64-encoded first, as a signing request carries it) and as
//! base64 text. Parsing may not panic; whatever parses respects the limits, its amounts add
//! up, it has one sighash per input, and no garbage signature finalizes it.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chains::btc::{BtcNetwork, BtcPsbt, MAX_PSBT_INPUTS, MAX_PSBT_OUTPUTS, extract_tx_hex};
use libfuzzer_sys::fuzz_target;

/// The secp256k1 generator, compressed: the public key of private key 1.
const G: [u8; 33] = [
    0x02, 0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87,
    0x0b, 0x07, 0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16,
    0xf8, 0x17, 0x98,
];

fn check(psbt: &BtcPsbt) {
    let (inputs, outputs) = (psbt.inputs(), psbt.outputs());
    assert!((1..=MAX_PSBT_INPUTS).contains(&inputs.len()));
    assert!((1..=MAX_PSBT_OUTPUTS).contains(&outputs.len()));
    assert_eq!(psbt.sighashes().len(), inputs.len());
    let total_in: u64 = inputs.iter().map(|i| i.amount_sats).sum();
    let total_out: u64 = outputs.iter().map(|o| o.amount_sats).sum();
    assert_eq!(total_in, total_out + psbt.fee());
    let garbage = vec![([0x11; 32], [0x22; 32]); inputs.len()];
    assert!(psbt.finalize(&G, &garbage).is_err(), "a garbage signature finalized a PSBT");
}

fuzz_target!(|data: &[u8]| {
    let text = BASE64.encode(data);
    for network in [BtcNetwork::Mainnet, BtcNetwork::Regtest] {
        if let Ok(psbt) = BtcPsbt::parse(&text, network) {
            check(&psbt);
        }
    }
    let _ = extract_tx_hex(&text);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(psbt) = BtcPsbt::parse(text, BtcNetwork::Mainnet)
    {
        check(&psbt);
    }
});
