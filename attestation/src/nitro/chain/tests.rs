use super::*;
use crate::nitro::nsm::sim::{CertProfile, issue};
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use der::asn1::OctetString;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;

struct Node {
    key: EcdsaKeyPair,
    name: Name,
}

fn node(cn: &str) -> Node {
    Node {
        key: EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap(),
        name: Name::from_str(&format!("CN={cn}")).unwrap(),
    }
}

fn cert(issuer: &Node, subject: &Node, profile: CertProfile) -> Vec<u8> {
    issue(
        &issuer.key,
        &issuer.name,
        &subject.name,
        subject.key.public_key().as_ref(),
        SystemTime::now(),
        Duration::from_secs(3600),
        profile,
    )
    .unwrap()
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// root -> intermediate -> leaf with the given profiles for intermediate and leaf.
fn check(inter: CertProfile, leaf: CertProfile) -> Result<Vec<u8>, VerifyError> {
    let (root, mid, end) = (node("root"), node("mid"), node("leaf"));
    let bundle = [
        cert(&root, &root, CertProfile::ca(None)),
        cert(&root, &mid, inter),
    ];
    verify_chain(&bundle, &cert(&mid, &end, leaf), now()).map(|l| l.public_key)
}

fn problem<T: std::fmt::Debug>(result: Result<T, VerifyError>) -> (CertSlot, CertProblem) {
    match result {
        Err(VerifyError::Certificate { slot, problem }) => (slot, problem),
        other => panic!("expected a certificate problem, got {other:?}"),
    }
}

fn critical(oid: &str, value: &[u8]) -> Extension {
    Extension {
        extn_id: ObjectIdentifier::new(oid).unwrap(),
        critical: true,
        extn_value: OctetString::new(value.to_vec()).unwrap(),
    }
}

#[test]
fn a_well_formed_chain_verifies() {
    let key = check(CertProfile::ca(Some(0)), CertProfile::leaf()).unwrap();
    assert_eq!(key.len(), P384_POINT_LEN);
}

#[test]
fn a_leaf_that_is_a_ca_is_refused() {
    assert_eq!(
        problem(check(CertProfile::ca(Some(0)), CertProfile::ca(None))),
        (CertSlot::Leaf, CertProblem::LeafIsCa)
    );
}

#[test]
fn an_intermediate_must_be_a_ca_with_cert_signing() {
    let mut no_bc = CertProfile::ca(None);
    no_bc.basic_constraints = None;
    assert_eq!(
        problem(check(no_bc, CertProfile::leaf())),
        (CertSlot::Bundle(1), CertProblem::NotCa)
    );
    assert_eq!(
        problem(check(CertProfile::leaf(), CertProfile::leaf())),
        (CertSlot::Bundle(1), CertProblem::NotCa)
    );
    let mut no_sign = CertProfile::ca(None);
    no_sign.key_usage = Some(KeyUsage(KeyUsages::DigitalSignature.into()));
    assert_eq!(
        problem(check(no_sign, CertProfile::leaf())),
        (
            CertSlot::Bundle(1),
            CertProblem::KeyUsage("certificate signing")
        )
    );
    let mut no_ku = CertProfile::ca(None);
    no_ku.key_usage = None;
    assert!(matches!(
        problem(check(no_ku, CertProfile::leaf())),
        (CertSlot::Bundle(1), CertProblem::KeyUsage(_))
    ));
}

#[test]
fn a_leaf_key_must_allow_signatures() {
    let mut leaf = CertProfile::leaf();
    leaf.key_usage = Some(KeyUsage(KeyUsages::KeyEncipherment.into()));
    assert_eq!(
        problem(check(CertProfile::ca(None), leaf)),
        (CertSlot::Leaf, CertProblem::KeyUsage("digital signatures"))
    );
}

#[test]
fn path_length_is_enforced_at_exactly_the_limit() {
    // root(pathlen 1) -> a -> b -> leaf: b is the second CA below root.
    let (root, a, b, end) = (node("root"), node("a"), node("b"), node("leaf"));
    let build = |root_len| {
        vec![
            cert(&root, &root, CertProfile::ca(Some(root_len))),
            cert(&root, &a, CertProfile::ca(None)),
            cert(&a, &b, CertProfile::ca(None)),
            cert(&b, &end, CertProfile::leaf()),
        ]
    };
    let ok = build(2);
    verify_chain(&ok[..3], &ok[3], now()).unwrap();
    let short = build(1);
    assert_eq!(
        problem(verify_chain(&short[..3], &short[3], now())),
        (
            CertSlot::Bundle(0),
            CertProblem::PathLength { limit: 1, below: 2 }
        )
    );
}

#[test]
fn unknown_critical_and_duplicate_extensions_are_refused() {
    let mut leaf = CertProfile::leaf();
    leaf.extra.push(critical("1.2.3.4.5", &[0x05, 0x00]));
    assert_eq!(
        problem(check(CertProfile::ca(None), leaf)),
        (
            CertSlot::Leaf,
            CertProblem::UnknownCriticalExtension("1.2.3.4.5".into())
        )
    );
    // The same extension, not critical, is ignored.
    let mut leaf = CertProfile::leaf();
    let mut ext = critical("1.2.3.4.5", &[0x05, 0x00]);
    ext.critical = false;
    leaf.extra.push(ext);
    check(CertProfile::ca(None), leaf).unwrap();
    // A known extension twice.
    let mut leaf = CertProfile::leaf();
    leaf.extra
        .push(critical("2.5.29.15", &[0x03, 0x02, 0x07, 0x80]));
    assert_eq!(
        problem(check(CertProfile::ca(None), leaf)),
        (
            CertSlot::Leaf,
            CertProblem::DuplicateExtension("2.5.29.15".into())
        )
    );
}

#[test]
fn a_certificate_signed_by_the_wrong_key_is_refused() {
    let (root, mid, end, impostor) = (node("root"), node("mid"), node("leaf"), node("mid"));
    // Same issuer name as `mid`, different key.
    let bundle = [
        cert(&root, &root, CertProfile::ca(None)),
        cert(&root, &mid, CertProfile::ca(None)),
    ];
    let leaf = cert(&impostor, &end, CertProfile::leaf());
    assert_eq!(
        problem(verify_chain(&bundle, &leaf, now())),
        (CertSlot::Leaf, CertProblem::BadSignature)
    );
}

/// Like `cert`, with the subject key, issue time and lifetime given.
fn cert_with(
    issuer: &Node,
    subject: &Node,
    key: &[u8],
    at: SystemTime,
    lifetime: Duration,
    profile: CertProfile,
) -> Vec<u8> {
    issue(
        &issuer.key,
        &issuer.name,
        &subject.name,
        key,
        at,
        lifetime,
        profile,
    )
    .unwrap()
}

/// Now, in whole seconds, as X.509 times carry it.
fn whole_second() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(now().as_secs())
}

#[test]
fn a_subject_key_that_is_not_an_uncompressed_p384_point_is_refused() {
    use aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let (root, mid, end) = (node("root"), node("mid"), node("leaf"));
    let root_der = cert(&root, &root, CertProfile::ca(None));
    let point = end.key.public_key().as_ref().to_vec();
    let p256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    assert_eq!((p256.len(), p256[0]), (65, 4));
    let compressed = [&[2u8][..], &point[1..49]].concat();
    let hybrid = [&[6u8][..], &point[1..]].concat();
    let hour = Duration::from_secs(3600);
    for bad in [p256, compressed, hybrid] {
        let bundle = [
            root_der.clone(),
            cert_with(
                &root,
                &mid,
                &bad,
                SystemTime::now(),
                hour,
                CertProfile::ca(None),
            ),
        ];
        let leaf = cert(&mid, &end, CertProfile::leaf());
        assert_eq!(
            problem(verify_chain(&bundle, &leaf, now())),
            (CertSlot::Bundle(1), CertProblem::PublicKey),
            "intermediate key of {} bytes",
            bad.len()
        );
        let bundle = [root_der.clone(), cert(&root, &mid, CertProfile::ca(None))];
        let leaf = cert_with(
            &mid,
            &end,
            &bad,
            SystemTime::now(),
            hour,
            CertProfile::leaf(),
        );
        assert_eq!(
            problem(verify_chain(&bundle, &leaf, now())),
            (CertSlot::Leaf, CertProblem::PublicKey),
            "leaf key of {} bytes",
            bad.len()
        );
    }
}

#[test]
fn a_signature_algorithm_other_than_bare_ecdsa_with_sha384_is_refused() {
    use x509_cert::spki::AlgorithmIdentifierOwned;
    let mut inter = CertProfile::ca(None);
    inter.signature_algorithm = Some(AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
        parameters: None,
    });
    assert_eq!(
        problem(check(inter, CertProfile::leaf())),
        (
            CertSlot::Bundle(1),
            CertProblem::SignatureAlgorithm("1.2.840.10045.4.3.2".into())
        )
    );
    let mut leaf = CertProfile::leaf();
    leaf.signature_algorithm = Some(AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA384,
        parameters: Some(der::asn1::Any::null()),
    });
    assert_eq!(
        problem(check(CertProfile::ca(None), leaf)),
        (
            CertSlot::Leaf,
            CertProblem::SignatureAlgorithm("1.2.840.10045.4.3.3".into())
        )
    );
}

#[test]
fn a_certificate_that_is_not_x509_v3_is_refused() {
    for version in [Version::V1, Version::V2] {
        let mut inter = CertProfile::ca(None);
        inter.version = Some(version);
        assert_eq!(
            problem(check(inter, CertProfile::leaf())),
            (CertSlot::Bundle(1), CertProblem::Version),
            "{version:?}"
        );
        let mut leaf = CertProfile::leaf();
        leaf.version = Some(version);
        assert_eq!(
            problem(check(CertProfile::ca(None), leaf)),
            (CertSlot::Leaf, CertProblem::Version),
            "{version:?}"
        );
    }
}

#[test]
fn path_length_is_enforced_at_an_intermediate() {
    // root -> a(pathlen n) -> b -> leaf: b is one CA below a.
    let (root, a, b, end) = (node("root"), node("a"), node("b"), node("leaf"));
    let build = |a_len| {
        vec![
            cert(&root, &root, CertProfile::ca(None)),
            cert(&root, &a, CertProfile::ca(Some(a_len))),
            cert(&a, &b, CertProfile::ca(None)),
            cert(&b, &end, CertProfile::leaf()),
        ]
    };
    let ok = build(1);
    verify_chain(&ok[..3], &ok[3], now()).unwrap();
    let short = build(0);
    assert_eq!(
        problem(verify_chain(&short[..3], &short[3], now())),
        (
            CertSlot::Bundle(1),
            CertProblem::PathLength { limit: 0, below: 1 }
        )
    );
}

#[test]
fn an_intermediate_outside_its_validity_is_refused_at_its_slot() {
    let (root, mid, end) = (node("root"), node("mid"), node("leaf"));
    let t = whole_second();
    let day = Duration::from_secs(24 * 3600);
    let hour = Duration::from_secs(3600);
    let long = |issuer: &Node, subject: &Node, profile| {
        cert_with(
            issuer,
            subject,
            subject.key.public_key().as_ref(),
            t - day,
            2 * day,
            profile,
        )
    };
    let bundle = [
        long(&root, &root, CertProfile::ca(None)),
        cert_with(
            &root,
            &mid,
            mid.key.public_key().as_ref(),
            t,
            hour,
            CertProfile::ca(None),
        ),
    ];
    let leaf = long(&mid, &end, CertProfile::leaf());
    let (not_before, not_after) = validity(&Certificate::from_der(&bundle[1]).unwrap());
    assert!(not_before < t.duration_since(UNIX_EPOCH).unwrap());
    assert_eq!(not_after, t.duration_since(UNIX_EPOCH).unwrap() + hour);

    verify_chain(&bundle, &leaf, not_before).unwrap();
    verify_chain(&bundle, &leaf, not_after).unwrap();
    let ms = Duration::from_millis(1);
    assert!(matches!(
        problem(verify_chain(&bundle, &leaf, not_before - ms)),
        (CertSlot::Bundle(1), CertProblem::NotYetValid { .. })
    ));
    assert!(matches!(
        problem(verify_chain(&bundle, &leaf, not_after + ms)),
        (CertSlot::Bundle(1), CertProblem::Expired { .. })
    ));
    // Issued entirely in the future, or entirely in the past.
    for (issued, expired) in [(t + 2 * hour, false), (t - 2 * hour, true)] {
        let bundle = [
            bundle[0].clone(),
            cert_with(
                &root,
                &mid,
                mid.key.public_key().as_ref(),
                issued,
                hour,
                CertProfile::ca(None),
            ),
        ];
        let (slot, found) = problem(verify_chain(&bundle, &leaf, now()));
        assert_eq!(slot, CertSlot::Bundle(1));
        assert_eq!(
            matches!(found, CertProblem::Expired { .. }),
            expired,
            "{found}"
        );
        assert_eq!(
            matches!(found, CertProblem::NotYetValid { .. }),
            !expired,
            "{found}"
        );
    }
}

#[test]
fn a_document_dated_outside_its_leaf_validity_is_refused() {
    use crate::nitro::Verifier;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING;
    use coset::cbor::value::Value;
    use coset::{CborSerializable, CoseSign1Builder, HeaderBuilder, iana};

    let (root, mid) = (node("root"), node("mid"));
    // The COSE signature is r || s, so the leaf key signs in the fixed format.
    let end = Node {
        key: EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
        name: Name::from_str("CN=leaf").unwrap(),
    };
    let t = whole_second();
    let hour = Duration::from_secs(3600);
    let own = |issuer: &Node, subject: &Node, profile| {
        cert_with(
            issuer,
            subject,
            subject.key.public_key().as_ref(),
            t,
            hour,
            profile,
        )
    };
    let bundle = [
        own(&root, &root, CertProfile::ca(None)),
        own(&root, &mid, CertProfile::ca(None)),
    ];
    let leaf = own(&mid, &end, CertProfile::leaf());
    let (not_before, not_after) = validity(&Certificate::from_der(&leaf).unwrap());
    let verifier = Verifier::aws_nitro()
        .trust_simulated_root(&bundle[0], t)
        .unwrap();
    let text = |s: &str| Value::Text(s.to_owned());
    let document = |timestamp: Duration| {
        let payload = Value::Map(vec![
            (
                text("module_id"),
                text("i-0123456789abcdef0-enc0123456789abcdef"),
            ),
            (text("digest"), text("SHA384")),
            (
                text("timestamp"),
                Value::Integer(u64::try_from(timestamp.as_millis()).unwrap().into()),
            ),
            (
                text("pcrs"),
                Value::Map(vec![(Value::Integer(0.into()), Value::Bytes(vec![1; 48]))]),
            ),
            (text("certificate"), Value::Bytes(leaf.clone())),
            (
                text("cabundle"),
                Value::Array(bundle.iter().cloned().map(Value::Bytes).collect()),
            ),
        ]);
        let mut bytes = Vec::new();
        coset::cbor::ser::into_writer(&payload, &mut bytes).unwrap();
        let rng = SystemRandom::new();
        CoseSign1Builder::new()
            .protected(
                HeaderBuilder::new()
                    .algorithm(iana::Algorithm::ES384)
                    .build(),
            )
            .payload(bytes)
            .create_signature(&[], |tbs| {
                end.key.sign(&rng, tbs).unwrap().as_ref().to_vec()
            })
            .build()
            .to_vec()
            .unwrap()
    };

    let ms = Duration::from_millis(1);
    let now = t.duration_since(UNIX_EPOCH).unwrap();
    for inside in [not_before, now, not_after, not_after + 999 * ms] {
        let doc = verifier.verify(&document(inside), t).unwrap();
        assert_eq!(u128::from(doc.timestamp_ms()), inside.as_millis());
    }
    for outside in [not_before - ms, not_after + 1000 * ms, not_before - hour] {
        assert_eq!(
            verifier.verify(&document(outside), t).unwrap_err(),
            VerifyError::TimestampOutsideLeafValidity {
                timestamp_ms: u64::try_from(outside.as_millis()).unwrap()
            }
        );
    }
}
