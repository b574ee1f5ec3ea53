//! The parent's blob store, reached over vsock with the [`transport::blob`] protocol: one
//! connection per request, each step under a timeout. A node without a parent keeps its
//! blobs in a directory instead: [`dir`].

use crate::sealed::{BlobError, BlobStore};
use std::time::Duration;
use tokio::time::timeout;
use transport::blob::{MAX_FRAME_LEN, Request, Response};
use transport::frame::{read_frame, write_frame};
use transport::{Backend, PARENT_CID, VsockAddr, ports};

pub mod dir;
pub use dir::DirBlobs;

/// How long connecting, and then sending a request and reading its response, may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ParentBlobs {
    backend: Backend,
    timeout: Duration,
}

impl ParentBlobs {
    pub fn new(backend: Backend) -> Self {
        ParentBlobs {
            backend,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn call(&self, request: Request) -> Result<Response, BlobError> {
        let body = request.encode().map_err(BlobError::Request)?;
        let addr = VsockAddr::new(PARENT_CID, ports::PARENT_BLOBS);
        let mut stream = timeout(self.timeout, self.backend.connect(addr))
            .await
            .map_err(|_| BlobError::Timeout("connect"))?
            .map_err(BlobError::Connect)?;
        let exchange = async {
            write_frame(&mut stream, &body, MAX_FRAME_LEN).await?;
            read_frame(&mut stream, MAX_FRAME_LEN).await
        };
        let frame = timeout(self.timeout, exchange)
            .await
            .map_err(|_| BlobError::Timeout("response"))?
            .map_err(BlobError::Transport)?
            .ok_or_else(|| BlobError::Protocol("connection closed without a response".into()))?;
        let response = Response::decode(&frame)
            .map_err(|e| BlobError::Protocol(format!("undecodable response: {e}")))?;
        match response {
            Response::Error { kind, message } => Err(BlobError::Refused { kind, message }),
            response => Ok(response),
        }
    }
}

fn unexpected(request: &str, response: &Response) -> BlobError {
    BlobError::Protocol(format!("unexpected response to {request}: {response:?}"))
}

impl BlobStore for ParentBlobs {
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BlobError> {
        let name = name.to_owned();
        match self.call(Request::Put { name, data }).await? {
            Response::Done => Ok(()),
            other => Err(unexpected("put", &other)),
        }
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let name = name.to_owned();
        match self.call(Request::Get { name }).await? {
            Response::Data(data) => Ok(Some(data)),
            Response::NotFound => Ok(None),
            other => Err(unexpected("get", &other)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let prefix = prefix.to_owned();
        match self.call(Request::List { prefix }).await? {
            Response::Names(names) => Ok(names),
            other => Err(unexpected("list", &other)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), BlobError> {
        let name = name.to_owned();
        match self.call(Request::Delete { name }).await? {
            Response::Done | Response::NotFound => Ok(()),
            other => Err(unexpected("delete", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealed::{DataKey, SealError, SealedStore};
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncWriteExt;
    use transport::blob::ErrorKind;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "enclave-blobs-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn backend(&self) -> Backend {
            Backend::Unix {
                dir: self.0.clone(),
            }
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// How the test parent answers.
    #[derive(Clone, Copy)]
    enum Mode {
        /// From a HashMap, like the real parent.
        Honest,
        /// A frame header announcing more than MAX_FRAME_LEN.
        Oversize,
        /// A frame whose body is not a response.
        Garbage,
        /// A well-formed response of the wrong kind.
        WrongKind,
        /// An error response.
        DiskFull,
        /// Accepts, reads the request, never answers.
        Silent,
        /// Closes the connection without answering.
        Hangup,
    }

    async fn parent(dir: &TempDir, mode: Mode) -> Arc<Mutex<HashMap<String, Vec<u8>>>> {
        let listener = dir
            .backend()
            .bind(VsockAddr::new(PARENT_CID, ports::PARENT_BLOBS))
            .await
            .unwrap();
        let blobs = Arc::new(Mutex::new(HashMap::new()));
        let map = blobs.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let map = map.clone();
                tokio::spawn(async move {
                    let Some(frame) = read_frame(&mut stream, MAX_FRAME_LEN).await.unwrap() else {
                        return;
                    };
                    let request = Request::decode(&frame).unwrap();
                    let response = match mode {
                        Mode::Honest => answer(&map, request),
                        Mode::Oversize => {
                            let len = u32::try_from(MAX_FRAME_LEN + 1).unwrap();
                            stream.write_all(&len.to_be_bytes()).await.unwrap();
                            stream.write_all(&[0; 64]).await.unwrap();
                            return;
                        }
                        Mode::Garbage => {
                            write_frame(&mut stream, &[9, 9, 9], MAX_FRAME_LEN)
                                .await
                                .unwrap();
                            return;
                        }
                        Mode::WrongKind => Response::Names(vec!["x".into()]),
                        Mode::DiskFull => Response::Error {
                            kind: ErrorKind::DiskFull,
                            message: "no space left".into(),
                        },
                        Mode::Silent => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        Mode::Hangup => return,
                    };
                    let body = response.encode().unwrap();
                    write_frame(&mut stream, &body, MAX_FRAME_LEN)
                        .await
                        .unwrap();
                });
            }
        });
        blobs
    }

    fn answer(map: &Mutex<HashMap<String, Vec<u8>>>, request: Request) -> Response {
        let mut map = map.lock().unwrap();
        match request {
            Request::Put { name, data } => {
                map.insert(name, data);
                Response::Done
            }
            Request::Get { name } => map
                .get(&name)
                .cloned()
                .map_or(Response::NotFound, Response::Data),
            Request::List { prefix } => {
                let mut names: Vec<String> = map
                    .keys()
                    .filter(|n| n.starts_with(&prefix))
                    .cloned()
                    .collect();
                names.sort();
                Response::Names(names)
            }
            Request::Delete { name } => match map.remove(&name) {
                Some(_) => Response::Done,
                None => Response::NotFound,
            },
        }
    }

    #[tokio::test]
    async fn put_get_list_delete_against_a_parent() {
        let dir = TempDir::new("honest");
        let map = parent(&dir, Mode::Honest).await;
        let blobs = ParentBlobs::new(dir.backend());
        assert_eq!(blobs.get("a").await.unwrap(), None);
        blobs.put("a", b"one".to_vec()).await.unwrap();
        blobs.put("b", vec![]).await.unwrap();
        assert_eq!(blobs.get("a").await.unwrap(), Some(b"one".to_vec()));
        assert_eq!(blobs.get("b").await.unwrap(), Some(vec![]));
        assert_eq!(blobs.list("").await.unwrap(), ["a", "b"]);
        assert_eq!(blobs.list("b").await.unwrap(), ["b"]);
        blobs.delete("a").await.unwrap();
        blobs.delete("a").await.unwrap();
        assert_eq!(blobs.get("a").await.unwrap(), None);
        assert_eq!(map.lock().unwrap().len(), 1);

        // The largest blob goes through; one byte more is refused before sending.
        let big = vec![5u8; transport::blob::MAX_BLOB_LEN];
        blobs.put("big", big.clone()).await.unwrap();
        assert_eq!(blobs.get("big").await.unwrap(), Some(big));
        let mut bigger = vec![5u8; transport::blob::MAX_BLOB_LEN + 1];
        assert!(matches!(
            blobs.put("big", std::mem::take(&mut bigger)).await,
            Err(BlobError::Request(_))
        ));
        assert!(matches!(
            blobs.get("../x").await,
            Err(BlobError::Request(_))
        ));
    }

    #[tokio::test]
    async fn sealed_store_over_the_parent() {
        let dir = TempDir::new("sealed");
        let map = parent(&dir, Mode::Honest).await;
        let key = || DataKey::from_bytes(&[3; 32]);
        let mut store = SealedStore::open(ParentBlobs::new(dir.backend()), key(), "node-1")
            .await
            .unwrap();
        store.put("share", b"v1").await.unwrap();
        let v1 = map.lock().unwrap().get("share").cloned().unwrap();
        store.put("share", b"v2").await.unwrap();
        let store = SealedStore::open(ParentBlobs::new(dir.backend()), key(), "node-1")
            .await
            .unwrap();
        assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v2");
        map.lock().unwrap().insert("share".into(), v1);
        assert!(matches!(
            store.get("share").await,
            Err(SealError::Rollback { .. })
        ));
    }

    #[tokio::test]
    async fn oversize_response_is_refused() {
        let dir = TempDir::new("oversize");
        parent(&dir, Mode::Oversize).await;
        let err = ParentBlobs::new(dir.backend()).get("a").await.unwrap_err();
        assert!(
            matches!(
                err,
                BlobError::Transport(transport::frame::FrameError::Oversized { .. })
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn garbage_and_unexpected_responses_are_protocol_errors() {
        for mode in [Mode::Garbage, Mode::WrongKind, Mode::Hangup] {
            let dir = TempDir::new("garbage");
            parent(&dir, mode).await;
            let blobs = ParentBlobs::new(dir.backend());
            assert!(matches!(blobs.get("a").await, Err(BlobError::Protocol(_))));
            assert!(matches!(
                blobs.put("a", vec![1]).await,
                Err(BlobError::Protocol(_))
            ));
            assert!(matches!(
                blobs.delete("a").await,
                Err(BlobError::Protocol(_))
            ));
        }
    }

    #[tokio::test]
    async fn error_responses_are_surfaced() {
        let dir = TempDir::new("diskfull");
        parent(&dir, Mode::DiskFull).await;
        let err = ParentBlobs::new(dir.backend())
            .put("a", vec![1])
            .await
            .unwrap_err();
        assert!(
            matches!(err, BlobError::Refused { kind: ErrorKind::DiskFull, ref message } if message == "no space left"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn timeouts_and_an_absent_parent() {
        let dir = TempDir::new("silent");
        parent(&dir, Mode::Silent).await;
        let blobs = ParentBlobs::new(dir.backend()).with_timeout(Duration::from_millis(200));
        assert!(matches!(
            blobs.get("a").await,
            Err(BlobError::Timeout("response"))
        ));

        let nobody = TempDir::new("absent");
        assert!(matches!(
            ParentBlobs::new(nobody.backend()).get("a").await,
            Err(BlobError::Connect(_))
        ));
    }
}
