//! Key ids: a key's name as the operators chose it, or as the node generated it.

crate::syntax::identifier!(
    /// A key's name as the operators chose it: 1 to 64 characters out of `A-Z a-z 0-9 . _ -`.
    KeyId,
    Key
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IdError, MAX_ID_LEN, SyntaxError};

    #[test]
    fn key_ids_follow_the_rule() {
        assert_eq!(KeyId::new("treasury-1").unwrap().as_str(), "treasury-1");
        assert!(KeyId::new("x".repeat(MAX_ID_LEN)).is_ok());
        assert_eq!(
            KeyId::new("x".repeat(MAX_ID_LEN + 1)).unwrap_err().reason(),
            SyntaxError::TooLong
        );
        assert!(matches!(
            KeyId::new("a/b"),
            Err(IdError::Key {
                reason: SyntaxError::Alphabet,
                ..
            })
        ));
    }

    #[test]
    fn serde_checks_the_rule_again() {
        let id = KeyId::new("k.1").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"k.1\"");
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<KeyId>("\"../etc\"").is_err());
        assert!(serde_json::from_str::<KeyId>("\"\"").is_err());
    }
}
