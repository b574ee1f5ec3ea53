//! What a signing request asks the nodes to sign.

use std::fmt;

use chains::keccak256;

/// The data a signature covers.
#[derive(Clone, PartialEq, Eq)]
pub enum ToSign {
    /// A 32-byte digest computed by the requester; its preimage is unknown to the nodes.
    Digest([u8; 32]),
    /// A message that the nodes hash with Keccak-256 themselves, as Ethereum does.
    Keccak256Message(Vec<u8>),
}

impl ToSign {
    /// The 32 bytes ECDSA signs (before reduction modulo the group order).
    pub fn prehash(&self) -> [u8; 32] {
        match self {
            ToSign::Digest(digest) => *digest,
            ToSign::Keccak256Message(message) => keccak256(message),
        }
    }
}

impl fmt::Debug for ToSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToSign::Digest(d) => write!(f, "Digest({})", hex::encode(d)),
            ToSign::Keccak256Message(m) => write!(f, "Keccak256Message({} bytes)", m.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_hashed_and_never_printed() {
        let message = ToSign::Keccak256Message(b"secret plan".to_vec());
        assert_eq!(message.prehash(), keccak256(b"secret plan"));
        assert_eq!(format!("{message:?}"), "Keccak256Message(11 bytes)");
        let digest = ToSign::Digest([0xab; 32]);
        assert_eq!(digest.prehash(), [0xab; 32]);
        assert_eq!(
            format!("{digest:?}"),
            format!("Digest({})", "ab".repeat(32))
        );
    }
}
