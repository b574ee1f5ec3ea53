//! Confidential Space tokens that a simulated launcher signed with one thing changed:
//! each must be refused with the error that names what changed. Then the limits, at
//! exactly MAX and MAX+1.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::gcp::sim::tamper::Chain;
use attestation::gcp::sim::{SimCsAttester, SimCsCa, SimWorkload};
use attestation::gcp::{
    self, CUSTODY_AUDIENCE, CsEvidence, MAX_BUNDLE_LEN, MAX_TOKEN_LEN, MAX_X5C_CERTS,
    binding_nonce, encode_bundle,
};
use attestation::{
    AppraisalError, AttestationRequest, CertProblem, CertSlot, ClaimMismatch, Expectation,
    PolicyError, TokenError, Verifier, VerifyError,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const IMAGE: &[u8] = b"tampered image";
const DAY: Duration = Duration::from_secs(86_400);

struct Sim {
    ca: SimCsCa,
    /// Its leaf has been valid for a day.
    attester: SimCsAttester,
    now: SystemTime,
}

fn sim() -> &'static Sim {
    static SIM: OnceLock<Sim> = OnceLock::new();
    SIM.get_or_init(|| {
        // Whole seconds, as tokens count time.
        let now = UNIX_EPOCH + Duration::from_secs(secs(SystemTime::now()));
        let ca = SimCsCa::new(now - 2 * DAY).unwrap();
        let attester = SimCsAttester::new(&ca, workload(), now - DAY).unwrap();
        Sim { ca, attester, now }
    })
}

fn workload() -> SimWorkload {
    SimWorkload::of_image(IMAGE, "node-1")
}

fn verifier() -> Verifier {
    Verifier::production()
        .trust_simulated_gcp_root(sim().ca.root_der(), sim().now)
        .unwrap()
}

fn request() -> AttestationRequest {
    AttestationRequest {
        nonce: Some(vec![1; 32]),
        public_key: Some(b"tls key".to_vec()),
        user_data: Some(vec![2; 32]),
    }
}

/// What a node expects of this peer.
fn expectation() -> Expectation {
    Expectation::new(vec![workload().measurement_set().unwrap().into()])
        .unwrap()
        .expect_audience(CUSTODY_AUDIENCE.to_owned())
        .expect_nonce(vec![1; 32])
}

type Edit = Box<dyn Fn(&mut Map<String, Value>, &mut Map<String, Value>)>;

/// An edit of a token's header and claims before it is signed.
fn edit(f: impl Fn(&mut Map<String, Value>, &mut Map<String, Value>) + 'static) -> Edit {
    Box::new(f)
}

/// A bundle for `request()` whose token was edited before the launcher signed it.
fn signed_with(attester: &SimCsAttester, edit: &Edit) -> Vec<u8> {
    let (mut header, mut claims) = attester.parts(&request(), sim().now).unwrap();
    edit(&mut header, &mut claims);
    let token = attester.sign(&header, &claims).unwrap();
    let r = request();
    encode_bundle(
        &token,
        r.nonce.as_deref(),
        r.public_key.as_deref(),
        r.user_data.as_deref(),
    )
}

fn appraise(bundle: &[u8]) -> Result<(), AppraisalError> {
    verifier()
        .appraise(bundle, &expectation(), sim().now)
        .map(|_| ())
}

fn claim(name: &'static str, value: Value) -> Edit {
    edit(move |_, c| {
        c.insert(name.to_owned(), value.clone());
    })
}

fn without(name: &'static str) -> Edit {
    edit(move |_, c| {
        c.remove(name);
    })
}

fn gce(name: &'static str, value: &'static str) -> Edit {
    edit(move |_, c| {
        c["submods"]["gce"][name] = json!(value);
    })
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn policy(e: PolicyError) -> Result<(), AppraisalError> {
    Err(AppraisalError::Policy(e))
}

fn claims_mismatch(key: &'static str, expected: &str, found: &str) -> Result<(), AppraisalError> {
    policy(PolicyError::Claims(vec![ClaimMismatch {
        set: 0,
        key,
        expected: expected.to_owned(),
        found: Some(found.to_owned()),
    }]))
}

#[test]
fn the_untouched_token_is_accepted() {
    let bundle = signed_with(&sim().attester, &(edit(|_, _| {})));
    appraise(&bundle).unwrap();
    assert_eq!(
        bundle,
        sim().attester.attest_at(&request(), sim().now).unwrap()
    );
}

#[test]
fn each_claim_that_matters_is_checked() {
    let w = workload();
    let now = secs(sim().now);
    let other_digest = format!("sha256:{}", "ab".repeat(32));
    let cases: Vec<(&str, Edit, Result<(), AppraisalError>)> = vec![
        (
            "iss",
            claim("iss", json!("https://accounts.google.com")),
            policy(PolicyError::ClaimValue {
                claim: "iss",
                expected: gcp::ISSUER.to_owned(),
                found: "https://accounts.google.com".to_owned(),
            }),
        ),
        (
            "no iss",
            without("iss"),
            policy(PolicyError::ClaimMissing { claim: "iss" }),
        ),
        (
            "aud",
            claim("aud", json!("https://other.example")),
            policy(PolicyError::ClaimValue {
                claim: "aud",
                expected: CUSTODY_AUDIENCE.to_owned(),
                found: "https://other.example".to_owned(),
            }),
        ),
        (
            "no aud",
            without("aud"),
            policy(PolicyError::ClaimMissing { claim: "aud" }),
        ),
        (
            "swname",
            claim("swname", json!("GCE")),
            policy(PolicyError::ClaimValue {
                claim: "swname",
                expected: "CONFIDENTIAL_SPACE".to_owned(),
                found: "GCE".to_owned(),
            }),
        ),
        (
            "dbgstat",
            claim("dbgstat", json!("enabled")),
            policy(PolicyError::DebugToken {
                dbgstat: "enabled".to_owned(),
            }),
        ),
        (
            "no dbgstat",
            without("dbgstat"),
            policy(PolicyError::ClaimMissing { claim: "dbgstat" }),
        ),
        (
            "support_attributes",
            claim("support_attributes", json!(["LATEST", "USABLE"])),
            policy(PolicyError::NotStable),
        ),
        (
            "no support_attributes",
            without("support_attributes"),
            policy(PolicyError::NotStable),
        ),
        (
            "hwmodel",
            claim("hwmodel", json!("GCP_SHIELDED_VM")),
            policy(PolicyError::HardwareModel {
                hwmodel: "GCP_SHIELDED_VM".to_owned(),
            }),
        ),
        (
            "no hwmodel",
            without("hwmodel"),
            policy(PolicyError::ClaimMissing { claim: "hwmodel" }),
        ),
        (
            "secboot",
            claim("secboot", json!(false)),
            policy(PolicyError::SecureBootOff),
        ),
        (
            "no secboot",
            without("secboot"),
            policy(PolicyError::SecureBootOff),
        ),
        (
            "image_digest",
            edit({
                let d = other_digest.clone();
                move |_, c| c["submods"]["container"]["image_digest"] = json!(d)
            }),
            claims_mismatch("image_digest", &w.image_digest, &other_digest),
        ),
        (
            "project_id",
            gce("project_id", "another-project"),
            claims_mismatch("project_id", &w.project_id, "another-project"),
        ),
        (
            "zone",
            gce("zone", "sim-zone-b"),
            claims_mismatch("zone", &w.zone, "sim-zone-b"),
        ),
        (
            "instance_id",
            gce("instance_id", "12345"),
            claims_mismatch("instance_id", &w.instance_id, "12345"),
        ),
        (
            "no gce",
            edit(|_, c| {
                c["submods"].as_object_mut().unwrap().remove("gce");
            }),
            policy(PolicyError::Claims(vec![ClaimMismatch {
                set: 0,
                key: "project_id",
                expected: w.project_id.clone(),
                found: None,
            }])),
        ),
        (
            "iat ahead",
            claim("iat", json!(now + 120)),
            policy(PolicyError::FromTheFuture { ahead_ms: 120_000 }),
        ),
        (
            "iat old",
            claim("iat", json!(now - 400)),
            policy(PolicyError::TooOld {
                age_ms: 400_000,
                max_ms: 300_000,
            }),
        ),
        (
            "nbf ahead",
            claim("nbf", json!(now + 120)),
            Err(AppraisalError::Policy(PolicyError::NotYetValid {
                nbf: attestation::time_fmt::rfc3339(Duration::from_secs(now + 120)),
            })),
        ),
        (
            "exp past",
            claim("exp", json!(now - 61)),
            Err(AppraisalError::Policy(PolicyError::Expired {
                exp: attestation::time_fmt::rfc3339(Duration::from_secs(now - 61)),
            })),
        ),
        (
            "iat before the leaf",
            edit(move |_, c| {
                c.insert("iat".to_owned(), json!(now - 2 * DAY.as_secs()));
            }),
            Err(AppraisalError::Verify(
                VerifyError::IssuedOutsideLeafValidity {
                    iat: attestation::time_fmt::rfc3339(Duration::from_secs(
                        now - 2 * DAY.as_secs(),
                    )),
                },
            )),
        ),
        (
            "eat_nonce",
            claim(
                "eat_nonce",
                json!([binding_nonce(Some(&[9; 32]), None, None)]),
            ),
            Err(AppraisalError::Verify(VerifyError::Token(
                TokenError::BindingMismatch,
            ))),
        ),
        (
            "no eat_nonce",
            without("eat_nonce"),
            Err(AppraisalError::Verify(VerifyError::Token(
                TokenError::BindingMismatch,
            ))),
        ),
        (
            "alg",
            edit(|h, _| {
                h.insert("alg".to_owned(), json!("HS256"));
            }),
            Err(AppraisalError::Verify(VerifyError::Token(
                TokenError::Algorithm {
                    found: "\"HS256\"".to_owned(),
                },
            ))),
        ),
        (
            "alg none",
            edit(|h, _| {
                h.insert("alg".to_owned(), json!("none"));
            }),
            Err(AppraisalError::Verify(VerifyError::Token(
                TokenError::Algorithm {
                    found: "\"none\"".to_owned(),
                },
            ))),
        ),
        (
            "jwk",
            edit(|h, _| {
                h.insert("jwk".to_owned(), json!({"kty": "RSA"}));
            }),
            Err(AppraisalError::Verify(VerifyError::Token(
                TokenError::ForbiddenHeader("jwk"),
            ))),
        ),
        (
            "no x5c",
            edit(|h, _| {
                h.remove("x5c");
            }),
            Err(AppraisalError::Verify(VerifyError::Token(
                TokenError::MissingX5c,
            ))),
        ),
    ];
    for (name, edit, expected) in cases {
        let result = appraise(&signed_with(&sim().attester, &edit));
        assert_eq!(result, expected, "{name}");
    }
}

#[test]
fn a_pinned_hardware_model_is_checked() {
    let mut entries = vec![("hwmodel".to_owned(), "GCP_AMD_SEV_SNP".to_owned())];
    entries.extend(
        workload()
            .measurement_set()
            .unwrap()
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let set = gcp::MeasurementSet::from_entries(entries).unwrap();
    let bundle = sim().attester.attest_at(&request(), sim().now).unwrap();
    let err = verifier()
        .appraise(
            &bundle,
            &Expectation::new(vec![set.into()]).unwrap(),
            sim().now,
        )
        .unwrap_err();
    assert_eq!(
        err,
        AppraisalError::Policy(PolicyError::Claims(vec![ClaimMismatch {
            set: 0,
            key: "hwmodel",
            expected: "GCP_AMD_SEV_SNP".to_owned(),
            found: Some("GCP_INTEL_TDX".to_owned()),
        }]))
    );
}

fn x5c_edit(order: &'static [usize]) -> Edit {
    edit(move |h, _| {
        let x5c = h["x5c"].as_array().unwrap().clone();
        h["x5c"] = Value::Array(order.iter().map(|i| x5c[*i].clone()).collect());
    })
}

fn verify_error(bundle: &[u8]) -> VerifyError {
    match appraise(bundle) {
        Err(AppraisalError::Verify(e)) => e,
        other => panic!("expected a verification error, got {other:?}"),
    }
}

fn cert_error(slot: usize, problem: CertProblem) -> VerifyError {
    VerifyError::Certificate {
        slot: CertSlot::X5c(slot),
        problem,
    }
}

#[test]
fn x5c_order_and_contents_are_checked() {
    let a = &sim().attester;
    // The root first, or left out: the last certificate is no trusted root.
    for order in [&[2usize, 1, 0][..], &[0, 1]] {
        let order: &'static [usize] = Box::leak(order.to_vec().into_boxed_slice());
        let err = verify_error(&signed_with(a, &x5c_edit(order)));
        assert!(
            matches!(err, VerifyError::UntrustedRoot { .. }),
            "{order:?}: {err}"
        );
    }
    // The intermediate left out; leaf and intermediate swapped.
    assert_eq!(
        verify_error(&signed_with(a, &x5c_edit(&[0, 2]))),
        cert_error(0, CertProblem::IssuerMismatch)
    );
    assert_eq!(
        verify_error(&signed_with(a, &x5c_edit(&[1, 0, 2]))),
        cert_error(1, CertProblem::IssuerMismatch)
    );
    // The intermediate repeated, or a certificate listed twice.
    assert_eq!(
        verify_error(&signed_with(a, &x5c_edit(&[0, 1, 1, 2]))),
        VerifyError::Token(TokenError::X5cEntry {
            index: 2,
            reason: "repeats x5c[1]".to_owned()
        })
    );
    // Another simulator's intermediate, of the same name: its signature fails.
    let other = SimCsCa::new(sim().now - DAY).unwrap();
    let theirs = STANDARD.encode(other.intermediate_der());
    let swap: Edit = edit(move |h, _| h["x5c"][1] = json!(theirs));
    assert_eq!(
        verify_error(&signed_with(a, &swap)),
        cert_error(1, CertProblem::BadSignature)
    );
    // Another attester's chain, whose leaf did not sign this token.
    let stranger = SimCsAttester::new(&sim().ca, workload(), sim().now - DAY).unwrap();
    let chain: Vec<Value> = stranger
        .x5c()
        .iter()
        .map(|der| json!(STANDARD.encode(der)))
        .collect();
    let swap: Edit = edit(move |h, _| h["x5c"] = Value::Array(chain.clone()));
    assert_eq!(
        verify_error(&signed_with(a, &swap)),
        VerifyError::TokenSignature
    );
    // A certificate that is not DER.
    let junk: Edit = edit(|h, _| h["x5c"][0] = json!(STANDARD.encode(b"junk")));
    assert!(matches!(
        verify_error(&signed_with(a, &junk)),
        VerifyError::Certificate {
            slot: CertSlot::X5c(0),
            problem: CertProblem::Malformed(_)
        }
    ));
}

#[test]
fn each_broken_chain_is_refused_at_its_certificate() {
    let cases = [
        (Chain::IntermediateNotCa, cert_error(1, CertProblem::NotCa)),
        (
            Chain::IntermediateWithoutCertSign,
            cert_error(1, CertProblem::KeyUsage("certificate signing")),
        ),
        (Chain::LeafIsCa, cert_error(0, CertProblem::LeafIsCa)),
        (
            Chain::LeafWithoutDigitalSignature,
            cert_error(0, CertProblem::KeyUsage("digital signatures")),
        ),
        (
            Chain::LeafSignedByAnotherKey,
            cert_error(0, CertProblem::BadSignature),
        ),
        (
            Chain::LeafKey1024,
            cert_error(
                0,
                CertProblem::RsaKeySize {
                    bits: 1024,
                    min: 2048,
                    max: 8192,
                },
            ),
        ),
        (
            Chain::LeafSha1,
            cert_error(
                0,
                CertProblem::RsaSignatureAlgorithm("1.2.840.113549.1.1.5".to_owned()),
            ),
        ),
    ];
    for (chain, expected) in cases {
        let attester =
            SimCsAttester::with_chain(&sim().ca, workload(), sim().now - DAY, chain).unwrap();
        let bundle = attester.attest_at(&request(), sim().now).unwrap();
        assert_eq!(verify_error(&bundle), expected, "{chain:?}");
    }
    // Expired, or not yet valid, at the time of the check.
    let young = SimCsAttester::new(&sim().ca, workload(), sim().now + DAY).unwrap();
    let bundle = young.attest_at(&request(), sim().now + DAY).unwrap();
    assert!(matches!(
        verify_error(&bundle),
        VerifyError::Certificate {
            slot: CertSlot::X5c(0),
            problem: CertProblem::NotYetValid { .. }
        }
    ));
    let err = verifier()
        .verify(
            &sim().attester.attest_at(&request(), sim().now).unwrap(),
            sim().now + 400 * DAY,
        )
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
}

#[test]
fn bundles_must_carry_what_their_token_binds() {
    let token = sim().attester.token_at(&request(), sim().now).unwrap();
    let r = request();
    let (n, k, u) = (
        r.nonce.as_deref(),
        r.public_key.as_deref(),
        r.user_data.as_deref(),
    );
    CsEvidence::parse(&encode_bundle(&token, n, k, u)).unwrap();
    // Any value changed, added or left out.
    for (n, k, u) in [
        (Some(&[9u8; 32][..]), k, u),
        (n, Some(&b"another key"[..]), u),
        (n, k, Some(&[3u8; 32][..])),
        (None, k, u),
        (n, None, u),
        (n, k, None),
        (Some(&[][..]), k, u),
    ] {
        assert_eq!(
            CsEvidence::parse(&encode_bundle(&token, n, k, u)).unwrap_err(),
            TokenError::BindingMismatch,
            "{n:?} {k:?} {u:?}"
        );
    }
    let text = String::from_utf8(encode_bundle(&token, n, k, u)).unwrap();
    let refused = |text: String| CsEvidence::parse(text.as_bytes()).unwrap_err();
    assert!(matches!(
        refused(format!("{text}\n")),
        TokenError::Bundle(_)
    ));
    assert!(matches!(
        refused(format!(" {text}")),
        TokenError::NotCsEvidence
    ));
    assert!(matches!(
        refused(text.replacen("\"v\":1", "\"v\":1,\"extra\":0", 1)),
        TokenError::Bundle(_)
    ));
    assert!(matches!(
        refused(text.replacen("\"v\":1", "\"v\":1,\"v\":1", 1)),
        TokenError::Bundle(_)
    ));
    assert_eq!(
        refused(text.replacen("\"v\":1", "\"v\":2", 1)),
        TokenError::BundleVersion(2)
    );
    assert!(matches!(
        refused(text.replacen("\"v\":1,", "", 1)),
        TokenError::Bundle(_)
    ));
    let upper = text.replace(&hex::encode([2u8; 32]), &hex::encode_upper([0xaau8; 32]));
    assert!(matches!(
        refused(upper),
        TokenError::FieldFormat {
            field: "user_data",
            ..
        }
    ));
}

/// A token for `request()` signed by the simulated launcher, padded with an extra claim
/// to exactly `len` bytes.
fn token_of_len(len: usize) -> String {
    token_for(&request(), len)
}

/// A token for `request` padded to exactly `len` bytes.
fn token_for(request: &AttestationRequest, len: usize) -> String {
    let a = &sim().attester;
    let (header, claims) = a.parts(request, sim().now).unwrap();
    let base = a.sign(&header, &claims).unwrap().len();
    // Each 3 bytes of claims are 4 characters; try a few pads and key ids around that.
    for kid_extra in 0..3 {
        let mut h = header.clone();
        let kid = h["kid"].as_str().unwrap().to_owned() + &"k".repeat(kid_extra);
        h["kid"] = json!(kid);
        let guess = (len - base) * 3 / 4;
        for pad in guess.saturating_sub(16)..guess + 16 {
            let mut c = claims.clone();
            c.insert("pad".to_owned(), json!("p".repeat(pad)));
            let token = a.sign(&h, &c).unwrap();
            if token.len() == len {
                return token;
            }
        }
    }
    panic!("no token of {len} bytes")
}

#[test]
fn a_token_of_max_len_is_accepted_and_one_byte_more_refused() {
    let at_max = token_of_len(MAX_TOKEN_LEN);
    assert_eq!(at_max.len(), MAX_TOKEN_LEN);
    let r = request();
    let bundle = encode_bundle(
        &at_max,
        r.nonce.as_deref(),
        r.public_key.as_deref(),
        r.user_data.as_deref(),
    );
    appraise(&bundle).unwrap();
    verifier().verify(at_max.as_bytes(), sim().now).unwrap();
    let over = token_of_len(MAX_TOKEN_LEN + 1);
    assert_eq!(
        verifier().verify(over.as_bytes(), sim().now).unwrap_err(),
        VerifyError::Token(TokenError::TooLarge {
            len: MAX_TOKEN_LEN + 1,
            max: MAX_TOKEN_LEN
        })
    );
}

#[test]
fn a_bundle_at_max_len_passes_the_size_check_and_one_byte_more_does_not() {
    // The largest real bundle: a token at its limit and every value at its limit.
    let big = AttestationRequest {
        nonce: Some(vec![1; 512]),
        public_key: Some(vec![2; 1024]),
        user_data: Some(vec![3; 512]),
    };
    let token = token_for(&big, MAX_TOKEN_LEN);
    let bundle = encode_bundle(
        &token,
        big.nonce.as_deref(),
        big.public_key.as_deref(),
        big.user_data.as_deref(),
    );
    assert!(bundle.len() <= MAX_BUNDLE_LEN);
    assert!(bundle.len() <= attestation::MAX_EVIDENCE_LEN);
    verifier().verify(&bundle, sim().now).unwrap();
    // Exactly at the limit: the bundle's size passes, its oversized token does not.
    let frame = |len: usize| {
        let filler = len - "{\"v\":1,\"token\":\"\"}".len();
        format!("{{\"v\":1,\"token\":\"eyJ{}\"}}", "A".repeat(filler - 3)).into_bytes()
    };
    let at_max = frame(MAX_BUNDLE_LEN);
    assert_eq!(at_max.len(), MAX_BUNDLE_LEN);
    assert!(matches!(
        CsEvidence::parse(&at_max).unwrap_err(),
        TokenError::TooLarge { .. }
    ));
    assert_eq!(
        CsEvidence::parse(&frame(MAX_BUNDLE_LEN + 1)).unwrap_err(),
        TokenError::BundleTooLarge {
            len: MAX_BUNDLE_LEN + 1,
            max: MAX_BUNDLE_LEN
        }
    );
}

#[test]
fn x5c_of_max_certificates_is_accepted_and_one_more_refused() {
    let four = SimCsAttester::with_chain(
        &sim().ca,
        workload(),
        sim().now - DAY,
        Chain::ExtraIntermediate,
    )
    .unwrap();
    assert_eq!(four.x5c().len(), MAX_X5C_CERTS);
    appraise(&four.attest_at(&request(), sim().now).unwrap()).unwrap();
    let extra = STANDARD.encode(sim().ca.intermediate_der());
    let five: Edit = edit(move |h, _| {
        h["x5c"].as_array_mut().unwrap().insert(2, json!(extra));
    });
    assert_eq!(
        verify_error(&signed_with(&four, &five)),
        VerifyError::Token(TokenError::X5cCount {
            count: MAX_X5C_CERTS + 1,
            min: 1,
            max: MAX_X5C_CERTS
        })
    );
}

#[test]
fn bound_values_at_their_limits_and_one_byte_more() {
    let a = &sim().attester;
    // A bundle the launcher would never sign, built by hand: the parser refuses the
    // value's size before it compares digests.
    let bundle = |nonce: &[u8], key: &[u8], user: &[u8]| {
        let (header, mut claims) = a.parts(&AttestationRequest::default(), sim().now).unwrap();
        claims.insert(
            "eat_nonce".to_owned(),
            json!([binding_nonce(Some(nonce), Some(key), Some(user))]),
        );
        let token = a.sign(&header, &claims).unwrap();
        encode_bundle(&token, Some(nonce), Some(key), Some(user))
    };
    let ok = bundle(&[1; 512], &[2; 1024], &[3; 512]);
    verifier().verify(&ok, sim().now).unwrap();
    for (b, field, len, min, max) in [
        (bundle(&[1; 513], &[2; 1], &[]), "nonce", 513, 0, 512),
        (bundle(&[], &[2; 1025], &[]), "public_key", 1025, 1, 1024),
        (bundle(&[], &[], &[]), "public_key", 0, 1, 1024),
        (bundle(&[], &[2; 1], &[3; 513]), "user_data", 513, 0, 512),
    ] {
        assert_eq!(
            CsEvidence::parse(&b).unwrap_err(),
            TokenError::FieldLength {
                field,
                len,
                min,
                max
            },
            "{field} {len}"
        );
    }
}
