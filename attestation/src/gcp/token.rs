//! Decoding a Confidential Space PKI token: a compact JWS (RS256) whose header carries
//! the certificate chain in `x5c`, and whose claims say what runs where.
//!
//! Parsing establishes shape, not trust: a [`CsToken`] has not been verified. Only
//! [`crate::gcp::Verifier`] turns evidence carrying one into [`crate::Verified`]
//! evidence. The limits are checked before anything is decoded; every part must be
//! canonical unpadded base64url, so one signed token has one encoding.

use crate::error::TokenError;
use crate::gcp::json::Json;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::time::Duration;

/// Largest token accepted, checked before anything is decoded. A real one is about
/// 11 KiB, most of it the three certificates of `x5c`.
pub const MAX_TOKEN_LEN: usize = 24 * 1024;
/// Most certificates accepted in `x5c` (Google's chains have three).
pub const MAX_X5C_CERTS: usize = 4;
/// Largest DER certificate accepted in `x5c` (Google's are under 2.5 KiB).
pub const MAX_X5C_CERT_LEN: usize = 4096;
/// Most `eat_nonce` values, and their longest, as the launcher allows them.
pub const MAX_EAT_NONCES: usize = 6;
pub const MAX_EAT_NONCE_LEN: usize = 74;
/// Longest text claim read by the policy (`iss`, `hwmodel`, a zone, ..).
pub const MAX_CLAIM_LEN: usize = 256;
/// Most `support_attributes` read.
pub const MAX_SUPPORT_ATTRIBUTES: usize = 16;
/// RS256 signatures are as long as the key's modulus: 2048 to 8192 bits.
pub const MIN_SIGNATURE_LEN: usize = 256;
pub const MAX_SIGNATURE_LEN: usize = 1024;

/// The only algorithm accepted.
pub const RS256: &str = "RS256";

/// Header parameters refused outright: they name keys or chains elsewhere than in the
/// token (`jku`, `jwk`, `x5u`), demand processing this verifier does not do (`crit`,
/// `b64`, `zip`), or make the token something other than a signed JWT (`cty`, `enc`).
const FORBIDDEN_HEADERS: [&str; 8] = ["jku", "jwk", "x5u", "crit", "b64", "zip", "cty", "enc"];

/// A decoded token whose header and claims obey this parser's rules. Not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsToken {
    header: CsHeader,
    /// Boxed: evidence of every provider travels in one enum.
    claims: Box<CsClaims>,
    /// The claims part, decoded: the JSON the signature covers, for reports.
    claims_json: Vec<u8>,
    /// ASCII(BASE64URL(header) || '.' || BASE64URL(claims)): what the signature covers.
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

/// The JWS header: algorithm RS256 and the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsHeader {
    kid: Option<String>,
    /// DER certificates: the leaf first, the root last.
    x5c: Vec<Vec<u8>>,
}

/// The claims a relying party reads; the others stay in [`CsToken::claims_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsClaims {
    pub iss: Option<String>,
    pub aud: Option<String>,
    /// Seconds since the Unix epoch.
    pub iat: u64,
    pub nbf: Option<u64>,
    pub exp: u64,
    /// Empty when absent; a single string reads as a list of one.
    pub eat_nonce: Vec<String>,
    pub hwmodel: Option<String>,
    pub swname: Option<String>,
    pub dbgstat: Option<String>,
    pub secboot: Option<bool>,
    /// Empty when absent.
    pub support_attributes: Vec<String>,
    /// `submods.container.image_digest`: `sha256:` and 64 lowercase hex digits.
    pub image_digest: Option<String>,
    /// `submods.gce`.
    pub project_id: Option<String>,
    pub zone: Option<String>,
    pub instance_id: Option<String>,
    pub instance_name: Option<String>,
    /// The 32 bytes of `image_digest`.
    image_digest_bytes: Option<[u8; 32]>,
}

impl CsToken {
    /// Decodes a compact JWS, exactly as the launcher returns it: no whitespace, no
    /// padding, nothing before or after.
    pub fn parse(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge {
                len: bytes.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        if bytes.is_empty() {
            return Err(TokenError::Empty);
        }
        if let Some(offset) = bytes
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
        {
            return Err(TokenError::Character { offset });
        }
        let parts: Vec<&[u8]> = bytes.split(|b| *b == b'.').collect();
        let [header_b64, claims_b64, signature_b64] = parts.as_slice() else {
            return Err(TokenError::Parts { found: parts.len() });
        };
        let header_bytes = decode_part("header", header_b64)?;
        let claims_json = decode_part("claims", claims_b64)?;
        let signature = decode_part("signature", signature_b64)?;
        let header = CsHeader::decode(&header_bytes)?;
        let claims = Box::new(CsClaims::decode(&claims_json)?);
        if !(MIN_SIGNATURE_LEN..=MAX_SIGNATURE_LEN).contains(&signature.len()) {
            return Err(TokenError::SignatureLength {
                len: signature.len(),
                min: MIN_SIGNATURE_LEN,
                max: MAX_SIGNATURE_LEN,
            });
        }
        let signing_input = bytes
            .get(..header_b64.len() + 1 + claims_b64.len())
            .unwrap_or_default()
            .to_vec();
        Ok(CsToken {
            header,
            claims,
            claims_json,
            signing_input,
            signature,
        })
    }

    pub fn header(&self) -> &CsHeader {
        &self.header
    }
    pub fn claims(&self) -> &CsClaims {
        &self.claims
    }
    /// DER certificates of `x5c`: the leaf first, the root last.
    pub fn x5c(&self) -> &[Vec<u8>] {
        &self.header.x5c
    }
    /// The claims exactly as signed (JSON), every claim included.
    pub fn claims_json(&self) -> &[u8] {
        &self.claims_json
    }
    /// The bytes the RS256 signature covers.
    pub fn signing_input(&self) -> &[u8] {
        &self.signing_input
    }
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

impl CsHeader {
    fn decode(bytes: &[u8]) -> Result<Self, TokenError> {
        let members = object("header", bytes)?;
        for (name, _) in &members {
            if let Some(forbidden) = FORBIDDEN_HEADERS.iter().find(|f| **f == name) {
                return Err(TokenError::ForbiddenHeader(forbidden));
            }
        }
        let get = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        match get("alg") {
            Some(Json::Str(alg)) if alg == RS256 => {}
            Some(Json::Str(alg)) => {
                return Err(TokenError::Algorithm {
                    found: format!("{:?}", crate::gcp::json::shorten(alg)),
                });
            }
            Some(_) => {
                return Err(TokenError::Algorithm {
                    found: "a value that is not a string".to_owned(),
                });
            }
            None => {
                return Err(TokenError::Algorithm {
                    found: "none (no `alg`)".to_owned(),
                });
            }
        }
        match get("typ") {
            None => {}
            Some(Json::Str(typ)) if typ == "JWT" => {}
            Some(Json::Str(typ)) => {
                return Err(TokenError::Type {
                    found: format!("{:?}", crate::gcp::json::shorten(typ)),
                });
            }
            Some(_) => {
                return Err(TokenError::Type {
                    found: "a value that is not a string".to_owned(),
                });
            }
        }
        let kid = text("kid", get("kid"), MAX_CLAIM_LEN)?;
        let entries = match get("x5c") {
            None => return Err(TokenError::MissingX5c),
            Some(Json::Array(entries)) => entries,
            Some(_) => {
                return Err(TokenError::FieldType {
                    field: "x5c",
                    expected: "an array of base64 strings",
                });
            }
        };
        if entries.is_empty() || entries.len() > MAX_X5C_CERTS {
            return Err(TokenError::X5cCount {
                count: entries.len(),
                min: 1,
                max: MAX_X5C_CERTS,
            });
        }
        // Standard base64 with padding (RFC 7515, 4.1.6), bounded before decoding.
        let max_b64 = MAX_X5C_CERT_LEN.div_ceil(3) * 4;
        let x5c = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let fail = |reason: String| TokenError::X5cEntry { index, reason };
                let Json::Str(b64) = entry else {
                    return Err(fail("is not a string".to_owned()));
                };
                if b64.len() > max_b64 {
                    return Err(fail(format!(
                        "is {} base64 characters, the limit is {max_b64}",
                        b64.len()
                    )));
                }
                let der = STANDARD
                    .decode(b64)
                    .map_err(|_| fail("is not canonical padded base64".to_owned()))?;
                if der.is_empty() || der.len() > MAX_X5C_CERT_LEN {
                    return Err(fail(format!(
                        "is {} bytes, allowed 1..={MAX_X5C_CERT_LEN}",
                        der.len()
                    )));
                }
                Ok(der)
            })
            .collect::<Result<Vec<_>, _>>()?;
        // One certificate in two places makes a chain that means nothing more.
        for (index, der) in x5c.iter().enumerate() {
            if let Some(first) = x5c.iter().position(|other| other == der)
                && first != index
            {
                return Err(TokenError::X5cEntry {
                    index,
                    reason: format!("repeats x5c[{first}]"),
                });
            }
        }
        Ok(CsHeader { kid, x5c })
    }

    /// Always RS256: nothing else parses.
    pub fn alg(&self) -> &'static str {
        RS256
    }
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

impl CsClaims {
    fn decode(bytes: &[u8]) -> Result<Self, TokenError> {
        let claims = Json::Object(object("claims", bytes)?);
        let submods = sub_object("submods", claims.get("submods"))?;
        let container = sub_object(
            "submods.container",
            submods.and_then(|s| s.get("container")),
        )?;
        let gce = sub_object("submods.gce", submods.and_then(|s| s.get("gce")))?;
        let in_gce = |name: &str| gce.and_then(|g| g.get(name));

        let image_digest = text(
            "submods.container.image_digest",
            container.and_then(|c| c.get("image_digest")),
            MAX_CLAIM_LEN,
        )?;
        let image_digest_bytes = match &image_digest {
            None => None,
            Some(digest) => Some(parse_image_digest(digest).ok_or(TokenError::FieldFormat {
                field: "submods.container.image_digest",
                reason: "is not `sha256:` and 64 lowercase hex digits",
            })?),
        };
        let instance_id = text(
            "submods.gce.instance_id",
            in_gce("instance_id"),
            MAX_CLAIM_LEN,
        )?;
        if instance_id
            .as_deref()
            .is_some_and(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(TokenError::FieldFormat {
                field: "submods.gce.instance_id",
                reason: "is not decimal digits",
            });
        }
        let eat_nonce = text_list(
            "eat_nonce",
            claims.get("eat_nonce"),
            MAX_EAT_NONCES,
            MAX_EAT_NONCE_LEN,
        )?;
        Ok(CsClaims {
            iss: text("iss", claims.get("iss"), MAX_CLAIM_LEN)?,
            aud: text("aud", claims.get("aud"), MAX_CLAIM_LEN)?,
            iat: seconds("iat", claims.get("iat"))?.ok_or(TokenError::MissingClaim("iat"))?,
            nbf: seconds("nbf", claims.get("nbf"))?,
            exp: seconds("exp", claims.get("exp"))?.ok_or(TokenError::MissingClaim("exp"))?,
            eat_nonce,
            hwmodel: text("hwmodel", claims.get("hwmodel"), MAX_CLAIM_LEN)?,
            swname: text("swname", claims.get("swname"), MAX_CLAIM_LEN)?,
            dbgstat: text("dbgstat", claims.get("dbgstat"), MAX_CLAIM_LEN)?,
            secboot: match claims.get("secboot") {
                None => None,
                Some(Json::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(TokenError::FieldType {
                        field: "secboot",
                        expected: "a boolean",
                    });
                }
            },
            support_attributes: text_list(
                "support_attributes",
                claims.get("support_attributes"),
                MAX_SUPPORT_ATTRIBUTES,
                MAX_CLAIM_LEN,
            )?,
            image_digest,
            project_id: text(
                "submods.gce.project_id",
                in_gce("project_id"),
                MAX_CLAIM_LEN,
            )?,
            zone: text("submods.gce.zone", in_gce("zone"), MAX_CLAIM_LEN)?,
            instance_id,
            instance_name: text(
                "submods.gce.instance_name",
                in_gce("instance_name"),
                MAX_CLAIM_LEN,
            )?,
            image_digest_bytes,
        })
    }

    /// When the token was issued, since the Unix epoch.
    pub fn issued_at(&self) -> Duration {
        Duration::from_secs(self.iat)
    }

    /// True unless `dbgstat` says no debugging since boot and `support_attributes`
    /// names `STABLE`: what a production policy requires.
    pub fn is_debug(&self) -> bool {
        self.dbgstat.as_deref() != Some(crate::gcp::DBGSTAT_PRODUCTION)
            || !self
                .support_attributes
                .iter()
                .any(|a| a == crate::gcp::STABLE)
    }

    /// The 32 digest bytes of `submods.container.image_digest`.
    pub fn image_digest_bytes(&self) -> Option<&[u8; 32]> {
        self.image_digest_bytes.as_ref()
    }
}

/// `sha256:` followed by 64 lowercase hex digits, as bytes: one spelling per digest.
pub(crate) fn parse_image_digest(text: &str) -> Option<[u8; 32]> {
    let hex_part = text.strip_prefix("sha256:")?;
    if hex_part.len() != 64
        || !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

fn decode_part(part: &'static str, b64: &[u8]) -> Result<Vec<u8>, TokenError> {
    if b64.is_empty() {
        return Err(TokenError::Base64 { part });
    }
    URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| TokenError::Base64 { part })
}

fn object(part: &'static str, bytes: &[u8]) -> Result<Vec<(String, Json)>, TokenError> {
    match Json::parse(bytes) {
        Ok(Json::Object(members)) => Ok(members),
        Ok(_) => Err(TokenError::Json {
            part,
            reason: "not an object".to_owned(),
        }),
        Err(e) => Err(TokenError::Json {
            part,
            reason: e.to_string(),
        }),
    }
}

fn sub_object<'a>(
    field: &'static str,
    value: Option<&'a Json>,
) -> Result<Option<&'a Json>, TokenError> {
    match value {
        None => Ok(None),
        Some(v @ Json::Object(_)) => Ok(Some(v)),
        Some(_) => Err(TokenError::FieldType {
            field,
            expected: "an object",
        }),
    }
}

fn text(
    field: &'static str,
    value: Option<&Json>,
    max: usize,
) -> Result<Option<String>, TokenError> {
    match value {
        None => Ok(None),
        Some(Json::Str(s)) => {
            if s.len() > max {
                return Err(TokenError::FieldLength {
                    field,
                    len: s.len(),
                    min: 0,
                    max,
                });
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(TokenError::FieldType {
            field,
            expected: "a string",
        }),
    }
}

/// A string or a list of 1..=`max_count` strings, each 1..=`max_len` bytes.
fn text_list(
    field: &'static str,
    value: Option<&Json>,
    max_count: usize,
    max_len: usize,
) -> Result<Vec<String>, TokenError> {
    let items: Vec<&Json> = match value {
        None => return Ok(Vec::new()),
        Some(one @ Json::Str(_)) => vec![one],
        Some(Json::Array(items)) => {
            if items.is_empty() || items.len() > max_count {
                return Err(TokenError::FieldLength {
                    field,
                    len: items.len(),
                    min: 1,
                    max: max_count,
                });
            }
            items.iter().collect()
        }
        Some(_) => {
            return Err(TokenError::FieldType {
                field,
                expected: "a string or a list of strings",
            });
        }
    };
    items
        .into_iter()
        .map(|item| match item {
            Json::Str(s) if s.is_empty() || s.len() > max_len => Err(TokenError::FieldLength {
                field,
                len: s.len(),
                min: 1,
                max: max_len,
            }),
            Json::Str(s) => Ok(s.clone()),
            _ => Err(TokenError::FieldType {
                field,
                expected: "a string or a list of strings",
            }),
        })
        .collect()
}

/// A NumericDate in whole seconds (RFC 7519 allows fractions; Google writes none).
fn seconds(field: &'static str, value: Option<&Json>) -> Result<Option<u64>, TokenError> {
    match value {
        None => Ok(None),
        Some(Json::UInt(secs)) => Ok(Some(*secs)),
        Some(_) => Err(TokenError::FieldType {
            field,
            expected: "whole seconds since the Unix epoch",
        }),
    }
}

#[cfg(test)]
mod tests;
