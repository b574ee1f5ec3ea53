//! The world of a node without a parent (GCP Confidential Space): it listens on TCP
//! itself, dials its peers itself at the addresses its manifest lists, and keeps its
//! sealed blobs itself (in a directory, [`crate::blobs::DirBlobs`], or a bucket).
//!
//! Nothing here decides more than a parent would. A dial goes only to another node of the
//! manifest the node runs under, at the `host:port` it lists, which is exactly where a
//! parent would connect a `CONNECT` naming that node; anything else is refused before a
//! socket is opened ([`route`]). The runtime is the same as with a parent: only where its
//! sockets and blobs come from differs ([`Environment::direct`]).

use super::Environment;
use super::env::{
    DialError, Dialling, Listen, Network, PeerRoute, Pending, RouteRefusal, Stream, SystemClock,
};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use transport::{VsockAddr, ports};

/// How long dialling a peer may take (as long as a parent gives it).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a node without a parent listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectListen {
    /// Attested channels from peers.
    pub peer: SocketAddr,
    /// Operators and tools.
    pub client: SocketAddr,
    /// One health line; by default reachable from the host only.
    pub status: SocketAddr,
}

impl DirectListen {
    pub const DEFAULT_PEER: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9000));
    pub const DEFAULT_CLIENT: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9001));
    pub const DEFAULT_STATUS: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9100));

    /// The TCP address standing for the node's well-known `port`.
    fn address(&self, port: u32) -> Option<SocketAddr> {
        match port {
            ports::NODE_PEER => Some(self.peer),
            ports::NODE_CLIENT => Some(self.client),
            ports::NODE_STATUS => Some(self.status),
            _ => None,
        }
    }
}

impl Default for DirectListen {
    fn default() -> Self {
        DirectListen {
            peer: Self::DEFAULT_PEER,
            client: Self::DEFAULT_CLIENT,
            status: Self::DEFAULT_STATUS,
        }
    }
}

/// Where a dial for `route` may go: the address the manifest lists for another node, or
/// the refusal a parent would answer.
pub fn route<'a>(route: PeerRoute<'a>) -> Result<&'a str, RouteRefusal> {
    if route.peer == route.own_id {
        return Err(RouteRefusal::OwnNode(route.peer.to_owned()));
    }
    route
        .manifest
        .node(route.peer)
        .map(manifest::Node::address)
        .ok_or_else(|| RouteRefusal::UnknownNode(route.peer.to_owned()))
}

/// TCP sockets: the node's ports on the addresses it was given, its peers at their
/// manifest addresses. There is no parent: [`Network::connect`] to a vsock address fails.
#[derive(Debug, Clone)]
pub struct DirectNetwork {
    listen: DirectListen,
    dial_timeout: Duration,
}

impl DirectNetwork {
    pub fn new(listen: DirectListen) -> Self {
        DirectNetwork {
            listen,
            dial_timeout: DIAL_TIMEOUT,
        }
    }

    pub fn with_dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = timeout;
        self
    }

    pub fn listen_addresses(&self) -> DirectListen {
        self.listen
    }
}

impl Network for DirectNetwork {
    fn connect(&self, addr: VsockAddr) -> Pending<'_, Stream> {
        Box::pin(async move {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("connect to {addr}: this node has no parent"),
            ))
        })
    }

    fn bind(&self, addr: VsockAddr) -> Pending<'_, Box<dyn Listen>> {
        Box::pin(async move {
            let tcp = self.listen.address(addr.port).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("port {} is not one of the node's ports", addr.port),
                )
            })?;
            let listener = TcpListener::bind(tcp)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("TCP {tcp}: {e}")))?;
            Ok(Box::new(TcpListen(listener)) as Box<dyn Listen>)
        })
    }

    fn dial<'a>(&'a self, peer_route: PeerRoute<'a>) -> Dialling<'a> {
        Box::pin(async move {
            let address = route(peer_route)?;
            let failed = |source| DialError::Connect {
                peer: peer_route.peer.to_owned(),
                address: address.to_owned(),
                source,
            };
            let stream = tokio::time::timeout(self.dial_timeout, TcpStream::connect(address))
                .await
                .map_err(|_| DialError::TimedOut {
                    peer: peer_route.peer.to_owned(),
                    address: address.to_owned(),
                    after: self.dial_timeout,
                })?
                .map_err(failed)?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as Stream)
        })
    }
}

/// A TCP listener as the runtime's [`Listen`].
#[derive(Debug)]
struct TcpListen(TcpListener);

impl Listen for TcpListen {
    fn accept(&self) -> Pending<'_, Stream> {
        Box::pin(async move {
            let (stream, _) = self.0.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as Stream)
        })
    }
}

impl<B> Environment<B> {
    /// A node without a parent: TCP on `listen`, peers dialled directly, blobs in `blobs`
    /// (a directory of its own, [`crate::blobs::DirBlobs`], or a bucket), on tokio's
    /// clock.
    pub fn direct(listen: DirectListen, blobs: B) -> Self {
        Environment {
            blobs,
            net: Arc::new(DirectNetwork::new(listen)),
            clock: Arc::new(SystemClock),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A manifest of three nodes; node-2's address is `node_2`.
    fn manifest(node_2: &str) -> manifest::Manifest {
        let key = manifest::OperatorKey::generate().unwrap();
        let node = |id: &str, address: &str, pcr4: &str| {
            serde_json::json!({
                "id": id, "provider": "sim", "address": address,
                "measurements": [{"nitro": {"0": "11".repeat(48), "1": "22".repeat(48),
                    "2": "33".repeat(48), "4": pcr4.repeat(48)}}],
            })
        };
        let body = serde_json::json!({
            "version": 1, "threshold": 1,
            "operators": [{"id": "op", "public_key": key.public_key_hex()}],
            "nodes": [
                node("node-1", "127.0.0.1:1", "01"),
                node("node-2", node_2, "02"),
                node("node-3", "node-3.invalid:9000", "03"),
            ],
        });
        manifest::Manifest::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    fn to<'a>(peer: &'a str, manifest: &'a manifest::Manifest) -> PeerRoute<'a> {
        PeerRoute {
            own_id: "node-1",
            peer,
            manifest,
        }
    }

    #[test]
    fn a_listed_peer_is_dialled_at_its_manifest_address() {
        let m = manifest("10.0.0.2:9000");
        assert_eq!(route(to("node-2", &m)), Ok("10.0.0.2:9000"));
        assert_eq!(route(to("node-3", &m)), Ok("node-3.invalid:9000"));
    }

    #[test]
    fn this_node_and_unlisted_nodes_are_refused() {
        let m = manifest("10.0.0.2:9000");
        assert_eq!(
            route(to("node-1", &m)),
            Err(RouteRefusal::OwnNode("node-1".into()))
        );
        for unlisted in ["node-9", "10.0.0.2:9000", "", "node-2 "] {
            assert_eq!(
                route(to(unlisted, &m)),
                Err(RouteRefusal::UnknownNode(unlisted.into())),
                "{unlisted:?}"
            );
        }
        // Even when the manifest does not list this node.
        let own = PeerRoute {
            own_id: "node-7",
            peer: "node-7",
            manifest: &m,
        };
        assert_eq!(route(own), Err(RouteRefusal::OwnNode("node-7".into())));
    }

    #[tokio::test]
    async fn dials_reach_listed_peers_only() {
        let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = peer.local_addr().unwrap().to_string();
        let m = manifest(&address);
        let net = DirectNetwork::new(DirectListen::default());
        let mut dialled = net.dial(to("node-2", &m)).await.unwrap();
        let (mut accepted, _) = peer.accept().await.unwrap();
        dialled.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        accepted.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");

        // Refused before any socket is opened: the listener hears of nothing.
        for refused in ["node-1", "node-9"] {
            let err = net.dial(to(refused, &m)).await.err().unwrap();
            assert!(matches!(err, DialError::Refused(_)), "{err}");
        }
        let nothing = tokio::time::timeout(Duration::from_millis(100), peer.accept()).await;
        assert!(nothing.is_err(), "a refused dial connected");
    }

    #[tokio::test]
    async fn an_unreachable_peer_is_a_dial_failure() {
        // A port nobody listens on: bound, then released.
        let address = {
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            taken.local_addr().unwrap().to_string()
        };
        let m = manifest(&address);
        let net = DirectNetwork::new(DirectListen::default());
        let err = net.dial(to("node-2", &m)).await.err().unwrap();
        assert!(
            matches!(&err, DialError::Connect { peer, address: a, .. } if peer == "node-2" && *a == address),
            "{err}"
        );
        // A name that does not resolve either.
        let net = net.with_dial_timeout(Duration::from_secs(2));
        let err = net.dial(to("node-3", &m)).await.err().unwrap();
        assert!(
            matches!(err, DialError::Connect { .. } | DialError::TimedOut { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_node_ports_listen_on_their_tcp_addresses() {
        let free = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let listen = DirectListen {
            peer: free(),
            client: free(),
            status: free(),
        };
        let net = DirectNetwork::new(listen);
        for (port, tcp) in [
            (ports::NODE_PEER, listen.peer),
            (ports::NODE_CLIENT, listen.client),
            (ports::NODE_STATUS, listen.status),
        ] {
            let listener = net.bind(VsockAddr::new(16, port)).await.unwrap();
            let mut dialled = TcpStream::connect(tcp).await.unwrap();
            let mut accepted = listener.accept().await.unwrap();
            accepted.write_all(&port.to_be_bytes()).await.unwrap();
            let mut buf = [0u8; 4];
            dialled.read_exact(&mut buf).await.unwrap();
            assert_eq!(u32::from_be_bytes(buf), port);
        }
        // No other port, and no parent.
        assert!(
            net.bind(VsockAddr::new(16, ports::PARENT_BLOBS))
                .await
                .is_err()
        );
        let parent = VsockAddr::new(transport::PARENT_CID, ports::PARENT_OUTBOUND);
        assert_eq!(
            net.connect(parent).await.err().unwrap().kind(),
            io::ErrorKind::Unsupported
        );
        // A port already taken says which address.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = DirectNetwork::new(DirectListen {
            peer: taken.local_addr().unwrap(),
            ..listen
        });
        let err = busy
            .bind(VsockAddr::new(16, ports::NODE_PEER))
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains(&taken.local_addr().unwrap().to_string()),
            "{err}"
        );
    }

    #[test]
    fn default_addresses() {
        let listen = DirectListen::default();
        assert_eq!(listen.peer.to_string(), "0.0.0.0:9000");
        assert_eq!(listen.client.to_string(), "0.0.0.0:9001");
        assert_eq!(listen.status.to_string(), "127.0.0.1:9100");
    }
}
