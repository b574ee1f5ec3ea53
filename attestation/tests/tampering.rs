//! Documents altered after signing, or built to break a field rule, must be refused with
//! an error that names what is wrong. Real documents are used where the fixtures are
//! present; simulated ones always.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attestation::nitro::{MAX_DOCUMENT_LEN, NitroDocument, Verifier};
#[cfg(feature = "sim")]
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
#[cfg(feature = "sim")]
use attestation::nsm::{AttestationRequest, Nsm};
use attestation::{CertProblem, CertSlot, ParseError, VerifyError};
use coset::cbor::value::Value;
use coset::{CborSerializable, CoseSign1, TaggedCborSerializable};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A signed document together with a verifier that trusts its root and a time inside
/// its validity.
struct Case {
    name: String,
    bytes: Vec<u8>,
    verifier: Verifier,
    at: SystemTime,
}

#[cfg(feature = "sim")]
fn simulated() -> Case {
    let now = SystemTime::now();
    let ca = SimCa::generate(now).unwrap();
    let nsm = SimNsm::new(&ca, &SimMeasurements::of_image(b"image"), now).unwrap();
    let bytes = nsm
        .attest(&AttestationRequest {
            user_data: Some(b"user".to_vec()),
            nonce: Some(vec![9; 32]),
            public_key: Some(vec![4; 65]),
        })
        .unwrap();
    Case {
        name: "simulated".into(),
        bytes,
        verifier: Verifier::aws_nitro()
            .trust_simulated_root(ca.root_der(), now)
            .unwrap(),
        at: now,
    }
}

fn cases() -> Vec<Case> {
    #[allow(unused_mut)]
    let mut cases = Vec::new();
    #[cfg(feature = "sim")]
    cases.push(simulated());
    if let Some(dir) = common::nitro_fixtures() {
        // One non-debug and one debug real document are enough for mutation loops.
        let fixtures = common::load_fixtures(&dir);
        for debug in [false, true] {
            if let Some(f) = fixtures
                .iter()
                .find(|f| f.expect_valid && f.is_debug() == debug)
            {
                cases.push(Case {
                    name: f.file.clone(),
                    bytes: f.bytes.clone(),
                    verifier: Verifier::aws_nitro(),
                    at: f.valid_time(),
                });
            }
        }
    }
    cases
}

fn payload(bytes: &[u8]) -> Vec<(Value, Value)> {
    let sign1 = CoseSign1::from_slice(bytes).unwrap();
    let v: Value = coset::cbor::de::from_reader(sign1.payload.unwrap().as_slice()).unwrap();
    v.into_map().unwrap()
}

/// Re-wraps an edited payload with the original protected header and signature.
fn with_payload(bytes: &[u8], entries: Vec<(Value, Value)>) -> Vec<u8> {
    let mut sign1 = CoseSign1::from_slice(bytes).unwrap();
    let mut out = Vec::new();
    coset::cbor::ser::into_writer(&Value::Map(entries), &mut out).unwrap();
    sign1.payload = Some(out);
    sign1.to_vec().unwrap()
}

fn field<'a>(entries: &'a mut [(Value, Value)], name: &str) -> &'a mut Value {
    &mut entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(name))
        .unwrap()
        .1
}

#[test]
fn untouched_documents_verify_tagged_and_untagged() {
    for c in cases() {
        c.verifier.verify(&c.bytes, c.at).unwrap();
        let tagged = CoseSign1::from_slice(&c.bytes)
            .unwrap()
            .to_tagged_vec()
            .unwrap();
        assert_eq!(tagged[0], 0xd2);
        c.verifier.verify(&tagged, c.at).unwrap();
        // Any tag other than COSE_Sign1's is refused.
        let mut other = tagged.clone();
        other[0] = 0xd1;
        assert_eq!(
            NitroDocument::parse(&other).unwrap_err(),
            ParseError::WrongTag,
            "{}",
            c.name
        );
    }
}

#[test]
fn a_flipped_bit_in_the_signature_is_refused() {
    for c in cases() {
        let sign1 = CoseSign1::from_slice(&c.bytes).unwrap();
        for bit in (0..96 * 8).step_by(13) {
            let mut s = sign1.clone();
            s.signature[bit / 8] ^= 1 << (bit % 8);
            let err = c.verifier.verify(&s.to_vec().unwrap(), c.at).unwrap_err();
            assert_eq!(err, VerifyError::Signature, "{} bit {bit}", c.name);
        }
    }
}

#[test]
fn a_flipped_bit_in_the_payload_is_refused() {
    for c in cases() {
        let sign1 = CoseSign1::from_slice(&c.bytes).unwrap();
        let len = sign1.payload.as_ref().unwrap().len();
        for byte in (0..len).step_by(29) {
            let mut s = sign1.clone();
            s.payload.as_mut().unwrap()[byte] ^= 0x10;
            assert!(
                c.verifier.verify(&s.to_vec().unwrap(), c.at).is_err(),
                "{} payload byte {byte}",
                c.name
            );
        }
    }
}

#[test]
fn a_flipped_bit_in_any_certificate_is_refused_and_named() {
    for c in cases() {
        let entries = payload(&c.bytes);
        let bundle_len = {
            let mut e = entries.clone();
            field(&mut e, "cabundle").as_array().unwrap().len()
        };
        let slots = (0..bundle_len)
            .map(CertSlot::Bundle)
            .chain([CertSlot::Leaf]);
        for slot in slots {
            let der_len = {
                let mut e = entries.clone();
                cert_mut(&mut e, slot).len()
            };
            for byte in (0..der_len).step_by(23) {
                let mut e = entries.clone();
                cert_mut(&mut e, slot)[byte] ^= 0x04;
                let err = c
                    .verifier
                    .verify(&with_payload(&c.bytes, e), c.at)
                    .unwrap_err();
                let named = match &err {
                    VerifyError::UntrustedRoot { .. } => slot == CertSlot::Bundle(0),
                    VerifyError::Certificate { slot: s, .. } => {
                        // A change in a certificate can also surface as the next one
                        // failing to chain to it (its key or subject changed).
                        *s == slot || next_slot(slot, bundle_len) == Some(*s)
                    }
                    _ => false,
                };
                assert!(named, "{} {slot} byte {byte}: {err}", c.name);
            }
        }
    }
}

fn next_slot(slot: CertSlot, bundle_len: usize) -> Option<CertSlot> {
    match slot {
        CertSlot::Bundle(i) if i + 1 < bundle_len => Some(CertSlot::Bundle(i + 1)),
        CertSlot::Bundle(_) => Some(CertSlot::Leaf),
        CertSlot::Leaf => None,
        CertSlot::X5c(_) => panic!("not a Nitro slot"),
    }
}

fn cert_mut(entries: &mut [(Value, Value)], slot: CertSlot) -> &mut Vec<u8> {
    let v = match slot {
        CertSlot::Leaf => field(entries, "certificate"),
        CertSlot::Bundle(i) => &mut field(entries, "cabundle").as_array_mut().unwrap()[i],
        CertSlot::X5c(_) => panic!("not a Nitro slot"),
    };
    match v {
        Value::Bytes(b) => b,
        _ => panic!("not bytes"),
    }
}

#[test]
fn a_chain_out_of_order_is_refused() {
    for c in cases() {
        let mut e = payload(&c.bytes);
        let bundle = field(&mut e, "cabundle").as_array_mut().unwrap();
        assert!(bundle.len() >= 3, "{}: chain too short to reorder", c.name);
        bundle.swap(1, 2);
        let err = c
            .verifier
            .verify(&with_payload(&c.bytes, e), c.at)
            .unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Certificate {
                    slot: CertSlot::Bundle(1),
                    problem: CertProblem::IssuerMismatch
                }
            ),
            "{}: {err}",
            c.name
        );
    }
}

#[cfg(feature = "sim")]
#[test]
fn a_chain_under_another_root_is_refused() {
    for c in cases().into_iter().filter(|c| c.name != "simulated") {
        // Replace the root with a simulator's root of the same date, and trust that
        // root: the next certificate no longer chains to it.
        let ca = SimCa::generate(c.at).unwrap();
        let trusting = Verifier::aws_nitro()
            .trust_simulated_root(ca.root_der(), c.at)
            .unwrap();
        let mut e = payload(&c.bytes);
        field(&mut e, "cabundle").as_array_mut().unwrap()[0] = Value::Bytes(ca.root_der().to_vec());
        let forged = with_payload(&c.bytes, e);
        let err = Verifier::aws_nitro().verify(&forged, c.at).unwrap_err();
        assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");
        // Either the foreign root's path length or the broken link to cabundle[1] fails.
        let err = trusting.verify(&forged, c.at).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Certificate {
                    slot: CertSlot::Bundle(0),
                    problem: CertProblem::PathLength { limit: 1, below: 3 }
                } | VerifyError::Certificate {
                    slot: CertSlot::Bundle(1),
                    problem: CertProblem::IssuerMismatch
                }
            ),
            "{}: {err}",
            c.name
        );
    }
    // And a simulated document is refused by a verifier that trusts another root.
    let sim = simulated();
    let other = simulated();
    let err = other.verifier.verify(&sim.bytes, sim.at).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");
}

#[test]
fn expired_and_not_yet_valid_times_are_refused() {
    for c in cases() {
        let err = c
            .verifier
            .verify(&c.bytes, c.at + Duration::from_secs(4 * 3600))
            .unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Certificate {
                    problem: CertProblem::Expired { .. },
                    ..
                }
            ),
            "{}: {err}",
            c.name
        );
        let err = c
            .verifier
            .verify(&c.bytes, c.at - Duration::from_secs(3600))
            .unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Certificate {
                    problem: CertProblem::NotYetValid { .. },
                    ..
                }
            ),
            "{}: {err}",
            c.name
        );
        assert_eq!(
            c.verifier
                .verify(&c.bytes, UNIX_EPOCH - Duration::from_secs(1))
                .unwrap_err(),
            VerifyError::TimeBeforeEpoch
        );
    }
}

#[test]
fn oversize_and_trailing_bytes_are_refused() {
    for c in cases() {
        let mut trailing = c.bytes.clone();
        trailing.push(0);
        assert!(
            matches!(
                NitroDocument::parse(&trailing),
                Err(ParseError::Envelope(_))
            ),
            "{}",
            c.name
        );
    }
    let at_max = vec![0x84; MAX_DOCUMENT_LEN];
    assert!(!matches!(
        NitroDocument::parse(&at_max),
        Err(ParseError::TooLarge { .. })
    ));
    assert_eq!(
        NitroDocument::parse(&vec![0x84; MAX_DOCUMENT_LEN + 1]).unwrap_err(),
        ParseError::TooLarge {
            len: MAX_DOCUMENT_LEN + 1,
            max: MAX_DOCUMENT_LEN
        }
    );
    assert_eq!(NitroDocument::parse(&[]).unwrap_err(), ParseError::Empty);
}

/// Applies `edit` to a simulated document's payload and returns the parse error.
#[cfg(feature = "sim")]
fn parse_edited(edit: impl FnOnce(&mut Vec<(Value, Value)>)) -> Result<NitroDocument, ParseError> {
    let c = simulated();
    let mut e = payload(&c.bytes);
    edit(&mut e);
    NitroDocument::parse(&with_payload(&c.bytes, e))
}

#[cfg(feature = "sim")]
fn set(e: &mut [(Value, Value)], name: &str, v: Value) {
    *field(e, name) = v;
}

#[cfg(feature = "sim")]
#[test]
fn field_rules_of_the_specification() {
    use ParseError as P;
    let bytes = |n: usize| Value::Bytes(vec![1; n]);
    let len_err = |field, len, min, max| P::FieldLength {
        field,
        len,
        min,
        max,
    };

    // Unknown, duplicate, non-text keys.
    assert_eq!(
        parse_edited(|e| e.push((Value::Text("extra".into()), Value::Null))).unwrap_err(),
        P::UnknownField("extra".into())
    );
    assert_eq!(
        parse_edited(|e| {
            let nonce = e
                .iter()
                .find(|(k, _)| k.as_text() == Some("nonce"))
                .unwrap()
                .clone();
            e.push(nonce);
        })
        .unwrap_err(),
        P::DuplicateField("nonce".into())
    );
    assert_eq!(
        parse_edited(|e| e.push((Value::Integer(1.into()), Value::Null))).unwrap_err(),
        P::NonTextKey
    );
    // Required fields: present and non-null.
    for name in [
        "module_id",
        "digest",
        "timestamp",
        "pcrs",
        "certificate",
        "cabundle",
    ] {
        let err = parse_edited(|e| e.retain(|(k, _)| k.as_text() != Some(name))).unwrap_err();
        assert_eq!(err, P::MissingField(name));
        let err = parse_edited(|e| set(e, name, Value::Null)).unwrap_err();
        assert_eq!(err, P::NullField(name));
    }
    // Optional fields may be absent or null.
    for name in ["public_key", "user_data", "nonce"] {
        parse_edited(|e| e.retain(|(k, _)| k.as_text() != Some(name))).unwrap();
        let doc = parse_edited(|e| set(e, name, Value::Null)).unwrap();
        assert!(match name {
            "public_key" => doc.public_key().is_none(),
            "user_data" => doc.user_data().is_none(),
            _ => doc.nonce().is_none(),
        });
    }
    // Types.
    assert!(matches!(
        parse_edited(|e| set(e, "module_id", bytes(3))).unwrap_err(),
        P::FieldType {
            field: "module_id",
            ..
        }
    ));
    assert!(matches!(
        parse_edited(|e| set(e, "nonce", Value::Text("n".into()))).unwrap_err(),
        P::FieldType { field: "nonce", .. }
    ));
    assert_eq!(
        parse_edited(|e| set(e, "module_id", Value::Text(String::new()))).unwrap_err(),
        len_err("module_id", 0, 1, 256)
    );
    // Digest and timestamp.
    assert_eq!(
        parse_edited(|e| set(e, "digest", Value::Text("SHA256".into()))).unwrap_err(),
        P::Digest("SHA256".into())
    );
    assert_eq!(
        parse_edited(|e| set(e, "timestamp", Value::Integer(1_700_000_000.into()))).unwrap_err(),
        P::TimestampNotMillis(1_700_000_000)
    );
    assert!(matches!(
        parse_edited(|e| set(e, "timestamp", Value::Integer((-1).into()))).unwrap_err(),
        P::FieldType {
            field: "timestamp",
            ..
        }
    ));
    // PCRs: 1..=32 entries, index 0..=31, 32/48/64 bytes, no duplicates.
    let pcrs = |entries: Vec<(i64, usize)>| {
        Value::Map(
            entries
                .into_iter()
                .map(|(i, n)| (Value::Integer(i.into()), Value::Bytes(vec![0; n])))
                .collect(),
        )
    };
    for n in [32, 48, 64] {
        parse_edited(|e| set(e, "pcrs", pcrs(vec![(0, n)]))).unwrap();
    }
    assert_eq!(
        parse_edited(|e| set(e, "pcrs", pcrs(vec![(0, 47)]))).unwrap_err(),
        P::PcrLength { index: 0, len: 47 }
    );
    assert_eq!(
        parse_edited(|e| set(e, "pcrs", pcrs(vec![(31, 48)]))).map(|d| d.pcrs().len()),
        Ok(1)
    );
    assert_eq!(
        parse_edited(|e| set(e, "pcrs", pcrs(vec![(32, 48)]))).unwrap_err(),
        P::PcrIndex(32)
    );
    assert_eq!(
        parse_edited(|e| set(e, "pcrs", pcrs(vec![(-1, 48)]))).unwrap_err(),
        P::PcrIndex(-1)
    );
    assert_eq!(
        parse_edited(|e| set(e, "pcrs", pcrs(vec![(3, 48), (3, 48)]))).unwrap_err(),
        P::DuplicatePcr(3)
    );
    assert_eq!(
        parse_edited(|e| set(e, "pcrs", pcrs(vec![]))).unwrap_err(),
        len_err("pcrs", 0, 1, 32)
    );
    assert_eq!(
        parse_edited(|e| set(e, "pcrs", pcrs((0..33).map(|i| (i % 32, 48)).collect())))
            .unwrap_err(),
        len_err("pcrs", 33, 1, 32)
    );
    // Certificates: 1..=1024 bytes each, cabundle non-empty.
    assert_eq!(
        parse_edited(|e| set(e, "certificate", bytes(0))).unwrap_err(),
        len_err("certificate", 0, 1, 1024)
    );
    assert_eq!(
        parse_edited(|e| set(e, "certificate", bytes(1025))).unwrap_err(),
        len_err("certificate", 1025, 1, 1024)
    );
    assert_eq!(
        parse_edited(|e| set(e, "cabundle", Value::Array(vec![]))).unwrap_err(),
        len_err("cabundle", 0, 1, 8)
    );
    assert_eq!(
        parse_edited(|e| set(e, "cabundle", Value::Array(vec![bytes(1025)]))).unwrap_err(),
        len_err("cabundle entry", 1025, 1, 1024)
    );
    // A 1024-byte certificate is within the rules (it then fails to decode as X.509).
    parse_edited(|e| set(e, "certificate", bytes(1024))).unwrap();
    // public_key 1..=1024 (empty means absent), user_data and nonce 0..=512.
    parse_edited(|e| set(e, "public_key", bytes(1024))).unwrap();
    assert_eq!(
        parse_edited(|e| set(e, "public_key", bytes(1025))).unwrap_err(),
        len_err("public_key", 1025, 1, 1024)
    );
    assert_eq!(
        parse_edited(|e| set(e, "public_key", bytes(0))).map(|d| d.public_key().is_none()),
        Ok(true)
    );
    for name in ["user_data", "nonce"] {
        parse_edited(|e| set(e, name, bytes(512))).unwrap();
        parse_edited(|e| set(e, name, bytes(0))).unwrap();
        let err = parse_edited(|e| set(e, name, bytes(513))).unwrap_err();
        assert!(
            matches!(
                err,
                P::FieldLength {
                    len: 513,
                    max: 512,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[cfg(feature = "sim")]
#[test]
fn envelope_rules() {
    let c = simulated();
    let sign1 = CoseSign1::from_slice(&c.bytes).unwrap();
    // Wrong algorithm.
    let mut s = sign1.clone();
    s.protected = coset::ProtectedHeader {
        original_data: None,
        header: coset::HeaderBuilder::new()
            .algorithm(coset::iana::Algorithm::ES256)
            .build(),
    };
    assert!(matches!(
        NitroDocument::parse(&s.to_vec().unwrap()),
        Err(ParseError::Algorithm { .. })
    ));
    // Critical header parameters this verifier does not process.
    let mut s = sign1.clone();
    s.protected = coset::ProtectedHeader {
        original_data: None,
        header: coset::HeaderBuilder::new()
            .algorithm(coset::iana::Algorithm::ES384)
            .add_critical(coset::iana::HeaderParameter::ContentType)
            .build(),
    };
    assert_eq!(
        NitroDocument::parse(&s.to_vec().unwrap()).unwrap_err(),
        ParseError::CriticalHeader
    );
    // Wrong signature length.
    let mut s = sign1.clone();
    s.signature.pop();
    assert_eq!(
        NitroDocument::parse(&s.to_vec().unwrap()).unwrap_err(),
        ParseError::SignatureLength { len: 95 }
    );
    // No payload.
    let mut s = sign1.clone();
    s.payload = None;
    assert_eq!(
        NitroDocument::parse(&s.to_vec().unwrap()).unwrap_err(),
        ParseError::MissingPayload
    );
    // Payload that is not a map, or not CBOR.
    let mut s = sign1.clone();
    s.payload = Some(vec![0x01]);
    assert_eq!(
        NitroDocument::parse(&s.to_vec().unwrap()).unwrap_err(),
        ParseError::PayloadNotMap
    );
    let mut s = sign1;
    s.payload = Some(vec![0xa1, 0x01]);
    assert!(matches!(
        NitroDocument::parse(&s.to_vec().unwrap()),
        Err(ParseError::PayloadCbor(_))
    ));
}
