//! Arbitrary bytes as an unsigned Ethereum transaction (what a signing request carries) and
//! as a signed one (what `recover_sender` checks). Parsing may not panic; whatever parses is
//! within the limit, names a chain and a destination, is exactly the preimage of its signing
//! hash, and once signed is refused as an unsigned transaction.
#![no_main]

use chains::eth::{CalldataKind, EthTx, MAX_ETH_TX_LEN, recover_sender};
use chains::keccak256;
use libfuzzer_sys::fuzz_target;

/// A valid low-s signature (r = 1, s = 1): it assembles, though it signs nothing.
const ONE: [u8; 32] = {
    let mut one = [0u8; 32];
    one[31] = 1;
    one
};

fuzz_target!(|data: &[u8]| {
    let _ = recover_sender(data);
    let Ok(tx) = EthTx::parse_unsigned(data) else {
        return;
    };
    assert!(data.len() <= MAX_ETH_TX_LEN);
    assert_ne!(tx.chain_id(), 0);
    assert_eq!(tx.signing_hash(), keccak256(data));
    let to = tx.to();
    assert!(to.len() == 42 && to.starts_with("0x"));
    assert!(to.bytes().skip(2).all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    match (tx.calldata_kind(), tx.erc20_transfer()) {
        (CalldataKind::Erc20Transfer, Some(transfer)) => assert_eq!(transfer.token, to),
        (CalldataKind::Erc20Transfer, None) => panic!("an ERC-20 transfer without its fields"),
        (_, transfer) => assert!(transfer.is_none()),
    }
    for y_parity in [false, true] {
        let raw = tx
            .signed_raw(ONE, ONE, y_parity)
            .expect("a valid low-s signature assembles");
        assert!(EthTx::parse_unsigned(&raw).is_err(), "a signed transaction parsed as unsigned");
        let _ = recover_sender(&raw);
    }
});
