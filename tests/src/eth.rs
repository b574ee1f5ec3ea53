//! Unsigned Ethereum transactions for the process tests, and the independent check of a
//! signed one. A transaction is encoded here by hand (RLP of an EIP-1559 transaction), so
//! that what the nodes parse is not built by the code that parses it; a signed one is
//! checked by recovering its sender ([`chains::eth::recover_sender`]), which must be the
//! signing key's address.

/// The chain every test transaction is for: Ethereum mainnet.
pub const CHAIN_ID: u64 = 1;
/// Where every test transaction sends its ether.
pub const DESTINATION: [u8; 20] = [0xab; 20];

/// An unsigned EIP-1559 transaction on [`CHAIN_ID`] moving `value_wei` to
/// [`DESTINATION`], with no data: `0x02 || rlp([chain id, nonce, 1 gwei tip, 30 gwei
/// fee cap, 60000 gas, to, value, "", []])`. Its signing hash is Keccak-256 of these bytes.
pub fn transfer(nonce: u64, value_wei: u128) -> Vec<u8> {
    let mut fields = Vec::new();
    uint(&mut fields, u128::from(CHAIN_ID));
    uint(&mut fields, u128::from(nonce));
    uint(&mut fields, 1_000_000_000);
    uint(&mut fields, 30_000_000_000);
    uint(&mut fields, 60_000);
    bytes(&mut fields, &DESTINATION);
    uint(&mut fields, value_wei);
    bytes(&mut fields, &[]);
    // The access list: an empty list.
    fields.push(0xc0);
    let mut out = vec![0x02];
    length(&mut out, 0xc0, fields.len());
    out.extend_from_slice(&fields);
    out
}

/// [`transfer`] as hex, as a request carries it.
pub fn transfer_hex(nonce: u64, value_wei: u128) -> String {
    hex::encode(transfer(nonce, value_wei))
}

/// Keccak-256 of `data`: the signing hash of an unsigned typed transaction's bytes.
pub fn keccak(data: &[u8]) -> [u8; 32] {
    use sha3::Digest as _;
    sha3::Keccak256::digest(data).into()
}

/// Checks a signed answer's `signed_tx` independently: it decodes, and its recovered
/// sender is `eth_address` (EIP-55, as the nodes report a key's address).
pub fn check_signed_tx(answer: &serde_json::Value, eth_address: &str) -> Result<(), String> {
    let signed = answer
        .get("signed_tx")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("no signed_tx in {answer}"))?;
    let raw = hex::decode(signed.strip_prefix("0x").unwrap_or(signed))
        .map_err(|e| format!("signed_tx is not hex: {e}: {answer}"))?;
    let sender = chains::eth::recover_sender(&raw)
        .map_err(|e| format!("signed_tx does not decode: {e}: {answer}"))?;
    if sender == eth_address {
        Ok(())
    } else {
        Err(format!(
            "the signed transaction's sender is {sender}, not {eth_address}: {answer}"
        ))
    }
}

/// The RLP string `data`.
fn bytes(out: &mut Vec<u8>, data: &[u8]) {
    match data {
        [byte] if *byte < 0x80 => out.push(*byte),
        _ => {
            length(out, 0x80, data.len());
            out.extend_from_slice(data);
        }
    }
}

/// The RLP integer `value`: big-endian without leading zeros (zero is the empty string).
fn uint(out: &mut Vec<u8>, value: u128) {
    let be = value.to_be_bytes();
    let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    bytes(out, be.get(first..).unwrap_or_default());
}

/// An RLP length prefix: `offset + len` up to 55, else `offset + 55 + length of len`
/// and len big-endian.
fn length(out: &mut Vec<u8>, offset: u8, len: usize) {
    if let Ok(short) = u8::try_from(len)
        && short <= 55
    {
        out.push(offset + short);
        return;
    }
    let be = (len as u64).to_be_bytes();
    let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = be.get(first..).unwrap_or_default();
    out.push(offset + 55 + u8::try_from(digits.len()).unwrap_or(8));
    out.extend_from_slice(digits);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_is_what_the_nodes_parse() {
        let one_ether = 1_000_000_000_000_000_000;
        let tx = transfer(3, one_ether);
        assert!(
            hex::encode(&tx).starts_with(&format!(
                "02f00103843b9aca008506fc23ac0082ea6094{}880de0b6b3a764000080c0",
                "ab".repeat(20)
            )),
            "{}",
            hex::encode(&tx)
        );
        let parsed = chains::eth::EthTx::parse_unsigned(&tx).unwrap();
        assert_eq!(parsed.chain_id(), CHAIN_ID);
        assert_eq!(parsed.nonce(), 3);
        assert_eq!(parsed.value(), one_ether);
        assert_eq!(parsed.to().to_lowercase(), format!("0x{}", "ab".repeat(20)));
        assert_eq!(parsed.signing_hash(), keccak(&tx));
        // A zero value and a large nonce encode too.
        let parsed = chains::eth::EthTx::parse_unsigned(&transfer(1 << 40, 0)).unwrap();
        assert_eq!((parsed.nonce(), parsed.value()), (1 << 40, 0));
    }
}
