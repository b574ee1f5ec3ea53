//! Sealed blobs in a Google Cloud Storage bucket: the [`BlobStore`] of a node on
//! Confidential Space, whose launcher gives a container no persistent disk.
//!
//! # Trust
//!
//! The bucket is untrusted exactly as the parent is: whoever administers the project can
//! read, replace, roll back or delete any object, and the network path to it ends outside
//! the TEE. It only ever holds what [`crate::sealed`] sealed, and that layer checks every
//! blob it reads back (authenticity against the data key, freshness against the sealed
//! index), so this store needs to be neither private nor honest, only bounded: every
//! answer is read under a size limit before anything is allocated for it, every request
//! runs under a timeout, every name it lists is checked, and every failure is an error
//! naming the operation, the object and the HTTP status. TLS (webpki roots) protects the
//! access token on its way, not the blobs.
//!
//! # Layout and requests
//!
//! Blob `name` is the object `<prefix>/<name>` (just `<name>` with an empty prefix), with
//! the names, sizes and list bounds of the parent's store ([`transport::blob`]). Put is a
//! single media upload (an object write is atomic: readers see the old or the new
//! content, never a mix); get reads `?alt=media` (404: absent); list pages through the
//! folder (at most [`MAX_LIST_LEN`] names; more is an error); delete accepts 404. Object
//! names are percent-encoded as one path segment.
//!
//! # Access tokens
//!
//! Requests carry an OAuth token of the VM's service account from the metadata server
//! ([`TokenSource::Metadata`]), cached until a minute before it expires and fetched again
//! once when Cloud Storage answers 401. A token lives only in zeroized memory and is never
//! shown: its `Debug` is redacted and the `Authorization` header is marked sensitive. The
//! HTTP library logs through the `log` facade, which the node does not install.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use enclave::gcs::{GcsBlobs, GcsConfig};
//! let blobs = GcsBlobs::new(GcsConfig::new("custody-blobs", "node-1"))?;
//! # let _ = blobs; Ok(()) }
//! ```

mod error;
mod http;
mod list;
mod names;
mod token;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, GcsError, Malformed, Operation};
pub use list::{MAX_PAGE_LEN, MAX_PAGES, PAGE_SIZE};
pub use names::MAX_PREFIX_LEN;
pub use token::{AccessToken, MAX_ACCESS_TOKEN_LEN, MAX_TOKEN_RESPONSE_LEN, REFRESH_MARGIN};

use crate::sealed::{BlobError, BlobStore};
use http::{Call, Failure, Method, Reply};
use list::{ListError, Listing};
use names::{EndpointKind, Location};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use token::{TOKEN_PATH, TokenCache};
use transport::blob::{CodecError, MAX_BLOB_LEN, MAX_LIST_LEN, MAX_MESSAGE_LEN, validate_name};

/// Cloud Storage's JSON API.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// The VM's metadata server.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://169.254.169.254";
/// How long one request may take, end to end.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer to an upload or a deletion (the object's metadata, which is dropped).
const MAX_METADATA_LEN: usize = 64 * 1024;

/// Where the access tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// The metadata server at `endpoint` (`http://host[:port]`), for the VM's default
    /// service account.
    Metadata { endpoint: String },
}

impl TokenSource {
    /// The VM's own metadata server.
    pub fn metadata() -> Self {
        TokenSource::Metadata {
            endpoint: DEFAULT_METADATA_ENDPOINT.to_owned(),
        }
    }
}

impl Default for TokenSource {
    fn default() -> Self {
        TokenSource::metadata()
    }
}

/// What [`GcsBlobs::new`] needs. [`GcsConfig::new`] fills in the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsConfig {
    pub bucket: String,
    /// The folder of this node's blobs in the bucket, without leading or trailing `/`
    /// (empty: the top level). Give each node its own.
    pub prefix: String,
    /// The JSON API's base URL: HTTPS, or HTTP to a loopback address (an emulator).
    pub endpoint: String,
    pub token_source: TokenSource,
    /// How long one request may take, end to end.
    pub timeout: Duration,
}

impl GcsConfig {
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        GcsConfig {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            token_source: TokenSource::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Sealed blobs in a Cloud Storage bucket. Clones share the connection pool and the
/// token cache.
#[derive(Clone)]
pub struct GcsBlobs(Arc<Inner>);

struct Inner {
    agent: ureq::Agent,
    location: Location,
    metadata_url: String,
    timeout: Duration,
    tokens: tokio::sync::Mutex<TokenCache>,
}

impl fmt::Debug for GcsBlobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsBlobs")
            .field("endpoint", &self.0.location.endpoint)
            .field("bucket", &self.0.location.bucket)
            .field("folder", &self.0.location.folder)
            .field("timeout", &self.0.timeout)
            .finish_non_exhaustive()
    }
}

impl GcsBlobs {
    /// Checks `config` and prepares the client; nothing is sent until the first request.
    pub fn new(config: GcsConfig) -> Result<Self, ConfigError> {
        names::check_bucket(&config.bucket)?;
        names::check_prefix(&config.prefix)?;
        let endpoint = names::check_endpoint(&config.endpoint, EndpointKind::Storage)?;
        let TokenSource::Metadata { endpoint: metadata } = &config.token_source;
        let metadata = names::check_endpoint(metadata, EndpointKind::Metadata)?;
        if config.timeout < Duration::from_millis(1) || config.timeout > Duration::from_secs(600) {
            return Err(ConfigError::Timeout(config.timeout));
        }
        let folder = match config.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        Ok(GcsBlobs(Arc::new(Inner {
            agent: http::agent(config.timeout),
            location: Location {
                endpoint,
                bucket: config.bucket,
                folder,
            },
            metadata_url: format!("{metadata}{TOKEN_PATH}"),
            timeout: config.timeout,
            tokens: tokio::sync::Mutex::new(TokenCache::default()),
        })))
    }

    /// `gs://bucket/prefix/`: where the blobs are, for logs.
    pub fn location(&self) -> String {
        self.0.location.display(&self.0.location.folder)
    }

    /// Runs `call`, naming `op` and `target` in its failure.
    async fn send(&self, op: Operation, target: &str, call: Call) -> Result<Reply, GcsError> {
        let target = || target.to_owned();
        let limit = call.limit;
        http::run(&self.0.agent, call, self.0.timeout)
            .await
            .map_err(|failure| match failure {
                Failure::Timeout => GcsError::Timeout {
                    op,
                    target: target(),
                    after: self.0.timeout,
                },
                Failure::Oversized { announced } => GcsError::Oversized {
                    op,
                    target: target(),
                    limit,
                    announced,
                },
                Failure::Http(source) => GcsError::Http {
                    op,
                    target: target(),
                    source: Box::new(source),
                },
                Failure::Task(source) => GcsError::Task {
                    op,
                    target: target(),
                    source,
                },
            })
    }

    /// A valid token: the cached one, or (when there is none, or `fresh`) a new one.
    async fn token(&self, fresh: bool) -> Result<Arc<token::AccessToken>, GcsError> {
        let mut cache = self.0.tokens.lock().await;
        if fresh {
            cache.forget();
        } else if let Some(token) = cache.valid(Instant::now()) {
            return Ok(token);
        }
        let target = self.0.metadata_url.as_str();
        let fetched_at = Instant::now();
        let call = Call {
            method: Method::Get,
            url: self.0.metadata_url.clone(),
            bearer: None,
            metadata: true,
            body: None,
            limit: MAX_TOKEN_RESPONSE_LEN,
        };
        let Reply { status, body } = self.send(Operation::Token, target, call).await?;
        let body = zeroize::Zeroizing::new(body);
        if status != 200 {
            // A success of another kind may still carry a token: its body is not shown.
            let shown = (!(200..300).contains(&status)).then(|| message(&body));
            return Err(GcsError::Status {
                op: Operation::Token,
                target: target.to_owned(),
                status,
                message: shown.flatten(),
            });
        }
        let (token, lifetime) =
            token::parse_token_response(&body).map_err(|reason| GcsError::Malformed {
                op: Operation::Token,
                target: target.to_owned(),
                reason,
            })?;
        Ok(cache.store(token, lifetime, fetched_at))
    }

    /// Sends the call `make` builds with a token; on 401, once more with a fresh token.
    async fn authorized(
        &self,
        op: Operation,
        target: &str,
        make: impl Fn(Arc<token::AccessToken>) -> Call,
    ) -> Result<Reply, GcsError> {
        let mut fresh = false;
        loop {
            let token = self.token(fresh).await?;
            let reply = self.send(op, target, make(token)).await?;
            if reply.status == 401 && !fresh {
                fresh = true;
                continue;
            }
            return Ok(reply);
        }
    }

    async fn list_names(&self, prefix: &str) -> Result<Vec<String>, GcsError> {
        let location = &self.0.location;
        let object_prefix = location.object(prefix);
        let target = format!("{}*", location.display(&object_prefix));
        let mut listing = Listing::new(&location.folder, prefix);
        let mut page_token: Option<String> = None;
        loop {
            let url = location.list_url(&object_prefix, list::PAGE_SIZE, page_token.as_deref());
            let reply = self
                .authorized(Operation::List, &target, |bearer| Call {
                    method: Method::Get,
                    url: url.clone(),
                    bearer: Some(bearer),
                    metadata: false,
                    body: None,
                    limit: MAX_PAGE_LEN,
                })
                .await?;
            if reply.status != 200 {
                return Err(status(Operation::List, &target, &reply));
            }
            page_token = listing.page(&reply.body).map_err(|e| match e {
                ListError::TooMany => GcsError::TooManyNames {
                    target: target.clone(),
                    limit: MAX_LIST_LEN,
                },
                ListError::Malformed(reason) => GcsError::Malformed {
                    op: Operation::List,
                    target: target.clone(),
                    reason,
                },
            })?;
            if page_token.is_none() {
                return Ok(listing.finish());
            }
        }
    }
}

/// An unexpected status, with the server's message.
fn status(op: Operation, target: &str, reply: &Reply) -> GcsError {
    GcsError::Status {
        op,
        target: target.to_owned(),
        status: reply.status,
        message: message(&reply.body),
    }
}

/// The explanation in an error's body: Cloud Storage's JSON `{"error": {"message": ..}}`,
/// or the body's text, at most [`MAX_MESSAGE_LEN`] bytes.
fn message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(serde::Deserialize)]
    struct ErrorDetail {
        message: String,
    }
    let mut message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => body.error.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    message.truncate(message.floor_char_boundary(MAX_MESSAGE_LEN));
    (!message.is_empty()).then_some(message)
}

impl From<GcsError> for BlobError {
    fn from(e: GcsError) -> Self {
        BlobError::Gcs(Box::new(e))
    }
}

fn check_name(name: &str) -> Result<(), BlobError> {
    validate_name(name).map_err(BlobError::Request)
}

impl BlobStore for GcsBlobs {
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BlobError> {
        check_name(name)?;
        if data.len() > MAX_BLOB_LEN {
            return Err(BlobError::Request(CodecError::TooLarge { len: data.len() }));
        }
        let location = &self.0.location;
        let object = location.object(name);
        let target = location.display(&object);
        let url = location.upload_url(&object);
        let data = Arc::new(data);
        let reply = self
            .authorized(Operation::Put, &target, |bearer| Call {
                method: Method::Post,
                url: url.clone(),
                bearer: Some(bearer),
                metadata: false,
                body: Some(data.clone()),
                limit: MAX_METADATA_LEN,
            })
            .await?;
        if !reply.success() {
            return Err(status(Operation::Put, &target, &reply).into());
        }
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BlobError> {
        check_name(name)?;
        let location = &self.0.location;
        let object = location.object(name);
        let target = location.display(&object);
        let url = format!("{}?alt=media", location.object_url(&object));
        let reply = self
            .authorized(Operation::Get, &target, |bearer| Call {
                method: Method::Get,
                url: url.clone(),
                bearer: Some(bearer),
                metadata: false,
                body: None,
                limit: MAX_BLOB_LEN,
            })
            .await?;
        match reply.status {
            200 => Ok(Some(reply.body)),
            404 => Ok(None),
            _ => Err(status(Operation::Get, &target, &reply).into()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        if !prefix.is_empty() {
            check_name(prefix)?;
        }
        Ok(self.list_names(prefix).await?)
    }

    async fn delete(&self, name: &str) -> Result<(), BlobError> {
        check_name(name)?;
        let location = &self.0.location;
        let object = location.object(name);
        let target = location.display(&object);
        let url = location.object_url(&object);
        let reply = self
            .authorized(Operation::Delete, &target, |bearer| Call {
                method: Method::Delete,
                url: url.clone(),
                bearer: Some(bearer),
                metadata: false,
                body: None,
                limit: MAX_METADATA_LEN,
            })
            .await?;
        if reply.success() || reply.status == 404 {
            return Ok(());
        }
        Err(status(Operation::Delete, &target, &reply).into())
    }
}
