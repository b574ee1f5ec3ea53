//! The auditor's side: an export attested by a simulated NSM verifies, and every change
//! to it is refused with the line at fault.

use super::*;
use attestation::nitro::MeasurementSet;
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use attestation::{AppraisalError, Measurements, PolicyError, Verifier, VerifyError};
use ids::ManifestHash;
use std::time::SystemTime;

const IMAGE: &[u8] = b"the audited node image";
const MANIFEST: ManifestHash = ManifestHash([0x42; 32]);

struct Setup {
    ca: SimCa,
    nsm: SimNsm,
    now: SystemTime,
}

fn setup(debug: bool) -> Setup {
    let now = SystemTime::now();
    let ca = SimCa::generate(now).unwrap();
    let measured = SimMeasurements::of_image(IMAGE).with_debug_mode(debug);
    let nsm = SimNsm::new(&ca, &measured, now).unwrap();
    Setup { ca, nsm, now }
}

impl Setup {
    fn verifier(&self) -> Verifier {
        Verifier::aws_nitro()
            .trust_simulated_root(self.ca.root_der(), self.now)
            .unwrap()
    }

    /// The export of `log` with a document attested for `head`.
    fn export_at(&self, log: &AuditLog, head: Head) -> String {
        let request = attestation_request(&log.public_key(), head, &MANIFEST);
        let document = self.nsm.attest_at(&request, self.now).unwrap();
        log.export(&MANIFEST, &document).unwrap()
    }

    fn export(&self, log: &AuditLog) -> String {
        let document = self
            .nsm
            .attest_at(&log.attestation_request(&MANIFEST), self.now)
            .unwrap();
        log.export(&MANIFEST, &document).unwrap()
    }

    fn verify(&self, text: &str) -> Result<VerifiedExport, AuditError> {
        verify_export(text, &self.verifier(), None)
    }

    /// The line and problem `text` is refused for.
    fn refusal(&self, text: &str) -> (u64, ExportProblem) {
        match self.verify(text) {
            Err(AuditError::Export { line, problem }) => (line, problem),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn pcrs_of(image: &[u8]) -> Measurements {
    let pcrs = SimMeasurements::of_image(image).pcrs();
    MeasurementSet::new((0u8..3).map(|i| (i, pcrs[&i].to_vec())).collect())
        .unwrap()
        .into()
}

#[test]
fn an_attested_export_verifies() {
    let s = setup(false);
    let log = log_of(300, AuditKey::generate().unwrap());
    let text = s.export(&log);
    assert_eq!(text.lines().count(), 301);
    assert!(
        text.starts_with(
            "{\"format\":\"tee-custody-audit-v1\",\"node\":\"node-1\",\"public_key\":\""
        )
    );
    let verified = s.verify(&text).unwrap();
    assert_eq!(verified.node(), &node("node-1"));
    assert_eq!(verified.count(), 300);
    assert_eq!(verified.head(), log.head());
    assert_eq!(verified.public_key(), &log.public_key());
    assert_eq!(verified.manifest_hash(), &MANIFEST);
    assert_eq!(verified.matched_set(), None);
    let pcr0 = hex::encode(SimMeasurements::of_image(IMAGE).pcrs()[&0]);
    assert_eq!(verified.measurements().get("pcr0"), Some(&pcr0));
    // Without its final line break too.
    assert!(s.verify(text.trim_end()).is_ok());

    // The node's measurements, when the auditor has them.
    let sets = [pcrs_of(b"another image"), pcrs_of(IMAGE)];
    let verified = verify_export(&text, &s.verifier(), Some(&sets)).unwrap();
    assert_eq!(verified.matched_set(), Some(1));
    let wrong = [pcrs_of(b"another image")];
    assert!(matches!(
        verify_export(&text, &s.verifier(), Some(&wrong)),
        Err(AuditError::Export {
            line: 1,
            problem: ExportProblem::Attestation(AppraisalError::Policy(PolicyError::Measurements(
                _
            )))
        })
    ));

    // An empty log exports and verifies as well.
    let empty = log_of(0, AuditKey::generate().unwrap());
    assert_eq!(s.verify(&s.export(&empty)).unwrap().count(), 0);
}

#[test]
fn a_simulated_root_is_not_trusted_by_default() {
    let s = setup(false);
    let text = s.export(&log_of(3, AuditKey::generate().unwrap()));
    assert!(matches!(
        verify_export(&text, &Verifier::production(), None),
        Err(AuditError::Export {
            line: 1,
            problem: ExportProblem::Attestation(AppraisalError::Verify(
                VerifyError::UntrustedRoot { .. }
            ))
        })
    ));
}

#[test]
fn a_debug_mode_enclave_does_not_vouch_for_a_log() {
    let s = setup(true);
    let text = s.export(&log_of(3, AuditKey::generate().unwrap()));
    assert_eq!(s.refusal(&text), (1, ExportProblem::DebugMode));
}

#[test]
fn every_change_to_the_entries_is_refused_with_its_line() {
    let s = setup(false);
    let log = log_of(20, AuditKey::generate().unwrap());
    let good = lines(&s.export(&log));
    assert!(s.verify(&join(&good)).is_ok());

    // The last line removed: the header's count says one more.
    let mut cut = good.clone();
    cut.pop();
    assert_eq!(
        s.refusal(&join(&cut)),
        (21, ExportProblem::Missing { seq: 19, count: 20 })
    );

    // A line removed in the middle: entry 6 where entry 5 (line 7) belongs.
    let mut removed = good.clone();
    removed.remove(6);
    assert_eq!(
        s.refusal(&join(&removed)),
        (
            7,
            ExportProblem::Entry(EntryProblem::Seq {
                expected: 5,
                found: 6
            })
        )
    );

    // Two lines swapped.
    let mut swapped = good.clone();
    swapped.swap(3, 4);
    assert_eq!(
        s.refusal(&join(&swapped)),
        (
            4,
            ExportProblem::Entry(EntryProblem::Seq {
                expected: 2,
                found: 3
            })
        )
    );

    // A line duplicated.
    let mut duplicated = good.clone();
    duplicated.insert(5, good[5].clone());
    assert_eq!(
        s.refusal(&join(&duplicated)),
        (
            7,
            ExportProblem::Entry(EntryProblem::Seq {
                expected: 5,
                found: 4
            })
        )
    );

    // One byte edited: a digit of an amount, a field's spacing, a hex digit of prev.
    let mut amount = good.clone();
    amount[1] = amount[1].replacen("1000000", "1000001", 1);
    assert_ne!(amount[1], good[1]);
    assert_eq!(
        s.refusal(&join(&amount)),
        (2, ExportProblem::Entry(EntryProblem::Signature { seq: 0 }))
    );
    let mut spacing = good.clone();
    spacing[9] = spacing[9].replacen(",\"at_ms\"", ", \"at_ms\"", 1);
    assert_eq!(
        s.refusal(&join(&spacing)),
        (10, ExportProblem::Entry(EntryProblem::NotCanonical))
    );
    let mut prev = good.clone();
    let hash = hex::encode(log.entries_from(4)[0].hash());
    let edited = format!(
        "{}{}",
        &hash[..63],
        if hash.ends_with('0') { '1' } else { '0' }
    );
    prev[6] = prev[6].replacen(&hash, &edited, 1);
    assert_eq!(
        s.refusal(&join(&prev)),
        (7, ExportProblem::Entry(EntryProblem::Prev { seq: 5 }))
    );

    // An entry beyond the attested count.
    let mut extra = good.clone();
    extra.push(good[20].clone());
    assert_eq!(
        s.refusal(&join(&extra)),
        (22, ExportProblem::Extra { seq: 20, count: 20 })
    );

    // Empty and over-long lines.
    let mut empty = good.clone();
    empty.insert(3, String::new());
    assert_eq!(s.refusal(&join(&empty)), (4, ExportProblem::EmptyLine));
    assert_eq!(
        s.refusal(&format!("{}\n", join(&good))),
        (22, ExportProblem::EmptyLine)
    );
    let mut long = good.clone();
    long[2] = "x".repeat(MAX_LINE_LEN + 1);
    assert_eq!(
        s.refusal(&join(&long)),
        (
            3,
            ExportProblem::LineTooLong {
                len: MAX_LINE_LEN + 1,
                max: MAX_LINE_LEN
            }
        )
    );
    long[2] = "x".repeat(MAX_LINE_LEN);
    assert!(matches!(
        s.refusal(&join(&long)),
        (3, ExportProblem::Entry(EntryProblem::TooLong { .. }))
    ));
}

#[test]
fn every_change_to_the_header_is_refused() {
    let s = setup(false);
    let log = log_of(5, AuditKey::generate().unwrap());
    let good = lines(&s.export(&log));
    let with_header = |header: String| {
        let mut edited = good.clone();
        edited[0] = header;
        join(&edited)
    };

    let count = with_header(good[0].replacen("\"count\":5", "\"count\":4", 1));
    assert_eq!(s.refusal(&count), (1, ExportProblem::AttestedHead));
    let head = hex::encode(log.head().hash);
    let other_head = with_header(good[0].replacen(&head, &hex::encode([0u8; 32]), 1));
    assert_eq!(s.refusal(&other_head), (1, ExportProblem::AttestedHead));
    let key = hex::encode(log.public_key());
    let other_key = with_header(good[0].replacen(&key, &hex::encode([1u8; 32]), 1));
    assert_eq!(s.refusal(&other_key), (1, ExportProblem::AttestedKey));
    let manifest =
        with_header(good[0].replacen(&hex::encode([0x42u8; 32]), &hex::encode([0x43u8; 32]), 1));
    assert_eq!(s.refusal(&manifest), (1, ExportProblem::AttestedManifest));
    let format = with_header(good[0].replacen("audit-v1", "audit-v2", 1));
    assert!(matches!(
        s.refusal(&format),
        (1, ExportProblem::Format { .. })
    ));
    let spaced = with_header(good[0].replacen(",\"count\"", ", \"count\"", 1));
    assert!(matches!(
        s.refusal(&spaced),
        (1, ExportProblem::Header { .. })
    ));
    // A byte of the document itself.
    let at = good[0].len() - 200;
    let mut document = good[0].clone().into_bytes();
    document[at] = if document[at] == b'0' { b'1' } else { b'0' };
    let document = with_header(String::from_utf8(document).unwrap());
    assert!(matches!(
        s.refusal(&document),
        (1, ExportProblem::Attestation(_))
    ));
    // Another node's name: its entries give it away.
    let renamed = with_header(good[0].replacen("\"node\":\"node-1\"", "\"node\":\"node-2\"", 1));
    assert!(matches!(
        s.refusal(&renamed),
        (2, ExportProblem::Entry(EntryProblem::Node { seq: 0, .. }))
    ));
    assert_eq!(s.refusal(""), (1, ExportProblem::Empty));
    assert!(matches!(
        s.refusal(&"x".repeat(MAX_HEADER_LEN + 1)),
        (1, ExportProblem::LineTooLong { .. })
    ));
}

#[test]
fn an_attestation_of_another_head_does_not_vouch_for_the_entries() {
    let s = setup(false);
    let key = AuditKey::generate().unwrap();
    let log = log_of(10, same_key(&key));

    // Attested at 9 entries, exported with 10: the header must say 10, the nonce says 9.
    let nine = Head {
        count: 9,
        hash: *log.entries_from(8)[0].hash(),
    };
    assert_eq!(
        s.refusal(&s.export_at(&log, nine)),
        (1, ExportProblem::AttestedHead)
    );

    // A fork: the same key signed another 10th entry (a node whose stored log was rolled
    // back). Its entries chain and verify, but do not end at the attested head.
    let mut fork = log_of(9, same_key(&key));
    fork.append(event(1000), 5).unwrap();
    let mut forged = lines(&s.export(&log));
    forged.truncate(10);
    forged.push(fork.entries_from(9)[0].to_line().unwrap());
    assert_eq!(s.refusal(&join(&forged)), (11, ExportProblem::Head));
}

#[test]
fn the_streaming_verifier_checks_line_by_line() {
    let s = setup(false);
    let log = log_of(4, AuditKey::generate().unwrap());
    let text = s.export(&log);
    let mut all = text.lines();
    let header = ExportHeader::parse(all.next().unwrap()).unwrap();
    assert_eq!(header.node(), &node("node-1"));
    assert_eq!(header.head(), log.head());
    let mut verifier = ExportVerifier::new(header, &s.verifier(), None).unwrap();
    let lines: Vec<&str> = all.collect();
    // A refused line leaves the verifier where it was.
    assert!(verifier.entry(lines[1]).is_err());
    for line in &lines {
        verifier.entry(line).unwrap();
    }
    assert_eq!(verifier.finish().unwrap().count(), 4);
}

/// The attacker's full view: whichever single byte of an entry line is changed, and
/// whichever line is removed, the export is refused.
#[test]
fn no_byte_of_the_entries_can_change_and_no_line_can_go() {
    let s = setup(false);
    let log = log_of(8, AuditKey::generate().unwrap());
    let text = s.export(&log);
    let (header, entries) = text.split_once('\n').unwrap();
    // The header is not touched here: its document is checked once, and each edited
    // export's entries are fed to a copy of that check.
    let checked =
        ExportVerifier::new(ExportHeader::parse(header).unwrap(), &s.verifier(), None).unwrap();
    let verify_entries = |entries: &str| {
        let mut verifier = checked.clone();
        for line in entries.strip_suffix('\n').unwrap_or(entries).split('\n') {
            verifier.entry(line)?;
        }
        verifier.finish()
    };
    assert!(verify_entries(entries).is_ok());
    for at in 0..entries.len() {
        let mut edited = entries.as_bytes().to_vec();
        // Still ASCII, so still text: only the content changes.
        edited[at] ^= 0x01;
        let edited = String::from_utf8(edited).unwrap();
        assert!(
            verify_entries(&edited).is_err(),
            "byte {at} changed and still verified"
        );
    }
    let good = lines(&text);
    for i in 1..good.len() {
        let mut removed = good.clone();
        removed.remove(i);
        assert!(s.verify(&join(&removed)).is_err(), "line {} removed", i + 1);
    }
}

/// A node on Confidential Space attests its log with a token bundle instead of a Nitro
/// document: the same checks apply, and a debuggable workload vouches for nothing.
mod confidential_space {
    use super::*;
    use attestation::gcp::sim::{SimCsAttester, SimCsCa, SimWorkload};

    fn export_by(debug: bool) -> (String, Verifier) {
        let now = SystemTime::now();
        let ca = SimCsCa::new(now).unwrap();
        let mut workload = SimWorkload::of_image(IMAGE, "node-1");
        workload.debug = debug;
        let attester = SimCsAttester::new(&ca, workload, now).unwrap();
        let log = log_of(3, AuditKey::generate().unwrap());
        let bundle = attester
            .attest_at(&log.attestation_request(&MANIFEST), now)
            .unwrap();
        let verifier = Verifier::production()
            .trust_simulated_gcp_root(ca.root_der(), now)
            .unwrap();
        (log.export(&MANIFEST, &bundle).unwrap(), verifier)
    }

    #[test]
    fn a_token_bundle_vouches_for_a_log() {
        let (text, verifier) = export_by(false);
        let verified = verify_export(&text, &verifier, None).unwrap();
        assert_eq!(verified.count(), 3);
        let digest = SimWorkload::of_image(IMAGE, "node-1").image_digest;
        assert_eq!(verified.measurements().get("image_digest"), Some(&digest));
        // Under Nitro's roots alone it vouches for nothing.
        assert!(verify_export(&text, &Verifier::aws_nitro(), None).is_err());
    }

    /// The time an export is verified at comes from its attestation before anything is
    /// verified. A Confidential Space `iat` is whole seconds in a u64, so a crafted token
    /// (no valid signature needed) could name a time `SystemTime` cannot hold: it is
    /// refused, never a panic of whoever verifies the export (`custody audit verify`).
    #[test]
    fn a_token_issued_at_the_end_of_time_is_refused_not_a_panic() {
        let now = SystemTime::now();
        let ca = SimCsCa::new(now).unwrap();
        let attester =
            SimCsAttester::new(&ca, SimWorkload::of_image(IMAGE, "node-1"), now).unwrap();
        let log = log_of(3, AuditKey::generate().unwrap());
        let request = log.attestation_request(&MANIFEST);
        let (header, mut claims) = attester.parts(&request, now).unwrap();
        claims.insert("iat".to_owned(), serde_json::json!(u64::MAX));
        let token = attester.sign(&header, &claims).unwrap();
        let bundle = attestation::gcp::encode_bundle(
            &token,
            request.nonce.as_deref(),
            request.public_key.as_deref(),
            request.user_data.as_deref(),
        );
        let text = log.export(&MANIFEST, &bundle).unwrap();
        let verifier = Verifier::production()
            .trust_simulated_gcp_root(ca.root_der(), now)
            .unwrap();
        let outcome = std::panic::catch_unwind(|| verify_export(&text, &verifier, None).is_err());
        assert!(
            matches!(outcome, Ok(true)),
            "the export verifier panicked instead of refusing the header"
        );
    }

    #[test]
    fn a_debuggable_workload_does_not_vouch_for_a_log() {
        let (text, verifier) = export_by(true);
        assert!(matches!(
            verify_export(&text, &verifier, None),
            Err(AuditError::Export {
                line: 1,
                problem: ExportProblem::DebugMode
            })
        ));
    }
}
