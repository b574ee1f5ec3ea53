//! What can go wrong talking to Cloud Storage or the metadata server: each error names
//! the operation, the object (or the metadata URL) and, where there was one, the HTTP
//! status.

use std::fmt;
use std::time::Duration;

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Put,
    Get,
    List,
    Delete,
    /// Fetching an access token from the metadata server.
    Token,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Put => "put",
            Operation::Get => "get",
            Operation::List => "list",
            Operation::Delete => "delete",
            Operation::Token => "fetch an access token from",
        })
    }
}

/// A failed request. `target` is `gs://bucket/object` (a listing ends in `*`) or, for
/// [`Operation::Token`], the metadata server's URL. Text that came from the server is
/// shown quoted and escaped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcsError {
    #[error("{op} {target}: HTTP status {status}{}", message.as_ref().map(|m| format!(": {m:?}")).unwrap_or_default())]
    Status {
        op: Operation,
        target: String,
        status: u16,
        /// The server's explanation, at most [`transport::blob::MAX_MESSAGE_LEN`] bytes.
        message: Option<String>,
    },
    #[error("{op} {target}: no complete answer within {after:?}")]
    Timeout {
        op: Operation,
        target: String,
        after: Duration,
    },
    #[error("{op} {target}: {source}")]
    Http {
        op: Operation,
        target: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{op} {target}: response body exceeds the limit of {limit} bytes{}", announced.map(|n| format!(" (announced {n})")).unwrap_or_default())]
    Oversized {
        op: Operation,
        target: String,
        limit: usize,
        /// The length the server announced, when it announced one.
        announced: Option<u64>,
    },
    #[error("list {target}: more than {limit} blobs")]
    TooManyNames { target: String, limit: usize },
    #[error("{op} {target}: malformed response: {reason}")]
    Malformed {
        op: Operation,
        target: String,
        reason: Malformed,
    },
    #[error("{op} {target}: the request's task failed: {source}")]
    Task {
        op: Operation,
        target: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl GcsError {
    pub fn operation(&self) -> Operation {
        match self {
            GcsError::Status { op, .. }
            | GcsError::Timeout { op, .. }
            | GcsError::Http { op, .. }
            | GcsError::Oversized { op, .. }
            | GcsError::Malformed { op, .. }
            | GcsError::Task { op, .. } => *op,
            GcsError::TooManyNames { .. } => Operation::List,
        }
    }

    /// `gs://bucket/object`, or the metadata server's URL.
    pub fn target(&self) -> &str {
        match self {
            GcsError::Status { target, .. }
            | GcsError::Timeout { target, .. }
            | GcsError::Http { target, .. }
            | GcsError::Oversized { target, .. }
            | GcsError::TooManyNames { target, .. }
            | GcsError::Malformed { target, .. }
            | GcsError::Task { target, .. } => target,
        }
    }

    /// The HTTP status the server answered with, if the failure is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            GcsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How a successful answer failed to make sense.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    #[error("not the expected JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("listed object {name:?} is outside the listed prefix")]
    ForeignName { name: String },
    #[error("listed object {name:?} is not a blob name: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("page token longer than {limit} bytes")]
    PageToken { limit: usize },
    #[error("more than {limit} pages")]
    TooManyPages { limit: usize },
    #[error("token type {0:?} is not Bearer")]
    TokenType(String),
    /// The token itself is never shown.
    #[error("access token is empty, longer than {limit} bytes or not a bearer token")]
    TokenValue { limit: usize },
}

/// A configuration [`super::GcsBlobs::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("bucket name {name:?}: {reason}")]
    Bucket { name: String, reason: &'static str },
    #[error("object prefix {prefix:?}: {reason}")]
    Prefix {
        prefix: String,
        reason: &'static str,
    },
    #[error("{what} endpoint {url:?}: {reason}")]
    Endpoint {
        what: &'static str,
        url: String,
        reason: &'static str,
    },
    #[error("timeout {0:?} is outside 1 ms to 10 minutes")]
    Timeout(Duration),
}
