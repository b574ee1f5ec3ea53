//! Operators' signatures on commands they send a node (create a key, sign), as opposed to
//! their approval of a manifest: a separate signing context, so neither kind of signature
//! can be taken for the other, and bound to one client-port connection by its TLS exporter
//! value, so a command cannot be replayed on another connection.

use crate::key::OperatorKey;
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};

/// Prefix of every signed command message.
pub const COMMAND_CONTEXT: &[u8] = b"tee-custody operator command v1\0";

/// The bytes an operator signs: context, the connection's exporter value, the command.
pub fn command_message(exporter: &[u8; 32], command: &[u8]) -> Vec<u8> {
    [COMMAND_CONTEXT, exporter.as_slice(), command].concat()
}

impl OperatorKey {
    /// Signs `command` for the client-port connection whose exporter value is `exporter`.
    pub fn sign_command(&self, exporter: &[u8; 32], command: &[u8]) -> [u8; 64] {
        crate::envelope::to_array(self.sign_raw(&command_message(exporter, command)).as_ref())
    }
}

/// Whether `signature` is `public_key`'s signature of `command` on that connection.
pub fn verify_command(
    public_key: &[u8; 32],
    exporter: &[u8; 32],
    command: &[u8],
    signature: &[u8; 64],
) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&command_message(exporter, command), signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_signature_holds_for_its_key_connection_and_bytes_only() {
        let key = OperatorKey::generate().unwrap();
        let other = OperatorKey::generate().unwrap();
        let exporter = [3u8; 32];
        let command = br#"{"op":"sign"}"#;
        let signature = key.sign_command(&exporter, command);
        assert!(verify_command(
            &key.public_key(),
            &exporter,
            command,
            &signature
        ));
        assert!(!verify_command(
            &other.public_key(),
            &exporter,
            command,
            &signature
        ));
        assert!(!verify_command(
            &key.public_key(),
            &[4u8; 32],
            command,
            &signature
        ));
        assert!(!verify_command(
            &key.public_key(),
            &exporter,
            br#"{"op":"sigN"}"#,
            &signature
        ));
        // A manifest approval is not a command signature, and the reverse.
        let approval = crate::sign(command, &key);
        assert!(!verify_command(
            &key.public_key(),
            &exporter,
            command,
            approval.as_bytes()
        ));
    }
}
