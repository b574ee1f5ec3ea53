#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;

struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn scratch(name: &str) -> Scratch {
    Scratch(std::env::temp_dir().join(format!("custody-launcher-{name}-{}", std::process::id())))
}

fn binaries() -> Binaries {
    Binaries {
        enclave: PathBuf::from("/nonexistent/enclave"),
        parent: PathBuf::from("/nonexistent/parent"),
    }
}

#[test]
fn a_cluster_has_one_to_max_nodes() {
    let dir = scratch("count");
    for refused in [0, MAX_NODES + 1] {
        let err = Launcher::prepare(&dir.0, refused, binaries(), Options::attached()).unwrap_err();
        assert!(
            matches!(err, SimError::Nodes { requested } if requested == refused),
            "{err}"
        );
        assert!(!dir.0.exists(), "nothing is created for {refused} nodes");
    }
    check_count(1).unwrap();
    check_count(MAX_NODES).unwrap();
}

#[test]
fn nodes_get_their_own_cid_ports_directories_and_primes() {
    let dir = scratch("layout");
    let launcher = Launcher::prepare(&dir.0, 3, binaries(), Options::attached()).unwrap();
    assert_eq!(launcher.ids(), ["node-1", "node-2", "node-3"]);
    let mut ports = std::collections::BTreeSet::new();
    for (i, n) in launcher.nodes().iter().enumerate() {
        assert_eq!(n.cid, 17 + u32::try_from(i).unwrap());
        for port in [n.peer_port, n.client_port, n.admin_port] {
            assert!(ports.insert(port), "port {port} given twice");
        }
        assert!(n.vsock_dir.is_dir() && n.blob_dir.is_dir());
        assert!(n.primes.is_file(), "{} has no primes", n.id);
        assert_eq!(
            n.enclave_log(),
            launcher.dir().join(&n.id).join("enclave.log")
        );
    }
    assert!(launcher.sim_ca().exists());
    assert!(launcher.node("node-4").is_err());
}

#[test]
fn enclave_options_layer_defaults_cluster_and_node_without_repeating_a_flag() {
    let dir = scratch("args");
    let mut options = Options::attached();
    options.enclave_args.set("--presign-depth", "0");
    let mut launcher = Launcher::prepare(&dir.0, 2, binaries(), options).unwrap();
    launcher.set_enclave_arg("--round-timeout-secs", "120");
    launcher
        .set_node_enclave_arg("node-2", "--round-timeout-secs", "40")
        .unwrap();
    assert!(launcher.set_node_enclave_arg("node-9", "--x", "1").is_err());

    let one = launcher.enclave_args("node-1").unwrap();
    let two = launcher.enclave_args("node-2").unwrap();
    assert_eq!(one.get("--presign-depth"), Some("0"));
    assert_eq!(one.get("--round-timeout-secs"), Some("120"));
    assert_eq!(two.get("--round-timeout-secs"), Some("40"));
    assert_eq!(one.get("--retry-secs"), Some("1"));
    assert_eq!(one.get("--prime-generators"), Some("0"));
    let primes = launcher.node("node-1").unwrap().primes.clone();
    assert_eq!(one.get("--sim-primes"), primes.to_str());
    let words: Vec<&str> = two.words().collect();
    assert_eq!(
        words
            .iter()
            .filter(|w| **w == "--round-timeout-secs")
            .count(),
        1
    );

    // Without primes a node generates its own: no `--prime-generators 0`, which the
    // enclave would refuse without `--sim-primes`.
    std::fs::remove_file(&primes).unwrap();
    let one = launcher.enclave_args("node-1").unwrap();
    assert_eq!(one.get("--sim-primes"), None);
    assert_eq!(one.get("--prime-generators"), None);
}

#[test]
fn a_record_finds_the_same_cluster_again() {
    let dir = scratch("record");
    let mut launcher = Launcher::prepare(&dir.0, 2, binaries(), Options::detached()).unwrap();
    launcher
        .use_binary("node-2", PathBuf::from("/elsewhere/enclave"))
        .unwrap();
    let record = launcher.record();
    assert_eq!(record.nodes.len(), 2);
    assert!(record.nodes.iter().all(|n| n.enclave_pid.is_none()));
    let again = Launcher::from_record(&record, Options::detached());
    assert_eq!(again.record(), record);
    // What the record cannot carry: a node's own binary.
    assert_eq!(
        again.node("node-2").unwrap().enclave_binary,
        binaries().enclave
    );
    // A missing binary is a typed error naming it, and nothing is recorded as running.
    let err = launcher.start_parent("node-1").unwrap_err();
    assert!(matches!(err, SimError::Start { .. }), "{err}");
    assert_eq!(launcher.node("node-1").unwrap().parent_pid(), None);
}

fn words(command: &Command) -> Vec<String> {
    command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The value following `flag` in `words`.
fn after<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    let i = words.iter().position(|w| w == flag)?;
    words.get(i + 1).map(String::as_str)
}

/// A Confidential Space node runs its enclave alone: `--provider gcp-cs` on the ports a
/// parent would have taken and its blobs in its directory, with no parent's sockets; a
/// Nitro node's enclave keeps its parent. Both trust both simulated roots, and a
/// Confidential Space node has no parent to start or kill.
#[test]
fn a_confidential_space_node_runs_its_enclave_alone() {
    let dir = scratch("mixed");
    let providers = [Provider::Nitro, Provider::GcpCs];
    let mut launcher =
        Launcher::prepare_with(&dir.0, &providers, binaries(), Options::attached()).unwrap();
    assert_eq!(launcher.ids_with_parents(), ["node-1"]);
    assert!(launcher.sim_gcp_ca().exists());

    let nitro = words(&launcher.enclave_command("node-1").unwrap());
    let n1 = launcher.node("node-1").unwrap();
    assert_eq!(after(&nitro, "--provider"), None);
    assert_eq!(after(&nitro, "--cid"), Some("17"));
    assert_eq!(after(&nitro, "--sim-dir"), n1.vsock_dir.to_str());
    assert_eq!(after(&nitro, "--blob-dir"), None);

    let cs = words(&launcher.enclave_command("node-2").unwrap());
    let n2 = launcher.node("node-2").unwrap();
    assert_eq!(cs[..4], ["--sim", "run", "--node-id", "node-2"]);
    assert_eq!(after(&cs, "--provider"), Some("gcp-cs"));
    assert_eq!(after(&cs, "--blob-dir"), n2.blob_dir.to_str());
    let port = |p: u16| format!("127.0.0.1:{p}");
    assert_eq!(
        after(&cs, "--peer-listen"),
        Some(port(n2.peer_port).as_str())
    );
    assert_eq!(
        after(&cs, "--client-listen"),
        Some(port(n2.client_port).as_str())
    );
    assert_eq!(
        after(&cs, "--status-listen"),
        Some(port(n2.admin_port).as_str())
    );
    for flag in ["--cid", "--sim-dir"] {
        assert_eq!(after(&cs, flag), None, "{flag}");
    }
    assert!(n2.blob_dir.is_dir() && !n2.vsock_dir.exists());
    for w in [&nitro, &cs] {
        assert_eq!(after(w, "--sim-ca"), launcher.sim_ca().to_str());
        assert_eq!(after(w, "--sim-gcp-ca"), launcher.sim_gcp_ca().to_str());
        assert_eq!(after(w, "--prime-generators"), Some("0"));
    }

    for err in [
        launcher.start_parent("node-2").unwrap_err(),
        launcher.kill_parent("node-2").unwrap_err(),
    ] {
        assert!(
            matches!(&err, SimError::NoParent { node, provider: "gcp-cs" } if node == "node-2"),
            "{err}"
        );
        assert!(err.to_string().contains("runs no parent"), "{err}");
    }

    // The manifest lists it at its own peer port, pinned to its instance; both roots are
    // pinned, and differ.
    let image = SimMeasurements::of_image(b"enclave image");
    let err = launcher.listed(&image, &[]).unwrap_err();
    assert!(matches!(err, SimError::Nsm(_)), "{err}");
    let listed = launcher
        .listed(&image, &[("node-2", serde_json::json!({"gcp-cs": {}}))])
        .unwrap();
    assert_eq!(
        listed[1].address,
        port(launcher.node("node-2").unwrap().peer_port)
    );
    let roots = launcher.roots().unwrap();
    assert_eq!(
        roots.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        [Provider::Nitro, Provider::GcpCs]
    );
    assert_ne!(roots[0].1, roots[1].1);
    assert_eq!(
        launcher.roots().unwrap(),
        roots,
        "the same roots on every call"
    );

    // The record keeps each node's provider and the second root.
    let record = launcher.record();
    assert_eq!(record.nodes[1].provider, Provider::GcpCs);
    assert_eq!(record.sim_gcp_ca.as_deref(), Some(launcher.sim_gcp_ca()));
    let again = Launcher::from_record(&record, Options::detached());
    assert_eq!(again.record(), record);
    assert!(!again.node("node-2").unwrap().has_parent());
}
