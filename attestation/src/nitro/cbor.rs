//! A CBOR value tree that keeps map entries in order, duplicates included.
//!
//! `serde_cbor::Value` stores maps in a `BTreeMap`, which silently keeps only the last
//! of two equal keys. A document with a duplicated field must be refused, not
//! "resolved", so the payload is first read into this tree and then validated by hand.
//! Containers are never pre-sized from lengths on the wire.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cbor {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Cbor>),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Cbor::Null => "null",
            Cbor::Bool(_) => "a boolean",
            Cbor::Int(_) => "an integer",
            Cbor::Float(_) => "a float",
            Cbor::Bytes(_) => "a byte string",
            Cbor::Text(_) => "a text string",
            Cbor::Array(_) => "an array",
            Cbor::Map(_) => "a map",
        }
    }
}

struct CborVisitor;

impl<'de> Visitor<'de> for CborVisitor {
    type Value = Cbor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CBOR data item")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cbor, E> {
        Ok(Cbor::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cbor, E> {
        Ok(Cbor::Int(i128::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cbor, E> {
        Ok(Cbor::Int(i128::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Cbor, E> {
        Ok(Cbor::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Cbor, E> {
        i128::try_from(v)
            .map(Cbor::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cbor, E> {
        Ok(Cbor::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cbor, E> {
        Ok(Cbor::Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Cbor, E> {
        Ok(Cbor::Text(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Cbor, E> {
        Ok(Cbor::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Cbor, E> {
        Ok(Cbor::Bytes(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Cbor, E> {
        Ok(Cbor::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Cbor, E> {
        Ok(Cbor::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Cbor, D::Error> {
        Cbor::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cbor, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Cbor>()? {
            items.push(item);
        }
        Ok(Cbor::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cbor, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Cbor, Cbor>()? {
            entries.push((k, v));
        }
        Ok(Cbor::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Cbor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CborVisitor)
    }
}

/// Decodes exactly one CBOR item from `bytes`; trailing bytes are an error.
pub(crate) fn from_slice(bytes: &[u8]) -> Result<Cbor, serde_cbor::Error> {
    serde_cbor::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicate_keys() {
        // {"a": 1, "a": 2}
        let bytes = [0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02];
        let v = from_slice(&bytes).unwrap();
        let Cbor::Map(entries) = v else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn reads_indefinite_length_map() {
        // {_ "a": h'01' }
        let bytes = [0xbf, 0x61, b'a', 0x41, 0x01, 0xff];
        assert_eq!(
            from_slice(&bytes).unwrap(),
            Cbor::Map(vec![(Cbor::Text("a".into()), Cbor::Bytes(vec![1]))])
        );
    }

    #[test]
    fn refuses_trailing_bytes() {
        assert!(from_slice(&[0x01, 0x02]).is_err());
    }

    #[test]
    fn refuses_huge_declared_length_without_allocating() {
        // a byte string that claims 2^63 bytes
        let bytes = [0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x00];
        assert!(from_slice(&bytes).is_err());
        // an array that claims 2^32 elements
        let bytes = [0x9a, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(from_slice(&bytes).is_err());
    }
}
