//! What Confidential Space evidence measures: the container image's digest (the code),
//! the instance it runs on (`submods.gce`: the node's identity, bound by Google, as PCR4
//! binds a Nitro node's parent instance) and the hardware model; the sets of them a
//! relying party accepts, their text form (manifest JSON `{"gcp-cs": {..}}`), and
//! Confidential Space's half of the identity rule.

use crate::error::ClaimMismatch;
use crate::gcp::token::{CsClaims, MAX_CLAIM_LEN, parse_image_digest};
use crate::measurements::MeasurementError;

/// Hardware models a token may name: Confidential VMs on Intel TDX, AMD SEV, AMD SEV-SNP.
pub const HWMODELS: [&str; 3] = ["GCP_INTEL_TDX", "GCP_AMD_SEV", "GCP_AMD_SEV_SNP"];

/// The keys of the text form, in the order entries are listed.
pub const KEYS: [&str; 5] = [
    "image_digest",
    "project_id",
    "zone",
    "instance_id",
    "hwmodel",
];
/// The keys that tell nodes apart: where a node runs.
pub const IDENTITY_KEYS: [&str; 3] = ["project_id", "zone", "instance_id"];

/// Expected claims of a token. A set names at least one; claims it does not name are
/// not checked here (the policy checks issuer, software, debug state, hardware model
/// and secure boot whatever the set).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeasurementSet {
    image_digest: Option<String>,
    project_id: Option<String>,
    zone: Option<String>,
    instance_id: Option<String>,
    hwmodel: Option<String>,
}

/// A set that does not say which code it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("does not pin the container's code: it must pin image_digest; it pins {pinned:?}")]
pub struct Unpinned {
    /// The keys the set does pin.
    pub pinned: Vec<&'static str>,
}

/// Two sets one token could match: no identity key is pinned by both with different
/// values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no identity claim (project_id, zone, instance_id) is pinned by both with different \
     values (both pin {shared:?} alike); pin each node's instance_id"
)]
pub struct Overlap {
    /// The identity keys both sets pin, all with equal values.
    pub shared: Vec<&'static str>,
}

impl MeasurementSet {
    /// A set from its text form: key to value, in the order written; a key named twice
    /// or unknown is refused, not resolved. `image_digest` is `sha256:` and 64 lowercase
    /// hex digits; `instance_id` decimal digits without leading zeros; `hwmodel` one of
    /// [`HWMODELS`]; `project_id` and `zone` printable ASCII without spaces.
    pub fn from_entries(entries: Vec<(String, String)>) -> Result<Self, MeasurementError> {
        if entries.is_empty() {
            return Err(MeasurementError::Empty);
        }
        let mut set = MeasurementSet::default();
        for (key, value) in entries {
            let fail = |reason| MeasurementError::Entry {
                key: key.clone(),
                reason,
            };
            let slot = match key.as_str() {
                "image_digest" => {
                    parse_image_digest(&value).ok_or_else(|| {
                        fail("value is not `sha256:` and 64 lowercase hex digits")
                    })?;
                    &mut set.image_digest
                }
                "project_id" | "zone" => {
                    if value.is_empty()
                        || value.len() > MAX_CLAIM_LEN
                        || !value.bytes().all(|b| b.is_ascii_graphic())
                    {
                        return Err(fail(
                            "value must be 1 to 256 printable ASCII characters without spaces",
                        ));
                    }
                    if key == "zone" {
                        &mut set.zone
                    } else {
                        &mut set.project_id
                    }
                }
                "instance_id" => {
                    if value.parse::<u64>().ok().map(|n| n.to_string()) != Some(value.clone()) {
                        return Err(fail(
                            "value is not a decimal instance id (no sign, no leading zero)",
                        ));
                    }
                    &mut set.instance_id
                }
                "hwmodel" => {
                    if !HWMODELS.contains(&value.as_str()) {
                        return Err(fail(
                            "value is not GCP_INTEL_TDX, GCP_AMD_SEV or GCP_AMD_SEV_SNP",
                        ));
                    }
                    &mut set.hwmodel
                }
                _ => {
                    return Err(fail(
                        "unknown key: expected image_digest, project_id, zone, instance_id \
                         or hwmodel",
                    ));
                }
            };
            if slot.is_some() {
                return Err(fail("key named twice"));
            }
            *slot = Some(value);
        }
        Ok(set)
    }

    /// The text form, in [`KEYS`] order: what [`Self::from_entries`] reads back.
    pub fn entries(&self) -> Vec<(&'static str, &str)> {
        KEYS.iter()
            .zip(self.values())
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .collect()
    }

    fn values(&self) -> [Option<&str>; 5] {
        [
            self.image_digest.as_deref(),
            self.project_id.as_deref(),
            self.zone.as_deref(),
            self.instance_id.as_deref(),
            self.hwmodel.as_deref(),
        ]
    }

    pub fn image_digest(&self) -> Option<&str> {
        self.image_digest.as_deref()
    }
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }
    pub fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }
    pub fn hwmodel(&self) -> Option<&str> {
        self.hwmodel.as_deref()
    }

    /// `Ok` when the set says which code it accepts: it pins `image_digest`.
    pub fn pins_code(&self) -> Result<(), Unpinned> {
        if self.image_digest.is_some() {
            return Ok(());
        }
        Err(Unpinned {
            pinned: self.entries().into_iter().map(|(k, _)| k).collect(),
        })
    }

    /// `Ok` when no token can match both sets: some identity key (project, zone,
    /// instance id) is pinned by both with different values. Otherwise the identity
    /// keys both pin, all alike.
    pub fn distinguishable(&self, other: &MeasurementSet) -> Result<(), Overlap> {
        let mut shared = Vec::new();
        let ours = self.values();
        let theirs = other.values();
        for (i, key) in KEYS.iter().enumerate() {
            if !IDENTITY_KEYS.contains(key) {
                continue;
            }
            match (
                ours.get(i).copied().flatten(),
                theirs.get(i).copied().flatten(),
            ) {
                (Some(a), Some(b)) if a != b => return Ok(()),
                (Some(_), Some(_)) => shared.push(*key),
                _ => {}
            }
        }
        Err(Overlap { shared })
    }

    /// The first key of this set the claims disagree with, if any.
    pub(crate) fn first_mismatch(&self, set: usize, claims: &CsClaims) -> Option<ClaimMismatch> {
        let found = [
            claims.image_digest.as_deref(),
            claims.project_id.as_deref(),
            claims.zone.as_deref(),
            claims.instance_id.as_deref(),
            claims.hwmodel.as_deref(),
        ];
        KEYS.iter()
            .zip(self.values())
            .zip(found)
            .find_map(|((key, expected), found)| {
                let expected = expected?;
                (found != Some(expected)).then(|| ClaimMismatch {
                    set,
                    key,
                    expected: expected.to_owned(),
                    found: found.map(str::to_owned),
                })
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34";

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn set(pairs: &[(&str, &str)]) -> MeasurementSet {
        MeasurementSet::from_entries(entries(pairs)).unwrap()
    }

    fn refusal(pairs: &[(&str, &str)]) -> (String, &'static str) {
        match MeasurementSet::from_entries(entries(pairs)) {
            Err(MeasurementError::Entry { key, reason }) => (key, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_form_round_trips_in_key_order() {
        let s = set(&[
            ("instance_id", "6256007950053693934"),
            ("hwmodel", "GCP_INTEL_TDX"),
            ("zone", "us-west1-b"),
            ("image_digest", DIGEST),
            ("project_id", "oak-ci"),
        ]);
        assert_eq!(
            s.entries(),
            [
                ("image_digest", DIGEST),
                ("project_id", "oak-ci"),
                ("zone", "us-west1-b"),
                ("instance_id", "6256007950053693934"),
                ("hwmodel", "GCP_INTEL_TDX"),
            ]
        );
        let again = MeasurementSet::from_entries(
            s.entries()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
        .unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn refuses_bad_entries() {
        assert_eq!(
            MeasurementSet::from_entries(Vec::new()).unwrap_err(),
            MeasurementError::Empty
        );
        let upper = DIGEST.to_uppercase().replace("SHA256", "sha256");
        for bad in [
            "sha256:313b",
            "sha384:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34",
            "313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34",
            upper.as_str(),
        ] {
            assert_eq!(refusal(&[("image_digest", bad)]).0, "image_digest", "{bad}");
        }
        for bad in ["", "01", "-1", "+1", "1 ", "x", "18446744073709551616"] {
            assert_eq!(refusal(&[("instance_id", bad)]).0, "instance_id", "{bad:?}");
        }
        set(&[("instance_id", "0")]);
        set(&[("instance_id", "18446744073709551615")]);
        for bad in ["", "a b", "zone\n"] {
            assert_eq!(refusal(&[("zone", bad)]).0, "zone");
            assert_eq!(refusal(&[("project_id", bad)]).0, "project_id");
        }
        assert_eq!(refusal(&[("zone", &"z".repeat(257))]).0, "zone");
        set(&[("zone", &"z".repeat(256))]);
        assert_eq!(refusal(&[("hwmodel", "GCP_SHIELDED_VM")]).0, "hwmodel");
        let (key, reason) = refusal(&[("pcr0", "00")]);
        assert_eq!(key, "pcr0");
        assert!(reason.starts_with("unknown key"), "{reason}");
        assert_eq!(
            refusal(&[("zone", "a"), ("zone", "a")]),
            ("zone".to_owned(), "key named twice")
        );
    }

    #[test]
    fn the_identity_rule() {
        set(&[("image_digest", DIGEST)]).pins_code().unwrap();
        assert_eq!(
            set(&[("zone", "z"), ("instance_id", "1")])
                .pins_code()
                .unwrap_err()
                .pinned,
            ["zone", "instance_id"]
        );
        let a = set(&[
            ("image_digest", DIGEST),
            ("project_id", "p"),
            ("instance_id", "1"),
        ]);
        let b = set(&[
            ("image_digest", DIGEST),
            ("project_id", "p"),
            ("instance_id", "2"),
        ]);
        a.distinguishable(&b).unwrap();
        b.distinguishable(&a).unwrap();
        // Different code alone does not tell two nodes apart.
        let other_code = set(&[
            ("image_digest", &DIGEST.replace("313b", "413b")),
            ("project_id", "p"),
            ("instance_id", "1"),
        ]);
        assert_eq!(
            a.distinguishable(&other_code).unwrap_err().shared,
            ["project_id", "instance_id"]
        );
        let loose = set(&[("image_digest", DIGEST), ("project_id", "p")]);
        assert_eq!(
            a.distinguishable(&loose).unwrap_err().shared,
            ["project_id"]
        );
        assert_eq!(
            loose.distinguishable(&a).unwrap_err().shared,
            ["project_id"]
        );
        let zones = set(&[("zone", "a")]);
        zones.distinguishable(&set(&[("zone", "b")])).unwrap();
    }
}
