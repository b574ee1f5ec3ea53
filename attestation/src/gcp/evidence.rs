//! Confidential Space evidence as it travels: a token alone, or a bundle carrying a token
//! and the values whose digest the token's `eat_nonce` binds.
//!
//! The launcher signs at most six nonces of at most 74 bytes, too few and too short for
//! an attested channel's exporter value, TLS key and manifest hash. So a node asks for
//! one nonce, [`binding_nonce`] of those values, and sends them beside the token in a
//! bundle; a bundle parses only if its token's `eat_nonce` holds exactly that digest,
//! and only then are the values readable as what the evidence binds.
//!
//! Wire forms, told apart by their first bytes:
//! 1. the token, as the launcher returns it (`eyJ..`);
//! 2. the bundle, JSON (`{..}`):
//!    `{"v":1,"token":"<JWS>","nonce":"<hex>","public_key":"<hex>","user_data":"<hex>"}`,
//!    each value optional, lowercase hex, unknown members refused.

use crate::attester::{AttestError, AttestationRequest};
use crate::error::TokenError;
use crate::gcp::token::CsToken;
use crate::provider::Binding;
use aws_lc_rs::digest::{Context, SHA256};
use serde::Deserialize;

/// Largest bundle accepted, checked before anything is decoded: a token of
/// [`crate::gcp::MAX_TOKEN_LEN`] and every value at its limit, in hex.
pub const MAX_BUNDLE_LEN: usize = 32 * 1024;
/// Limits of the bound values: those of a Nitro document's fields.
pub const MAX_NONCE_LEN: usize = 512;
pub const MAX_PUBLIC_KEY_LEN: usize = 1024;
pub const MAX_USER_DATA_LEN: usize = 512;
/// The only bundle version.
pub const BUNDLE_VERSION: u64 = 1;

/// Domain separation of [`binding_nonce`].
const BINDING_LABEL: &[u8] = b"tee-custody gcp-cs binding v1\0";

/// What a bundle binds, each value as it was requested.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Bound {
    nonce: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
}

/// A parsed token, and the values it binds when it came in a bundle. Not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsEvidence {
    token: CsToken,
    bound: Option<Bound>,
}

/// The bundle on the wire.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBundle {
    v: u64,
    token: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    user_data: Option<String>,
}

impl CsEvidence {
    /// Decodes either wire form, by its first bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.starts_with(b"{") {
            Self::parse_bundle(bytes)
        } else if bytes.starts_with(b"eyJ") {
            Ok(CsEvidence {
                token: CsToken::parse(bytes)?,
                bound: None,
            })
        } else {
            Err(TokenError::NotCsEvidence)
        }
    }

    fn parse_bundle(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() > MAX_BUNDLE_LEN {
            return Err(TokenError::BundleTooLarge {
                len: bytes.len(),
                max: MAX_BUNDLE_LEN,
            });
        }
        // One encoding: the object ends the input (serde_json would allow whitespace).
        if !bytes.ends_with(b"}") {
            return Err(TokenError::Bundle(
                "trailing bytes after the object".to_owned(),
            ));
        }
        let wire: WireBundle =
            serde_json::from_slice(bytes).map_err(|e| TokenError::Bundle(e.to_string()))?;
        if wire.v != BUNDLE_VERSION {
            return Err(TokenError::BundleVersion(wire.v));
        }
        let bound = Bound {
            nonce: value("nonce", wire.nonce.as_deref(), 0, MAX_NONCE_LEN)?,
            public_key: value(
                "public_key",
                wire.public_key.as_deref(),
                1,
                MAX_PUBLIC_KEY_LEN,
            )?,
            user_data: value("user_data", wire.user_data.as_deref(), 0, MAX_USER_DATA_LEN)?,
        };
        let token = CsToken::parse(wire.token.as_bytes())?;
        let expected = binding_nonce(
            bound.nonce.as_deref(),
            bound.public_key.as_deref(),
            bound.user_data.as_deref(),
        );
        if !token.claims().eat_nonce.contains(&expected) {
            return Err(TokenError::BindingMismatch);
        }
        Ok(CsEvidence {
            token,
            bound: Some(bound),
        })
    }

    pub fn token(&self) -> &CsToken {
        &self.token
    }

    /// True when this came as a bundle, whose values the token binds.
    pub fn is_bundle(&self) -> bool {
        self.bound.is_some()
    }

    /// What the evidence binds: a bundle's values (checked against the token's
    /// `eat_nonce` when it was parsed); for a token alone, its `eat_nonce` as the nonce
    /// when it holds exactly one, and nothing else.
    pub fn binding(&self) -> Binding<'_> {
        match &self.bound {
            Some(bound) => Binding {
                nonce: bound.nonce.as_deref(),
                public_key: bound.public_key.as_deref(),
                user_data: bound.user_data.as_deref(),
            },
            None => Binding {
                nonce: match self.token.claims().eat_nonce.as_slice() {
                    [one] => Some(one.as_bytes()),
                    _ => None,
                },
                public_key: None,
                user_data: None,
            },
        }
    }

    /// Whether `expected` is the nonce this evidence binds: a bundle's nonce, or one of a
    /// lone token's `eat_nonce` values (as bytes). `None` when it binds no nonce.
    pub(crate) fn nonce_matches(&self, expected: &[u8]) -> Option<bool> {
        match &self.bound {
            Some(bound) => bound.nonce.as_deref().map(|n| n == expected),
            None => {
                let nonces = &self.token.claims().eat_nonce;
                (!nonces.is_empty()).then(|| nonces.iter().any(|n| n.as_bytes() == expected))
            }
        }
    }
}

/// The `eat_nonce` a token must carry to bind these values: lowercase hex of SHA-256 over
/// a label, then for each value in order `[0x00]` when absent or `[0x01] || u32
/// big-endian length || bytes` when present. 64 characters, within the launcher's 74.
pub fn binding_nonce(
    nonce: Option<&[u8]>,
    public_key: Option<&[u8]>,
    user_data: Option<&[u8]>,
) -> String {
    let mut ctx = Context::new(&SHA256);
    ctx.update(BINDING_LABEL);
    for value in [nonce, public_key, user_data] {
        match value {
            None => ctx.update(&[0x00]),
            Some(bytes) => {
                ctx.update(&[0x01]);
                // Values are bounded far below 4 GiB; saturate rather than wrap.
                let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                ctx.update(&len.to_be_bytes());
                ctx.update(bytes);
            }
        }
    }
    hex::encode(ctx.finish().as_ref())
}

/// The bundle carrying `token` and the values it binds, as a node sends it. The caller
/// asked for a token whose `eat_nonce` is [`binding_nonce`] of the same values.
pub fn encode_bundle(
    token: &str,
    nonce: Option<&[u8]>,
    public_key: Option<&[u8]>,
    user_data: Option<&[u8]>,
) -> Vec<u8> {
    // The token is base64url and dots, the values hex: nothing needs escaping.
    let mut out = format!("{{\"v\":{BUNDLE_VERSION},\"token\":\"{token}\"");
    for (name, value) in [
        ("nonce", nonce),
        ("public_key", public_key),
        ("user_data", user_data),
    ] {
        if let Some(bytes) = value {
            out.push_str(&format!(",\"{name}\":\"{}\"", hex::encode(bytes)));
        }
    }
    out.push('}');
    out.into_bytes()
}

/// Checks the limits of a bundle's values before a token is asked for: what an attester
/// would bind, a verifier must be able to read back.
pub(crate) fn validate_request(request: &AttestationRequest) -> Result<(), AttestError> {
    let check = |field: &'static str, v: &Option<Vec<u8>>, min: usize, max: usize| match v {
        Some(b) if b.len() < min || b.len() > max => Err(AttestError::InvalidRequest {
            field,
            len: b.len(),
            max,
        }),
        _ => Ok(()),
    };
    check("nonce", &request.nonce, 0, MAX_NONCE_LEN)?;
    check("public_key", &request.public_key, 1, MAX_PUBLIC_KEY_LEN)?;
    check("user_data", &request.user_data, 0, MAX_USER_DATA_LEN)
}

/// One bound value: lowercase hex, its hex length checked before decoding.
fn value(
    field: &'static str,
    text: Option<&str>,
    min: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, TokenError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let len = text.len() / 2;
    if text.len() % 2 != 0 || len < min || len > max {
        return Err(TokenError::FieldLength {
            field,
            len,
            min,
            max,
        });
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(TokenError::FieldFormat {
            field,
            reason: "is not lowercase hex",
        });
    }
    hex::decode(text)
        .map(Some)
        .map_err(|_| TokenError::FieldFormat {
            field,
            reason: "is not lowercase hex",
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn binding_nonce_encodes_absence_and_lengths() {
        let none = binding_nonce(None, None, None);
        assert_eq!(none.len(), 64);
        assert!(
            none.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // Absent, empty and present differ; so does moving bytes between values.
        let empty = binding_nonce(Some(b""), None, None);
        assert_ne!(none, empty);
        assert_ne!(
            binding_nonce(Some(b"ab"), Some(b"c"), None),
            binding_nonce(Some(b"a"), Some(b"bc"), None)
        );
        assert_ne!(
            binding_nonce(Some(b"x"), None, None),
            binding_nonce(None, Some(b"x"), None)
        );
        // The construction, spelled out.
        let mut input = BINDING_LABEL.to_vec();
        input.extend_from_slice(&[1, 0, 0, 0, 2, b'n', b'n']);
        input.push(0);
        input.extend_from_slice(&[1, 0, 0, 0, 1, b'u']);
        let digest = aws_lc_rs::digest::digest(&SHA256, &input);
        assert_eq!(
            binding_nonce(Some(b"nn"), None, Some(b"u")),
            hex::encode(digest.as_ref())
        );
    }

    #[test]
    fn values_are_lowercase_hex_within_limits() {
        assert_eq!(
            value("nonce", Some("00ff"), 0, 2).unwrap(),
            Some(vec![0, 0xff])
        );
        assert_eq!(value("nonce", Some(""), 0, 2).unwrap(), Some(vec![]));
        assert!(value("public_key", Some(""), 1, 2).is_err());
        assert!(value("nonce", Some("00ff00"), 0, 2).is_err());
        assert!(value("nonce", Some("0"), 0, 2).is_err());
        assert!(matches!(
            value("nonce", Some("00FF"), 0, 2),
            Err(TokenError::FieldFormat { .. })
        ));
        assert!(value("nonce", Some("zz"), 0, 2).is_err());
    }
}
