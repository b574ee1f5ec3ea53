#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
use super::*;
use protocol::operator_api::{CreatedKey, SignedDigest};

fn answer(status: RequestStatus) -> RequestAnswer {
    RequestAnswer::new(&[0xab; 32], status)
}

fn signed() -> RequestAnswer {
    let mut a = answer(RequestStatus::Signed);
    a.rule = Some("small transfers".into());
    a.policy_version = Some(2);
    a.signature = Some(SignedDigest {
        scheme: protocol::SchemeId::EcdsaSecp256k1,
        r: "01".repeat(32),
        s: "02".repeat(32),
        v: 1,
        public_key: "03".repeat(33),
        digest: "04".repeat(32),
        signers: vec!["node-1".into(), "node-2".into()],
        presigned: false,
    });
    a.signed_tx = Some("02f8".into());
    a
}

#[test]
fn exit_codes_say_signed_pending_or_not() {
    assert_eq!(exit_code(RequestStatus::Signed), 0);
    assert_eq!(exit_code(RequestStatus::Created), 0);
    assert_eq!(exit_code(RequestStatus::Pending), 3);
    assert_eq!(exit_code(RequestStatus::Refused), 1);
    assert_eq!(exit_code(RequestStatus::Failed), 1);
    assert_eq!(exit_code(RequestStatus::Expired), 1);
}

/// Each status prints the lines that matter for it, and nothing a node could use to
/// forge a line of its own.
#[test]
fn each_status_prints_what_matters_for_it() {
    let text = describe(&signed());
    for line in [
        &format!("request:     {}", "ab".repeat(32)),
        "status:      signed",
        "rule:        small transfers (policy version 2)",
        &format!("r:           {}", "01".repeat(32)),
        "v:           1",
        "signers:     node-1, node-2",
        "signed tx:   02f8",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
    assert!(!text.contains("approvals"));

    let mut pending = answer(RequestStatus::Pending);
    pending.approvals = Some(1);
    pending.approvals_needed = Some(2);
    pending.rule = Some("large".into());
    let text = describe(&pending);
    assert!(text.contains("status:      pending"), "{text}");
    assert!(
        text.contains(
            "approvals:   1 of 2 needed; another operator runs: custody request approve abab"
        ),
        "{text}"
    );
    assert!(!text.contains("r:  "));

    let mut refused = answer(RequestStatus::Refused);
    refused.rule = Some("no rule\nstatus:      signed".into());
    refused.reason = Some("destination not allowlisted".into());
    let text = describe(&refused);
    assert!(text.contains("status:      refused"), "{text}");
    assert!(text.contains("reason:      destination not allowlisted"));
    // A rule name with a line break cannot print a line of its own.
    assert_eq!(text.lines().filter(|l| l.starts_with("status:")).count(), 1);

    let text = describe(&answer(RequestStatus::Expired));
    assert_eq!(text.lines().count(), 2);
    assert!(text.ends_with("status:      expired"));
    let text = describe(&answer(RequestStatus::Failed));
    assert!(text.ends_with("status:      failed"));

    let mut created = answer(RequestStatus::Created);
    created.key = Some(CreatedKey {
        key_id: "key-0011223344556677".into(),
        scheme: protocol::SchemeId::EcdsaSecp256k1,
        public_key: "02".repeat(33),
        eth_address: "0xabc".into(),
        btc_address: "bc1q".into(),
        parties: vec!["node-1".into(), "node-2".into()],
        threshold: 2,
    });
    let text = describe(&created);
    assert!(text.contains("key id:      key-0011223344556677"), "{text}");
    assert!(text.contains("parties:     node-1, node-2 (threshold 2)"));
    assert!(text.contains("Ethereum:    0xabc"));
}

#[test]
fn lifetimes_run_from_one_second_to_a_day() {
    assert_eq!(ttl_ms(None).unwrap(), DEFAULT_TTL_MS);
    assert_eq!(ttl_ms(Some(1)).unwrap(), 1000);
    assert_eq!(ttl_ms(Some(MAX_TTL_SECS)).unwrap(), MAX_TTL_MS);
    for refused in [0, MAX_TTL_SECS + 1, u64::MAX] {
        assert!(
            matches!(ttl_ms(Some(refused)), Err(OpError::Ttl { secs }) if secs == refused),
            "{refused}"
        );
    }
}

#[test]
fn new_key_ids_are_random_and_valid() {
    let a = new_key_id().unwrap();
    let b = new_key_id().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), 4 + 16);
    assert!(a.starts_with("key-"));
    KeyId::new(&a).unwrap();
}

#[test]
fn payloads_are_checked_for_form() {
    assert_eq!(
        payload(Some("0x02EF"), None, "mainnet", None).unwrap(),
        Payload::EthTx("02ef".into())
    );
    assert_eq!(
        payload(None, Some("cHNidP8="), "regtest", None).unwrap(),
        Payload::BtcPsbt {
            psbt: "cHNidP8=".into(),
            network: "regtest".into()
        }
    );
    let digest = "AB".repeat(32);
    assert_eq!(
        payload(None, None, "mainnet", Some(&digest)).unwrap(),
        Payload::Digest("ab".repeat(32))
    );
    for (tx, psbt, digest) in [
        (Some("zz"), None, None),
        (Some(""), None, None),
        (None, Some("***"), None),
        (None, Some(""), None),
        (None, None, Some("ab")),
        (None, None, Some(&*"ab".repeat(33))),
        (None, None, None),
        (Some("02"), None, Some(&*"ab".repeat(32))),
    ] {
        assert!(
            matches!(payload(tx, psbt, "mainnet", digest), Err(OpError::Usage(_))),
            "{tx:?} {psbt:?} {digest:?}"
        );
    }
}

/// The request carries what was asked under the pinned manifest, its requester's
/// approval verifies, and the node's checker accepts it.
#[test]
fn a_request_is_approved_by_its_requester() {
    let key = manifest::OperatorKey::generate().unwrap();
    let action = Action::Sign {
        path: Some("m/0/1".into()),
        payload: Payload::Digest("cd".repeat(32)),
        signers: Vec::new(),
    };
    let made = authority(
        &[7; 32],
        "operator-0",
        &key,
        "treasury",
        action.clone(),
        1000,
        5000,
        &[1; 16],
    )
    .unwrap();
    let request = Request::parse(made.request_bytes()).unwrap();
    assert_eq!(request.manifest_hash, "07".repeat(32));
    assert_eq!(request.key_id, "treasury");
    assert_eq!(request.requester, "operator-0");
    assert_eq!(request.action, action);
    assert_eq!((request.created_ms, request.expires_ms), (1000, 6000));
    assert_eq!(request.nonce, "01".repeat(16));
    assert_eq!(made.approvals().len(), 1);
    let signature: [u8; 64] = hex::decode(&made.approvals()[0].signature)
        .unwrap()
        .try_into()
        .unwrap();
    assert!(manifest::verify_approval(
        &key.public_key(),
        &made.id(),
        &signature
    ));
    // Ids the nodes would refuse are refused here.
    assert!(matches!(
        authority(
            &[7; 32],
            "operator-0",
            &key,
            "no spaces",
            action.clone(),
            1000,
            5000,
            &[1; 16]
        ),
        Err(OpError::Usage(_))
    ));
    assert!(matches!(
        authority(&[7; 32], "", &key, "treasury", action, 1000, 5000, &[1; 16]),
        Err(OpError::Usage(_))
    ));
}

#[test]
fn request_ids_are_64_hex_digits() {
    assert_eq!(parse_id(&"AB".repeat(32)).unwrap(), [0xab; 32]);
    for bad in ["", "ab", &"ab".repeat(33), &"zz".repeat(32)] {
        assert!(matches!(parse_id(bad), Err(OpError::Usage(_))), "{bad}");
    }
}

fn view(id: u8, expires_ms: u64) -> RequestView {
    RequestView {
        answer: RequestAnswer::new(&[id; 32], RequestStatus::Pending),
        key_id: "treasury".into(),
        requester: "operator-0".into(),
        action: "sign digest".into(),
        approvers: vec!["operator-0".into()],
        expires_ms,
    }
}

/// A request several nodes hold is listed once, naming each; a node that could not be
/// asked is named with why; the newest comes first.
#[test]
fn listings_merge_by_request_id() {
    let mut upper = view(2, 20);
    upper.answer.request_id = upper.answer.request_id.to_ascii_uppercase();
    let listing = merge([
        ("node-1".to_owned(), Ok(vec![view(1, 10), view(2, 20)])),
        ("node-2".to_owned(), Err("unreachable".to_owned())),
        ("node-3".to_owned(), Ok(vec![upper, view(3, 30)])),
    ]);
    let ids: Vec<(&str, &[String])> = listing
        .requests
        .iter()
        .map(|h| (&h.view.answer.request_id[..2], &h.nodes[..]))
        .collect();
    assert_eq!(
        ids,
        [
            ("03", &["node-3".to_owned()][..]),
            ("02", &["node-1".to_owned(), "node-3".to_owned()][..]),
            ("01", &["node-1".to_owned()][..]),
        ]
    );
    assert_eq!(listing.errors["node-2"], "unreachable");
    let json = serde_json::to_value(&listing).unwrap();
    assert_eq!(json["requests"][1]["nodes"][1], "node-3");
    assert_eq!(json["requests"][1]["key_id"], "treasury");
}

#[test]
fn holders_are_found_past_nodes_that_hold_no_such_request() {
    let file = crate::ops::tests::file();
    let id = "ab".repeat(32);
    let mut asked = Vec::new();
    let (node, answer) = at_holder(&file, None, &id, |node| {
        asked.push(node.to_owned());
        match node {
            "node-1" => Err(OpError::Refused {
                node: node.into(),
                reason: no_request(&id),
            }),
            _ => Ok(7),
        }
    })
    .unwrap();
    assert_eq!((node.as_str(), answer), ("node-2", 7));
    assert_eq!(asked, ["node-1", "node-2"]);

    // Any other refusal is the answer: it is not skipped.
    let err = at_holder(&file, None, &id, |node| -> Result<(), _> {
        Err(OpError::Refused {
            node: node.into(),
            reason: "the approval of operator-1 does not verify".into(),
        })
    })
    .unwrap_err();
    assert!(matches!(err, OpError::Refused { node, .. } if node == "node-1"));
    // A refusal for another request id is not "no such request".
    let err = at_holder(&file, None, &id, |node| -> Result<(), _> {
        Err(OpError::Refused {
            node: node.into(),
            reason: no_request(&"cd".repeat(32)),
        })
    })
    .unwrap_err();
    assert!(matches!(err, OpError::Refused { .. }));
    // No node holds it.
    let err = at_holder(&file, None, &id, |node| -> Result<(), _> {
        Err(OpError::Refused {
            node: node.into(),
            reason: no_request(&id),
        })
    })
    .unwrap_err();
    assert!(matches!(err, OpError::NoRequest { request_id } if request_id == id));
    // A node named is the only one asked.
    let mut asked = Vec::new();
    let _ = at_holder(&file, Some("node-3"), &id, |node| -> Result<(), OpError> {
        asked.push(node.to_owned());
        Err(OpError::Refused {
            node: node.into(),
            reason: no_request(&id),
        })
    });
    assert_eq!(asked, ["node-3"]);
}

#[test]
fn an_answer_about_another_request_is_refused() {
    let value = serde_json::to_value(answer(RequestStatus::Pending)).unwrap();
    answer_for("node-1", &"AB".repeat(32), value.clone()).unwrap();
    let err = answer_for("node-1", &"cd".repeat(32), value).unwrap_err();
    assert!(matches!(err, OpError::Answer { node, .. } if node == "node-1"));
    let err = answer_for(
        "node-1",
        &"ab".repeat(32),
        serde_json::json!({"status": "signed"}),
    )
    .unwrap_err();
    assert!(matches!(err, OpError::Answer { .. }));
}
