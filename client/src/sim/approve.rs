//! What the operators of a simulated cluster approve: the measurements pinned for each
//! node, the manifest body that lists the nodes at their peer addresses and pins the
//! simulated roots, and the envelope their signatures make of it.

use super::SimError;
use attestation::Provider;
use attestation::gcp::sim::SimWorkload;
use attestation::nsm::sim::SimMeasurements;
use manifest::{OperatorKey, OperatorSignature, SignedManifest};
use std::collections::BTreeMap;

/// The PCRs a manifest pins for a simulated node: the code (0..2) and the instance (4).
pub const PINNED_PCRS: [u8; 4] = [0, 1, 2, 4];

/// The id of the cluster's `i`-th operator (from 0), as manifests and key files name it.
pub fn operator_id(i: usize) -> String {
    format!("operator-{i}")
}

/// The PCRs pinned for a simulated node: the image's PCR0..2 and the node's own PCR4,
/// which `enclave --sim run` derives from the node id. Every node runs one image, so
/// PCR4 is what tells their documents apart: the manifest refuses nodes that one
/// document could match, and a node can then only ever attest as itself.
pub fn node_measurements(image: &SimMeasurements, node: &str) -> BTreeMap<String, String> {
    let pcrs = image.clone().with_pcr4(node.as_bytes().to_vec()).pcrs();
    PINNED_PCRS
        .into_iter()
        .filter_map(|i| pcrs.get(&i).map(|v| (i.to_string(), hex::encode(v))))
        .collect()
}

/// The measurement set pinned for a simulated Confidential Space node, as manifest JSON
/// (`{"gcp-cs": {..}}`): the image its workload runs and the instance it runs on, which
/// `enclave --sim run --provider gcp-cs` names after the node id. Every node runs one
/// image, so the instance is what tells their tokens apart, as PCR4 does for Nitro.
pub fn cs_node_measurements(workload: &SimWorkload) -> serde_json::Value {
    serde_json::json!({ Provider::GcpCs.name(): cs_node_values(workload) })
}

/// The entries of [`cs_node_measurements`]' set: name to value.
pub fn cs_node_values(workload: &SimWorkload) -> BTreeMap<String, String> {
    [
        ("image_digest", &workload.image_digest),
        ("project_id", &workload.project_id),
        ("zone", &workload.zone),
        ("instance_id", &workload.instance_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect()
}

/// One node as a manifest lists it.
#[derive(Debug, Clone)]
pub struct ListedNode {
    pub id: String,
    /// Its peer address, `host:port`: its parent's, or a Confidential Space node's own.
    pub address: String,
    /// The measurement set it must match (PCR index as a string, to hex).
    pub measurements: serde_json::Value,
}

/// The provider a listed node's measurement set names: `{"<provider>": {..}}`, or Nitro
/// for PCRs written without one; `None` for a provider this build does not know.
fn listed_provider(measurements: &serde_json::Value) -> Option<attestation::Provider> {
    let set = measurements.as_object()?;
    match set.iter().next() {
        Some((name, values)) if set.len() == 1 && values.is_object() => {
            attestation::Provider::from_name(name)
        }
        _ => Some(attestation::Provider::Nitro),
    }
}

/// The manifest body (JSON): `version`, `threshold` of the `operators` (named
/// [`operator_id`]), `nodes`, each of the `sim` provider with one measurement set, and,
/// when `roots` names any, `"roots"`: the one root trusted per provider (DER SHA-256).
/// When every node is of one provider, the body lets that provider hold a key's signing
/// quorum (`"placement": {"allow_provider_quorum": true}`): otherwise no key could be
/// created on the cluster. A cluster of several providers gets the placement rule.
pub fn body(
    version: u64,
    threshold: usize,
    operators: &[OperatorKey],
    nodes: &[ListedNode],
    roots: &[(Provider, [u8; 32])],
) -> Result<Vec<u8>, SimError> {
    let mut providers = nodes.iter().map(|n| listed_provider(&n.measurements));
    let one_provider = match providers.next() {
        Some(Some(first)) => providers.all(|p| p == Some(first)),
        _ => false,
    };
    let mut body = serde_json::json!({
        "version": version,
        "threshold": threshold,
        "operators": operators.iter().enumerate().map(|(i, key)| serde_json::json!({
            "id": operator_id(i), "public_key": key.public_key_hex(),
        })).collect::<Vec<_>>(),
        "nodes": nodes.iter().map(|n| serde_json::json!({
            "id": n.id,
            "provider": "sim",
            "address": n.address,
            "measurements": [n.measurements],
        })).collect::<Vec<_>>(),
    });
    if let Some(body) = body.as_object_mut() {
        if one_provider {
            body.insert(
                "placement".to_owned(),
                serde_json::json!({"allow_provider_quorum": true}),
            );
        }
        if !roots.is_empty() {
            let pinned: serde_json::Map<String, serde_json::Value> = roots
                .iter()
                .map(|(provider, hash)| (provider.name().to_owned(), hex::encode(hash).into()))
                .collect();
            body.insert("roots".to_owned(), pinned.into());
        }
    }
    serde_json::to_vec(&body).map_err(SimError::Json)
}

/// `body` signed by the first `signers` of `operators`.
pub fn sign(
    body: &[u8],
    operators: &[OperatorKey],
    signers: usize,
) -> Result<SignedManifest, SimError> {
    let signatures: Vec<OperatorSignature> = operators
        .iter()
        .enumerate()
        .take(signers)
        .map(|(i, key)| OperatorSignature {
            operator: operator_id(i),
            signature: manifest::sign(body, key),
        })
        .collect();
    SignedManifest::assemble(body, &signatures).map_err(SimError::Manifest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn listed(nodes: &[BTreeMap<String, String>]) -> Vec<ListedNode> {
        nodes
            .iter()
            .enumerate()
            .map(|(i, m)| ListedNode {
                id: format!("node-{}", i + 1),
                address: format!("127.0.0.1:{}", 7000 + i),
                measurements: serde_json::to_value(m).unwrap(),
            })
            .collect()
    }

    #[test]
    fn each_simulated_node_pins_its_own_pcr4() {
        let image = SimMeasurements::of_image(b"enclave image");
        let one = node_measurements(&image, "node-1");
        let two = node_measurements(&image, "node-2");
        assert_eq!(one.keys().collect::<Vec<_>>(), ["0", "1", "2", "4"]);
        for i in ["0", "1", "2"] {
            assert_eq!(one[i], two[i]);
        }
        assert_ne!(one["4"], two["4"]);
        // What a node started with `--sim-instance node-1` (the default for node-1) reports.
        let reported = image.clone().with_pcr4(b"node-1".to_vec()).pcrs();
        assert_eq!(one["4"], hex::encode(reported[&4]));
        let operators = [OperatorKey::generate().unwrap()];
        manifest::Manifest::parse(
            &body(1, 1, &operators, &listed(&[one.clone(), two]), &[]).unwrap(),
        )
        .unwrap();

        // The same measurements for every node, as `sim up` wrote before: refused.
        let err = manifest::Manifest::parse(
            &body(1, 1, &operators, &listed(&[one.clone(), one]), &[]).unwrap(),
        )
        .unwrap_err();
        assert!(
            matches!(err, manifest::ManifestError::IndistinguishableNodes { .. }),
            "{err}"
        );
    }

    /// Every node of one provider: the body says that provider may hold a key's quorum,
    /// so keys can be created. Nodes of several providers: the placement rule applies.
    #[test]
    fn one_provider_is_allowed_a_quorum_and_several_are_not() {
        let image = SimMeasurements::of_image(b"enclave image");
        let operators = [OperatorKey::generate().unwrap()];
        let mut nodes = listed(&[
            node_measurements(&image, "node-1"),
            node_measurements(&image, "node-2"),
        ]);
        let parse = |nodes: &[ListedNode]| -> serde_json::Value {
            serde_json::from_slice(&body(1, 1, &operators, nodes, &[]).unwrap()).unwrap()
        };
        let one = parse(&nodes);
        assert_eq!(
            one["placement"],
            serde_json::json!({"allow_provider_quorum": true})
        );
        let manifest =
            manifest::Manifest::parse(&body(1, 1, &operators, &nodes, &[]).unwrap()).unwrap();
        assert!(manifest.placement().allow_provider_quorum());
        manifest::check_placement(&manifest, &["node-1", "node-2"], 2).unwrap();
        // A set tagged with its provider is the same provider.
        nodes[1].measurements = serde_json::json!({ "nitro": nodes[1].measurements });
        assert_eq!(parse(&nodes)["placement"]["allow_provider_quorum"], true);
        // A node of another provider: no placement written, the rule applies.
        nodes[1].measurements = serde_json::json!({"gcp-cs": {
            "image_digest": format!("sha256:{}", "ab".repeat(32)), "project_id": "sim-project",
            "zone": "sim-zone-a", "instance_id": "1"}});
        assert!(parse(&nodes).get("placement").is_none());
    }

    /// Two Nitro and two Confidential Space nodes of one image: each Confidential Space
    /// node is pinned to its own instance, the manifest takes them all, pins both roots,
    /// and applies the placement rule.
    #[test]
    fn a_mixed_cluster_pins_each_instance_and_both_roots() {
        let image = SimMeasurements::of_image(b"enclave image");
        let cs = |id: &str| cs_node_measurements(&SimWorkload::of_image(b"enclave image", id));
        let three = cs("node-3");
        let workload = SimWorkload::of_image(b"enclave image", "node-3");
        assert_eq!(three["gcp-cs"]["image_digest"], workload.image_digest);
        assert_eq!(three["gcp-cs"]["instance_id"], workload.instance_id);
        assert_eq!(three["gcp-cs"]["project_id"], "sim-project");
        assert_ne!(three, cs("node-4"));
        let mut nodes = listed(&[
            node_measurements(&image, "node-1"),
            node_measurements(&image, "node-2"),
        ]);
        for id in ["node-3", "node-4"] {
            nodes.push(ListedNode {
                id: id.to_owned(),
                address: "127.0.0.1:7009".to_owned(),
                measurements: cs(id),
            });
        }
        let operators = [OperatorKey::generate().unwrap()];
        let roots = [(Provider::Nitro, [1u8; 32]), (Provider::GcpCs, [2u8; 32])];
        let manifest =
            manifest::Manifest::parse(&body(1, 1, &operators, &nodes, &roots).unwrap()).unwrap();
        let mut pinned = manifest.roots().to_vec();
        pinned.sort_unstable();
        assert_eq!(pinned, roots);
        assert!(!manifest.placement().allow_provider_quorum());
        let all = ["node-1", "node-2", "node-3", "node-4"];
        manifest::check_placement(&manifest, &all, 3).unwrap();
        let err = manifest::check_placement(&manifest, &all, 2).unwrap_err();
        assert!(
            matches!(
                err,
                manifest::PlacementError::ProviderQuorum {
                    holds: 2,
                    threshold: 2,
                    ..
                }
            ),
            "{err}"
        );

        // Two Confidential Space nodes on one instance: one token could match both.
        nodes[3].measurements = cs("node-3");
        let err = manifest::Manifest::parse(&body(1, 1, &operators, &nodes, &roots).unwrap())
            .unwrap_err();
        assert!(
            matches!(err, manifest::ManifestError::IndistinguishableNodes { .. }),
            "{err}"
        );
    }

    #[test]
    fn an_envelope_carries_the_first_signers_and_is_refused_below_the_threshold() {
        let image = SimMeasurements::of_image(b"enclave image");
        let operators: Vec<OperatorKey> =
            (0..3).map(|_| OperatorKey::generate().unwrap()).collect();
        let nodes = listed(&[
            node_measurements(&image, "node-1"),
            node_measurements(&image, "node-2"),
        ]);
        let body = body(1, 2, &operators, &nodes, &[]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["operators"][2]["id"], "operator-2");
        assert_eq!(json["nodes"][1]["address"], "127.0.0.1:7001");
        assert_eq!(json["nodes"][0]["provider"], "sim");

        let signed = sign(&body, &operators, 2).unwrap();
        let parsed = SignedManifest::parse(signed.envelope_bytes()).unwrap();
        assert_eq!(parsed.hash(), signed.hash());
        let signers: Vec<&str> = parsed
            .signatures()
            .iter()
            .map(|s| s.operator.as_str())
            .collect();
        assert_eq!(signers, ["operator-0", "operator-1"]);
        manifest::accept(None, parsed).unwrap();
        // One approval of a threshold of two: the checker refuses it.
        let short = sign(&body, &operators, 1).unwrap();
        let short = SignedManifest::parse(short.envelope_bytes()).unwrap();
        assert!(manifest::accept(None, short).is_err());
    }
}
