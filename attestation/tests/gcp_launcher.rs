//! The launcher client against a fake launcher on a temporary Unix socket: the request
//! it sends, the bundle it makes of a good answer, and the answers it refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::gcp::launcher::Launcher;
use attestation::gcp::{CUSTODY_AUDIENCE, MAX_TOKEN_LEN};
use attestation::{AttestError, AttestationRequest, Attester, Provider};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A fake launcher that answers one request with what `answer` makes of it, and hands
/// the request back when joined.
struct Fake {
    dir: PathBuf,
    socket: PathBuf,
    thread: Option<JoinHandle<Vec<u8>>>,
}

impl Fake {
    fn serve(answer: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static) -> Fake {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fake-launcher-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("teeserver.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let request = read_request(&mut stream);
            let response = answer(&request);
            // The client may have given up already; that is its test's business.
            let _ = stream.write_all(&response);
            request
        });
        Fake {
            dir,
            socket,
            thread: Some(thread),
        }
    }

    fn launcher(&self) -> Launcher {
        Launcher::new(&self.socket).with_timeout(Duration::from_secs(5))
    }

    fn request(mut self) -> Vec<u8> {
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The head and the `Content-Length` body of one request.
fn read_request(stream: &mut impl Read) -> Vec<u8> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap() == 0 {
            return request;
        }
        request.push(byte[0]);
    }
    let head = String::from_utf8(request.clone()).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    request.extend_from_slice(&body);
    request
}

fn body_of(request: &[u8]) -> serde_json::Value {
    let text = std::str::from_utf8(request).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

/// As Go's server sends a body of unknown length to an HTTP/1.1 client.
fn ok_chunked(body: &[u8]) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for chunk in body.chunks(4000) {
        r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        r.extend_from_slice(chunk);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

#[test]
fn the_request_is_a_minimal_post_with_the_launchers_fields() {
    let fake = Fake::serve(|_| ok(b"eyJ.token.body"));
    let token = fake
        .launcher()
        .token(CUSTODY_AUDIENCE, &["0123456789", &"n".repeat(74)])
        .unwrap();
    assert_eq!(token, b"eyJ.token.body");
    let request = fake.request();
    let text = String::from_utf8(request.clone()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    assert_eq!(lines.next(), Some("POST /v1/token HTTP/1.1"));
    let headers: Vec<&str> = lines.collect();
    assert!(headers.contains(&"Connection: close"), "{headers:?}");
    assert!(
        headers.contains(&"Content-Type: application/json"),
        "{headers:?}"
    );
    assert!(
        headers.contains(&format!("Content-Length: {}", body.len()).as_str()),
        "{headers:?}"
    );
    assert_eq!(
        body_of(&request),
        serde_json::json!({
            "audience": "tee-custody",
            "token_type": "PKI",
            "nonces": ["0123456789", "n".repeat(74)],
        })
    );
}

/// What an error must look like.
type Expected = fn(&AttestError) -> bool;

#[test]
fn refusals_oversized_and_malformed_answers_are_errors() {
    let cases: Vec<(Vec<u8>, Expected)> = vec![
        (
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 18\r\n\r\ntoken_type invalid".to_vec(),
            |e| matches!(e, AttestError::Refused(m) if m.contains("400") && m.contains("token_type")),
        ),
        (
            b"HTTP/1.1 429 Too Many Requests\r\n\r\nrate limit exceeded".to_vec(),
            |e| matches!(e, AttestError::Refused(m) if m.contains("429")),
        ),
        (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                MAX_TOKEN_LEN + 1
            )
            .into_bytes(),
            |e| matches!(e, AttestError::UnexpectedResponse(_)),
        ),
        (
            [
                b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
                vec![b'e'; MAX_TOKEN_LEN + 1],
            ]
            .concat(),
            |e| matches!(e, AttestError::UnexpectedResponse(_)),
        ),
        (ok_chunked(&vec![b'e'; MAX_TOKEN_LEN + 1]), |e| {
            matches!(e, AttestError::UnexpectedResponse(_))
        }),
        (b"SSH-2.0-OpenSSH\r\n".to_vec(), |e| {
            matches!(e, AttestError::UnexpectedResponse(_))
        }),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
            |e| matches!(e, AttestError::UnexpectedResponse(_)),
        ),
        (Vec::new(), |e| {
            matches!(e, AttestError::UnexpectedResponse(_))
        }),
    ];
    for (i, (response, expected)) in cases.into_iter().enumerate() {
        let fake = Fake::serve(move |_| response);
        let err = fake.launcher().token("aud", &["0123456789"]).unwrap_err();
        assert!(expected(&err), "case {i}: {err:?}");
        fake.request();
    }
    // A body at the limit is read whole.
    let fake = Fake::serve(|_| ok_chunked(&vec![b'e'; MAX_TOKEN_LEN]));
    assert_eq!(
        fake.launcher().token("aud", &[]).unwrap().len(),
        MAX_TOKEN_LEN
    );
}

#[test]
fn a_silent_launcher_times_out_and_a_missing_one_is_unavailable() {
    let fake = Fake::serve(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        Vec::new()
    });
    let err = fake
        .launcher()
        .with_timeout(Duration::from_millis(200))
        .token("aud", &["0123456789"])
        .unwrap_err();
    assert!(matches!(err, AttestError::Unavailable(_)), "{err:?}");
    fake.request();
    let missing = Launcher::new(std::env::temp_dir().join("no-such-launcher.sock"));
    assert_eq!(missing.provider(), Provider::GcpCs);
    assert!(matches!(
        missing.attest(&AttestationRequest::default()),
        Err(AttestError::Unavailable(_))
    ));
}

#[test]
fn an_answer_that_is_not_a_token_is_refused() {
    let fake = Fake::serve(|_| ok(b"<html>not a token</html>"));
    let err = fake
        .launcher()
        .attest(&AttestationRequest::default())
        .unwrap_err();
    assert!(
        matches!(&err, AttestError::UnexpectedResponse(m) if m.contains("not a token")),
        "{err:?}"
    );
    fake.request();
}

#[cfg(feature = "sim")]
#[test]
fn a_token_for_the_binding_nonce_becomes_a_bundle_that_verifies() {
    use attestation::Verifier;
    use attestation::gcp::binding_nonce;
    use attestation::gcp::sim::{SimCsAttester, SimCsCa, SimWorkload};
    use std::sync::Arc;
    use std::time::SystemTime;

    let now = SystemTime::now();
    let ca = SimCsCa::new(now).unwrap();
    let root = ca.root_der().to_vec();
    let signer =
        Arc::new(SimCsAttester::new(&ca, SimWorkload::of_image(b"image", "node-1"), now).unwrap());
    // The fake signs whatever nonce it is asked for, as the launcher does.
    let fake = Fake::serve(move |request| {
        let body = body_of(request);
        let (header, mut claims) = signer
            .parts(&AttestationRequest::default(), SystemTime::now())
            .unwrap();
        claims.insert("eat_nonce".to_owned(), body["nonces"].clone());
        ok_chunked(signer.sign(&header, &claims).unwrap().as_bytes())
    });
    let request = AttestationRequest {
        nonce: Some(vec![7; 32]),
        public_key: Some(b"tls key".to_vec()),
        user_data: Some(vec![8; 32]),
    };
    let bundle = fake.launcher().attest(&request).unwrap();
    let sent = body_of(&fake.request());
    assert_eq!(
        sent["nonces"],
        serde_json::json!([binding_nonce(
            Some(&[7; 32]),
            Some(b"tls key"),
            Some(&[8; 32])
        )])
    );
    let verified = Verifier::production()
        .trust_simulated_gcp_root(&root, now)
        .unwrap()
        .verify(&bundle, now)
        .unwrap();
    let binding = verified.binding();
    assert_eq!(binding.nonce, request.nonce.as_deref());
    assert_eq!(binding.public_key, request.public_key.as_deref());
    assert_eq!(binding.user_data, request.user_data.as_deref());
}
