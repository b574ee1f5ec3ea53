//! The parent cannot alter traffic: bytes flipped in transit between two parents break
//! the connection instead of reaching the enclave.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use integration_tests::cluster::Cluster;
use protocol::operator_api::NodeStatus;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const STARTUP: Duration = Duration::from_secs(40);
/// Offset, in each connection's client-to-server bytes, of the flipped bit: past the TLS
/// handshake (under 1 KB from the client), inside the client's attestation hello (about
/// 4 KB).
const FLIP_AT: usize = 1500;
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicUsize,
    upstream_bytes: AtomicUsize,
    downstream_bytes: AtomicUsize,
    flips: AtomicUsize,
}

/// A TCP relay to `target` that flips one bit of each connection's client-to-server
/// bytes, at offset [`FLIP_AT`]. Stops and joins its threads on drop.
#[derive(Debug)]
struct TamperingRelay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl TamperingRelay {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let thread = std::thread::spawn({
            let (stop, counters) = (stop.clone(), counters.clone());
            move || {
                let mut pipes: Vec<JoinHandle<()>> = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    pipes.retain(|p| !p.is_finished());
                    match listener.accept() {
                        Ok((client, _)) => {
                            let Ok(server) = TcpStream::connect_timeout(&target, POLL * 10) else {
                                continue;
                            };
                            counters.connections.fetch_add(1, Ordering::SeqCst);
                            let flows = [
                                (
                                    client.try_clone().unwrap(),
                                    server.try_clone().unwrap(),
                                    true,
                                ),
                                (server, client, false),
                            ];
                            for (from, to, upstream) in flows {
                                let (stop, counters) = (stop.clone(), counters.clone());
                                pipes.push(std::thread::spawn(move || {
                                    pipe(from, to, upstream, &stop, &counters);
                                }));
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL / 5),
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
                for p in pipes {
                    let _ = p.join();
                }
            }
        });
        TamperingRelay {
            addr,
            stop,
            counters,
            thread: Some(thread),
        }
    }

    fn count(&self, counter: impl Fn(&Counters) -> &AtomicUsize) -> usize {
        counter(&self.counters).load(Ordering::SeqCst)
    }
}

impl Drop for TamperingRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Copies `from` to `to` until either ends or the relay stops; upstream, flips one bit at
/// [`FLIP_AT`].
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    upstream: bool,
    stop: &AtomicBool,
    counters: &Counters,
) {
    from.set_nonblocking(false).unwrap();
    from.set_read_timeout(Some(POLL)).unwrap();
    to.set_write_timeout(Some(POLL * 10)).unwrap();
    let mut seen = 0usize;
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        if upstream && (seen..seen + n).contains(&FLIP_AT) {
            buf[FLIP_AT - seen] ^= 0x01;
            counters.flips.fetch_add(1, Ordering::SeqCst);
        }
        seen += n;
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        let total = if upstream {
            &counters.upstream_bytes
        } else {
            &counters.downstream_bytes
        };
        total.fetch_add(n, Ordering::SeqCst);
    }
    let _ = to.shutdown(Shutdown::Write);
}

type Statuses = [(String, Result<NodeStatus, String>)];

fn status<'a>(statuses: &'a Statuses, id: &str) -> Option<&'a NodeStatus> {
    statuses
        .iter()
        .find(|(n, _)| n == id)
        .and_then(|(_, s)| s.as_ref().ok())
}

/// What `of` last recorded about dialling node-3, when it failed.
fn node3_error<'a>(statuses: &'a Statuses, of: &str) -> Option<&'a str> {
    let peer = status(statuses, of)?.peers.get("node-3")?;
    if peer.attested {
        return None;
    }
    peer.error.as_deref()
}

/// How an altered record surfaces on the dialling side: the receiver could not decrypt
/// it and alerted, or it dropped the connection (a reset can overtake the alert).
fn broken_by_tampering(error: &str) -> bool {
    [
        "BadRecordMac",
        "closed",
        "reset",
        "unexpected end of file",
        "Broken pipe",
    ]
    .iter()
    .any(|e| error.contains(e))
}

#[test]
fn bytes_flipped_between_parents_break_the_connection() {
    let mut c = Cluster::new(3).unwrap();
    let node3 = SocketAddr::from(([127, 0, 0, 1], c.node("node-3").unwrap().peer_port));
    let relay = TamperingRelay::start(node3);

    // Every other node reaches node-3 through the relay.
    let mut body: serde_json::Value =
        serde_json::from_slice(&c.manifest_body(1, &[]).unwrap()).unwrap();
    assert_eq!(body["nodes"][2]["id"], "node-3");
    body["nodes"][2]["address"] = relay.addr.to_string().into();
    let envelope = c.sign(&serde_json::to_vec(&body).unwrap(), 2).unwrap();
    c.write_manifest(&envelope).unwrap();
    c.start_all().unwrap();
    c.wait_until("nodes waiting for a manifest", STARTUP, |s| {
        s.iter()
            .all(|(_, s)| s.as_ref().is_ok_and(|s| s.phase == "waiting_for_manifest"))
    })
    .unwrap();
    for id in ["node-1", "node-2", "node-3"] {
        let answer = c.submit_manifest(id, &envelope).unwrap();
        assert_eq!(answer, Ok("{\"accepted_version\":1}".to_owned()));
    }

    // node-1 and node-2 must stay unable to attest node-3, while every connection that
    // does not cross the relay (node-3 dialling them, and between the two) attests.
    let running = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let check = |s: &Statuses| {
        for (id, s) in s {
            if s.as_ref().is_ok_and(|s| s.phase == "running") {
                running.lock().unwrap().insert(id.clone());
            }
        }
        let attested = |of: &str, peer: &str| {
            status(s, of)
                .and_then(|s| s.peers.get(peer))
                .is_some_and(|p| p.attested)
        };
        ["node-1", "node-2"]
            .iter()
            .all(|id| node3_error(s, id).is_some_and(broken_by_tampering))
            && attested("node-1", "node-2")
            && attested("node-2", "node-1")
            && attested("node-3", "node-1")
            && attested("node-3", "node-2")
    };
    c.wait_until("node-1 and node-2 unable to attest node-3", STARTUP, check)
        .unwrap();
    // And it stays so over further attempts (each node retries every second).
    let flips = relay.count(|c| &c.flips);
    c.wait_until("more connections broken", STARTUP, |s| {
        check(s) && relay.count(|c| &c.flips) >= flips + 4
    })
    .unwrap();

    // A first start needs every peer: node-1 and node-2 never ran, and say why. node-3
    // heard from both directly and created its key, but no peer could take its escrow.
    let running = running.into_inner().unwrap();
    assert!(
        !running.contains("node-1") && !running.contains("node-2"),
        "{running:?}"
    );
    for id in ["node-1", "node-2"] {
        let s = c.status(id).unwrap();
        assert_eq!(s.phase, "waiting_for_provisioning");
        let reason = s.reason.unwrap_or_default();
        assert!(reason.contains("node-3: unreachable"), "{reason}");
        assert_eq!(s.state_created_ms, None);
    }
    let s = c.status("node-3").unwrap();
    assert!(
        !(s.phase == "running" && s.escrow_pending.is_empty()),
        "{s:?}"
    );

    // The receiving enclave saw the altered records: each failure is one of the relay's flips.
    let log = c.enclave_log("node-3").unwrap();
    let decrypt_failures = log
        .lines()
        .filter(|l| l.contains("incoming peer refused") && l.contains("cannot decrypt"))
        .count();
    let flips = relay.count(|c| &c.flips);
    assert!(
        (2..=flips).contains(&decrypt_failures),
        "{decrypt_failures} decryption failures, {flips} flips"
    );
    assert!(flips <= relay.count(|c| &c.connections));
    assert!(relay.count(|c| &c.upstream_bytes) > FLIP_AT);
    assert!(relay.count(|c| &c.downstream_bytes) > 0);
    drop(relay);
}
