//! The manifest hash: SHA-256 of the exact manifest body bytes. It goes into the
//! `user_data` of every attestation a node produces, and clients pin it. The `manifest`
//! crate computes it; everything else only carries and compares it.

use std::fmt;

/// SHA-256 of the exact body bytes; goes into the `user_data` of every attestation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestHash(pub [u8; 32]);

impl ManifestHash {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for ManifestHash {
    fn from(bytes: [u8; 32]) -> Self {
        ManifestHash(bytes)
    }
}

/// Lower-case hex, 64 characters.
impl fmt::Display for ManifestHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ManifestHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestHash({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_lower_hex() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x0f;
        let hash = ManifestHash::from(bytes);
        let text = hash.to_string();
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("ab00"));
        assert!(text.ends_with("000f"));
        assert_eq!(format!("{hash:?}"), format!("ManifestHash({text})"));
        assert_eq!(hash.as_bytes(), &bytes);
    }
}
