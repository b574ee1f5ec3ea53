#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::Measurements;
use aws_lc_rs::signature::Ed25519KeyPair;
use manifest::{
    AcceptedManifest, KeyError, MAX_BODY_LEN, MAX_ENVELOPE_LEN, Manifest, ManifestError,
    OperatorKey, OperatorSignature, Provider, Signature, SignedManifest, accept, addresses,
    hash_of, sign,
};
use serde_json::{Value, json};

const PCR0: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";
const PCR1: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const PCR2: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// Per-node PCR4 values (the parent instance).
const INSTANCE1: &str = "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111";
const INSTANCE2: &str = "222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";

/// Named operator keys.
struct Ops(Vec<(&'static str, OperatorKey)>);

impl Ops {
    fn new(names: &[&'static str]) -> Self {
        Ops(names
            .iter()
            .map(|n| (*n, OperatorKey::generate().unwrap()))
            .collect())
    }

    fn key(&self, name: &str) -> &OperatorKey {
        &self.0.iter().find(|(n, _)| *n == name).unwrap().1
    }

    fn json(&self) -> Value {
        self.0
            .iter()
            .map(|(id, key)| json!({"id": id, "public_key": key.public_key_hex()}))
            .collect()
    }
}

fn body_value(version: u64, threshold: u64, ops: &Ops) -> Value {
    json!({
        "version": version,
        "threshold": threshold,
        "operators": ops.json(),
        "nodes": [
            {"id": "node-1", "provider": "sim", "address": "127.0.0.1:7101",
             "measurements": [{"0": PCR0, "1": PCR1, "2": PCR2, "4": INSTANCE1}]},
            {"id": "node-2", "provider": "aws-nitro", "address": "[::1]:7102",
             "measurements": [{"0": PCR0, "1": PCR1, "2": PCR2, "4": INSTANCE2},
                              {"0": PCR2, "8": PCR1, "4": INSTANCE2}]},
        ],
    })
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn body(version: u64, threshold: u64, ops: &Ops) -> Vec<u8> {
    bytes(&body_value(version, threshold, ops))
}

fn signed_by(body: &[u8], ops: &Ops, signers: &[&str]) -> SignedManifest {
    let sigs: Vec<_> = signers
        .iter()
        .map(|name| OperatorSignature {
            operator: (*name).to_owned(),
            signature: sign(body, ops.key(name)),
        })
        .collect();
    SignedManifest::assemble(body, &sigs).unwrap()
}

/// A manifest accepted at first boot: version 3, 2-of-3 alice, bob, carol.
fn bootstrap(ops: &Ops) -> AcceptedManifest {
    accept(None, signed_by(&body(3, 2, ops), ops, &["alice", "bob"])).unwrap()
}

fn parse_body(value: &Value) -> Result<Manifest, ManifestError> {
    Manifest::parse(&bytes(value))
}

/// A node's measurement sets, all Nitro's.
fn nitro_sets(node: &manifest::Node) -> Vec<attestation::nitro::MeasurementSet> {
    node.measurement_sets()
        .unwrap()
        .into_iter()
        .map(|set| match set {
            Measurements::Nitro(set) => set,
            other => panic!("not a Nitro set: {other:?}"),
        })
        .collect()
}

fn abc() -> Ops {
    Ops::new(&["alice", "bob", "carol"])
}

#[test]
fn round_trip() {
    let ops = abc();
    let body = body(3, 2, &ops);
    let signed = signed_by(&body, &ops, &["alice", "bob"]);
    let again = SignedManifest::parse(signed.envelope_bytes()).unwrap();
    assert_eq!(again.body(), body.as_slice());
    assert_eq!(again.manifest(), signed.manifest());
    assert_eq!(again.signatures(), signed.signatures());
    assert_eq!(again.hash(), hash_of(&body));

    let m = again.manifest();
    assert_eq!((m.version(), m.threshold(), m.operators().len()), (3, 2, 3));
    assert_eq!(
        m.operator("bob").unwrap().public_key(),
        &ops.key("bob").public_key()
    );
    assert!(m.operator("mallory").is_none());
    let node = m.node("node-2").unwrap();
    assert_eq!(node.provider(), Provider::Tee(attestation::Provider::Nitro));
    assert_eq!(node.address(), "[::1]:7102");
    let sets = nitro_sets(node);
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets[1].pcrs().keys().copied().collect::<Vec<_>>(),
        [0, 4, 8]
    );
    assert_eq!(sets[1].pcrs()[&8], vec![0xaa; 48]);
    assert_eq!(m.node("node-1").unwrap().provider(), Provider::Sim);
}

#[test]
fn accepts_exactly_k_signatures() {
    let ops = abc();
    let accepted = bootstrap(&ops);
    assert_eq!(accepted.version(), 3);
    assert_eq!(accepted.approval().signers(), ["alice", "bob"]);
    assert_eq!(accepted.node("node-1").unwrap().address(), "127.0.0.1:7101");
    assert_eq!(accepted.hash(), hash_of(accepted.signed().body()));

    let next = signed_by(&body(4, 2, &ops), &ops, &["carol", "alice"]);
    let next = accept(Some(&accepted), next).unwrap();
    assert_eq!(next.version(), 4);
}

#[test]
fn refuses_k_minus_one_signatures() {
    let ops = abc();
    let err = accept(None, signed_by(&body(3, 2, &ops), &ops, &["alice"])).unwrap_err();
    assert!(matches!(
        err,
        ManifestError::NotEnoughSignatures {
            found: 1,
            needed: 2
        }
    ));
    let err = accept(None, signed_by(&body(3, 2, &ops), &ops, &[])).unwrap_err();
    assert!(matches!(
        err,
        ManifestError::NotEnoughSignatures {
            found: 0,
            needed: 2
        }
    ));
}

#[test]
fn duplicate_signatures_count_once() {
    let ops = abc();
    let signed = signed_by(&body(3, 2, &ops), &ops, &["alice", "alice", "alice"]);
    let err = accept(None, signed).unwrap_err();
    assert!(matches!(
        err,
        ManifestError::NotEnoughSignatures {
            found: 1,
            needed: 2
        }
    ));
}

#[test]
fn tampered_body_refused_naming_the_operator() {
    let ops = abc();
    let original = body(3, 2, &ops);
    let sigs: Vec<_> = ["alice", "bob"]
        .iter()
        .map(|n| OperatorSignature {
            operator: (*n).to_owned(),
            signature: sign(&original, ops.key(n)),
        })
        .collect();
    let mut tampered = original.clone();
    let at = tampered.windows(4).position(|w| w == b"7101").unwrap();
    tampered[at + 3] = b'9';
    let signed = SignedManifest::assemble(&tampered, &sigs).unwrap();
    let err = accept(None, signed).unwrap_err();
    assert!(matches!(&err, ManifestError::BadSignature { operator } if operator == "alice"));
    assert!(err.to_string().contains("\"alice\""));
}

#[test]
fn tampered_signature_refused_naming_the_operator() {
    let ops = abc();
    let body = body(3, 2, &ops);
    let mut bad = *sign(&body, ops.key("bob")).as_bytes();
    bad[10] ^= 1;
    let sigs = [
        OperatorSignature {
            operator: "alice".into(),
            signature: sign(&body, ops.key("alice")),
        },
        OperatorSignature {
            operator: "carol".into(),
            signature: sign(&body, ops.key("carol")),
        },
        OperatorSignature {
            operator: "bob".into(),
            signature: Signature::from(bad),
        },
    ];
    let err = accept(None, SignedManifest::assemble(&body, &sigs).unwrap()).unwrap_err();
    assert!(matches!(&err, ManifestError::BadSignature { operator } if operator == "bob"));
}

#[test]
fn signature_without_domain_separation_refused() {
    let ops = abc();
    let body = body(3, 1, &ops);
    let pkcs8 = ops.key("alice").to_pkcs8().unwrap();
    let raw = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .unwrap()
        .sign(&body);
    let sig = Signature::from(<[u8; 64]>::try_from(raw.as_ref()).unwrap());
    let signed = SignedManifest::assemble(
        &body,
        &[OperatorSignature {
            operator: "alice".into(),
            signature: sig,
        }],
    )
    .unwrap();
    assert!(matches!(
        accept(None, signed).unwrap_err(),
        ManifestError::BadSignature { .. }
    ));
}

#[test]
fn signatures_by_unknown_operators_ignored() {
    let ops = abc();
    let strangers = Ops::new(&["mallory", "trudy"]);
    let body = body(3, 2, &ops);
    let mut sigs: Vec<_> = ["mallory", "trudy"]
        .iter()
        .map(|n| OperatorSignature {
            operator: (*n).to_owned(),
            signature: sign(&body, strangers.key(n)),
        })
        .collect();
    let err = accept(None, SignedManifest::assemble(&body, &sigs).unwrap()).unwrap_err();
    assert!(matches!(
        err,
        ManifestError::NotEnoughSignatures {
            found: 0,
            needed: 2
        }
    ));

    // Garbage under an unknown name is ignored too, and K valid ones still suffice.
    sigs.push(OperatorSignature {
        operator: "nobody".into(),
        signature: Signature::from([7; 64]),
    });
    for n in ["carol", "bob"] {
        sigs.push(OperatorSignature {
            operator: n.into(),
            signature: sign(&body, ops.key(n)),
        });
    }
    let accepted = accept(None, SignedManifest::assemble(&body, &sigs).unwrap()).unwrap();
    assert_eq!(accepted.approval().signers(), ["carol", "bob"]);
}

#[test]
fn version_equal_or_lower_refused() {
    let ops = abc();
    let current = bootstrap(&ops);
    for version in [3, 2, 1] {
        let candidate = signed_by(&body(version, 2, &ops), &ops, &["alice", "bob", "carol"]);
        let err = accept(Some(&current), candidate).unwrap_err();
        assert!(
            matches!(err, ManifestError::VersionNotNewer { current: 3, candidate } if candidate == version)
        );
    }
}

#[test]
fn update_signed_only_by_new_operators_refused() {
    let ops = abc();
    let current = bootstrap(&ops);
    let newcomers = Ops::new(&["dave", "erin"]);
    let candidate = body(4, 1, &newcomers);
    let err = accept(
        Some(&current),
        signed_by(&candidate, &newcomers, &["dave", "erin"]),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        ManifestError::NotEnoughSignatures {
            found: 0,
            needed: 2
        }
    ));

    // The same rotation approved by the current operators takes effect, and from then
    // on the new operators and threshold govern.
    let rotated = accept(
        Some(&current),
        signed_by(&candidate, &ops, &["alice", "carol"]),
    )
    .unwrap();
    let err = accept(
        Some(&rotated),
        signed_by(&body(5, 2, &ops), &ops, &["alice", "bob", "carol"]),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        ManifestError::NotEnoughSignatures {
            found: 0,
            needed: 1
        }
    ));
    accept(
        Some(&rotated),
        signed_by(&body(5, 2, &ops), &newcomers, &["erin"]),
    )
    .unwrap();
}

#[test]
fn verify_signatures_refuses_threshold_zero() {
    let ops = abc();
    let signed = signed_by(&body(3, 2, &ops), &ops, &[]);
    let err = signed
        .verify_signatures(signed.manifest().operators(), 0)
        .unwrap_err();
    assert!(matches!(err, ManifestError::Threshold { threshold: 0, .. }));
}

#[test]
fn same_key_under_two_names_refused() {
    let ops = abc();
    let mut v = body_value(3, 2, &ops);
    v["operators"][1]["public_key"] = json!(ops.key("alice").public_key_hex());
    let err = parse_body(&v).unwrap_err();
    assert!(
        matches!(&err, ManifestError::DuplicateOperatorKey { first, second } if first == "alice" && second == "bob")
    );
}

#[test]
fn duplicate_ids_refused() {
    let ops = abc();
    let mut v = body_value(3, 2, &ops);
    v["nodes"][1]["id"] = json!("node-1");
    assert!(
        matches!(parse_body(&v).unwrap_err(), ManifestError::DuplicateNode { id } if id == "node-1")
    );

    let mut v = body_value(3, 2, &ops);
    v["operators"][2]["id"] = json!("alice");
    assert!(
        matches!(parse_body(&v).unwrap_err(), ManifestError::DuplicateOperator { id } if id == "alice")
    );
}

#[test]
fn threshold_out_of_range_refused() {
    let ops = abc();
    for threshold in [0, 4] {
        let err = parse_body(&body_value(3, threshold, &ops)).unwrap_err();
        assert!(matches!(err, ManifestError::Threshold { operators: 3, .. }));
    }
    parse_body(&body_value(3, 3, &ops)).unwrap();
    parse_body(&body_value(3, 1, &ops)).unwrap();
}

#[test]
fn version_zero_refused() {
    let ops = abc();
    assert!(matches!(
        parse_body(&body_value(0, 2, &ops)).unwrap_err(),
        ManifestError::VersionZero
    ));
}

#[test]
fn bad_hex_refused() {
    let ops = abc();
    let mut v = body_value(3, 2, &ops);
    v["nodes"][0]["measurements"][0]["1"] = json!(format!("zz{}", &PCR1[2..]));
    let err = parse_body(&v).unwrap_err();
    assert!(
        matches!(&err, ManifestError::Pcr { node, set: 0, index, .. } if node == "node-1" && index == "1")
    );

    let mut v = body_value(3, 2, &ops);
    v["operators"][1]["public_key"] = json!("g".repeat(64));
    assert!(
        matches!(parse_body(&v).unwrap_err(), ManifestError::PublicKey { operator } if operator == "bob")
    );
    let mut v = body_value(3, 2, &ops);
    v["operators"][1]["public_key"] = json!("ab".repeat(33));
    assert!(matches!(
        parse_body(&v).unwrap_err(),
        ManifestError::PublicKey { .. }
    ));
}

#[test]
fn pcr_lengths_and_indexes() {
    let ops = abc();
    for (value, ok) in [
        ("ab".repeat(32), true),
        ("ab".repeat(48), true),
        ("ab".repeat(64), true),
        ("ab".repeat(31), false),
        ("ab".repeat(47), false),
        ("ab".repeat(65), false),
        (String::new(), false),
    ] {
        let mut v = body_value(3, 2, &ops);
        v["nodes"][1]["measurements"][1]["8"] = json!(value);
        let result = parse_body(&v);
        assert_eq!(result.is_ok(), ok, "{} bytes", value.len() / 2);
        if !ok {
            assert!(
                matches!(result.unwrap_err(), ManifestError::Pcr { node, set: 1, index, .. } if node == "node-2" && index == "8")
            );
        }
    }
    for (index, ok) in [
        ("31", true),
        ("32", false),
        ("08", false),
        ("+1", false),
        ("x", false),
    ] {
        let mut v = body_value(3, 2, &ops);
        v["nodes"][0]["measurements"][0][index] = json!(PCR0);
        assert_eq!(parse_body(&v).is_ok(), ok, "index {index}");
    }
}

#[test]
fn duplicate_pcr_index_refused() {
    let ops = abc();
    let text = bytes(&body_value(3, 2, &ops));
    let text = String::from_utf8(text).unwrap();
    let doubled = text.replacen(
        &format!("\"0\":\"{PCR0}\""),
        &format!("\"0\":\"{PCR0}\",\"0\":\"{PCR2}\""),
        1,
    );
    assert_ne!(text, doubled);
    assert!(matches!(
        Manifest::parse(doubled.as_bytes()).unwrap_err(),
        ManifestError::Pcr { .. }
    ));
}

#[test]
fn unknown_fields_refused() {
    let ops = abc();
    for path in ["", "operators", "nodes"] {
        let mut v = body_value(3, 2, &ops);
        let target = if path.is_empty() {
            &mut v
        } else {
            &mut v[path][0]
        };
        target["extra"] = json!(1);
        let err = parse_body(&v).unwrap_err();
        assert!(
            matches!(&err, ManifestError::Body(msg) if msg.contains("unknown field `extra`")),
            "{path}: {err}"
        );
    }

    let signed = signed_by(&body(3, 2, &abc()), &ops, &["alice"]);
    let mut envelope: Value = serde_json::from_slice(signed.envelope_bytes()).unwrap();
    envelope["comment"] = json!("hi");
    assert!(matches!(
        SignedManifest::parse(&bytes(&envelope)).unwrap_err(),
        ManifestError::Envelope(_)
    ));
    let mut envelope: Value = serde_json::from_slice(signed.envelope_bytes()).unwrap();
    envelope["signatures"][0]["key"] = json!("hi");
    assert!(matches!(
        SignedManifest::parse(&bytes(&envelope)).unwrap_err(),
        ManifestError::Envelope(_)
    ));
}

#[test]
fn unknown_provider_refused() {
    let ops = abc();
    let mut v = body_value(3, 2, &ops);
    v["nodes"][0]["provider"] = json!("gcp");
    assert!(matches!(
        parse_body(&v).unwrap_err(),
        ManifestError::Body(_)
    ));
}

#[test]
fn envelope_size_limit() {
    let ops = abc();
    let signed = signed_by(&body(3, 2, &ops), &ops, &["alice", "bob"]);
    let mut envelope = signed.envelope_bytes().to_vec();
    envelope.resize(MAX_ENVELOPE_LEN, b' ');
    let at_limit = SignedManifest::parse(&envelope).unwrap();
    assert_eq!(at_limit.hash(), signed.hash());

    envelope.push(b' ');
    assert!(matches!(
        SignedManifest::parse(&envelope).unwrap_err(),
        ManifestError::EnvelopeTooLarge { len, max: MAX_ENVELOPE_LEN } if len == MAX_ENVELOPE_LEN + 1
    ));
    // Checked before parsing: garbage of that size is refused for its size.
    assert!(matches!(
        SignedManifest::parse(&vec![0xff; MAX_ENVELOPE_LEN + 1]).unwrap_err(),
        ManifestError::EnvelopeTooLarge { .. }
    ));
    assert!(matches!(
        addresses(&envelope).unwrap_err(),
        ManifestError::EnvelopeTooLarge { .. }
    ));
}

#[test]
fn body_size_limit() {
    let ops = abc();
    let mut body = body(3, 2, &ops);
    body.resize(MAX_BODY_LEN, b'\n');
    Manifest::parse(&body).unwrap();

    body.push(b'\n');
    assert!(matches!(
        Manifest::parse(&body).unwrap_err(),
        ManifestError::BodyTooLarge { len, max: MAX_BODY_LEN } if len == MAX_BODY_LEN + 1
    ));
    assert!(matches!(
        Manifest::parse(&vec![0xff; MAX_BODY_LEN + 1]).unwrap_err(),
        ManifestError::BodyTooLarge { .. }
    ));
    assert!(matches!(
        SignedManifest::assemble(&body, &[]).unwrap_err(),
        ManifestError::BodyTooLarge { .. }
    ));
}

#[test]
fn invalid_ids_refused() {
    let ops = abc();
    for bad in ["", "node 1", "node/1", &"n".repeat(65)] {
        let mut v = body_value(3, 2, &ops);
        v["nodes"][0]["id"] = json!(bad);
        assert!(
            matches!(parse_body(&v).unwrap_err(), ManifestError::NodeId { id, .. } if id == bad)
        );
        let mut v = body_value(3, 2, &ops);
        v["operators"][0]["id"] = json!(bad);
        assert!(
            matches!(parse_body(&v).unwrap_err(), ManifestError::OperatorId { id, .. } if id == bad)
        );
    }
    let body = body(3, 2, &ops);
    let err = SignedManifest::assemble(
        &body,
        &[OperatorSignature {
            operator: "al ice".into(),
            signature: sign(&body, ops.key("alice")),
        }],
    )
    .unwrap_err();
    assert!(matches!(
        err,
        ManifestError::SignatureOperator { index: 0, .. }
    ));
}

#[test]
fn missing_measurements_refused() {
    let ops = abc();
    let mut v = body_value(3, 2, &ops);
    v["nodes"][0]["measurements"] = json!([]);
    assert!(
        matches!(parse_body(&v).unwrap_err(), ManifestError::MeasurementSetCount { node, count: 0, .. } if node == "node-1")
    );

    let mut v = body_value(3, 2, &ops);
    v["nodes"][1]["measurements"][1] = json!({});
    assert!(
        matches!(parse_body(&v).unwrap_err(), ManifestError::EmptyMeasurementSet { node, set: 1 } if node == "node-2")
    );

    let mut v = body_value(3, 2, &ops);
    v["nodes"][0]
        .as_object_mut()
        .unwrap()
        .remove("measurements");
    assert!(
        matches!(parse_body(&v).unwrap_err(), ManifestError::Body(msg) if msg.contains("missing field `measurements`"))
    );

    let mut v = body_value(3, 2, &ops);
    let set = v["nodes"][0]["measurements"][0].clone();
    v["nodes"][0]["measurements"] = json!(vec![set.clone(); 17]);
    assert!(matches!(
        parse_body(&v).unwrap_err(),
        ManifestError::MeasurementSetCount { count: 17, .. }
    ));
    v["nodes"][0]["measurements"] = json!(vec![set; 16]);
    parse_body(&v).unwrap();
}

#[test]
fn addresses_validated() {
    let ops = abc();
    let long_ok = format!("{}:1", "h".repeat(253));
    let long_bad = format!("{}:1", "h".repeat(254));
    for (address, ok) in [
        ("node.example:65535", true),
        ("10.0.0.1:1", true),
        ("[fe80::1]:443", true),
        (long_ok.as_str(), true),
        (long_bad.as_str(), false),
        ("", false),
        ("127.0.0.1", false),
        (":7101", false),
        ("127.0.0.1:", false),
        ("127.0.0.1:0", false),
        ("127.0.0.1:65536", false),
        ("127.0.0.1:+80", false),
        ("::1:7101", false),
        ("bad host:7101", false),
    ] {
        let mut v = body_value(3, 2, &ops);
        v["nodes"][1]["address"] = json!(address);
        match parse_body(&v) {
            Ok(_) => assert!(ok, "{address:?} accepted"),
            Err(ManifestError::Address {
                node, address: a, ..
            }) => {
                assert!(!ok, "{address:?} refused");
                assert_eq!((node.as_str(), a.as_str()), ("node-2", address));
            }
            Err(e) => panic!("{address:?}: {e}"),
        }
    }
}

#[test]
fn counts_refused() {
    let ops = abc();
    let mut v = body_value(3, 1, &ops);
    v["operators"] = json!([]);
    assert!(matches!(
        parse_body(&v).unwrap_err(),
        ManifestError::OperatorCount { count: 0, .. }
    ));
    let mut v = body_value(3, 1, &ops);
    v["operators"] = (0..65)
        .map(|i| json!({"id": format!("op-{i}"), "public_key": format!("{i:064x}")}))
        .collect();
    assert!(matches!(
        parse_body(&v).unwrap_err(),
        ManifestError::OperatorCount { count: 65, .. }
    ));
    let mut v = body_value(3, 1, &ops);
    v["nodes"] = json!([]);
    assert!(matches!(
        parse_body(&v).unwrap_err(),
        ManifestError::NodeCount { count: 0, .. }
    ));
    let mut v = body_value(3, 1, &ops);
    v["nodes"] = (0..65)
        .map(|i| {
            json!({"id": format!("n{i}"), "provider": "sim", "address": "h:1",
                   "measurements": [{"8": PCR0, "4": format!("{i:096x}")}]})
        })
        .collect();
    assert!(matches!(
        parse_body(&v).unwrap_err(),
        ManifestError::NodeCount { count: 65, .. }
    ));
}

#[test]
fn malformed_envelopes_refused() {
    let ops = abc();
    let signed = signed_by(&body(3, 2, &ops), &ops, &["alice"]);
    let good: Value = serde_json::from_slice(signed.envelope_bytes()).unwrap();

    let mut v = good.clone();
    v["manifest"] = json!("not base64!");
    assert!(matches!(
        SignedManifest::parse(&bytes(&v)).unwrap_err(),
        ManifestError::Base64(_)
    ));
    let mut v = good.clone();
    v["signatures"][0]["signature"] = json!("ab".repeat(63));
    assert!(
        matches!(SignedManifest::parse(&bytes(&v)).unwrap_err(), ManifestError::SignatureEncoding { index: 0, operator } if operator == "alice")
    );
    let mut v = good.clone();
    v["manifest"] = json!("e30=");
    assert!(matches!(
        SignedManifest::parse(&bytes(&v)).unwrap_err(),
        ManifestError::Body(_)
    ));
    assert!(matches!(
        SignedManifest::parse(b"").unwrap_err(),
        ManifestError::Envelope(_)
    ));
    assert!(matches!(
        SignedManifest::parse(b"{} trailing").unwrap_err(),
        ManifestError::Envelope(_)
    ));
}

#[test]
fn hash_changes_with_the_body_only() {
    let ops = abc();
    let body3 = body(3, 2, &ops);
    let a = signed_by(&body3, &ops, &["alice"]);
    let b = signed_by(&body3, &ops, &["bob", "carol"]);
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash(), hash_of(&body(3, 2, &ops)));

    assert_ne!(a.hash(), hash_of(&body(4, 2, &ops)));
    let mut spaced = body3.clone();
    spaced.push(b' ');
    assert_ne!(a.hash(), hash_of(&spaced));

    assert_eq!(
        hash_of(b"").to_string(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(a.hash().to_string(), hex::encode(a.hash().as_bytes()));
}

#[test]
fn addresses_lists_every_node_without_checking_signatures() {
    let ops = abc();
    let unsigned = signed_by(&body(3, 2, &ops), &ops, &[]);
    let map = addresses(unsigned.envelope_bytes()).unwrap();
    assert_eq!(map.len(), 2);
    assert_eq!(map["node-1"], "127.0.0.1:7101");
    assert_eq!(map["node-2"], "[::1]:7102");

    assert!(addresses(b"{\"manifest\": \"\"}").is_err());
    let mut v = body_value(3, 2, &ops);
    v["nodes"][0]["address"] = json!("nowhere");
    let envelope = json!({"manifest": base64_of(&bytes(&v)), "signatures": []});
    assert!(matches!(
        addresses(&bytes(&envelope)).unwrap_err(),
        ManifestError::Address { .. }
    ));
}

fn base64_of(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn operator_key_pkcs8_round_trip_and_redacted_debug() {
    let key = OperatorKey::generate().unwrap();
    let pkcs8 = key.to_pkcs8().unwrap();
    let loaded = OperatorKey::from_pkcs8(pkcs8.as_ref()).unwrap();
    assert_eq!(loaded.public_key(), key.public_key());
    assert_eq!(key.public_key_hex(), hex::encode(key.public_key()));
    assert_eq!(sign(b"body", &key), sign(b"body", &loaded));

    let debug = format!("{key:?}");
    assert!(debug.contains("<redacted>"));
    assert!(debug.contains(&key.public_key_hex()));
    // PKCS#8 for Ed25519: a 16-byte header, then the 32-byte seed.
    let seed_hex = hex::encode(&pkcs8.as_ref()[16..48]);
    assert!(!debug.to_lowercase().contains(&seed_hex));
    assert_ne!(seed_hex, key.public_key_hex());

    assert!(matches!(
        OperatorKey::from_pkcs8(b"not a key").unwrap_err(),
        KeyError::Rejected(_)
    ));
}

#[test]
fn a_body_at_its_limit_signed_by_every_operator_fits_its_envelope() {
    let names: Vec<&'static str> = (0..manifest::MAX_OPERATORS)
        .map(|i| &*Box::leak(format!("operator-{i:02}").into_boxed_str()))
        .collect();
    let ops = Ops::new(&names);
    let mut body = body(1, 64, &ops);
    assert!(body.len() < MAX_BODY_LEN);
    // JSON allows trailing whitespace: pad the body to exactly the limit.
    body.resize(MAX_BODY_LEN, b' ');
    let signed = signed_by(&body, &ops, &names);
    assert!(signed.envelope_bytes().len() <= MAX_ENVELOPE_LEN);
    let parsed = SignedManifest::parse(signed.envelope_bytes()).unwrap();
    assert_eq!(parsed.body(), body.as_slice());
    accept(None, parsed).unwrap();
}

/// A successor that moves a node to another provider, or to another operator domain,
/// could give one provider or domain a signing quorum of a key placed under the old
/// assignment: refused, naming the node, whatever the approvals. A new node under a new
/// id, or an unchanged one, passes.
#[test]
fn successor_that_moves_a_node_refused() {
    let ops = abc();
    let current = bootstrap(&ops);
    let all = ["alice", "bob", "carol"];

    // node-2 becomes a Confidential Space node under the same id.
    let mut moved = body_value(4, 2, &ops);
    moved["nodes"][1] = json!({"id": "node-2", "provider": "gcp-cs", "address": "[::1]:7102",
        "measurements": [{"gcp-cs": {"image_digest": format!("sha256:{}", "ab".repeat(32)),
            "project_id": "custody", "instance_id": "1002"}}]});
    let err = accept(Some(&current), signed_by(&bytes(&moved), &ops, &all)).unwrap_err();
    assert!(
        matches!(&err, ManifestError::NodeMoved { node, what: "provider", from, to }
            if node == "node-2" && from == "nitro" && to == "gcp-cs"),
        "{err}"
    );

    // node-1 joins an operator domain it was not in.
    let mut regrouped = body_value(4, 2, &ops);
    regrouped["nodes"][0]["domain"] = json!("ops-east");
    let err = accept(Some(&current), signed_by(&bytes(&regrouped), &ops, &all)).unwrap_err();
    assert!(
        matches!(&err, ManifestError::NodeMoved { node, what: "domain", .. } if node == "node-1"),
        "{err}"
    );

    // The same node on another provider under a new id is a new node.
    let mut added = body_value(4, 2, &ops);
    added["nodes"][1] = json!({"id": "node-3", "provider": "gcp-cs", "address": "[::1]:7103",
        "measurements": [{"gcp-cs": {"image_digest": format!("sha256:{}", "ab".repeat(32)),
            "project_id": "custody", "instance_id": "1003"}}]});
    accept(Some(&current), signed_by(&bytes(&added), &ops, &all)).unwrap();
    // And an unchanged assignment passes.
    accept(Some(&current), signed_by(&body(4, 2, &ops), &ops, &all)).unwrap();
}
