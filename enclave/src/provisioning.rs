//! Getting a node's data key back after a restart, without any party outside the
//! enclaves ever seeing it.
//!
//! - When a node first creates its data key it sends it to each peer over an attested
//!   channel (`EscrowPut`); each peer keeps it sealed under its own data key.
//! - A restarted node asks each peer (`ReleaseRequest`) with a fresh attestation document
//!   bound to that channel (nonce = the channel's exporter value) whose public key is a
//!   one-time HPKE key. A peer that holds the escrow and can open it answers `Released`:
//!   the key encrypted to that HPKE key. A peer that holds none says `NotHeld`; one that
//!   holds one but cannot open it (it is waiting for its own key) says `Unavailable`.
//! - The node's provisioning rules (`crate::core::provisioning`) turn the answers into
//!   recover, create, or keep waiting. A node never creates a new key over existing state,
//!   and never while a peer might hold its escrow.
//!
//! The messages, and those of threshold sessions that travel the same channels, are
//! [`protocol::peer`]; this module holds what the rules compare answers by.

use std::fmt;

pub use protocol::peer::{
    ENC_LEN, KEY_LEN, MAX_MESSAGE_LEN, MessageError, PeerMessage, release_info,
};
pub(crate) use protocol::printable;

/// A one-way digest of a released data key, so that the decision can tell keys apart
/// without holding them. Never logged.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyFingerprint([u8; 32]);

impl KeyFingerprint {
    /// SHA-256 over a domain label and the key.
    pub fn of(key: &[u8; KEY_LEN]) -> Self {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"tee-custody data key fingerprint v1\0");
        hasher.update(key);
        KeyFingerprint(hasher.finalize().into())
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyFingerprint(..)")
    }
}

/// What one peer said when asked for this node's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAnswer {
    /// It released a key (decrypted by the caller, not yet known to be the right one).
    Released(KeyFingerprint),
    NotHeld,
    Unavailable(String),
    /// No attested channel could be established, or it failed.
    Unreachable(String),
    Refused(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> KeyFingerprint {
        KeyFingerprint::of(&[byte; KEY_LEN])
    }

    #[test]
    fn fingerprints_tell_keys_apart_and_do_not_print_them() {
        assert_eq!(key(1), key(1));
        assert_ne!(key(1), key(2));
        assert_eq!(format!("{:?}", key(1)), "KeyFingerprint(..)");
    }
}
