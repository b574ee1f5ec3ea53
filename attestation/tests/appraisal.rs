//! The provider-neutral appraisal: evidence told apart by content, verified under its
//! provider's roots, checked against provider-tagged measurement sets, and what an
//! accepted piece of evidence proves (provider, matched set, binding, time).
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::nitro::MeasurementSet;
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use attestation::{
    AppraisalError, AttestationRequest, Attester, Evidence, Expectation, Measurements, PolicyError,
    Provider, Verifier, VerifyError,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const IMAGE: &[u8] = b"appraised image";

fn set(image: &[u8], instance: &[u8]) -> Measurements {
    let pcrs = SimMeasurements::of_image(image)
        .with_pcr4(instance.to_vec())
        .pcrs();
    MeasurementSet::new([0u8, 1, 2, 4].map(|i| (i, pcrs[&i].to_vec())).into())
        .unwrap()
        .into()
}

struct Sim {
    ca: SimCa,
    attester: Arc<dyn Attester>,
    nsm: Arc<SimNsm>,
}

fn sim(debug: bool) -> Sim {
    let now = SystemTime::now();
    let ca = SimCa::generate(now).unwrap();
    let measured = SimMeasurements::of_image(IMAGE)
        .with_pcr4(b"node-1".to_vec())
        .with_debug_mode(debug);
    let nsm = Arc::new(SimNsm::new(&ca, &measured, now).unwrap());
    Sim {
        ca,
        attester: nsm.clone(),
        nsm,
    }
}

fn verifier(ca: &SimCa) -> Verifier {
    Verifier::production()
        .trust_simulated_root(ca.root_der(), SystemTime::now())
        .unwrap()
}

fn request(nonce: u8) -> AttestationRequest {
    AttestationRequest {
        user_data: Some(vec![0x42; 32]),
        nonce: Some(vec![nonce; 32]),
        public_key: Some(b"a TLS key".to_vec()),
    }
}

#[test]
fn providers_are_told_apart_by_content_and_named() {
    let s = sim(false);
    assert_eq!(s.attester.provider(), Provider::Nitro);
    let doc = s.attester.attest(&request(1)).unwrap();
    assert_eq!(Provider::of_evidence(&doc), Some(Provider::Nitro));
    let mut tagged = vec![0xd2];
    tagged.extend_from_slice(&doc);
    assert_eq!(Provider::of_evidence(&tagged), Some(Provider::Nitro));
    assert!(matches!(Evidence::parse(&doc).unwrap(), Evidence::Nitro(_)));
    // Not any provider's: refused before any parser sees it.
    // A JWT is Confidential Space's form now: its parser, not this check, refuses it.
    let jwt = b"eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
    assert_eq!(Provider::of_evidence(jwt), Some(Provider::GcpCs));
    assert!(matches!(
        verifier(&s.ca).verify(jwt, SystemTime::now()).unwrap_err(),
        VerifyError::Token(_)
    ));
    for other in [
        &b""[..],
        b"ZXlKaGJHY2lPaUpTVXpJMU5pSjk.e30.c2ln",
        b" {}",
        &[0xc0, 0x84],
        &[0xa1],
    ] {
        assert_eq!(Provider::of_evidence(other), None, "{other:?}");
        assert_eq!(
            verifier(&s.ca)
                .verify(other, SystemTime::now())
                .unwrap_err(),
            VerifyError::UnrecognisedEvidence
        );
    }
    for provider in Provider::ALL {
        assert_eq!(Provider::from_name(provider.name()), Some(provider));
        assert_eq!(provider.to_string(), provider.name());
    }
    assert_eq!(Provider::from_name("aws-nitro"), Some(Provider::Nitro));
    assert_eq!(
        Provider::from_name("gcp-confidential-space"),
        Some(Provider::GcpCs)
    );
    assert_eq!(Provider::GcpCs.name(), "gcp-cs");
    for unknown in ["", "Nitro", "gcp", "nitro ", "GCP-CS", "gcp-cs "] {
        assert_eq!(Provider::from_name(unknown), None, "{unknown:?}");
    }
}

#[test]
fn accepted_evidence_says_what_it_proves() {
    let s = sim(false);
    let now = SystemTime::now();
    let doc = s.attester.attest(&request(1)).unwrap();
    // The second of three sets is this node's: the appraisal names it.
    let expectation = Expectation::new(vec![
        set(IMAGE, b"node-2"),
        set(IMAGE, b"node-1"),
        set(b"another image", b"node-1"),
    ])
    .unwrap()
    .expect_nonce(vec![1; 32]);
    let appraisal = verifier(&s.ca).appraise(&doc, &expectation, now).unwrap();
    assert_eq!(appraisal.provider(), Provider::Nitro);
    assert_eq!(appraisal.matched_set(), 1);
    let binding = appraisal.binding();
    assert_eq!(binding.nonce, Some(&[1u8; 32][..]));
    assert_eq!(binding.public_key, Some(&b"a TLS key"[..]));
    assert_eq!(binding.user_data, Some(&[0x42u8; 32][..]));
    let made = now.duration_since(UNIX_EPOCH).unwrap();
    assert!(made.abs_diff(appraisal.time()) < Duration::from_secs(5));
    assert_eq!(appraisal.evidence().attester_id(), s.nsm.module_id());
    assert_eq!(
        appraisal.evidence().code_measurement(),
        Some(&SimMeasurements::of_image(IMAGE).pcrs()[&0][..])
    );
}

#[test]
fn refused_evidence_says_why() {
    let s = sim(false);
    let now = SystemTime::now();
    let doc = s.attester.attest(&request(1)).unwrap();
    let ours = || Expectation::new(vec![set(IMAGE, b"node-1")]).unwrap();

    assert_eq!(
        Expectation::new(vec![]).unwrap_err(),
        PolicyError::NoMeasurementSets
    );
    // Another node's sets: the mismatch names each set by its place in the list.
    let others = Expectation::new(vec![set(IMAGE, b"node-2"), set(IMAGE, b"node-3")]).unwrap();
    match verifier(&s.ca).appraise(&doc, &others, now).unwrap_err() {
        AppraisalError::Policy(PolicyError::Measurements(m)) => {
            assert_eq!(
                m.iter().map(|m| (m.set, m.index)).collect::<Vec<_>>(),
                [(0, 4), (1, 4)]
            );
        }
        other => panic!("{other}"),
    }
    // Another connection's nonce; evidence from before the maximum age.
    let err = verifier(&s.ca)
        .appraise(&doc, &ours().expect_nonce(vec![2; 32]), now)
        .unwrap_err();
    assert_eq!(err, AppraisalError::Policy(PolicyError::NonceMismatch));
    let old = s
        .nsm
        .attest_at(&request(1), now - Duration::from_secs(120))
        .unwrap();
    let err = verifier(&s.ca)
        .appraise(&old, &ours().max_age(Duration::from_secs(60)), now)
        .unwrap_err();
    assert!(
        matches!(err, AppraisalError::Policy(PolicyError::TooOld { .. })),
        "{err}"
    );
    verifier(&s.ca)
        .appraise(&old, &ours().without_age_limit(), now)
        .unwrap();
    // An untrusted root: the production roots alone, or another simulator's.
    let err = Verifier::production()
        .appraise(&doc, &ours(), now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppraisalError::Verify(VerifyError::UntrustedRoot { .. })
        ),
        "{err}"
    );
    let other = SimCa::generate(now).unwrap();
    let err = verifier(&other).appraise(&doc, &ours(), now).unwrap_err();
    assert!(matches!(err, AppraisalError::Verify(_)), "{err}");
}

#[test]
fn debug_mode_only_when_allowed() {
    let s = sim(true);
    let now = SystemTime::now();
    let doc = s.attester.attest(&request(1)).unwrap();
    let pcrs = SimMeasurements::of_image(IMAGE)
        .with_pcr4(b"node-1".to_vec())
        .with_debug_mode(true)
        .pcrs();
    let debug_set: Measurements =
        MeasurementSet::new([0u8, 1, 2, 4].map(|i| (i, pcrs[&i].to_vec())).into())
            .unwrap()
            .into();
    let expectation = Expectation::new(vec![debug_set]).unwrap();
    let err = verifier(&s.ca)
        .appraise(&doc, &expectation, now)
        .unwrap_err();
    assert_eq!(err, AppraisalError::Policy(PolicyError::DebugMode));
    verifier(&s.ca)
        .appraise(&doc, &expectation.allow_debug(true), now)
        .unwrap();
}
