//! Payload encoding: CBOR through `ciborium`.
//!
//! CBOR because the library's key-share format is tested with exactly two serde backends,
//! `serde_json` and `ciborium`, and `ciborium` is already in the tree through `coset`; it is
//! binary (points and scalars travel as byte strings; big integers stay hex strings, the
//! library's choice in every format). Its decoder grows byte strings from the bytes actually
//! present rather than from declared lengths, and limits nesting. The input is bounded by the
//! envelope's limit, and trailing bytes are refused.
//!
//! Decoding runs under `catch_unwind`: some of the pinned pre-release stack's `Deserialize`
//! implementations panic on hostile input (a big integer with a radix above 36 reaches an
//! `assert!` in `num-bigint`), and a peer's bytes must never take the node down.

use serde::{Serialize, de::DeserializeOwned};

/// Nesting deeper than any message of the protocols here.
const MAX_NESTING: usize = 64;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    std::panic::catch_unwind(|| decode_unguarded(bytes))
        .unwrap_or_else(|_| Err("the decoder panicked".to_string()))
}

fn decode_unguarded<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut rest = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_NESTING)
        .map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_trailing_bytes_and_garbage() {
        let mut bytes = encode(&(1u16, vec![2u8; 3])).unwrap();
        assert_eq!(decode::<(u16, Vec<u8>)>(&bytes).unwrap(), (1, vec![2; 3]));
        bytes.push(0);
        assert!(decode::<(u16, Vec<u8>)>(&bytes).is_err());
        assert!(decode::<(u16, Vec<u8>)>(&[0xff, 0x00]).is_err());
        let mut deep = vec![0x81u8; 200];
        deep.push(0);
        assert!(decode::<serde::de::IgnoredAny>(&deep).is_err());
        assert!(decode::<serde::de::IgnoredAny>(&deep[150..]).is_ok());
    }

    #[test]
    fn a_panicking_deserializer_is_a_decoding_error() {
        use cggmp24::paillier_zk::backend::Integer;

        #[derive(serde::Serialize)]
        struct Hostile {
            radix: u16,
            value: &'static str,
        }
        let fine = encode(&Hostile {
            radix: 16,
            value: "ff",
        })
        .unwrap();
        assert_eq!(decode::<Integer>(&fine).unwrap(), Integer::from(255u32));
        let hostile = encode(&Hostile {
            radix: 37,
            value: "1",
        })
        .unwrap();
        assert_eq!(
            decode::<Integer>(&hostile),
            Err("the decoder panicked".to_string())
        );
    }
}
