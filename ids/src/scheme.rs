//! Signature schemes by name: [`SchemeId`] names the scheme of a key in the engine's stored
//! share records, in the session requests nodes send each other, and in the answers
//! operators read. Records and messages written before they named a scheme are ECDSA's
//! ([`SchemeId::LEGACY`]).

use std::fmt;

/// Longest scheme name accepted from the wire or a record.
pub const MAX_SCHEME_NAME_LEN: usize = 32;

/// A signature scheme, by the name the wire and stored records use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SchemeId {
    /// Threshold ECDSA on secp256k1 (cggmp24), with recoverable signatures.
    EcdsaSecp256k1,
}

impl SchemeId {
    /// Every scheme this build implements.
    pub const ALL: &'static [SchemeId] = &[SchemeId::EcdsaSecp256k1];
    /// Names held for schemes that are planned and not implemented: BIP340 Schnorr with the
    /// Taproot tweak, and Ed25519. They are refused, never read as something else.
    pub const RESERVED: &'static [&'static str] = &["schnorr-secp256k1-tr", "ed25519"];
    /// The scheme of every key, record and message from before they named one.
    pub const LEGACY: SchemeId = SchemeId::EcdsaSecp256k1;

    pub fn name(self) -> &'static str {
        match self {
            SchemeId::EcdsaSecp256k1 => "ecdsa-secp256k1",
        }
    }

    /// The scheme named exactly `name` (no other spelling).
    pub fn from_name(name: &str) -> Result<Self, SchemeError> {
        if let Some(id) = Self::ALL.iter().find(|id| id.name() == name) {
            return Ok(*id);
        }
        let shown: String = name.chars().take(MAX_SCHEME_NAME_LEN).collect();
        if Self::RESERVED.contains(&name) {
            Err(SchemeError::NotImplemented(shown))
        } else {
            Err(SchemeError::Unknown(shown))
        }
    }

    /// [`SchemeId::LEGACY`], for a serde field that older writers left out.
    pub fn legacy() -> Self {
        Self::LEGACY
    }

    /// Whether this is [`SchemeId::LEGACY`], for a serde field that is left out when it
    /// holds the value older readers assume.
    pub fn is_legacy(&self) -> bool {
        *self == Self::LEGACY
    }
}

impl fmt::Display for SchemeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SchemeId {
    type Err = SchemeError;

    fn from_str(name: &str) -> Result<Self, SchemeError> {
        Self::from_name(name)
    }
}

impl serde::Serialize for SchemeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for SchemeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = SchemeId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a signature scheme name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<SchemeId, E> {
                SchemeId::from_name(name).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// A scheme name that names no scheme of this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemeError {
    #[error("signature scheme {0:?} is reserved and not implemented")]
    NotImplemented(String),
    #[error("unknown signature scheme {0:?}")]
    Unknown(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_one_spelling() {
        for id in SchemeId::ALL {
            assert_eq!(SchemeId::from_name(id.name()), Ok(*id));
            assert_eq!(id.to_string().parse::<SchemeId>(), Ok(*id));
            assert!(id.name().len() <= MAX_SCHEME_NAME_LEN);
        }
        assert_eq!(SchemeId::EcdsaSecp256k1.name(), "ecdsa-secp256k1");
        for alias in [
            "ECDSA-secp256k1",
            "ecdsa",
            "ecdsa-secp256k1 ",
            "",
            "ecdsa_secp256k1",
        ] {
            assert!(
                matches!(SchemeId::from_name(alias), Err(SchemeError::Unknown(_))),
                "{alias:?} accepted"
            );
        }
    }

    #[test]
    fn reserved_names_are_refused() {
        for name in SchemeId::RESERVED {
            assert_eq!(
                SchemeId::from_name(name),
                Err(SchemeError::NotImplemented(name.to_string()))
            );
            assert!(SchemeId::ALL.iter().all(|id| id.name() != *name));
        }
    }

    #[test]
    fn a_hostile_name_is_cut_in_the_error() {
        let long = "x".repeat(10_000);
        match SchemeId::from_name(&long) {
            Err(SchemeError::Unknown(shown)) => assert_eq!(shown.len(), MAX_SCHEME_NAME_LEN),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_older_writers_left_out_is_ecdsa() {
        assert_eq!(SchemeId::LEGACY, SchemeId::EcdsaSecp256k1);
        assert_eq!(SchemeId::legacy(), SchemeId::LEGACY);
        assert!(SchemeId::EcdsaSecp256k1.is_legacy());
    }

    #[test]
    fn json_uses_the_name_and_nothing_else() {
        let json = serde_json::to_string(&SchemeId::EcdsaSecp256k1).unwrap();
        assert_eq!(json, "\"ecdsa-secp256k1\"");
        assert_eq!(
            serde_json::from_str::<SchemeId>(&json).unwrap(),
            SchemeId::EcdsaSecp256k1
        );
        for refused in [
            "\"ed25519\"",
            "\"schnorr-secp256k1-tr\"",
            "\"ecdsa\"",
            "0",
            "null",
        ] {
            assert!(
                serde_json::from_str::<SchemeId>(refused).is_err(),
                "{refused}"
            );
        }
    }
}
