//! `(cid, port)` sockets: AF_VSOCK, or Unix-domain sockets standing in for it.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};

/// A vsock address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VsockAddr {
    pub cid: u32,
    pub port: u32,
}

impl VsockAddr {
    pub const fn new(cid: u32, port: u32) -> Self {
        VsockAddr { cid, port }
    }
}

impl std::fmt::Display for VsockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.cid, self.port)
    }
}

/// Which kind of socket carries "vsock" traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Real AF_VSOCK (Nitro). Needs the `vsock` feature.
    Vsock,
    /// Simulator: `DIR/vsock-CID-PORT.sock` stands for `CID:PORT`.
    Unix { dir: PathBuf },
}

impl Backend {
    /// The socket file standing for `addr` in simulator mode.
    pub fn unix_path(dir: &Path, addr: VsockAddr) -> PathBuf {
        dir.join(format!("vsock-{}-{}.sock", addr.cid, addr.port))
    }

    /// Connects to `addr`.
    pub async fn connect(&self, addr: VsockAddr) -> io::Result<Stream> {
        match self {
            Backend::Unix { dir } => {
                let path = Self::unix_path(dir, addr);
                UnixStream::connect(&path)
                    .await
                    .map(Stream::Unix)
                    .map_err(|e| {
                        with_context(e, &format!("connect to {addr} ({})", path.display()))
                    })
            }
            Backend::Vsock => vsock_connect(addr).await,
        }
    }

    /// Listens on `addr` (in production the CID is ignored and the socket binds to any
    /// local CID, as an enclave must). In simulator mode a stale socket file left by a
    /// previous process is replaced.
    pub async fn bind(&self, addr: VsockAddr) -> io::Result<Listener> {
        match self {
            Backend::Unix { dir } => {
                let path = Self::unix_path(dir, addr);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(with_context(e, &format!("remove {}", path.display()))),
                }
                let listener = UnixListener::bind(&path).map_err(|e| {
                    with_context(e, &format!("listen on {addr} ({})", path.display()))
                })?;
                Ok(Listener::Unix {
                    listener,
                    addr,
                    path,
                })
            }
            Backend::Vsock => vsock_bind(addr),
        }
    }
}

fn with_context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(feature = "vsock")]
async fn vsock_connect(addr: VsockAddr) -> io::Result<Stream> {
    tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(addr.cid, addr.port))
        .await
        .map(Stream::Vsock)
        .map_err(|e| with_context(e, &format!("connect to vsock {addr}")))
}

#[cfg(not(feature = "vsock"))]
async fn vsock_connect(addr: VsockAddr) -> io::Result<Stream> {
    Err(no_vsock(addr))
}

#[cfg(feature = "vsock")]
fn vsock_bind(addr: VsockAddr) -> io::Result<Listener> {
    let any = tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, addr.port);
    tokio_vsock::VsockListener::bind(any)
        .map(|listener| Listener::Vsock { listener, addr })
        .map_err(|e| with_context(e, &format!("listen on vsock port {}", addr.port)))
}

#[cfg(not(feature = "vsock"))]
fn vsock_bind(addr: VsockAddr) -> io::Result<Listener> {
    Err(no_vsock(addr))
}

#[cfg(not(feature = "vsock"))]
fn no_vsock(addr: VsockAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("vsock {addr}: this build has no AF_VSOCK support (feature `vsock`)"),
    )
}

/// A listening socket.
#[derive(Debug)]
pub enum Listener {
    Unix {
        listener: UnixListener,
        addr: VsockAddr,
        path: PathBuf,
    },
    #[cfg(feature = "vsock")]
    Vsock {
        listener: tokio_vsock::VsockListener,
        addr: VsockAddr,
    },
}

impl Listener {
    /// Accepts one connection. The peer's address is known only for real vsock.
    pub async fn accept(&self) -> io::Result<(Stream, Option<VsockAddr>)> {
        match self {
            Listener::Unix { listener, .. } => {
                let (stream, _) = listener.accept().await?;
                Ok((Stream::Unix(stream), None))
            }
            #[cfg(feature = "vsock")]
            Listener::Vsock { listener, .. } => {
                let (stream, peer) = listener.accept().await?;
                Ok((
                    Stream::Vsock(stream),
                    Some(VsockAddr::new(peer.cid(), peer.port())),
                ))
            }
        }
    }

    /// The address this listener stands for.
    pub fn addr(&self) -> VsockAddr {
        match self {
            Listener::Unix { addr, .. } => *addr,
            #[cfg(feature = "vsock")]
            Listener::Vsock { addr, .. } => *addr,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        #[allow(irrefutable_let_patterns)]
        if let Listener::Unix { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A connected byte stream.
#[derive(Debug)]
pub enum Stream {
    Unix(UnixStream),
    #[cfg(feature = "vsock")]
    Vsock(tokio_vsock::VsockStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "vsock")]
            Stream::Vsock(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "vsock")]
            Stream::Vsock(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "vsock")]
            Stream::Vsock(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "vsock")]
            Stream::Vsock(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn unix_backend_connects_by_cid_and_port() {
        let dir = std::env::temp_dir().join(format!("transport-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let backend = Backend::Unix { dir: dir.clone() };
        let addr = VsockAddr::new(16, 5000);
        let listener = backend.bind(addr).await.unwrap();
        assert_eq!(listener.addr(), addr);
        // A second bind replaces a stale file rather than failing.
        drop(backend.bind(VsockAddr::new(16, 5001)).await.unwrap());

        let server = tokio::spawn(async move {
            let (mut s, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, None);
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let mut c = backend.connect(addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        server.await.unwrap();

        // Nobody listens on another port: a clear error naming the address.
        let err = backend.connect(VsockAddr::new(16, 9)).await.unwrap_err();
        assert!(err.to_string().contains("16:9"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(not(feature = "vsock"))]
    #[tokio::test]
    async fn vsock_without_the_feature_is_a_clear_error() {
        let err = Backend::Vsock
            .connect(VsockAddr::new(16, 5000))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    }
}
