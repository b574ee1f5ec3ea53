use super::*;
use manifest::OperatorKey;

struct Fixture {
    keys: Vec<OperatorKey>,
    manifest: manifest::Manifest,
    hash: [u8; 32],
}

fn fixture(operators: usize) -> Fixture {
    let keys: Vec<OperatorKey> = (0..operators)
        .map(|_| OperatorKey::generate().unwrap())
        .collect();
    let body = serde_json::json!({
        "version": 1, "threshold": 1,
        "operators": keys.iter().enumerate().map(|(i, k)| serde_json::json!({
            "id": format!("operator-{i}"), "public_key": k.public_key_hex()
        })).collect::<Vec<_>>(),
        "nodes": [{"id": "n1", "provider": "sim", "address": "127.0.0.1:1",
            "measurements": [{"8": "00".repeat(48)}]}],
    });
    let body = serde_json::to_vec(&body).unwrap();
    Fixture {
        keys,
        manifest: manifest::Manifest::parse(&body).unwrap(),
        hash: *manifest::hash_of(&body).as_bytes(),
    }
}

const NOW: u64 = 1_800_000_000_000;

fn request(f: &Fixture, requester: usize) -> Vec<u8> {
    Request::new(
        &f.hash,
        &KeyId::new("treasury").unwrap(),
        Action::Sign {
            path: None,
            payload: Payload::Digest("11".repeat(32)),
            signers: Vec::new(),
        },
        &OperatorId::new(format!("operator-{requester}")).unwrap(),
        NOW,
        DEFAULT_TTL_MS,
        &[5u8; 16],
    )
    .encode()
    .unwrap()
}

fn approved(f: &Fixture, bytes: Vec<u8>, by: &[usize]) -> Authority {
    let id = request_id(&bytes);
    let (first, rest) = by.split_first().unwrap();
    let mut authority = Authority::new(
        bytes,
        Approval::sign(&format!("operator-{first}"), &f.keys[*first], &id),
    );
    for i in rest {
        authority
            .add(Approval::sign(&format!("operator-{i}"), &f.keys[*i], &id))
            .unwrap();
    }
    authority
}

#[test]
fn approvals_verify_and_count_each_operator_once() {
    let f = fixture(3);
    let authority = approved(&f, request(&f, 0), &[0, 2]);
    let bytes = authority.encode().unwrap();
    let decoded = Authority::decode(&bytes).unwrap();
    assert_eq!(decoded, authority);
    let authorized = decoded.verify(&f.manifest, &f.hash, NOW + 1000).unwrap();
    assert_eq!(
        authorized.approvers().iter().collect::<Vec<_>>(),
        ["operator-0", "operator-2"]
    );
    assert_eq!(authorized.id(), &request_id(decoded.request_bytes()));
    assert_eq!(authorized.request().key_id, "treasury");
    // The same operator approving again replaces its approval, never counts twice.
    let mut again = authority.clone();
    let id = again.id();
    again
        .add(Approval::sign("operator-2", &f.keys[2], &id))
        .unwrap();
    assert_eq!(again.approvals().len(), 2);
    // A duplicate smuggled onto the wire is refused.
    let mut wire: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let dup = wire["approvals"][1].clone();
    wire["approvals"].as_array_mut().unwrap().push(dup);
    let dup = Authority::decode(&serde_json::to_vec(&wire).unwrap()).unwrap();
    assert_eq!(
        dup.verify(&f.manifest, &f.hash, NOW).unwrap_err(),
        AuthorityError::Duplicate("operator-2".into())
    );
}

#[test]
fn forged_foreign_and_missing_approvals_are_refused() {
    let f = fixture(3);
    let bytes = request(&f, 0);
    let id = request_id(&bytes);
    // An approval signed by the wrong key under a listed name.
    let mut forged = approved(&f, bytes.clone(), &[0]);
    forged
        .add(Approval::sign("operator-1", &f.keys[2], &id))
        .unwrap();
    assert_eq!(
        forged.verify(&f.manifest, &f.hash, NOW).unwrap_err(),
        AuthorityError::BadApproval("operator-1".into())
    );
    // An operator the manifest does not list.
    let stranger = OperatorKey::generate().unwrap();
    let mut foreign = approved(&f, bytes.clone(), &[0]);
    foreign
        .add(Approval::sign("operator-9", &stranger, &id))
        .unwrap();
    assert_eq!(
        foreign.verify(&f.manifest, &f.hash, NOW).unwrap_err(),
        AuthorityError::NotOperator("operator-9".into())
    );
    // Approvals without the requester's.
    let without = approved(&f, bytes.clone(), &[1, 2]);
    assert_eq!(
        without.verify(&f.manifest, &f.hash, NOW).unwrap_err(),
        AuthorityError::NoRequesterApproval("operator-0".into())
    );
    // An approval of another request does not carry over: one changed byte.
    let mut altered = bytes.clone();
    let at = altered.windows(8).position(|w| w == b"11111111").unwrap();
    altered[at] = b'2';
    let mut moved = approved(&f, bytes, &[0]);
    moved.request = altered;
    assert_eq!(
        moved.verify(&f.manifest, &f.hash, NOW).unwrap_err(),
        AuthorityError::BadApproval("operator-0".into())
    );
}

#[test]
fn requests_live_only_in_their_window_and_their_cluster() {
    let f = fixture(1);
    let authority = approved(&f, request(&f, 0), &[0]);
    let expires = NOW + DEFAULT_TTL_MS;
    assert!(authority.verify(&f.manifest, &f.hash, expires).is_ok());
    assert_eq!(
        authority
            .verify(&f.manifest, &f.hash, expires + 1)
            .unwrap_err(),
        AuthorityError::Expired {
            expires_ms: expires,
            now_ms: expires + 1
        }
    );
    let early = NOW - MAX_CLOCK_SKEW_MS;
    assert!(authority.verify(&f.manifest, &f.hash, early).is_ok());
    assert!(matches!(
        authority.verify(&f.manifest, &f.hash, early - 1),
        Err(AuthorityError::FromTheFuture { .. })
    ));
    let other = fixture(1);
    assert_eq!(
        authority.verify(&f.manifest, &other.hash, NOW).unwrap_err(),
        AuthorityError::OtherManifest
    );
    // A lifetime over the maximum, or none, is refused before anything else.
    for ttl in [MAX_TTL_MS + 1, 0] {
        let mut long: serde_json::Value = serde_json::from_slice(&request(&f, 0)).unwrap();
        long["expires_ms"] = (NOW + ttl).into();
        assert!(matches!(
            Request::parse(&serde_json::to_vec(&long).unwrap()),
            Err(AuthorityError::Lifetime { .. })
        ));
    }
    let mut exact: serde_json::Value = serde_json::from_slice(&request(&f, 0)).unwrap();
    exact["expires_ms"] = (NOW + MAX_TTL_MS).into();
    assert!(Request::parse(&serde_json::to_vec(&exact).unwrap()).is_ok());
}

#[test]
fn limits_and_shapes_are_checked_before_use() {
    let f = fixture(1);
    let mut unknown: serde_json::Value = serde_json::from_slice(&request(&f, 0)).unwrap();
    unknown["amount"] = "1".into();
    assert!(matches!(
        Request::parse(&serde_json::to_vec(&unknown).unwrap()),
        Err(AuthorityError::Malformed { .. })
    ));
    let mut version: serde_json::Value = serde_json::from_slice(&request(&f, 0)).unwrap();
    version["version"] = 2.into();
    assert_eq!(
        Request::parse(&serde_json::to_vec(&version).unwrap()).unwrap_err(),
        AuthorityError::Version(2)
    );
    // The request limit at exactly MAX and MAX + 1 bytes.
    let sized = |len: usize| {
        let base = request(&f, 0);
        let mut value: serde_json::Value = serde_json::from_slice(&base).unwrap();
        let fill = len - base.len() + "11".repeat(32).len();
        value["action"]["sign"]["payload"]["digest"] = "1".repeat(fill).into();
        serde_json::to_vec(&value).unwrap()
    };
    assert_eq!(sized(MAX_REQUEST_LEN).len(), MAX_REQUEST_LEN);
    assert!(!matches!(
        Request::parse(&sized(MAX_REQUEST_LEN)),
        Err(AuthorityError::TooLarge { .. })
    ));
    assert!(matches!(
        Request::parse(&sized(MAX_REQUEST_LEN + 1)),
        Err(AuthorityError::TooLarge { .. })
    ));
    // The largest request with every approval a manifest allows still encodes.
    let largest = Authority {
        request: sized(MAX_REQUEST_LEN),
        approvals: (0..MAX_APPROVALS)
            .map(|i| Approval {
                operator: format!("{i:0>64}"),
                signature: "ab".repeat(64),
            })
            .collect(),
    };
    let encoded = largest.encode().unwrap();
    assert_eq!(Authority::decode(&encoded).unwrap(), largest);
    let mut over = largest.clone();
    over.approvals.push(over.approvals[0].clone());
    assert!(matches!(
        Authority::decode(
            &serde_json::to_vec(&Wire {
                request: STANDARD.encode(&over.request),
                approvals: over.approvals,
            })
            .unwrap()
        ),
        Err(AuthorityError::TooManyApprovals { .. } | AuthorityError::TooLarge { .. })
    ));
    assert!(matches!(
        Authority::decode(&vec![b' '; MAX_AUTHORITY_LEN + 1]),
        Err(AuthorityError::TooLarge { .. })
    ));
}
