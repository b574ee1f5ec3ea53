//! The audit log's stored formats, its start check and its export pages, without a node.

use super::*;
use ::audit::Entry;
use ids::{KeyId, NodeId};

fn log_of(n: u64) -> AuditLog {
    let mut log = AuditLog::new(
        NodeId::new("node-1").unwrap(),
        AuditKey::generate().unwrap(),
    );
    for i in 0..n {
        let event = Event::ManifestChange {
            version: i,
            hash: [7; 32],
        };
        log.append(event, 1_700_000_000_000 + i).unwrap();
    }
    log
}

fn lines(log: &AuditLog) -> Vec<String> {
    log.entries_from(0)
        .iter()
        .map(|e: &Entry| e.to_line().unwrap())
        .collect()
}

#[test]
fn the_head_blob_round_trips_and_refuses_other_lengths_and_formats() {
    let head = Head {
        count: 0x0102_0304_0506_0708,
        hash: [9; 32],
    };
    let bytes = encode_head(head);
    assert_eq!(bytes.len(), HEAD_LEN);
    assert_eq!(bytes[..9], [1, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(decode_head(&bytes).unwrap(), head);
    for len in [0, HEAD_LEN - 1, HEAD_LEN + 1] {
        let mut other = bytes.to_vec();
        other.resize(len, 0);
        assert!(
            matches!(decode_head(&other), Err(AuditFailure::Format { name, .. }) if name == HEAD_BLOB),
            "{len}"
        );
    }
    let mut v2 = bytes;
    v2[0] = 2;
    assert!(matches!(decode_head(&v2), Err(AuditFailure::Format { .. })));
}

#[test]
fn the_key_blob_round_trips_and_refuses_another_format() {
    let key = AuditKey::generate().unwrap();
    let bytes = encode_key(&key).unwrap();
    assert_eq!(bytes.first(), Some(&FORMAT));
    assert_eq!(decode_key(&bytes).unwrap().public_key(), key.public_key());
    let mut v2 = bytes.to_vec();
    v2[0] = 2;
    assert!(matches!(decode_key(&v2), Err(AuditFailure::Format { .. })));
    assert!(matches!(decode_key(&[]), Err(AuditFailure::Format { .. })));
    assert!(matches!(
        decode_key(&[FORMAT, 1, 2, 3]),
        Err(AuditFailure::Log(_))
    ));
}

/// The log must reach the head the node recorded: exactly there, or beyond it when the
/// node stopped between an append's segment and head writes; a shorter log (the newest
/// segment withheld or an older copy of it), or another entry at the recorded place,
/// fails the start.
#[test]
fn a_restored_log_must_reach_the_recorded_head() {
    let log = log_of(3);
    let at = |count| head_at(&log, count).unwrap();
    check_reaches(&log, Head::EMPTY).unwrap();
    check_reaches(&log, at(3)).unwrap();
    check_reaches(&log, at(2)).unwrap();
    let ahead = Head {
        count: 4,
        hash: at(3).hash,
    };
    assert!(matches!(
        check_reaches(&log, ahead),
        Err(AuditError::HeadMismatch {
            expected_count: 4,
            found_count: 3,
            ..
        })
    ));
    let other = Head {
        count: 2,
        hash: at(3).hash,
    };
    assert!(matches!(
        check_reaches(&log, other),
        Err(AuditError::HeadMismatch { .. })
    ));
    let nothing_but_a_hash = Head {
        count: 0,
        hash: [1; 32],
    };
    assert!(check_reaches(&log, nothing_but_a_hash).is_err());
    // An empty log reaches only the empty head.
    let empty = log_of(0);
    check_reaches(&empty, Head::EMPTY).unwrap();
    assert!(check_reaches(&empty, at(1)).is_err());
}

fn page_len(page: &AuditPage) -> usize {
    serde_json::to_string(page).unwrap().len()
}

/// A page holds what fits in the budget and no more: at exactly the length of a page with
/// `k` entries, `k` entries; one byte less, `k - 1`; the next page starts where it ends.
#[test]
fn pages_fill_the_budget_exactly_and_continue_where_they_end() {
    let log = log_of(5);
    let all = lines(&log);
    let whole = build_page(None, 0, 5, all.clone(), usize::MAX).unwrap();
    assert_eq!(whole.entries, all);
    assert_eq!(whole.next, None);
    // The budget counts `next` at its widest, so that the answer never outgrows it.
    let widest = |k: usize| {
        page_len(&AuditPage {
            header: None,
            entries: all[..k].to_vec(),
            next: Some(u64::MAX),
        })
    };
    for k in 1..=4 {
        let page = build_page(None, 0, 5, all.clone(), widest(k)).unwrap();
        assert_eq!(page.entries.len(), k, "budget {}", widest(k));
        assert_eq!(page.next, Some(k as u64));
        assert!(page_len(&page) <= widest(k));
        match build_page(None, 0, 5, all.clone(), widest(k) - 1) {
            Ok(short) => assert_eq!(short.entries.len(), k - 1),
            Err(AuditFailure::PageTooSmall { seq: 0 }) => assert_eq!(k, 1),
            Err(e) => panic!("{e}"),
        }
    }
    // The next page, asked from where the first ended.
    let first = build_page(None, 0, 5, all.clone(), widest(2)).unwrap();
    let from = first.next.unwrap();
    let rest = build_page(None, from, 5, all[2..].to_vec(), usize::MAX).unwrap();
    assert_eq!([first.entries, rest.entries].concat(), all);
    assert_eq!(rest.next, None);
}

#[test]
fn a_page_stops_at_its_end_and_never_comes_back_empty() {
    let log = log_of(3);
    let all = lines(&log);
    // The header's count is the end: entries appended since are not on any page.
    let page = build_page(Some("header".into()), 0, 2, all.clone(), usize::MAX).unwrap();
    assert_eq!(page.header.as_deref(), Some("header"));
    assert_eq!(page.entries.len(), 2);
    assert_eq!(page.next, None);
    // Past the end: nothing, and no next page.
    let past = build_page(None, 7, 3, Vec::new(), usize::MAX).unwrap();
    assert!(past.entries.is_empty());
    assert_eq!(past.next, None);
    // A budget in which no entry fits is an error, never an empty page that asks again.
    assert!(matches!(
        build_page(None, 0, 3, all, 10),
        Err(AuditFailure::PageTooSmall { seq: 0 })
    ));
}

#[test]
fn candidate_lines_stop_at_the_end_asked() {
    let log = log_of(4);
    assert_eq!(
        candidate_lines(&log, 1, 3).unwrap(),
        lines(&log)[1..3].to_vec()
    );
    assert!(candidate_lines(&log, 4, 4).unwrap().is_empty());
    assert!(candidate_lines(&log, 9, 4).unwrap().is_empty());
}

#[test]
fn decisions_name_outcome_rule_version_and_reason() {
    let id = [3u8; 32];
    let pending = Denied::Pending {
        rule: "big".into(),
        approvals: 1,
        approvals_needed: 2,
        policy_version: 4,
    };
    assert_eq!(
        decision(&id, Err(&pending)),
        Event::Decision {
            request_id: id,
            outcome: Outcome::Pending,
            rule: Some("big".into()),
            policy_version: Some(4),
            reason: None,
        }
    );
    let refused = Denied::Refused {
        rule: None,
        reason: policy::Refusal::NoRule,
        policy_version: 4,
    };
    assert_eq!(
        decision(&id, Err(&refused)),
        Event::Decision {
            request_id: id,
            outcome: Outcome::Refused,
            rule: None,
            policy_version: Some(4),
            reason: Some("no rule allows this request".into()),
        }
    );
    assert_eq!(
        decision(&id, Err(&Denied::NoPolicy)),
        Event::Decision {
            request_id: id,
            outcome: Outcome::Refused,
            rule: None,
            policy_version: None,
            reason: Some("no policy is in force on this node".into()),
        }
    );
    assert!(matches!(
        pending_key(&id),
        Event::Decision {
            outcome: Outcome::Pending,
            rule: None,
            ..
        }
    ));
}

/// What a request asks, as the log records it on arrival: what the policy will see when
/// the node holds the key, the payload's kind when it does not.
#[test]
fn request_summaries_say_what_the_policy_will_see() {
    let key_id = KeyId::new("treasury").unwrap();
    let path = DerivationPath::master();
    let public = [2u8; 33];
    let key = || SigningKey {
        key_id: &key_id,
        path: &path,
        public_key: &public,
        signers: &[],
    };
    // EIP-155's example: 1 ether to 0x3535.. on chain 1, with 21 000 gas at 20 gwei, which
    // the amount counts (0.00042 ether).
    let tx = "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080";
    let sign = |payload| Action::Sign {
        path: None,
        payload,
        signers: Vec::new(),
    };
    let eth = sign(Payload::EthTx(tx.into()));
    assert_eq!(
        summary(&eth, Some(key())),
        Summary {
            chain: "ethereum:1".into(),
            to: Some("0x3535353535353535353535353535353535353535".into()),
            amount: Some("1000420000000000000".into()),
        }
    );
    assert_eq!(summary(&eth, None).chain, "eth-tx");
    let bad = sign(Payload::EthTx("zz".into()));
    assert_eq!(summary(&bad, Some(key())).chain, "eth-tx");
    let digest = sign(Payload::Digest("11".repeat(32)));
    assert_eq!(
        summary(&digest, Some(key())),
        Summary {
            chain: "digest".into(),
            to: None,
            amount: None,
        }
    );
    let create = Action::CreateKey {
        threshold: 2,
        parties: Vec::new(),
        renew_aux: false,
    };
    assert_eq!(summary(&create, None).chain, "create-key");
}
