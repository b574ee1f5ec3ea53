//! Session ids: every participant derives the id from the request it verified itself, so a
//! message can only join the execution that the request started.

use std::fmt;

use sha2::{Digest, Sha256};

/// The protocols a session can run; each has its own domain-separation tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    AuxInfo,
    Keygen,
    Presign,
    Sign,
    /// Signing from a presignature: one round of partial signatures.
    SignPresigned,
    /// Recording a spend at every party of a key: no protocol messages, one outcome each.
    Record,
}

impl Protocol {
    fn domain_tag(self) -> &'static [u8] {
        match self {
            Protocol::AuxInfo => b"tee-custody/mpc/v1/aux-info",
            Protocol::Keygen => b"tee-custody/mpc/v1/keygen",
            Protocol::Presign => b"tee-custody/mpc/v1/presign",
            Protocol::Sign => b"tee-custody/mpc/v1/sign",
            Protocol::SignPresigned => b"tee-custody/mpc/v1/sign-presigned",
            Protocol::Record => b"tee-custody/mpc/v1/record",
        }
    }
}

/// `SHA-256(len(tag) || tag || canonical request bytes)`, with a distinct tag per [`Protocol`].
///
/// The library's execution id is this value, so messages of one execution cannot be replayed
/// into another.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// `canonical_request` must be the request's canonical encoding, identical at every
    /// participant (for example the signed request bytes each node verified).
    pub fn derive(protocol: Protocol, canonical_request: &[u8]) -> Self {
        let tag = protocol.domain_tag();
        let mut hash = Sha256::new();
        hash.update([u8::try_from(tag.len()).unwrap_or(u8::MAX)]);
        hash.update(tag);
        hash.update(canonical_request);
        Self(hash.finalize().into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_requests_give_distinct_ids() {
        let request = b"request";
        let all = [
            Protocol::AuxInfo,
            Protocol::Keygen,
            Protocol::Presign,
            Protocol::Sign,
            Protocol::SignPresigned,
        ];
        let ids: std::collections::BTreeSet<_> =
            all.iter().map(|p| SessionId::derive(*p, request)).collect();
        assert_eq!(ids.len(), all.len());
        assert_eq!(
            SessionId::derive(Protocol::Sign, request),
            SessionId::derive(Protocol::Sign, request)
        );
        assert_ne!(
            SessionId::derive(Protocol::Sign, b"a"),
            SessionId::derive(Protocol::Sign, b"b")
        );
        // "sign" is a prefix of "sign-presigned": the length prefix keeps them apart.
        assert_ne!(
            SessionId::derive(Protocol::Sign, b"-presigned"),
            SessionId::derive(Protocol::SignPresigned, b"")
        );
    }
}
