//! A node's audit log in a whole in-process cluster ([`support::Cluster`]), on a paused
//! clock: it survives restarts, its export verifies under the cluster's simulated root as
//! an auditor checks it, and a parent that drops or replays a sealed segment stops the
//! node's start, with the reason.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
mod support;

use audit::{Event, segment_name, verify_export};
use enclave::operator_api::{Answer, AuditPage, NodeStatus, OperatorRequest};
use enclave::sealed::BlobStore;
use std::time::Duration;
use support::Cluster;

const SETTLE: Duration = Duration::from_secs(120);

fn running_and_attested(status: &NodeStatus, peers: usize) -> bool {
    status.phase == "running"
        && status.escrow_pending.is_empty()
        && status.peers.len() == peers
        && status.peers.values().all(|p| p.attested)
}

async fn three_running() -> Cluster {
    let mut c = Cluster::new(3).await;
    for id in ["node-1", "node-2", "node-3"] {
        c.start(id);
    }
    c.wait_until("every node runs", SETTLE, |_, s| running_and_attested(s, 2))
        .await;
    c
}

async fn restart(c: &mut Cluster, id: &str) {
    c.stop(id).await;
    c.start(id);
    c.wait_until(&format!("{id} back"), SETTLE, |n, s| {
        n != id || s.phase == "running"
    })
    .await;
}

async fn page(c: &Cluster, id: &str, from: u64) -> AuditPage {
    match c
        .ask(id, move |_| OperatorRequest::AuditExport { from })
        .await
        .unwrap()
    {
        Answer::Json(json) => serde_json::from_str(&json).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// Node `id`'s export, fetched page by page as `custody audit export` fetches it.
async fn export(c: &Cluster, id: &str) -> String {
    let mut first = page(c, id, 0).await;
    let mut text = first.header.take().unwrap();
    text.push('\n');
    let mut page_now = first;
    loop {
        for line in &page_now.entries {
            text.push_str(line);
            text.push('\n');
        }
        match page_now.next {
            Some(next) => page_now = page(c, id, next).await,
            None => return text,
        }
    }
}

fn verify(c: &Cluster, id: &str, text: &str) -> Result<audit::VerifiedExport, audit::AuditError> {
    let sets = c.manifest.node(id).unwrap().measurement_sets().unwrap();
    verify_export(text, c.verifier(), Some(&sets))
}

fn events(text: &str) -> Vec<Event> {
    text.lines()
        .skip(1)
        .map(|line| audit::Entry::parse(line).unwrap().event().clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_nodes_audit_log_survives_restarts_and_its_export_verifies() {
    let mut c = three_running().await;
    let first = export(&c, "node-2").await;
    let verified = verify(&c, "node-2", &first).unwrap();
    assert_eq!(verified.node().as_str(), "node-2");
    assert_eq!(verified.count(), 1);
    assert_eq!(verified.manifest_hash(), &c.manifest.hash());
    let boot = Event::Boot {
        manifest_version: Some(1),
        manifest_hash: Some(*c.manifest.hash().as_bytes()),
    };
    assert_eq!(events(&first), vec![boot.clone()]);

    restart(&mut c, "node-2").await;
    restart(&mut c, "node-2").await;
    let later = export(&c, "node-2").await;
    let verified_later = verify(&c, "node-2", &later).unwrap();
    assert_eq!(verified_later.count(), 3);
    // The same key, and the same first entry: the log continued, it did not start again.
    assert_eq!(verified_later.public_key(), verified.public_key());
    assert_eq!(later.lines().nth(1), first.lines().nth(1));
    assert_eq!(events(&later), vec![boot.clone(), boot.clone(), boot]);
    // Another node's export is its own, under its own key.
    let other = export(&c, "node-3").await;
    let verified_other = verify(&c, "node-3", &other).unwrap();
    assert_ne!(verified_other.public_key(), verified.public_key());
    // Under another node's measurements, node-2's export is refused.
    assert!(verify(&c, "node-3", &later).is_err());

    // A removed line, anywhere, is refused, with the line at fault.
    let lines: Vec<&str> = later.lines().collect();
    for removed in 1..lines.len() {
        let mut kept = lines.clone();
        kept.remove(removed);
        let text = format!("{}\n", kept.join("\n"));
        let err = verify(&c, "node-2", &text).unwrap_err();
        assert!(
            matches!(err, audit::AuditError::Export { .. }),
            "line {removed}: {err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_parent_that_drops_or_replays_a_segment_stops_the_nodes_start() {
    let mut c = three_running().await;
    let segment = segment_name(0);

    // node-2's parent drops the newest (here the only) segment.
    c.stop("node-2").await;
    c.blobs("node-2").delete(&segment).await.unwrap();
    c.start("node-2");
    c.wait_until("node-2 refuses its log", SETTLE, |id, s| {
        id != "node-2"
            || (s.phase == "failed"
                && s.reason.as_deref().is_some_and(|r| {
                    r.contains("sealed audit log refused")
                        && r.contains(&segment)
                        && r.contains("does not have it")
                }))
    })
    .await;

    // node-3's parent replays an older copy of the segment, from before a restart.
    let older = c.blobs("node-3").get(&segment).await.unwrap().unwrap();
    restart(&mut c, "node-3").await;
    c.stop("node-3").await;
    c.blobs("node-3").put(&segment, older).await.unwrap();
    c.start("node-3");
    c.wait_until("node-3 refuses its log", SETTLE, |id, s| {
        id != "node-3"
            || (s.phase == "failed"
                && s.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("audit log refused") && r.contains("rolled back")))
    })
    .await;
    // Nothing is exported from a node that did not start.
    assert!(matches!(
        c.ask("node-3", |_| OperatorRequest::AuditExport { from: 0 })
            .await
            .unwrap(),
        Answer::Refused(_)
    ));
}
