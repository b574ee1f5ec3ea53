//! Operator ids: the names under which the manifest lists the operators' keys and under
//! which their approvals are counted.

crate::syntax::identifier!(
    /// An operator's name in the manifest: 1 to 64 characters out of `A-Z a-z 0-9 . _ -`.
    OperatorId,
    Operator
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IdError, MAX_ID_LEN};

    #[test]
    fn operator_ids_follow_the_rule() {
        assert!(OperatorId::new("alice").is_ok());
        assert!(OperatorId::new("x".repeat(MAX_ID_LEN)).is_ok());
        assert!(OperatorId::new("x".repeat(MAX_ID_LEN + 1)).is_err());
        let e = OperatorId::new("alice smith").unwrap_err();
        assert!(matches!(e, IdError::Operator { ref id, .. } if id == "alice smith"));
        assert_eq!(
            e.to_string(),
            "operator id \"alice smith\": only A-Z a-z 0-9 . _ - are allowed"
        );
        assert_eq!(format!("{:?}", OperatorId::new("bob").unwrap()), "\"bob\"");
    }
}
