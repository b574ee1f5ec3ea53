//! The operator's client `custody`, driven as a subprocess the way an operator would use it,
//! against a simulated cluster of real `enclave` and `parent` processes started by `custody sim
//! up`. Every signature is checked here with `k256` and every address recomputed, independently
//! of the client and of the nodes; refusals (an unknown operator, a node whose measurements do
//! not match) must fail and name their cause.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use integration_tests::cluster::PERMISSIVE_POLICY;
use integration_tests::{TempDir, binary, eth};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::Value;
use sha2::Digest as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest any one `custody` command may take (key creation takes about 30 s, `sim up` and
/// `demo` a little more); past it the command is killed and the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Clusters run one at a time: each is a dozen processes on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `custody args`, killing it at [`COMMAND_TIMEOUT`]. Output goes to files rather than
/// pipes, so processes that `sim up` leaves running in the background can never hold the
/// reading side open.
fn try_custody(args: &[&str]) -> Result<Output, String> {
    let program = binary("custody")?;
    let scratch = TempDir::new("custody-cmd").map_err(|e| format!("temp dir: {e}"))?;
    let out_path = scratch.path().join("stdout");
    let err_path = scratch.path().join("stderr");
    let create = |p: &Path| File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let started = Instant::now();
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "custody {args:?} still running after {COMMAND_TIMEOUT:?}; killed\n\
                 --- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&read(&out_path)),
                String::from_utf8_lossy(&read(&err_path)),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("custody {args:?}: {status} in {:?}", started.elapsed());
    Ok(Output {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

fn custody(args: &[&str]) -> Output {
    try_custody(args).unwrap_or_else(|e| panic!("{e}"))
}

fn show(args: &[&str], out: &Output) -> String {
    format!(
        "custody {args:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a `--json` command that must succeed and returns its one JSON document.
fn json_ok(args: &[&str]) -> Value {
    let out = custody(args);
    assert!(out.status.success(), "{}", show(args, &out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", show(args, &out)))
}

/// Runs a `--json` command that must exit with `code` and returns its one JSON document.
fn json_with_code(args: &[&str], code: i32) -> Value {
    let out = custody(args);
    assert_eq!(out.status.code(), Some(code), "{}", show(args, &out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", show(args, &out)))
}

/// Runs a command that must fail with a non-zero exit status and returns its stderr.
fn refused(args: &[&str]) -> String {
    let out = custody(args);
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "expected a refusal\n{}",
        show(args, &out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("  refused: {}", stderr.trim_end());
    stderr
}

fn utf8(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A cluster started with `custody sim up` in a fresh temporary directory. Dropping it (also
/// when a test fails) runs `custody sim down` and removes the directory; when a test fails, the
/// cluster's log files are printed first.
#[derive(Debug)]
struct Sim {
    /// Field order matters: the directory goes before the turn is handed on.
    root: TempDir,
    dir: PathBuf,
    _turn: MutexGuard<'static, ()>,
}

impl Sim {
    fn up(nodes: u16) -> Self {
        let turn = one_at_a_time();
        let root = TempDir::new("custody").unwrap();
        let sim = Sim {
            dir: root.path().join("cluster"),
            root,
            _turn: turn,
        };
        let nodes = nodes.to_string();
        let args = ["sim", "up", "--dir", utf8(&sim.dir), "--nodes", &nodes];
        let out = custody(&args);
        assert!(out.status.success(), "{}", show(&args, &out));
        sim
    }

    fn dir(&self) -> &str {
        utf8(&self.dir)
    }

    fn cluster_toml(&self) -> PathBuf {
        self.dir.join("cluster.toml")
    }

    /// The cluster file of operator `i` (operator 0's is `cluster.toml`).
    fn operator_toml(&self, i: usize) -> PathBuf {
        if i == 0 {
            self.cluster_toml()
        } else {
            self.dir.join(format!("cluster-operator-{i}.toml"))
        }
    }

    /// Operators 0 and 1 approve the policy `body` with `custody policy approve`, it is
    /// assembled, and `custody policy submit` sends it to every node, which all accept it.
    fn submit_policy(&self, body: &str) {
        let body_path = self.scratch("policy.json");
        std::fs::write(&body_path, body).unwrap();
        let mut approvals = Vec::new();
        for i in 0..2 {
            let key = self.dir.join(format!("operators/operator-{i}.key"));
            let out = self.scratch(&format!("policy-approval-{i}.json"));
            let id = format!("operator-{i}");
            let approved = json_ok(&[
                "--json",
                "policy",
                "approve",
                "--body",
                utf8(&body_path),
                "--key",
                utf8(&key),
                "--id",
                &id,
                "--out",
                utf8(&out),
            ]);
            assert_eq!(approved["operator"], id.as_str(), "{approved}");
            approvals.push(out);
        }
        let envelope = self.scratch("policy-envelope");
        let mut args = vec!["--json", "policy", "assemble", "--body", utf8(&body_path)];
        for a in &approvals {
            args.extend(["--approval", utf8(a)]);
        }
        args.extend(["--out", utf8(&envelope)]);
        let assembled = json_ok(&args);
        assert_eq!(
            assembled["approvals"],
            serde_json::json!(["operator-0", "operator-1"]),
            "{assembled}"
        );
        let cluster = self.cluster_toml();
        let submitted = json_ok(&[
            "--cluster",
            utf8(&cluster),
            "--json",
            "policy",
            "submit",
            utf8(&envelope),
        ]);
        let nodes = submitted["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3, "{submitted}");
        assert!(nodes.iter().all(|n| n["accepted"] == true), "{submitted}");
    }

    /// A scratch path beside the cluster's own files.
    fn scratch(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Writes a copy of `cluster.toml`, changed by `edit`, and returns its path.
    fn edited_copy(&self, name: &str, edit: impl FnOnce(&mut toml::Table)) -> PathBuf {
        let text = std::fs::read_to_string(self.cluster_toml()).unwrap();
        let mut table: toml::Table = toml::from_str(&text).unwrap();
        edit(&mut table);
        let path = self.dir.join(name);
        std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
        path
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_logs(&self.dir);
        }
        match try_custody(&["sim", "down", "--dir", self.dir()]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("{}", show(&["sim", "down"], &out)),
            Err(e) => eprintln!("{e}"),
        }
    }
}

/// Prints the end of every log file under `dir`, for a failing test.
fn print_logs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            print_logs(&path);
        } else if path.extension().is_some_and(|e| {
            ["log", "out", "err", "stdout", "stderr"]
                .iter()
                .any(|x| e == *x)
        }) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines.get(lines.len().saturating_sub(60)..).unwrap_or(&[]);
            eprintln!("===== {} (last {} lines)", path.display(), tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field} in {v}"))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("`{s}` is not hex: {e}"))
}

fn keccak(data: &[u8]) -> [u8; 32] {
    sha3::Keccak256::digest(data).into()
}

/// The Ethereum address of `key` with its EIP-55 checksum casing, computed here.
fn eth_address(key: &VerifyingKey) -> String {
    let point = key.to_encoded_point(false);
    let lower = hex::encode(&keccak(&point.as_bytes()[1..])[12..]);
    let hash = keccak(lower.as_bytes());
    let cased: String = lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
            if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    format!("0x{cased}")
}

/// Checks the addresses reported for `public_key` (compressed SEC1 hex) and returns the key.
fn check_addresses(answer: &Value) -> VerifyingKey {
    // The key's scheme is named, and the addresses are those of an ECDSA key.
    assert_eq!(text(answer, "scheme"), "ecdsa-secp256k1", "{answer}");
    let public = text(answer, "public_key");
    assert_eq!(public.len(), 66, "{answer}");
    let key = VerifyingKey::from_sec1_bytes(&unhex(public)).unwrap();
    let expected = eth_address(&key);
    assert_eq!(
        text(answer, "eth_address").to_lowercase(),
        expected.to_lowercase(),
        "{answer}"
    );
    assert_eq!(
        text(answer, "eth_address"),
        expected,
        "EIP-55 casing: {answer}"
    );
    let btc = text(answer, "btc_address");
    assert!(btc.starts_with("bc1q") && btc.len() == 42, "{answer}");
    key
}

/// Checks a sign answer: it names `public_key` and `digest`, the signature verifies against
/// them, `s` is low, and the recovery id `v` gives back the key.
fn check_signature(answer: &Value, public_key: &str, digest: &[u8; 32]) {
    // The scheme that says how to read r, s and v.
    assert_eq!(text(answer, "scheme"), "ecdsa-secp256k1", "{answer}");
    assert_eq!(text(answer, "public_key"), public_key, "{answer}");
    assert_eq!(unhex(text(answer, "digest")), digest, "{answer}");
    let key = VerifyingKey::from_sec1_bytes(&unhex(public_key)).unwrap();
    let r: [u8; 32] = unhex(text(answer, "r")).try_into().unwrap();
    let s: [u8; 32] = unhex(text(answer, "s")).try_into().unwrap();
    let signature = Signature::from_scalars(r, s).unwrap();
    assert!(signature.normalize_s().is_none(), "high s: {answer}");
    key.verify_prehash(digest, &signature)
        .unwrap_or_else(|e| panic!("signature does not verify: {e}: {answer}"));
    let v = answer["v"]
        .as_u64()
        .unwrap_or_else(|| panic!("v is not a number: {answer}"));
    let recovered = VerifyingKey::recover_from_prehash(
        digest,
        &signature,
        RecoveryId::from_byte(u8::try_from(v).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(recovered, key, "v does not recover the key: {answer}");
}

/// `custody verify` on a signature answer, with `s` replaced when given; returns the exit code.
fn custody_verify(answer: &Value, s: Option<&str>) -> i32 {
    let args = [
        "verify",
        "--public-key",
        text(answer, "public_key"),
        "--digest",
        text(answer, "digest"),
        "--r",
        text(answer, "r"),
        "--s",
        s.unwrap_or(text(answer, "s")),
    ];
    let out = custody(&args);
    out.status
        .code()
        .unwrap_or_else(|| panic!("{}", show(&args, &out)))
}

fn node<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {status}"))
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {status}"))
}

fn assert_healthy(status: &Value, id: &str) {
    let n = node(status, id);
    assert_eq!(n["phase"], "running", "{id}: {status}");
    assert_eq!(n["attested"], true, "{id}: {status}");
    assert!(n["error"].is_null(), "{id}: {status}");
    let pcr0 = text(n, "pcr0");
    assert!(
        pcr0.len() == 96 && pcr0.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}: {status}"
    );
}

#[test]
fn operator_drives_a_cluster_through_custody_and_refusals_name_their_cause() {
    let sim = Sim::up(3);
    let cluster = sim.cluster_toml();
    let cluster = utf8(&cluster);

    // Every node runs and proves the expected measurements.
    let status = json_ok(&["--cluster", cluster, "status", "--json"]);
    assert_eq!(
        status["nodes"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    for id in ["node-1", "node-2", "node-3"] {
        assert_healthy(&status, id);
    }

    // A 2-of-3 key; it needs two operators (the manifest's K): operator-0 asks, the
    // request waits (exit status 3), operator-1 approves it with its own cluster file.
    // Its addresses are recomputed here.
    let asked = json_with_code(
        &[
            "--cluster",
            cluster,
            "key",
            "create",
            "--threshold",
            "2",
            "--key-id",
            "treasury",
            "--json",
        ],
        3,
    );
    assert_eq!(asked["status"], "pending", "{asked}");
    assert_eq!(
        (&asked["approvals"], &asked["approvals_needed"]),
        (&1.into(), &2.into()),
        "{asked}"
    );
    let operator_1 = sim.operator_toml(1);
    let created = json_ok(&[
        "--cluster",
        utf8(&operator_1),
        "request",
        "approve",
        text(&asked, "request_id"),
        "--json",
    ]);
    assert_eq!(created["status"], "created", "{created}");
    eprintln!("created: {created}");
    assert_eq!(text(&created, "key_id"), "treasury", "{created}");
    let master_key = check_addresses(&created);
    let master = text(&created, "public_key").to_owned();
    // The parties and threshold the nodes report, each of which confirmed the key; every
    // node's status lists it the same way.
    assert_eq!(created["threshold"], 2, "{created}");
    assert_eq!(
        created["parties"],
        serde_json::json!(["node-1", "node-2", "node-3"]),
        "{created}"
    );
    let status = json_ok(&["--cluster", cluster, "status", "--json"]);
    for id in ["node-1", "node-2", "node-3"] {
        let keys = node(&status, id)["keys"].as_array().unwrap().clone();
        assert_eq!(
            keys,
            [serde_json::json!({
                "key_id": "treasury",
                "scheme": "ecdsa-secp256k1",
                "public_key": master,
                "parties": ["node-1", "node-2", "node-3"],
                "threshold": 2,
            })],
            "{id}: {status}"
        );
        assert_eq!(node(&status, id)["key_count"], 1, "{id}: {status}");
    }

    // No policy yet: the nodes refuse every signature, and say why.
    let digest: [u8; 32] = sha2::Sha256::digest(b"payment 1").into();
    let early = json_with_code(
        &[
            "--cluster",
            cluster,
            "sign",
            "--key",
            "treasury",
            "--digest",
            &hex::encode(digest),
            "--json",
        ],
        1,
    );
    assert_eq!(early["status"], "refused", "{early}");
    assert!(text(&early, "reason").contains("no policy"), "{early}");

    // The operators' policy: digests and ether transfers with one approval.
    sim.submit_policy(PERMISSIVE_POLICY);

    // A digest, signed by the default signing set.
    let signed = json_ok(&[
        "--cluster",
        cluster,
        "sign",
        "--key",
        "treasury",
        "--digest",
        &hex::encode(digest),
        "--json",
    ]);
    check_signature(&signed, &master, &digest);

    // `custody verify` agrees, and refuses the same signature with one bit of s flipped.
    assert_eq!(custody_verify(&signed, None), 0, "{signed}");
    let mut s = unhex(text(&signed, "s"));
    *s.last_mut().unwrap() ^= 1;
    assert_eq!(
        custody_verify(&signed, Some(&hex::encode(s))),
        1,
        "{signed}"
    );

    // An Ethereum transaction at a derived path: hashed with Keccak-256 by the nodes,
    // signed by the child key, which the signed transaction's sender must be.
    let tx = eth::transfer(0, 1_000_000_000_000_000_000);
    let derived = json_ok(&[
        "--cluster",
        cluster,
        "sign",
        "--key",
        "treasury",
        "--eth-tx",
        &hex::encode(&tx),
        "--path",
        "m/0/1",
        "--json",
    ]);
    let child = text(&derived, "public_key").to_owned();
    assert_ne!(child, master, "m/0/1 signed with the master key: {derived}");
    let child_key = VerifyingKey::from_sec1_bytes(&unhex(&child)).unwrap();
    assert_ne!(child_key, master_key);
    check_signature(&derived, &child, &keccak(&tx));
    eth::check_signed_tx(&derived, &eth_address(&child_key)).unwrap();
    assert_eq!(custody_verify(&derived, None), 0, "{derived}");

    // node-2's enclave dies; it is reported as such, comes back, and signs again.
    let out = custody(&["sim", "kill", "--dir", sim.dir(), "node-2"]);
    assert!(out.status.success(), "{}", show(&["sim", "kill"], &out));
    let status = json_ok(&["--cluster", cluster, "status", "--json"]);
    eprintln!("  after the kill: {status}");
    let n2 = node(&status, "node-2");
    assert!(
        n2["phase"] != "running" || !n2["error"].is_null(),
        "a killed node reported healthy: {status}"
    );
    let out = custody(&["sim", "restart", "--dir", sim.dir(), "node-2"]);
    assert!(out.status.success(), "{}", show(&["sim", "restart"], &out));
    let status = json_ok(&["--cluster", cluster, "status", "--json"]);
    assert_healthy(&status, "node-2");
    // Asked of node-2, which then signs (the node asked is always a signer).
    let digest: [u8; 32] = sha2::Sha256::digest(b"payment 2, after a restart").into();
    let signed = json_ok(&[
        "--cluster",
        cluster,
        "sign",
        "--key",
        "treasury",
        "--digest",
        &hex::encode(digest),
        "--node",
        "node-2",
        "--json",
    ]);
    check_signature(&signed, &master, &digest);
    assert!(
        signed["signers"]
            .as_array()
            .is_some_and(|s| s.iter().any(|n| n == "node-2")),
        "{signed}"
    );

    // A fresh attestation document from node-1 carries the caller's nonce and node-1's PCR0.
    let nonce = "a1b2c3d4e5f60718";
    let doc = sim.scratch("node-1.cose");
    let args = [
        "--cluster",
        cluster,
        "attest",
        "node-1",
        "--nonce",
        nonce,
        "--out",
        utf8(&doc),
    ];
    let out = custody(&args);
    assert!(out.status.success(), "{}", show(&args, &out));
    assert!(std::fs::metadata(&doc).unwrap().len() > 0, "empty document");
    let attest = binary("attest").unwrap();
    let inspected = Command::new(attest)
        .arg("inspect")
        .arg(&doc)
        .output()
        .unwrap();
    assert!(
        inspected.status.success(),
        "attest inspect: {}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let report: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(report["nonce"], nonce, "{report}");
    assert_eq!(
        report["pcrs"]["0"],
        node(&status, "node-1")["pcr0"],
        "{report}"
    );

    // An operator key the manifest does not list: its commands are refused by the nodes.
    let intruder_key = sim.scratch("operator-9.key");
    let made = json_ok(&[
        "operator",
        "new",
        "--out",
        utf8(&intruder_key),
        "--id",
        "operator-9",
        "--json",
    ]);
    assert_eq!(text(&made, "id"), "operator-9", "{made}");
    assert!(!text(&made, "public_key").is_empty(), "{made}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&intruder_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "operator key file mode {mode:o}");
    }
    let intruder = sim.edited_copy("intruder.toml", |t| {
        let operator = t["operator"].as_table_mut().unwrap();
        operator.insert("id".into(), "operator-9".into());
        operator.insert("key_file".into(), utf8(&intruder_key).into());
    });
    let err = refused(&[
        "--cluster",
        utf8(&intruder),
        "key",
        "create",
        "--threshold",
        "2",
        "--key-id",
        "intruder",
        "--json",
    ]);
    assert!(err.contains("not an operator"), "stderr: {err}");

    // node-1 expected to run other code: its attestation no longer verifies, the others' do,
    // and the client refuses to ask node-1 for a signature.
    let suspicious = sim.edited_copy("wrong-pcr0.toml", |t| {
        let node1 = t["nodes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|n| n["id"].as_str() == Some("node-1"))
            .unwrap();
        let measurements = node1["measurements"].as_table_mut().unwrap();
        assert!(measurements.contains_key("0"), "{measurements}");
        measurements.insert("0".into(), "0".repeat(96).into());
    });
    let suspicious = utf8(&suspicious);
    let status = json_ok(&["--cluster", suspicious, "status", "--json"]);
    eprintln!("  with a wrong PCR0 for node-1: {status}");
    let n1 = node(&status, "node-1");
    assert_eq!(n1["attested"], false, "{status}");
    assert!(
        n1["error"].as_str().is_some_and(|e| !e.is_empty()),
        "no reason given: {status}"
    );
    assert_healthy(&status, "node-2");
    assert_healthy(&status, "node-3");
    let err = refused(&[
        "--cluster",
        suspicious,
        "sign",
        "--key",
        "treasury",
        "--digest",
        &hex::encode(digest),
        "--node",
        "node-1",
        "--json",
    ]);
    assert!(err.contains("node-1"), "stderr: {err}");

    // A file that pins only the image every node runs (PCR0-2, no PCR4): one node's
    // document would match every entry, so a compromised node could answer for another.
    // custody refuses the file before it reaches any node.
    let shared = sim.edited_copy("shared-image.toml", |t| {
        for n in t["nodes"].as_array_mut().unwrap() {
            let measurements = n["measurements"].as_table_mut().unwrap();
            assert!(measurements.remove("4").is_some(), "{measurements}");
        }
    });
    for args in [
        &["status", "--json"][..],
        &[
            "key",
            "create",
            "--threshold",
            "2",
            "--key-id",
            "spare",
            "--json",
        ],
    ] {
        let err = refused(&[&["--cluster", utf8(&shared)][..], args].concat());
        assert!(
            err.contains("node-1 and node-2") && err.contains("could match both"),
            "stderr: {err}"
        );
    }

    // Stopping twice is fine; a stopped cluster's status still answers, naming every node
    // as unreachable.
    for _ in 0..2 {
        let out = custody(&["sim", "down", "--dir", sim.dir()]);
        assert!(out.status.success(), "{}", show(&["sim", "down"], &out));
    }
    let status = json_ok(&["--cluster", cluster, "status", "--json"]);
    eprintln!("  after sim down: {status}");
    for id in ["node-1", "node-2", "node-3"] {
        let n = node(&status, id);
        assert_eq!(n["attested"], false, "{id}: {status}");
        assert!(
            n["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{id}: {status}"
        );
    }
}

#[test]
fn demo_creates_a_key_and_signs_with_a_signature_that_verifies() {
    let _turn = one_at_a_time();
    let answer = json_ok(&["demo", "--nodes", "3", "--threshold", "2", "--json"]);
    eprintln!("demo: {answer}");
    check_addresses(&answer);
    let public = text(&answer, "public_key").to_owned();
    let address = text(&answer, "eth_address").to_owned();
    // Before its policy, a payment is refused; under it the small one is signed, one to an
    // unlisted address refused, the large one pending until a second operator approves.
    assert_eq!(answer["before_policy"]["status"], "refused", "{answer}");
    assert_eq!(answer["refused"]["status"], "refused", "{answer}");
    assert_eq!(answer["pending"]["status"], "pending", "{answer}");
    assert_eq!(answer["pending"]["approvals_needed"], 2, "{answer}");
    for signed in ["signed", "approved"] {
        let signed = &answer[signed];
        assert_eq!(signed["status"], "signed", "{answer}");
        let digest: [u8; 32] = unhex(text(signed, "digest")).try_into().unwrap();
        check_signature(signed, &public, &digest);
        // Checked independently: the signed transaction spends from the key's address.
        integration_tests::eth::check_signed_tx(signed, &address)
            .unwrap_or_else(|e| panic!("{e}: {answer}"));
    }
    assert!(answer["timings_ms"].is_object(), "{answer}");
}

/// The manifest version `cluster.toml` pins.
fn pinned_version(sim: &Sim) -> i64 {
    let text = std::fs::read_to_string(sim.cluster_toml()).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    table["manifest"]["version"].as_integer().unwrap()
}

/// Operators approve a new manifest version with `custody manifest`, and every node takes
/// it; one approval short of the threshold, or the same version again, is refused.
#[test]
fn operators_approve_and_submit_a_new_manifest() {
    let sim = Sim::up(3);
    let cluster = sim.cluster_toml();
    let cluster = utf8(&cluster);
    // The body of the manifest `sim up` submitted, with the next version.
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(sim.dir.join("manifest.json")).unwrap()).unwrap();
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD
        .decode(text(&envelope, "manifest"))
        .unwrap();
    let mut body: Value = serde_json::from_slice(&body).unwrap();
    body["version"] = 2.into();
    let body_path = sim.scratch("body-v2.json");
    std::fs::write(&body_path, serde_json::to_vec(&body).unwrap()).unwrap();

    let mut approvals = Vec::new();
    for i in 0..2 {
        let key = sim.dir.join(format!("operators/operator-{i}.key"));
        let out = sim.scratch(&format!("approval-{i}.json"));
        let approved = json_ok(&[
            "--json",
            "manifest",
            "approve",
            "--body",
            utf8(&body_path),
            "--key",
            utf8(&key),
            "--id",
            &format!("operator-{i}"),
            "--out",
            utf8(&out),
        ]);
        assert_eq!(approved["version"], 2);
        approvals.push(out);
    }
    let assemble = |approvals: &[PathBuf], out: &Path| {
        let mut args = vec!["--json", "manifest", "assemble", "--body", utf8(&body_path)];
        for a in approvals {
            args.extend(["--approval", utf8(a)]);
        }
        args.extend(["--out", utf8(out)]);
        json_ok(&args)
    };

    // One approval is not enough (K = 2): every node refuses it.
    let short = sim.scratch("envelope-short.json");
    let assembled = assemble(&approvals[..1], &short);
    assert_eq!(assembled["approved_by_its_own_operators"], false);
    let stderr_or_out = custody(&[
        "--cluster",
        cluster,
        "--json",
        "manifest",
        "submit",
        utf8(&short),
    ]);
    assert_eq!(stderr_or_out.status.code(), Some(1));
    let answer: Value = serde_json::from_slice(&stderr_or_out.stdout).unwrap();
    assert!(
        answer["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["accepted"] == false),
        "{answer}"
    );

    // Refused before it was sent: the pin stays at version 1.
    assert_eq!(pinned_version(&sim), 1);
    let full = sim.scratch("envelope.json");
    assert_eq!(
        assemble(&approvals, &full)["approved_by_its_own_operators"],
        true
    );
    let submitted = json_ok(&[
        "--cluster",
        cluster,
        "--json",
        "manifest",
        "submit",
        utf8(&full),
    ]);
    let nodes = submitted["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["accepted"] == true), "{submitted}");
    // Every node took it: the pin follows.
    assert_eq!(pinned_version(&sim), 2);
    assert_eq!(submitted["pin"]["moved"], true, "{submitted}");
    // The same version again is not an update.
    let args = [
        "--cluster",
        cluster,
        "manifest",
        "submit",
        utf8(&full),
        "--node",
        "node-2",
    ];
    let again = custody(&args);
    assert_eq!(again.status.code(), Some(1), "{}", show(&args, &again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("not higher"),
        "{}",
        show(&args, &again)
    );
    // Every node runs under the new manifest with its peers attested.
    let status = json_ok(&["--cluster", cluster, "--json", "status"]);
    for id in ["node-1", "node-2", "node-3"] {
        assert_healthy(&status, id);
    }
}
