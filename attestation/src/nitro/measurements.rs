//! What Nitro evidence measures: PCR values, the sets of them a relying party accepts,
//! their text form (manifest JSON, `cluster.toml`), and Nitro's half of the identity
//! rule: every set pins the code, and two nodes' sets differ at a PCR both pin.

use crate::error::{PcrMismatch, PolicyError};
use crate::measurements::MeasurementError;
use crate::nitro::document::NitroDocument;
use std::collections::BTreeMap;

/// Highest PCR index a measurement set may name in its text form.
pub const MAX_PCR_INDEX: u8 = 31;
/// Accepted PCR value lengths in bytes (SHA-256, SHA-384 and SHA-512 banks).
pub const PCR_LENGTHS: [usize; 3] = [32, 48, 64];
/// PCRs that together pin an enclave image: the image, kernel and application.
pub const CODE_PCRS: [u8; 3] = [0, 1, 2];
/// The PCR that pins the certificate a signed image was signed with.
pub const SIGNING_CERT_PCR: u8 = 8;

/// Expected values for some PCRs. A set names at least one PCR; PCRs it does not name
/// are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementSet(BTreeMap<u8, Vec<u8>>);

/// A set that does not say which code it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "does not pin the enclave's code: it must pin PCR0, PCR1 and PCR2, or PCR8 (signed \
     images); it pins {pinned:?}"
)]
pub struct Unpinned {
    /// The indices the set does pin.
    pub pinned: Vec<u8>,
}

/// Two sets one document could match: no PCR is pinned by both with different values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no PCR is pinned by both with different values (both pin {shared:?} alike); pin a PCR \
     that differs per node, such as PCR4 (parent instance) or PCR3 (IAM role)"
)]
pub struct Overlap {
    /// The indices both sets pin, all with equal values.
    pub shared: Vec<u8>,
}

impl MeasurementSet {
    pub fn new(pcrs: BTreeMap<u8, Vec<u8>>) -> Result<Self, PolicyError> {
        if pcrs.is_empty() {
            return Err(PolicyError::EmptyMeasurementSet);
        }
        Ok(MeasurementSet(pcrs))
    }

    /// A set from its text form: PCR index (decimal, `"0"` to `"31"`, one spelling) to
    /// hex value (32, 48 or 64 bytes), in the order written; an index named twice is
    /// refused, not resolved.
    pub fn from_entries(entries: Vec<(String, String)>) -> Result<Self, MeasurementError> {
        if entries.is_empty() {
            return Err(MeasurementError::Empty);
        }
        let mut pcrs = BTreeMap::new();
        for (index, value) in entries {
            let fail = |reason| MeasurementError::Entry {
                key: index.clone(),
                reason,
            };
            let i = pcr_index(&index).ok_or_else(|| {
                fail("index is not a number from 0 to 31 (decimal, without sign or leading zero)")
            })?;
            let value = hex::decode(&value).map_err(|_| fail("value is not hex"))?;
            if !PCR_LENGTHS.contains(&value.len()) {
                return Err(fail("value must be 32, 48 or 64 bytes"));
            }
            if pcrs.insert(i, value).is_some() {
                return Err(fail("index named twice"));
            }
        }
        Ok(MeasurementSet(pcrs))
    }

    pub fn pcrs(&self) -> &BTreeMap<u8, Vec<u8>> {
        &self.0
    }

    /// `Ok` when the set says which code it accepts: PCR0, PCR1 and PCR2 together, or
    /// PCR8 (the certificate a signed image was signed with).
    pub fn pins_code(&self) -> Result<(), Unpinned> {
        if CODE_PCRS.iter().all(|i| self.0.contains_key(i))
            || self.0.contains_key(&SIGNING_CERT_PCR)
        {
            return Ok(());
        }
        Err(Unpinned {
            pinned: self.0.keys().copied().collect(),
        })
    }

    /// `Ok` when no document can match both sets: some index is pinned by both with
    /// different values (a document carries one value per PCR). Otherwise the indices
    /// both pin, all alike.
    pub fn distinguishable(&self, other: &MeasurementSet) -> Result<(), Overlap> {
        let mut shared = Vec::new();
        for (index, value) in &self.0 {
            match other.0.get(index) {
                Some(theirs) if theirs != value => return Ok(()),
                Some(_) => shared.push(*index),
                None => {}
            }
        }
        Err(Overlap { shared })
    }

    /// The first PCR of this set the document disagrees with, if any.
    pub(crate) fn first_mismatch(&self, set: usize, doc: &NitroDocument) -> Option<PcrMismatch> {
        self.0.iter().find_map(|(index, expected)| {
            let found = doc.pcr(*index);
            if found == Some(expected.as_slice()) {
                return None;
            }
            Some(PcrMismatch {
                set,
                index: *index,
                expected: hex::encode(expected),
                found: found.map(hex::encode),
            })
        })
    }
}

/// `"0"` to `"31"`, without sign or leading zeros, so one PCR has one spelling.
fn pcr_index(index: &str) -> Option<u8> {
    let i: u8 = index.parse().ok()?;
    (i <= MAX_PCR_INDEX && i.to_string() == index).then_some(i)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, String)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn refusal(pairs: &[(&str, String)]) -> (String, &'static str) {
        match MeasurementSet::from_entries(entries(pairs)) {
            Err(MeasurementError::Entry { key, reason }) => (key, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_form_indices_and_lengths_at_their_limits() {
        let v = |len: usize| "ab".repeat(len);
        let set = MeasurementSet::from_entries(entries(&[("0", v(48)), ("31", v(32))])).unwrap();
        assert_eq!(set.pcrs().keys().copied().collect::<Vec<_>>(), [0, 31]);
        assert_eq!(set.pcrs()[&31], vec![0xab; 32]);
        for bad in ["32", "255", "256", "-1", "+1", "01", "1 ", "x", ""] {
            let (key, reason) = refusal(&[(bad, v(48))]);
            assert_eq!(key, bad);
            assert!(
                reason.contains("not a number from 0 to 31"),
                "{bad:?}: {reason}"
            );
        }
        for len in PCR_LENGTHS {
            MeasurementSet::from_entries(entries(&[("4", v(len))])).unwrap();
        }
        for len in [0, 31, 33, 47, 49, 63, 65] {
            let (key, reason) = refusal(&[("4", v(len))]);
            assert_eq!(
                (key.as_str(), reason),
                ("4", "value must be 32, 48 or 64 bytes")
            );
        }
        assert_eq!(refusal(&[("4", "zz".repeat(48))]).1, "value is not hex");
        // Hex case is spelling, not value.
        let upper = MeasurementSet::from_entries(entries(&[("4", "AB".repeat(48))])).unwrap();
        let lower = MeasurementSet::from_entries(entries(&[("4", v(48))])).unwrap();
        assert_eq!(upper, lower);
        // Named twice, even with the same value: refused, not resolved.
        assert_eq!(
            refusal(&[("4", v(48)), ("4", v(48))]).1,
            "index named twice"
        );
        assert_eq!(
            MeasurementSet::from_entries(Vec::new()).unwrap_err(),
            MeasurementError::Empty
        );
    }

    #[test]
    fn the_identity_rule() {
        let set = |pairs: &[(u8, u8)]| {
            MeasurementSet::new(pairs.iter().map(|(i, b)| (*i, vec![*b; 48])).collect()).unwrap()
        };
        set(&[(0, 1), (1, 2), (2, 3)]).pins_code().unwrap();
        set(&[(8, 1)]).pins_code().unwrap();
        assert_eq!(
            set(&[(0, 1), (1, 2), (4, 9)])
                .pins_code()
                .unwrap_err()
                .pinned,
            [0, 1, 4]
        );
        let a = set(&[(0, 1), (1, 2), (2, 3), (4, 10)]);
        let b = set(&[(0, 1), (1, 2), (2, 3), (4, 11)]);
        a.distinguishable(&b).unwrap();
        b.distinguishable(&a).unwrap();
        let loose = set(&[(0, 1), (1, 2), (2, 3)]);
        assert_eq!(a.distinguishable(&loose).unwrap_err().shared, [0, 1, 2]);
        assert_eq!(loose.distinguishable(&a).unwrap_err().shared, [0, 1, 2]);
        assert_eq!(a.distinguishable(&a).unwrap_err().shared, [0, 1, 2, 4]);
    }
}
