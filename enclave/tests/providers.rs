//! The `enclave` binary's `--provider`: which options belong to which provider and to the
//! simulator (a wrong combination exits 2 and says why, before anything starts), and the
//! evidence of a simulated Confidential Space node, checked with the production verifier.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::{Command, Output};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("enclave-providers-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn enclave(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enclave"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `args` and expects a usage error whose message contains `says`.
fn refused(args: &[&str], says: &str) {
    let output = enclave(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
}

#[test]
fn options_of_the_other_provider_are_usage_errors() {
    let dir = TempDir::new("usage");
    let (blobs, ca, gcp_ca) = (dir.path("blobs"), dir.path("ca"), dir.path("gcp-ca"));
    let sim = dir.path("sim");
    let run = ["run", "--node-id", "node-1"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        run.iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        // A Nitro node's parent listens and keeps its blobs.
        (
            with(&["--blob-dir", "/nonexistent/blobs"]),
            "only apply with --provider gcp-cs",
        ),
        (
            with(&["--provider", "nitro", "--peer-listen", "127.0.0.1:9000"]),
            "only apply with --provider gcp-cs",
        ),
        // A Confidential Space node has no parent, no vsock, and needs its directory.
        (with(&["--provider", "gcp-cs"]), "needs --blob-dir"),
        (
            with(&[
                "--provider",
                "gcp-cs",
                "--cid",
                "16",
                "--blob-dir",
                "/nonexistent/blobs",
            ]),
            "only apply with --provider nitro",
        ),
        // Simulator options without --sim.
        (
            with(&[
                "--provider",
                "gcp-cs",
                "--blob-dir",
                "/nonexistent/blobs",
                "--sim-gcp-ca",
                "/nonexistent/gcp-ca",
            ]),
            "only apply with --sim",
        ),
        (
            with(&["--launcher-socket", "/run/x.sock"]),
            "only applies with --provider gcp-cs",
        ),
        (with(&["--provider", "sev"]), "unknown provider"),
    ];
    for (args, says) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, says);
    }
    // In simulator mode: each provider needs its own simulated root, and has no launcher.
    let sim_run = |extra: &[&str]| -> Vec<String> {
        ["--sim"]
            .iter()
            .chain(&run)
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            sim_run(&[
                "--provider",
                "gcp-cs",
                "--blob-dir",
                &blobs,
                "--sim-ca",
                &ca,
            ]),
            "needs --sim-gcp-ca",
        ),
        (
            sim_run(&["--sim-dir", &sim, "--sim-gcp-ca", &gcp_ca]),
            "--sim needs --sim-ca",
        ),
        (
            sim_run(&[
                "--provider",
                "gcp-cs",
                "--blob-dir",
                &blobs,
                "--sim-gcp-ca",
                &gcp_ca,
                "--launcher-socket",
                "/run/x.sock",
            ]),
            "does not apply with --sim",
        ),
        (
            sim_run(&[
                "--provider",
                "gcp-cs",
                "--blob-dir",
                &blobs,
                "--sim-dir",
                &sim,
            ]),
            "only apply with --provider nitro",
        ),
    ];
    for (args, says) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, says);
    }
    let out = dir.path("evidence");
    refused(
        &["--sim", "attest", "--provider", "gcp-cs", "--out", &out],
        "needs --sim-gcp-ca",
    );
    refused(
        &[
            "attest",
            "--provider",
            "gcp-cs",
            "--out",
            &out,
            "--sim-gcp-ca",
            &gcp_ca,
        ],
        "only apply with --sim",
    );
    assert!(!std::path::Path::new(&out).exists());
}

#[test]
fn a_simulated_confidential_space_node_attests_with_a_token_bundle() {
    let dir = TempDir::new("attest");
    let (out, root) = (dir.path("bundle.json"), dir.path("root.der"));
    let output = enclave(&[
        "--sim",
        "attest",
        "--provider",
        "gcp-cs",
        "--nonce",
        "0011",
        "--user-data",
        "cafe",
        "--out",
        &out,
        "--sim-gcp-ca",
        &dir.path("gcp-ca"),
        "--sim-root-out",
        &root,
        "--sim-instance",
        "node-3",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bundle = std::fs::read(&out).unwrap();
    assert!(bundle.starts_with(b"{\"v\":1"), "not a bundle");
    let now = std::time::SystemTime::now();
    // Only the simulated root it was written with makes it verify.
    assert!(
        attestation::Verifier::production()
            .verify(&bundle, now)
            .is_err()
    );
    let verifier = attestation::Verifier::production()
        .trust_simulated_gcp_root(&std::fs::read(&root).unwrap(), now)
        .unwrap();
    let verified = verifier.verify(&bundle, now).unwrap();
    assert_eq!(verified.provider(), attestation::Provider::GcpCs);
    let binding = verified.binding();
    assert_eq!(binding.nonce, Some(&[0x00, 0x11][..]));
    assert_eq!(binding.user_data, Some(&[0xca, 0xfe][..]));
    assert!(verified.expires().is_some());
    let workload = attestation::gcp::sim::SimWorkload::of_current_exe("node-3").unwrap();
    assert_eq!(verified.attester_id(), workload.instance_id);
}
