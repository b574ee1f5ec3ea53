//! Real Nitro documents from `../shared/fixtures/nitro`: every valid one verifies inside
//! its chain window and fails as expired today; the invalid one fails its signature.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attestation::nitro::{NitroDocument, TrustPolicy, Verifier};
use attestation::{CertProblem, PolicyError, VerifyError};
use common::{load_fixtures, nitro_fixtures};
use std::time::{Duration, SystemTime};

#[test]
fn every_valid_document_verifies_inside_its_window() {
    let Some(dir) = nitro_fixtures() else { return };
    let fixtures = load_fixtures(&dir);
    let valid: Vec<_> = fixtures.iter().filter(|f| f.expect_valid).collect();
    assert!(valid.len() >= 30, "expected the full fixture set");
    for f in valid {
        let verified = Verifier::aws_nitro()
            .verify(&f.bytes, f.valid_time())
            .unwrap_or_else(|e| panic!("{}: {e}", f.file));
        let (from, to) = f.window();
        for at in [from, to] {
            Verifier::aws_nitro()
                .verify(&f.bytes, at)
                .unwrap_or_else(|e| panic!("{} at window edge: {e}", f.file));
        }
        assert_eq!(verified.module_id(), f.entry["module_id"].as_str().unwrap());
        assert_eq!(
            verified.timestamp_ms(),
            f.entry["timestamp_ms"].as_u64().unwrap()
        );
        for i in 0u8..3 {
            let key = format!("pcr{i}");
            assert_eq!(
                hex::encode(verified.pcr(i).unwrap()),
                f.entry[&key].as_str().unwrap(),
                "{}: {key}",
                f.file
            );
        }
        let nonzero: Vec<u64> = verified
            .pcrs()
            .iter()
            .filter(|(_, v)| v.iter().any(|b| *b != 0))
            .map(|(i, _)| u64::from(*i))
            .collect();
        let expected: Vec<u64> = f.entry["nonzero_pcrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(nonzero, expected, "{}", f.file);
        assert_eq!(verified.is_debug_mode(), f.is_debug(), "{}", f.file);
    }
}

#[test]
fn every_valid_document_is_expired_today_and_before_its_window() {
    let Some(dir) = nitro_fixtures() else { return };
    for f in load_fixtures(&dir).iter().filter(|f| f.expect_valid) {
        let err = Verifier::aws_nitro()
            .verify(&f.bytes, SystemTime::now())
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
            f.file
        );
        let (from, to) = f.window();
        let err = Verifier::aws_nitro()
            .verify(&f.bytes, from - Duration::from_secs(1))
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
            f.file
        );
        let err = Verifier::aws_nitro()
            .verify(&f.bytes, to + Duration::from_secs(1))
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
            f.file
        );
    }
}

#[test]
fn the_invalid_document_fails_its_signature() {
    let Some(dir) = nitro_fixtures() else { return };
    let invalid: Vec<_> = load_fixtures(&dir)
        .into_iter()
        .filter(|f| !f.expect_valid)
        .collect();
    assert!(!invalid.is_empty());
    for f in invalid {
        NitroDocument::parse(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.file));
        let err = Verifier::aws_nitro()
            .verify(&f.bytes, f.valid_time())
            .unwrap_err();
        assert_eq!(err, VerifyError::Signature, "{}", f.file);
    }
}

#[test]
fn debug_mode_documents_verify_but_the_policy_refuses_them() {
    let Some(dir) = nitro_fixtures() else { return };
    let fixtures = load_fixtures(&dir);
    let mut debug_seen = 0;
    for f in fixtures.iter().filter(|f| f.expect_valid) {
        let doc = Verifier::aws_nitro()
            .verify(&f.bytes, f.valid_time())
            .unwrap();
        let policy = TrustPolicy::without_measurement_checks();
        let result = policy.check(&doc, f.valid_time());
        if f.is_debug() {
            debug_seen += 1;
            assert_eq!(result.unwrap_err(), PolicyError::DebugMode, "{}", f.file);
            policy
                .allow_debug(true)
                .check(&doc, f.valid_time())
                .unwrap_or_else(|e| panic!("{}: {e}", f.file));
        } else {
            result.unwrap_or_else(|e| panic!("{}: {e}", f.file));
        }
    }
    assert!(debug_seen > 0);
}
