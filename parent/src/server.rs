//! Startup, the blob-store listener, signals and graceful shutdown.

use crate::blobs::{self, BlobError, BlobStore};
use crate::metrics::{BlobOp, BlobResult, Kind, Metrics};
use crate::outbound::AddressBook;
use crate::sources::{Admission, Budget, BudgetError};
use crate::{admin, outbound, relay};
use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};
use transport::blob::{ErrorKind, MAX_FRAME_LEN, Request, Response};
use transport::frame::{FrameError, read_frame, write_frame};
use transport::ports::{NODE_CLIENT, NODE_PEER, PARENT_BLOBS, PARENT_OUTBOUND};
use transport::{Backend, Listener, PARENT_CID, Stream, VsockAddr};

/// How long active connections may continue after SIGTERM or SIGINT.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Largest manifest file read.
pub const MAX_MANIFEST_LEN: u64 = manifest::MAX_ENVELOPE_LEN as u64;
/// Blob-store connections served at once.
pub const MAX_BLOB_CONNECTIONS: usize = 16;
/// How long resolving one node's address may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a blob-store frame may take to arrive once it has started.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: String,
    pub enclave_cid: u32,
    pub manifest: PathBuf,
    pub blob_dir: PathBuf,
    pub backend: Backend,
    pub peer_listen: SocketAddr,
    pub client_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// The enclave's outbound dials relayed at once; inbound connections never draw
    /// from this budget.
    pub max_outbound: usize,
    /// Peer connections kept for the hosts of the manifest's nodes.
    pub peer_reserved: usize,
    /// Peer connections every other source shares.
    pub peer_shared: usize,
    /// Client connections relayed at once.
    pub client_max: usize,
    /// Connections one source may have open at once in the peer listener's shared pool,
    /// and as many on the client listener.
    pub max_per_source: usize,
    pub idle_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    #[error(
        "AF_VSOCK is not available in this build (feature `vsock`); pass --sim-dir for simulator mode"
    )]
    NoVsock,
    #[error("manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("blob directory: {0}")]
    Blobs(#[from] BlobError),
    #[error("simulator directory {path}: {source}")]
    SimDir { path: PathBuf, source: io::Error },
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    #[error("connection budget: {0}")]
    Budget(#[from] BudgetError),
    #[error("startup task failed: {0}")]
    Task(String),
}

/// What every connection task needs.
#[derive(Debug)]
pub struct Shared {
    pub node_id: String,
    pub enclave_cid: u32,
    pub backend: Backend,
    pub idle_timeout: Duration,
    pub metrics: Metrics,
    /// One permit per outbound connection (`--max-outbound`), apart from the inbound
    /// listeners' budgets so that an inbound flood cannot stop the node dialling.
    pub outbound_permits: Arc<Semaphore>,
    pub book: watch::Receiver<Arc<AddressBook>>,
    pub tracker: Tracker,
    /// Becomes `true` when the process stops accepting connections.
    pub shutdown: watch::Receiver<bool>,
}

/// Counts the connections in progress so that shutdown can wait for them.
#[derive(Debug, Clone)]
pub struct Tracker(Arc<watch::Sender<usize>>);

/// One connection in progress, until dropped.
#[derive(Debug)]
pub struct Tracked(Arc<watch::Sender<usize>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker(Arc::new(watch::channel(0).0))
    }
}

impl Tracker {
    pub fn enter(&self) -> Tracked {
        self.0.send_modify(|n| *n += 1);
        Tracked(Arc::clone(&self.0))
    }

    pub fn count(&self) -> usize {
        *self.0.borrow()
    }

    /// Resolves when no connection is in progress.
    pub async fn idle(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// Reads the manifest and extracts its address book.
pub async fn load_address_book(path: &Path) -> Result<AddressBook, StartupError> {
    let fail = |reason: String| StartupError::Manifest {
        path: path.to_path_buf(),
        reason,
    };
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_LEN + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_MANIFEST_LEN {
        return Err(fail(format!("larger than {MAX_MANIFEST_LEN} bytes")));
    }
    manifest::addresses(&bytes).map_err(|e| fail(e.to_string()))
}

/// The addresses of the manifest's nodes other than `own_id`, resolved once: their
/// connections on the peer listener draw from the reserved budget. Addresses that do
/// not resolve are logged and left out (their connections share the unknown pool).
pub async fn known_peers(book: &AddressBook, own_id: &str) -> BTreeSet<IpAddr> {
    let mut known = BTreeSet::new();
    for (node, address) in book.iter().filter(|(node, _)| node.as_str() != own_id) {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(address.as_str())).await
        {
            Ok(Ok(addrs)) => known.extend(addrs.map(|a| crate::sources::canonical(a.ip()))),
            Ok(Err(e)) => {
                warn!(node = %node, address = %address, error = %e, "cannot resolve a node's address; its connections get no reserved slot")
            }
            Err(_) => {
                warn!(node = %node, address = %address, "resolving a node's address timed out; its connections get no reserved slot")
            }
        }
    }
    known
}

async fn bind_tcp(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartupError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_or(addr, |a| a);
    info!(kind = what, addr = %local, "listening");
    Ok(listener)
}

async fn bind_vsock(
    what: &'static str,
    backend: &Backend,
    addr: VsockAddr,
) -> Result<Listener, StartupError> {
    let listener = backend
        .bind(addr)
        .await
        .map_err(|source| StartupError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })?;
    info!(kind = what, addr = %addr, "listening");
    Ok(listener)
}

/// Runs the parent until SIGTERM or SIGINT, then drains connections for at most
/// [`SHUTDOWN_GRACE`]. Returns an error only when startup fails.
pub async fn run(config: Config) -> Result<(), StartupError> {
    if config.backend == Backend::Vsock && !cfg!(feature = "vsock") {
        return Err(StartupError::NoVsock);
    }
    let peer_budget = Budget::peer(
        config.peer_reserved,
        config.peer_shared,
        config.max_per_source,
    )?;
    let client_budget = Budget::client(config.client_max, config.max_per_source)?;
    let book = load_address_book(&config.manifest).await?;
    info!(manifest = %config.manifest.display(), nodes = book.len(), "manifest loaded");
    let known = known_peers(&book, &config.node_id).await;
    info!(known_peer_addresses = known.len(), "known peers resolved");
    let peer_admission = Admission::new(peer_budget, known);
    let client_admission = Admission::new(client_budget, []);
    let (book_tx, book_rx) = watch::channel(Arc::new(book));

    let blob_dir = config.blob_dir.clone();
    let (store, removed) = tokio::task::spawn_blocking(move || BlobStore::open(&blob_dir))
        .await
        .map_err(|e| StartupError::Task(e.to_string()))??;
    info!(dir = %config.blob_dir.display(), stale_temp_files_removed = removed, "blob store opened");

    if let Backend::Unix { dir } = &config.backend {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| StartupError::SimDir {
                path: dir.clone(),
                source,
            })?;
    }
    let mut term = signal(SignalKind::terminate()).map_err(StartupError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(StartupError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(StartupError::Signals)?;

    let peer = bind_tcp("peer", config.peer_listen).await?;
    let client = bind_tcp("client", config.client_listen).await?;
    let admin = bind_tcp("admin", config.admin_listen).await?;
    let backend = &config.backend;
    let outbound = bind_vsock(
        "outbound",
        backend,
        VsockAddr::new(PARENT_CID, PARENT_OUTBOUND),
    )
    .await?;
    let blobs = bind_vsock("blobs", backend, VsockAddr::new(PARENT_CID, PARENT_BLOBS)).await?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        node_id: config.node_id.clone(),
        enclave_cid: config.enclave_cid,
        backend: config.backend.clone(),
        idle_timeout: config.idle_timeout,
        metrics: Metrics::default(),
        outbound_permits: Arc::new(Semaphore::new(config.max_outbound)),
        book: book_rx,
        tracker: Tracker::default(),
        shutdown: shutdown_rx,
    });
    let mut listeners = JoinSet::new();
    let s = || Arc::clone(&shared);
    listeners.spawn(relay::serve_inbound(
        Kind::Peer,
        peer,
        NODE_PEER,
        s(),
        Arc::clone(&peer_admission),
    ));
    listeners.spawn(relay::serve_inbound(
        Kind::Client,
        client,
        NODE_CLIENT,
        s(),
        client_admission,
    ));
    listeners.spawn(outbound::serve(outbound, s()));
    listeners.spawn(serve_blobs(blobs, Arc::new(store), s()));
    listeners.spawn(admin::serve(admin, s()));
    info!(
        node_id = %config.node_id,
        enclave_cid = config.enclave_cid,
        max_outbound = config.max_outbound,
        peer_reserved = config.peer_reserved,
        peer_shared = config.peer_shared,
        client_max = config.client_max,
        max_per_source = config.max_per_source,
        idle_timeout_s = config.idle_timeout.as_secs(),
        "ready"
    );

    let signal_name = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => match load_address_book(&config.manifest).await {
                Ok(book) => {
                    let known = known_peers(&book, &config.node_id).await;
                    let (nodes, known_peer_addresses) = (book.len(), known.len());
                    // In force before it is logged: the log line is the signal that it is.
                    book_tx.send_replace(Arc::new(book));
                    peer_admission.set_known(known);
                    info!(nodes, known_peer_addresses, "manifest reloaded");
                }
                Err(e) => error!(error = %e, "manifest reload failed; keeping the previous one"),
            },
        }
    };
    info!(
        signal = signal_name,
        active = shared.tracker.count(),
        "shutting down: no longer accepting connections"
    );
    let _ = shutdown_tx.send(true);
    while listeners.join_next().await.is_some() {}
    match tokio::time::timeout(SHUTDOWN_GRACE, shared.tracker.idle()).await {
        Ok(()) => info!("all connections finished; exiting"),
        Err(_) => warn!(
            still_active = shared.tracker.count(),
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "grace period over; closing the remaining connections"
        ),
    }
    Ok(())
}

async fn serve_blobs(listener: Listener, store: Arc<BlobStore>, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let permits = Arc::new(Semaphore::new(MAX_BLOB_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(kind = "blobs", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            warn!(
                kind = "blobs",
                "connection refused: too many blob-store connections"
            );
            continue;
        };
        let tracked = shared.tracker.enter();
        let store = Arc::clone(&store);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_blob_connection(stream, store, &shared).await;
            drop((permit, tracked));
        });
    }
}

/// Serves framed requests until the enclave closes the connection, a frame is bad,
/// or shutdown begins (checked between requests, never in the middle of one).
async fn serve_blob_connection(stream: Stream, store: Arc<BlobStore>, shared: &Shared) {
    let mut shutdown = shared.shutdown.clone();
    let mut stream = BufReader::new(stream);
    let mut served = 0u64;
    debug!(kind = "blobs", "connection opened");
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            ready = stream.fill_buf() => if ready.is_err() { break },
        }
        let frame =
            match tokio::time::timeout(FRAME_TIMEOUT, read_frame(&mut stream, MAX_FRAME_LEN)).await
            {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => break,
                Ok(Err(e @ FrameError::Oversized { .. })) => {
                    warn!(kind = "blobs", error = %e, "refusing frame; closing");
                    shared.metrics.blob_op(BlobOp::Invalid, BlobResult::Error);
                    let refusal = protocol_error(e.to_string());
                    let _ = send(&mut stream, &refusal).await;
                    break;
                }
                Ok(Err(e)) => {
                    warn!(kind = "blobs", error = %e, "connection failed");
                    break;
                }
                Err(_) => {
                    warn!(kind = "blobs", "frame did not arrive in time; closing");
                    break;
                }
            };
        let response = match Request::decode(&frame) {
            Ok(request) => {
                let summary = format!("{request:?}");
                let store = Arc::clone(&store);
                match tokio::task::spawn_blocking(move || blobs::handle(&store, request)).await {
                    Ok((response, op, result)) => {
                        shared.metrics.blob_op(op, result);
                        match (&response, result) {
                            (Response::Error { message, .. }, _) => {
                                warn!(kind = "blobs", request = %summary, error = %message, "blob operation failed")
                            }
                            _ => {
                                debug!(kind = "blobs", request = %summary, result = result.label(), "blob operation")
                            }
                        }
                        response
                    }
                    Err(e) => {
                        error!(kind = "blobs", request = %summary, error = %e, "blob operation panicked");
                        Response::Error {
                            kind: ErrorKind::Io,
                            message: "internal error".to_owned(),
                        }
                    }
                }
            }
            Err(e) => {
                shared.metrics.blob_op(BlobOp::Invalid, BlobResult::Error);
                warn!(kind = "blobs", error = %e, "undecodable request");
                blobs::undecodable(&e)
            }
        };
        if let Err(e) = send(&mut stream, &response).await {
            warn!(kind = "blobs", error = %e, "response not delivered");
            break;
        }
        served += 1;
    }
    debug!(kind = "blobs", requests = served, "connection closed");
}

fn protocol_error(message: String) -> Response {
    Response::Error {
        kind: ErrorKind::Protocol,
        message,
    }
}

async fn send(stream: &mut BufReader<Stream>, response: &Response) -> Result<(), FrameError> {
    let bytes = match response.encode() {
        Ok(bytes) => bytes,
        Err(e) => Response::Error {
            kind: ErrorKind::Io,
            message: format!("response not encodable: {e}"),
        }
        .encode()
        .map_err(|e| FrameError::Io(io::Error::other(e)))?,
    };
    write_frame(stream, &bytes, MAX_FRAME_LEN).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn known_peers_are_the_other_nodes_resolved_addresses() {
        let book: AddressBook = [
            ("node-1", "127.0.0.1:9000"),
            ("node-2", "127.0.0.5:9000"),
            ("node-3", "[::ffff:127.0.0.6]:9000"),
            ("node-4", "localhost:9000"),
            ("node-5", "no port here"),
            ("node-6", "name.invalid:9000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let known = known_peers(&book, "node-1").await;
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(known.contains(&ip("127.0.0.5")));
        // Mapped addresses are kept as IPv4, as sources are compared.
        assert!(known.contains(&ip("127.0.0.6")));
        // A name is resolved; the own node's address is not a peer's (unless a peer
        // shares it, as `localhost` may here).
        assert!(known.iter().any(|a| a.is_loopback()));
        let without_localhost: AddressBook = book
            .iter()
            .filter(|(k, _)| k.as_str() != "node-4")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let known = known_peers(&without_localhost, "node-1").await;
        assert_eq!(known.len(), 2, "{known:?}");
        assert!(!known.contains(&ip("127.0.0.1")));
    }

    #[tokio::test]
    async fn tracker_waits_for_the_last_connection() {
        let tracker = Tracker::default();
        tracker.idle().await;
        let a = tracker.enter();
        let b = tracker.enter();
        assert_eq!(tracker.count(), 2);
        drop(a);
        let waiting = tokio::time::timeout(Duration::from_millis(50), tracker.idle()).await;
        assert!(waiting.is_err());
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), tracker.idle())
            .await
            .unwrap();
    }
}
