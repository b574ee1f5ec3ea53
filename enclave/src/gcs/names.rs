//! Bucket names, object prefixes and endpoints as the node accepts them, and the JSON
//! API's URLs built from them, every caller-supplied part percent-encoded.

use super::error::ConfigError;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::net::IpAddr;
use ureq::http::Uri;

/// Longest object prefix: with a blob name it stays far below Cloud Storage's 1024 bytes,
/// and it bounds the size of a listing page.
pub const MAX_PREFIX_LEN: usize = 256;

/// Everything but the unreserved characters of RFC 3986 is encoded, `/` included: an
/// object name is one path segment of the JSON API.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(super) fn encode(component: &str) -> String {
    utf8_percent_encode(component, COMPONENT).to_string()
}

/// A bucket name as Cloud Storage allows it: 3 to 222 characters of `a-z 0-9 - _ .`,
/// starting and ending with a letter or digit, each dot-separated part at most 63.
pub(super) fn check_bucket(name: &str) -> Result<(), ConfigError> {
    let refuse = |reason| {
        Err(ConfigError::Bucket {
            name: name.to_owned(),
            reason,
        })
    };
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !(3..=222).contains(&name.len()) {
        return refuse("must be 3 to 222 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
    {
        return refuse("only a-z 0-9 - _ . are allowed");
    }
    if !edge_ok(name.bytes().next()) || !edge_ok(name.bytes().last()) {
        return refuse("must start and end with a letter or digit");
    }
    if name
        .split('.')
        .any(|part| part.is_empty() || part.len() > 63)
    {
        return refuse("each dot-separated part must be 1 to 63 characters");
    }
    Ok(())
}

/// The folder of a node's blobs: empty (the bucket's top level) or `/`-separated
/// segments, none empty, `.` or `..`, without control characters or the characters
/// Cloud Storage advises against (`# [ ] * ?`). Anything else, spaces and non-ASCII
/// included, is allowed and percent-encoded in URLs.
pub(super) fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    let refuse = |reason| {
        Err(ConfigError::Prefix {
            prefix: prefix.to_owned(),
            reason,
        })
    };
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return refuse("longer than 256 bytes");
    }
    if prefix
        .chars()
        .any(|c| c.is_control() || matches!(c, '#' | '[' | ']' | '*' | '?'))
    {
        return refuse("control characters and # [ ] * ? are not allowed");
    }
    if prefix
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return refuse("segments between '/' must not be empty, '.' or '..'");
    }
    Ok(())
}

/// Which endpoint is being checked, and so which schemes it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EndpointKind {
    /// Carries the access token and the blobs: HTTPS, or HTTP to a loopback address only
    /// (a local emulator).
    Storage,
    /// The metadata server is plain HTTP on a link-local address by design.
    Metadata,
}

/// `scheme://authority`, without a path, query or user info; a trailing `/` is dropped.
pub(super) fn check_endpoint(url: &str, kind: EndpointKind) -> Result<String, ConfigError> {
    let refuse = |reason| {
        Err(ConfigError::Endpoint {
            what: match kind {
                EndpointKind::Storage => "storage",
                EndpointKind::Metadata => "metadata",
            },
            url: url.to_owned(),
            reason,
        })
    };
    let Ok(uri) = url.parse::<Uri>() else {
        return refuse("not a URL");
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return refuse("needs a scheme and a host");
    };
    if authority.as_str().contains('@') {
        return refuse("user info is not allowed");
    }
    if uri.query().is_some() || !matches!(uri.path(), "" | "/") || url.contains('#') {
        return refuse("must have no path, query or fragment");
    }
    match (scheme, kind) {
        ("https", _) | ("http", EndpointKind::Metadata) => {}
        ("http", EndpointKind::Storage) if is_loopback(authority.host()) => {}
        ("http", EndpointKind::Storage) => {
            return refuse("plain HTTP is only allowed to a loopback address");
        }
        _ => return refuse("scheme must be https or http"),
    }
    Ok(format!("{scheme}://{authority}"))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where the node's blobs are: a bucket and an object prefix, both checked.
#[derive(Debug, Clone)]
pub(super) struct Location {
    pub endpoint: String,
    pub bucket: String,
    /// The prefix, with its trailing `/` when not empty.
    pub folder: String,
}

impl Location {
    /// The object that holds blob `name`.
    pub fn object(&self, name: &str) -> String {
        format!("{}{name}", self.folder)
    }

    /// `gs://bucket/object`, for errors.
    pub fn display(&self, object: &str) -> String {
        format!("gs://{}/{object}", self.bucket)
    }

    /// The object's metadata and deletion URL; `?alt=media` reads its content.
    pub fn object_url(&self, object: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.endpoint,
            encode(&self.bucket),
            encode(object)
        )
    }

    /// A single-request ("media") upload of the whole object.
    pub fn upload_url(&self, object: &str) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            self.endpoint,
            encode(&self.bucket),
            encode(object)
        )
    }

    /// One page of the objects whose names start with `prefix`, not descending into
    /// deeper folders.
    pub fn list_url(&self, prefix: &str, page_size: usize, page_token: Option<&str>) -> String {
        let mut url = format!(
            "{}/storage/v1/b/{}/o?prefix={}&delimiter=%2F&maxResults={page_size}&fields={}",
            self.endpoint,
            encode(&self.bucket),
            encode(prefix),
            encode("items(name),nextPageToken"),
        );
        if let Some(token) = page_token {
            url.push_str("&pageToken=");
            url.push_str(&encode(token));
        }
        url
    }
}
