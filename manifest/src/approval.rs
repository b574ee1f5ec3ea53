//! Operators' approvals of a request (a signing request, a key to create), as opposed to
//! their approval of a manifest or their signature on one connection's command: a
//! separate signing context, so none of the three can be taken for another. An approval
//! signs the request's 32-byte id, which is a hash of the request's exact bytes, and
//! travels with the request to every node that checks it: it is bound to no connection.

use crate::key::OperatorKey;
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};

/// Prefix of every approval message.
pub const APPROVAL_CONTEXT: &[u8] = b"tee-custody request approval v1\0";

/// The bytes an operator signs to approve the request with id `request_id`.
pub fn approval_message(request_id: &[u8; 32]) -> Vec<u8> {
    [APPROVAL_CONTEXT, request_id.as_slice()].concat()
}

impl OperatorKey {
    /// Approves the request whose id is `request_id`.
    pub fn approve_request(&self, request_id: &[u8; 32]) -> [u8; 64] {
        crate::envelope::to_array(self.sign_raw(&approval_message(request_id)).as_ref())
    }
}

/// Whether `signature` is `public_key`'s approval of the request with id `request_id`.
pub fn verify_approval(public_key: &[u8; 32], request_id: &[u8; 32], signature: &[u8; 64]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&approval_message(request_id), signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_holds_for_its_key_and_request_only() {
        let key = OperatorKey::generate().unwrap();
        let other = OperatorKey::generate().unwrap();
        let id = [7u8; 32];
        let approval = key.approve_request(&id);
        assert!(verify_approval(&key.public_key(), &id, &approval));
        assert!(!verify_approval(&other.public_key(), &id, &approval));
        assert!(!verify_approval(&key.public_key(), &[8u8; 32], &approval));
        // Neither a command signature nor a manifest approval of the same bytes passes.
        let command = key.sign_command(&[0u8; 32], &id);
        assert!(!verify_approval(&key.public_key(), &id, &command));
        let manifest = crate::sign(&id, &key);
        assert!(!verify_approval(
            &key.public_key(),
            &id,
            manifest.as_bytes()
        ));
    }
}
