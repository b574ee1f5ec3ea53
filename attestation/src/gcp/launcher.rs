//! The Confidential Space launcher as an [`Attester`]: the real one, in every build.
//!
//! Inside a Confidential Space VM the launcher serves tokens to the workload on a Unix
//! socket ([`DEFAULT_LAUNCHER_SOCKET`]): `POST /v1/token` with the audience, the token
//! type (PKI: the `x5c` form this crate verifies offline) and up to six nonces. This
//! client speaks the least HTTP/1.1 that takes: one request with `Content-Length` and
//! `Connection: close`, blocking I/O with timeouts, and a response whose status line,
//! headers and body are each bounded before they are read. The launcher is a Go server
//! that sends a body of unknown length chunked; a body may also come with a length or
//! run to the end of the connection.
//!
//! The launcher is part of the trusted image, but its answer is still parsed as
//! untrusted bytes: whatever it returns, the peer's verifier decides.

use crate::attester::{AttestError, AttestationRequest, Attester};
use crate::gcp::evidence::{binding_nonce, encode_bundle, validate_request};
use crate::gcp::token::{CsToken, MAX_CLAIM_LEN, MAX_TOKEN_LEN};
use crate::gcp::{CUSTODY_AUDIENCE, DEFAULT_LAUNCHER_SOCKET};
use crate::provider::Provider;
use serde::Serialize;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The launcher's limits on a token request.
pub const MAX_LAUNCHER_NONCES: usize = 6;
pub const MIN_LAUNCHER_NONCE_LEN: usize = 10;
pub const MAX_LAUNCHER_NONCE_LEN: usize = 74;
/// How long one read or write may wait: the launcher asks Google's attestation service,
/// which takes seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest status or header line, and most header lines, of a response.
pub const MAX_LINE_LEN: usize = 1024;
pub const MAX_HEADERS: usize = 32;
/// Longest excerpt of a refusal's body kept for the error.
const MAX_REFUSAL_EXCERPT: usize = 256;

/// A client of the launcher's token endpoint.
#[derive(Debug, Clone)]
pub struct Launcher {
    socket: PathBuf,
    timeout: Duration,
}

#[derive(Serialize)]
struct TokenRequest<'a> {
    audience: &'a str,
    token_type: &'static str,
    nonces: &'a [&'a str],
}

impl Default for Launcher {
    fn default() -> Self {
        Self::new(DEFAULT_LAUNCHER_SOCKET)
    }
}

impl Launcher {
    /// The launcher serving on the Unix socket at `socket_path`.
    pub fn new(socket_path: impl Into<PathBuf>) -> Self {
        Launcher {
            socket: socket_path.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// How long one read or write on the socket may wait (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A PKI token for `audience` whose `eat_nonce` holds `nonces`, as the launcher
    /// returns it. The launcher's limits are checked before anything is sent.
    pub fn token(&self, audience: &str, nonces: &[&str]) -> Result<Vec<u8>, AttestError> {
        check_request(audience, nonces)?;
        let body = serde_json::to_vec(&TokenRequest {
            audience,
            token_type: "PKI",
            nonces,
        })
        .map_err(|e| AttestError::UnexpectedResponse(format!("request encoding: {e}")))?;
        let unavailable =
            |e: std::io::Error| AttestError::Unavailable(format!("{}: {e}", self.socket.display()));
        let mut stream = UnixStream::connect(&self.socket).map_err(unavailable)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(unavailable)?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(unavailable)?;
        let mut request = format!(
            "POST /v1/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        stream.write_all(&request).map_err(unavailable)?;
        stream.flush().map_err(unavailable)?;
        read_response(stream)
    }
}

impl Attester for Launcher {
    fn provider(&self) -> Provider {
        Provider::GcpCs
    }

    /// Asks for a token whose one nonce is [`binding_nonce`] of `request`, and returns
    /// the bundle carrying both.
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttestError> {
        validate_request(request)?;
        let nonce = binding_nonce(
            request.nonce.as_deref(),
            request.public_key.as_deref(),
            request.user_data.as_deref(),
        );
        let token = self.token(CUSTODY_AUDIENCE, &[&nonce])?;
        // Only a token travels: anything else would fail at the peer, less clearly.
        CsToken::parse(&token)
            .map_err(|e| AttestError::UnexpectedResponse(format!("not a token: {e}")))?;
        let token = String::from_utf8(token)
            .map_err(|_| AttestError::UnexpectedResponse("not a token".to_owned()))?;
        Ok(encode_bundle(
            &token,
            request.nonce.as_deref(),
            request.public_key.as_deref(),
            request.user_data.as_deref(),
        ))
    }
}

/// The launcher's limits: an audience, at most six nonces of 10 to 74 bytes.
fn check_request(audience: &str, nonces: &[&str]) -> Result<(), AttestError> {
    let limit = |what, found, min, max| AttestError::LauncherLimit {
        what,
        found,
        min,
        max,
    };
    if audience.is_empty() || audience.len() > MAX_CLAIM_LEN {
        return Err(limit("audience length", audience.len(), 1, MAX_CLAIM_LEN));
    }
    if nonces.len() > MAX_LAUNCHER_NONCES {
        return Err(limit("nonce count", nonces.len(), 0, MAX_LAUNCHER_NONCES));
    }
    for nonce in nonces {
        if !(MIN_LAUNCHER_NONCE_LEN..=MAX_LAUNCHER_NONCE_LEN).contains(&nonce.len()) {
            return Err(limit(
                "nonce length",
                nonce.len(),
                MIN_LAUNCHER_NONCE_LEN,
                MAX_LAUNCHER_NONCE_LEN,
            ));
        }
    }
    Ok(())
}

fn bad(what: impl Into<String>) -> AttestError {
    AttestError::UnexpectedResponse(what.into())
}

fn io_err(e: std::io::Error) -> AttestError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            AttestError::Unavailable("the launcher did not answer in time".to_owned())
        }
        _ => AttestError::Unavailable(format!("reading the launcher's answer: {e}")),
    }
}

/// How the body's end is known.
enum Framing {
    Length(usize),
    Chunked,
    ToEof,
}

/// Reads a response: a 200 status, bounded headers, and a body of at most
/// [`MAX_TOKEN_LEN`] bytes.
pub(crate) fn read_response(reader: impl Read) -> Result<Vec<u8>, AttestError> {
    let mut r = BufReader::new(reader);
    let status_line = read_line(&mut r)?
        .ok_or_else(|| bad("the launcher closed the connection without an answer"))?;
    let status = parse_status(&status_line)?;
    let mut framing = None;
    let mut headers = 0usize;
    loop {
        let line =
            read_line(&mut r)?.ok_or_else(|| bad("the connection closed inside the headers"))?;
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(bad(format!("more than {MAX_HEADERS} header lines")));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("a header line without a colon"))?;
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        let this = if name.eq_ignore_ascii_case("content-length") {
            let len = value
                .parse::<usize>()
                .ok()
                .filter(|_| !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad("Content-Length is not a number"))?;
            Framing::Length(len)
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(bad("a transfer encoding other than chunked"));
            }
            Framing::Chunked
        } else {
            continue;
        };
        // One framing, given once: two would let two readers see two bodies.
        if framing.is_some() {
            return Err(bad("the body's length is given twice"));
        }
        framing = Some(this);
    }
    if status != 200 {
        let mut excerpt = Vec::new();
        // The excerpt is for a person; a failure to read it changes nothing.
        let _ = r.take(MAX_REFUSAL_EXCERPT as u64).read_to_end(&mut excerpt);
        let text: String = String::from_utf8_lossy(&excerpt)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        return Err(AttestError::Refused(format!(
            "the launcher answered {status}: {}",
            text.trim()
        )));
    }
    match framing.unwrap_or(Framing::ToEof) {
        Framing::Length(len) => {
            if len > MAX_TOKEN_LEN {
                return Err(too_large(len));
            }
            let mut body = Vec::with_capacity(len);
            r.take(len as u64).read_to_end(&mut body).map_err(io_err)?;
            if body.len() != len {
                return Err(bad(format!(
                    "the body ended after {} of its {len} bytes",
                    body.len()
                )));
            }
            Ok(body)
        }
        Framing::ToEof => {
            let mut body = Vec::new();
            r.take(MAX_TOKEN_LEN as u64 + 1)
                .read_to_end(&mut body)
                .map_err(io_err)?;
            if body.len() > MAX_TOKEN_LEN {
                return Err(too_large(body.len()));
            }
            Ok(body)
        }
        Framing::Chunked => read_chunked(&mut r),
    }
}

fn too_large(len: usize) -> AttestError {
    bad(format!(
        "the body is {len} bytes or more, a token is at most {MAX_TOKEN_LEN}"
    ))
}

/// A chunked body (RFC 9112, 7.1), at most [`MAX_TOKEN_LEN`] bytes in all; extensions
/// are ignored and trailers read and dropped, within the header limits.
fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, AttestError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| bad("the connection closed inside the body"))?;
        let size = line.split(';').next().unwrap_or_default().trim();
        if size.is_empty() || size.len() > 8 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("a chunk size that is not hex"));
        }
        let size =
            usize::from_str_radix(size, 16).map_err(|_| bad("a chunk size that is not hex"))?;
        if size == 0 {
            break;
        }
        let total = body.len().saturating_add(size);
        if total > MAX_TOKEN_LEN {
            return Err(too_large(total));
        }
        let before = body.len();
        r.take(size as u64).read_to_end(&mut body).map_err(io_err)?;
        if body.len() - before != size {
            return Err(bad("the connection closed inside a chunk"));
        }
        if read_line(r)?.as_deref() != Some("") {
            return Err(bad("a chunk not followed by its line end"));
        }
    }
    for _ in 0..=MAX_HEADERS {
        match read_line(r)? {
            Some(line) if line.is_empty() => return Ok(body),
            Some(_) => {}
            None => return Err(bad("the connection closed inside the trailers")),
        }
    }
    Err(bad(format!("more than {MAX_HEADERS} trailer lines")))
}

/// One line ending in CRLF, at most [`MAX_LINE_LEN`] bytes before it, as text; `None`
/// at the end of the input before any byte of it.
fn read_line(r: &mut impl BufRead) -> Result<Option<String>, AttestError> {
    let mut line = Vec::new();
    r.take(MAX_LINE_LEN as u64 + 2)
        .read_until(b'\n', &mut line)
        .map_err(io_err)?;
    if line.is_empty() {
        return Ok(None);
    }
    let Some(text) = line.strip_suffix(b"\r\n") else {
        return Err(if line.len() > MAX_LINE_LEN {
            bad(format!("a line longer than {MAX_LINE_LEN} bytes"))
        } else {
            bad("a line that does not end in CRLF")
        });
    };
    String::from_utf8(text.to_vec())
        .map(Some)
        .map_err(|_| bad("a line that is not UTF-8"))
}

/// `HTTP/1.1 200 OK` (or HTTP/1.0): the status code.
fn parse_status(line: &str) -> Result<u16, AttestError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0")
        || code.len() != 3
        || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad(format!(
            "not an HTTP/1.1 status line: {:?}",
            crate::gcp::json::shorten(line)
        )));
    }
    code.parse()
        .map_err(|_| bad("a status that is not a number"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn response(text: &str) -> Result<Vec<u8>, AttestError> {
        read_response(text.as_bytes())
    }

    #[test]
    fn bodies_by_length_chunked_or_to_the_end() {
        assert_eq!(
            response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\neyJab").unwrap(),
            b"eyJab"
        );
        assert_eq!(
            response(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n\
                 3\r\neyJ\r\n2;ext=1\r\nab\r\n0\r\nTrailer: x\r\n\r\n"
            )
            .unwrap(),
            b"eyJab"
        );
        assert_eq!(response("HTTP/1.0 200 OK\r\n\r\neyJab").unwrap(), b"eyJab");
    }

    #[test]
    fn malformed_responses_are_refused() {
        for text in [
            "",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 200 OK\n\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\neyJab",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\neyJab",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\neyJ",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\neyJ\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\neyJ\r\n",
        ] {
            assert!(
                matches!(response(text), Err(AttestError::UnexpectedResponse(_))),
                "{text:?}: {:?}",
                response(text)
            );
        }
    }

    #[test]
    fn header_limits_at_max_and_one_more() {
        let with_headers = |n: usize| {
            let mut text = "HTTP/1.1 200 OK\r\n".to_owned();
            for i in 0..n {
                text.push_str(&format!("X-{i}: v\r\n"));
            }
            text.push_str("\r\neyJ");
            text
        };
        assert_eq!(response(&with_headers(MAX_HEADERS)).unwrap(), b"eyJ");
        assert!(response(&with_headers(MAX_HEADERS + 1)).is_err());
        let with_line = |len: usize| {
            let name = "X-Long: ";
            format!(
                "HTTP/1.1 200 OK\r\n{name}{}\r\n\r\neyJ",
                "v".repeat(len - name.len())
            )
        };
        assert_eq!(response(&with_line(MAX_LINE_LEN)).unwrap(), b"eyJ");
        assert!(response(&with_line(MAX_LINE_LEN + 1)).is_err());
    }

    #[test]
    fn body_limits_at_max_and_one_more() {
        let body = |len: usize| "e".repeat(len);
        let by_length = |len: usize| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n{}",
                body(len)
            )
        };
        assert_eq!(
            response(&by_length(MAX_TOKEN_LEN)).unwrap().len(),
            MAX_TOKEN_LEN
        );
        // Refused from its header, before the body is read.
        assert!(
            response(&format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                MAX_TOKEN_LEN + 1
            ))
            .is_err()
        );
        let to_eof = |len: usize| format!("HTTP/1.1 200 OK\r\n\r\n{}", body(len));
        assert_eq!(
            response(&to_eof(MAX_TOKEN_LEN)).unwrap().len(),
            MAX_TOKEN_LEN
        );
        assert!(response(&to_eof(MAX_TOKEN_LEN + 1)).is_err());
        let chunked = |len: usize| {
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n1\r\ne\r\n0\r\n\r\n",
                len - 1,
                body(len - 1)
            )
        };
        assert_eq!(
            response(&chunked(MAX_TOKEN_LEN)).unwrap().len(),
            MAX_TOKEN_LEN
        );
        assert!(response(&chunked(MAX_TOKEN_LEN + 1)).is_err());
    }

    #[test]
    fn a_status_other_than_200_is_a_refusal() {
        let err = response(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 30\r\n\r\nnonce too short\x1b[31m padding",
        )
        .unwrap_err();
        let AttestError::Refused(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("400"), "{message}");
        assert!(message.contains("nonce too short"), "{message}");
        assert!(!message.contains('\x1b'), "{message}");
        for status in ["201 Created", "204 No Content", "302 Found", "500 Internal"] {
            assert!(matches!(
                response(&format!("HTTP/1.1 {status}\r\n\r\n")),
                Err(AttestError::Refused(_))
            ));
        }
    }

    #[test]
    fn request_limits_are_checked_before_sending() {
        let n = |len: usize| "n".repeat(len);
        let (short, long, ok) = (n(9), n(75), n(10));
        check_request("aud", &[&ok, &n(74)]).unwrap();
        check_request("aud", &[]).unwrap();
        check_request("aud", &[ok.as_str(); 6]).unwrap();
        for (audience, nonces) in [
            ("aud", vec![ok.as_str(); 7]),
            ("aud", vec![short.as_str()]),
            ("aud", vec![long.as_str()]),
            ("", vec![ok.as_str()]),
        ] {
            assert!(matches!(
                check_request(audience, &nonces),
                Err(AttestError::LauncherLimit { .. })
            ));
        }
        // Refused without touching the socket, which does not exist.
        let launcher = Launcher::new("/nonexistent/teeserver.sock");
        assert!(matches!(
            launcher.token("aud", &[&short]),
            Err(AttestError::LauncherLimit { .. })
        ));
        assert!(matches!(
            launcher.token("aud", &[&ok]),
            Err(AttestError::Unavailable(_))
        ));
    }
}
