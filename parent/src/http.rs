//! Just enough HTTP/1.1 for `GET /healthz` and `GET /metrics`: a bounded request-head
//! parser, routing, and responses that always close the connection.

use serde_json::{Value, json};

/// Largest request head (request line and headers) accepted.
pub const MAX_REQUEST_LEN: usize = 8 * 1024;
/// Longest status line read from the enclave.
pub const MAX_STATUS_LINE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head longer than {MAX_REQUEST_LEN} bytes")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::TooLarge => 431,
            HttpError::Malformed(_) => 400,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target without its query string.
    pub path: String,
}

/// Parses a request head from the bytes received so far: `Ok(None)` until the blank
/// line that ends it has arrived. Bytes after the head (a body) are ignored.
pub fn parse_request(buf: &[u8]) -> Result<Option<Request>, HttpError> {
    let Some(end) = head_end(buf) else {
        return if buf.len() >= MAX_REQUEST_LEN {
            Err(HttpError::TooLarge)
        } else {
            Ok(None)
        };
    };
    if end > MAX_REQUEST_LEN {
        return Err(HttpError::TooLarge);
    }
    let head = buf
        .get(..end)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or(HttpError::Malformed("not UTF-8"))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(HttpError::Malformed("empty"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed("request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::Malformed("method"));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(HttpError::Malformed("target"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Malformed("version"));
    }
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, _) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("header without ':'"))?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(HttpError::Malformed("header name"));
        }
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok(Some(Request {
        method: method.to_owned(),
        path: path.to_owned(),
    }))
}

/// Length of the head including its terminating blank line, if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Metrics,
    MethodNotAllowed,
    NotFound,
}

pub fn route(request: &Request) -> Route {
    let known = match request.path.as_str() {
        "/healthz" => Route::Healthz,
        "/metrics" => Route::Metrics,
        _ => return Route::NotFound,
    };
    if request.method == "GET" {
        known
    } else {
        Route::MethodNotAllowed
    }
}

/// A complete response; the connection is closed after it.
pub fn response(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\n{allow}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn text_response(status: u16, body: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", body)
}

pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the last look at the enclave's status port found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub reachable: bool,
    pub phase: Option<String>,
}

impl Probe {
    pub const UNREACHABLE: Probe = Probe {
        reachable: false,
        phase: None,
    };

    /// Reads the enclave's status line, opaque JSON of which only `phase` is used.
    pub fn from_status_line(line: &[u8]) -> Probe {
        let phase = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("phase")?.as_str().map(str::to_owned));
        Probe {
            reachable: true,
            phase,
        }
    }

    /// The `/healthz` status and JSON body: 200 only when the enclave runs.
    pub fn health(&self) -> (u16, String) {
        let status = if self.reachable && self.phase.as_deref() == Some("running") {
            200
        } else {
            503
        };
        let body = json!({ "enclave_reachable": self.reachable, "phase": self.phase });
        (status, format!("{body}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
        }
    }

    #[test]
    fn parses_complete_heads_only() {
        assert_eq!(parse_request(b""), Ok(None));
        assert_eq!(
            parse_request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        );
        assert_eq!(
            parse_request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Some(get("/healthz")))
        );
        assert_eq!(
            parse_request(b"GET /metrics?x=1 HTTP/1.0\n\n"),
            Ok(Some(get("/metrics")))
        );
    }

    #[test]
    fn refuses_malformed_requests() {
        for bad in [
            &b"GET /healthz\r\n\r\n"[..],
            b"GET  /healthz HTTP/1.1\r\n\r\n",
            b"get /healthz HTTP/1.1\r\n\r\n",
            b"GET healthz HTTP/1.1\r\n\r\n",
            b"GET /healthz HTTP/2\r\n\r\n",
            b"GET /healthz HTTP/1.1 extra\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nbad name: x\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            let err = parse_request(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn request_size_limit_at_exactly_max_and_one_more() {
        let head = |len: usize| {
            let start = b"GET /healthz HTTP/1.1\r\nX: ";
            let mut h = start.to_vec();
            h.resize(len - 4, b'a');
            h.extend_from_slice(b"\r\n\r\n");
            h
        };
        assert_eq!(
            parse_request(&head(MAX_REQUEST_LEN)),
            Ok(Some(get("/healthz")))
        );
        assert_eq!(
            parse_request(&head(MAX_REQUEST_LEN + 1)),
            Err(HttpError::TooLarge)
        );
        // A head that never ends is refused once the limit is reached.
        assert_eq!(parse_request(&vec![b'a'; MAX_REQUEST_LEN - 1]), Ok(None));
        assert_eq!(
            parse_request(&vec![b'a'; MAX_REQUEST_LEN]),
            Err(HttpError::TooLarge)
        );
    }

    #[test]
    fn routes() {
        assert_eq!(route(&get("/healthz")), Route::Healthz);
        assert_eq!(route(&get("/metrics")), Route::Metrics);
        assert_eq!(route(&get("/")), Route::NotFound);
        assert_eq!(route(&get("/healthz/")), Route::NotFound);
        let post = Request {
            method: "POST".into(),
            path: "/metrics".into(),
        };
        assert_eq!(route(&post), Route::MethodNotAllowed);
    }

    #[test]
    fn responses_are_complete() {
        let r = String::from_utf8(response(503, "application/json", "{}\n")).unwrap();
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
        assert!(r.contains("\r\nContent-Length: 3\r\n"), "{r}");
        assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n{}\n"), "{r}");
        let r = String::from_utf8(text_response(405, "")).unwrap();
        assert!(r.contains("\r\nAllow: GET\r\n"), "{r}");
    }

    #[test]
    fn health_from_status_lines() {
        let running = Probe::from_status_line(br#"{"node_id":"node-1","phase":"running"}"#);
        assert_eq!(
            running.health(),
            (
                200,
                "{\"enclave_reachable\":true,\"phase\":\"running\"}\n".into()
            )
        );
        let booting = Probe::from_status_line(br#"{"phase":"provisioning"}"#);
        assert_eq!(booting.health().0, 503);
        assert!(booting.health().1.contains("\"phase\":\"provisioning\""));
        for junk in [&b"not json"[..], b"{\"phase\":7}", b"[]", b""] {
            let p = Probe::from_status_line(junk);
            assert_eq!(
                p,
                Probe {
                    reachable: true,
                    phase: None
                }
            );
            assert_eq!(p.health().0, 503);
        }
        assert_eq!(
            Probe::UNREACHABLE.health(),
            (503, "{\"enclave_reachable\":false,\"phase\":null}\n".into())
        );
    }
}
