use super::*;
use crate::cluster_file::{NodeEntry, OperatorEntry};
use crate::pin::{PinEntry, PinnedOperator};
use k256::elliptic_curve::sec1::ToEncodedPoint;

pub(crate) fn file() -> ClusterFile {
    ClusterFile {
        max_evidence_age_secs: 300,
        allow_debug: false,
        sim_root: None,
        sim_gcp_root: None,
        operator: OperatorEntry {
            id: "operator-0".into(),
            key_file: "/keys/operator-0.key".into(),
        },
        manifest: PinEntry {
            hash: "5a".repeat(32),
            version: 1,
            threshold: 1,
            operators: vec![PinnedOperator {
                id: "operator-0".into(),
                public_key: "01".repeat(32),
            }],
            roots: Default::default(),
        },
        nodes: ["node-1", "node-2", "node-3"]
            .iter()
            .map(|id| NodeEntry {
                id: (*id).to_owned(),
                client: "127.0.0.1:1".into(),
                measurements: [("0".to_owned(), "ab".repeat(48))].into_iter().collect(),
            })
            .collect(),
        sim: None,
    }
}

fn key(seed: u8) -> k256::PublicKey {
    k256::SecretKey::from_slice(&[seed; 32])
        .unwrap()
        .public_key()
}

fn created() -> CreatedKey {
    let k = key(3);
    CreatedKey {
        key_id: "treasury".into(),
        scheme: SchemeId::EcdsaSecp256k1,
        public_key: hex::encode(k.to_encoded_point(true)),
        eth_address: chains::eth_address(&k),
        btc_address: chains::btc_p2wpkh_address(&k),
        parties: vec!["node-1".into(), "node-2".into()],
        threshold: 2,
    }
}

fn asked(parties: &[&str]) -> KeyAsked {
    KeyAsked {
        key_id: "treasury".into(),
        threshold: 2,
        parties: parties.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn held(c: &CreatedKey) -> KeyStatus {
    KeyStatus {
        key_id: c.key_id.clone(),
        scheme: c.scheme,
        public_key: c.public_key.clone(),
        // Another order than the coordinator's: the same set.
        parties: c.parties.iter().rev().cloned().collect(),
        threshold: c.threshold,
    }
}

fn refused_by(result: Result<(), OpError>) -> String {
    match result {
        Err(OpError::KeyNotConfirmed { node, .. }) => node,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A coordinator that lies about the key it made is caught before an address is
/// given out, and named.
#[test]
fn a_coordinators_report_must_match_the_request_and_the_key() {
    let f = file();
    check_created(
        &f,
        "node-1",
        Some(&asked(&["node-2", "node-1"])),
        &created(),
    )
    .unwrap();
    check_created(&f, "node-1", Some(&asked(&[])), &created()).unwrap();
    // Approving another operator's request, this client does not know what was asked.
    check_created(&f, "node-1", None, &created()).unwrap();

    let lie = |edit: &dyn Fn(&mut CreatedKey), asked: &KeyAsked| {
        let mut c = created();
        edit(&mut c);
        refused_by(check_created(&f, "node-1", Some(asked), &c))
    };
    let any = asked(&[]);
    assert_eq!(lie(&|c| c.threshold = 1, &any), "node-1");
    assert_eq!(lie(&|c| c.key_id = "other".into(), &any), "node-1");
    assert_eq!(
        lie(
            &|c| c.parties.push("node-3".into()),
            &asked(&["node-1", "node-2"])
        ),
        "node-1"
    );
    // Parties this client cannot ask, or that leave the coordinator out.
    assert_eq!(lie(&|c| c.parties.push("node-9".into()), &any), "node-1");
    assert_eq!(
        lie(
            &|c| c.parties = vec!["node-2".into(), "node-3".into()],
            &any
        ),
        "node-1"
    );
    // Addresses of another key than the one reported.
    let other = key(4);
    assert_eq!(
        lie(&|c| c.eth_address = chains::eth_address(&other), &any),
        "node-1"
    );
    assert_eq!(
        lie(
            &|c| c.btc_address = chains::btc_p2wpkh_address(&other),
            &any
        ),
        "node-1"
    );
    assert_eq!(lie(&|c| c.public_key = "02".repeat(33), &any), "node-1");
}

#[test]
fn every_party_must_hold_the_key_as_reported() {
    let c = created();
    confirm_key(&c, "node-2", Some(&held(&c))).unwrap();

    let differs = |edit: &dyn Fn(&mut KeyStatus)| {
        let mut k = held(&c);
        edit(&mut k);
        refused_by(confirm_key(&c, "node-2", Some(&k)))
    };
    assert_eq!(
        differs(&|k| k.public_key = hex::encode(key(4).to_encoded_point(true))),
        "node-2"
    );
    assert_eq!(differs(&|k| k.threshold = 1), "node-2");
    assert_eq!(differs(&|k| k.parties.push("node-3".into())), "node-2");
    assert_eq!(differs(&|k| k.key_id = "other".into()), "node-2");
    assert_eq!(refused_by(confirm_key(&c, "node-2", None)), "node-2");
}

/// A signature answer names its scheme; an older node's, without one, is ECDSA's; a
/// scheme this client does not know is refused, and names the node.
#[test]
fn answers_name_their_scheme_and_old_ones_read_as_ecdsa() {
    let answer = |scheme: Option<serde_json::Value>| {
        let mut value = serde_json::json!({"r": "01", "s": "02", "v": 0});
        if let Some(scheme) = scheme {
            value["scheme"] = scheme;
        }
        scheme_of("node-1", &value)
    };
    assert_eq!(answer(None).unwrap(), SchemeId::EcdsaSecp256k1);
    assert_eq!(
        answer(Some("ecdsa-secp256k1".into())).unwrap(),
        SchemeId::EcdsaSecp256k1
    );
    for refused in [
        serde_json::json!("ed25519"),
        serde_json::json!("schnorr-secp256k1-tr"),
        serde_json::json!("ecdsa"),
        serde_json::json!(null),
        serde_json::json!(7),
    ] {
        match answer(Some(refused.clone())) {
            Err(OpError::Answer { node, reason }) => {
                assert_eq!(node, "node-1");
                assert!(reason.starts_with("scheme"), "{reason}");
            }
            other => panic!("{refused}: {other:?}"),
        }
    }
    // A party's record from an older node names no scheme, and confirms an ECDSA key.
    let c = created();
    let old = serde_json::json!({
        "key_id": c.key_id,
        "public_key": c.public_key,
        "parties": c.parties,
        "threshold": c.threshold,
    });
    let held: KeyStatus = serde_json::from_value(old).unwrap();
    confirm_key(&c, "node-2", Some(&held)).unwrap();
}

fn audit_header(count: u64) -> String {
    audit::export_header(
        &ids::NodeId::new("node-2").unwrap(),
        &[1; 32],
        audit::Head {
            count,
            hash: [2; 32],
        },
        &ids::ManifestHash::from([3; 32]),
        b"document",
    )
    .unwrap()
}

fn audit_page(header: Option<String>, entries: &[&str], next: Option<u64>) -> AuditPage {
    AuditPage {
        header,
        entries: entries.iter().map(|e| (*e).to_owned()).collect(),
        next,
    }
}

/// Pages are written as one export: the header, then every entry up to its count, each
/// from the page asked where the last one ended; entries appended since the header are
/// left out.
#[test]
fn audit_pages_make_one_export_up_to_the_headers_count() {
    let header = audit_header(3);
    let mut asked = Vec::new();
    let mut out = Vec::new();
    let written = write_pages(
        "node-2",
        |from| {
            asked.push(from);
            Ok(match from {
                0 => audit_page(Some(header.clone()), &["e0", "e1"], Some(2)),
                _ => audit_page(None, &["e2", "e3"], None),
            })
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(written, 3);
    assert_eq!(asked, [0, 2]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{header}\ne0\ne1\ne2\n")
    );
}

/// A node that answers pages out of order, with a second header, or without progress
/// is refused, never looped on.
#[test]
fn audit_pages_that_do_not_continue_are_refused() {
    let cases: [&dyn Fn(u64) -> AuditPage; 4] = [
        // No header on the first page.
        &|_| audit_page(None, &["e0"], None),
        // A header on a later page.
        &|from| audit_page(Some(audit_header(3)), &["e"], (from == 0).then_some(1)),
        // The next page is said to start elsewhere.
        &|from| match from {
            0 => audit_page(Some(audit_header(3)), &["e0"], Some(2)),
            _ => audit_page(None, &["e"], None),
        },
        // A first page without entries that asks for the same page again.
        &|_| audit_page(Some(audit_header(3)), &[], Some(0)),
    ];
    for (i, page) in cases.iter().enumerate() {
        let result = write_pages("node-2", |from| Ok(page(from)), &mut Vec::new());
        assert!(
            matches!(result, Err(OpError::Answer { .. })),
            "case {i}: {result:?}"
        );
    }
    // An unreadable header is refused before anything is written.
    let mut out = Vec::new();
    let result = write_pages(
        "node-2",
        |_| Ok(audit_page(Some("{}".into()), &["e0"], None)),
        &mut out,
    );
    assert!(matches!(result, Err(OpError::Answer { .. })));
    assert!(out.is_empty());
}
