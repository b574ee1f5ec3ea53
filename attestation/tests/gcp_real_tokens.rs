//! Real Confidential Space tokens from `../shared/fixtures/gcp-cs`: the genuine one
//! verifies at its own time (a debug image, so only with debug allowed) and fails as
//! expired today; the forged and the self-signed ones fail; the root is the pinned one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attestation::gcp::{
    self, CsEvidence, CsToken, GOOGLE_CS_ROOT_SHA256, MeasurementSet, TrustPolicy,
};
use attestation::{
    AppraisalError, CertProblem, CertSlot, ClaimMismatch, Evidence, Expectation, Measurements,
    PolicyError, Provider, TokenError, Verifier, VerifyError,
};
use base64::Engine;
use common::{GCP_VALID_IAT, at_secs, gcp_fixtures, load_gcp_fixtures};
use std::time::{Duration, SystemTime};

const DIGEST: &str = "sha256:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34";
const INSTANCE: &str = "6256007950053693934";
const NONCE: &str = "a nonce between 10 and 74 characters";
/// The leaf certificate's validity: 2025-06-19T04:35:45Z to 2025-08-18T04:35:44Z.
const LEAF_NOT_BEFORE: u64 = 1_750_307_745;

fn set(pairs: &[(&str, &str)]) -> Measurements {
    Measurements::from_entries(
        Provider::GcpCs,
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
    .unwrap()
}

fn ours() -> Measurements {
    set(&[
        ("image_digest", DIGEST),
        ("project_id", "oak-ci"),
        ("zone", "us-west1-b"),
        ("instance_id", INSTANCE),
    ])
}

#[test]
fn the_valid_token_verifies_at_its_time_with_debug_allowed() {
    let Some(dir) = gcp_fixtures() else { return };
    let f = load_gcp_fixtures(&dir);
    let at = at_secs(GCP_VALID_IAT);
    assert_eq!(Provider::of_evidence(&f.valid), Some(Provider::GcpCs));
    for verifier in [Verifier::production(), Verifier::google_cs()] {
        let verified = verifier.verify(&f.valid, at).unwrap();
        assert_eq!(verified.provider(), Provider::GcpCs);
        assert_eq!(verified.time(), Duration::from_secs(GCP_VALID_IAT));
        assert_eq!(
            verified.expires(),
            Some(Duration::from_secs(GCP_VALID_IAT + 3600))
        );
        assert_eq!(verified.attester_id(), INSTANCE);
        assert_eq!(
            verified.code_measurement(),
            Some(&hex::decode(&DIGEST[7..]).unwrap()[..])
        );
        // A lone token binds its single eat_nonce, and nothing else.
        let binding = verified.binding();
        assert_eq!(binding.nonce, Some(NONCE.as_bytes()));
        assert_eq!((binding.public_key, binding.user_data), (None, None));
    }
    let token = CsToken::parse(&f.valid).unwrap();
    let claims = token.claims();
    assert_eq!(claims.iss.as_deref(), Some(gcp::ISSUER));
    assert_eq!(claims.aud.as_deref(), Some("https://echo.oak.dev"));
    assert_eq!(claims.hwmodel.as_deref(), Some("GCP_AMD_SEV"));
    assert_eq!(claims.dbgstat.as_deref(), Some("enabled"));
    assert_eq!(claims.secboot, Some(true));
    assert_eq!(claims.eat_nonce, [NONCE]);
    assert_eq!(claims.project_id.as_deref(), Some("oak-ci"));
    assert_eq!(claims.zone.as_deref(), Some("us-west1-b"));
    assert_eq!(
        claims.instance_name.as_deref(),
        Some("oak-session-echo-debug")
    );
    assert_eq!(token.x5c().len(), 3);
    assert_eq!(token.header().alg(), "RS256");

    // Appraised with debug allowed: every claim the policy reads is checked.
    let expectation = Expectation::new(vec![ours()])
        .unwrap()
        .allow_debug(true)
        .expect_audience("https://echo.oak.dev".to_owned())
        .expect_nonce(NONCE.as_bytes().to_vec());
    let appraisal = Verifier::production()
        .appraise(&f.valid, &expectation, at)
        .unwrap();
    assert_eq!(appraisal.provider(), Provider::GcpCs);
    assert_eq!(appraisal.matched_set(), 0);
    // The provider's own policy, as an auditor's tool uses it.
    let verified = gcp::Verifier::google().verify(&f.valid, at).unwrap();
    assert_eq!(
        TrustPolicy::without_measurement_checks()
            .allow_debug(true)
            .check(&verified, at)
            .unwrap(),
        None
    );
}

#[test]
fn the_valid_token_is_refused_as_debug_without_allowing_it() {
    let Some(dir) = gcp_fixtures() else { return };
    let f = load_gcp_fixtures(&dir);
    let at = at_secs(GCP_VALID_IAT);
    let err = Verifier::production()
        .appraise(&f.valid, &Expectation::new(vec![ours()]).unwrap(), at)
        .unwrap_err();
    assert_eq!(
        err,
        AppraisalError::Policy(PolicyError::DebugToken {
            dbgstat: "enabled".to_owned()
        })
    );
}

#[test]
fn the_valid_token_is_expired_today_and_outside_its_window() {
    let Some(dir) = gcp_fixtures() else { return };
    let f = load_gcp_fixtures(&dir);
    // Today the leaf certificate has expired.
    let err = Verifier::production()
        .verify(&f.valid, SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Certificate {
                slot: CertSlot::X5c(0),
                problem: CertProblem::Expired { .. }
            }
        ),
        "{err}"
    );
    // Before the leaf was valid.
    let err = Verifier::production()
        .verify(&f.valid, at_secs(LEAF_NOT_BEFORE - 1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Certificate {
                slot: CertSlot::X5c(0),
                problem: CertProblem::NotYetValid { .. }
            }
        ),
        "{err}"
    );
    // Inside the leaf's validity but past `exp` (give or take the clock skew).
    let expectation = Expectation::new(vec![ours()])
        .unwrap()
        .allow_debug(true)
        .without_age_limit();
    let exp = GCP_VALID_IAT + 3600;
    let at_exp = Verifier::production().appraise(&f.valid, &expectation, at_secs(exp + 60));
    assert!(
        matches!(
            at_exp,
            Err(AppraisalError::Policy(PolicyError::Expired { .. }))
        ),
        "{at_exp:?}"
    );
    Verifier::production()
        .appraise(&f.valid, &expectation, at_secs(exp + 59))
        .unwrap();
    // Before `nbf` (= iat), beyond the skew.
    let early =
        Verifier::production().appraise(&f.valid, &expectation, at_secs(GCP_VALID_IAT - 61));
    assert!(
        matches!(
            early,
            Err(AppraisalError::Policy(PolicyError::NotYetValid { .. }))
        ),
        "{early:?}"
    );
    // Older than the default maximum age.
    let old = Verifier::production().appraise(
        &f.valid,
        &Expectation::new(vec![ours()]).unwrap().allow_debug(true),
        at_secs(GCP_VALID_IAT + 301),
    );
    assert!(
        matches!(old, Err(AppraisalError::Policy(PolicyError::TooOld { .. }))),
        "{old:?}"
    );
}

#[test]
fn the_forged_token_fails_its_signature() {
    let Some(dir) = gcp_fixtures() else { return };
    let f = load_gcp_fixtures(&dir);
    CsToken::parse(&f.bad_signature).unwrap();
    let err = Verifier::production()
        .verify(&f.bad_signature, at_secs(GCP_VALID_IAT))
        .unwrap_err();
    assert_eq!(err, VerifyError::TokenSignature);
    // Claims edited after signing: the same.
    let text = std::str::from_utf8(&f.valid).unwrap();
    let parts: Vec<&str> = text.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
    let edited = claims.replace("\"enabled\"", "\"disabled-since-boot\"");
    assert_ne!(edited, claims);
    let forged = format!("{}.{}.{}", parts[0], b64.encode(edited), parts[2]);
    let err = Verifier::production()
        .verify(forged.as_bytes(), at_secs(GCP_VALID_IAT))
        .unwrap_err();
    assert_eq!(err, VerifyError::TokenSignature);
}

#[test]
fn the_self_signed_token_is_refused() {
    let Some(dir) = gcp_fixtures() else { return };
    let f = load_gcp_fixtures(&dir);
    let token = CsToken::parse(&f.self_signed).unwrap();
    assert_eq!(token.x5c().len(), 1);
    for at in [SystemTime::now(), at_secs(token.claims().iat)] {
        let err = Verifier::production()
            .verify(&f.self_signed, at)
            .unwrap_err();
        assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");
    }
}

#[test]
fn the_root_is_the_pinned_one() {
    let Some(dir) = gcp_fixtures() else { return };
    let f = load_gcp_fixtures(&dir);
    let body: String = f
        .root_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let root = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &root);
    assert_eq!(digest.as_ref(), GOOGLE_CS_ROOT_SHA256);
    assert_eq!(
        hex::encode(GOOGLE_CS_ROOT_SHA256),
        "148b293821bb0c6a317f413c8ba475814091cb22d49b9e3c94198db8e8f86c39"
    );
    let token = CsToken::parse(&f.valid).unwrap();
    assert_eq!(token.x5c().last().unwrap(), &root);

    let at = at_secs(GCP_VALID_IAT);
    // A verifier without Google's root refuses the genuine token.
    let err = Verifier::aws_nitro().verify(&f.valid, at).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");
    // Pinned to Google's root: accepted; pinned to another: refused, naming the pin.
    Verifier::production()
        .restricted_to(&[(Provider::GcpCs, GOOGLE_CS_ROOT_SHA256)])
        .verify(&f.valid, at)
        .unwrap();
    let err = Verifier::production()
        .restricted_to(&[(Provider::GcpCs, [7; 32])])
        .verify(&f.valid, at)
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::NoRootForPin {
            provider: Provider::GcpCs,
            pin: hex::encode([7; 32])
        }
    );
    assert!(err.to_string().contains(&hex::encode([7; 32])), "{err}");
    // Pinning Nitro leaves Confidential Space's roots alone.
    Verifier::production()
        .restricted_to(&[(Provider::Nitro, [7; 32])])
        .verify(&f.valid, at)
        .unwrap();
}

#[test]
fn measurement_sets_audience_and_nonce_are_applied() {
    let Some(dir) = gcp_fixtures() else { return };
    let f = load_gcp_fixtures(&dir);
    let at = at_secs(GCP_VALID_IAT);
    let appraise =
        |e: Expectation| Verifier::production().appraise(&f.valid, &e.allow_debug(true), at);
    // Another instance, then ours: the second set is named.
    let other = set(&[("image_digest", DIGEST), ("instance_id", "1")]);
    let a = appraise(Expectation::new(vec![other.clone(), ours()]).unwrap()).unwrap();
    assert_eq!(a.matched_set(), 1);
    // A Nitro set is skipped, and the places still count it.
    let nitro_set: Measurements =
        attestation::nitro::MeasurementSet::new([(0u8, vec![0; 48])].into())
            .unwrap()
            .into();
    let err = appraise(Expectation::new(vec![nitro_set, other]).unwrap()).unwrap_err();
    assert_eq!(
        err,
        AppraisalError::Policy(PolicyError::Claims(vec![ClaimMismatch {
            set: 1,
            key: "instance_id",
            expected: "1".to_owned(),
            found: Some(INSTANCE.to_owned()),
        }]))
    );
    let tdx = set(&[("image_digest", DIGEST), ("hwmodel", "GCP_INTEL_TDX")]);
    let err = appraise(Expectation::new(vec![tdx]).unwrap()).unwrap_err();
    assert!(
        matches!(&err, AppraisalError::Policy(PolicyError::Claims(m)) if m[0].key == "hwmodel"),
        "{err}"
    );
    // Only Nitro sets: refused by provider.
    let nitro_only: Measurements =
        attestation::nitro::MeasurementSet::new([(0u8, vec![0; 48])].into())
            .unwrap()
            .into();
    assert_eq!(
        appraise(Expectation::new(vec![nitro_only]).unwrap()).unwrap_err(),
        AppraisalError::Policy(PolicyError::NoSetForProvider {
            provider: Provider::GcpCs
        })
    );
    // The audience a node expects is not Oak's.
    let err = appraise(
        Expectation::new(vec![ours()])
            .unwrap()
            .expect_audience(gcp::CUSTODY_AUDIENCE.to_owned()),
    )
    .unwrap_err();
    assert_eq!(
        err,
        AppraisalError::Policy(PolicyError::ClaimValue {
            claim: "aud",
            expected: "tee-custody".to_owned(),
            found: "https://echo.oak.dev".to_owned(),
        })
    );
    let err = appraise(
        Expectation::new(vec![ours()])
            .unwrap()
            .expect_nonce(b"another nonce".to_vec()),
    )
    .unwrap_err();
    assert_eq!(err, AppraisalError::Policy(PolicyError::NonceMismatch));
    // The provider's set type round-trips through the provider-neutral one.
    let Measurements::GcpCs(s) = ours() else {
        panic!("not a gcp-cs set")
    };
    assert_eq!(s.instance_id(), Some(INSTANCE));
    assert!(MeasurementSet::from_entries(vec![]).is_err());
}

#[test]
fn a_bundle_must_carry_the_values_its_token_binds() {
    let Some(dir) = gcp_fixtures() else { return };
    let f = load_gcp_fixtures(&dir);
    let token = std::str::from_utf8(&f.valid).unwrap();
    // The fixture's eat_nonce is no binding digest: no bundle of it parses.
    let bundle = gcp::encode_bundle(token, Some(b"n"), Some(b"k"), None);
    assert_eq!(Provider::of_evidence(&bundle), Some(Provider::GcpCs));
    assert_eq!(
        CsEvidence::parse(&bundle).unwrap_err(),
        TokenError::BindingMismatch
    );
    assert_eq!(
        Verifier::production()
            .verify(&bundle, at_secs(GCP_VALID_IAT))
            .unwrap_err(),
        VerifyError::Token(TokenError::BindingMismatch)
    );
    // As a token alone, with a newline after it: refused, not trimmed.
    let mut with_newline = f.valid.clone();
    with_newline.push(b'\n');
    assert!(matches!(
        Evidence::parse(&with_newline).unwrap_err(),
        VerifyError::Token(TokenError::Character { .. })
    ));
}

#[test]
fn the_report_shows_what_the_token_says() {
    let Some(dir) = gcp_fixtures() else { return };
    let f = load_gcp_fixtures(&dir);
    let report = gcp::report::TokenReport::new(&CsEvidence::parse(&f.valid).unwrap());
    assert_eq!(
        (report.provider, report.form, report.alg),
        ("gcp-cs", "token", "RS256")
    );
    assert_eq!(report.iat, GCP_VALID_IAT);
    assert_eq!(report.issued_at, "2025-06-23T14:22:31Z");
    assert_eq!(report.expires_at, "2025-06-23T15:22:31Z");
    assert!(report.debug);
    assert_eq!(report.dbgstat.as_deref(), Some("enabled"));
    assert_eq!(report.image_digest.as_deref(), Some(DIGEST));
    assert_eq!(report.instance_id.as_deref(), Some(INSTANCE));
    assert_eq!(report.nonce, None);
    assert_eq!(report.chain.len(), 3);
    assert_eq!(report.chain[0].slot, "x5c[0]");
    assert!(
        report.chain[1]
            .subject
            .as_deref()
            .unwrap()
            .contains("Confidential Space Intermediate CA")
    );
    assert_eq!(report.chain[2].sha256, hex::encode(GOOGLE_CS_ROOT_SHA256));
    assert_eq!(
        report.claims["submods"]["container"]["image_reference"],
        "europe-west2-docker.pkg.dev/oak-ci/example-enclave-apps/echo_enclave_app:latest"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["form"], "token");
    assert_eq!(json["chain"][2]["not_after"], "2034-01-16T22:10:49Z");
}
