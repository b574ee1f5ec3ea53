//! The real `parent` binary in simulator mode, with the test playing the enclave (Unix
//! sockets standing for vsock), peers and operators.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use transport::blob::{ErrorKind, MAX_BLOB_LEN, MAX_FRAME_LEN, Request, Response};
use transport::connect::{HeaderError, request};
use transport::frame::{read_frame, write_frame};
use transport::ports::{NODE_CLIENT, NODE_PEER, NODE_STATUS, PARENT_BLOBS, PARENT_OUTBOUND};
use transport::{Backend, PARENT_CID, Stream, VsockAddr};

const ENCLAVE_CID: u32 = 16;
const WAIT: Duration = Duration::from_secs(20);

/// A directory for one test: simulator sockets, blobs, manifest. Removed on drop.
struct Env {
    root: PathBuf,
}

impl Env {
    fn new(name: &str, nodes: &[(&str, String)]) -> Env {
        static N: AtomicU64 = AtomicU64::new(0);
        // Short: Unix socket paths are limited to 108 bytes.
        let root = std::env::temp_dir().join(format!(
            "pt-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sim")).unwrap();
        std::fs::write(root.join("manifest.json"), manifest(nodes)).unwrap();
        Env { root }
    }

    fn sim(&self) -> PathBuf {
        self.root.join("sim")
    }

    fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    fn backend(&self) -> Backend {
        Backend::Unix { dir: self.sim() }
    }

    fn start(&self, extra: &[&str]) -> Parent {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parent"));
        command
            .args(["--node-id", "node-1"])
            .args(["--enclave-cid", &ENCLAVE_CID.to_string()])
            .arg("--manifest")
            .arg(self.root.join("manifest.json"))
            .arg("--blob-dir")
            .arg(self.blobs())
            .arg("--sim-dir")
            .arg(self.sim())
            .args(["--peer-listen", "127.0.0.1:0"])
            .args(["--client-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .args(extra);
        Parent::spawn(command)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A structurally valid manifest envelope (the parent checks no signature): one signed
/// image, a PCR4 per node.
fn manifest(nodes: &[(&str, String)]) -> String {
    let pcr8 = "00".repeat(48);
    let nodes: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, (id, address))| {
            serde_json::json!({
                "id": id, "provider": "sim", "address": address,
                "measurements": [{ "8": pcr8, "4": format!("{i:096x}") }],
            })
        })
        .collect();
    let body = serde_json::json!({
        "version": 1,
        "threshold": 1,
        "operators": [{ "id": "op-1", "public_key": "11".repeat(32) }],
        "nodes": nodes,
    });
    serde_json::json!({
        "manifest": base64(body.to_string().as_bytes()),
        "signatures": [],
    })
    .to_string()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The running binary; killed on drop, so that a failing test leaves no process.
struct Parent {
    child: Child,
    logs: Arc<Mutex<Vec<Value>>>,
}

impl Parent {
    fn spawn(mut command: Command) -> Parent {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lock().unwrap().push(value);
            }
        });
        Parent { child, logs }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// The first log event with this message (and `kind`, if given).
    async fn wait_log(&mut self, message: &str, kind: Option<&str>) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.logs.lock().unwrap().iter().find_map(|v| {
                let matches = v["message"] == message && kind.is_none_or(|k| v["kind"] == k);
                matches.then(|| v.clone())
            });
            if let Some(v) = found {
                return v;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("parent exited ({status}) before logging {message:?}");
            }
            assert!(Instant::now() < deadline, "no {message:?} log line");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for readiness and returns the peer, client and admin addresses.
    async fn ready(&mut self) -> (SocketAddr, SocketAddr, SocketAddr) {
        self.wait_log("ready", None).await;
        let mut addrs = Vec::new();
        for kind in ["peer", "client", "admin"] {
            let line = self.wait_log("listening", Some(kind)).await;
            addrs.push(line["addr"].as_str().unwrap().parse().unwrap());
        }
        (addrs[0], addrs[1], addrs[2])
    }

    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "parent still running");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            for line in self.logs.lock().unwrap().iter() {
                eprintln!("parent: {line}");
            }
        }
    }
}

/// A task playing part of the enclave; stopped (and its socket removed) on drop.
struct Service(JoinHandle<()>);

impl Drop for Service {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The enclave's side of a port: every connection echoes what it receives.
async fn echo_enclave(backend: &Backend, port: u32) -> Service {
    let listener = backend
        .bind(VsockAddr::new(ENCLAVE_CID, port))
        .await
        .unwrap();
    Service(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo(stream));
        }
    }))
}

async fn echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(stream: S) {
    let (mut r, mut w) = tokio::io::split(stream);
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

/// The enclave's status port: writes `line` to every connection.
async fn status_enclave(backend: &Backend, line: &'static str) -> Service {
    let listener = backend
        .bind(VsockAddr::new(ENCLAVE_CID, NODE_STATUS))
        .await
        .unwrap();
    Service(tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(line.as_bytes()).await;
        }
    }))
}

async fn tcp_echo_server() -> (SocketAddr, Service) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo(stream));
        }
    });
    (addr, Service(task))
}

async fn http(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
}

async fn metric(admin: SocketAddr, series: &str) -> u64 {
    let (status, body) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let prefix = format!("{series} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .unwrap()
}

/// Polls a metric until it has the expected value.
async fn wait_metric(admin: SocketAddr, series: &str, expected: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = metric(admin, series).await;
        if value == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `data` and half-closes, while reading everything back.
async fn round_trip(stream: TcpStream, data: &[u8]) -> Vec<u8> {
    let (mut r, mut w) = stream.into_split();
    let data = data.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    back
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn ping(stream: &mut TcpStream, byte: u8) {
    stream.write_all(&[byte]).await.unwrap();
    let mut b = [0u8; 1];
    stream.read_exact(&mut b).await.unwrap();
    assert_eq!(b, [byte]);
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_connections_reach_the_enclave_intact_and_are_counted() {
    let env = Env::new("inbound", &[("node-1", "127.0.0.1:1".into())]);
    let _peer_port = echo_enclave(&env.backend(), NODE_PEER).await;
    let client_port = env
        .backend()
        .bind(VsockAddr::new(ENCLAVE_CID, NODE_CLIENT))
        .await
        .unwrap();
    let mut parent = env.start(&[]);
    let (peer, client, admin) = parent.ready().await;

    // 1 MiB through the peer port and back, with the client's half-close propagated
    // to the enclave and the enclave's back to the client.
    let data = pattern(1 << 20);
    let back = round_trip(TcpStream::connect(peer).await.unwrap(), &data).await;
    assert!(back == data, "bytes changed in transit");

    // The client port leads to the enclave's client port.
    let mut c = TcpStream::connect(client).await.unwrap();
    let (mut from_parent, _) = client_port.accept().await.unwrap();
    from_parent.write_all(b"client port\n").await.unwrap();
    let mut got = [0u8; 12];
    c.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"client port\n");
    drop((c, from_parent));

    wait_metric(admin, "parent_connections_active{kind=\"peer\"}", 0).await;
    wait_metric(admin, "parent_connections_active{kind=\"client\"}", 0).await;
    assert_eq!(
        metric(admin, "parent_connections_total{kind=\"peer\"}").await,
        1
    );
    assert_eq!(
        metric(admin, "parent_connections_total{kind=\"client\"}").await,
        1
    );
    let len = data.len() as u64;
    assert_eq!(
        metric(
            admin,
            "parent_bytes_relayed_total{direction=\"to_enclave\"}"
        )
        .await,
        len
    );
    assert_eq!(
        metric(
            admin,
            "parent_bytes_relayed_total{direction=\"from_enclave\"}"
        )
        .await,
        len + 12
    );
    let closed = parent.wait_log("connection closed", Some("peer")).await;
    assert_eq!(closed["to_enclave"], len);
    assert_eq!(closed["from_enclave"], len);
    assert!(closed["duration_ms"].is_u64());
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_connections_close_when_the_enclave_is_absent() {
    let env = Env::new("absent", &[("node-1", "127.0.0.1:1".into())]);
    let mut parent = env.start(&[]);
    let (peer, _, admin) = parent.ready().await;
    let mut s = TcpStream::connect(peer).await.unwrap();
    let mut buf = [0u8; 1];
    let n = s.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0);
    wait_metric(
        admin,
        "parent_connections_refused_total{reason=\"enclave_unreachable\"}",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_connects_only_to_other_listed_nodes() {
    let (echo_addr, _echo) = tcp_echo_server().await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = Env::new(
        "outbound",
        &[
            ("node-1", "127.0.0.1:1".into()),
            ("node-2", echo_addr.to_string()),
            ("node-3", closed_port.to_string()),
        ],
    );
    let mut parent = env.start(&[]);
    let (_, _, admin) = parent.ready().await;
    let backend = env.backend();
    let outbound = VsockAddr::new(PARENT_CID, PARENT_OUTBOUND);

    let mut s = backend.connect(outbound).await.unwrap();
    request(&mut s, "node-2").await.unwrap();
    s.write_all(b"to node-2").await.unwrap();
    let mut got = [0u8; 9];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"to node-2");
    drop(s);

    for (node, expected) in [
        ("node-9", "unknown node"),
        ("node-1", "own node"),
        ("node-3", "dial failed: "),
    ] {
        let mut s = backend.connect(outbound).await.unwrap();
        match request(&mut s, node).await {
            Err(HeaderError::Refused(reason)) => {
                assert!(reason.starts_with(expected), "{node}: {reason}")
            }
            other => panic!("{node}: {other:?}"),
        }
        // Refused means closed.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
    // An address instead of a node id is not a valid header.
    let mut s = backend.connect(outbound).await.unwrap();
    s.write_all(format!("CONNECT {echo_addr}\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("ERR bad header"), "{answer}");

    for (reason, count) in [
        ("unknown_node", 1),
        ("own_node", 1),
        ("dial_failed", 1),
        ("bad_header", 1),
    ] {
        let series = format!("parent_connections_refused_total{{reason=\"{reason}\"}}");
        wait_metric(admin, &series, count).await;
    }
    assert_eq!(
        metric(admin, "parent_connections_total{kind=\"outbound\"}").await,
        5
    );
    assert_eq!(
        metric(
            admin,
            "parent_bytes_relayed_total{direction=\"to_enclave\"}"
        )
        .await,
        9
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_address_book() {
    let (echo_addr, _echo) = tcp_echo_server().await;
    let env = Env::new("hup", &[("node-1", "127.0.0.1:1".into())]);
    let mut parent = env.start(&[]);
    parent.ready().await;
    let outbound = VsockAddr::new(PARENT_CID, PARENT_OUTBOUND);
    let mut s = env.backend().connect(outbound).await.unwrap();
    assert_eq!(
        request(&mut s, "node-2").await,
        Err(HeaderError::Refused("unknown node".into()))
    );

    // A broken manifest is refused and the previous address book kept.
    let path = env.root.join("manifest.json");
    std::fs::write(&path, b"{}").unwrap();
    parent.signal("HUP");
    parent
        .wait_log("manifest reload failed; keeping the previous one", None)
        .await;

    let nodes = [
        ("node-1", "127.0.0.1:1".to_owned()),
        ("node-2", echo_addr.to_string()),
    ];
    std::fs::write(&path, manifest(&nodes)).unwrap();
    parent.signal("HUP");
    let reloaded = parent.wait_log("manifest reloaded", None).await;
    assert_eq!(reloaded["nodes"], 2);
    let mut s = env.backend().connect(outbound).await.unwrap();
    request(&mut s, "node-2").await.unwrap();
    s.write_all(b"reloaded").await.unwrap();
    let mut got = [0u8; 8];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"reloaded");
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_header_must_arrive_in_time() {
    let env = Env::new("header", &[("node-1", "127.0.0.1:1".into())]);
    let mut parent = env.start(&[]);
    parent.ready().await;
    let mut s = env
        .backend()
        .connect(VsockAddr::new(PARENT_CID, PARENT_OUTBOUND))
        .await
        .unwrap();
    s.write_all(b"CONNECT node-").await.unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "ERR header timeout\n");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
}

async fn call(s: &mut Stream, request: &Request) -> Response {
    call_raw(s, &request.encode().unwrap()).await
}

async fn call_raw(s: &mut Stream, frame: &[u8]) -> Response {
    write_frame(s, frame, MAX_FRAME_LEN).await.unwrap();
    let frame = read_frame(s, MAX_FRAME_LEN).await.unwrap().unwrap();
    Response::decode(&frame).unwrap()
}

fn put(name: &str, data: &[u8]) -> Request {
    Request::Put {
        name: name.into(),
        data: data.to_vec(),
    }
}

fn names(list: &[&str]) -> Response {
    Response::Names(list.iter().map(|s| s.to_string()).collect())
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_are_stored_listed_and_served_as_they_are_on_disk() {
    let env = Env::new("blobs", &[("node-1", "127.0.0.1:1".into())]);
    // A temporary file left by a crash is removed at startup.
    std::fs::create_dir_all(env.blobs()).unwrap();
    std::fs::write(env.blobs().join(".tmp-1-1"), b"partial").unwrap();
    let mut parent = env.start(&[]);
    let (_, _, admin) = parent.ready().await;
    let opened = parent.wait_log("blob store opened", None).await;
    assert_eq!(opened["stale_temp_files_removed"], 1);

    let mut s = env
        .backend()
        .connect(VsockAddr::new(PARENT_CID, PARENT_BLOBS))
        .await
        .unwrap();
    for (name, data) in [
        ("share-b", &b"sealed b"[..]),
        ("share-a", b"sealed a"),
        ("escrow-1", b"sealed e"),
    ] {
        assert_eq!(call(&mut s, &put(name, data)).await, Response::Done);
    }
    let all = Request::List {
        prefix: String::new(),
    };
    assert_eq!(
        call(&mut s, &all).await,
        names(&["escrow-1", "share-a", "share-b"])
    );
    let shares = Request::List {
        prefix: "share-".into(),
    };
    assert_eq!(call(&mut s, &shares).await, names(&["share-a", "share-b"]));
    let get_a = Request::Get {
        name: "share-a".into(),
    };
    assert_eq!(
        call(&mut s, &get_a).await,
        Response::Data(b"sealed a".to_vec())
    );
    assert_eq!(call(&mut s, &put("share-a", b"v2")).await, Response::Done);
    assert_eq!(call(&mut s, &get_a).await, Response::Data(b"v2".to_vec()));

    // The parent serves what is on disk; checking it is the enclave's job.
    std::fs::write(env.blobs().join("share-a"), b"tampered").unwrap();
    assert_eq!(
        call(&mut s, &get_a).await,
        Response::Data(b"tampered".to_vec())
    );

    let delete_b = Request::Delete {
        name: "share-b".into(),
    };
    assert_eq!(call(&mut s, &delete_b).await, Response::Done);
    assert_eq!(call(&mut s, &delete_b).await, Response::NotFound);
    let get_b = Request::Get {
        name: "share-b".into(),
    };
    assert_eq!(call(&mut s, &get_b).await, Response::NotFound);

    // Limits: exactly MAX is stored, one more byte is refused; traversal is refused.
    let max = pattern(MAX_BLOB_LEN);
    assert_eq!(call(&mut s, &put("big", &max)).await, Response::Done);
    let get_big = Request::Get { name: "big".into() };
    assert_eq!(call(&mut s, &get_big).await, Response::Data(max));
    let mut over = vec![1u8, 1, 4, b'o', b'v', b'e', b'r'];
    over.resize(over.len() + MAX_BLOB_LEN + 1, 7);
    assert!(matches!(
        call_raw(&mut s, &over).await,
        Response::Error {
            kind: ErrorKind::TooLarge,
            ..
        }
    ));
    let traversal = [&[1u8, 2, 9][..], b"../passwd"].concat();
    assert!(matches!(
        call_raw(&mut s, &traversal).await,
        Response::Error {
            kind: ErrorKind::InvalidName,
            ..
        }
    ));
    drop(s);

    assert_eq!(
        files(&env.blobs()),
        [".lock", "big", "escrow-1", "share-a"],
        "no temporary file remains"
    );
    let ops = |op: &str, result: &str| {
        format!("parent_blob_operations_total{{op=\"{op}\",result=\"{result}\"}}")
    };
    assert_eq!(metric(admin, &ops("put", "ok")).await, 5);
    assert_eq!(metric(admin, &ops("get", "ok")).await, 4);
    assert_eq!(metric(admin, &ops("get", "not_found")).await, 1);
    assert_eq!(metric(admin, &ops("delete", "not_found")).await, 1);
    assert_eq!(metric(admin, &ops("invalid", "error")).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_follows_the_enclave_status() {
    let env = Env::new("health", &[("node-1", "127.0.0.1:1".into())]);
    let mut parent = env.start(&[]);
    let (_, _, admin) = parent.ready().await;
    let unreachable = (
        503,
        "{\"enclave_reachable\":false,\"phase\":null}\n".to_owned(),
    );
    assert_eq!(get(admin, "/healthz").await, unreachable);
    assert_eq!(metric(admin, "parent_enclave_reachable").await, 0);

    let status = status_enclave(
        &env.backend(),
        "{\"node_id\":\"node-1\",\"phase\":\"running\"}\n",
    )
    .await;
    assert_eq!(
        get(admin, "/healthz").await,
        (
            200,
            "{\"enclave_reachable\":true,\"phase\":\"running\"}\n".to_owned()
        )
    );
    assert_eq!(metric(admin, "parent_enclave_reachable").await, 1);

    drop(status);
    let deadline = Instant::now() + WAIT;
    while get(admin, "/healthz").await != unreachable {
        assert!(
            Instant::now() < deadline,
            "still healthy without an enclave"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(admin, "parent_enclave_reachable").await, 0);

    let _booting = status_enclave(&env.backend(), "{\"phase\":\"provisioning\"}\n").await;
    assert_eq!(
        get(admin, "/healthz").await,
        (
            503,
            "{\"enclave_reachable\":true,\"phase\":\"provisioning\"}\n".to_owned()
        )
    );

    assert_eq!(get(admin, "/nothing").await.0, 404);
    assert_eq!(http(admin, b"POST /metrics HTTP/1.1\r\n\r\n").await.0, 405);
    assert_eq!(http(admin, b"BLAH\r\n\r\n").await.0, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(http(admin, huge.as_bytes()).await.0, 431);
}

/// A TCP connection to `to` from the local address `from` (any port).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// `n` connections to `to` from `from` that send nothing, as a flood would.
async fn flood(from: &str, n: usize, to: SocketAddr) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(connect_from(from, to).await);
    }
    held
}

/// Whether the parent closed `stream` at once instead of relaying it.
async fn closed_at_once(stream: &mut TcpStream) -> bool {
    let _ = stream.write_all(b"x").await;
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The enclave's side of a port as the node serves it: at most `slots` connections at
/// once, each echoing; one past that is closed at once. `held` counts those open.
async fn slotted_enclave(backend: &Backend, port: u32, slots: usize) -> (Service, Arc<AtomicU64>) {
    let listener = backend
        .bind(VsockAddr::new(ENCLAVE_CID, port))
        .await
        .unwrap();
    let held = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&held);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(slots));
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(permit) = Arc::clone(&semaphore).try_acquire_owned() else {
                continue;
            };
            let count = Arc::clone(&count);
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                echo(stream).await;
                count.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            });
        }
    });
    (Service(task), held)
}

async fn wait_held(held: &AtomicU64, expected: u64) {
    let deadline = Instant::now() + WAIT;
    while held.load(Ordering::SeqCst) != expected {
        assert!(
            Instant::now() < deadline,
            "the enclave holds {} connections, not {expected}",
            held.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The attack: unknown sources open as many silent connections to the peer port as the
/// parent lets through, to take the enclave's 64 peer slots from the real peers. With
/// the default budgets they get exactly the shared pool (16), one past it is refused,
/// and the known peer (listed in the manifest at 127.0.0.5) still gets its 48.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_from_unknown_sources_leaves_the_known_peers_their_slots() {
    let env = Env::new(
        "reserve",
        &[
            ("node-1", "127.0.0.1:1".into()),
            ("node-2", "127.0.0.5:9000".into()),
        ],
    );
    let (_enclave, held) = slotted_enclave(&env.backend(), NODE_PEER, 64).await;
    let mut parent = env.start(&[]);
    let (peer, _, admin) = parent.ready().await;
    let refused = |reason: &str| format!("parent_connections_refused_total{{reason=\"{reason}\"}}");

    // Four sources, 16 silent connections each: 4 each are relayed (the shared pool,
    // exactly), the rest closed at once.
    let mut flooding = Vec::new();
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6"] {
        flooding.extend(flood(source, 16, peer).await);
    }
    wait_metric(admin, "parent_connections_total{kind=\"peer\"}", 64).await;
    let relayed = metric(admin, "parent_connections_active{kind=\"peer\"}").await;
    wait_held(&held, relayed).await;
    // One past the shared pool, from a source that has nothing open yet.
    let mut past = connect_from("127.0.0.7", peer).await;
    assert!(closed_at_once(&mut past).await);

    // The known peer gets every reserved slot, and the enclave serves them all.
    let mut peers = flood("127.0.0.5", 48, peer).await;
    for (i, stream) in peers.iter_mut().enumerate() {
        ping(stream, u8::try_from(i).unwrap()).await;
    }
    assert_eq!(relayed, 16);
    wait_metric(admin, &refused("source_limit"), 48).await;
    wait_metric(admin, &refused("shared_full"), 1).await;
    wait_held(&held, 64).await;
    let mut one_more = connect_from("127.0.0.5", peer).await;
    assert!(closed_at_once(&mut one_more).await);
    wait_metric(admin, &refused("reserved_full"), 1).await;
    assert_eq!(
        metric(admin, "parent_connections_active{kind=\"peer\"}").await,
        64
    );

    // A peer's closed connection frees a reserved slot for the peer, not the flood.
    drop(peers.pop());
    wait_held(&held, 63).await;
    let mut again = connect_from("127.0.0.7", peer).await;
    assert!(closed_at_once(&mut again).await);
    wait_metric(admin, &refused("shared_full"), 2).await;
    let mut back = connect_from("127.0.0.5", peer).await;
    ping(&mut back, 200).await;
    drop(flooding);
}

/// Two sources cannot fill the enclave's 32 client slots: each gets `--max-per-source`
/// (4 by default, one past is refused), and an operator elsewhere still gets in. The
/// client pool as a whole stops at `--client-max` (24), below the enclave's slots.
#[tokio::test(flavor = "multi_thread")]
async fn two_sources_cannot_fill_the_client_slots() {
    let env = Env::new("clients", &[("node-1", "127.0.0.1:1".into())]);
    let (_enclave, held) = slotted_enclave(&env.backend(), NODE_CLIENT, 32).await;
    let mut parent = env.start(&[]);
    let (_, client, admin) = parent.ready().await;
    let refused = |reason: &str| format!("parent_connections_refused_total{{reason=\"{reason}\"}}");

    let mut flooding = flood("127.0.0.2", 16, client).await;
    flooding.extend(flood("127.0.0.3", 16, client).await);
    wait_metric(admin, "parent_connections_total{kind=\"client\"}", 32).await;
    let relayed = metric(admin, "parent_connections_active{kind=\"client\"}").await;
    wait_held(&held, relayed).await;
    let mut operator = connect_from("127.0.0.4", client).await;
    ping(&mut operator, 1).await;
    assert_eq!(relayed, 8);
    assert_eq!(metric(admin, &refused("source_limit")).await, 24);

    // More sources fill the pool to exactly 24; the next source is refused.
    flooding.extend(flood("127.0.0.5", 4, client).await);
    flooding.extend(flood("127.0.0.6", 4, client).await);
    flooding.extend(flood("127.0.0.7", 4, client).await);
    flooding.extend(flood("127.0.0.8", 3, client).await);
    wait_held(&held, 24).await;
    let mut past = connect_from("127.0.0.9", client).await;
    assert!(closed_at_once(&mut past).await);
    wait_metric(admin, &refused("shared_full"), 1).await;
    ping(&mut operator, 2).await;
    assert_eq!(metric(admin, &refused("source_limit")).await, 24);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_source_cannot_take_every_slot() {
    let env = Env::new("source", &[("node-1", "127.0.0.1:1".into())]);
    let _peer_port = echo_enclave(&env.backend(), NODE_PEER).await;
    let _client_port = echo_enclave(&env.backend(), NODE_CLIENT).await;
    let mut parent = env.start(&["--max-per-source", "2"]);
    let (peer, client, admin) = parent.ready().await;
    let refused = "parent_connections_refused_total{reason=\"source_limit\"}";

    // Exactly the limit from one source is relayed; one past it is closed at once.
    let mut first = connect_from("127.0.0.2", peer).await;
    let mut second = connect_from("127.0.0.2", peer).await;
    ping(&mut first, 1).await;
    ping(&mut second, 2).await;
    let mut third = connect_from("127.0.0.2", peer).await;
    assert!(closed_at_once(&mut third).await);
    wait_metric(admin, refused, 1).await;

    // Another source still gets in, and so does the same source on the client listener,
    // which counts apart.
    let mut elsewhere = connect_from("127.0.0.3", peer).await;
    ping(&mut elsewhere, 3).await;
    let mut operator = connect_from("127.0.0.2", client).await;
    let mut operator2 = connect_from("127.0.0.2", client).await;
    ping(&mut operator, 4).await;
    ping(&mut operator2, 5).await;
    let mut operator3 = connect_from("127.0.0.2", client).await;
    assert!(closed_at_once(&mut operator3).await);
    wait_metric(admin, refused, 2).await;
    // The pools were not involved.
    assert_eq!(
        metric(
            admin,
            "parent_connections_refused_total{reason=\"shared_full\"}"
        )
        .await,
        0
    );

    // A closed connection frees its source's slot.
    drop(first);
    wait_metric(admin, "parent_connections_active{kind=\"peer\"}", 2).await;
    let mut fourth = connect_from("127.0.0.2", peer).await;
    ping(&mut fourth, 6).await;
    ping(&mut second, 7).await;
}

/// The enclave dials other nodes from a budget of its own: with every inbound budget
/// full, `--max-outbound` dials still go through, and one past it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn outbound_dials_keep_their_budget_while_inbound_is_flooded() {
    let (echo_addr, _echo) = tcp_echo_server().await;
    let env = Env::new(
        "outlimit",
        &[
            ("node-1", "127.0.0.9:1".into()),
            ("node-2", echo_addr.to_string()),
        ],
    );
    let _peer_port = echo_enclave(&env.backend(), NODE_PEER).await;
    let _client_port = echo_enclave(&env.backend(), NODE_CLIENT).await;
    let mut parent = env.start(&[
        "--max-outbound",
        "2",
        "--peer-reserved",
        "2",
        "--peer-shared",
        "2",
        "--client-max",
        "2",
        "--max-per-source",
        "1",
    ]);
    let (peer, client, admin) = parent.ready().await;

    // Every inbound budget full: the known peer's (node-2 is on 127.0.0.1), the shared
    // pool and the client pool, each with one more refused.
    let mut inbound = flood("127.0.0.1", 3, peer).await;
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        inbound.extend(flood(source, 1, peer).await);
        inbound.extend(flood(source, 1, client).await);
    }
    wait_metric(admin, "parent_connections_total{kind=\"peer\"}", 6).await;
    wait_metric(admin, "parent_connections_total{kind=\"client\"}", 3).await;

    // The enclave's dials still go through, up to their own budget.
    let outbound = VsockAddr::new(PARENT_CID, PARENT_OUTBOUND);
    let mut dials = Vec::new();
    for i in 0..2u8 {
        let mut s = env.backend().connect(outbound).await.unwrap();
        request(&mut s, "node-2").await.unwrap();
        s.write_all(&[i]).await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(b, [i]);
        dials.push(s);
    }
    let mut s = env.backend().connect(outbound).await.unwrap();
    assert_eq!(
        request(&mut s, "node-2").await,
        Err(HeaderError::Refused("too many connections".into()))
    );
    wait_metric(admin, "parent_connections_active{kind=\"peer\"}", 4).await;
    wait_metric(admin, "parent_connections_active{kind=\"client\"}", 2).await;
    for (reason, count) in [("reserved_full", 1), ("shared_full", 2)] {
        let series = format!("parent_connections_refused_total{{reason=\"{reason}\"}}");
        wait_metric(admin, &series, count).await;
    }
    wait_metric(
        admin,
        "parent_connections_refused_total{reason=\"limit\"}",
        1,
    )
    .await;
    drop(dials.pop());
    wait_metric(admin, "parent_connections_active{kind=\"outbound\"}", 1).await;
    let mut s = env.backend().connect(outbound).await.unwrap();
    request(&mut s, "node-2").await.unwrap();
    drop(inbound);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed() {
    let env = Env::new("idle", &[("node-1", "127.0.0.1:1".into())]);
    let _enclave = echo_enclave(&env.backend(), NODE_PEER).await;
    let mut parent = env.start(&["--idle-timeout", "1"]);
    let (peer, _, _) = parent.ready().await;
    let mut s = TcpStream::connect(peer).await.unwrap();
    ping(&mut s, 9).await;
    let started = Instant::now();
    let mut buf = [0u8; 1];
    assert_eq!(s.read(&mut buf).await.unwrap(), 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let closed = parent.wait_log("connection closed", Some("peer")).await;
    assert_eq!(closed["end"], "idle timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_accepting_lets_connections_finish_and_exits_zero() {
    let env = Env::new("term", &[("node-1", "127.0.0.1:1".into())]);
    let _enclave = echo_enclave(&env.backend(), NODE_PEER).await;
    let mut parent = env.start(&[]);
    let (peer, _, _) = parent.ready().await;
    let mut s = TcpStream::connect(peer).await.unwrap();
    ping(&mut s, 1).await;

    parent.signal("TERM");
    parent
        .wait_log("shutting down: no longer accepting connections", None)
        .await;
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(peer).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The open connection still works until its client is done.
    ping(&mut s, 2).await;
    let outbound = Backend::unix_path(&env.sim(), VsockAddr::new(PARENT_CID, PARENT_OUTBOUND));
    assert!(!outbound.exists(), "socket file removed");
    drop(s);
    let status = parent.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));
    parent
        .wait_log("all connections finished; exiting", None)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_lingering_connections_after_the_grace_period() {
    let env = Env::new("grace", &[("node-1", "127.0.0.1:1".into())]);
    let _enclave = echo_enclave(&env.backend(), NODE_PEER).await;
    let mut parent = env.start(&[]);
    let (peer, _, _) = parent.ready().await;
    let mut s = TcpStream::connect(peer).await.unwrap();
    ping(&mut s, 1).await;
    let started = Instant::now();
    parent.signal("TERM");
    let status = parent.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() >= Duration::from_secs(9));
    let mut buf = [0u8; 1];
    assert_eq!(s.read(&mut buf).await.unwrap_or(0), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_errors_are_clear() {
    let env = Env::new("startup", &[("node-1", "127.0.0.1:1".into())]);
    std::fs::write(env.root.join("manifest.json"), b"{\"manifest\":\"!\"}").unwrap();
    let mut parent = env.start(&[]);
    let status = parent.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(1));
    let failed = parent.wait_log("startup failed", None).await;
    assert!(
        failed["error"].as_str().unwrap().contains("manifest"),
        "{failed}"
    );

    #[cfg(not(feature = "vsock"))]
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parent"));
        command.args([
            "--node-id",
            "node-1",
            "--enclave-cid",
            "16",
            "--manifest",
            "/nonexistent",
            "--blob-dir",
            "/nonexistent",
            "--log-format",
            "json",
        ]);
        let mut parent = Parent::spawn(command);
        assert_eq!(parent.wait_exit(WAIT).await.code(), Some(1));
        let failed = parent.wait_log("startup failed", None).await;
        assert!(
            failed["error"].as_str().unwrap().contains("vsock"),
            "{failed}"
        );
    }
}
