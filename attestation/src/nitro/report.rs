//! A serializable view of a document's contents, for people and scripts (`attest
//! inspect`). Building a report does not verify anything.

use crate::nitro::chain::{self, ParsedCert};
use crate::nitro::document::NitroDocument;
use crate::time_fmt::{rfc3339, rfc3339_ms};
use serde::Serialize;
use std::collections::BTreeMap;

/// The fields of a document, binary values as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentReport {
    pub module_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The same time in RFC 3339.
    pub timestamp: String,
    pub digest: &'static str,
    /// PCR index to value; serialized as a JSON object with string keys, in index order.
    pub pcrs: BTreeMap<u8, String>,
    /// PCR0, PCR1 and PCR2 are all zero.
    pub debug_mode: bool,
    /// From the root (`cabundle[0]`) to the leaf.
    pub chain: Vec<CertificateReport>,
    pub public_key: Option<String>,
    pub user_data: Option<String>,
    pub nonce: Option<String>,
}

/// One certificate of the chain. When its DER cannot be decoded, `error` says why and
/// the decoded fields are null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateReport {
    /// `cabundle[i]` or `leaf` (Nitro), `x5c[i]` (Confidential Space).
    pub slot: String,
    pub subject: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    pub error: Option<String>,
}

impl DocumentReport {
    pub fn new(doc: &NitroDocument) -> Self {
        let chain = doc
            .cabundle()
            .iter()
            .enumerate()
            .map(|(i, der)| CertificateReport::new(format!("cabundle[{i}]"), der))
            .chain(std::iter::once(CertificateReport::new(
                "leaf".to_owned(),
                doc.certificate(),
            )))
            .collect();
        DocumentReport {
            module_id: doc.module_id().to_owned(),
            timestamp_ms: doc.timestamp_ms(),
            timestamp: rfc3339_ms(doc.timestamp_ms()),
            digest: doc.digest(),
            pcrs: doc
                .pcrs()
                .iter()
                .map(|(i, v)| (*i, hex::encode(v)))
                .collect(),
            debug_mode: doc.is_debug_mode(),
            chain,
            public_key: doc.public_key().map(hex::encode),
            user_data: doc.user_data().map(hex::encode),
            nonce: doc.nonce().map(hex::encode),
        }
    }
}

impl CertificateReport {
    pub(crate) fn new(slot: String, der: &[u8]) -> Self {
        let sha256 = hex::encode(chain::fingerprint(der));
        match ParsedCert::parse(der) {
            Ok(parsed) => {
                let (not_before, not_after) = chain::validity(&parsed.cert);
                CertificateReport {
                    slot,
                    subject: Some(chain::subject_string(&parsed.cert)),
                    not_before: Some(rfc3339(not_before)),
                    not_after: Some(rfc3339(not_after)),
                    sha256,
                    error: None,
                }
            }
            Err(problem) => CertificateReport {
                slot,
                subject: None,
                not_before: None,
                not_after: None,
                sha256,
                error: Some(problem.to_string()),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn undecodable_certificate_is_reported_not_fatal() {
        let report = CertificateReport::new("cabundle[1]".to_owned(), b"not DER");
        assert_eq!(report.slot, "cabundle[1]");
        assert_eq!(report.subject, None);
        assert!(report.error.unwrap().contains("not a valid DER"));
        assert_eq!(report.sha256, hex::encode(chain::fingerprint(b"not DER")));
    }

    #[test]
    fn pcr_keys_serialize_as_strings_in_index_order() {
        let pcrs: BTreeMap<u8, String> = [(10, "aa".to_owned()), (2, "bb".to_owned())].into();
        let json = serde_json::to_string(&pcrs).unwrap();
        assert_eq!(json, r#"{"2":"bb","10":"aa"}"#);
    }
}
