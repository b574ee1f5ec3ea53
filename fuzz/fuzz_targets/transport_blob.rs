//! Arbitrary bytes as a blob-store request (what the parent reads) and response (what the
//! node reads). Decoding may not panic; whatever decodes must re-encode to the same bytes
//! and decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use transport::blob::{MAX_BLOB_LEN, MAX_LIST_LEN, Request, Response, validate_name};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        match &request {
            Request::Put { name, data } => {
                assert!(validate_name(name).is_ok());
                assert!(data.len() <= MAX_BLOB_LEN);
            }
            Request::Get { name } | Request::Delete { name } => {
                assert!(validate_name(name).is_ok());
            }
            Request::List { prefix } => {
                assert!(prefix.is_empty() || validate_name(prefix).is_ok());
            }
        }
        let bytes = request.encode().expect("a decoded request encodes");
        assert_eq!(bytes, data);
        assert_eq!(Request::decode(&bytes), Ok(request));
    }

    if let Ok(response) = Response::decode(data) {
        if let Response::Names(names) = &response {
            assert!(names.len() <= MAX_LIST_LEN);
            assert!(names.iter().all(|n| validate_name(n).is_ok()));
        }
        let bytes = response.encode().expect("a decoded response encodes");
        assert_eq!(bytes, data);
        assert_eq!(Response::decode(&bytes), Ok(response));
    }
});
