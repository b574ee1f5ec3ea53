//! Approvals that are forged, unlisted, missing, stale or made for another cluster; a
//! request for another key, path, action or input than the session's; and key creation,
//! which needs the manifest's threshold of operators.

use super::*;

#[test]
fn a_forged_approval_under_a_listed_name_refuses_the_whole_request() {
    let f = Fixture::new();
    let outsider = OperatorKey::generate().unwrap();
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 2000)),
        &op(0),
        f.now_ms,
    );
    let id = request_id(&bytes);
    let mut authority = f.approved(bytes, &[0, 2]);
    // Two genuine approvals would be enough; a third, forged, still refuses the request.
    assert_eq!(f.check(&authority).unwrap().rule, "large native");
    authority
        .add(Approval::sign(&op(1), &outsider, &id))
        .unwrap();
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::BadApproval(op(1)))
    );
    // An approval of another request does not verify for this one either.
    let other = f.authority(sign(native(1, EXCHANGE, 2000)), &[1]);
    let mut replayed = f.approved(
        f.request_bytes(
            &f.hash,
            "treasury",
            sign(native(1, EXCHANGE, 2000)),
            &op(0),
            f.now_ms,
        ),
        &[0],
    );
    replayed.add(other.approvals()[0].clone()).unwrap();
    assert_eq!(
        f.check(&replayed).unwrap_err(),
        Denied::Authority(AuthorityError::BadApproval(op(1)))
    );
}

#[test]
fn an_operator_the_manifest_does_not_list_is_refused() {
    let f = Fixture::new();
    let outsider = OperatorKey::generate().unwrap();
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 2000)),
        &op(0),
        f.now_ms,
    );
    let id = request_id(&bytes);
    let mut authority = f.approved(bytes, &[0]);
    authority
        .add(Approval::sign(&op(9), &outsider, &id))
        .unwrap();
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::NotOperator(op(9)))
    );
    // Nor may an outsider make a request of its own.
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(9),
        f.now_ms,
    );
    let id = request_id(&bytes);
    let authority = Authority::new(bytes, Approval::sign(&op(9), &outsider, &id));
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::NotOperator(op(9)))
    );
}

#[test]
fn a_request_without_its_requesters_approval_is_refused() {
    let f = Fixture::new();
    // Made in operator-0's name, approved by the two others only: enough approvals, but
    // operator-0 never asked.
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms,
    );
    let authority = f.approved(bytes, &[1, 2]);
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::NoRequesterApproval(op(0)))
    );
}

#[test]
fn an_expired_request_is_refused_from_the_millisecond_after_its_expiry() {
    let mut f = Fixture::new();
    let created = f.now_ms - DEFAULT_TTL_MS;
    let bytes = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        created,
    );
    let authority = f.approved(bytes, &[0]);
    let expires_ms = created + DEFAULT_TTL_MS;
    allowed_by(f.check(&authority), "small native");
    f.now_ms = expires_ms + 1;
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::Expired {
            expires_ms,
            now_ms: expires_ms + 1
        })
    );
}

#[test]
fn a_request_from_the_future_is_refused_past_the_clock_skew() {
    let f = Fixture::new();
    let at_skew = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms + MAX_CLOCK_SKEW_MS,
    );
    allowed_by(f.check(&f.approved(at_skew, &[0])), "small native");
    let past_skew = f.request_bytes(
        &f.hash,
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms + MAX_CLOCK_SKEW_MS + 1,
    );
    assert_eq!(
        f.check(&f.approved(past_skew, &[0])).unwrap_err(),
        Denied::Authority(AuthorityError::FromTheFuture {
            created_ms: f.now_ms + MAX_CLOCK_SKEW_MS + 1,
            now_ms: f.now_ms
        })
    );
}

#[test]
fn a_request_made_under_another_manifest_is_refused() {
    let f = Fixture::new();
    // Genuinely approved by this cluster's operators, for another cluster.
    let bytes = f.request_bytes(
        &[7; 32],
        "treasury",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms,
    );
    let authority = f.approved(bytes, &[0, 1, 2]);
    assert_eq!(
        f.check(&authority).unwrap_err(),
        Denied::Authority(AuthorityError::OtherManifest)
    );
    assert_eq!(
        f.create(&authority, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::Authority(AuthorityError::OtherManifest)
    );
}

// The request against the session.

#[test]
fn a_request_for_another_key_is_refused() {
    let f = Fixture::new();
    let bytes = f.request_bytes(
        &f.hash,
        "cold",
        sign(native(1, EXCHANGE, 10)),
        &op(0),
        f.now_ms,
    );
    assert_eq!(
        f.check(&f.approved(bytes, &[0])).unwrap_err(),
        Denied::OtherKey {
            requested: "cold".into(),
            session: "treasury".into()
        }
    );
}

#[test]
fn a_request_for_another_path_is_refused() {
    let mut f = Fixture::new();
    let at = |path: Option<&str>| Action::Sign {
        path: path.map(str::to_owned),
        payload: native(1, EXCHANGE, 10),
        signers: Vec::new(),
    };
    assert_eq!(
        f.check(&f.authority(at(Some("m/1")), &[0])).unwrap_err(),
        Denied::OtherPath {
            requested: "m/1".into(),
            session: "m".into()
        }
    );
    f.path = DerivationPath::parse("m/0/1").unwrap();
    assert_eq!(
        f.check(&f.authority(at(None), &[0])).unwrap_err(),
        Denied::OtherPath {
            requested: "m".into(),
            session: "m/0/1".into()
        }
    );
    assert_eq!(
        f.check(&f.authority(at(Some("m/0/2")), &[0])).unwrap_err(),
        Denied::OtherPath {
            requested: "m/0/2".into(),
            session: "m/0/1".into()
        }
    );
    allowed_by(
        f.check(&f.authority(at(Some("m/0/1")), &[0])),
        "small native",
    );
}

/// A request that names its signing set is signed by that set only, in any order.
#[test]
fn a_request_naming_its_signers_is_signed_by_them_only() {
    let mut f = Fixture::new();
    let by = |ids: &[&str]| Action::Sign {
        path: None,
        payload: native(1, EXCHANGE, 10),
        signers: ids.iter().map(|s| s.to_string()).collect(),
    };
    f.signers = nodes(&[1, 3]);
    assert_eq!(
        f.check(&f.authority(by(&["node-1", "node-2"]), &[0]))
            .unwrap_err(),
        Denied::OtherSigners
    );
    assert_eq!(
        f.check(&f.authority(by(&["node-1", "node-3", "node-2"]), &[0]))
            .unwrap_err(),
        Denied::OtherSigners
    );
    allowed_by(
        f.check(&f.authority(by(&["node-3", "node-1"]), &[0])),
        "small native",
    );
}

#[test]
fn a_key_creation_is_no_signature_and_a_signature_no_key_creation() {
    let f = Fixture::new();
    let creation = f.authority(create_key(2, &[]), &[0, 1]);
    assert_eq!(
        f.check(&creation).unwrap_err(),
        Denied::OtherAction { asked: "a new key" }
    );
    let signature = f.authority(sign(native(1, EXCHANGE, 10)), &[0, 1]);
    assert_eq!(
        f.create(&signature, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::OtherAction {
            asked: "a signature"
        }
    );
}

#[test]
fn a_session_signs_no_input_past_the_requests_last() {
    let f = Fixture::new();
    let g = f.governance();
    let two_inputs = psbt(
        &[(p2wpkh(OURS), 150_000), (p2wpkh(OURS), 60_000)],
        vec![pay(p2wpkh(PAYEE), 100_000), pay(p2wpkh(OURS), 108_000)],
    );
    let authority = f.authority(sign(btc(&two_inputs, "mainnet")), &[0]);
    for input in [0, 1] {
        check_session(&g, &authority, &f.key(), input).unwrap();
    }
    for input in [2, u16::MAX] {
        assert_eq!(
            check_session(&g, &authority, &f.key(), input).unwrap_err(),
            Denied::NoSuchInput { count: 2, input }
        );
    }
    let authority = f.authority(sign(native(1, EXCHANGE, 10)), &[0]);
    check_session(&g, &authority, &f.key(), 0).unwrap();
    assert_eq!(
        check_session(&g, &authority, &f.key(), 1).unwrap_err(),
        Denied::NoSuchInput { count: 1, input: 1 }
    );
}

#[test]
fn a_session_signs_the_requests_own_digests_and_no_other() {
    let f = Fixture::new();
    let g = f.governance();
    let two_inputs = psbt(
        &[(p2wpkh(OURS), 150_000), (p2wpkh(OURS), 60_000)],
        vec![pay(p2wpkh(PAYEE), 100_000), pay(p2wpkh(OURS), 108_000)],
    );
    // Each input's BIP143 sighash, recomputed here from the transaction by rust-bitcoin.
    let mut cache = SighashCache::new(&two_inputs.unsigned_tx);
    let expected: Vec<[u8; 32]> = [150_000, 60_000]
        .into_iter()
        .enumerate()
        .map(|(index, sats)| {
            cache
                .p2wpkh_signature_hash(
                    index,
                    &p2wpkh(OURS),
                    Amount::from_sat(sats),
                    EcdsaSighashType::All,
                )
                .unwrap()
                .to_byte_array()
        })
        .collect();
    assert_ne!(expected[0], expected[1]);
    let authority = f.authority(sign(btc(&two_inputs, "mainnet")), &[0]);
    for (input, sighash) in expected.iter().enumerate() {
        let (_, to_sign) = check_session(&g, &authority, &f.key(), input as u16).unwrap();
        assert_eq!(to_sign, ToSign::Digest(*sighash));
    }

    // A raw digest is signed as it is, under a policy with a digest rule.
    let f = Fixture::with_policy(&policy_with_rules(json!([
        {"name": "digests", "chain": "digest", "approvals": 1, "action": "allow"}
    ])));
    let authority = f.authority(sign(Payload::Digest("ab".repeat(32))), &[0]);
    let (_, to_sign) = check_session(&f.governance(), &authority, &f.key(), 0).unwrap();
    assert_eq!(to_sign, ToSign::Digest([0xab; 32]));
}

// Key creation.

#[test]
fn key_creation_needs_the_manifests_threshold_of_approvals() {
    let f = Fixture::new();
    let one = f.authority(create_key(2, &[]), &[1]);
    assert_eq!(
        f.create(&one, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::KeyApprovals {
            approvals: 1,
            needed: 2
        }
    );
    for approvers in [&[1, 0][..], &[2, 0, 1]] {
        let authority = f.authority(create_key(2, &[]), approvers);
        let authorized = f.create(&authority, "treasury", &[1, 2, 3], 2).unwrap();
        assert_eq!(authorized.approvers().len(), approvers.len());
    }
    // A policy is not needed to create a key.
    let bare = Fixture::bare();
    let authority = bare.authority(create_key(2, &[]), &[0, 1]);
    bare.create(&authority, "treasury", &[1, 2, 3], 2).unwrap();
}

#[test]
fn key_creation_approvals_are_checked_not_counted() {
    let f = Fixture::new();
    let outsider = OperatorKey::generate().unwrap();
    let bytes = f.request_bytes(&f.hash, "treasury", create_key(2, &[]), &op(0), f.now_ms);
    let id = request_id(&bytes);
    // A forged second approval does not make up the quorum.
    let mut forged = f.approved(bytes.clone(), &[0]);
    forged.add(Approval::sign(&op(1), &outsider, &id)).unwrap();
    assert_eq!(
        f.create(&forged, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::Authority(AuthorityError::BadApproval(op(1)))
    );
    let mut unlisted = f.approved(bytes, &[0]);
    unlisted
        .add(Approval::sign(&op(5), &outsider, &id))
        .unwrap();
    assert_eq!(
        f.create(&unlisted, "treasury", &[1, 2, 3], 2).unwrap_err(),
        Denied::Authority(AuthorityError::NotOperator(op(5)))
    );
}

#[test]
fn key_creation_must_be_exactly_the_sessions() {
    let f = Fixture::new();
    let other = |what| Denied::OtherKeyCreation {
        requested: "treasury".into(),
        what,
    };
    // Parties listed in any order, or none for every node of the manifest.
    for parties in [&[3, 1, 2][..], &[]] {
        let authority = f.authority(create_key(2, parties), &[0, 1]);
        f.create(&authority, "treasury", &[1, 2, 3], 2).unwrap();
    }
    let listed = f.authority(create_key(2, &[1, 2]), &[0, 1]);
    f.create(&listed, "treasury", &[2, 1], 2).unwrap();
    assert_eq!(
        f.create(&listed, "treasury", &[1, 2, 3], 2).unwrap_err(),
        other("parties")
    );
    assert_eq!(
        f.create(&listed, "treasury", &[1, 3], 2).unwrap_err(),
        other("parties")
    );
    let every = f.authority(create_key(2, &[]), &[0, 1]);
    assert_eq!(
        f.create(&every, "treasury", &[1, 2], 2).unwrap_err(),
        other("parties")
    );
    assert_eq!(
        f.create(&every, "treasury", &[1, 2, 3], 3).unwrap_err(),
        other("a threshold")
    );
    assert_eq!(
        f.create(&every, "cold", &[1, 2, 3], 2).unwrap_err(),
        other("an id")
    );
}
