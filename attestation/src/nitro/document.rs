//! Decoding a Nitro attestation document: the COSE_Sign1 envelope and its CBOR payload,
//! with the field rules of the AWS specification enforced as it is read.
//!
//! Parsing establishes shape, not trust: a [`NitroDocument`] has not been verified.
//! Only [`crate::nitro::Verifier`] turns one into a [`crate::Verified`] document.

use crate::error::ParseError;
use crate::nitro::cbor::{self, Cbor};
use coset::{CborSerializable, CoseSign1, TaggedCborSerializable, iana};
use std::collections::BTreeMap;

/// Largest encoded document accepted, checked before anything is decoded. A real
/// document is about 4.5 KiB; this allows every field at its maximum size.
pub const MAX_DOCUMENT_LEN: usize = 16 * 1024;
/// Most certificates accepted in `cabundle` (real chains have four).
pub const MAX_CABUNDLE_LEN: usize = 8;
/// Size limits of the AWS specification.
pub const MAX_CERT_LEN: usize = 1024;
pub const MAX_PUBLIC_KEY_LEN: usize = 1024;
pub const MAX_USER_DATA_LEN: usize = 512;
pub const MAX_NONCE_LEN: usize = 512;
pub const MAX_PCRS: usize = 32;
pub const MAX_MODULE_ID_LEN: usize = 256;
/// Timestamps below this (September 2001 in milliseconds) are taken to be seconds.
const MIN_TIMESTAMP_MS: u64 = 1_000_000_000_000;
/// COSE_Sign1 tag.
const COSE_SIGN1_TAG: u8 = 0xd2;
/// ES384 signatures are r || s, 48 bytes each.
const ES384_SIGNATURE_LEN: usize = 96;

/// A decoded attestation document whose fields obey the AWS rules. Not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitroDocument {
    module_id: String,
    timestamp_ms: u64,
    pcrs: BTreeMap<u8, Vec<u8>>,
    certificate: Vec<u8>,
    cabundle: Vec<Vec<u8>>,
    public_key: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    /// COSE `Sig_structure` bytes the signature covers.
    signed_bytes: Vec<u8>,
    signature: Vec<u8>,
}

impl NitroDocument {
    /// Decodes a document: untagged (as the NSM returns it) or tagged COSE_Sign1.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.len() > MAX_DOCUMENT_LEN {
            return Err(ParseError::TooLarge {
                len: bytes.len(),
                max: MAX_DOCUMENT_LEN,
            });
        }
        let first = *bytes.first().ok_or(ParseError::Empty)?;
        let sign1 = if first == COSE_SIGN1_TAG {
            CoseSign1::from_tagged_slice(bytes)
        } else if first >> 5 == 6 {
            // another CBOR tag
            return Err(ParseError::WrongTag);
        } else {
            CoseSign1::from_slice(bytes)
        }
        .map_err(|e| ParseError::Envelope(e.to_string()))?;

        match &sign1.protected.header.alg {
            Some(coset::Algorithm::Assigned(iana::Algorithm::ES384)) => {}
            other => {
                return Err(ParseError::Algorithm {
                    found: match other {
                        Some(alg) => format!("{alg:?}"),
                        None => "none".to_owned(),
                    },
                });
            }
        }
        // Nothing in the unprotected header is covered by the signature; the NSM leaves it
        // empty, and so must anyone else, so that one signed document has one encoding.
        if !sign1.unprotected.is_empty() {
            return Err(ParseError::UnprotectedHeader);
        }
        // RFC 9052: a recipient must refuse critical header parameters it does not
        // process, and this verifier processes none beyond the algorithm.
        if !sign1.protected.header.crit.is_empty() {
            return Err(ParseError::CriticalHeader);
        }
        if sign1.signature.len() != ES384_SIGNATURE_LEN {
            return Err(ParseError::SignatureLength {
                len: sign1.signature.len(),
            });
        }
        let payload = sign1.payload.as_deref().ok_or(ParseError::MissingPayload)?;
        let fields = Fields::decode(payload)?;
        let signed_bytes = sign1.tbs_data(&[]);
        Ok(NitroDocument {
            module_id: fields.module_id,
            timestamp_ms: fields.timestamp_ms,
            pcrs: fields.pcrs,
            certificate: fields.certificate,
            cabundle: fields.cabundle,
            public_key: fields.public_key,
            user_data: fields.user_data,
            nonce: fields.nonce,
            signed_bytes,
            signature: sign1.signature,
        })
    }

    pub fn module_id(&self) -> &str {
        &self.module_id
    }
    /// Milliseconds since the Unix epoch, as the NSM reports them.
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }
    /// The digest algorithm of the PCRs; the only one accepted is SHA-384.
    pub fn digest(&self) -> &'static str {
        "SHA384"
    }
    pub fn pcrs(&self) -> &BTreeMap<u8, Vec<u8>> {
        &self.pcrs
    }
    pub fn pcr(&self, index: u8) -> Option<&[u8]> {
        self.pcrs.get(&index).map(Vec::as_slice)
    }
    /// DER of the leaf certificate that signed the document.
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }
    /// DER certificates from the root (`cabundle[0]`) down to the leaf's issuer.
    pub fn cabundle(&self) -> &[Vec<u8>] {
        &self.cabundle
    }
    pub fn public_key(&self) -> Option<&[u8]> {
        self.public_key.as_deref()
    }
    pub fn user_data(&self) -> Option<&[u8]> {
        self.user_data.as_deref()
    }
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }
    /// True when PCR0, PCR1 and PCR2 are all present and all zero: the enclave runs in
    /// debug mode, where the parent can read its memory.
    pub fn is_debug_mode(&self) -> bool {
        (0u8..3).all(|i| {
            self.pcr(i)
                .is_some_and(|v| !v.is_empty() && v.iter().all(|b| *b == 0))
        })
    }
    pub(crate) fn signed_bytes(&self) -> &[u8] {
        &self.signed_bytes
    }
    pub(crate) fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// The payload fields, validated.
struct Fields {
    module_id: String,
    timestamp_ms: u64,
    pcrs: BTreeMap<u8, Vec<u8>>,
    certificate: Vec<u8>,
    cabundle: Vec<Vec<u8>>,
    public_key: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
}

const FIELD_NAMES: [&str; 9] = [
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
    "public_key",
    "user_data",
    "nonce",
];

impl Fields {
    fn decode(payload: &[u8]) -> Result<Self, ParseError> {
        let root = cbor::from_slice(payload).map_err(|e| ParseError::PayloadCbor(e.to_string()))?;
        let Cbor::Map(entries) = root else {
            return Err(ParseError::PayloadNotMap);
        };
        let mut slots: [Option<Cbor>; 9] = Default::default();
        for (key, value) in entries {
            let Cbor::Text(name) = key else {
                return Err(ParseError::NonTextKey);
            };
            let pos = FIELD_NAMES
                .iter()
                .position(|known| *known == name)
                .ok_or_else(|| ParseError::UnknownField(shorten(&name)))?;
            let slot = slots
                .get_mut(pos)
                .ok_or_else(|| ParseError::UnknownField(shorten(&name)))?;
            if slot.is_some() {
                return Err(ParseError::DuplicateField(name));
            }
            *slot = Some(value);
        }
        let [
            module_id,
            digest,
            timestamp,
            pcrs,
            certificate,
            cabundle,
            public_key,
            user_data,
            nonce,
        ] = slots;

        let module_id = match required("module_id", module_id)? {
            Cbor::Text(s) => s,
            other => return Err(wrong_type("module_id", "a text string", &other)),
        };
        check_len("module_id", module_id.len(), 1, MAX_MODULE_ID_LEN)?;

        match required("digest", digest)? {
            Cbor::Text(s) if s == "SHA384" => {}
            Cbor::Text(s) => return Err(ParseError::Digest(s)),
            other => return Err(wrong_type("digest", "a text string", &other)),
        }

        let timestamp_ms = match required("timestamp", timestamp)? {
            Cbor::Int(t) => u64::try_from(t).map_err(|_| ParseError::FieldType {
                field: "timestamp",
                expected: "an unsigned 64-bit integer",
                found: "an integer out of range",
            })?,
            other => return Err(wrong_type("timestamp", "an unsigned integer", &other)),
        };
        if timestamp_ms < MIN_TIMESTAMP_MS {
            return Err(ParseError::TimestampNotMillis(timestamp_ms));
        }

        let pcrs = decode_pcrs(required("pcrs", pcrs)?)?;

        let certificate = bytes("certificate", required("certificate", certificate)?)?;
        check_len("certificate", certificate.len(), 1, MAX_CERT_LEN)?;

        let cabundle = match required("cabundle", cabundle)? {
            Cbor::Array(items) => items,
            other => return Err(wrong_type("cabundle", "an array", &other)),
        };
        check_len("cabundle", cabundle.len(), 1, MAX_CABUNDLE_LEN)?;
        let cabundle = cabundle
            .into_iter()
            .map(|item| {
                let der = bytes("cabundle", item)?;
                check_len("cabundle entry", der.len(), 1, MAX_CERT_LEN)?;
                Ok(der)
            })
            .collect::<Result<Vec<_>, ParseError>>()?;

        // Real NSM output encodes "no public key" as an empty byte string as well as null:
        // both mean that no key is bound. A key that is present is 1..=1024 bytes.
        let public_key = match public_key {
            Some(Cbor::Bytes(b)) if b.is_empty() => None,
            other => optional_bytes("public_key", other, 1, MAX_PUBLIC_KEY_LEN)?,
        };
        let user_data = optional_bytes("user_data", user_data, 0, MAX_USER_DATA_LEN)?;
        let nonce = optional_bytes("nonce", nonce, 0, MAX_NONCE_LEN)?;

        Ok(Fields {
            module_id,
            timestamp_ms,
            pcrs,
            certificate,
            cabundle,
            public_key,
            user_data,
            nonce,
        })
    }
}

/// Field names from the wire appear in errors: keep them short (they are also printed
/// escaped, as `{:?}`, so control characters cannot reach a terminal raw).
fn shorten(name: &str) -> String {
    const MAX_CHARS: usize = 64;
    if name.chars().count() <= MAX_CHARS {
        return name.to_owned();
    }
    let mut short: String = name.chars().take(MAX_CHARS).collect();
    short.push('…');
    short
}

fn required(field: &'static str, value: Option<Cbor>) -> Result<Cbor, ParseError> {
    match value {
        None => Err(ParseError::MissingField(field)),
        Some(Cbor::Null) => Err(ParseError::NullField(field)),
        Some(v) => Ok(v),
    }
}

fn wrong_type(field: &'static str, expected: &'static str, found: &Cbor) -> ParseError {
    ParseError::FieldType {
        field,
        expected,
        found: found.kind(),
    }
}

fn bytes(field: &'static str, value: Cbor) -> Result<Vec<u8>, ParseError> {
    match value {
        Cbor::Bytes(b) => Ok(b),
        other => Err(wrong_type(field, "a byte string", &other)),
    }
}

fn optional_bytes(
    field: &'static str,
    value: Option<Cbor>,
    min: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, ParseError> {
    match value {
        None | Some(Cbor::Null) => Ok(None),
        Some(v) => {
            let b = bytes(field, v)?;
            check_len(field, b.len(), min, max)?;
            Ok(Some(b))
        }
    }
}

fn check_len(field: &'static str, len: usize, min: usize, max: usize) -> Result<(), ParseError> {
    if len < min || len > max {
        return Err(ParseError::FieldLength {
            field,
            len,
            min,
            max,
        });
    }
    Ok(())
}

fn decode_pcrs(value: Cbor) -> Result<BTreeMap<u8, Vec<u8>>, ParseError> {
    let Cbor::Map(entries) = value else {
        return Err(wrong_type("pcrs", "a map", &value));
    };
    check_len("pcrs", entries.len(), 1, MAX_PCRS)?;
    let mut pcrs = BTreeMap::new();
    for (key, value) in entries {
        let Cbor::Int(raw_index) = key else {
            return Err(wrong_type("pcrs", "a map with integer keys", &key));
        };
        let index = u8::try_from(raw_index)
            .ok()
            .filter(|i| usize::from(*i) < MAX_PCRS)
            .ok_or(ParseError::PcrIndex(raw_index))?;
        let value = bytes("pcrs", value)?;
        if !matches!(value.len(), 32 | 48 | 64) {
            return Err(ParseError::PcrLength {
                index,
                len: value.len(),
            });
        }
        if pcrs.insert(index, value).is_some() {
            return Err(ParseError::DuplicatePcr(index));
        }
    }
    Ok(pcrs)
}
