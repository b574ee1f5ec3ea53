//! The admin endpoint: `GET /healthz` (asks the enclave's status port) and
//! `GET /metrics`. One request per connection.

use crate::http::{self, HttpError, MAX_STATUS_LINE, METRICS_CONTENT_TYPE, Probe, Route};
use crate::server::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};
use transport::{Backend, VsockAddr};

/// How long a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the enclave has to accept and answer a status probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Admin connections served at once; more are closed at once.
pub const MAX_ADMIN_CONNECTIONS: usize = 32;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let permits = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                warn!(kind = "admin", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            warn!(
                kind = "admin",
                "connection refused: too many admin connections"
            );
            continue;
        };
        let tracked = shared.tracker.enter();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_connection(tcp, &shared).await;
            drop((permit, tracked));
        });
    }
}

async fn serve_connection(mut tcp: TcpStream, shared: &Shared) {
    let reply = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut tcp)).await {
        Err(_) => http::text_response(408, "request timeout\n"),
        Ok(Err(Some(e))) => http::text_response(e.status(), &format!("{e}\n")),
        Ok(Err(None)) => return,
        Ok(Ok(request)) => match http::route(&request) {
            Route::Healthz => {
                let addr = VsockAddr::new(shared.enclave_cid, transport::ports::NODE_STATUS);
                let probe = probe(&shared.backend, addr).await;
                shared.metrics.set_enclave_reachable(probe.reachable);
                debug!(reachable = probe.reachable, phase = ?probe.phase, "health probe");
                let (status, body) = probe.health();
                http::response(status, "application/json", &body)
            }
            Route::Metrics => http::response(200, METRICS_CONTENT_TYPE, &shared.metrics.render()),
            Route::MethodNotAllowed => http::text_response(405, "method not allowed\n"),
            Route::NotFound => http::text_response(404, "not found\n"),
        },
    };
    if let Err(e) = tcp.write_all(&reply).await {
        debug!(kind = "admin", error = %e, "response not delivered");
    }
    let _ = tcp.shutdown().await;
}

/// Reads a request head; `Err(None)` when the connection failed or closed early.
async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<http::Request, Option<HttpError>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(request) = http::parse_request(&buf)? {
            return Ok(request);
        }
        let n = reader.read(&mut chunk).await.map_err(|_| None)?;
        if n == 0 {
            return Err(None);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Reads one status line (at most [`MAX_STATUS_LINE`] bytes) from the enclave.
pub async fn probe(backend: &Backend, addr: VsockAddr) -> Probe {
    let attempt = async {
        let mut stream = backend.connect(addr).await.ok()?;
        Some(read_status_line(&mut stream).await)
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(Probe::UNREACHABLE)
}

async fn read_status_line<R: AsyncRead + Unpin>(reader: &mut R) -> Probe {
    let mut line = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = chunk.get(..n).unwrap_or_default();
        match chunk.iter().position(|b| *b == b'\n') {
            Some(end) => {
                line.extend_from_slice(chunk.get(..end).unwrap_or_default());
                break;
            }
            None => line.extend_from_slice(chunk),
        }
        if line.len() > MAX_STATUS_LINE {
            break;
        }
    }
    if line.len() > MAX_STATUS_LINE {
        return Probe {
            reachable: true,
            phase: None,
        };
    }
    Probe::from_status_line(&line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::MAX_REQUEST_LEN;

    #[tokio::test]
    async fn reads_requests_up_to_the_limit() {
        let mut ok: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(read_request(&mut ok).await.unwrap().path, "/metrics");
        let long = [
            b"GET /metrics HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; MAX_REQUEST_LEN],
        ]
        .concat();
        assert_eq!(
            read_request(&mut long.as_slice()).await.unwrap_err(),
            Some(HttpError::TooLarge)
        );
        let mut early: &[u8] = b"GET /metrics HTTP/1.1\r\n";
        assert_eq!(read_request(&mut early).await.unwrap_err(), None);
    }

    #[tokio::test]
    async fn status_lines() {
        let mut input: &[u8] = b"{\"phase\":\"running\"}\nignored";
        assert_eq!(
            read_status_line(&mut input).await.phase.as_deref(),
            Some("running")
        );
        let mut unterminated: &[u8] = b"{\"phase\":\"sealed\"}";
        assert_eq!(
            read_status_line(&mut unterminated).await.phase.as_deref(),
            Some("sealed")
        );
        let long = [
            b"{\"phase\":\"running\",\"x\":\"".as_slice(),
            &[b'a'; MAX_STATUS_LINE],
            b"\"}\n",
        ]
        .concat();
        let probe = read_status_line(&mut long.as_slice()).await;
        assert_eq!(
            probe,
            Probe {
                reachable: true,
                phase: None
            }
        );
    }

    #[tokio::test]
    async fn unreachable_enclave() {
        let dir = std::env::temp_dir().join(format!("parent-admin-{}", std::process::id()));
        let backend = Backend::Unix { dir };
        let probe = probe(&backend, VsockAddr::new(16, 5002)).await;
        assert_eq!(probe, Probe::UNREACHABLE);
    }
}
