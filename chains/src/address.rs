//! Keccak-256 and the addresses of a public key, as pure functions.
//!
//! - Ethereum: the last 20 bytes of the Keccak-256 of the uncompressed point (without its
//!   `0x04` prefix), written `0x` + hex with the EIP-55 mixed-case checksum.
//! - Bitcoin mainnet P2WPKH: the witness version 0 program `RIPEMD-160(SHA-256(compressed
//!   SEC1 key))`, encoded as bech32 (BIP-173, not the bech32m of BIP-350) with the prefix `bc`.

use k256::PublicKey;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use ripemd::Ripemd160;
use sha2::{Digest, Sha256};
use sha3::Keccak256;

/// Keccak-256 as Ethereum uses it (the original Keccak padding, not the SHA3-256 of FIPS 202).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The Ethereum address of `key`: `0x` and 40 hex digits with the EIP-55 checksum casing.
pub fn eth_address(key: &PublicKey) -> String {
    let encoded = key.to_encoded_point(false);
    let mut uncompressed = [0u8; 65];
    uncompressed.copy_from_slice(encoded.as_bytes());
    let [_prefix, xy @ ..] = uncompressed;
    let hash = keccak256(&xy);
    let mut address = [0u8; 20];
    address.copy_from_slice(hash.split_at(12).1);
    eip55(&address)
}

/// `0x` and the 40 hex digits of a 20-byte Ethereum address, each letter upper case where the
/// matching nibble of the Keccak-256 of the lower-case hex is 8 or more (EIP-55).
pub fn eip55(address: &[u8; 20]) -> String {
    let hash = keccak256(hex(address).as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (byte, mask) in address.iter().zip(hash) {
        out.push(hex_digit(byte >> 4, mask & 0x80 != 0));
        out.push(hex_digit(byte & 0x0f, mask & 0x08 != 0));
    }
    out
}

fn hex_digit(nibble: u8, upper: bool) -> char {
    let digit = char::from(match nibble & 0x0f {
        n @ 0..=9 => b'0' + n,
        n => b'a' + (n - 10),
    });
    if upper {
        digit.to_ascii_uppercase()
    } else {
        digit
    }
}

/// The Bitcoin mainnet P2WPKH address of `key` (`bc1q...`, 42 characters).
pub fn btc_p2wpkh_address(key: &PublicKey) -> String {
    let program = Ripemd160::digest(Sha256::digest(key.to_encoded_point(true)));
    let mut data = Vec::with_capacity(33);
    data.push(0); // witness version 0
    data.extend(to_5bit(&program));
    bech32("bc", &data)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32_GENERATOR: [u32; 5] = [
    0x3b6a_57b2,
    0x2650_8e6d,
    0x1ea1_19fa,
    0x3d42_33dd,
    0x2a14_62b3,
];

/// Regroups bytes into 5-bit values, most significant first, zero-padding the last one.
fn to_5bit(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut acc = 0u32;
    let mut bits = 0u32;
    for byte in bytes {
        acc = ((acc << 8) | u32::from(*byte)) & 0xfff;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(((acc >> bits) & 0x1f) as u8);
        }
    }
    if bits > 0 {
        out.push(((acc << (5 - bits)) & 0x1f) as u8);
    }
    out
}

/// The BIP-173 checksum polynomial over 5-bit values.
fn polymod(values: impl IntoIterator<Item = u8>) -> u32 {
    values.into_iter().fold(1u32, |chk, value| {
        let top = chk >> 25;
        let chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(value & 0x1f);
        BECH32_GENERATOR
            .iter()
            .enumerate()
            .filter(|(i, _)| (top >> i) & 1 == 1)
            .fold(chk, |chk, (_, generator)| chk ^ generator)
    })
}

/// The human-readable part expanded for the checksum: high bits of each character, a zero,
/// then the low bits of each character.
fn hrp_expand(hrp: &str) -> impl Iterator<Item = u8> + '_ {
    hrp.bytes()
        .map(|c| c >> 5)
        .chain([0])
        .chain(hrp.bytes().map(|c| c & 0x1f))
}

/// Bech32 (BIP-173) of `data` (5-bit values) under `hrp` (lower-case ASCII), with its 6-value
/// checksum.
fn bech32(hrp: &str, data: &[u8]) -> String {
    let residue = polymod(hrp_expand(hrp).chain(data.iter().copied()).chain([0; 6])) ^ 1;
    let checksum = (0..6u32).rev().map(|i| ((residue >> (5 * i)) & 0x1f) as u8);
    let mut out = String::with_capacity(hrp.len() + 1 + data.len() + 6);
    out.push_str(hrp);
    out.push('1');
    // Every value is masked to 5 bits, so the lookup always succeeds.
    out.extend(
        data.iter()
            .copied()
            .chain(checksum)
            .filter_map(|v| BECH32_CHARSET.get(usize::from(v & 0x1f)).copied())
            .map(char::from),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The secp256k1 generator, the public key of private key 1.
    const G: &str = "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798";

    fn unhex(s: &str) -> Vec<u8> {
        assert_eq!(s.len() % 2, 0);
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn key(sec1_hex: &str) -> PublicKey {
        PublicKey::from_sec1_bytes(&unhex(sec1_hex)).unwrap()
    }

    /// Whether a bech32 string's checksum verifies (the polymod of everything is 1).
    fn verifies(bech32: &str) -> bool {
        let (hrp, data) = bech32.rsplit_once('1').unwrap();
        let values: Option<Vec<u8>> = data
            .bytes()
            .map(|c| BECH32_CHARSET.iter().position(|x| *x == c).map(|p| p as u8))
            .collect();
        values.is_some_and(|values| polymod(hrp_expand(hrp).chain(values)) == 1)
    }

    #[test]
    fn keccak256_of_the_empty_string() {
        assert_eq!(
            hex(&keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn eip55_examples() {
        // The examples of EIP-55: all upper case, all lower case, mixed.
        for expected in [
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
            "0xde709f2102306220921060314715629080e2fb77",
            "0x27b1fdb04752bbc536007a920d24acb045561c26",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let raw: [u8; 20] = unhex(&expected[2..]).try_into().unwrap();
            assert_eq!(eip55(&raw), expected);
        }
    }

    #[test]
    fn eth_address_of_known_keys() {
        assert_eq!(
            eth_address(&key(G)),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
        // Private key 2.
        assert_eq!(
            eth_address(&key(
                "02C6047F9441ED7D6D3045406E95C07CD85C778E4B8CEF3CA7ABAC09B95C709EE5"
            )),
            "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"
        );
    }

    #[test]
    fn bech32_checksum_vectors() {
        // Valid bech32 strings of BIP-173.
        assert_eq!(bech32("a", &[]), "a12uel5l");
        assert_eq!(
            bech32("abcdef", &(0..32).collect::<Vec<u8>>()),
            "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"
        );
        for valid in [
            "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
            "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
            "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
        ] {
            assert!(verifies(valid), "{valid}");
        }
        assert_eq!(to_5bit(&[0xff]), [0x1f, 0x1c]);
        assert_eq!(to_5bit(&[0; 5]), [0; 8]);
    }

    #[test]
    fn btc_p2wpkh_address_of_the_generator() {
        // The P2WPKH example of BIP-173.
        let address = btc_p2wpkh_address(&key(G));
        assert_eq!(address, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4");
        let program = Ripemd160::digest(Sha256::digest(key(G).to_encoded_point(true)));
        assert_eq!(hex(&program), "751e76e8199196d454941c45d1b3a323f1433bd6");
    }

    #[test]
    fn a_changed_character_breaks_the_checksum() {
        let address = btc_p2wpkh_address(&key(G));
        assert!(verifies(&address));
        for i in 3..address.len() {
            for replacement in BECH32_CHARSET.iter().map(|c| char::from(*c)) {
                let mut tampered: Vec<char> = address.chars().collect();
                if tampered[i] == replacement {
                    continue;
                }
                tampered[i] = replacement;
                let tampered: String = tampered.into_iter().collect();
                assert!(!verifies(&tampered), "{tampered} passed the checksum");
            }
        }
    }
}
