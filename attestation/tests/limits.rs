//! Field limits, timestamp rules and policy time windows, each checked at exactly the limit
//! and one step past it; definite- and indefinite-length CBOR maps read alike.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::nitro::{
    MAX_CABUNDLE_LEN, MAX_CERT_LEN, MAX_DOCUMENT_LEN, MAX_NONCE_LEN, MAX_PCRS, MAX_PUBLIC_KEY_LEN,
    MAX_USER_DATA_LEN, NitroDocument, TrustPolicy, Verifier,
};
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use attestation::nsm::{AttestationRequest, Nsm};
use attestation::{DEFAULT_MAX_AGE, DEFAULT_MAX_CLOCK_SKEW, ParseError, PolicyError, Verified};
use coset::cbor::value::Value;
use coset::{CborSerializable, CoseSign1};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAX_MODULE_ID_LEN: usize = 256;

/// A signed simulated document and a verifier that trusts its root.
fn simulated() -> (Vec<u8>, Verifier) {
    let now = SystemTime::now();
    let ca = SimCa::generate(now).unwrap();
    let nsm = SimNsm::new(&ca, &SimMeasurements::of_image(b"limits"), now).unwrap();
    let bytes = nsm
        .attest(&AttestationRequest {
            user_data: Some(b"user".to_vec()),
            nonce: Some(vec![3; 16]),
            public_key: Some(vec![4; 97]),
        })
        .unwrap();
    let verifier = Verifier::aws_nitro()
        .trust_simulated_root(ca.root_der(), now)
        .unwrap();
    (bytes, verifier)
}

fn payload(doc: &[u8]) -> Vec<(Value, Value)> {
    let sign1 = CoseSign1::from_slice(doc).unwrap();
    let v: Value = coset::cbor::de::from_reader(sign1.payload.unwrap().as_slice()).unwrap();
    v.into_map().unwrap()
}

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    coset::cbor::ser::into_writer(v, &mut out).unwrap();
    out
}

/// `doc` with its payload replaced by `raw`, signature left as it was.
fn with_raw_payload(doc: &[u8], raw: Vec<u8>) -> Vec<u8> {
    let mut sign1 = CoseSign1::from_slice(doc).unwrap();
    sign1.payload = Some(raw);
    sign1.to_vec().unwrap()
}

/// Parses `doc` after `edit` has changed its payload.
fn parse_edited(
    doc: &[u8],
    edit: impl FnOnce(&mut Vec<(Value, Value)>),
) -> Result<NitroDocument, ParseError> {
    let mut entries = payload(doc);
    edit(&mut entries);
    NitroDocument::parse(&with_raw_payload(doc, cbor(&Value::Map(entries))))
}

fn set(entries: &mut [(Value, Value)], name: &str, v: Value) {
    entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(name))
        .unwrap()
        .1 = v;
}

fn bytes(n: usize) -> Value {
    Value::Bytes(vec![0x5a; n])
}

fn pcrs(indices: impl IntoIterator<Item = u8>) -> Value {
    Value::Map(
        indices
            .into_iter()
            .map(|i| (Value::Integer(i.into()), Value::Bytes(vec![i; 48])))
            .collect(),
    )
}

/// An indefinite-length map (0xbf ... 0xff) of already encoded keys and values.
fn indefinite_map(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    let mut out = vec![0xbf];
    for (k, v) in entries {
        out.extend(k);
        out.extend(v);
    }
    out.push(0xff);
    out
}

fn len_err(field: &'static str, len: usize, min: usize, max: usize) -> ParseError {
    ParseError::FieldLength {
        field,
        len,
        min,
        max,
    }
}

type Fields<'a> = (
    &'a str,
    u64,
    &'a BTreeMap<u8, Vec<u8>>,
    &'a [u8],
    &'a [Vec<u8>],
    [Option<&'a [u8]>; 3],
);

/// Every decoded field; the signed bytes differ between encodings of one payload.
fn fields(d: &NitroDocument) -> Fields<'_> {
    (
        d.module_id(),
        d.timestamp_ms(),
        d.pcrs(),
        d.certificate(),
        d.cabundle(),
        [d.public_key(), d.user_data(), d.nonce()],
    )
}

#[test]
fn module_id_of_256_bytes_is_accepted_and_257_refused() {
    let (doc, _) = simulated();
    let id = "m".repeat(MAX_MODULE_ID_LEN);
    let parsed = parse_edited(&doc, |e| set(e, "module_id", Value::Text(id.clone()))).unwrap();
    assert_eq!(parsed.module_id(), id);
    let long = "m".repeat(MAX_MODULE_ID_LEN + 1);
    assert_eq!(
        parse_edited(&doc, |e| set(e, "module_id", Value::Text(long))).unwrap_err(),
        len_err("module_id", 257, 1, 256)
    );
}

#[test]
fn cabundle_of_8_entries_is_accepted_and_9_refused() {
    let (doc, _) = simulated();
    let bundle = |n: usize| Value::Array((0..n).map(|_| bytes(1)).collect());
    let parsed = parse_edited(&doc, |e| set(e, "cabundle", bundle(MAX_CABUNDLE_LEN))).unwrap();
    assert_eq!(parsed.cabundle(), vec![vec![0x5a]; 8]);
    assert_eq!(
        parse_edited(&doc, |e| set(e, "cabundle", bundle(MAX_CABUNDLE_LEN + 1))).unwrap_err(),
        len_err("cabundle", 9, 1, 8)
    );
}

#[test]
fn a_cabundle_entry_of_1024_bytes_is_accepted_and_1025_refused() {
    let (doc, _) = simulated();
    let parsed = parse_edited(&doc, |e| {
        set(e, "cabundle", Value::Array(vec![bytes(MAX_CERT_LEN)]))
    })
    .unwrap();
    assert_eq!(parsed.cabundle()[0].len(), 1024);
    assert_eq!(
        parse_edited(&doc, |e| {
            set(
                e,
                "cabundle",
                Value::Array(vec![bytes(1), bytes(MAX_CERT_LEN + 1)]),
            )
        })
        .unwrap_err(),
        len_err("cabundle entry", 1025, 1, 1024)
    );
}

#[test]
fn all_32_pcrs_are_accepted() {
    let (doc, _) = simulated();
    let parsed = parse_edited(&doc, |e| set(e, "pcrs", pcrs(0..32))).unwrap();
    assert_eq!(parsed.pcrs().len(), MAX_PCRS);
    for i in 0..32u8 {
        assert_eq!(parsed.pcr(i), Some(&[i; 48][..]));
    }
}

#[test]
fn a_document_with_every_field_at_its_maximum_fits_the_size_limit() {
    let (doc, _) = simulated();
    let mut entries = payload(&doc);
    set(&mut entries, "module_id", Value::Text("m".repeat(256)));
    set(
        &mut entries,
        "pcrs",
        Value::Map(
            (0..32u8)
                .map(|i| (Value::Integer(i.into()), Value::Bytes(vec![i; 64])))
                .collect(),
        ),
    );
    set(&mut entries, "certificate", bytes(MAX_CERT_LEN));
    set(
        &mut entries,
        "cabundle",
        Value::Array((0..MAX_CABUNDLE_LEN).map(|_| bytes(MAX_CERT_LEN)).collect()),
    );
    set(&mut entries, "public_key", bytes(MAX_PUBLIC_KEY_LEN));
    set(&mut entries, "user_data", bytes(MAX_USER_DATA_LEN));
    set(&mut entries, "nonce", bytes(MAX_NONCE_LEN));
    // Tagged, with a 64-bit timestamp: the largest encoding of the largest fields.
    set(&mut entries, "timestamp", Value::Integer(u64::MAX.into()));
    let mut sign1 = CoseSign1::from_slice(&doc).unwrap();
    sign1.payload = Some(cbor(&Value::Map(entries)));
    let largest = coset::TaggedCborSerializable::to_tagged_vec(sign1).unwrap();
    assert!(largest.len() <= MAX_DOCUMENT_LEN, "{} bytes", largest.len());
    let parsed = NitroDocument::parse(&largest).unwrap();
    assert_eq!(parsed.cabundle().len(), 8);
    assert_eq!(parsed.timestamp_ms(), u64::MAX);
}

#[test]
fn timestamps_below_10_pow_12_are_refused_as_seconds() {
    let (doc, _) = simulated();
    let ts =
        |t: u64| move |e: &mut Vec<(Value, Value)>| set(e, "timestamp", Value::Integer(t.into()));
    assert_eq!(
        parse_edited(&doc, ts(999_999_999_999)).unwrap_err(),
        ParseError::TimestampNotMillis(999_999_999_999)
    );
    assert_eq!(
        parse_edited(&doc, ts(1_000_000_000_000))
            .unwrap()
            .timestamp_ms(),
        1_000_000_000_000
    );
}

#[test]
fn indefinite_length_maps_read_like_definite_ones() {
    let (doc, _) = simulated();
    let definite = NitroDocument::parse(&doc).unwrap();
    assert_eq!(
        CoseSign1::from_slice(&doc).unwrap().payload.unwrap()[0],
        0xa9
    );
    let entries = payload(&doc);
    let encoded = |pcrs_indefinite: bool| {
        indefinite_map(entries.iter().map(|(k, v)| {
            let value = match (k.as_text(), v) {
                (Some("pcrs"), Value::Map(pcrs)) if pcrs_indefinite => {
                    indefinite_map(pcrs.iter().map(|(i, p)| (cbor(i), cbor(p))))
                }
                _ => cbor(v),
            };
            (cbor(k), value)
        }))
    };

    let outer = encoded(false);
    assert_eq!(outer[0], 0xbf);
    let parsed = NitroDocument::parse(&with_raw_payload(&doc, outer)).unwrap();
    assert_eq!(fields(&parsed), fields(&definite));

    let both = encoded(true);
    let pcrs_at = both
        .windows(5)
        .position(|w| w == [0x64, b'p', b'c', b'r', b's'])
        .expect("pcrs key");
    assert_eq!(both[pcrs_at + 5], 0xbf);
    let parsed = NitroDocument::parse(&with_raw_payload(&doc, both)).unwrap();
    assert_eq!(fields(&parsed), fields(&definite));
    assert_eq!(parsed.pcrs().len(), 16);

    // Only the PCR map indefinite, inside a definite payload.
    let mut inner_only = vec![0xa0 + u8::try_from(entries.len()).unwrap()];
    for (k, v) in &entries {
        inner_only.extend(cbor(k));
        match (k.as_text(), v) {
            (Some("pcrs"), Value::Map(pcrs)) => {
                inner_only.extend(indefinite_map(pcrs.iter().map(|(i, p)| (cbor(i), cbor(p)))))
            }
            _ => inner_only.extend(cbor(v)),
        }
    }
    let parsed = NitroDocument::parse(&with_raw_payload(&doc, inner_only)).unwrap();
    assert_eq!(fields(&parsed), fields(&definite));
}

#[test]
fn indefinite_length_maps_obey_the_same_rules() {
    let (doc, _) = simulated();
    let entries = payload(&doc);
    let encode = |entries: &[(Value, Value)], pcrs: Vec<u8>| {
        indefinite_map(entries.iter().map(|(k, v)| {
            let value = if k.as_text() == Some("pcrs") {
                pcrs.clone()
            } else {
                cbor(v)
            };
            (cbor(k), value)
        }))
    };
    let pcr_map = |indices: &[u8]| {
        indefinite_map(
            indices
                .iter()
                .map(|i| (cbor(&Value::Integer((*i).into())), cbor(&bytes(48)))),
        )
    };
    let parse = |raw| NitroDocument::parse(&with_raw_payload(&doc, raw));

    let all: Vec<u8> = (0..32).collect();
    assert_eq!(
        parse(encode(&entries, pcr_map(&all))).unwrap().pcrs().len(),
        32
    );
    let over: Vec<u8> = (0..33).map(|i| i % 32).collect();
    assert_eq!(
        parse(encode(&entries, pcr_map(&over))).unwrap_err(),
        len_err("pcrs", 33, 1, 32)
    );
    assert_eq!(
        parse(encode(&entries, pcr_map(&[5, 5]))).unwrap_err(),
        ParseError::DuplicatePcr(5)
    );
    let mut twice = entries.clone();
    twice.push(entries[0].clone());
    assert_eq!(
        parse(encode(&twice, pcr_map(&[0]))).unwrap_err(),
        ParseError::DuplicateField("module_id".into())
    );
    // An indefinite map that is never closed.
    let mut open = encode(&entries, pcr_map(&[0]));
    open.pop();
    assert!(matches!(parse(open), Err(ParseError::PayloadCbor(_))));
}

/// A verified simulated document and the time its timestamp names.
fn verified() -> (Verified<NitroDocument>, SystemTime) {
    let (doc, verifier) = simulated();
    let verified = verifier.verify(&doc, SystemTime::now()).unwrap();
    let ts = UNIX_EPOCH + Duration::from_millis(verified.timestamp_ms());
    (verified, ts)
}

#[test]
fn max_age_is_inclusive_to_the_millisecond() {
    let (doc, ts) = verified();
    let ms = Duration::from_millis(1);
    let policy = TrustPolicy::without_measurement_checks().max_age(Duration::from_secs(10));
    policy.check(&doc, ts).unwrap();
    policy.check(&doc, ts + Duration::from_secs(10)).unwrap();
    assert_eq!(
        policy
            .check(&doc, ts + Duration::from_secs(10) + ms)
            .unwrap_err(),
        PolicyError::TooOld {
            age_ms: 10_001,
            max_ms: 10_000
        }
    );
    let zero = TrustPolicy::without_measurement_checks().max_age(Duration::ZERO);
    zero.check(&doc, ts).unwrap();
    assert_eq!(
        zero.check(&doc, ts + ms).unwrap_err(),
        PolicyError::TooOld {
            age_ms: 1,
            max_ms: 0
        }
    );
    TrustPolicy::without_measurement_checks()
        .max_age(Duration::MAX)
        .check(&doc, ts + Duration::from_secs(365 * 24 * 3600))
        .unwrap();
}

#[test]
fn clock_skew_is_inclusive_to_the_millisecond() {
    let (doc, ts) = verified();
    let ms = Duration::from_millis(1);
    let policy = TrustPolicy::without_measurement_checks();
    policy.check(&doc, ts - DEFAULT_MAX_CLOCK_SKEW).unwrap();
    assert_eq!(
        policy
            .check(&doc, ts - DEFAULT_MAX_CLOCK_SKEW - ms)
            .unwrap_err(),
        PolicyError::FromTheFuture { ahead_ms: 60_001 }
    );
    // Lifting the age limit does not lift the skew limit.
    assert_eq!(
        policy
            .clone()
            .without_age_limit()
            .check(&doc, ts - DEFAULT_MAX_CLOCK_SKEW - ms)
            .unwrap_err(),
        PolicyError::FromTheFuture { ahead_ms: 60_001 }
    );
    let strict = policy.max_clock_skew(Duration::ZERO);
    strict.check(&doc, ts).unwrap();
    assert_eq!(
        strict.check(&doc, ts - ms).unwrap_err(),
        PolicyError::FromTheFuture { ahead_ms: 1 }
    );
}

#[test]
fn the_default_max_age_applies_unless_lifted() {
    let (doc, ts) = verified();
    assert_eq!(DEFAULT_MAX_AGE, Duration::from_secs(300));
    let policy = TrustPolicy::without_measurement_checks();
    policy.check(&doc, ts + DEFAULT_MAX_AGE).unwrap();
    let later = ts + DEFAULT_MAX_AGE + Duration::from_millis(1);
    assert_eq!(
        policy.check(&doc, later).unwrap_err(),
        PolicyError::TooOld {
            age_ms: 300_001,
            max_ms: 300_000
        }
    );
    let unlimited = policy.without_age_limit();
    unlimited.check(&doc, later).unwrap();
    unlimited
        .check(&doc, ts + Duration::from_secs(10 * 365 * 24 * 3600))
        .unwrap();
}
