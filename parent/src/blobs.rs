//! The blob store for the node's sealed state: the directory store shared with nodes that
//! keep their own blobs ([`transport::blob_dir`]: one file per blob, atomic writes), and
//! how the blob-store listener serves one request from it and counts the outcome.

use crate::metrics::{BlobOp, BlobResult};
use transport::blob::{Request, Response};
pub use transport::blob_dir::{
    DirError as BlobError, DirStore as BlobStore, is_disk_full, undecodable,
};

/// Serves one request from the store: the response and how to count it.
pub fn handle(store: &BlobStore, request: Request) -> (Response, BlobOp, BlobResult) {
    let (op, outcome) = match request {
        Request::Put { name, data } => (
            BlobOp::Put,
            store.put(&name, &data).map(|()| Response::Done),
        ),
        Request::Get { name } => (
            BlobOp::Get,
            store
                .get(&name)
                .map(|d| d.map_or(Response::NotFound, Response::Data)),
        ),
        Request::List { prefix } => (BlobOp::List, store.list(&prefix).map(Response::Names)),
        Request::Delete { name } => (
            BlobOp::Delete,
            store.delete(&name).map(|found| {
                if found {
                    Response::Done
                } else {
                    Response::NotFound
                }
            }),
        ),
    };
    match outcome {
        Ok(Response::NotFound) => (Response::NotFound, op, BlobResult::NotFound),
        Ok(response) => (response, op, BlobResult::Ok),
        Err(e) => {
            let result = if matches!(e, BlobError::DiskFull { .. }) {
                BlobResult::DiskFull
            } else {
                BlobResult::Error
            };
            (e.to_response(), op, result)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use transport::blob::{ErrorKind, MAX_BLOB_LEN};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "parent-blobs-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn invalid_names_are_refused_and_counted() {
        let tmp = TempDir::new("names");
        let (store, _) = BlobStore::open(&tmp.0).unwrap();
        let (response, op, result) = handle(
            &store,
            Request::Get {
                name: "../x".into(),
            },
        );
        assert!(matches!(
            response,
            Response::Error {
                kind: ErrorKind::InvalidName,
                ..
            }
        ));
        assert_eq!((op, result), (BlobOp::Get, BlobResult::Error));
    }

    #[test]
    fn a_blob_grown_past_the_limit_is_answered_too_large() {
        let tmp = TempDir::new("size");
        let (store, _) = BlobStore::open(&tmp.0).unwrap();
        std::fs::write(tmp.0.join("grown"), vec![0xa5; MAX_BLOB_LEN + 1]).unwrap();
        let (response, _, _) = handle(
            &store,
            Request::Get {
                name: "grown".into(),
            },
        );
        assert!(matches!(
            response,
            Response::Error {
                kind: ErrorKind::TooLarge,
                ..
            }
        ));
    }

    #[test]
    fn requests_are_counted_by_outcome() {
        let tmp = TempDir::new("handle");
        let (store, _) = BlobStore::open(&tmp.0).unwrap();
        let put = Request::Put {
            name: "a".into(),
            data: vec![1],
        };
        assert_eq!(
            handle(&store, put),
            (Response::Done, BlobOp::Put, BlobResult::Ok)
        );
        assert_eq!(
            handle(&store, Request::Get { name: "a".into() }),
            (Response::Data(vec![1]), BlobOp::Get, BlobResult::Ok)
        );
        assert_eq!(
            handle(&store, Request::Delete { name: "b".into() }),
            (Response::NotFound, BlobOp::Delete, BlobResult::NotFound)
        );
        assert_eq!(
            handle(
                &store,
                Request::List {
                    prefix: String::new()
                }
            ),
            (
                Response::Names(vec!["a".into()]),
                BlobOp::List,
                BlobResult::Ok
            )
        );
    }
}
