//! A hostile parent routes the operator to a look-alike cluster.
//!
//! The victim's cluster runs under `custody sim up`. The parent host (hostile) starts a
//! genuine `enclave --sim` of the same binary on the same simulated hardware (the
//! victim's simulated CA), with the victim node-1's id, under a manifest of its own: its
//! own operator keys approve it, and it lists the victim operator's PUBLIC key as an
//! operator so that the operator's signed commands are accepted there. A second
//! look-alike node makes a key creation really possible. The parent then routes the
//! operator's connections for node-1 to the look-alike (here: cluster.toml's client
//! address for node-1 points at the look-alike's parent).
//!
//! Every piece of evidence the look-alike presents is genuine; only the manifest it
//! attests to differs. `custody` must refuse it before sending anything, and show it as
//! unverified, naming both manifests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use integration_tests::cluster::{Cluster, STARTUP, all, running_and_attested};
use integration_tests::{TempDir, binary};
use manifest::{OperatorKey, OperatorSignature, SignedManifest};
use serde_json::Value;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Runs `custody args` with its output in files, killed at [`COMMAND_TIMEOUT`].
fn custody(args: &[&str]) -> Output {
    let program = binary("custody").unwrap();
    let scratch = TempDir::new("lookalike-cmd").unwrap();
    let (out, err) = (scratch.path().join("out"), scratch.path().join("err"));
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("custody {args:?} still running after {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = Output {
        status,
        stdout: std::fs::read(&out).unwrap_or_default(),
        stderr: std::fs::read(&err).unwrap_or_default(),
    };
    eprintln!("{}", show(args, &output));
    output
}

fn show(args: &[&str], out: &Output) -> String {
    format!(
        "custody {args:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn utf8(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The victim's cluster, stopped however the test ends.
struct Victim {
    dir: std::path::PathBuf,
    _root: TempDir,
}

impl Victim {
    fn up() -> Self {
        let root = TempDir::new("lookalike-victim").unwrap();
        let dir = root.path().join("cluster");
        let args = ["sim", "up", "--dir", utf8(&dir), "--nodes", "3"];
        let out = custody(&args);
        assert!(out.status.success(), "{}", show(&args, &out));
        Victim { dir, _root: root }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = custody(&["sim", "down", "--dir", utf8(&self.dir)]);
    }
}

fn node<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {status}"))
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {status}"))
}

#[test]
fn custody_refuses_a_lookalike_node_under_another_manifest() {
    let victim = Victim::up();
    let cluster_toml = victim.dir.join("cluster.toml");
    let pinned: toml::Table =
        toml::from_str(&std::fs::read_to_string(&cluster_toml).unwrap()).expect("cluster.toml");
    let pinned_hash = pinned["manifest"]["hash"].as_str().unwrap().to_owned();
    let victim_operator = pinned["operator"]["id"].as_str().unwrap().to_owned();
    let victim_key = victim
        .dir
        .join("operators")
        .join(format!("{victim_operator}.key"));
    let victim_public = client::operator::load(&victim_key)
        .unwrap()
        .public_key_hex();

    // The hostile parent's look-alike: two genuine nodes of the same binary, node-1 and
    // node-2, on the victim's simulated hardware.
    let mut fake = Cluster::new(2).unwrap();
    std::fs::copy(victim.dir.join("sim-ca"), fake.dir.path().join("sim-ca")).unwrap();
    // Its manifest: the harness's own body (same image, same node ids), with operators
    // of the attacker's choosing that include the victim operator's public key, and
    // version 2, so that it even looks like an update of the victim's.
    let mut body: Value = serde_json::from_slice(&fake.manifest_body(2, &[]).unwrap()).unwrap();
    let attackers: Vec<OperatorKey> = (0..2).map(|_| OperatorKey::generate().unwrap()).collect();
    body["operators"] = serde_json::json!([
        {"id": victim_operator, "public_key": victim_public},
        {"id": "attacker-1", "public_key": attackers[0].public_key_hex()},
        {"id": "attacker-2", "public_key": attackers[1].public_key_hex()},
    ]);
    body["threshold"] = 2.into();
    let body = serde_json::to_vec(&body).unwrap();
    let signatures: Vec<OperatorSignature> = attackers
        .iter()
        .enumerate()
        .map(|(i, k)| OperatorSignature {
            operator: format!("attacker-{}", i + 1),
            signature: manifest::sign(&body, k),
        })
        .collect();
    let hostile = SignedManifest::assemble(&body, &signatures).unwrap();
    let hostile_hash = hostile.hash().to_string();
    assert_ne!(hostile_hash, pinned_hash);
    let envelope = hostile.envelope_bytes().to_vec();
    fake.write_manifest(&envelope).unwrap();
    fake.start_all().unwrap();
    fake.wait_until("look-alikes waiting for a manifest", STARTUP, |s| {
        all(s, |s| s.phase == "waiting_for_manifest")
    })
    .unwrap();
    for id in ["node-1", "node-2"] {
        fake.submit_manifest(id, &envelope).unwrap().unwrap();
    }
    fake.wait_until("look-alikes running", STARTUP, |s| {
        all(s, |s| running_and_attested(s, 1))
    })
    .unwrap();

    // The hostile parent routes the operator's node-1 connections to the look-alike.
    let mut routed = pinned.clone();
    let lookalike_port = fake.node("node-1").unwrap().client_port;
    for n in routed["nodes"].as_array_mut().unwrap() {
        if n["id"].as_str() == Some("node-1") {
            n.as_table_mut().unwrap().insert(
                "client".into(),
                format!("127.0.0.1:{lookalike_port}").into(),
            );
        }
    }
    let routed_toml = victim.dir.join("routed.toml");
    std::fs::write(&routed_toml, toml::to_string(&routed).unwrap()).unwrap();
    let routed_toml = utf8(&routed_toml);

    // `key create` through the look-alike is refused, naming the manifests, and the
    // look-alike never received a command.
    let args = [
        "--cluster",
        routed_toml,
        "key",
        "create",
        "--threshold",
        "2",
        "--parties",
        "node-1,node-2",
        "--key-id",
        "stolen",
        "--json",
    ];
    let out = custody(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&args, &out));
    assert!(out.stdout.is_empty(), "{}", show(&args, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("node-1")
            && stderr.contains("not the pinned manifest")
            && stderr.contains(&hostile_hash[..16])
            && stderr.contains(&pinned_hash[..16]),
        "{}",
        show(&args, &out)
    );
    let held = fake.status("node-1").unwrap();
    assert!(held.keys.is_empty(), "the look-alike made a key: {held:?}");
    let log = fake.enclave_log("node-1").unwrap();
    assert!(
        !log.contains("operator command"),
        "the look-alike received a command:\n{log}"
    );

    // `status` shows node-1 unverified, with both manifests named; the real nodes are
    // fine.
    let args = ["--cluster", routed_toml, "status", "--json"];
    let out = custody(&args);
    assert!(out.status.success(), "{}", show(&args, &out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n1 = node(&status, "node-1");
    assert_eq!(n1["phase"], "unverified", "{status}");
    assert_eq!(n1["attested"], false, "{status}");
    let reason = n1["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&hostile_hash[..16]) && reason.contains(&pinned_hash[..16]),
        "{status}"
    );
    for id in ["node-2", "node-3"] {
        assert_eq!(node(&status, id)["phase"], "running", "{status}");
        assert_eq!(node(&status, id)["attested"], true, "{status}");
    }

    // Handing the operator the attacker's manifest does not help either: it is not
    // approved by the pinned operators, so nothing is sent and the pin stays.
    let envelope_path = victim.dir.join("hostile.json");
    std::fs::write(&envelope_path, &envelope).unwrap();
    let args = [
        "--cluster",
        utf8(&cluster_toml),
        "manifest",
        "submit",
        utf8(&envelope_path),
    ];
    let out = custody(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&args, &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not approved by enough of the pinned"),
        "{}",
        show(&args, &out)
    );
    let after: toml::Table =
        toml::from_str(&std::fs::read_to_string(&cluster_toml).unwrap()).unwrap();
    assert_eq!(after["manifest"], pinned["manifest"]);
    let args = ["--cluster", utf8(&cluster_toml), "status", "--json"];
    let out = custody(&args);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    for id in ["node-1", "node-2", "node-3"] {
        assert_eq!(node(&status, id)["phase"], "running", "{status}");
        assert_eq!(node(&status, id)["attested"], true, "{status}");
    }
}
