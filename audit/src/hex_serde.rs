//! Byte fields as lower-case hex strings in JSON: fixed-size arrays, optional arrays and
//! bounded byte strings. Decoding takes upper case too; the canonical-form check of an
//! entry then refuses it, since the node only ever writes lower case.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// Longest variable-length byte field (a public key, a signature): far more than any
/// scheme's, and bounded again by the entry's length.
pub const MAX_HEX_BYTES: usize = 1024;

fn decode_array<'de, D: Deserializer<'de>, const N: usize>(
    text: &str,
) -> Result<[u8; N], D::Error> {
    if text.len() != 2 * N {
        return Err(D::Error::custom(format!(
            "{} hex characters where {} belong",
            text.len(),
            2 * N
        )));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(D::Error::custom)?;
    Ok(out)
}

/// `[u8; N]` as exactly `2N` hex characters.
pub mod array {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        decode_array::<D, N>(&text)
    }
}

/// `Option<[u8; N]>` as hex or `null`.
pub mod option_array {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_some(&hex::encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Option<[u8; N]>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => decode_array::<D, N>(&text).map(Some),
            None => Ok(None),
        }
    }
}

/// `Vec<u8>` of at most [`MAX_HEX_BYTES`] bytes, as hex.
pub mod bytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() > 2 * MAX_HEX_BYTES {
            return Err(D::Error::custom(format!(
                "more than {MAX_HEX_BYTES} bytes of hex"
            )));
        }
        hex::decode(&text).map_err(D::Error::custom)
    }
}
