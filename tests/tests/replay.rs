//! A peer that replays genuine evidence from another connection is refused, through the
//! real parent and node processes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::Verifier;
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use attestation::nsm::{AttestationRequest, Nsm};
use channel::{ChannelContext, PeerTrust, TlsIdentity};
use integration_tests::cluster::Cluster;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[test]
fn evidence_replayed_from_another_connection_is_refused() {
    let (c, _) = Cluster::running(3).unwrap();
    let hash: [u8; 32] = hex::decode(c.status("node-1").unwrap().manifest_hash.unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let now = SystemTime::now();

    // Someone holding the simulator's root can produce genuine documents for the real
    // binary (in simulator mode that is the whole trust root); what it cannot do is make
    // an old document fit a new connection.
    let ca = SimCa::load_or_create(&c.dir.path().join("sim-ca"), now).unwrap();
    let measurements = SimMeasurements::of_file(&c.nodes()[1].enclave_binary)
        .unwrap()
        .with_pcr4(b"node-2".to_vec());
    let nsm = Arc::new(SimNsm::new(&ca, &measurements, now).unwrap());
    let trust = PeerTrust {
        manifest_hash: hash,
        peers: BTreeMap::new(),
        verifier: Verifier::aws_nitro()
            .trust_simulated_root(ca.root_der(), now)
            .unwrap(),
        max_evidence_age: Duration::from_secs(60),
        allow_debug: false,
    };
    let identity = Arc::new(TlsIdentity::generate("node-2", now).unwrap());
    let mallory = ChannelContext::new("node-2".into(), identity, nsm.clone(), trust).unwrap();
    let document = |nonce: &[u8]| {
        nsm.attest(&AttestationRequest {
            user_data: Some(hash.to_vec()),
            nonce: Some(nonce.to_vec()),
            public_key: Some(mallory.tls_spki().to_vec()),
        })
        .unwrap()
    };
    let peer_port = c.node("node-1").unwrap().peer_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dial = || async {
        tokio::net::TcpStream::connect(("127.0.0.1", peer_port))
            .await
            .unwrap()
    };

    runtime.block_on(async {
        // A document made for the connection it travels on is accepted (the check below
        // is not refusing everything this peer sends).
        let mut captured = Vec::new();
        let verdict = mallory
            .connect_sending(dial().await, |exporter| {
                captured = document(exporter);
                captured.clone()
            })
            .await
            .unwrap();
        assert_eq!(verdict, Ok(()));

        // The same genuine document replayed on a new connection: refused for its nonce.
        let verdict = mallory
            .connect_sending(dial().await, |_| captured.clone())
            .await
            .unwrap();
        let reason = verdict.unwrap_err();
        assert!(reason.contains("nonce"), "{reason}");

        // And a document made for some other value than this connection's exporter.
        let verdict = mallory
            .connect_sending(dial().await, |_| document(&[0xee; 32]))
            .await
            .unwrap();
        assert!(verdict.unwrap_err().contains("nonce"));
    });
    // The node logged the refusals and kept running.
    assert_eq!(c.status("node-1").unwrap().phase, "running");
}
