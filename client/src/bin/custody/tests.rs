use super::*;

fn renew_aux(args: &[&str]) -> bool {
    let cli = Cli::try_parse_from(
        ["custody", "key", "create", "--threshold", "2"]
            .iter()
            .chain(args),
    )
    .unwrap();
    match cli.command {
        Command::Key {
            command: KeyCmd::Create { renew_aux, .. },
        } => renew_aux,
        other => panic!("{other:?}"),
    }
}

/// Auxiliary info is generated afresh only when the operator asks.
#[test]
fn renew_aux_only_when_asked() {
    assert!(!renew_aux(&[]));
    assert!(renew_aux(&["--renew-aux"]));
    assert!(Cli::try_parse_from(["custody", "key", "create", "--renew-aux"]).is_err());
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once(&"custody").chain(args))
}

/// `sign` takes exactly one payload; anything else is a usage error, exit status 2.
#[test]
fn sign_takes_exactly_one_payload() {
    let digest = "ab".repeat(32);
    let cli = parse(&[
        "sign", "--key", "k", "--digest", &digest, "--ttl", "60", "--node", "node-2",
    ])
    .unwrap();
    match cli.command {
        Command::Sign(args) => {
            assert_eq!(args.digest.as_deref(), Some(digest.as_str()));
            assert_eq!(args.ttl, Some(60));
            assert_eq!(args.node.as_deref(), Some("node-2"));
            assert!(args.eth_tx.is_none() && args.btc_psbt.is_none() && args.path.is_none());
        }
        other => panic!("{other:?}"),
    }
    parse(&["sign", "--key", "k", "--eth-tx", "02ef", "--path", "m/0"]).unwrap();
    parse(&["sign", "--key", "k", "--btc-psbt", "cHNidP8="]).unwrap();
    for refused in [
        &["sign", "--key", "k"][..],
        &["sign", "--key", "k", "--digest", "ab", "--eth-tx", "02"],
        &["sign", "--key", "k", "--btc-psbt", "x", "--eth-tx", "02"],
        &["sign", "--digest", "ab"],
        &["sign", "--key", "k", "--digest", "ab", "--ttl", "-1"],
        &["sign", "--key", "k", "--message", "ab"],
    ] {
        let err = parse(refused).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{refused:?}: {err}");
    }
}

#[test]
fn request_and_policy_commands_parse() {
    let id = "cd".repeat(32);
    match parse(&["request", "approve", &id]).unwrap().command {
        Command::Request {
            command:
                RequestCmd::Approve {
                    id: got,
                    node: None,
                },
        } => assert_eq!(got, id),
        other => panic!("{other:?}"),
    }
    match parse(&[
        "--cluster",
        "c.toml",
        "request",
        "show",
        &id,
        "--node",
        "node-3",
    ])
    .unwrap()
    .command
    {
        Command::Request {
            command: RequestCmd::Show {
                node: Some(node), ..
            },
        } => assert_eq!(node, "node-3"),
        other => panic!("{other:?}"),
    }
    parse(&["request", "list", "--json"]).unwrap();
    assert_eq!(parse(&["request", "approve"]).unwrap_err().exit_code(), 2);
    parse(&[
        "policy",
        "approve",
        "--body",
        "b",
        "--key",
        "k",
        "--id",
        "operator-1",
        "--out",
        "o",
    ])
    .unwrap();
    assert_eq!(
        parse(&[
            "policy", "approve", "--body", "b", "--key", "k", "--out", "o"
        ])
        .unwrap_err()
        .exit_code(),
        2
    );
    match parse(&[
        "policy",
        "assemble",
        "--body",
        "b",
        "--approval",
        "a",
        "--approval",
        "c",
        "--out",
        "o",
    ])
    .unwrap()
    .command
    {
        Command::Policy {
            command: PolicyCmd::Assemble { approvals, .. },
        } => assert_eq!(approvals.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(parse(&["policy", "assemble", "--body", "b", "--out", "o"]).is_err());
    parse(&["policy", "submit", "envelope.json"]).unwrap();
    match parse(&["key", "create", "--threshold", "2", "--ttl", "600"])
        .unwrap()
        .command
    {
        Command::Key {
            command: KeyCmd::Create { ttl, key_id, .. },
        } => assert_eq!((ttl, key_id), (Some(600), None)),
        other => panic!("{other:?}"),
    }
}

#[cfg(feature = "sim")]
#[test]
fn sim_up_asks_for_operators_only_when_told() {
    match parse(&["sim", "up", "--dir", "d"]).unwrap().command {
        Command::Sim {
            command:
                SimCommand::Up {
                    operators,
                    approvals,
                    nodes,
                    providers,
                    ..
                },
        } => {
            assert_eq!((nodes, operators, approvals), (None, 3, 2));
            let nodes = client::sim::node_providers(nodes, providers.as_deref()).unwrap();
            assert_eq!(nodes, [attestation::Provider::Nitro; 3]);
        }
        other => panic!("{other:?}"),
    }
    match parse(&[
        "sim",
        "up",
        "--dir",
        "d",
        "--operators",
        "5",
        "--approvals",
        "3",
    ])
    .unwrap()
    .command
    {
        Command::Sim {
            command:
                SimCommand::Up {
                    operators,
                    approvals,
                    ..
                },
        } => assert_eq!((operators, approvals), (5, 3)),
        other => panic!("{other:?}"),
    }
}

/// `--providers` lists each node's provider; with `--nodes` they must agree (checked when
/// the cluster starts); a provider no simulated node stands in is a usage error.
#[cfg(feature = "sim")]
#[test]
fn sim_up_and_demo_take_a_provider_list() {
    use attestation::Provider::{GcpCs, Nitro};
    let up = |args: &[&str]| match parse(&[&["sim", "up", "--dir", "d"], args].concat())
        .map(|c| c.command)
    {
        Ok(Command::Sim {
            command: SimCommand::Up {
                nodes, providers, ..
            },
        }) => Ok(client::sim::node_providers(nodes, providers.as_deref())),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    let mixed = [Nitro, Nitro, GcpCs, GcpCs];
    let listed = up(&["--providers", "nitro,nitro,gcp-cs,gcp-cs"]).unwrap();
    assert_eq!(listed.unwrap(), mixed);
    let agreed = up(&["--nodes", "4", "--providers", "nitro,nitro,gcp-cs,gcp-cs"]).unwrap();
    assert_eq!(agreed.unwrap(), mixed);
    let disagreed = up(&["--nodes", "3", "--providers", "nitro,gcp-cs"]).unwrap();
    assert!(disagreed.is_err());
    assert!(up(&["--providers", "nitro,azure"]).is_err());
    assert!(up(&["--providers", ""]).is_err());

    match parse(&["demo", "--providers", "nitro,nitro,gcp-cs,gcp-cs"])
        .unwrap()
        .command
    {
        Command::Demo {
            nodes,
            providers,
            threshold,
        } => {
            assert_eq!((nodes, threshold), (None, None));
            assert_eq!(providers.as_deref(), Some(&mixed[..]));
        }
        other => panic!("{other:?}"),
    }
}

/// The demo's key: 2 signers on one provider, and on several the least that no one
/// provider holds, which the placement rule accepts; a threshold asked for is kept.
#[cfg(feature = "sim")]
#[test]
fn the_demo_threshold_follows_the_shape() {
    use attestation::Provider::{GcpCs, Nitro};
    use sim_cmd::demo_threshold;
    assert_eq!(demo_threshold(&[Nitro; 3], None), 2);
    assert_eq!(demo_threshold(&[GcpCs; 3], None), 2);
    assert_eq!(demo_threshold(&[Nitro, Nitro, GcpCs, GcpCs], None), 3);
    assert_eq!(demo_threshold(&[Nitro, GcpCs], None), 2);
    assert_eq!(
        demo_threshold(&[Nitro, Nitro, Nitro, GcpCs, GcpCs, GcpCs], None),
        4
    );
    assert_eq!(demo_threshold(&[Nitro, Nitro, GcpCs, GcpCs], Some(4)), 4);
}

fn file() -> ClusterFile {
    let text = r#"
[operator]
id = "operator-0"
key_file = "/nonexistent/operator-0.key"

[manifest]
hash = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
version = 1
threshold = 1
operators = [{ id = "operator-0", public_key = "0101010101010101010101010101010101010101010101010101010101010101" }]

[[nodes]]
id = "node-1"
client = "127.0.0.1:1"
[nodes.measurements]
0 = "abababababababababababababababababababababababababababababababababababababababababababababababab"
"#;
    toml::from_str(text).unwrap()
}

/// Pending exits 3, refused, failed and expired 1, a command line no node would take 2;
/// a "signed" answer whose signature does not check is never a success.
#[test]
fn exit_codes_follow_the_answer() {
    use protocol::operator_api::{RequestAnswer, RequestStatus};
    let file = file();
    let exit = |status| {
        finish(
            false,
            &file,
            "node-1",
            None,
            None,
            RequestAnswer::new(&[1; 32], status),
        )
        .err()
        .map(|Failed(code)| code)
    };
    assert_eq!(exit(RequestStatus::Pending), Some(3));
    assert_eq!(exit(RequestStatus::Refused), Some(1));
    assert_eq!(exit(RequestStatus::Failed), Some(1));
    assert_eq!(exit(RequestStatus::Expired), Some(1));
    // Signed, but carrying no signature: refused by the client's check.
    assert_eq!(exit(RequestStatus::Signed), Some(1));
    // Created, but naming no key.
    assert_eq!(exit(RequestStatus::Created), Some(1));

    let code = |e| request_cmd::request_failed(false, "sign", e).0;
    assert_eq!(code(client::ops::OpError::Usage("--digest".into())), 2);
    assert_eq!(code(client::ops::OpError::Ttl { secs: 0 }), 2);
    assert_eq!(
        code(client::ops::OpError::Refused {
            node: "node-1".into(),
            reason: "malformed request".into()
        }),
        1
    );
}

/// `audit export` names the node and the file; either missing is a usage error.
#[test]
fn audit_export_needs_a_node_and_a_file() {
    let cli = parse(&["audit", "export", "--node", "node-2", "--out", "log.jsonl"]).unwrap();
    match cli.command {
        Command::Audit {
            command: AuditCmd::Export { node, out },
        } => {
            assert_eq!(node, "node-2");
            assert_eq!(out, PathBuf::from("log.jsonl"));
        }
        other => panic!("{other:?}"),
    }
    for refused in [
        &["audit", "export", "--node", "node-2"][..],
        &["audit", "export", "--out", "log.jsonl"],
        &["audit", "export", "node-2", "--out", "log.jsonl"],
    ] {
        assert_eq!(parse(refused).unwrap_err().exit_code(), 2, "{refused:?}");
    }
}

/// `key create` refuses, before sending anything, a key the pinned manifest's placement
/// rule refuses: exit 1, as a node's refusal; a manifest that allows it passes, and one
/// that is not the pinned one is refused.
#[test]
fn key_create_refuses_a_misplaced_key_before_sending() {
    let key = manifest::OperatorKey::generate().unwrap();
    let pcr = |b: u8| hex::encode([b; 48]);
    let envelope = |placement: Value| {
        let body = serde_json::to_vec(&json!({
            "version": 1, "threshold": 1,
            "operators": [{"id": "operator-0", "public_key": key.public_key_hex()}],
            "nodes": (1..=2u8).map(|i| json!({
                "id": format!("node-{i}"), "provider": "sim", "address": "127.0.0.1:1",
                "measurements": [{"0": pcr(1), "1": pcr(2), "2": pcr(3), "4": pcr(3 + i)}],
            })).collect::<Vec<_>>(),
            "placement": placement,
        }))
        .unwrap();
        let signature = manifest::OperatorSignature {
            operator: "operator-0".into(),
            signature: manifest::sign(&body, &key),
        };
        manifest::SignedManifest::assemble(&body, &[signature]).unwrap()
    };
    let strict = envelope(json!({}));
    let dir = std::env::temp_dir().join(format!("custody-placement-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("manifest.json");
    std::fs::write(&path, strict.envelope_bytes()).unwrap();
    let mut file = file();
    file.manifest.hash = strict.hash().to_string();
    let check = |file: &ClusterFile, path: &Path, parties: &[String]| {
        key_cmd::check_placement(true, file, Some(path), parties, 2)
            .err()
            .map(|Failed(code)| code)
    };
    assert_eq!(check(&file, &path, &[]), Some(1));
    assert_eq!(
        check(&file, &path, &["node-2".into(), "node-1".into()]),
        Some(1)
    );
    let lax = envelope(json!({"allow_provider_quorum": true}));
    std::fs::write(&path, lax.envelope_bytes()).unwrap();
    // Another manifest than the pinned one is no ground to decide on...
    assert_eq!(check(&file, &path, &[]), Some(1));
    // ...and once pinned, it allows the key.
    file.manifest.hash = lax.hash().to_string();
    assert_eq!(check(&file, &path, &[]), None);
    let _ = std::fs::remove_dir_all(&dir);
    let cli = parse(&["key", "create", "--threshold", "2", "--manifest", "m.json"]).unwrap();
    match cli.command {
        Command::Key {
            command: KeyCmd::Create { manifest, .. },
        } => assert_eq!(manifest.as_deref(), Some(Path::new("m.json"))),
        other => panic!("{other:?}"),
    }
}
