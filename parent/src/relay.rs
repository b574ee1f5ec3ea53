//! Byte-for-byte splicing between a TCP connection and a connection to the enclave,
//! with byte counts, half-close and an idle timeout; and the inbound listeners.

use crate::metrics::{Kind, Metrics, Refused};
use crate::server::{Shared, Tracked};
use crate::sources::{Admission, Admitted, Denied};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{info, warn};
use transport::VsockAddr;

/// How long a connection into the enclave may take to be accepted.
pub const ENCLAVE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Copy buffer per direction.
pub const BUFFER_LEN: usize = 64 * 1024;

/// Why a splice ended.
#[derive(Debug)]
pub enum End {
    /// Both sides reached end of stream.
    Closed,
    /// No byte moved in either direction for the idle timeout.
    IdleTimeout,
    Error(io::Error),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed => write!(f, "closed"),
            End::IdleTimeout => write!(f, "idle timeout"),
            End::Error(e) => write!(f, "error: {e}"),
        }
    }
}

#[derive(Debug)]
pub struct Spliced {
    pub to_enclave: u64,
    pub from_enclave: u64,
    pub end: End,
}

/// The last time a byte was read on either side, in milliseconds since `start`.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

/// A stream that counts what is read from it, here and in a shared total.
struct Counted<'a, S> {
    inner: &'a mut S,
    read: u64,
    total: &'a AtomicU64,
    activity: &'a Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut *this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let n = buf.filled().len().saturating_sub(before) as u64;
            if n > 0 {
                this.read += n;
                this.total.fetch_add(n, Ordering::Relaxed);
                this.activity.touch();
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Copies bytes both ways until both sides have closed, propagating each end of
/// stream as a write shutdown on the other side, or until nothing has moved for
/// `idle`. Bytes read from `outside` count as `to_enclave`.
pub async fn splice<O, E>(
    outside: &mut O,
    enclave: &mut E,
    idle: Duration,
    metrics: &Metrics,
) -> Spliced
where
    O: AsyncRead + AsyncWrite + Unpin,
    E: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let mut out = Counted {
        inner: outside,
        read: 0,
        total: metrics.to_enclave(),
        activity: &activity,
    };
    let mut enc = Counted {
        inner: enclave,
        read: 0,
        total: metrics.from_enclave(),
        activity: &activity,
    };
    let watchdog = async {
        loop {
            let deadline = activity.deadline(idle);
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    let end = tokio::select! {
        result = tokio::io::copy_bidirectional_with_sizes(&mut out, &mut enc, BUFFER_LEN, BUFFER_LEN) => {
            match result {
                Ok(_) => End::Closed,
                Err(e) => End::Error(e),
            }
        }
        () = watchdog => End::IdleTimeout,
    };
    if !matches!(end, End::Closed) {
        let _ = out.shutdown().await;
        let _ = enc.shutdown().await;
    }
    Spliced {
        to_enclave: out.read,
        from_enclave: enc.read,
        end,
    }
}

/// Why a connection `admission` turned away is counted as refused.
pub fn refused(denied: Denied) -> Refused {
    match denied {
        Denied::SourceLimit => Refused::SourceLimit,
        Denied::SharedFull => Refused::SharedFull,
        Denied::ReservedFull => Refused::ReservedFull,
        Denied::KnownSourceLimit => Refused::KnownSourceLimit,
    }
}

/// Accepts TCP connections on `listener` and relays each to the enclave's `port`
/// when `admission` has room for its source; the others are closed at once.
pub async fn serve_inbound(
    kind: Kind,
    listener: TcpListener,
    port: u32,
    shared: Arc<Shared>,
    admission: Arc<Admission>,
) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                warn!(kind = kind.label(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admitted = match admission.try_enter(peer.ip()) {
            Ok(admitted) => admitted,
            Err(denied) => {
                drop(shared.metrics.open(kind));
                let reason = refused(denied);
                shared.metrics.refused(reason);
                warn!(kind = kind.label(), %peer, reason = reason.label(), "connection refused");
                continue;
            }
        };
        let tracked = shared.tracker.enter();
        tokio::spawn(inbound(
            kind,
            tcp,
            peer,
            port,
            Arc::clone(&shared),
            Slots {
                _tracked: tracked,
                _admitted: admitted,
            },
        ));
    }
}

/// What a relayed connection holds until it ends: its place in the shutdown count
/// and its slot in the listener's budget.
struct Slots {
    _tracked: Tracked,
    _admitted: Admitted,
}

async fn inbound(
    kind: Kind,
    mut tcp: TcpStream,
    peer: SocketAddr,
    port: u32,
    shared: Arc<Shared>,
    _slots: Slots,
) {
    let _active = shared.metrics.open(kind);
    let started = std::time::Instant::now();
    let _ = tcp.set_nodelay(true);
    let addr = VsockAddr::new(shared.enclave_cid, port);
    let connected =
        tokio::time::timeout(ENCLAVE_CONNECT_TIMEOUT, shared.backend.connect(addr)).await;
    let mut enclave = match connected {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            shared.metrics.refused(Refused::EnclaveUnreachable);
            warn!(kind = kind.label(), %peer, enclave = %addr, error = %e, "connection refused: enclave unreachable");
            return;
        }
        Err(_) => {
            shared.metrics.refused(Refused::EnclaveUnreachable);
            warn!(kind = kind.label(), %peer, enclave = %addr, "connection refused: enclave did not accept in time");
            return;
        }
    };
    info!(kind = kind.label(), %peer, enclave = %addr, "connection opened");
    let spliced = splice(&mut tcp, &mut enclave, shared.idle_timeout, &shared.metrics).await;
    log_closed(kind, &peer.to_string(), &spliced, started);
}

pub(crate) fn log_closed(kind: Kind, peer: &str, s: &Spliced, started: std::time::Instant) {
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &s.end {
        End::Error(_) => warn!(
            kind = kind.label(),
            peer,
            to_enclave = s.to_enclave,
            from_enclave = s.from_enclave,
            duration_ms,
            end = %s.end,
            "connection closed"
        ),
        End::Closed | End::IdleTimeout => info!(
            kind = kind.label(),
            peer,
            to_enclave = s.to_enclave,
            from_enclave = s.from_enclave,
            duration_ms,
            end = %s.end,
            "connection closed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, duplex};

    #[tokio::test]
    async fn relays_both_ways_counts_and_propagates_half_close() {
        let metrics = Metrics::default();
        let (mut client, mut outside) = duplex(1024);
        let (mut enclave, mut enclave_end) = duplex(1024);
        let relay = splice(
            &mut outside,
            &mut enclave,
            Duration::from_secs(10),
            &metrics,
        );
        let peers = async {
            client.write_all(b"hello enclave").await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            enclave_end.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hello enclave");
            // The enclave still answers after the client's half-close.
            enclave_end.write_all(b"hi").await.unwrap();
            enclave_end.shutdown().await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hi");
        };
        let (spliced, ()) = tokio::join!(relay, peers);
        assert!(matches!(spliced.end, End::Closed), "{}", spliced.end);
        assert_eq!((spliced.to_enclave, spliced.from_enclave), (13, 2));
        assert_eq!(metrics.to_enclave().load(Ordering::Relaxed), 13);
        assert_eq!(metrics.from_enclave().load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn idle_connections_are_closed_and_activity_extends_them() {
        let metrics = Metrics::default();
        let (mut client, mut outside) = duplex(1024);
        let (mut enclave, mut enclave_end) = duplex(1024);
        let idle = Duration::from_millis(300);
        let started = Instant::now();
        let relay = splice(&mut outside, &mut enclave, idle, &metrics);
        let peers = async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                client.write_all(b"x").await.unwrap();
                let mut b = [0u8; 1];
                enclave_end.read_exact(&mut b).await.unwrap();
            }
            // Silence: the relay closes both sides.
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            enclave_end.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        };
        let (spliced, ()) = tokio::join!(relay, peers);
        assert!(matches!(spliced.end, End::IdleTimeout), "{}", spliced.end);
        assert_eq!(spliced.to_enclave, 3);
        assert!(started.elapsed() >= Duration::from_millis(750));
    }
}
