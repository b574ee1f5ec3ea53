use super::*;

/// PCR0, PCR1 and PCR2 of one image.
fn image() -> BTreeMap<String, String> {
    ["0", "1", "2"]
        .into_iter()
        .map(|i| (i.to_owned(), "ab".repeat(48)))
        .collect()
}

fn with(pcrs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = image();
    for (i, v) in pcrs {
        m.insert((*i).to_owned(), (*v).repeat(48));
    }
    m
}

fn sample() -> ClusterFile {
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
            version: 3,
            threshold: 2,
            operators: (0..3)
                .map(|i| crate::pin::PinnedOperator {
                    id: format!("operator-{i}"),
                    public_key: hex::encode([i; 32]),
                })
                .collect(),
            roots: Default::default(),
        },
        nodes: vec![NodeEntry {
            id: "node-1".into(),
            client: "10.0.0.1:9001".into(),
            measurements: image().into(),
        }],
        sim: None,
    }
}

#[test]
fn round_trips_and_refuses_what_it_does_not_know() {
    let dir = std::env::temp_dir().join(format!("cluster-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.toml");
    sample().save(&path).unwrap();
    assert_eq!(ClusterFile::load(&path).unwrap(), sample());
    let pin = ClusterFile::load(&path).unwrap().pin().unwrap();
    assert_eq!((pin.hash(), pin.version()), ([0x5a; 32], 3));
    assert_eq!(pin.entry(), sample().manifest);
    let expect = sample().expectation("node-1", Purpose::Command).unwrap();
    assert_eq!(expect.node_id, "node-1");
    assert_eq!(expect.manifest, ManifestRule::Pinned([0x5a; 32]));
    assert_eq!(
        sample()
            .expectation("node-1", Purpose::Status)
            .unwrap()
            .manifest,
        ManifestRule::PinnedOrNone([0x5a; 32])
    );
    assert_eq!(
        sample()
            .expectation("node-1", Purpose::Submit { manifest: [1; 32] })
            .unwrap()
            .manifest,
        ManifestRule::Submitting {
            pinned: [0x5a; 32],
            submitted: [1; 32]
        }
    );
    assert!(sample().expectation("node-9", Purpose::Command).is_err());

    // A malformed pin, or none, is refused when the file is read.
    let text = std::fs::read_to_string(&path).unwrap();
    for (bad, why) in [
        (text.replace(&"5a".repeat(32), &"5a".repeat(31)), "64 hex"),
        (
            text.replace(&"5a".repeat(32), &format!("{}zz", "5a".repeat(31))),
            "not hex",
        ),
    ] {
        std::fs::write(&path, bad).unwrap();
        match ClusterFile::load(&path) {
            Err(ClusterFileError::Invalid { reason, .. }) => {
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    let mut unpinned: toml::Table = toml::from_str(&text).unwrap();
    unpinned.remove("manifest");
    std::fs::write(&path, toml::to_string(&unpinned).unwrap()).unwrap();
    assert!(matches!(
        ClusterFile::load(&path),
        Err(ClusterFileError::Invalid { .. })
    ));
    sample().save(&path).unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\nsurprise = 1\n")).unwrap();
    assert!(matches!(
        ClusterFile::load(&path),
        Err(ClusterFileError::Invalid { .. })
    ));
    let mut twice = sample();
    twice.nodes.push(twice.nodes[0].clone());
    twice.save(&path).unwrap();
    assert!(matches!(
        ClusterFile::load(&path),
        Err(ClusterFileError::Invalid { .. })
    ));
    let mut bad_pcr = sample();
    let NodeMeasurements::Untagged(pcrs) = &mut bad_pcr.nodes[0].measurements else {
        panic!("sample() writes the untagged form");
    };
    pcrs.insert("x".into(), "00".into());
    assert!(bad_pcr.expectation("node-1", Purpose::Command).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Why loading a file with these nodes' measurements is refused, if it is.
fn refusal(nodes: &[(&str, BTreeMap<String, String>)]) -> Option<String> {
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cluster-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{n}.toml"));
    let mut file = sample();
    file.nodes = nodes
        .iter()
        .map(|(id, m)| NodeEntry {
            id: (*id).to_owned(),
            client: "10.0.0.1:9001".into(),
            measurements: m.clone().into(),
        })
        .collect();
    file.save(&path).unwrap();
    let loaded = ClusterFile::load(&path);
    std::fs::remove_file(&path).unwrap();
    match loaded {
        Ok(_) => None,
        Err(ClusterFileError::Invalid { reason, .. }) => Some(reason),
        Err(other) => panic!("{other:?}"),
    }
}

/// A file that pins only a shared image's PCR0-2 for two nodes would let either
/// node, compromised, answer a connection meant for the other: refused on load, as
/// are entries that do not pin the code. The manifest's rule, applied here too.
#[test]
fn entries_one_document_could_match_are_refused() {
    let shared = refusal(&[("node-1", image()), ("node-2", image())]).unwrap();
    assert!(
        shared.contains("node-1 and node-2") && shared.contains("could match both"),
        "{shared}"
    );
    // Their own PCR4 tells them apart.
    assert_eq!(
        refusal(&[
            ("node-1", with(&[("4", "01")])),
            ("node-2", with(&[("4", "02")]))
        ]),
        None
    );
    // node-2 does not pin PCR4: node-1's document matches node-2's entry too.
    assert!(
        refusal(&[("node-1", with(&[("4", "01")])), ("node-2", image())])
            .unwrap()
            .contains("could match both")
    );
    // Apart only at a PCR one of them pins: still one document for both.
    assert!(
        refusal(&[
            ("node-1", with(&[("4", "01")])),
            ("node-2", with(&[("3", "02")]))
        ])
        .unwrap()
        .contains("could match both")
    );
    // Different images: apart at PCR0.
    assert_eq!(
        refusal(&[("node-1", image()), ("node-2", with(&[("0", "cd")]))]),
        None
    );
    // The code must be pinned: PCR0-2 together, or PCR8.
    let code = |m: BTreeMap<String, String>| refusal(&[("node-1", m)]);
    assert_eq!(code(image()), None);
    let only_8: BTreeMap<String, String> =
        [("8".to_owned(), "ef".repeat(48))].into_iter().collect();
    assert_eq!(code(only_8), None);
    for drop in ["0", "1", "2"] {
        let mut m = with(&[("4", "01")]);
        m.remove(drop);
        let reason = code(m).unwrap();
        assert!(reason.contains("do not pin the code"), "{reason}");
    }
    // One spelling per PCR index, within 0 to 31.
    for bad in ["04", "+4", "32", "x"] {
        let mut m = image();
        m.insert(bad.to_owned(), "01".repeat(48));
        let reason = code(m).unwrap();
        assert!(
            reason.contains("not a number from 0 to 31"),
            "{bad}: {reason}"
        );
    }
}

/// A file written before measurements named their provider loads, and means Nitro:
/// the same set as the tagged form, and the same identity rule across both forms.
#[test]
fn untagged_measurements_are_nitro() {
    let dir = std::env::temp_dir().join(format!("cluster-tags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.toml");
    sample().save(&path).unwrap();
    let old = std::fs::read_to_string(&path).unwrap();
    assert!(old.contains("[nodes.measurements]\n"), "{old}");
    let old_set = ClusterFile::load(&path).unwrap().nodes[0]
        .measurements
        .measurements()
        .unwrap();
    assert_eq!(old_set.provider(), Provider::Nitro);

    let new = old.replace("[nodes.measurements]", "[nodes.measurements.nitro]");
    std::fs::write(&path, &new).unwrap();
    let loaded = ClusterFile::load(&path).unwrap();
    assert_eq!(
        loaded.nodes[0].measurements,
        NodeMeasurements::tagged(Provider::Nitro, image())
    );
    assert_eq!(
        loaded.nodes[0].measurements.measurements().unwrap(),
        old_set
    );
    assert_eq!(
        loaded
            .expectation("node-1", Purpose::Command)
            .unwrap()
            .measurements,
        vec![old_set]
    );
    // Saved as it was read.
    loaded.save(&path).unwrap();
    assert_eq!(ClusterFile::load(&path).unwrap(), loaded);

    // An unknown provider, or two, are refused when the file is read.
    for (bad, why) in [
        (
            old.replace("[nodes.measurements]", "[nodes.measurements.tdx]"),
            "unknown provider \"tdx\"",
        ),
        (
            format!(
                "{new}\n[nodes.measurements.aws-nitro]\n\"0\" = \"{}\"\n",
                "ab".repeat(48)
            ),
            "exactly one provider, found 2",
        ),
    ] {
        std::fs::write(&path, bad).unwrap();
        match ClusterFile::load(&path) {
            Err(ClusterFileError::Invalid { reason, .. }) => {
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // One entry tagged, the other not: one document could still match both.
    let mut file = sample();
    file.nodes.push(NodeEntry {
        id: "node-2".into(),
        client: "10.0.0.2:9001".into(),
        measurements: NodeMeasurements::tagged(Provider::Nitro, image()),
    });
    let reason = file.check_identities().unwrap_err();
    assert!(reason.contains("could match both"), "{reason}");
    file.nodes[0].measurements = with(&[("4", "01")]).into();
    file.nodes[1].measurements = NodeMeasurements::tagged(Provider::Nitro, with(&[("4", "02")]));
    file.check_identities().unwrap();
}

/// The client narrows the roots it trusts to those the pinned manifest pins, as a node
/// does: with a simulated root, a pin of that root leaves it alone, a pin of another
/// leaves none for that provider, and a provider not named keeps its roots.
#[cfg(feature = "sim")]
#[test]
fn node_evidence_must_chain_to_the_pinned_root() {
    use attestation::Provider;
    let ca = attestation::nsm::sim::SimCa::generate(std::time::SystemTime::now()).unwrap();
    let mut file = sample();
    file.sim_root = Some(hex::encode(ca.root_der()));
    let production = Verifier::production();
    let trusted = file.verifier().unwrap();
    let simulated: Vec<[u8; 32]> = trusted
        .roots(Provider::Nitro)
        .iter()
        .filter(|r| !production.roots(Provider::Nitro).contains(r))
        .copied()
        .collect();
    assert_eq!(simulated.len(), 1, "the simulated root is trusted too");
    file.manifest.roots = [("nitro".to_owned(), hex::encode(simulated[0]))].into();
    let narrowed = file.verifier().unwrap();
    assert_eq!(narrowed.roots(Provider::Nitro), simulated.as_slice());
    assert_eq!(
        narrowed.roots(Provider::GcpCs),
        production.roots(Provider::GcpCs)
    );
    file.manifest.roots = [("nitro".to_owned(), "7a".repeat(32))].into();
    assert!(file.verifier().unwrap().roots(Provider::Nitro).is_empty());
    let expectation = file.expectation("node-1", Purpose::Command).unwrap();
    assert!(expectation.verifier.roots(Provider::Nitro).is_empty());
}

/// A simulated cluster's record names each node's provider; a record written before it
/// did lists Nitro nodes, and has no Confidential Space root (the launcher then finds it
/// in the cluster's directory). An unknown provider is refused.
#[test]
fn a_simulated_node_records_its_provider_and_old_records_are_nitro() {
    let node = |provider: Option<&str>| {
        let mut text = String::from(
            "id = \"node-1\"\ncid = 17\npeer_port = 1\nclient_port = 2\nadmin_port = 3\n\
             dir = \"/sim/node-1\"\nprimes = \"/sim/node-1/primes.json\"\n",
        );
        if let Some(p) = provider {
            text.push_str(&format!("provider = \"{p}\"\n"));
        }
        toml::from_str::<SimNode>(&text)
    };
    assert_eq!(node(None).unwrap().provider, Provider::Nitro);
    assert_eq!(node(Some("gcp-cs")).unwrap().provider, Provider::GcpCs);
    assert_eq!(
        node(Some("gcp-confidential-space")).unwrap().provider,
        Provider::GcpCs
    );
    let err = node(Some("azure")).unwrap_err().to_string();
    assert!(err.contains("unknown provider \"azure\""), "{err}");

    let mut cs = node(Some("gcp-cs")).unwrap();
    let text = toml::to_string(&cs).unwrap();
    assert!(text.contains("provider = \"gcp-cs\""), "{text}");
    assert_eq!(toml::from_str::<SimNode>(&text).unwrap(), cs);
    cs.provider = Provider::Nitro;
    assert!(
        toml::to_string(&cs)
            .unwrap()
            .contains("provider = \"nitro\"")
    );

    let old = "dir = \"/sim\"\nenclave_binary = \"/b/enclave\"\nparent_binary = \"/b/parent\"\n\
               manifest = \"/sim/manifest.json\"\nsim_ca = \"/sim/sim-ca\"\nnodes = []\n";
    let record: SimCluster = toml::from_str(old).unwrap();
    assert_eq!(record.sim_gcp_ca, None);
}

/// A simulated cluster of both providers trusts both simulated roots, each for its own
/// provider, and a pin of both leaves exactly those.
#[cfg(feature = "sim")]
#[test]
fn both_simulated_roots_are_trusted_and_pinned() {
    use attestation::Provider;
    let now = std::time::SystemTime::now();
    let nitro = attestation::nsm::sim::SimCa::generate(now).unwrap();
    let gcp = attestation::gcp::sim::SimCsCa::new(now).unwrap();
    let mut file = sample();
    file.sim_root = Some(hex::encode(nitro.root_der()));
    file.sim_gcp_root = Some(hex::encode(gcp.root_der()));
    let production = Verifier::production();
    let added = |provider| -> Vec<[u8; 32]> {
        file.verifier()
            .unwrap()
            .roots(provider)
            .iter()
            .filter(|r| !production.roots(provider).contains(r))
            .copied()
            .collect()
    };
    let (nitro_root, gcp_root) = (added(Provider::Nitro), added(Provider::GcpCs));
    assert_eq!((nitro_root.len(), gcp_root.len()), (1, 1));
    file.manifest.roots = [
        ("nitro".to_owned(), hex::encode(nitro_root[0])),
        ("gcp-cs".to_owned(), hex::encode(gcp_root[0])),
    ]
    .into();
    let pinned = file.verifier().unwrap();
    assert_eq!(pinned.roots(Provider::Nitro), nitro_root.as_slice());
    assert_eq!(pinned.roots(Provider::GcpCs), gcp_root.as_slice());

    // Only the Confidential Space root: Nitro keeps the production root alone.
    file.sim_root = None;
    file.manifest.roots = Default::default();
    assert_eq!(
        file.verifier().unwrap().roots(Provider::Nitro),
        production.roots(Provider::Nitro)
    );
    // Not hex, or not a root: refused, naming the field.
    file.sim_gcp_root = Some("zz".to_owned());
    let err = file.verifier().unwrap_err().to_string();
    assert!(err.starts_with("sim_gcp_root"), "{err}");
    file.sim_gcp_root = Some(hex::encode(b"not a certificate"));
    assert!(
        file.verifier()
            .unwrap_err()
            .to_string()
            .starts_with("sim_gcp_root")
    );
}
