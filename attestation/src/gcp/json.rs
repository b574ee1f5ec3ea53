//! A JSON value tree for a token's header and claims that refuses a member named twice.
//!
//! `serde_json::Value` keeps the last of two members with one name; a token whose `alg`
//! or `aud` is given twice must be refused, not "resolved" one way by this verifier and
//! another way by the next, so headers and claims are first read into this tree and then
//! validated by hand. Containers are never pre-sized from the input, whose size the
//! caller has bounded.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    /// Members in the order written; no name appears twice.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Decodes exactly one JSON value; anything but whitespace after it is an error.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Json, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The member `name` of an object.
    pub(crate) fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::UInt(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(u64::try_from(v).map_or(Json::Int(v), Json::UInt))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, Json>()? {
            members.push((name, value));
        }
        let mut names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find_map(|w| match w {
            [a, b] if a == b => Some(*a),
            _ => None,
        }) {
            return Err(de::Error::custom(format!(
                "member {:?} appears twice",
                shorten(twice)
            )));
        }
        Ok(Json::Object(members))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// Text from the wire in an error: at most 64 characters (it is also printed escaped, as
/// `{:?}`, so control characters cannot reach a terminal raw).
pub(crate) fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    if text.chars().count() <= MAX_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MAX_CHARS).collect();
    short.push('…');
    short
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_types() {
        let v = Json::parse(br#"{"b":1,"a":[-2,1.5,"x",true,null,{}]}"#).unwrap();
        assert_eq!(
            v,
            Json::Object(vec![
                ("b".into(), Json::UInt(1)),
                (
                    "a".into(),
                    Json::Array(vec![
                        Json::Int(-2),
                        Json::Float(1.5),
                        Json::Str("x".into()),
                        Json::Bool(true),
                        Json::Null,
                        Json::Object(vec![]),
                    ])
                ),
            ])
        );
        assert_eq!(v.get("b"), Some(&Json::UInt(1)));
        assert_eq!(v.get("c"), None);
    }

    #[test]
    fn refuses_a_member_named_twice_at_any_depth() {
        for text in [
            r#"{"alg":"RS256","alg":"none"}"#,
            r#"{"a":{"x":1,"y":2,"x":1}}"#,
            r#"[{"k":1,"k":1}]"#,
            // Escapes spell the same name.
            r#"{"alg":1,"\u0061lg":2}"#,
        ] {
            let err = Json::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains("appears twice"), "{text}: {err}");
        }
    }

    #[test]
    fn refuses_trailing_data_but_not_inner_whitespace() {
        assert!(Json::parse(b"{} {}").is_err());
        assert!(Json::parse(b"{}x").is_err());
        assert!(Json::parse(b" { \"a\" : 1 } ").is_ok());
    }

    #[test]
    fn long_names_are_shortened_in_errors() {
        let name = "n".repeat(1000);
        let text = format!(r#"{{"{name}":1,"{name}":2}}"#);
        let err = Json::parse(text.as_bytes()).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }
}
