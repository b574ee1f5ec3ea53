//! The simulated Confidential Space attester: tokens in Google's format that the
//! production verifier accepts once, and only once, it is told to trust the simulated
//! root; bundles whose values the token binds; a CA file shared by a cluster.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::gcp::sim::{SIM_PROJECT, SIM_ZONE, SimCsAttester, SimCsCa, SimWorkload};
use attestation::gcp::{self, CUSTODY_AUDIENCE, CsEvidence, CsToken, binding_nonce};
use attestation::{
    AppraisalError, AttestError, AttestationRequest, Attester, CertProblem, Evidence, Expectation,
    PolicyError, Provider, Verifier, VerifyError,
};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const IMAGE: &[u8] = b"a confidential space image";

/// One CA for the whole file: RSA keys take a while to generate.
fn ca() -> &'static SimCsCa {
    static CA: OnceLock<SimCsCa> = OnceLock::new();
    CA.get_or_init(|| SimCsCa::new(SystemTime::now() - Duration::from_secs(86_400)).unwrap())
}

fn verifier() -> Verifier {
    Verifier::production()
        .trust_simulated_gcp_root(ca().root_der(), SystemTime::now())
        .unwrap()
}

fn request() -> AttestationRequest {
    AttestationRequest {
        user_data: Some(vec![0x42; 32]),
        nonce: Some(vec![1; 32]),
        public_key: Some(b"a TLS key".to_vec()),
    }
}

#[test]
fn a_simulated_workload_measures_its_image_and_instance() {
    let w = SimWorkload::of_image(IMAGE, "node-3");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, IMAGE);
    assert_eq!(w.image_digest, format!("sha256:{}", hex::encode(digest)));
    assert_eq!(
        (w.project_id.as_str(), w.zone.as_str()),
        (SIM_PROJECT, SIM_ZONE)
    );
    assert_eq!(w.project_id, "sim-project");
    assert_eq!(w.zone, "sim-zone-a");
    let id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"node-3");
    let first: [u8; 8] = id.as_ref()[..8].try_into().unwrap();
    assert_eq!(w.instance_id, u64::from_be_bytes(first).to_string());
    assert_eq!(w.instance_name, "node-3");
    assert_eq!(w.hwmodel, "GCP_INTEL_TDX");
    assert!(!w.debug);
    assert_ne!(
        SimWorkload::of_image(IMAGE, "node-4").instance_id,
        w.instance_id
    );
    let set = w.measurement_set().unwrap();
    assert_eq!(set.image_digest(), Some(w.image_digest.as_str()));
    assert_eq!(set.instance_id(), Some(w.instance_id.as_str()));
    set.pins_code().unwrap();
    // The running test binary as image, as a node measures itself.
    let exe = SimWorkload::of_current_exe("node-3").unwrap();
    let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(exe, SimWorkload::of_image(&bytes, "node-3"));
}

#[test]
fn its_bundles_verify_and_bind_the_request() {
    let now = SystemTime::now();
    let workload = SimWorkload::of_image(IMAGE, "node-1");
    let attester: Arc<dyn Attester> =
        Arc::new(SimCsAttester::new(ca(), workload.clone(), now).unwrap());
    assert_eq!(attester.provider(), Provider::GcpCs);
    let bundle = attester.attest(&request()).unwrap();
    assert!(bundle.starts_with(b"{\"v\":1,\"token\":\"eyJ"));
    assert_eq!(Provider::of_evidence(&bundle), Some(Provider::GcpCs));

    let expectation = Expectation::new(vec![
        SimWorkload::of_image(IMAGE, "node-2")
            .measurement_set()
            .unwrap()
            .into(),
        workload.measurement_set().unwrap().into(),
    ])
    .unwrap()
    .expect_audience(CUSTODY_AUDIENCE.to_owned())
    .expect_nonce(vec![1; 32]);
    let appraisal = verifier().appraise(&bundle, &expectation, now).unwrap();
    assert_eq!(appraisal.provider(), Provider::GcpCs);
    assert_eq!(appraisal.matched_set(), 1);
    let binding = appraisal.binding();
    assert_eq!(binding.nonce, Some(&[1u8; 32][..]));
    assert_eq!(binding.public_key, Some(&b"a TLS key"[..]));
    assert_eq!(binding.user_data, Some(&[0x42u8; 32][..]));
    let made = now.duration_since(UNIX_EPOCH).unwrap();
    assert!(made.abs_diff(appraisal.time()) < Duration::from_secs(5));
    let evidence = appraisal.evidence();
    assert_eq!(evidence.attester_id(), workload.instance_id);
    assert_eq!(
        evidence.expires().unwrap(),
        appraisal.time() + Duration::from_secs(3600)
    );
    assert_eq!(
        hex::encode(evidence.code_measurement().unwrap()),
        workload.image_digest.trim_start_matches("sha256:")
    );
    let Evidence::GcpCs(cs) = &**evidence else {
        panic!("not Confidential Space evidence")
    };
    assert!(cs.is_bundle());
    let claims = cs.token().claims();
    assert_eq!(
        claims.eat_nonce,
        [binding_nonce(
            Some(&[1; 32]),
            Some(b"a TLS key"),
            Some(&[0x42; 32])
        )]
    );
    assert_eq!(claims.support_attributes, ["LATEST", "STABLE", "USABLE"]);
    assert_eq!(claims.dbgstat.as_deref(), Some("disabled-since-boot"));
    assert_eq!(cs.token().x5c().len(), 3);
    assert_eq!(cs.token().x5c()[2], ca().root_der());
    assert_eq!(cs.token().x5c()[1], ca().intermediate_der());
}

#[test]
fn a_token_alone_binds_only_its_eat_nonce() {
    let now = SystemTime::now();
    let workload = SimWorkload::of_image(IMAGE, "node-1");
    let attester = SimCsAttester::new(ca(), workload.clone(), now).unwrap();
    let token = attester.token_at(&request(), now).unwrap();
    let parsed = CsEvidence::parse(token.as_bytes()).unwrap();
    assert!(!parsed.is_bundle());
    let digest = binding_nonce(Some(&[1; 32]), Some(b"a TLS key"), Some(&[0x42; 32]));
    let binding = parsed.binding();
    assert_eq!(binding.nonce, Some(digest.as_bytes()));
    assert_eq!((binding.public_key, binding.user_data), (None, None));
    let sets = vec![workload.measurement_set().unwrap().into()];
    verifier()
        .appraise(
            token.as_bytes(),
            &Expectation::new(sets.clone())
                .unwrap()
                .expect_nonce(digest.into_bytes()),
            now,
        )
        .unwrap();
    let err = verifier()
        .appraise(
            token.as_bytes(),
            &Expectation::new(sets).unwrap().expect_nonce(vec![1; 32]),
            now,
        )
        .unwrap_err();
    assert_eq!(err, AppraisalError::Policy(PolicyError::NonceMismatch));
}

#[test]
fn the_simulated_root_is_trusted_only_when_named() {
    let now = SystemTime::now();
    let attester = SimCsAttester::new(ca(), SimWorkload::of_image(IMAGE, "n"), now).unwrap();
    let bundle = attester.attest(&request()).unwrap();
    let err = Verifier::production().verify(&bundle, now).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");
    // Trusting a Nitro simulated root does not trust this one.
    let nitro_ca = attestation::nsm::sim::SimCa::generate(now).unwrap();
    let err = Verifier::production()
        .trust_simulated_root(nitro_ca.root_der(), now)
        .unwrap()
        .verify(&bundle, now)
        .unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");
    // Nor can a Nitro root be trusted as a Confidential Space one, or a non-CA.
    assert_eq!(
        Verifier::production()
            .trust_simulated_gcp_root(nitro_ca.root_der(), now)
            .unwrap_err(),
        VerifyError::SimulatedRoot(CertProblem::RsaSignatureAlgorithm(
            "1.2.840.10045.4.3.3".to_owned()
        ))
    );
    let err = Verifier::production()
        .trust_simulated_gcp_root(ca().intermediate_der(), now)
        .unwrap_err();
    assert!(matches!(err, VerifyError::SimulatedRoot(_)), "{err}");
    assert!(
        Verifier::production()
            .trust_simulated_gcp_root(b"not a certificate", now)
            .is_err()
    );
    // A manifest pinning Google's root leaves the simulated one out.
    let err = verifier()
        .restricted_to(&[(Provider::GcpCs, gcp::GOOGLE_CS_ROOT_SHA256)])
        .verify(&bundle, now)
        .unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedRoot { .. }), "{err}");
    let root_pin: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ca().root_der())
        .as_ref()
        .try_into()
        .unwrap();
    verifier()
        .restricted_to(&[(Provider::GcpCs, root_pin)])
        .verify(&bundle, now)
        .unwrap();
}

#[test]
fn a_debug_workload_is_refused_unless_allowed() {
    let now = SystemTime::now();
    let mut workload = SimWorkload::of_image(IMAGE, "n");
    workload.debug = true;
    let attester = SimCsAttester::new(ca(), workload.clone(), now).unwrap();
    let bundle = attester.attest(&request()).unwrap();
    let token = CsEvidence::parse(&bundle).unwrap();
    assert!(token.token().claims().support_attributes.is_empty());
    let expectation = Expectation::new(vec![workload.measurement_set().unwrap().into()]).unwrap();
    assert_eq!(
        verifier().appraise(&bundle, &expectation, now).unwrap_err(),
        AppraisalError::Policy(PolicyError::DebugToken {
            dbgstat: "enabled".to_owned()
        })
    );
    verifier()
        .appraise(&bundle, &expectation.allow_debug(true), now)
        .unwrap();
}

#[test]
fn requests_are_checked_before_a_token_is_made() {
    let now = SystemTime::now();
    let attester = SimCsAttester::new(ca(), SimWorkload::of_image(IMAGE, "n"), now).unwrap();
    for (field, request, max) in [
        (
            "nonce",
            AttestationRequest {
                nonce: Some(vec![0; 513]),
                ..Default::default()
            },
            512,
        ),
        (
            "public_key",
            AttestationRequest {
                public_key: Some(vec![]),
                ..Default::default()
            },
            1024,
        ),
        (
            "public_key",
            AttestationRequest {
                public_key: Some(vec![0; 1025]),
                ..Default::default()
            },
            1024,
        ),
        (
            "user_data",
            AttestationRequest {
                user_data: Some(vec![0; 513]),
                ..Default::default()
            },
            512,
        ),
    ] {
        let err = attester.attest(&request).unwrap_err();
        assert!(
            matches!(err, AttestError::InvalidRequest { field: f, max: m, .. } if f == field && m == max),
            "{field}: {err}"
        );
    }
    // Every value at its limit, or none at all.
    for request in [
        AttestationRequest {
            nonce: Some(vec![0; 512]),
            public_key: Some(vec![0; 1024]),
            user_data: Some(vec![0; 512]),
        },
        AttestationRequest::default(),
    ] {
        let bundle = attester.attest(&request).unwrap();
        let verified = verifier().verify(&bundle, now).unwrap();
        assert_eq!(verified.binding().nonce, request.nonce.as_deref());
        assert_eq!(verified.binding().public_key, request.public_key.as_deref());
        assert_eq!(verified.binding().user_data, request.user_data.as_deref());
    }
}

#[test]
fn each_token_is_fresh_and_the_leaf_stays() {
    let now = SystemTime::now();
    let attester = SimCsAttester::new(ca(), SimWorkload::of_image(IMAGE, "n"), now).unwrap();
    let a = attester.token_at(&request(), now).unwrap();
    let b = attester
        .token_at(&request(), now + Duration::from_secs(1))
        .unwrap();
    assert_ne!(a, b);
    let (ta, tb) = (
        CsToken::parse(a.as_bytes()).unwrap(),
        CsToken::parse(b.as_bytes()).unwrap(),
    );
    assert_eq!(ta.x5c(), tb.x5c());
    assert_eq!(tb.claims().iat, ta.claims().iat + 1);
    assert_eq!(ta.header().kid(), tb.header().kid());
}

#[test]
fn the_ca_file_is_created_once_and_kept_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("sim-cs-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("nested").join("gcp-ca");
    let now = SystemTime::now();
    let first = SimCsCa::load_or_create(&path, now).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = SimCsCa::load_or_create(&path, now).unwrap();
    assert_eq!(first.root_der(), again.root_der());
    assert_eq!(first.intermediate_der(), again.intermediate_der());
    // Tokens of an attester under the reloaded CA verify under the first root.
    let attester = SimCsAttester::new(&again, SimWorkload::of_image(IMAGE, "n"), now).unwrap();
    Verifier::production()
        .trust_simulated_gcp_root(first.root_der(), now)
        .unwrap()
        .verify(&attester.attest(&request()).unwrap(), now)
        .unwrap();
    // Readable by others: refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = SimCsCa::load_or_create(&path, now).unwrap_err();
    assert!(err.to_string().contains("mode 0600"), "{err}");
    // Not a CA file, or a Nitro one: refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "something else\n").unwrap();
    assert!(SimCsCa::load_or_create(&path, now).is_err());
    let nitro = dir.join("nitro-ca");
    attestation::nsm::sim::SimCa::load_or_create(&nitro, now).unwrap();
    assert!(SimCsCa::load_or_create(&nitro, now).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_signature_checks_a_benchmark_times_are_the_verifiers() {
    let now = SystemTime::now();
    let attester = SimCsAttester::new(ca(), SimWorkload::of_image(IMAGE, "n"), now).unwrap();
    let bundle = attester.attest(&request()).unwrap();
    let checks = gcp::bench_support::signature_checks(&bundle).unwrap();
    // Intermediate by root, leaf by intermediate, token by leaf.
    assert_eq!(checks.len(), 3);
    for c in &checks {
        aws_lc_rs::signature::UnparsedPublicKey::new(c.algorithm, &c.public_key)
            .verify(&c.message, &c.signature)
            .unwrap();
    }
    let token = CsEvidence::parse(&bundle).unwrap();
    assert_eq!(checks[2].message, token.token().signing_input());
    assert!(gcp::bench_support::signature_checks(b"eyJ.x.y").is_err());
}

#[test]
fn a_bundles_report_shows_its_values() {
    let now = SystemTime::now();
    let attester = SimCsAttester::new(ca(), SimWorkload::of_image(IMAGE, "n"), now).unwrap();
    let bundle = attester.attest(&request()).unwrap();
    let report = gcp::report::TokenReport::new(&CsEvidence::parse(&bundle).unwrap());
    assert_eq!(report.form, "bundle");
    assert!(!report.debug);
    assert_eq!(report.nonce, Some(hex::encode([1u8; 32])));
    assert_eq!(report.public_key, Some(hex::encode(b"a TLS key")));
    assert_eq!(report.user_data, Some(hex::encode([0x42u8; 32])));
    assert_eq!(report.support_attributes, ["LATEST", "STABLE", "USABLE"]);
    assert_eq!(report.aud.as_deref(), Some(CUSTODY_AUDIENCE));
}

#[test]
fn restricting_one_provider_leaves_the_other() {
    let now = SystemTime::now();
    let nitro_ca = attestation::nsm::sim::SimCa::generate(now).unwrap();
    let nsm = attestation::nsm::sim::SimNsm::new(
        &nitro_ca,
        &attestation::nsm::sim::SimMeasurements::of_image(IMAGE),
        now,
    )
    .unwrap();
    let doc = nsm.attest(&request()).unwrap();
    let cs = SimCsAttester::new(ca(), SimWorkload::of_image(IMAGE, "n"), now)
        .unwrap()
        .attest(&request())
        .unwrap();
    let both = verifier()
        .trust_simulated_root(nitro_ca.root_der(), now)
        .unwrap();
    both.verify(&doc, now).unwrap();
    let pinned = both.restricted_to(&[(Provider::Nitro, [3; 32])]);
    // The verifier it was made from is left as it was.
    both.verify(&doc, now).unwrap();
    assert_eq!(
        pinned.verify(&doc, now).unwrap_err(),
        VerifyError::NoRootForPin {
            provider: Provider::Nitro,
            pin: hex::encode([3u8; 32]),
        }
    );
    assert!(pinned.roots(Provider::Nitro).is_empty());
    pinned.verify(&cs, now).unwrap();
    assert_eq!(pinned.roots(Provider::GcpCs).len(), 2);
}
