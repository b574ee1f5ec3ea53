//! OAuth access tokens from the VM's metadata server: parsed with limits, kept only in
//! zeroized memory, never shown, and cached (I/O-free, at an explicit `now`) until a
//! minute before they expire.

use super::error::Malformed;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Where the VM's service-account token is served.
pub const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// Largest token response read from the metadata server.
pub const MAX_TOKEN_RESPONSE_LEN: usize = 16 * 1024;
/// Longest access token accepted.
pub const MAX_ACCESS_TOKEN_LEN: usize = 4096;
/// A cached token is replaced this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Longest lifetime believed: a server claiming more is taken at this.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A bearer token for Cloud Storage. No `Clone`, `Debug` redacted, zeroized on drop;
/// shared between requests through an `Arc`.
pub struct AccessToken(Zeroizing<String>);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl AccessToken {
    /// Checks `value` is a bearer token (RFC 6750 `b64token`: `A-Z a-z 0-9 - . _ ~ + /`
    /// then any `=`) of at most [`MAX_ACCESS_TOKEN_LEN`] bytes, so that it cannot break
    /// out of its header.
    pub fn new(value: Zeroizing<String>) -> Result<Self, Malformed> {
        let body = value.trim_end_matches('=');
        let ok = !body.is_empty()
            && value.len() <= MAX_ACCESS_TOKEN_LEN
            && body.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
            });
        if !ok {
            return Err(Malformed::TokenValue {
                limit: MAX_ACCESS_TOKEN_LEN,
            });
        }
        Ok(AccessToken(value))
    }

    /// The `Authorization` header's value.
    pub(super) fn header(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("Bearer {}", self.0.as_str()))
    }

    #[cfg(test)]
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

/// The metadata server's answer: `{"access_token", "expires_in", "token_type"}`.
#[derive(Deserialize)]
struct TokenResponse {
    #[serde(deserialize_with = "zeroizing_string")]
    access_token: Zeroizing<String>,
    expires_in: u64,
    token_type: String,
}

fn zeroizing_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(d).map(Zeroizing::new)
}

/// Parses a token response (the caller bounds its length). Returns the token and its
/// lifetime, capped at [`MAX_LIFETIME`].
pub fn parse_token_response(body: &[u8]) -> Result<(AccessToken, Duration), Malformed> {
    let response: TokenResponse = serde_json::from_slice(body).map_err(Malformed::Json)?;
    if !response.token_type.eq_ignore_ascii_case("bearer") {
        let mut shown = response.token_type;
        shown.truncate(shown.floor_char_boundary(32));
        return Err(Malformed::TokenType(shown));
    }
    let token = AccessToken::new(response.access_token)?;
    let lifetime = Duration::from_secs(response.expires_in).min(MAX_LIFETIME);
    Ok((token, lifetime))
}

/// The current token and when to stop using it.
#[derive(Debug, Default)]
pub struct TokenCache {
    current: Option<(Arc<AccessToken>, Instant)>,
}

impl TokenCache {
    /// The cached token, if it is still good at `now`.
    pub fn valid(&self, now: Instant) -> Option<Arc<AccessToken>> {
        self.current
            .as_ref()
            .filter(|(_, refresh_at)| now < *refresh_at)
            .map(|(token, _)| token.clone())
    }

    /// Keeps `token`, fetched at `fetched_at` with `lifetime`, until [`REFRESH_MARGIN`]
    /// before it expires (a token living less than that is used once, not kept).
    pub fn store(
        &mut self,
        token: AccessToken,
        lifetime: Duration,
        fetched_at: Instant,
    ) -> Arc<AccessToken> {
        let token = Arc::new(token);
        let refresh_at = fetched_at
            .checked_add(lifetime.saturating_sub(REFRESH_MARGIN))
            .unwrap_or(fetched_at);
        self.current = Some((token.clone(), refresh_at));
        token
    }

    /// Drops the token (the server refused it).
    pub fn forget(&mut self) {
        self.current = None;
    }
}
