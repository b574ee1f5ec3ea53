//! Confidential Space evidence in `attest`: the expectations the command line states
//! about a token, and the line that sums up a valid one.

use attestation::gcp::report::TokenReport;
use attestation::gcp::{MeasurementSet, TrustPolicy};
use attestation::measurements::MeasurementError;
use std::time::Duration;

/// The options that name an expected claim, with the keys of [`attestation::gcp::KEYS`] they set.
pub const OPTIONS: [(&str, &str); 5] = [
    ("--image-digest", "image_digest"),
    ("--project-id", "project_id"),
    ("--zone", "zone"),
    ("--instance-id", "instance_id"),
    ("--hwmodel", "hwmodel"),
];

/// What the command line expects of a token, beside what every token must say.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The image and instance options, as a measurement set; `None` when none is given.
    pub set: Option<MeasurementSet>,
    pub audience: Option<String>,
}

impl Expected {
    /// Reads the values of [`OPTIONS`] (in that order) as a measurement set would, so that
    /// a value no token could match is a usage error, named by its option.
    pub fn from_options(values: [Option<&str>; 5], audience: Option<&str>) -> Result<Self, String> {
        let entries: Vec<(String, String)> = OPTIONS
            .iter()
            .zip(values)
            .filter_map(|((_, key), value)| value.map(|v| ((*key).to_owned(), v.to_owned())))
            .collect();
        let set = if entries.is_empty() {
            None
        } else {
            let set = MeasurementSet::from_entries(entries).map_err(|e| match e {
                MeasurementError::Entry { key, reason } => {
                    let option = OPTIONS
                        .iter()
                        .find(|(_, k)| *k == key)
                        .map_or(key.as_str(), |(option, _)| option);
                    format!("{option}: {reason}")
                }
                other => other.to_string(),
            })?;
            Some(set)
        };
        if audience.is_some_and(str::is_empty) {
            return Err("--audience: an audience is not empty".to_owned());
        }
        Ok(Expected {
            set,
            audience: audience.map(str::to_owned),
        })
    }

    /// True when nothing is expected beside what every token must say.
    pub fn is_empty(&self) -> bool {
        self.set.is_none() && self.audience.is_none()
    }

    /// The policy: these expectations and the common options.
    pub fn policy(
        &self,
        allow_debug: bool,
        nonce: Option<&[u8]>,
        max_age: Option<Duration>,
    ) -> Result<TrustPolicy, String> {
        let mut policy = match &self.set {
            None => TrustPolicy::without_measurement_checks(),
            Some(set) => TrustPolicy::new(vec![set.clone()]).map_err(|e| e.to_string())?,
        };
        policy = policy.allow_debug(allow_debug);
        if let Some(audience) = &self.audience {
            policy = policy.expect_audience(audience.clone());
        }
        if let Some(nonce) = nonce {
            policy = policy.expect_nonce(nonce.to_vec());
        }
        // An auditor may check archived evidence: no age limit beyond `exp` unless one is
        // asked for.
        policy = match max_age {
            Some(max_age) => policy.max_age(max_age),
            None => policy.without_age_limit(),
        };
        Ok(policy)
    }
}

/// The line `attest verify` prints for a valid token.
pub fn summary(report: &TokenReport, checked: bool) -> String {
    let or_absent = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".to_owned());
    let name = report
        .instance_name
        .as_deref()
        .map_or_else(String::new, |n| format!(" ({n})"));
    let debug = if report.debug {
        format!(
            " (debug: dbgstat {})",
            report.dbgstat.as_deref().unwrap_or("absent")
        )
    } else {
        String::new()
    };
    let checked = if checked {
        ""
    } else {
        " (image and instance not checked: any genuine workload passes; give --image-digest \
         and --instance-id to check)"
    };
    format!(
        "valid: {} instance {}{name} project {} zone {} image {} issued {} expires {}{debug}{checked}",
        attestation::Provider::GcpCs,
        or_absent(&report.instance_id),
        or_absent(&report.project_id),
        or_absent(&report.zone),
        or_absent(&report.image_digest),
        report.issued_at,
        report.expires_at,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34";

    #[test]
    fn options_and_keys_agree() {
        let keys: Vec<&str> = OPTIONS.iter().map(|(_, k)| *k).collect();
        assert_eq!(keys, attestation::gcp::KEYS);
        for (option, key) in OPTIONS {
            assert_eq!(option, format!("--{}", key.replace('_', "-")));
        }
    }

    #[test]
    fn claim_options_read_as_a_set() {
        let none = Expected::from_options([None; 5], None).unwrap();
        assert!(none.is_empty());
        let e = Expected::from_options(
            [Some(DIGEST), None, None, Some("42"), None],
            Some("tee-custody"),
        )
        .unwrap();
        let set = e.set.unwrap();
        assert_eq!(set.image_digest(), Some(DIGEST));
        assert_eq!(set.instance_id(), Some("42"));
        assert_eq!(e.audience.as_deref(), Some("tee-custody"));
    }

    #[test]
    fn a_bad_value_names_its_option() {
        for (values, option) in [
            (
                [Some("sha256:00"), None, None, None, None],
                "--image-digest",
            ),
            ([None, Some("a b"), None, None, None], "--project-id"),
            ([None, None, Some(""), None, None], "--zone"),
            ([None, None, None, Some("012"), None], "--instance-id"),
            (
                [None, None, None, None, Some("GCP_SHIELDED_VM")],
                "--hwmodel",
            ),
        ] {
            let err = Expected::from_options(values, None).unwrap_err();
            assert!(err.starts_with(&format!("{option}: ")), "{err}");
        }
        let err = Expected::from_options([None; 5], Some("")).unwrap_err();
        assert!(err.starts_with("--audience"), "{err}");
    }
}
