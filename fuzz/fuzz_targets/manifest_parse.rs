//! Arbitrary bytes as a signed manifest envelope (what operators submit and the parent
//! reads) and as a manifest body. Parsing may not panic, and whatever parses must be
//! self-consistent: the same manifest from the body alone, from a re-assembled envelope,
//! and from `addresses`, with every node's measurement sets usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manifest::{Manifest, SignedManifest, addresses, hash_of};

fn check_manifest(manifest: &Manifest) {
    assert!((1..=manifest.operators().len()).contains(&manifest.threshold()));
    for node in manifest.nodes() {
        assert!(node.measurement_sets().is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = SignedManifest::parse(data);
    let map = addresses(data);
    assert_eq!(parsed.is_ok(), map.is_ok());
    if let (Ok(signed), Ok(map)) = (parsed, map) {
        let manifest = signed.manifest();
        check_manifest(manifest);
        assert_eq!(map.len(), manifest.nodes().len());
        for node in manifest.nodes() {
            assert_eq!(map.get(node.id()).map(String::as_str), Some(node.address()));
        }
        assert_eq!(signed.hash(), hash_of(signed.body()));
        assert_eq!(signed.envelope_bytes(), data);
        assert_eq!(Manifest::parse(signed.body()).ok().as_ref(), Some(manifest));
        let again = SignedManifest::assemble(signed.body(), signed.signatures())
            .expect("a parsed envelope re-assembles");
        assert_eq!(again.manifest(), manifest);
        assert_eq!(again.hash(), signed.hash());
        assert_eq!(again.signatures(), signed.signatures());
        let _ = signed.verify_signatures(manifest.operators(), manifest.threshold());
    }

    if let Ok(manifest) = Manifest::parse(data) {
        check_manifest(&manifest);
        if let Ok(signed) = SignedManifest::assemble(data, &[]) {
            assert_eq!(signed.manifest(), &manifest);
        }
    }
});
