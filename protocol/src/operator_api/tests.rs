use super::*;

#[test]
fn round_trips_and_refusals() {
    for r in [
        OperatorRequest::SubmitManifest(b"{}".to_vec()),
        OperatorRequest::Status,
        OperatorRequest::Command(SignedCommand {
            operator: "operator-0".into(),
            signature: [9; 64],
            command: br#"{"op":"sign"}"#.to_vec(),
        }),
        OperatorRequest::Attest {
            nonce: vec![1; 512],
        },
        OperatorRequest::Attest { nonce: Vec::new() },
        OperatorRequest::Key {
            key_id: "k".repeat(64),
        },
        OperatorRequest::AuditExport { from: 0 },
        OperatorRequest::AuditExport { from: u64::MAX },
    ] {
        assert_eq!(OperatorRequest::decode(&r.encode()).unwrap(), r);
    }
    assert_eq!(OperatorRequest::decode(&[1, 1]), Err(ApiError::Unknown));
    assert_eq!(OperatorRequest::decode(&[1, 2, 0]), Err(ApiError::Unknown));
    assert_eq!(OperatorRequest::decode(&[2, 2]), Err(ApiError::Unknown));
    assert_eq!(
        OperatorRequest::decode(&vec![1; MAX_REQUEST_LEN + 1]),
        Err(ApiError::TooLarge)
    );
    for a in [Ok("{}".to_owned()), Err("no".to_owned())] {
        assert_eq!(decode_answer(&encode_answer(&a)).unwrap(), a);
    }
    assert!(decode_answer(&[1, 7]).is_err());
    // Unsigned key commands are not a request at all.
    assert_eq!(
        OperatorRequest::decode(b"\x01\x03{\"op\":\"sign\"}"),
        Err(ApiError::Unknown)
    );
    assert_eq!(
        OperatorRequest::decode(&[&[1u8, 5][..], &[0; MAX_ATTEST_NONCE_LEN + 1]].concat()),
        Err(ApiError::Unknown)
    );
    // A key id by the key id rule: 1 to 64 characters of a small alphabet.
    for bad in [
        &[1u8, 6][..],
        &[&[1u8, 6][..], &[b'k'; 65]].concat(),
        b"\x01\x06a b",
        &[1, 6, 0xff],
    ] {
        assert!(
            matches!(OperatorRequest::decode(bad), Err(ApiError::Malformed(_))),
            "{bad:?}"
        );
    }
    for bad in [
        &[1u8, 4][..],
        &[1, 4, 0],
        &[1, 4, 1, b'a'],
        &[&[1u8, 4, 1, b'a'][..], &[0; 64]].concat(),
    ] {
        assert!(
            matches!(OperatorRequest::decode(bad), Err(ApiError::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn commands_are_accepted_only_from_manifest_operators_on_their_connection() {
    let key = manifest::OperatorKey::generate().unwrap();
    let stranger = manifest::OperatorKey::generate().unwrap();
    let body = serde_json::json!({
        "version": 1, "threshold": 1,
        "operators": [{"id": "operator-0", "public_key": key.public_key_hex()}],
        "nodes": [{"id": "n1", "provider": "sim", "address": "127.0.0.1:1",
            "measurements": [{"8": "00".repeat(48)}]}],
    });
    let manifest = manifest::Manifest::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
    let command = KeyCommand::ShowRequest {
        request_id: "00".repeat(32),
    };
    let exporter = [5u8; 32];
    let signed = SignedCommand::sign("operator-0", &key, &exporter, &command);
    let decoded = match OperatorRequest::decode(&OperatorRequest::Command(signed.clone()).encode())
    {
        Ok(OperatorRequest::Command(c)) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(decoded.verify(&manifest, &exporter).unwrap(), command);
    // Another connection, another operator id, a key not in the manifest.
    assert!(
        decoded
            .verify(&manifest, &[6u8; 32])
            .unwrap_err()
            .to_string()
            .contains("does not verify")
    );
    let unknown = SignedCommand::sign("operator-9", &key, &exporter, &command);
    assert!(
        unknown
            .verify(&manifest, &exporter)
            .unwrap_err()
            .to_string()
            .contains("not an operator")
    );
    let forged = SignedCommand::sign("operator-0", &stranger, &exporter, &command);
    assert!(
        forged
            .verify(&manifest, &exporter)
            .unwrap_err()
            .to_string()
            .contains("does not verify")
    );
}

#[test]
fn derivation_paths() {
    assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
    assert_eq!(parse_path("m/0/1").unwrap(), vec![0, 1]);
    assert_eq!(parse_path("m/2147483647").unwrap(), vec![0x7fff_ffff]);
    for bad in [
        "",
        "0/1",
        "m/",
        "m/1'",
        "m/1h",
        "m/x",
        "m/2147483648",
        "m//1",
        "M/1",
        "m/+1",
        "m/007",
    ] {
        assert!(parse_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn health_lines_stay_under_the_parents_limit() {
    let status = NodeStatus {
        node_id: "n".repeat(64),
        phase: "waiting_for_provisioning".into(),
        reason: Some("\u{1}".repeat(10_000)),
        manifest_version: None,
        manifest_hash: None,
        state_created_ms: None,
        peers: BTreeMap::new(),
        escrow_pending: Vec::new(),
        keys: Vec::new(),
        key_count: 0,
        presignatures: 0,
        policy_version: None,
        policy_pending: None,
    };
    let line = serde_json::to_vec(&HealthLine::of(&status)).unwrap();
    assert!(line.len() < 1024, "{}", line.len());
}

/// JSON that does not fit an answer is refused whole, never cut.
#[test]
fn answers_are_whole_or_refused() {
    let json = |len: usize| format!("\"{}\"", "x".repeat(len - 2));
    let fits = json(MAX_RESPONSE_LEN - 2);
    let encoded = encode_answer(&Ok(fits.clone()));
    assert_eq!(encoded.len(), MAX_RESPONSE_LEN);
    assert_eq!(decode_answer(&encoded).unwrap(), Ok(fits));
    let encoded = encode_answer(&Ok(json(MAX_RESPONSE_LEN - 1)));
    assert!(encoded.len() <= MAX_RESPONSE_LEN);
    let reason = decode_answer(&encoded).unwrap().unwrap_err();
    assert!(reason.contains("larger than"), "{reason}");
    // A reason is text: cut to fit, at a character boundary.
    let encoded = encode_answer(&Err("é".repeat(MAX_RESPONSE_LEN)));
    assert!(encoded.len() <= MAX_RESPONSE_LEN);
    assert!(
        decode_answer(&encoded)
            .unwrap()
            .unwrap_err()
            .starts_with("éé")
    );
}

/// A failed operation travels typed: per participant, the node, the kind of failure
/// and whom the protocol blamed; a client reading answers as text gets its text.
#[test]
fn failed_operations_travel_typed() {
    let failed = OperationFailure {
        step: "signing".into(),
        failures: vec![
            ParticipantFailure {
                node: "node-2".into(),
                kind: FailureKind::Aborted,
                reason: "bad proof".into(),
                blamed: vec!["node-3".into()],
            },
            ParticipantFailure {
                node: "node-3".into(),
                kind: FailureKind::TimedOut,
                reason: "no answer from this participant".into(),
                blamed: Vec::new(),
            },
        ],
    };
    let text = "signing failed: [node-2: Aborted: bad proof; blamed: node-3] \
                [node-3: TimedOut: no answer from this participant]";
    assert_eq!(failed.to_string(), text);
    let encoded = encode(&Answer::Failed(failed.clone()));
    assert_eq!(encoded.get(..2), Some(&[1u8, 2][..]));
    assert_eq!(decode(&encoded).unwrap(), Answer::Failed(failed.clone()));
    assert_eq!(decode_answer(&encoded).unwrap(), Err(text.to_owned()));
    let json: serde_json::Value = serde_json::from_slice(encoded.get(2..).unwrap()).unwrap();
    assert_eq!(json["failures"][0]["kind"], "aborted");
    assert_eq!(json["failures"][0]["blamed"][0], "node-3");
    // The earlier kinds are unchanged.
    assert_eq!(encode(&Answer::Json("{}".into())), b"\x01\x00{}");
    assert_eq!(encode(&Answer::Refused("no".into())), b"\x01\x01no");
    // A failure too large for an answer is sent as its text, cut.
    let huge = OperationFailure {
        step: "signing".into(),
        failures: vec![
            ParticipantFailure {
                node: "n".into(),
                kind: FailureKind::Refused,
                reason: "x".repeat(MAX_RESPONSE_LEN),
                blamed: Vec::new(),
            };
            2
        ],
    };
    let encoded = encode(&Answer::Failed(huge));
    assert!(encoded.len() <= MAX_RESPONSE_LEN);
    assert!(
        matches!(decode(&encoded).unwrap(), Answer::Refused(r) if r.starts_with("signing failed:"))
    );
    // Garbage under kind 2 is refused, not taken as text.
    assert_eq!(decode(&[1, 2, b'{']), Err(ApiError::MalformedAnswer));
}

fn key(i: usize, parties: usize) -> KeyStatus {
    KeyStatus {
        key_id: format!("{i:0>64}"),
        scheme: SchemeId::EcdsaSecp256k1,
        public_key: "02".repeat(33),
        parties: (0..parties).map(|p| format!("{p:n>64}")).collect(),
        threshold: u16::MAX,
    }
}

/// A status as large as anything outside may make it: every text at its longest and
/// full of characters JSON escapes, a peer for every node a manifest may list.
fn largest(keys: Vec<KeyStatus>) -> NodeStatus {
    let hostile = "\"\\\u{1}".repeat(10_000);
    NodeStatus {
        node_id: hostile.clone(),
        phase: hostile.clone(),
        reason: Some(hostile.clone()),
        manifest_version: Some(u64::MAX),
        manifest_hash: Some(hostile.clone()),
        state_created_ms: Some(u64::MAX),
        peers: (0..MAX_STATUS_PEERS + 10)
            .map(|i| {
                (
                    format!("{i:0>64}{hostile}"),
                    PeerStatus {
                        attested: false,
                        pcr0: Some(hostile.clone()),
                        error: Some(hostile.clone()),
                        checked_ms: u64::MAX,
                    },
                )
            })
            .collect(),
        escrow_pending: (0..MAX_STATUS_PEERS + 10)
            .map(|i| format!("{i}{hostile}"))
            .collect(),
        key_count: keys.len(),
        keys,
        presignatures: usize::MAX,
        policy_version: Some(u64::MAX),
        policy_pending: Some((u64::MAX, u64::MAX)),
    }
}

fn answer(status: NodeStatus) -> NodeStatus {
    let json = status.into_answer().unwrap();
    let encoded = encode_answer(&Ok(json));
    assert!(encoded.len() <= MAX_RESPONSE_LEN, "{}", encoded.len());
    serde_json::from_str(&decode_answer(&encoded).unwrap().unwrap()).unwrap()
}

/// The status answer fits by construction: up to MAX_STATUS_KEYS keys, the first
/// by id, and how many there are.
#[test]
fn status_answers_fit_and_list_the_first_keys_by_id() {
    let small = |n: usize| {
        let mut status = largest(Vec::new());
        status.peers.clear();
        status.escrow_pending.clear();
        // Out of order: the answer lists them by id.
        status.keys = (0..n).rev().map(|i| key(i, 3)).collect();
        status.key_count = n;
        status
    };
    let all = answer(small(MAX_STATUS_KEYS));
    assert_eq!(all.keys.len(), MAX_STATUS_KEYS);
    assert_eq!(all.key_count, MAX_STATUS_KEYS);
    assert_eq!(all.keys.first().unwrap(), &key(0, 3));
    let more = answer(small(MAX_STATUS_KEYS + 1));
    assert_eq!(more.keys.len(), MAX_STATUS_KEYS);
    assert_eq!(more.key_count, MAX_STATUS_KEYS + 1);
    assert_eq!(more.keys, all.keys);

    // The largest records and every other field at its worst: it still fits, lists
    // keys in order as far as they fit, and counts them all.
    let keys: Vec<_> = (0..4096).map(|i| key(i, ids::party::MAX_PARTIES)).collect();
    let worst = answer(largest(keys.clone()));
    assert_eq!(worst.key_count, 4096);
    // What the README promises whatever the status holds.
    assert!(worst.keys.len() >= 7, "{}", worst.keys.len());
    assert_eq!(worst.keys.as_slice(), keys.get(..worst.keys.len()).unwrap());
    assert_eq!(worst.peers.len(), MAX_STATUS_PEERS);
    assert_eq!(worst.escrow_pending.len(), MAX_STATUS_PEERS);
    assert!(worst.reason.unwrap().len() <= MAX_STATUS_REASON);
}

/// Each key answer names the key's scheme, and an answer from a node that predates the
/// field reads as ECDSA; a scheme this build does not implement is refused, not guessed.
#[test]
fn key_answers_name_their_scheme_and_old_ones_read_as_ecdsa() {
    fn check<T>(value: T, old: &str)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_value(&value).unwrap();
        assert_eq!(json["scheme"], "ecdsa-secp256k1");
        assert_eq!(serde_json::from_value::<T>(json.clone()).unwrap(), value);
        // What a node wrote before answers named a scheme.
        let mut without = json.clone();
        without.as_object_mut().unwrap().remove("scheme");
        assert_eq!(
            without,
            serde_json::from_str::<serde_json::Value>(old).unwrap()
        );
        assert_eq!(serde_json::from_str::<T>(old).unwrap(), value);
        for refused in [
            serde_json::json!("ed25519"),
            serde_json::json!("schnorr-secp256k1-tr"),
            serde_json::json!("ECDSA-secp256k1"),
            serde_json::json!(null),
            serde_json::json!(1),
        ] {
            let mut other = json.clone();
            other["scheme"] = refused.clone();
            assert!(serde_json::from_value::<T>(other).is_err(), "{refused}");
        }
    }
    check(
        KeyStatus {
            key_id: "k".into(),
            scheme: SchemeId::EcdsaSecp256k1,
            public_key: "02".repeat(33),
            parties: vec!["a".into(), "b".into()],
            threshold: 2,
        },
        &format!(
            r#"{{"key_id":"k","public_key":"{}","parties":["a","b"],"threshold":2}}"#,
            "02".repeat(33)
        ),
    );
    check(
        CreatedKey {
            key_id: "k".into(),
            scheme: SchemeId::EcdsaSecp256k1,
            public_key: "02".repeat(33),
            eth_address: "0xab".into(),
            btc_address: "bc1q".into(),
            parties: vec!["a".into(), "b".into()],
            threshold: 2,
        },
        &format!(
            r#"{{"key_id":"k","public_key":"{}","eth_address":"0xab","btc_address":"bc1q","parties":["a","b"],"threshold":2}}"#,
            "02".repeat(33)
        ),
    );
    check(
        SignedDigest {
            scheme: SchemeId::EcdsaSecp256k1,
            r: "01".repeat(32),
            s: "02".repeat(32),
            v: 1,
            public_key: "02".repeat(33),
            digest: "03".repeat(32),
            signers: vec!["a".into(), "b".into()],
            presigned: true,
        },
        &format!(
            r#"{{"r":"{}","s":"{}","v":1,"public_key":"{}","digest":"{}","signers":["a","b"],"presigned":true}}"#,
            "01".repeat(32),
            "02".repeat(32),
            "02".repeat(33),
            "03".repeat(32)
        ),
    );
    // A key record still refuses fields it does not know.
    let mut extra = serde_json::to_value(key(0, 1)).unwrap();
    extra["epoch"] = 0.into();
    assert!(serde_json::from_value::<KeyStatus>(extra).is_err());
}

/// Every key a status answer lists names its scheme.
#[test]
fn status_answers_name_each_keys_scheme() {
    let mut status = largest(Vec::new());
    status.peers.clear();
    status.escrow_pending.clear();
    status.keys = (0..3).map(|i| key(i, 3)).collect();
    let json = status.into_answer().unwrap();
    assert_eq!(json.matches(r#""scheme":"ecdsa-secp256k1""#).count(), 3);
    let back: NodeStatus = serde_json::from_str(&json).unwrap();
    assert!(
        back.keys
            .iter()
            .all(|k| k.scheme == SchemeId::EcdsaSecp256k1)
    );
}

/// One key's record, the largest there is, fits an answer with room to spare.
#[test]
fn the_largest_key_record_fits() {
    let json = serde_json::to_string(&key(0, ids::party::MAX_PARTIES)).unwrap();
    let encoded = encode_answer(&Ok(json.clone()));
    assert_eq!(decode_answer(&encoded).unwrap(), Ok(json));
    assert!(encoded.len() < MAX_RESPONSE_LEN / 8);
}

/// An audit export names its first entry in exactly eight bytes: seven or nine are
/// refused, never read as another entry.
#[test]
fn audit_export_requests_carry_exactly_eight_bytes() {
    assert_eq!(
        OperatorRequest::AuditExport { from: 258 }.encode(),
        [1, 8, 0, 0, 0, 0, 0, 0, 1, 2]
    );
    for bad in [
        &[1u8, 8][..],
        &[1, 8, 0, 0, 0, 0, 0, 0, 1],
        &[1, 8, 0, 0, 0, 0, 0, 0, 0, 1, 2],
    ] {
        assert!(
            matches!(OperatorRequest::decode(bad), Err(ApiError::Malformed(_))),
            "{bad:?}"
        );
    }
    let page = AuditPage {
        header: None,
        entries: vec!["{\"seq\":1}".into()],
        next: Some(2),
    };
    let json = serde_json::to_string(&page).unwrap();
    assert_eq!(
        json,
        r#"{"header":null,"entries":["{\"seq\":1}"],"next":2}"#
    );
    assert_eq!(serde_json::from_str::<AuditPage>(&json).unwrap(), page);
    assert!(
        serde_json::from_str::<AuditPage>(r#"{"header":null,"entries":[],"next":null,"x":1}"#)
            .is_err()
    );
}
