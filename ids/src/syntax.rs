//! The one rule every identifier follows: node ids, key ids and operator ids are 1 to 64
//! characters out of `A-Z a-z 0-9 . _ -`. Identifiers end up in file names, log lines,
//! the parent's `CONNECT` header and the manifest, so nothing else is allowed: no
//! separators, no spaces, no control characters.

/// Longest identifier, in bytes (all allowed characters are ASCII).
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyntaxError {
    #[error("empty")]
    Empty,
    #[error("longer than 64 characters")]
    TooLong,
    #[error("only A-Z a-z 0-9 . _ - are allowed")]
    Alphabet,
}

impl SyntaxError {
    /// The reason as a static text, for errors that carry one.
    pub fn reason(self) -> &'static str {
        match self {
            SyntaxError::Empty => "empty",
            SyntaxError::TooLong => "longer than 64 characters",
            SyntaxError::Alphabet => "only A-Z a-z 0-9 . _ - are allowed",
        }
    }
}

/// Checks `id` against the identifier rule. The length is checked before the characters,
/// so a long input is refused without being scanned.
pub fn check(id: &str) -> Result<(), SyntaxError> {
    if id.is_empty() {
        return Err(SyntaxError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(SyntaxError::TooLong);
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(SyntaxError::Alphabet);
    }
    Ok(())
}

/// Which kind of identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error("node id {id:?}: {reason}")]
    Node { id: String, reason: SyntaxError },
    #[error("key id {id:?}: {reason}")]
    Key { id: String, reason: SyntaxError },
    #[error("operator id {id:?}: {reason}")]
    Operator { id: String, reason: SyntaxError },
}

impl IdError {
    /// What the identifier breaks of the rule.
    pub fn reason(&self) -> SyntaxError {
        match self {
            IdError::Node { reason, .. }
            | IdError::Key { reason, .. }
            | IdError::Operator { reason, .. } => *reason,
        }
    }
}

/// Defines a validated string identifier: construction only through the rule, `Display`
/// as the bare id, `Debug` as the quoted id, serde as a string that is checked again.
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $variant:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Result<Self, $crate::IdError> {
                let id = id.into();
                match $crate::syntax::check(&id) {
                    Ok(()) => Ok(Self(id)),
                    Err(reason) => Err($crate::IdError::$variant { id, reason }),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::IdError;

            fn try_from(id: String) -> Result<Self, $crate::IdError> {
                Self::new(id)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::IdError;

            fn from_str(id: &str) -> Result<Self, $crate::IdError> {
                Self::new(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use identifier;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for ok in [
            "node-1",
            "a",
            "A.b_c-9",
            "node-1.eu_west",
            &"x".repeat(MAX_ID_LEN),
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check(""), Err(SyntaxError::Empty));
        assert_eq!(
            check(&"x".repeat(MAX_ID_LEN + 1)),
            Err(SyntaxError::TooLong)
        );
        for bad in ["a b", "../x", "a/b", "é", "a\n", "a\0", "a:b", "a\\b"] {
            assert_eq!(check(bad), Err(SyntaxError::Alphabet), "{bad:?}");
        }
        // Length counts bytes: 32 two-byte characters are refused for the alphabet, 33 for
        // the length, before anything scans them.
        assert_eq!(check(&"é".repeat(32)), Err(SyntaxError::Alphabet));
        assert_eq!(check(&"é".repeat(33)), Err(SyntaxError::TooLong));
    }

    #[test]
    fn reasons_read_as_before() {
        for e in [
            SyntaxError::Empty,
            SyntaxError::TooLong,
            SyntaxError::Alphabet,
        ] {
            assert_eq!(e.to_string(), e.reason());
        }
        let e = IdError::Key {
            id: "a b".into(),
            reason: SyntaxError::Alphabet,
        };
        assert_eq!(
            e.to_string(),
            "key id \"a b\": only A-Z a-z 0-9 . _ - are allowed"
        );
        assert_eq!(e.reason(), SyntaxError::Alphabet);
    }
}
