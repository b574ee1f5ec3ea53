use super::*;

fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

fn members() -> Vec<NodeId> {
    ["a", "b", "c"].into_iter().map(node).collect()
}

const HASH: [u8; 32] = [7; 32];

/// An authority's shape only: the node, not this crate, checks what it says.
fn authority() -> Authority {
    Authority::new(
        b"{}".to_vec(),
        crate::authority::Approval {
            operator: "operator-0".into(),
            signature: "00".repeat(64),
        },
    )
}

fn sign_op() -> Operation {
    Operation::Sign {
        key_id: "k1".into(),
        signers: vec!["a".into(), "b".into()],
        path: vec![0, 1],
        authority: authority(),
        input: 0,
    }
}

fn encoded(op: Operation, nonce: u8) -> Vec<u8> {
    SessionRequest::new(&node("a"), &HASH, &[nonce; 32], op)
        .encode()
        .unwrap()
}

#[test]
fn every_participant_derives_the_same_session() {
    let bytes = encoded(sign_op(), 1);
    let at_a = SessionRequest::verify(&bytes, &node("a"), &node("a"), &HASH, &members());
    let at_b = SessionRequest::verify(&bytes, &node("a"), &node("b"), &HASH, &members());
    let (at_a, at_b) = (at_a.unwrap(), at_b.unwrap());
    assert_eq!(at_a.session, at_b.session);
    assert_eq!(at_a.session, SessionId::derive(Protocol::Sign, &bytes));
    // Another nonce, another session.
    let other = encoded(sign_op(), 2);
    let other = SessionRequest::verify(&other, &node("a"), &node("b"), &HASH, &members());
    assert_ne!(other.unwrap().session, at_b.session);
}

#[test]
fn refuses_requests_this_node_did_not_get_from_their_coordinator() {
    let bytes = encoded(sign_op(), 1);
    let verify = |from: &str, me: &str, hash: &[u8; 32]| {
        SessionRequest::verify(&bytes, &node(from), &node(me), hash, &members())
    };
    assert!(matches!(
        verify("b", "b", &HASH),
        Err(RequestError::WrongCoordinator { .. })
    ));
    assert_eq!(
        verify("a", "b", &[8; 32]).unwrap_err(),
        RequestError::OtherManifest
    );
    assert_eq!(
        verify("a", "c", &HASH).unwrap_err(),
        RequestError::NotParticipant("c".into())
    );
    let outsider = encoded(
        Operation::AuxInfo {
            group: vec!["a".into(), "b".into(), "z".into()],
            renew: false,
        },
        1,
    );
    assert_eq!(
        SessionRequest::verify(&outsider, &node("a"), &node("b"), &HASH, &members()).unwrap_err(),
        RequestError::NotInManifest("z".into())
    );
}

#[test]
fn the_renewal_flag_reaches_every_participant() {
    let aux = |renew| {
        encoded(
            Operation::AuxInfo {
                group: vec!["a".into(), "b".into()],
                renew,
            },
            1,
        )
    };
    let renew_at_b = |bytes: &[u8]| match SessionRequest::verify(
        bytes,
        &node("a"),
        &node("b"),
        &HASH,
        &members(),
    )
    .unwrap()
    .task
    {
        Task::AuxInfo { renew, .. } => renew,
        other => panic!("{other:?}"),
    };
    // Absent means no renewal, and a request without it keeps its earlier encoding.
    let plain = aux(false);
    assert!(!String::from_utf8_lossy(&plain).contains("renew"));
    assert!(!renew_at_b(&plain));
    let renewal = aux(true);
    assert!(renew_at_b(&renewal));
    // The flag is part of the bytes the session id is derived from.
    assert_ne!(
        SessionId::derive(Protocol::AuxInfo, &plain),
        SessionId::derive(Protocol::AuxInfo, &renewal)
    );
}

#[test]
fn refuses_malformed_requests() {
    let check = |bytes: &[u8]| {
        SessionRequest::verify(bytes, &node("a"), &node("b"), &HASH, &members()).unwrap_err()
    };
    assert!(matches!(check(b"{}"), RequestError::Malformed(_)));
    assert!(matches!(
        check(&vec![b' '; MAX_REQUEST_LEN + 1]),
        RequestError::TooLarge(_)
    ));
    let mut value: serde_json::Value = serde_json::from_slice(&encoded(sign_op(), 1)).unwrap();
    value["extra"] = 1.into();
    assert!(matches!(
        check(&serde_json::to_vec(&value).unwrap()),
        RequestError::Malformed(_)
    ));
    let mut value: serde_json::Value = serde_json::from_slice(&encoded(sign_op(), 1)).unwrap();
    value["version"] = 2.into();
    assert_eq!(
        check(&serde_json::to_vec(&value).unwrap()),
        RequestError::Version(2)
    );
    let bad = |op| check(&encoded(op, 1));
    assert!(matches!(
        bad(Operation::Sign {
            key_id: "k1".into(),
            signers: vec!["a".into(), "b".into(), "b".into()],
            path: vec![],
            authority: authority(),
            input: 0,
        }),
        RequestError::Invalid(_)
    ));
    assert!(matches!(
        bad(Operation::Sign {
            key_id: "k1".into(),
            signers: vec!["a".into(), "b".into()],
            path: vec![0x8000_0000],
            authority: authority(),
            input: 0,
        }),
        RequestError::Invalid(_)
    ));
    assert!(matches!(
        bad(Operation::Keygen {
            key_id: "k1".into(),
            group: vec!["a".into(), "b".into()],
            threshold: 3,
            aux_info: hex::encode([0u8; 32]),
            authority: authority(),
        }),
        RequestError::Invalid(_)
    ));
    // A record names the key's parties, each a manifest node, each once.
    assert!(matches!(
        bad(Operation::Record {
            key_id: "k1".into(),
            parties: vec!["a".into(), "b".into(), "b".into()],
            signers: vec!["a".into(), "b".into()],
            authority: authority(),
        }),
        RequestError::Invalid(_)
    ));
    assert!(matches!(
        bad(Operation::Record {
            key_id: "k1".into(),
            parties: vec!["a".into(), "b".into(), "z".into()],
            signers: vec!["a".into(), "b".into()],
            authority: authority(),
        }),
        RequestError::NotInManifest(_)
    ));
    // An authority over its limit is refused with the request, before it is used.
    let mut value: serde_json::Value = serde_json::from_slice(&encoded(sign_op(), 1)).unwrap();
    value["operation"]["sign"]["authority"]["request"] = "A"
        .repeat(crate::authority::MAX_REQUEST_LEN * 4 / 3 + 8)
        .into();
    assert!(matches!(
        check(&serde_json::to_vec(&value).unwrap()),
        RequestError::Malformed(_)
    ));
}

/// The largest authority fits a session request, and the largest session request a peer
/// message.
#[test]
fn the_largest_authority_fits_a_session_request() {
    let largest = Authority::decode(
        &serde_json::to_vec(&serde_json::json!({
            "request": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                vec![b'{'; crate::authority::MAX_REQUEST_LEN],
            ),
            "approvals": (0..crate::authority::MAX_APPROVALS).map(|i| serde_json::json!({
                "operator": format!("{i:0>64}"), "signature": "ab".repeat(64),
            })).collect::<Vec<_>>(),
        }))
        .unwrap(),
    )
    .unwrap();
    let op = Operation::SignPresigned {
        key_id: "k".repeat(ids::MAX_ID_LEN),
        signers: (0..manifest::MAX_NODES)
            .map(|i| format!("{i:0>64}"))
            .collect(),
        presignature: hex::encode([1u8; 32]),
        authority: largest,
        input: u16::MAX,
    };
    let bytes = encoded(op, 1);
    assert!(bytes.len() <= MAX_REQUEST_LEN, "{}", bytes.len());
    const _: () = assert!(MAX_REQUEST_LEN + 8 < crate::peer::MAX_MESSAGE_LEN);
}

/// A request names its key's scheme; one without the field, as every request was
/// written before it, is ECDSA's and keeps its bytes; a scheme this build does not
/// implement is refused before anything else is read.
#[test]
fn requests_name_their_scheme_and_old_ones_read_as_ecdsa() {
    let verify =
        |bytes: &[u8]| SessionRequest::verify(bytes, &node("a"), &node("b"), &HASH, &members());
    // The encoding of an ECDSA request is the one nodes wrote before the field.
    let aux = Operation::AuxInfo {
        group: vec!["a".into(), "b".into()],
        renew: false,
    };
    let bytes = encoded(aux.clone(), 1);
    let old = format!(
        r#"{{"version":1,"coordinator":"a","manifest_hash":"{}","nonce":"{}","operation":{{"aux-info":{{"group":["a","b"]}}}}}}"#,
        hex::encode(HASH),
        hex::encode([1u8; 32]),
    );
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), old);
    let verified = verify(old.as_bytes()).unwrap();
    assert_eq!(verified.scheme, SchemeId::EcdsaSecp256k1);
    assert_eq!(
        verified.session,
        SessionId::derive(Protocol::AuxInfo, old.as_bytes())
    );
    // Named explicitly, the same scheme; other bytes, so another session.
    let request =
        SessionRequest::new(&node("a"), &HASH, &[1; 32], aux).with_scheme(SchemeId::EcdsaSecp256k1);
    assert_eq!(request.encode().unwrap(), bytes);
    let mut named: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    named["scheme"] = "ecdsa-secp256k1".into();
    let named = serde_json::to_vec(&named).unwrap();
    let verified_named = verify(&named).unwrap();
    assert_eq!(verified_named.scheme, SchemeId::EcdsaSecp256k1);
    assert_ne!(verified_named.session, verified.session);
    let decoded: SessionRequest = serde_json::from_slice(&named).unwrap();
    assert_eq!(decoded.scheme, SchemeId::EcdsaSecp256k1);
    // Reserved, unknown, misspelt, over-long or not a name: refused.
    for refused in [
        serde_json::json!("ed25519"),
        serde_json::json!("schnorr-secp256k1-tr"),
        serde_json::json!("ECDSA-secp256k1"),
        serde_json::json!("x".repeat(10_000)),
        serde_json::json!(""),
        serde_json::json!(null),
        serde_json::json!(0),
    ] {
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        value["scheme"] = refused.clone();
        let error = verify(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(matches!(error, RequestError::Malformed(_)), "{refused}");
        // A hostile name is cut in the error.
        assert!(error.to_string().len() < 200, "{error}");
    }
}

#[test]
fn outcomes_round_trip_and_peer_text_is_made_printable() {
    let outcome = Outcome::Failed {
        kind: FailureKind::Aborted,
        reason: "bad\nproof".into(),
        blamed: vec!["b".into()],
    };
    let decoded = Outcome::decode(&outcome.encode()).unwrap();
    assert_eq!(
        decoded,
        Outcome::Failed {
            kind: FailureKind::Aborted,
            reason: "bad\u{fffd}proof".into(),
            blamed: vec!["b".into()],
        }
    );
    assert!(Outcome::decode(&vec![b' '; MAX_OUTCOME_LEN + 1]).is_err());
    assert!(Outcome::decode(b"{\"aux-info\":1}").is_err());
}
