//! One HTTP exchange with a bounded body, run by `ureq` (blocking) on tokio's blocking
//! pool under a timeout: no proxy from the environment, no redirects, HTTP errors as
//! statuses, rustls on the workspace's aws-lc-rs provider with the webpki roots.

use super::token::AccessToken;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use ureq::http::HeaderValue;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Body};

/// Most bytes of an error response's body read, for its message.
pub const MAX_ERROR_BODY_LEN: usize = 4096;
/// Most bytes preallocated for a body whose length was not announced.
const MAX_PREALLOCATION: usize = 64 * 1024;
/// Headroom for the blocking task over the library's own timeout, which covers the whole
/// exchange: this one only fires if the library's does not.
const TASK_GRACE: Duration = Duration::from_secs(1);

/// The agent every request goes through. `timeout` bounds each exchange end to end, from
/// name resolution to the body's last byte.
pub fn agent(timeout: Duration) -> Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::WebPki)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build();
    Agent::config_builder()
        .tls_config(tls)
        .proxy(None)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .user_agent("tee-custody")
        .build()
        .new_agent()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

/// A request to make.
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    pub url: String,
    /// Sent as `Authorization: Bearer ..`, marked sensitive.
    pub bearer: Option<Arc<AccessToken>>,
    /// Sends `Metadata-Flavor: Google`, which the metadata server requires.
    pub metadata: bool,
    /// Sent as `application/octet-stream`.
    pub body: Option<Arc<Vec<u8>>>,
    /// Most bytes of a successful answer's body.
    pub limit: usize,
}

/// An answer: a status and its body, at most [`Call::limit`] bytes for a success and
/// the first [`MAX_ERROR_BODY_LEN`] bytes otherwise.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why an exchange produced no [`Reply`].
#[derive(Debug)]
pub enum Failure {
    Timeout,
    Oversized { announced: Option<u64> },
    Http(ureq::Error),
    Task(tokio::task::JoinError),
}

impl From<ureq::Error> for Failure {
    fn from(e: ureq::Error) -> Self {
        match e {
            ureq::Error::Timeout(_) => Failure::Timeout,
            ureq::Error::BodyExceedsLimit(_) => Failure::Oversized { announced: None },
            other => Failure::Http(other),
        }
    }
}

/// Runs `call` on the blocking pool, within `timeout` (plus a grace the library's own
/// timeout should never need).
pub async fn run(agent: &Agent, call: Call, timeout: Duration) -> Result<Reply, Failure> {
    let agent = agent.clone();
    let task = tokio::task::spawn_blocking(move || exchange(&agent, &call));
    match tokio::time::timeout(timeout.saturating_add(TASK_GRACE), task).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(joined)) => Err(Failure::Task(joined)),
        Ok(Ok(result)) => result,
    }
}

fn exchange(agent: &Agent, call: &Call) -> Result<Reply, Failure> {
    let mut headers = Vec::new();
    if let Some(token) = &call.bearer {
        let mut value = HeaderValue::from_str(&token.header())
            .map_err(|e| Failure::Http(ureq::Error::Http(e.into())))?;
        value.set_sensitive(true);
        headers.push(("authorization", value));
    }
    if call.metadata {
        headers.push(("metadata-flavor", HeaderValue::from_static("Google")));
    }
    let response = match call.method {
        Method::Get => with_headers(agent.get(&call.url), headers).call(),
        Method::Delete => with_headers(agent.delete(&call.url), headers).call(),
        Method::Post => {
            let body = call.body.as_deref().map_or(&[][..], Vec::as_slice);
            with_headers(agent.post(&call.url), headers)
                .header("content-type", "application/octet-stream")
                .send(body)
        }
    }?;
    let status = response.status().as_u16();
    let body = response.into_body();
    let body = if (200..300).contains(&status) {
        read_bounded(body, call.limit)?
    } else {
        read_error_body(body)
    };
    Ok(Reply { status, body })
}

fn with_headers<B>(
    mut request: ureq::RequestBuilder<B>,
    headers: Vec<(&'static str, HeaderValue)>,
) -> ureq::RequestBuilder<B> {
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
}

/// The body, refused when it announces or turns out to hold more than `limit` bytes;
/// never more than `limit` bytes allocated.
fn read_bounded(body: Body, limit: usize) -> Result<Vec<u8>, Failure> {
    let announced = body.content_length();
    if let Some(len) = announced
        && usize::try_from(len).map_or(true, |len| len > limit)
    {
        return Err(Failure::Oversized {
            announced: Some(len),
        });
    }
    let capacity = announced
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(limit.min(MAX_PREALLOCATION));
    let mut buf = Vec::with_capacity(capacity);
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    body.into_with_config()
        .limit(limit)
        .reader()
        .read_to_end(&mut buf)
        .map_err(|e| Failure::from(ureq::Error::from(e)))?;
    Ok(buf)
}

/// The first [`MAX_ERROR_BODY_LEN`] bytes of an error's body, whatever can be read of it.
fn read_error_body(body: Body) -> Vec<u8> {
    let mut buf = Vec::new();
    let max = u64::try_from(MAX_ERROR_BODY_LEN).unwrap_or(u64::MAX);
    let _ = body.into_reader().take(max).read_to_end(&mut buf);
    buf
}
