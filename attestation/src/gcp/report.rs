//! A serializable view of a Confidential Space token's contents, for people and scripts
//! (`attest inspect`). Building a report does not verify anything.

use crate::gcp::evidence::CsEvidence;
use crate::gcp::policy::DBGSTAT_PRODUCTION;
use crate::nitro::report::CertificateReport;
use crate::time_fmt::rfc3339;
use serde::Serialize;
use std::time::Duration;

/// The fields of a token (and of the bundle carrying it), binary values as lowercase hex.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenReport {
    pub provider: &'static str,
    /// `token` (as the launcher returns it) or `bundle` (as a node sends it).
    pub form: &'static str,
    pub alg: &'static str,
    pub kid: Option<String>,
    pub iss: Option<String>,
    pub aud: Option<String>,
    /// Seconds since the Unix epoch, and the same in RFC 3339.
    pub iat: u64,
    pub issued_at: String,
    pub nbf: Option<u64>,
    pub exp: u64,
    pub expires_at: String,
    pub eat_nonce: Vec<String>,
    pub hwmodel: Option<String>,
    pub swname: Option<String>,
    pub dbgstat: Option<String>,
    /// `dbgstat` is not `disabled-since-boot`: a debuggable workload.
    pub debug: bool,
    pub secboot: Option<bool>,
    pub support_attributes: Vec<String>,
    pub image_digest: Option<String>,
    pub project_id: Option<String>,
    pub zone: Option<String>,
    pub instance_id: Option<String>,
    pub instance_name: Option<String>,
    /// `x5c`, from the leaf (`x5c[0]`) to the root.
    pub chain: Vec<CertificateReport>,
    /// A bundle's values, which its token's `eat_nonce` binds.
    pub nonce: Option<String>,
    pub public_key: Option<String>,
    pub user_data: Option<String>,
    /// Every claim, as signed.
    pub claims: serde_json::Value,
}

impl TokenReport {
    pub fn new(evidence: &CsEvidence) -> Self {
        let token = evidence.token();
        let c = token.claims();
        let binding = evidence.binding();
        let bound = |v: Option<&[u8]>| {
            if evidence.is_bundle() {
                v.map(hex::encode)
            } else {
                None
            }
        };
        TokenReport {
            provider: "gcp-cs",
            form: if evidence.is_bundle() {
                "bundle"
            } else {
                "token"
            },
            alg: token.header().alg(),
            kid: token.header().kid().map(str::to_owned),
            iss: c.iss.clone(),
            aud: c.aud.clone(),
            iat: c.iat,
            issued_at: rfc3339(Duration::from_secs(c.iat)),
            nbf: c.nbf,
            exp: c.exp,
            expires_at: rfc3339(Duration::from_secs(c.exp)),
            eat_nonce: c.eat_nonce.clone(),
            hwmodel: c.hwmodel.clone(),
            swname: c.swname.clone(),
            dbgstat: c.dbgstat.clone(),
            debug: c.dbgstat.as_deref() != Some(DBGSTAT_PRODUCTION),
            secboot: c.secboot,
            support_attributes: c.support_attributes.clone(),
            image_digest: c.image_digest.clone(),
            project_id: c.project_id.clone(),
            zone: c.zone.clone(),
            instance_id: c.instance_id.clone(),
            instance_name: c.instance_name.clone(),
            chain: token
                .x5c()
                .iter()
                .enumerate()
                .map(|(i, der)| CertificateReport::new(format!("x5c[{i}]"), der))
                .collect(),
            nonce: bound(binding.nonce),
            public_key: bound(binding.public_key),
            user_data: bound(binding.user_data),
            // The parser read these claims as JSON already; a failure here cannot happen,
            // and would show as null rather than hide the rest of the report.
            claims: serde_json::from_slice(token.claims_json()).unwrap_or_default(),
        }
    }
}
