//! X.509 chain checks for attestation documents: `cabundle[0]` (a pinned root) through
//! the intermediates to the leaf. Nitro chains use ECDSA P-384 with SHA-384 throughout,
//! and nothing else is accepted.

use crate::error::{CertProblem, CertSlot, VerifyError};
use crate::time_fmt::rfc3339;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use der::oid::ObjectIdentifier;
use der::{Decode, Header, Reader, SliceReader};
use std::time::Duration;
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

pub(crate) const ECDSA_WITH_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
pub(crate) const ID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(crate) const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const CRL_DISTRIBUTION_POINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.31");
/// Extensions this verifier understands; any other marked critical is refused.
const KNOWN_EXTENSIONS: [ObjectIdentifier; 5] = [
    BASIC_CONSTRAINTS,
    KEY_USAGE,
    SUBJECT_KEY_ID,
    AUTHORITY_KEY_ID,
    CRL_DISTRIBUTION_POINTS,
];
/// Uncompressed P-384 point: 0x04 || x || y.
const P384_POINT_LEN: usize = 97;

/// One decoded certificate, with the exact bytes its issuer signed.
#[derive(Debug)]
pub(crate) struct ParsedCert<'a> {
    pub(crate) cert: Certificate,
    tbs: &'a [u8],
}

impl<'a> ParsedCert<'a> {
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, CertProblem> {
        let malformed = |e: der::Error| CertProblem::Malformed(e.to_string());
        let cert = Certificate::from_der(der).map_err(malformed)?;
        // The signed bytes are the first element of the outer SEQUENCE, as they appear
        // on the wire (DER is canonical, so re-encoding would agree, but costs time).
        let mut reader = SliceReader::new(der).map_err(malformed)?;
        Header::decode(&mut reader).map_err(malformed)?;
        let tbs = reader.tlv_bytes().map_err(malformed)?;
        Ok(ParsedCert { cert, tbs })
    }

    /// The `tbsCertificate` bytes exactly as they appear on the wire: what the issuer signed.
    pub(crate) fn tbs(&self) -> &'a [u8] {
        self.tbs
    }

    pub(crate) fn public_key(&self) -> Result<&[u8], CertProblem> {
        let spki = self.cert.tbs_certificate().subject_public_key_info();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if spki.algorithm.oid != ID_EC_PUBLIC_KEY || curve != Some(SECP384R1) {
            return Err(CertProblem::PublicKey);
        }
        match spki.subject_public_key.as_bytes() {
            Some(point) if point.len() == P384_POINT_LEN && point.first() == Some(&4) => Ok(point),
            _ => Err(CertProblem::PublicKey),
        }
    }

    fn check_algorithm(&self) -> Result<(), CertProblem> {
        let outer = self.cert.signature_algorithm();
        let inner = self.cert.tbs_certificate().signature();
        // RFC 5758: ecdsa-with-SHA384 has no parameters, not even NULL.
        if outer.oid != ECDSA_WITH_SHA384 || outer.parameters.is_some() {
            return Err(CertProblem::SignatureAlgorithm(outer.oid.to_string()));
        }
        if outer != inner {
            return Err(CertProblem::AlgorithmMismatch);
        }
        Ok(())
    }

    fn check_validity(&self, at: Duration) -> Result<(), CertProblem> {
        let validity = self.cert.tbs_certificate().validity();
        let not_before = validity.not_before.to_unix_duration();
        let not_after = validity.not_after.to_unix_duration();
        if at < not_before {
            return Err(CertProblem::NotYetValid {
                not_before: rfc3339(not_before),
            });
        }
        if at > not_after {
            return Err(CertProblem::Expired {
                not_after: rfc3339(not_after),
            });
        }
        Ok(())
    }

    /// Refuses duplicated extensions and critical ones this verifier does not know.
    fn check_extensions(&self) -> Result<(), CertProblem> {
        let extensions: &[x509_cert::ext::Extension] = self
            .cert
            .tbs_certificate()
            .extensions()
            .map_or(&[], |e| e.as_slice());
        for (i, ext) in extensions.iter().enumerate() {
            if extensions
                .iter()
                .skip(i + 1)
                .any(|later| later.extn_id == ext.extn_id)
            {
                return Err(CertProblem::DuplicateExtension(ext.extn_id.to_string()));
            }
            if ext.critical && !KNOWN_EXTENSIONS.contains(&ext.extn_id) {
                return Err(CertProblem::UnknownCriticalExtension(
                    ext.extn_id.to_string(),
                ));
            }
        }
        Ok(())
    }

    fn basic_constraints(&self) -> Result<Option<BasicConstraints>, CertProblem> {
        self.cert
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .map(|found| found.map(|(_, bc)| bc))
            .map_err(|e| CertProblem::Malformed(format!("basic constraints: {e}")))
    }

    fn key_usage(&self) -> Result<Option<KeyUsage>, CertProblem> {
        self.cert
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .map(|found| found.map(|(_, ku)| ku))
            .map_err(|e| CertProblem::Malformed(format!("key usage: {e}")))
    }

    /// This certificate acts as a CA with `below` CA certificates under it.
    fn check_ca(&self, below: usize) -> Result<(), CertProblem> {
        let bc = self.basic_constraints()?.ok_or(CertProblem::NotCa)?;
        if !bc.ca {
            return Err(CertProblem::NotCa);
        }
        if let Some(limit) = bc.path_len_constraint
            && below > usize::from(limit)
        {
            return Err(CertProblem::PathLength { limit, below });
        }
        match self.key_usage()? {
            Some(ku) if ku.key_cert_sign() => Ok(()),
            _ => Err(CertProblem::KeyUsage("certificate signing")),
        }
    }

    fn check_leaf(&self) -> Result<(), CertProblem> {
        if self.basic_constraints()?.is_some_and(|bc| bc.ca) {
            return Err(CertProblem::LeafIsCa);
        }
        match self.key_usage()? {
            Some(ku) if !ku.digital_signature() => Err(CertProblem::KeyUsage("digital signatures")),
            _ => Ok(()),
        }
    }

    /// Checks that `issuer` issued and signed this certificate.
    fn check_issued_by(&self, issuer: &ParsedCert<'_>) -> Result<(), CertProblem> {
        if self.cert.tbs_certificate().issuer() != issuer.cert.tbs_certificate().subject() {
            return Err(CertProblem::IssuerMismatch);
        }
        let key = issuer.public_key()?;
        let sig = self
            .cert
            .signature()
            .as_bytes()
            .ok_or(CertProblem::BadSignature)?;
        UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_ASN1, key)
            .verify(self.tbs, sig)
            .map_err(|_| CertProblem::BadSignature)
    }

    /// Checks that this certificate signed itself; for roots that are being pinned.
    #[cfg(feature = "sim")]
    pub(crate) fn check_self_signed_ca(&self, at: Duration) -> Result<(), CertProblem> {
        self.check_common(at)?;
        self.check_ca(0)?;
        self.check_issued_by(self)
    }

    fn check_common(&self, at: Duration) -> Result<(), CertProblem> {
        if self.cert.tbs_certificate().version() != Version::V3 {
            return Err(CertProblem::Version);
        }
        self.check_algorithm()?;
        self.public_key()?;
        self.check_validity(at)?;
        self.check_extensions()
    }
}

/// SHA-256 of a certificate's DER.
pub(crate) fn fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// What a verified chain vouches for: the leaf's key and when the leaf is valid.
#[derive(Debug)]
pub(crate) struct VerifiedLeaf {
    /// Uncompressed P-384 point.
    pub(crate) public_key: Vec<u8>,
    pub(crate) not_before: Duration,
    pub(crate) not_after: Duration,
}

/// Verifies `cabundle ++ [leaf]` at time `at` and returns what the leaf vouches for.
/// The caller has already checked that `cabundle[0]` is a trusted root.
pub(crate) fn verify_chain(
    cabundle: &[Vec<u8>],
    leaf: &[u8],
    at: Duration,
) -> Result<VerifiedLeaf, VerifyError> {
    let fail =
        |slot: CertSlot| move |problem: CertProblem| VerifyError::Certificate { slot, problem };
    let slots: Vec<(CertSlot, &[u8])> = cabundle
        .iter()
        .enumerate()
        .map(|(i, der)| (CertSlot::Bundle(i), der.as_slice()))
        .chain(std::iter::once((CertSlot::Leaf, leaf)))
        .collect();
    let certs = slots
        .iter()
        .map(|(slot, der)| ParsedCert::parse(der).map_err(fail(*slot)))
        .collect::<Result<Vec<_>, _>>()?;

    let cas = certs.len().saturating_sub(1);
    let mut issuer: Option<&ParsedCert<'_>> = None;
    for (position, ((slot, _), cert)) in slots.iter().zip(&certs).enumerate() {
        cert.check_common(at).map_err(fail(*slot))?;
        if let Some(parent) = issuer {
            cert.check_issued_by(parent).map_err(fail(*slot))?;
        }
        if position < cas {
            // CAs strictly below this one, not counting the leaf.
            cert.check_ca(cas - position - 1).map_err(fail(*slot))?;
        } else {
            cert.check_leaf().map_err(fail(*slot))?;
        }
        issuer = Some(cert);
    }
    let leaf_cert = certs.last().ok_or(VerifyError::Certificate {
        slot: CertSlot::Leaf,
        problem: CertProblem::Malformed("missing".to_owned()),
    })?;
    let (not_before, not_after) = validity(&leaf_cert.cert);
    Ok(VerifiedLeaf {
        public_key: leaf_cert
            .public_key()
            .map(<[u8]>::to_vec)
            .map_err(fail(CertSlot::Leaf))?,
        not_before,
        not_after,
    })
}

/// A certificate's subject as an RFC 4514 string, for display.
pub(crate) fn subject_string(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}

/// Validity window of a certificate, as Unix durations.
pub(crate) fn validity(cert: &Certificate) -> (Duration, Duration) {
    let v = cert.tbs_certificate().validity();
    (
        v.not_before.to_unix_duration(),
        v.not_after.to_unix_duration(),
    )
}

#[cfg(test)]
#[cfg(feature = "sim")]
mod tests {
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
}
