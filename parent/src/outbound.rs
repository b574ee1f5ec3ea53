//! Outbound connections requested by the enclave with `CONNECT <node-id>\n`. Only the
//! addresses the manifest lists for other nodes can be dialled; the enclave names a
//! node, never an address.

use crate::metrics::{Kind, Refused};
use crate::relay::{log_closed, splice};
use crate::server::{Shared, Tracked};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{info, warn};
use transport::connect::{HeaderError, answer, parse_connect, read_line};
use transport::{Listener, Stream};

/// How long the enclave has to send its header line.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dialling a peer may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long writing a refusal may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// Node id to `host:port`, from the manifest.
pub type AddressBook = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub node_id: String,
    pub address: String,
}

/// Why an outbound request was refused; `message` is what follows `ERR `.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    BadHeader(HeaderError),
    HeaderTimeout,
    OwnNode,
    UnknownNode,
    DialFailed(String),
    Limit,
}

impl Refusal {
    pub fn reason(&self) -> Refused {
        match self {
            Refusal::BadHeader(_) | Refusal::HeaderTimeout => Refused::BadHeader,
            Refusal::OwnNode => Refused::OwnNode,
            Refusal::UnknownNode => Refused::UnknownNode,
            Refusal::DialFailed(_) => Refused::DialFailed,
            Refusal::Limit => Refused::Limit,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::BadHeader(e) => format!("bad header: {e}"),
            Refusal::HeaderTimeout => "header timeout".to_owned(),
            Refusal::OwnNode => "own node".to_owned(),
            Refusal::UnknownNode => "unknown node".to_owned(),
            Refusal::DialFailed(e) => format!("dial failed: {e}"),
            Refusal::Limit => "too many connections".to_owned(),
        }
    }
}

/// Decides where a header line may lead: to another node the manifest lists.
pub fn route(line: &str, own_id: &str, book: &AddressBook) -> Result<Target, Refusal> {
    let node_id = parse_connect(line).map_err(Refusal::BadHeader)?;
    if node_id == own_id {
        return Err(Refusal::OwnNode);
    }
    let address = book.get(node_id).ok_or(Refusal::UnknownNode)?;
    Ok(Target {
        node_id: node_id.to_owned(),
        address: address.clone(),
    })
}

/// Accepts the enclave's outbound requests.
pub async fn serve(listener: Listener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(kind = "outbound", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let tracked = shared.tracker.enter();
        match Arc::clone(&shared.outbound_permits).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(outbound(stream, Arc::clone(&shared), permit, tracked));
            }
            Err(_) => {
                drop(shared.metrics.open(Kind::Outbound));
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    // Read the request first so that the answer is what the node reads next.
                    let mut stream = stream;
                    let _ = tokio::time::timeout(ANSWER_TIMEOUT, read_line(&mut stream)).await;
                    refuse(stream, Refusal::Limit, "", &shared).await;
                    drop(tracked);
                });
            }
        }
    }
}

async fn outbound(
    mut stream: Stream,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
    _tracked: Tracked,
) {
    let _active = shared.metrics.open(Kind::Outbound);
    let started = std::time::Instant::now();
    let routed = match tokio::time::timeout(HEADER_TIMEOUT, read_line(&mut stream)).await {
        Err(_) => Err(Refusal::HeaderTimeout),
        Ok(Err(e)) => Err(Refusal::BadHeader(e)),
        Ok(Ok(line)) => {
            let book: Arc<AddressBook> = shared.book.borrow().clone();
            route(&line, &shared.node_id, &book)
        }
    };
    let target = match routed {
        Ok(target) => target,
        Err(refusal) => return refuse(stream, refusal, "", &shared).await,
    };
    let dialled = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&target.address)).await;
    let mut tcp = match dialled {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            let refusal = Refusal::DialFailed(e.to_string());
            return refuse(stream, refusal, &target.node_id, &shared).await;
        }
        Err(_) => {
            let refusal = Refusal::DialFailed(format!("no answer within {DIAL_TIMEOUT:?}"));
            return refuse(stream, refusal, &target.node_id, &shared).await;
        }
    };
    let _ = tcp.set_nodelay(true);
    if let Err(e) = answer(&mut stream, Ok(())).await {
        warn!(kind = "outbound", node = %target.node_id, error = %e, "enclave went away before the answer");
        return;
    }
    info!(kind = "outbound", node = %target.node_id, address = %target.address, "connection opened");
    let spliced = splice(&mut tcp, &mut stream, shared.idle_timeout, &shared.metrics).await;
    let peer = format!("{} ({})", target.node_id, target.address);
    log_closed(Kind::Outbound, &peer, &spliced, started);
}

async fn refuse(mut stream: Stream, refusal: Refusal, node: &str, shared: &Shared) {
    shared.metrics.refused(refusal.reason());
    let message = refusal.message();
    warn!(kind = "outbound", node, reason = %message, "connection refused");
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, answer(&mut stream, Err(&message))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> AddressBook {
        [
            ("node-1", "10.0.0.1:9000"),
            ("node-2", "10.0.0.2:9000"),
            ("node-3", "node-3.example:9000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn listed_nodes_are_routed_to_their_address() {
        assert_eq!(
            route("CONNECT node-2", "node-1", &book()),
            Ok(Target {
                node_id: "node-2".into(),
                address: "10.0.0.2:9000".into()
            })
        );
    }

    #[test]
    fn unknown_and_own_nodes_are_refused() {
        let unknown = route("CONNECT node-9", "node-1", &book()).unwrap_err();
        assert_eq!(unknown, Refusal::UnknownNode);
        assert_eq!(unknown.message(), "unknown node");
        assert_eq!(unknown.reason(), Refused::UnknownNode);
        let own = route("CONNECT node-1", "node-1", &book()).unwrap_err();
        assert_eq!(own, Refusal::OwnNode);
        assert_eq!(own.reason(), Refused::OwnNode);
        // Even when the manifest does not list this node.
        assert_eq!(
            route("CONNECT node-7", "node-7", &AddressBook::new()),
            Err(Refusal::OwnNode)
        );
    }

    #[test]
    fn addresses_and_junk_are_not_node_ids() {
        for line in [
            "CONNECT 10.0.0.2:9000",
            "CONNECT node-2 extra",
            "connect node-2",
            "CONNECT ",
            "",
            "GET / HTTP/1.1",
        ] {
            let refusal = route(line, "node-1", &book()).unwrap_err();
            assert!(matches!(refusal, Refusal::BadHeader(_)), "{line}");
            assert_eq!(refusal.reason(), Refused::BadHeader);
        }
    }

    #[tokio::test]
    async fn refusals_are_one_line() {
        let (mut parent, mut node) = tokio::io::duplex(256);
        let reason = Refusal::DialFailed("connection refused (os error 111)\nx".into());
        answer(&mut parent, Err(&reason.message())).await.unwrap();
        drop(parent);
        assert_eq!(
            read_line(&mut node).await.unwrap(),
            "ERR dial failed: connection refused (os error 111) x"
        );
    }
}
