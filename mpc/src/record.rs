//! The stored form of a key share, whatever its scheme: a versioned header naming the scheme
//! and the share's epoch, then the scheme's own encoding of the share.
//!
//! ```text
//! version 2 (written now)
//!   version      u8 = 2
//!   scheme       u8 length (1 to MAX_SCHEME_NAME_LEN), then the scheme's name in ASCII
//!   epoch        u64 BE
//!   body         the scheme's share, in CBOR
//! version 1 (written before schemes and epochs existed, still read)
//!   version      u8 = 1
//!   body         an ECDSA share in CBOR; read as scheme ecdsa-secp256k1, epoch 0
//! ```
//!
//! The header is read before the body, so that a node can tell which scheme's decoder a record
//! needs without decoding it, and so that a record of one scheme is never decoded as another.
//! Every record is checked against [`MAX_SEALED_LEN`] before anything else, and the body's
//! decoder refuses trailing bytes. The records come from the node's own sealed storage, which
//! authenticated them; the checks are there because the format must still never panic or
//! allocate beyond its input.
//!
//! Encoding writes into a buffer that wipes every allocation it leaves behind, since a record
//! holds a secret share in the clear.

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::keys::KeyError;
use crate::scheme::{Epoch, MAX_SCHEME_NAME_LEN, SchemeId};

/// Largest sealed key share or auxiliary info accepted back from storage.
pub const MAX_SEALED_LEN: usize = 1024 * 1024;
/// The version every share record is written in.
pub const SHARE_RECORD_VERSION: u8 = 2;
/// The version written before records named their scheme and epoch.
pub const LEGACY_SHARE_RECORD_VERSION: u8 = 1;

/// A share record whose header has been read and whose body has not been decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareRecord<'a> {
    scheme: SchemeId,
    epoch: Epoch,
    body: &'a [u8],
}

impl<'a> ShareRecord<'a> {
    /// Reads the header of a stored share record, of either version.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, KeyError> {
        if bytes.len() > MAX_SEALED_LEN {
            return Err(KeyError::SealedTooLarge { len: bytes.len() });
        }
        let truncated = KeyError::SealedTruncated { len: bytes.len() };
        let Some((version, rest)) = bytes.split_first() else {
            return Err(KeyError::SealedVersion(None));
        };
        match *version {
            LEGACY_SHARE_RECORD_VERSION => Ok(Self {
                scheme: SchemeId::EcdsaSecp256k1,
                epoch: Epoch::INITIAL,
                body: rest,
            }),
            SHARE_RECORD_VERSION => {
                let (len, rest) = rest.split_first().ok_or(truncated.clone())?;
                let len = usize::from(*len);
                if len == 0 || len > MAX_SCHEME_NAME_LEN {
                    return Err(KeyError::SealedSchemeName { len });
                }
                if rest.len() < len {
                    return Err(truncated);
                }
                let (name, rest) = rest.split_at(len);
                let name =
                    std::str::from_utf8(name).map_err(|_| KeyError::SealedSchemeName { len })?;
                let scheme = SchemeId::from_name(name)?;
                let (epoch, body) = rest.split_first_chunk::<8>().ok_or(truncated)?;
                Ok(Self {
                    scheme,
                    epoch: Epoch::new(u64::from_be_bytes(*epoch)),
                    body,
                })
            }
            other => Err(KeyError::SealedVersion(Some(other))),
        }
    }

    pub fn scheme(&self) -> SchemeId {
        self.scheme
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Decodes the body as a share of `scheme`; a record of another scheme is refused.
    pub(crate) fn body<T: DeserializeOwned>(&self, scheme: SchemeId) -> Result<T, KeyError> {
        if self.scheme != scheme {
            return Err(KeyError::WrongScheme {
                expected: scheme,
                found: self.scheme,
            });
        }
        crate::payload::decode(self.body).map_err(KeyError::SealedEncoding)
    }
}

/// The current version of a share record for `body`, a share of `scheme` at `epoch`.
pub(crate) fn seal_share<T: Serialize>(
    scheme: SchemeId,
    epoch: Epoch,
    body: &T,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let name = scheme.name().as_bytes();
    let len = u8::try_from(name.len())
        .ok()
        .filter(|len| usize::from(*len) <= MAX_SCHEME_NAME_LEN)
        .ok_or(KeyError::SealedSchemeName { len: name.len() })?;
    let mut out = SecretBuffer(Zeroizing::new(Vec::with_capacity(64 * 1024)));
    out.0.push(SHARE_RECORD_VERSION);
    out.0.push(len);
    out.0.extend_from_slice(name);
    out.0.extend_from_slice(&epoch.get().to_be_bytes());
    ciborium::into_writer(body, &mut out).map_err(|e| KeyError::SealedEncoding(e.to_string()))?;
    Ok(out.0)
}

/// A record with a one-byte version and a CBOR body, the format of auxiliary info.
pub(crate) fn sealed_encode<T: Serialize>(
    version: u8,
    value: &T,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut out = SecretBuffer(Zeroizing::new(Vec::with_capacity(64 * 1024)));
    out.0.push(version);
    ciborium::into_writer(value, &mut out).map_err(|e| KeyError::SealedEncoding(e.to_string()))?;
    Ok(out.0)
}

pub(crate) fn sealed_decode<T: DeserializeOwned>(version: u8, bytes: &[u8]) -> Result<T, KeyError> {
    if bytes.len() > MAX_SEALED_LEN {
        return Err(KeyError::SealedTooLarge { len: bytes.len() });
    }
    match bytes.split_first() {
        Some((v, body)) if *v == version => {
            crate::payload::decode(body).map_err(KeyError::SealedEncoding)
        }
        Some((v, _)) => Err(KeyError::SealedVersion(Some(*v))),
        None => Err(KeyError::SealedVersion(None)),
    }
}

/// A growable buffer that wipes every allocation it leaves behind.
struct SecretBuffer(Zeroizing<Vec<u8>>);

impl std::io::Write for SecretBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let needed = self.0.len().saturating_add(bytes.len());
        if needed > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.saturating_mul(2)));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger;
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::SchemeError;

    fn v2(name: &[u8], epoch: u64, body: &[u8]) -> Vec<u8> {
        let mut out = vec![SHARE_RECORD_VERSION, name.len() as u8];
        out.extend_from_slice(name);
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn the_header_names_scheme_and_epoch() {
        let sealed = seal_share(SchemeId::EcdsaSecp256k1, Epoch::new(7), &(1u8, "body")).unwrap();
        assert_eq!(sealed.first(), Some(&SHARE_RECORD_VERSION));
        let record = ShareRecord::parse(&sealed).unwrap();
        assert_eq!(record.scheme(), SchemeId::EcdsaSecp256k1);
        assert_eq!(record.epoch(), Epoch::new(7));
        let body: (u8, String) = record.body(SchemeId::EcdsaSecp256k1).unwrap();
        assert_eq!(body, (1, "body".to_string()));

        let largest = v2(b"ecdsa-secp256k1", u64::MAX, &[0xf6]);
        assert_eq!(
            ShareRecord::parse(&largest).unwrap().epoch(),
            Epoch::new(u64::MAX)
        );
    }

    #[test]
    fn a_legacy_record_is_ecdsa_at_epoch_zero() {
        let mut legacy = vec![LEGACY_SHARE_RECORD_VERSION];
        ciborium::into_writer(&(1u8, "body"), &mut legacy).unwrap();
        let record = ShareRecord::parse(&legacy).unwrap();
        assert_eq!(record.scheme(), SchemeId::EcdsaSecp256k1);
        assert_eq!(record.epoch(), Epoch::INITIAL);
        let body: (u8, String) = record.body(SchemeId::EcdsaSecp256k1).unwrap();
        assert_eq!(body, (1, "body".to_string()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(ShareRecord::parse(&[]), Err(KeyError::SealedVersion(None)));
        assert_eq!(
            ShareRecord::parse(&[3, 0]),
            Err(KeyError::SealedVersion(Some(3)))
        );
        assert_eq!(
            ShareRecord::parse(&[0]),
            Err(KeyError::SealedVersion(Some(0)))
        );
        let whole = v2(b"ecdsa-secp256k1", 1, &[]);
        for cut in 1..whole.len() {
            assert_eq!(
                ShareRecord::parse(&whole[..cut]),
                Err(KeyError::SealedTruncated { len: cut }),
                "cut at {cut}"
            );
        }
        assert!(ShareRecord::parse(&whole).is_ok());
        assert_eq!(
            ShareRecord::parse(&v2(b"", 0, &[])),
            Err(KeyError::SealedSchemeName { len: 0 })
        );
        assert_eq!(
            ShareRecord::parse(&v2(&[0xff; 3], 0, &[])),
            Err(KeyError::SealedSchemeName { len: 3 })
        );
        assert_eq!(
            ShareRecord::parse(&v2(b"ECDSA-secp256k1", 0, &[])),
            Err(KeyError::SealedScheme(SchemeError::Unknown(
                "ECDSA-secp256k1".into()
            )))
        );
    }

    #[test]
    fn scheme_name_length_at_the_limit_and_past_it() {
        let at_limit = v2(&[b'a'; MAX_SCHEME_NAME_LEN], 0, &[]);
        assert!(matches!(
            ShareRecord::parse(&at_limit),
            Err(KeyError::SealedScheme(SchemeError::Unknown(_)))
        ));
        let over = v2(&[b'a'; MAX_SCHEME_NAME_LEN + 1], 0, &[]);
        assert_eq!(
            ShareRecord::parse(&over),
            Err(KeyError::SealedSchemeName {
                len: MAX_SCHEME_NAME_LEN + 1
            })
        );
    }

    #[test]
    fn a_reserved_scheme_is_not_read() {
        for name in SchemeId::RESERVED {
            assert_eq!(
                ShareRecord::parse(&v2(name.as_bytes(), 0, &[0xf6])),
                Err(KeyError::SealedScheme(SchemeError::NotImplemented(
                    name.to_string()
                )))
            );
        }
    }

    #[test]
    fn size_limit_is_exact() {
        let mut at_limit = v2(b"ecdsa-secp256k1", 0, &[]);
        at_limit.resize(MAX_SEALED_LEN, 0);
        let record = ShareRecord::parse(&at_limit).unwrap();
        assert!(matches!(
            record.body::<u8>(SchemeId::EcdsaSecp256k1),
            Err(KeyError::SealedEncoding(_))
        ));
        at_limit.push(0);
        assert_eq!(
            ShareRecord::parse(&at_limit),
            Err(KeyError::SealedTooLarge {
                len: MAX_SEALED_LEN + 1
            })
        );
    }

    #[test]
    fn trailing_bytes_after_the_body_are_refused() {
        let mut sealed = seal_share(SchemeId::EcdsaSecp256k1, Epoch::INITIAL, &5u8)
            .unwrap()
            .to_vec();
        sealed.push(0);
        let record = ShareRecord::parse(&sealed).unwrap();
        assert!(matches!(
            record.body::<u8>(SchemeId::EcdsaSecp256k1),
            Err(KeyError::SealedEncoding(_))
        ));
    }

    /// Every single-byte change to a header either still names an implemented scheme with
    /// some epoch, or is refused with a typed error; none panics or is read as another scheme.
    #[test]
    fn every_byte_of_the_header_is_checked() {
        let sealed = seal_share(SchemeId::EcdsaSecp256k1, Epoch::new(3), &7u8).unwrap();
        let header_len = 2 + SchemeId::EcdsaSecp256k1.name().len() + 8;
        for at in 0..header_len {
            for value in 0..=u8::MAX {
                let mut changed = sealed.to_vec();
                changed[at] = value;
                match ShareRecord::parse(&changed) {
                    Ok(record) => {
                        assert_eq!(record.scheme(), SchemeId::EcdsaSecp256k1);
                        if at != 0 {
                            assert!(at >= header_len - 8 || value == sealed[at]);
                        }
                    }
                    Err(
                        KeyError::SealedVersion(_)
                        | KeyError::SealedTruncated { .. }
                        | KeyError::SealedSchemeName { .. }
                        | KeyError::SealedScheme(_),
                    ) => {}
                    Err(other) => panic!("byte {at} = {value}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn secret_buffer_keeps_everything_written() {
        let mut buffer = SecretBuffer(Zeroizing::new(Vec::with_capacity(1)));
        for chunk in 0..100u8 {
            std::io::Write::write_all(&mut buffer, &[chunk; 7]).unwrap();
        }
        assert_eq!(buffer.0.len(), 700);
        assert!(
            buffer
                .0
                .chunks(7)
                .enumerate()
                .all(|(i, c)| c == [i as u8; 7])
        );
    }
}
