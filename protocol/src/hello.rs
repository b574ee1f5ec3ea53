//! The hello each side of an attested channel sends right after the TLS handshake: who it
//! claims to be and the evidence that proves it.
//!
//! `[1][id_len][node id][evidence]`, the evidence (for Nitro, an attestation document)
//! binding as nonce the connection's TLS exporter value, as public key the DER
//! SubjectPublicKeyInfo of the sender's TLS certificate, and as user data the SHA-256 of
//! the sender's manifest. The checks of the evidence are the channel's; this is only the
//! encoding.

const VERSION: u8 = 1;
/// Largest hello accepted: version, id length, id, evidence.
pub const MAX_HELLO_LEN: usize = 2 + ids::MAX_ID_LEN + attestation::MAX_EVIDENCE_LEN;

/// Why bytes are not a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloError {
    #[error("node id too long")]
    IdTooLong,
    #[error("hello too large")]
    TooLarge,
    #[error("hello too short")]
    TooShort,
    #[error("unsupported hello version")]
    Version,
    #[error("node id is not UTF-8")]
    IdNotUtf8,
    #[error("invalid node id")]
    InvalidId,
}

impl HelloError {
    /// The reason as a static text, for errors that carry one.
    pub fn reason(self) -> &'static str {
        match self {
            HelloError::IdTooLong => "node id too long",
            HelloError::TooLarge => "hello too large",
            HelloError::TooShort => "hello too short",
            HelloError::Version => "unsupported hello version",
            HelloError::IdNotUtf8 => "node id is not UTF-8",
            HelloError::InvalidId => "invalid node id",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub node_id: String,
    pub document: Vec<u8>,
}

impl Hello {
    pub fn encode(&self) -> Result<Vec<u8>, HelloError> {
        let id_len = u8::try_from(self.node_id.len()).map_err(|_| HelloError::IdTooLong)?;
        let mut out = Vec::with_capacity(2 + self.node_id.len() + self.document.len());
        out.push(VERSION);
        out.push(id_len);
        out.extend_from_slice(self.node_id.as_bytes());
        out.extend_from_slice(&self.document);
        Ok(out)
    }

    /// Decodes a hello, its length checked first and its node id by the identifier rule.
    pub fn decode(bytes: &[u8]) -> Result<Self, HelloError> {
        if bytes.len() > MAX_HELLO_LEN {
            return Err(HelloError::TooLarge);
        }
        let [version, id_len, rest @ ..] = bytes else {
            return Err(HelloError::TooShort);
        };
        if *version != VERSION {
            return Err(HelloError::Version);
        }
        let id_len = usize::from(*id_len);
        if rest.len() < id_len {
            return Err(HelloError::TooShort);
        }
        let (id, document) = rest.split_at(id_len);
        let node_id = std::str::from_utf8(id).map_err(|_| HelloError::IdNotUtf8)?;
        ids::check(node_id).map_err(|_| HelloError::InvalidId)?;
        Ok(Hello {
            node_id: node_id.to_owned(),
            document: document.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: &str, document_len: usize) -> Hello {
        Hello {
            node_id: id.to_owned(),
            document: vec![0x84; document_len],
        }
    }

    #[test]
    fn round_trips_up_to_the_limit() {
        let largest = hello(&"n".repeat(ids::MAX_ID_LEN), attestation::MAX_EVIDENCE_LEN);
        let bytes = largest.encode().unwrap();
        assert_eq!(bytes.len(), MAX_HELLO_LEN);
        assert_eq!(Hello::decode(&bytes).unwrap(), largest);
        let mut over = bytes;
        over.push(0);
        assert_eq!(Hello::decode(&over), Err(HelloError::TooLarge));
        // An empty document is the channel's to refuse, not the encoding's.
        assert_eq!(
            Hello::decode(&hello("a", 0).encode().unwrap()).unwrap(),
            hello("a", 0)
        );
    }

    #[test]
    fn hostile_hellos_are_refused() {
        assert_eq!(Hello::decode(&[]), Err(HelloError::TooShort));
        assert_eq!(Hello::decode(&[1]), Err(HelloError::TooShort));
        assert_eq!(Hello::decode(&[2, 1, b'a']), Err(HelloError::Version));
        // An id length past the end.
        assert_eq!(Hello::decode(&[1, 5, b'a']), Err(HelloError::TooShort));
        assert_eq!(Hello::decode(&[1, 1, 0xff]), Err(HelloError::IdNotUtf8));
        for bad in ["", "a b", "../x", &"x".repeat(ids::MAX_ID_LEN + 1)] {
            let bytes = hello(bad, 10).encode().unwrap();
            assert_eq!(Hello::decode(&bytes), Err(HelloError::InvalidId), "{bad:?}");
        }
        assert_eq!(
            hello(&"x".repeat(256), 0).encode(),
            Err(HelloError::IdTooLong)
        );
    }

    #[test]
    fn reasons_read_as_their_display() {
        for e in [
            HelloError::IdTooLong,
            HelloError::TooLarge,
            HelloError::TooShort,
            HelloError::Version,
            HelloError::IdNotUtf8,
            HelloError::InvalidId,
        ] {
            assert_eq!(e.to_string(), e.reason());
        }
    }
}
