//! What the runtime needs from the world besides its attester, each behind a small trait
//! so that a test can put its own in: the clock the core's `now` comes from ([`Clock`]),
//! and the sockets ([`Network`]: listen on the node's ports, dial a peer). The blob store
//! is the third, `crate::sealed::BlobStore`. Production uses tokio's clock (which a test
//! can pause) and either [`transport::Backend`] (vsock, or its simulator stand-in, with
//! peers dialled through the parent) or, for a node without a parent,
//! [`super::direct::DirectNetwork`] (TCP); `MemoryNetwork` (tests and the simulator only)
//! connects listeners and dialers inside one process.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use transport::connect::HeaderError;
use transport::{Backend, PARENT_CID, VsockAddr, ports};

/// Where the core's `now` comes from, and the wall-clock time recorded in status answers.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant, on tokio's clock.
    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch.
    fn unix_ms(&self) -> u64;
}

/// Tokio's clock (paused and advanced by tests that pause it) and the system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A connected byte stream.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + Sync + fmt::Debug + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + fmt::Debug + 'static> Connection for T {}

pub type Stream = Box<dyn Connection>;
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// A listening socket.
pub trait Listen: Send + Sync + fmt::Debug {
    fn accept(&self) -> Pending<'_, Stream>;
}

/// A peer the node wants a connection to, and what decides whether and where it may go.
#[derive(Debug, Clone, Copy)]
pub struct PeerRoute<'a> {
    /// This node.
    pub own_id: &'a str,
    /// The node asked for.
    pub peer: &'a str,
    /// The manifest the node runs under: the nodes it may reach, and their addresses.
    pub manifest: &'a manifest::Manifest,
}

/// Why no connection to a peer was made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The parent could not be reached.
    #[error("parent: {0}")]
    Parent(#[source] io::Error),
    /// The parent refused the request, or answered it wrongly.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The route was refused before any connection was tried.
    #[error("dial refused: {0}")]
    Refused(#[from] RouteRefusal),
    /// The peer's address did not answer.
    #[error("{peer} at {address}: {source}")]
    Connect {
        peer: String,
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("{peer} at {address}: no answer within {after:?}")]
    TimedOut {
        peer: String,
        address: String,
        after: std::time::Duration,
    },
}

/// Why a node dialling its peers itself refuses a route, as a parent refuses a `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteRefusal {
    #[error("{0} is this node")]
    OwnNode(String),
    #[error("{0} is not a node of the manifest")]
    UnknownNode(String),
}

pub type Dialling<'a> = Pin<Box<dyn Future<Output = Result<Stream, DialError>> + Send + 'a>>;

/// The node's sockets: its listeners, named by (vsock-style) address, and its connections
/// to peers.
pub trait Network: Send + Sync + fmt::Debug + 'static {
    fn connect(&self, addr: VsockAddr) -> Pending<'_, Stream>;
    fn bind(&self, addr: VsockAddr) -> Pending<'_, Box<dyn Listen>>;

    /// A byte stream to the peer `route` names. By default, through the parent: the node
    /// names the peer in a `CONNECT` header and the parent decides (it connects only to
    /// a node its manifest lists, at the address it lists).
    fn dial<'a>(&'a self, route: PeerRoute<'a>) -> Dialling<'a> {
        Box::pin(async move {
            let mut stream = self
                .connect(VsockAddr::new(PARENT_CID, ports::PARENT_OUTBOUND))
                .await
                .map_err(DialError::Parent)?;
            transport::connect::request(&mut stream, route.peer).await?;
            Ok(stream)
        })
    }
}

impl Network for Backend {
    fn connect(&self, addr: VsockAddr) -> Pending<'_, Stream> {
        Box::pin(async move {
            let stream = Backend::connect(self, addr).await?;
            Ok(Box::new(stream) as Stream)
        })
    }

    fn bind(&self, addr: VsockAddr) -> Pending<'_, Box<dyn Listen>> {
        Box::pin(async move {
            let listener = Backend::bind(self, addr).await?;
            Ok(Box::new(listener) as Box<dyn Listen>)
        })
    }
}

impl Listen for transport::Listener {
    fn accept(&self) -> Pending<'_, Stream> {
        Box::pin(async move {
            let (stream, _) = transport::Listener::accept(self).await?;
            Ok(Box::new(stream) as Stream)
        })
    }
}

#[cfg(any(test, feature = "sim"))]
pub use memory::{MAX_PENDING_CONNECTIONS, ManualClock, MemoryNetwork, PIPE_BUFFER};

/// In-memory pipes and a manual clock, for tests and the simulator (absent from production
/// builds).
#[cfg(any(test, feature = "sim"))]
mod memory {
    use super::{Clock, Listen, Network, Pending, Stream};
    use std::collections::BTreeMap;
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tokio::time::Instant;
    use transport::VsockAddr;

    /// A clock that moves only when told to: both its instant and its wall-clock time. For
    /// tests and the simulator (absent from production builds).
    #[derive(Debug, Clone)]
    pub struct ManualClock {
        state: Arc<Mutex<(Instant, u64)>>,
    }

    impl ManualClock {
        /// Starts at tokio's current instant and at `unix_ms`.
        pub fn new(unix_ms: u64) -> Self {
            ManualClock {
                state: Arc::new(Mutex::new((Instant::now(), unix_ms))),
            }
        }

        pub fn advance(&self, by: Duration) {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 += by;
            state.1 = state
                .1
                .saturating_add(u64::try_from(by.as_millis()).unwrap_or(u64::MAX));
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            self.state.lock().unwrap_or_else(PoisonError::into_inner).0
        }

        fn unix_ms(&self) -> u64 {
            self.state.lock().unwrap_or_else(PoisonError::into_inner).1
        }
    }

    /// Bytes a pipe buffers in each direction before a writer waits.
    pub const PIPE_BUFFER: usize = 64 * 1024;
    /// Connections waiting to be accepted by one listener; more are refused.
    pub const MAX_PENDING_CONNECTIONS: usize = 64;

    /// Listeners and dialers in one process, joined by in-memory pipes. Binding an address
    /// replaces an earlier listener there (as a restarted node's does); dialing an address
    /// nobody listens on is refused.
    #[derive(Debug, Clone, Default)]
    pub struct MemoryNetwork {
        listeners: Arc<Mutex<Listeners>>,
    }

    /// Where each bound address's connections go, by (CID, port).
    type Listeners = BTreeMap<(u32, u32), mpsc::Sender<Stream>>;

    impl MemoryNetwork {
        pub fn new() -> Self {
            Self::default()
        }
    }

    #[derive(Debug)]
    struct MemoryListener {
        incoming: tokio::sync::Mutex<mpsc::Receiver<Stream>>,
    }

    impl Listen for MemoryListener {
        fn accept(&self) -> Pending<'_, Stream> {
            Box::pin(async move {
                self.incoming
                    .lock()
                    .await
                    .recv()
                    .await
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "listener replaced"))
            })
        }
    }

    impl Network for MemoryNetwork {
        fn connect(&self, addr: VsockAddr) -> Pending<'_, Stream> {
            Box::pin(async move {
                let listener = self
                    .listeners
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&(addr.cid, addr.port))
                    .cloned();
                let refused = || {
                    io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("connect to {addr}: nobody listens"),
                    )
                };
                let listener = listener.ok_or_else(refused)?;
                let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
                listener.try_send(Box::new(theirs)).map_err(|_| refused())?;
                Ok(Box::new(ours) as Stream)
            })
        }

        fn bind(&self, addr: VsockAddr) -> Pending<'_, Box<dyn Listen>> {
            Box::pin(async move {
                let (sender, receiver) = mpsc::channel(MAX_PENDING_CONNECTIONS);
                self.listeners
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert((addr.cid, addr.port), sender);
                Ok(Box::new(MemoryListener {
                    incoming: tokio::sync::Mutex::new(receiver),
                }) as Box<dyn Listen>)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn memory_pipes_connect_dialers_to_listeners() {
        let net = MemoryNetwork::new();
        let addr = VsockAddr::new(16, 5000);
        assert!(net.connect(addr).await.is_err(), "nobody listens yet");
        let listener = net.bind(addr).await.unwrap();
        let mut dialer = net.connect(addr).await.unwrap();
        let mut accepted = listener.accept().await.unwrap();
        dialer.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        accepted.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        // A restart binds again: the old listener hears of nothing more.
        let again = net.bind(addr).await.unwrap();
        let _second = net.connect(addr).await.unwrap();
        assert!(listener.accept().await.is_err());
        again.accept().await.unwrap();
    }

    #[tokio::test]
    async fn a_listener_queues_a_bounded_number_of_connections() {
        let net = MemoryNetwork::new();
        let addr = VsockAddr::new(3, 7);
        let _listener = net.bind(addr).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..MAX_PENDING_CONNECTIONS {
            held.push(net.connect(addr).await.unwrap());
        }
        assert!(net.connect(addr).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn clocks_move_as_told() {
        let system = SystemClock;
        let before = system.now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(system.now() - before, Duration::from_secs(3600));
        let manual = ManualClock::new(1_000);
        let at = manual.now();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!((manual.now(), manual.unix_ms()), (at, 1_000));
        manual.advance(Duration::from_millis(1500));
        assert_eq!(
            (manual.now() - at, manual.unix_ms()),
            (Duration::from_millis(1500), 2_500)
        );
    }
}
