//! A node's identity is what its attestation document proves, not the id it claims: a
//! compromised node that runs the genuine code cannot open a channel as another node, so
//! it can neither fetch nor overwrite that node's escrowed key nor speak in its name.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::nitro::Verifier;
use attestation::nsm::sim::SimMeasurements;
use channel::ChannelError;
use integration_tests::cluster::Cluster;
use integration_tests::impostor::{Impostor, ReleaseOutcome};
use integration_tests::{TempDir, binary};
use sha2::{Digest, Sha256};
use std::process::Command;
use std::time::SystemTime;

#[test]
fn a_compromised_node_cannot_open_channels_as_another_node() {
    let (c, envelope) = Cluster::running(3).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // Control: the compromised node-2, as itself, is accepted by node-3 and gets its own
    // escrowed key back. The component, its evidence and the release request all work;
    // what follows is refused only for the id it claims.
    let itself = Impostor::new(&c, &envelope, "node-2", "node-2").unwrap();
    runtime.block_on(async {
        let mut channel = itself.dial(&c, "node-3").await.unwrap();
        match itself.request_release(&mut channel).await.unwrap() {
            ReleaseOutcome::Released(key) => assert_eq!(key.len(), 32),
            ReleaseOutcome::Other(answer) => panic!("node-2's own key not released: {answer}"),
        }
    });

    // The attack: node-2's genuine code and NSM, dialling node-3's peer port as another
    // node's parent would, with node-1's id in its hello. Then the same against node-1,
    // claiming node-3.
    for (target, claimed) in [("node-3", "node-1"), ("node-1", "node-3")] {
        let mallory = Impostor::new(&c, &envelope, "node-2", claimed).unwrap();
        runtime.block_on(async {
            match mallory.dial(&c, target).await {
                Ok(mut channel) => {
                    // What the attack gets when it is accepted: the claimed node's data key,
                    // which opens all of its sealed state.
                    let got = match mallory.request_release(&mut channel).await {
                        Ok(ReleaseOutcome::Released(key)) => format!(
                            "{claimed}'s escrowed data key ({} bytes, SHA-256 {})",
                            key.len(),
                            hex::encode(Sha256::digest(&key))
                        ),
                        Ok(ReleaseOutcome::Other(answer)) => answer,
                        Err(e) => e,
                    };
                    panic!(
                        "{target} accepted node-2 as {claimed}; a release request claiming \
                         {claimed} got: {got}"
                    );
                }
                Err(ChannelError::PeerRefused(reason)) => {
                    assert!(reason.contains(claimed), "{reason}");
                    assert!(
                        reason.contains("measurements match no accepted set"),
                        "{reason}"
                    );
                    assert!(reason.contains("PCR4"), "{reason}");
                }
                Err(other) => panic!("{target}: unexpected failure: {other}"),
            }
        });
    }

    // The target logged the refusal, keeps running, and still trusts the real nodes.
    let log = c.enclave_log("node-3").unwrap();
    assert!(log.contains("measurements match no accepted set"), "{log}");
    c.wait_until(
        "every node still running with every peer attested",
        integration_tests::cluster::STARTUP,
        |s| {
            integration_tests::cluster::all(s, |s| {
                integration_tests::cluster::running_and_attested(s, 2)
            })
        },
    )
    .unwrap();
}

#[test]
fn sim_instance_is_extended_into_pcr4() {
    let dir = TempDir::new("sim-instance").unwrap();
    let enclave = binary("enclave").unwrap();
    let root = dir.path().join("root.der");
    let attest = |out: &str, extra: &[&str]| {
        Command::new(&enclave)
            .args(["--sim", "attest"])
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--sim-ca")
            .arg(dir.path().join("ca"))
            .arg("--sim-root-out")
            .arg(&root)
            .args(extra)
            .output()
            .unwrap()
    };
    let pcr4 = |out: &str| {
        let now = SystemTime::now();
        let verified = Verifier::aws_nitro()
            .trust_simulated_root(&std::fs::read(&root).unwrap(), now)
            .unwrap()
            .verify(&std::fs::read(dir.path().join(out)).unwrap(), now)
            .unwrap();
        verified.pcr(4).unwrap().to_vec()
    };
    let image = SimMeasurements::of_file(&enclave).unwrap();

    let out = attest("with.cose", &["--sim-instance", "i-0123456789abcdef0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = image
        .clone()
        .with_pcr4(b"i-0123456789abcdef0".to_vec())
        .pcrs()[&4];
    assert_eq!(pcr4("with.cose"), expected.to_vec());

    // Without the flag, `attest` has no instance: PCR4 reads as zeros.
    let out = attest("without.cose", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pcr4("without.cose"), vec![0u8; 48]);

    // The longest instance is accepted, one byte more is a usage error.
    let longest = "i".repeat(256);
    assert!(
        attest("long.cose", &["--sim-instance", &longest])
            .status
            .success()
    );
    let out = attest("too-long.cose", &["--sim-instance", &"i".repeat(257)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("too-long.cose").exists());

    // Without --sim the flag is refused: a Nitro PCR4 comes from the host, not a flag.
    for command in ["attest", "run"] {
        let mut args = vec![command, "--sim-instance", "node-1"];
        args.extend(match command {
            "attest" => ["--out", "x"],
            _ => ["--node-id", "node-1"],
        });
        let out = Command::new(&enclave)
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("only apply with --sim"),
            "{args:?}: {stderr}"
        );
    }
}
