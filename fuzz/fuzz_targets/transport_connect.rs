//! Arbitrary bytes as the CONNECT header a parent reads, as the answer a node reads, and
//! as node ids. Nothing may panic; a line never exceeds the limit nor consumes what
//! follows it; only well-formed ids are accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use transport::connect::{
    HeaderError, MAX_HEADER_LEN, MAX_NODE_ID_LEN, parse_connect, read_line, request,
    validate_node_id,
};

fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a reader that never waits left the future pending"),
    }
}

fn check_id(id: &str) {
    if validate_node_id(id).is_ok() {
        assert!((1..=MAX_NODE_ID_LEN).contains(&id.len()));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        );
    }
}

fn check_connect(line: &str) {
    if let Ok(id) = parse_connect(line) {
        check_id(id);
        assert!(validate_node_id(id).is_ok());
        assert_eq!(line, format!("CONNECT {id}"));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    if let Ok(line) = ready(read_line(&mut input)) {
        assert!(line.len() < MAX_HEADER_LEN);
        assert!(!line.contains('\n'));
        assert_eq!(data.get(line.len()), Some(&b'\n'));
        assert_eq!(input, data.get(line.len() + 1..).unwrap_or_default());
        check_connect(&line);
    }

    let mut stream = tokio::io::join(data, tokio::io::sink());
    match ready(request(&mut stream, "node-1")) {
        Ok(()) => assert!(data.starts_with(b"OK\n")),
        Err(HeaderError::Refused(reason)) => assert!(!reason.contains('\n')),
        Err(_) => {}
    }

    if let Ok(text) = std::str::from_utf8(data) {
        check_id(text);
        check_connect(text);
    }
});
