//! The simulated NSM: its documents have the real format, pass the production verifier
//! only when its root is explicitly trusted, and round-trip what they bind.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attestation::nitro::{MeasurementSet, NitroDocument, TrustPolicy, Verifier};
use attestation::nsm::sim::{SIM_PCR_COUNT, SimCa, SimMeasurements, SimNsm};
use attestation::nsm::{AttestationRequest, Nsm, NsmError};
use attestation::{PolicyError, VerifyError};
use coset::cbor::value::Value;
use coset::{CborSerializable, CoseSign1};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

fn sim(measured: &[u8]) -> (SimCa, SimNsm, SimMeasurements) {
    let now = SystemTime::now();
    let ca = SimCa::generate(now).unwrap();
    let m = SimMeasurements::of_image(measured).with_pcr3(b"role".to_vec());
    let nsm = SimNsm::new(&ca, &m, now).unwrap();
    (ca, nsm, m)
}

fn trusting(ca: &SimCa) -> Verifier {
    Verifier::aws_nitro()
        .trust_simulated_root(ca.root_der(), SystemTime::now())
        .unwrap()
}

fn request() -> AttestationRequest {
    AttestationRequest {
        user_data: Some(b"manifest hash".to_vec()),
        nonce: Some(vec![7; 32]),
        public_key: Some(vec![4; 97]),
    }
}

#[test]
fn verifies_only_when_the_simulated_root_is_trusted() {
    let (ca, nsm, _) = sim(b"image");
    let doc = nsm.attest(&request()).unwrap();
    let now = SystemTime::now();
    let err = Verifier::aws_nitro().verify(&doc, now).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");

    let verified = trusting(&ca).verify(&doc, now).unwrap();
    assert_eq!(verified.user_data(), Some(&b"manifest hash"[..]));
    assert_eq!(verified.nonce(), Some(&[7u8; 32][..]));
    assert_eq!(verified.public_key(), Some(&[4u8; 97][..]));
    assert_eq!(verified.module_id(), nsm.module_id());

    // Another simulator's root is not this one.
    let (other_ca, _, _) = sim(b"image");
    let err = trusting(&other_ca).verify(&doc, now).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");
}

#[test]
fn pcrs_come_from_the_measurements() {
    let (ca, nsm, m) = sim(b"image one");
    let doc = trusting(&ca)
        .verify(&nsm.attest(&request()).unwrap(), SystemTime::now())
        .unwrap();
    assert_eq!(doc.pcrs().len(), usize::from(SIM_PCR_COUNT));
    for (i, v) in m.pcrs() {
        assert_eq!(doc.pcr(i), Some(&v[..]), "PCR{i}");
        assert_eq!(nsm.describe_pcr(u16::from(i)).unwrap().value, v.to_vec());
    }
    assert!(doc.pcr(0).unwrap().iter().any(|b| *b != 0));
    assert!(doc.pcr(3).unwrap().iter().any(|b| *b != 0));
    assert!(doc.pcr(4).unwrap().iter().all(|b| *b == 0));
    assert!(!doc.is_debug_mode());
    assert_eq!(nsm.describe_pcr(16).unwrap_err(), NsmError::NoSuchPcr(16));

    // A different image gives different PCR0 and PCR2, the same PCR1.
    let other = SimMeasurements::of_image(b"image two").pcrs();
    assert_ne!(other[&0], m.pcrs()[&0]);
    assert_ne!(other[&2], m.pcrs()[&2]);
    assert_eq!(other[&1], m.pcrs()[&1]);
}

#[test]
fn measures_the_running_binary() {
    let exe = std::env::current_exe().unwrap();
    let from_file = SimMeasurements::of_current_exe().unwrap();
    let from_bytes = SimMeasurements::of_image(&std::fs::read(exe).unwrap());
    assert_eq!(from_file, from_bytes);
}

#[test]
fn debug_mode_zeroes_pcr0_to_2_and_the_policy_refuses_it() {
    let now = SystemTime::now();
    let ca = SimCa::generate(now).unwrap();
    let m = SimMeasurements::of_image(b"image").with_debug_mode(true);
    let nsm = SimNsm::new(&ca, &m, now).unwrap();
    let doc = trusting(&ca)
        .verify(&nsm.attest(&request()).unwrap(), now)
        .unwrap();
    assert!(doc.is_debug_mode());
    let policy = TrustPolicy::without_measurement_checks();
    assert_eq!(policy.check(&doc, now).unwrap_err(), PolicyError::DebugMode);
    policy.allow_debug(true).check(&doc, now).unwrap();
}

#[test]
fn policy_checks_measurements_age_and_nonce() {
    let (ca, nsm, m) = sim(b"image");
    let now = SystemTime::now();
    let doc = trusting(&ca)
        .verify(&nsm.attest(&request()).unwrap(), now)
        .unwrap();
    let good: BTreeMap<u8, Vec<u8>> = [0u8, 1, 2]
        .iter()
        .map(|i| (*i, m.pcrs()[i].to_vec()))
        .collect();
    let mut bad = good.clone();
    bad.insert(2, vec![0xaa; 48]);
    let good = MeasurementSet::new(good).unwrap();
    let bad = MeasurementSet::new(bad).unwrap();

    // Several accepted sets (a rollout): any one matching is enough.
    let accepted = TrustPolicy::new(vec![bad.clone(), good.clone()])
        .unwrap()
        .check(&doc, now)
        .unwrap();
    assert_eq!(accepted.matched_set, Some(1));
    assert_eq!(accepted.public_key, Some(&[4u8; 97][..]));
    assert_eq!(accepted.user_data, Some(&b"manifest hash"[..]));

    match TrustPolicy::new(vec![bad]).unwrap().check(&doc, now) {
        Err(PolicyError::Measurements(m)) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].index, 2);
            assert!(m.iter().all(|x| x.found.is_some()));
        }
        other => panic!("expected a PCR mismatch, got {other:?}"),
    }
    let absent = MeasurementSet::new([(20u8, vec![1; 48])].into()).unwrap();
    match TrustPolicy::new(vec![absent]).unwrap().check(&doc, now) {
        Err(PolicyError::Measurements(m)) => assert_eq!(m[0].found, None),
        other => panic!("expected an absent PCR, got {other:?}"),
    }

    // An empty expectation is an error, never "accept all".
    assert_eq!(
        TrustPolicy::new(vec![]).unwrap_err(),
        PolicyError::NoMeasurementSets
    );
    assert_eq!(
        MeasurementSet::new(BTreeMap::new()).unwrap_err(),
        PolicyError::EmptyMeasurementSet
    );

    let policy = TrustPolicy::new(vec![good]).unwrap();
    policy
        .clone()
        .max_age(Duration::from_secs(60))
        .check(&doc, now + Duration::from_secs(59))
        .unwrap();
    assert!(matches!(
        policy
            .clone()
            .max_age(Duration::from_secs(60))
            .check(&doc, now + Duration::from_secs(61)),
        Err(PolicyError::TooOld { .. })
    ));
    assert!(matches!(
        policy.check(&doc, now - Duration::from_secs(120)),
        Err(PolicyError::FromTheFuture { .. })
    ));
    policy
        .clone()
        .expect_nonce(vec![7; 32])
        .check(&doc, now)
        .unwrap();
    assert_eq!(
        policy.clone().expect_nonce(vec![8; 32]).check(&doc, now),
        Err(PolicyError::NonceMismatch)
    );
    let no_nonce = trusting(&ca)
        .verify(&nsm.attest(&AttestationRequest::default()).unwrap(), now)
        .unwrap();
    assert_eq!(
        policy.expect_nonce(vec![7; 32]).check(&no_nonce, now),
        Err(PolicyError::NonceMissing)
    );
}

#[test]
fn leaf_lives_three_hours() {
    let (ca, nsm, _) = sim(b"image");
    let now = SystemTime::now();
    let doc = nsm.attest(&request()).unwrap();
    let v = trusting(&ca);
    v.verify(&doc, now + Duration::from_secs(2 * 3600)).unwrap();
    let err = v
        .verify(&doc, now + Duration::from_secs(4 * 3600))
        .unwrap_err();
    assert!(
        err.to_string().contains("leaf certificate: expired"),
        "{err}"
    );
    let err = v.verify(&doc, now - Duration::from_secs(3600)).unwrap_err();
    assert!(err.to_string().contains("not valid before"), "{err}");
}

#[test]
fn request_limits_are_enforced_before_attesting() {
    let (_, nsm, _) = sim(b"image");
    for (req, field) in [
        (
            AttestationRequest {
                user_data: Some(vec![0; 513]),
                ..Default::default()
            },
            "user_data",
        ),
        (
            AttestationRequest {
                nonce: Some(vec![0; 513]),
                ..Default::default()
            },
            "nonce",
        ),
        (
            AttestationRequest {
                public_key: Some(vec![0; 1025]),
                ..Default::default()
            },
            "public_key",
        ),
        (
            AttestationRequest {
                public_key: Some(vec![]),
                ..Default::default()
            },
            "public_key",
        ),
    ] {
        match nsm.attest(&req) {
            Err(NsmError::InvalidRequest { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // Exactly at the limits is fine.
    nsm.attest(&AttestationRequest {
        user_data: Some(vec![1; 512]),
        nonce: Some(vec![2; 512]),
        public_key: Some(vec![3; 1024]),
    })
    .unwrap();
    assert_eq!(nsm.random(48).unwrap().len(), 48);
    assert!(nsm.random(1 << 20).is_err());
}

fn payload_keys_and_kinds(doc: &[u8]) -> Vec<(String, &'static str)> {
    let sign1 = CoseSign1::from_slice(doc).unwrap();
    let payload: Value = coset::cbor::de::from_reader(sign1.payload.unwrap().as_slice()).unwrap();
    let kind = |v: &Value| match v {
        Value::Bytes(_) => "bytes",
        Value::Text(_) => "text",
        Value::Integer(_) => "integer",
        Value::Map(_) => "map",
        Value::Array(_) => "array",
        Value::Null => "null",
        _ => "other",
    };
    payload
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_text().unwrap().to_owned(), kind(v)))
        .collect()
}

#[test]
fn has_the_real_nsm_format() {
    let (_, nsm, _) = sim(b"image");
    let doc = nsm
        .attest(&AttestationRequest {
            user_data: None,
            nonce: Some(vec![1; 20]),
            public_key: None,
        })
        .unwrap();
    // Untagged COSE_Sign1 whose protected header is exactly {1: -35}.
    assert_eq!(doc[0], 0x84);
    let sign1 = CoseSign1::from_slice(&doc).unwrap();
    assert_eq!(
        sign1.protected.original_data.as_deref(),
        Some(&[0xa1, 0x01, 0x38, 0x22][..])
    );
    assert!(sign1.unprotected.is_empty());
    assert_eq!(sign1.signature.len(), 96);
    // Root, regional, zonal and instance CAs, as on real hardware.
    assert_eq!(NitroDocument::parse(&doc).unwrap().cabundle().len(), 4);
    let sim_keys = payload_keys_and_kinds(&doc);
    let names: Vec<&str> = sim_keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "module_id",
            "digest",
            "timestamp",
            "pcrs",
            "certificate",
            "cabundle",
            "public_key",
            "user_data",
            "nonce"
        ]
    );

    let Some(dir) = common::nitro_fixtures() else {
        return;
    };
    // A real document with a nonce and null user data / public key, for comparison.
    let real = common::load_fixtures(&dir)
        .into_iter()
        .filter(|f| f.expect_valid)
        .map(|f| f.bytes)
        .find(|b| {
            let d = NitroDocument::parse(b).unwrap();
            d.nonce().is_some() && d.user_data().is_none() && d.public_key().is_none()
        });
    if let Some(real) = real {
        let real_sign1 = CoseSign1::from_slice(&real).unwrap();
        assert_eq!(
            real_sign1.protected.original_data,
            sign1.protected.original_data
        );
        assert_eq!(
            NitroDocument::parse(&real).unwrap().cabundle().len(),
            NitroDocument::parse(&doc).unwrap().cabundle().len()
        );
        let real_keys = payload_keys_and_kinds(&real);
        assert_eq!(real_keys.len(), sim_keys.len());
        for ((rk, rt), (sk, st)) in real_keys.iter().zip(&sim_keys) {
            assert_eq!(rk, sk);
            // The real NSM writes null or an empty byte string for absent fields.
            assert!(
                rt == st || (*st == "null" && *rt == "bytes"),
                "{rk}: {rt} vs {st}"
            );
        }
    }
}

#[test]
fn simulated_root_persists_and_is_shared() {
    let dir = std::env::temp_dir().join(format!("sim-ca-test-{}", std::process::id()));
    // The directory is created (private) on first use.
    let path = dir.join("nested").join("sim-ca");
    let now = SystemTime::now();
    let first = SimCa::load_or_create(&path, now).unwrap();
    let second = SimCa::load_or_create(&path, now).unwrap();
    assert_eq!(first.root_der(), second.root_der());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "CA key file must not be group/world readable"
        );
    }
    // A document from an NSM built on the reloaded root verifies against the first.
    let nsm = SimNsm::new(&second, &SimMeasurements::of_image(b"x"), now).unwrap();
    trusting(&first)
        .verify(&nsm.attest(&request()).unwrap(), now)
        .unwrap();

    // A corrupted file is refused, not replaced.
    std::fs::write(&path, b"not a CA").unwrap();
    assert!(SimCa::load_or_create(&path, now).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_simulated_root_must_be_a_self_signed_ca() {
    let (_, nsm, _) = sim(b"image");
    let doc = NitroDocument::parse(&nsm.attest(&request()).unwrap()).unwrap();
    // The intermediate is a CA but not self-signed; the leaf is neither.
    for der in [&doc.cabundle()[1], &doc.certificate().to_vec()] {
        assert!(
            Verifier::aws_nitro()
                .trust_simulated_root(der, SystemTime::now())
                .is_err()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn documents_round_trip(
        user_data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=512)),
        nonce in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=512)),
        public_key in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..=1024)),
        pcr3 in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let now = SystemTime::now();
        let ca = SimCa::generate(now).unwrap();
        let m = SimMeasurements::of_image(b"image").with_pcr3(pcr3);
        let nsm = SimNsm::new(&ca, &m, now).unwrap();
        let req = AttestationRequest { user_data, nonce, public_key };
        let bytes = nsm.attest(&req).unwrap();
        let doc = trusting(&ca).verify(&bytes, now).unwrap();
        prop_assert_eq!(doc.user_data().map(<[u8]>::to_vec), req.user_data);
        prop_assert_eq!(doc.nonce().map(<[u8]>::to_vec), req.nonce);
        prop_assert_eq!(doc.public_key().map(<[u8]>::to_vec), req.public_key);
        for (i, v) in m.pcrs() {
            prop_assert_eq!(doc.pcr(i), Some(&v[..]));
        }
        // Parsing is a function of the bytes: parsing twice gives equal documents.
        prop_assert_eq!(NitroDocument::parse(&bytes).unwrap(), doc.into_inner());
    }
}

#[cfg(unix)]
#[test]
fn a_ca_file_others_could_have_written_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("sim-ca-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let now = SystemTime::now();
    let path = dir.join("sim-ca");
    SimCa::load_or_create(&path, now).unwrap();

    // Readable by others: whoever could read it could hold the key.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SimCa::load_or_create(&path, now).unwrap_err();
    assert!(err.to_string().contains("group or others"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    SimCa::load_or_create(&path, now).unwrap();

    // Reached through a symbolic link.
    let link = dir.join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = SimCa::load_or_create(&link, now).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
