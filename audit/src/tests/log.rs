//! The node's side: appending, the entry format, segments, and restoring what a hostile
//! parent hands back.

use super::*;
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};

fn segments(log: &AuditLog) -> Vec<Vec<u8>> {
    (0..log.segment_count())
        .map(|i| log.encode_segment(i).unwrap().unwrap())
        .collect()
}

fn restore(
    key: AuditKey,
    stored: &[Vec<u8>],
    expected: Option<Head>,
) -> Result<AuditLog, AuditError> {
    AuditLog::restore(
        node("node-1"),
        key,
        stored.iter().map(Vec::as_slice),
        expected,
    )
}

fn segment_problem(result: Result<AuditLog, AuditError>) -> (u64, SegmentProblem) {
    match result {
        Err(AuditError::Segment { index, problem }) => (index, problem),
        other => panic!("expected a segment error, got {other:?}"),
    }
}

#[test]
fn a_long_log_round_trips_through_its_segments() {
    let key = AuditKey::generate().unwrap();
    let log = log_of(600, same_key(&key));
    assert_eq!(log.len(), 600);
    assert_eq!(log.segment_count(), 3);
    assert_eq!(log.segment_of(0), Some(0));
    assert_eq!(log.segment_of(255), Some(0));
    assert_eq!(log.segment_of(256), Some(1));
    assert_eq!(log.segment_of(599), Some(2));
    assert_eq!(log.segment_of(600), None);
    assert!(log.encode_segment(3).is_none());
    let stored = segments(&log);

    let mut restored = restore(same_key(&key), &stored, Some(log.head())).unwrap();
    assert_eq!(restored.head(), log.head());
    assert_eq!(restored.entries_from(0), log.entries_from(0));
    assert_eq!(restored.entries_from(598).len(), 2);
    assert!(restored.entries_from(600).is_empty());
    assert!(restored.entries_from(u64::MAX).is_empty());
    assert_eq!(segments(&restored), stored);

    // It goes on where it stopped, in the last segment, and the next one opens at 768.
    let entry = restored.append(event(600), 1).unwrap();
    assert_eq!(entry.seq(), 600);
    assert_eq!(entry.prev(), &log.head().hash);
    assert_eq!(restored.segment_of(600), Some(2));
    for i in 601..=768 {
        restored.append(event(i), 1).unwrap();
    }
    assert_eq!(restored.segment_of(767), Some(2));
    assert_eq!(restored.segment_of(768), Some(3));
    let again = restore(key, &segments(&restored), Some(restored.head())).unwrap();
    assert_eq!(again.len(), 769);
}

#[test]
fn entries_are_hashed_and_signed_as_documented() {
    let key = AuditKey::generate().unwrap();
    let public_key = key.public_key();
    let log = log_of(3, key);
    let mut prev = [0u8; 32];
    for entry in log.entries_from(0) {
        assert_eq!(entry.prev(), &prev);
        let line = entry.to_line().unwrap();
        let signature_field = format!(",\"signature\":\"{}\"}}", hex::encode(entry.signature()));
        let unsigned = format!("{}}}", line.strip_suffix(&signature_field).unwrap());
        assert!(unsigned.starts_with(&format!(
            "{{\"seq\":{},\"prev\":\"{}\",",
            entry.seq(),
            hex::encode(prev)
        )));
        let hash = digest(&SHA256, &[HASH_CONTEXT, unsigned.as_bytes()].concat());
        assert_eq!(hash.as_ref(), entry.hash());
        let message = [SIGNATURE_CONTEXT, entry.hash()].concat();
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&message, entry.signature())
            .unwrap();
        assert_eq!(Entry::parse(&line).unwrap(), *entry);
        prev = *entry.hash();
    }
    assert!(
        log.entries_from(0)[0]
            .to_line()
            .unwrap()
            .contains("\"event\":{\"kind\":\"request\",")
    );
}

#[test]
fn a_line_that_is_not_canonical_is_refused() {
    let log = log_of(1, AuditKey::generate().unwrap());
    let line = log.entries_from(0)[0].to_line().unwrap();
    let spaced = line.replacen("\"seq\":0", "\"seq\": 0", 1);
    assert_eq!(Entry::parse(&spaced), Err(EntryProblem::NotCanonical));
    let sig = hex::encode(log.entries_from(0)[0].signature());
    let upper = line.replacen(&sig, &sig.to_uppercase(), 1);
    if upper != line {
        assert_eq!(Entry::parse(&upper), Err(EntryProblem::NotCanonical));
    }
    let extra = line.replacen("{\"seq\"", "{\"x\":1,\"seq\"", 1);
    assert!(matches!(
        Entry::parse(&extra),
        Err(EntryProblem::Malformed { .. })
    ));
    let inner = line.replacen(
        "{\"kind\":\"request\",",
        "{\"kind\":\"request\",\"x\":1,",
        1,
    );
    assert_ne!(inner, line);
    assert!(matches!(
        Entry::parse(&inner),
        Err(EntryProblem::Malformed { .. })
    ));
    let kind = line.replacen("\"kind\":\"request\"", "\"kind\":\"Request\"", 1);
    assert!(matches!(
        Entry::parse(&kind),
        Err(EntryProblem::Malformed { .. })
    ));
    assert!(matches!(
        Entry::parse("not json"),
        Err(EntryProblem::Malformed { .. })
    ));
}

/// A refusal's reason long enough that the entry's line is `len` bytes.
fn decision_of_len(len: usize) -> Event {
    let with = |reason: String| Event::Decision {
        request_id: [1; 32],
        outcome: Outcome::Refused,
        rule: None,
        policy_version: None,
        reason: Some(reason),
    };
    let mut probe = AuditLog::new(node("node-1"), AuditKey::generate().unwrap());
    let base = probe
        .append(with(String::new()), 0)
        .unwrap()
        .to_line()
        .unwrap()
        .len();
    with("r".repeat(len - base))
}

#[test]
fn an_entry_is_at_most_max_entry_len() {
    let mut log = AuditLog::new(node("node-1"), AuditKey::generate().unwrap());
    let at_max = log.append(decision_of_len(MAX_ENTRY_LEN), 0).unwrap();
    let line = at_max.to_line().unwrap();
    assert_eq!(line.len(), MAX_ENTRY_LEN);
    assert!(Entry::parse(&line).is_ok());
    assert_eq!(
        log.append(decision_of_len(MAX_ENTRY_LEN + 1), 0)
            .unwrap_err(),
        AuditError::EntryTooLarge {
            len: MAX_ENTRY_LEN + 1
        }
    );
    // Refused, not cut: the log is as it was.
    assert_eq!(log.len(), 1);
    let longer = format!("{line} ");
    assert_eq!(
        Entry::parse(&longer),
        Err(EntryProblem::TooLong {
            len: MAX_ENTRY_LEN + 1
        })
    );
}

#[test]
fn large_entries_start_a_new_segment_before_it_outgrows_a_blob() {
    let mut log = AuditLog::new(node("node-1"), AuditKey::generate().unwrap());
    // Room for the seq's digits, which the probe's entry 0 has one of.
    for _ in 0..256 {
        log.append(decision_of_len(MAX_ENTRY_LEN - 3), 0).unwrap();
    }
    // 256 entries of 16 KiB do not fit in MAX_SEGMENT_LEN: the last ones spill over.
    assert_eq!(log.segment_count(), 2);
    for i in 0..2 {
        let segment = log.encode_segment(i).unwrap().unwrap();
        assert!(segment.len() <= MAX_SEGMENT_LEN, "{}", segment.len());
    }
    let first = log.encode_segment(0).unwrap().unwrap();
    assert!(first.len() + 4 + MAX_ENTRY_LEN > MAX_SEGMENT_LEN);
}

#[test]
fn a_dropped_reordered_or_replaced_segment_is_refused() {
    let key = AuditKey::generate().unwrap();
    let log = log_of(600, same_key(&key));
    let stored = segments(&log);
    let [s0, s1, s2] = [stored[0].clone(), stored[1].clone(), stored[2].clone()];

    // Dropped: segment 2 read where segment 1 belongs.
    let (index, problem) =
        segment_problem(restore(same_key(&key), &[s0.clone(), s2.clone()], None));
    assert_eq!(
        (index, problem),
        (
            1,
            SegmentProblem::Index {
                expected: 1,
                found: 2
            }
        )
    );

    // Reordered.
    let (index, problem) = segment_problem(restore(
        same_key(&key),
        &[s1.clone(), s0.clone(), s2.clone()],
        None,
    ));
    assert_eq!(
        (index, problem),
        (
            0,
            SegmentProblem::Index {
                expected: 0,
                found: 1
            }
        )
    );

    // Replaced by segment 1 of another log of the same node, under another key: the same
    // events at the same times hash the same, the signatures give it away.
    let other = log_of(600, AuditKey::generate().unwrap());
    let foreign = other.encode_segment(1).unwrap().unwrap();
    let (index, problem) = segment_problem(restore(
        same_key(&key),
        &[s0.clone(), foreign, s2.clone()],
        None,
    ));
    assert_eq!(
        (index, problem),
        (
            1,
            SegmentProblem::Entry {
                position: 0,
                problem: EntryProblem::Signature { seq: 256 }
            }
        )
    );

    // Replaced by an older copy of itself, from when it held 100 entries.
    let older = log_of(356, same_key(&key))
        .encode_segment(1)
        .unwrap()
        .unwrap();
    let (index, problem) = segment_problem(restore(
        same_key(&key),
        &[s0.clone(), older.clone(), s2.clone()],
        None,
    ));
    assert_eq!(
        (index, problem),
        (
            2,
            SegmentProblem::FirstSeq {
                expected: 356,
                found: 512
            }
        )
    );

    // The newest segment withheld, or rolled back: only the node's record of its head
    // can tell.
    let short = restore(same_key(&key), &[s0.clone(), s1.clone()], None).unwrap();
    assert_eq!(short.len(), 512);
    for truncated in [vec![s0.clone(), s1.clone()], vec![s0.clone(), older]] {
        assert!(matches!(
            restore(same_key(&key), &truncated, Some(log.head())),
            Err(AuditError::HeadMismatch {
                expected_count: 600,
                ..
            })
        ));
    }

    // Entries that verify under another key, or name another node.
    let (index, problem) = segment_problem(restore(AuditKey::generate().unwrap(), &stored, None));
    assert_eq!(
        (index, problem),
        (
            0,
            SegmentProblem::Entry {
                position: 0,
                problem: EntryProblem::Signature { seq: 0 }
            }
        )
    );
    let (index, problem) = segment_problem(AuditLog::restore(
        node("node-2"),
        same_key(&key),
        stored.iter().map(Vec::as_slice),
        None,
    ));
    assert!(matches!(
        (index, problem),
        (
            0,
            SegmentProblem::Entry {
                position: 0,
                problem: EntryProblem::Node { seq: 0, .. }
            }
        )
    ));
}

#[test]
fn a_malformed_segment_is_refused_before_it_is_read() {
    let key = AuditKey::generate().unwrap();
    let log = log_of(10, same_key(&key));
    let good = log.encode_segment(0).unwrap().unwrap();
    let problem = |bytes: Vec<u8>| segment_problem(restore(same_key(&key), &[bytes], None)).1;

    assert!(restore(same_key(&key), std::slice::from_ref(&good), None).is_ok());
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(problem(trailing), SegmentProblem::TrailingBytes(1));
    assert_eq!(
        problem(good[..good.len() - 1].to_vec()),
        SegmentProblem::Truncated { field: "entry" }
    );
    assert_eq!(
        problem(good[..20].to_vec()),
        SegmentProblem::Truncated { field: "first_seq" }
    );
    let mut magic = good.clone();
    magic[0] ^= 1;
    assert_eq!(problem(magic), SegmentProblem::Magic);
    let mut version = good.clone();
    version[8] = 2;
    assert_eq!(problem(version), SegmentProblem::Version(2));
    for count in [0u32, 257] {
        let mut bad = good.clone();
        bad[25..29].copy_from_slice(&count.to_be_bytes());
        assert_eq!(
            problem(bad),
            SegmentProblem::Count {
                count: u64::from(count),
                max: 256
            }
        );
    }
    let mut huge_entry = good.clone();
    huge_entry[29..33].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        problem(huge_entry),
        SegmentProblem::Entry {
            position: 0,
            problem: EntryProblem::TooLong { .. }
        }
    ));
    // A flipped byte inside an entry: its signature, or its form, gives it away.
    let mut flipped = good.clone();
    let at = good.len() - 300;
    flipped[at] = if flipped[at] == b'1' { b'2' } else { b'1' };
    assert!(matches!(problem(flipped), SegmentProblem::Entry { .. }));
    // The size limit comes before anything is read.
    assert_eq!(
        problem(vec![0; MAX_SEGMENT_LEN + 1]),
        SegmentProblem::TooLong {
            len: MAX_SEGMENT_LEN + 1,
            max: MAX_SEGMENT_LEN
        }
    );
}

#[test]
fn segment_names_sort_in_log_order() {
    assert_eq!(segment_name(0), "audit-segment-0000000000");
    assert_eq!(segment_name(42), "audit-segment-0000000042");
    assert!(segment_name(9) < segment_name(10));
}

#[test]
fn the_key_round_trips_and_never_shows() {
    let key = AuditKey::generate().unwrap();
    let der = key.to_pkcs8().unwrap();
    let again = AuditKey::from_pkcs8(&der).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    let shown = format!("{key:?} {:?}", log_of(0, again));
    assert!(shown.contains(&hex::encode(key.public_key())));
    assert!(!shown.contains(&hex::encode(&der[..])));
    assert!(shown.contains("<redacted>"));
    assert!(matches!(
        AuditKey::from_pkcs8(b"not a key"),
        Err(KeyError::Rejected(_))
    ));
}
