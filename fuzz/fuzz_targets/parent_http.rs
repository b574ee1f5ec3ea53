//! Arbitrary bytes as an HTTP request head on the parent's admin port. Parsing may not
//! panic; a parsed request has an uppercase method and a path starting with '/'; more
//! than the limit without a complete head is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parent::http::{MAX_REQUEST_LEN, parse_request};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(Some(request)) => {
            assert!(!request.method.is_empty());
            assert!(request.method.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(request.path.starts_with('/'));
            assert!(!request.path.contains('?'));
        }
        Ok(None) => assert!(data.len() < MAX_REQUEST_LEN),
        Err(_) => {}
    }
});
