//! Which parties the library blamed when a protocol aborted.
//!
//! In the pinned release the library's error types keep their blame private (`AbortBlame {
//! faulty_party, .. }` lists, `parties: [..]` lists, `Round1NotReliable([(party, msg), ..])`);
//! the only public view of it is the error's `Debug` rendering. This module reads the party
//! indices out of that rendering, and only for errors the library reports as an abort, never
//! for I/O or internal errors. The session tests that tamper with messages pin the format: a
//! library upgrade that changes it fails them.

use std::collections::BTreeSet;

/// Party indices blamed by an aborted protocol, sorted and unique; empty if the error is not an
/// abort or names nobody.
pub(crate) fn culprits(error_debug: &str) -> Vec<u16> {
    if !error_debug.contains("Aborted(") {
        return Vec::new();
    }
    let mut found = BTreeSet::new();
    for rest in after_each(error_debug, "faulty_party: ") {
        found.extend(leading_number(rest));
    }
    for rest in after_each(error_debug, "parties: [") {
        found.extend(number_list(rest));
    }
    for rest in after_each(error_debug, "NotReliable([") {
        found.extend(first_of_pairs(rest));
    }
    found.into_iter().collect()
}

fn after_each<'a>(text: &'a str, marker: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.match_indices(marker)
        .filter_map(move |(at, _)| text.get(at + marker.len()..))
}

fn leading_number(text: &str) -> Option<u16> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.get(..end)?.parse().ok()
}

/// `1, 2]` gives 1 and 2; a list of anything but numbers gives nothing.
fn number_list(text: &str) -> Vec<u16> {
    let Some(list) = text.split(']').next() else {
        return Vec::new();
    };
    list.split(',')
        .map(|item| item.trim().parse::<u16>())
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default()
}

/// `(1, 7), (2, 9)]` gives 1 and 2.
fn first_of_pairs(text: &str) -> Vec<u16> {
    let Some(list) = text.split(']').next() else {
        return Vec::new();
    };
    list.split('(')
        .filter_map(|pair| leading_number(pair.trim_start()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_shape_of_blame() {
        let signing = "SigningError(Aborted(EncProofOfK([(AbortBlame { faulty_party: 2, \
                       data_message: 4, proof_message: 7 }, InvalidProof(..))])))";
        assert_eq!(culprits(signing), vec![2]);

        let aux = "KeyRefreshError(Aborted(ProtocolAborted { reason: InvalidModProof, parties: \
                   [AbortBlame { faulty_party: 0, data_message: 1, proof_message: 1 }, \
                   AbortBlame { faulty_party: 3, data_message: 2, proof_message: 2 }] }))";
        assert_eq!(culprits(aux), vec![0, 3]);

        let feldman = "KeygenError(Aborted(FeldmanVerificationFailed { parties: [1, 4] }))";
        assert_eq!(culprits(feldman), vec![1, 4]);

        let reliability = "KeygenError(Aborted(Round1NotReliable([(2, 11), (0, 12)])))";
        assert_eq!(culprits(reliability), vec![0, 2]);
    }

    #[test]
    fn names_nobody_unless_aborted() {
        assert!(culprits("SigningError(Aborted(MismatchedDelta))").is_empty());
        let io = "SigningError(IoError(RouteReceivedError(ProcessMessage(\
                  AttemptToOverwriteReceivedMsg { msgs_ids: [1, 2], sender: 1 }))))";
        assert!(culprits(io).is_empty());
        let bug = "SigningError(Bug(Zero(delta))) faulty_party: 1";
        assert!(culprits(bug).is_empty());
    }
}
