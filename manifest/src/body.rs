//! The manifest body: the JSON document the operators sign, and its validation.

use crate::error::ManifestError;
use crate::placement::Placement;
use attestation::{MeasurementError, Measurements};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeSet;
use std::fmt;

/// Largest manifest body, checked before parsing.
pub const MAX_BODY_LEN: usize = 48 * 1024;
/// Most operators a manifest may list.
pub const MAX_OPERATORS: usize = 64;
/// Most nodes a manifest may list.
pub const MAX_NODES: usize = 64;
/// Most accepted measurement sets per node (several during a rollout).
pub const MAX_MEASUREMENT_SETS: usize = 16;
/// Longest node address, in bytes.
pub const MAX_ADDRESS_LEN: usize = 255;

/// Where a node runs: on a TEE provider's hardware, or in the simulator standing in for
/// one. Written as the provider's name (`"aws-nitro"` or `"nitro"` for Nitro) or `"sim"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Provider {
    /// The hardware of this provider: every measurement set of the node is of it.
    Tee(attestation::Provider),
    /// The simulator, which issues evidence of the provider the node's measurement sets
    /// name (all sets of one node name one provider).
    Sim,
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name == "sim" {
            return Ok(Provider::Sim);
        }
        attestation::Provider::from_name(&name)
            .map(Provider::Tee)
            .ok_or_else(|| de::Error::custom(format!("unknown provider {name:?}")))
    }
}

/// An operator allowed to approve the next manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    id: String,
    public_key: [u8; 32],
}

impl Operator {
    /// An operator known from elsewhere than a manifest body (a client's pin of the
    /// manifest it trusts), with the same id rule as a body's operators.
    pub fn new(id: &str, public_key: [u8; 32]) -> Result<Self, ManifestError> {
        ids::check(id).map_err(|source| ManifestError::OperatorId {
            id: id.to_owned(),
            source,
        })?;
        Ok(Operator {
            id: id.to_owned(),
            public_key,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    id: String,
    provider: Provider,
    /// The provider whose evidence it gives: its hardware's, or for a simulated node the
    /// one its measurement sets name.
    tee: attestation::Provider,
    address: String,
    domain: Option<String>,
    measurements: Vec<Measurements>,
}

impl Node {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The TEE provider whose evidence this node gives, and whose shares it counts among
    /// for placement: the hardware it runs on, or, for a `"sim"` node, the provider its
    /// measurement sets name.
    pub fn tee_provider(&self) -> attestation::Provider {
        self.tee
    }

    /// The operator domain the manifest puts this node in, if any (`"domain"`).
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// `host:port` where the node's parent listens.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The measurement sets this node's evidence may match, each tagged by provider.
    pub fn measurements(&self) -> &[Measurements] {
        &self.measurements
    }

    /// The measurement sets, for an [`attestation::Expectation`]. Never fails for a
    /// parsed manifest.
    pub fn measurement_sets(&self) -> Result<Vec<Measurements>, ManifestError> {
        Ok(self.measurements.clone())
    }
}

/// A structurally valid manifest body. Says nothing about who approved it: see
/// [`crate::accept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    version: u64,
    threshold: usize,
    operators: Vec<Operator>,
    nodes: Vec<Node>,
    roots: Vec<(attestation::Provider, [u8; 32])>,
    placement: Placement,
}

impl Manifest {
    /// Parses and validates body bytes (size first, then JSON, then every field).
    ///
    /// A node is known by what its evidence proves, not by the id it claims, so the body
    /// is refused unless every measurement set pins the code and no evidence can match the
    /// sets of two nodes, as the sets' provider defines it ([`attestation::Measurements`]).
    /// For Nitro: every set pins PCR0, PCR1 and PCR2, or PCR8, and for any two nodes,
    /// every set of one differs from every set of the other at some PCR both pin (in
    /// practice a per-node PCR4, the parent instance, or PCR3, its IAM role).
    pub fn parse(body: &[u8]) -> Result<Self, ManifestError> {
        if body.len() > MAX_BODY_LEN {
            return Err(ManifestError::BodyTooLarge {
                len: body.len(),
                max: MAX_BODY_LEN,
            });
        }
        let wire: BodyWire =
            serde_json::from_slice(body).map_err(|e| ManifestError::Body(e.to_string()))?;
        if wire.version == 0 {
            return Err(ManifestError::VersionZero);
        }
        let operators = operators(wire.operators)?;
        if wire.threshold == 0 || wire.threshold > operators.len() {
            return Err(ManifestError::Threshold {
                threshold: wire.threshold,
                operators: operators.len(),
            });
        }
        Ok(Manifest {
            version: wire.version,
            threshold: wire.threshold,
            operators,
            nodes: nodes(wire.nodes)?,
            roots: roots(wire.roots.0)?,
            placement: wire.placement,
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many distinct operators must sign the next manifest.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn operators(&self) -> &[Operator] {
        &self.operators
    }

    pub fn operator(&self, id: &str) -> Option<&Operator> {
        self.operators.iter().find(|op| op.id == id)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.id == id)
    }

    /// The root each named provider's evidence must chain to, as the SHA-256 of its DER
    /// (`"roots"`), in document order: what a verifier is restricted to. Providers not
    /// named keep every root the verifier trusts.
    pub fn roots(&self) -> &[(attestation::Provider, [u8; 32])] {
        &self.roots
    }

    /// What the manifest allows of a key's placement (`"placement"`; see
    /// [`crate::check_placement`]).
    pub fn placement(&self) -> Placement {
        self.placement
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyWire {
    version: u64,
    threshold: usize,
    operators: Vec<OperatorWire>,
    nodes: Vec<NodeWire>,
    #[serde(default)]
    roots: RootsWire,
    #[serde(default)]
    placement: Placement,
}

/// `"roots"` as written: provider name to hex, in document order, duplicates kept so that
/// they can be refused.
#[derive(Default)]
struct RootsWire(Vec<(String, String)>);

impl<'de> Deserialize<'de> for RootsWire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RootsVisitor;
        impl<'de> Visitor<'de> for RootsVisitor {
            type Value = RootsWire;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of provider name to the hex SHA-256 of its root's DER")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RootsWire, A::Error> {
                entries(map).map(RootsWire)
            }
        }
        deserializer.deserialize_map(RootsVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorWire {
    id: String,
    public_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeWire {
    id: String,
    provider: Provider,
    address: String,
    #[serde(default)]
    domain: Option<String>,
    measurements: Vec<SetWire>,
}

/// One measurement set as written: `{"<provider>": {"<key>": "<value>", ..}}`, or, as
/// manifests were written before sets named their provider, `{"<pcr>": "<hex>", ..}`,
/// which means Nitro (sealed copies of such manifests exist on running nodes). Entries
/// are kept in document order, duplicates included, so that they can be refused rather
/// than silently overwritten.
struct SetWire {
    /// `None` for the untagged form.
    provider: Option<String>,
    entries: Vec<(String, String)>,
}

/// The value of one entry of a set object: text (an untagged set's entry) or the
/// entries of a tagged set.
enum EntryValue {
    Text(String),
    Entries(Vec<(String, String)>),
}

impl<'de> Deserialize<'de> for EntryValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = EntryValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, or a map of measurement to value")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<EntryValue, E> {
                Ok(EntryValue::Text(text.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EntryValue, A::Error> {
                entries(map).map(EntryValue::Entries)
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// A JSON object's string entries in document order, duplicates kept.
fn entries<'de, A: MapAccess<'de>>(mut map: A) -> Result<Vec<(String, String)>, A::Error> {
    let mut entries = Vec::new();
    while let Some(entry) = map.next_entry()? {
        entries.push(entry);
    }
    Ok(entries)
}

impl<'de> Deserialize<'de> for SetWire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor;
        impl<'de> Visitor<'de> for SetVisitor {
            type Value = SetWire;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a measurement set: {\"<provider>\": {..}}, or a map of PCR index to hex value",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SetWire, A::Error> {
                let mut untagged = Vec::new();
                let mut tagged = None;
                while let Some((key, value)) = map.next_entry::<String, EntryValue>()? {
                    match value {
                        EntryValue::Text(text) if tagged.is_none() => untagged.push((key, text)),
                        EntryValue::Entries(entries) if tagged.is_none() && untagged.is_empty() => {
                            tagged = Some((key, entries));
                        }
                        _ => {
                            return Err(de::Error::custom(
                                "a measurement set names one provider and its entries, or is \
                                 a map of PCR index to hex value, not both",
                            ));
                        }
                    }
                }
                Ok(match tagged {
                    Some((provider, entries)) => SetWire {
                        provider: Some(provider),
                        entries,
                    },
                    None => SetWire {
                        provider: None,
                        entries: untagged,
                    },
                })
            }
        }
        deserializer.deserialize_map(SetVisitor)
    }
}

fn operators(wire: Vec<OperatorWire>) -> Result<Vec<Operator>, ManifestError> {
    if wire.is_empty() || wire.len() > MAX_OPERATORS {
        return Err(ManifestError::OperatorCount {
            count: wire.len(),
            max: MAX_OPERATORS,
        });
    }
    let mut operators: Vec<Operator> = Vec::with_capacity(wire.len());
    for OperatorWire { id, public_key } in wire {
        if let Err(source) = ids::check(&id) {
            return Err(ManifestError::OperatorId { id, source });
        }
        let mut key = [0u8; 32];
        if public_key.len() != 64 || hex::decode_to_slice(&public_key, &mut key).is_err() {
            return Err(ManifestError::PublicKey { operator: id });
        }
        for earlier in &operators {
            if earlier.id == id {
                return Err(ManifestError::DuplicateOperator { id });
            }
            // One key under two names would let one signer count twice.
            if earlier.public_key == key {
                return Err(ManifestError::DuplicateOperatorKey {
                    first: earlier.id.clone(),
                    second: id,
                });
            }
        }
        operators.push(Operator {
            id,
            public_key: key,
        });
    }
    Ok(operators)
}

fn nodes(wire: Vec<NodeWire>) -> Result<Vec<Node>, ManifestError> {
    if wire.is_empty() || wire.len() > MAX_NODES {
        return Err(ManifestError::NodeCount {
            count: wire.len(),
            max: MAX_NODES,
        });
    }
    let mut seen = BTreeSet::new();
    let mut nodes = Vec::with_capacity(wire.len());
    for NodeWire {
        id,
        provider,
        address,
        domain,
        measurements,
    } in wire
    {
        if let Err(source) = ids::check(&id) {
            return Err(ManifestError::NodeId { id, source });
        }
        if !seen.insert(id.clone()) {
            return Err(ManifestError::DuplicateNode { id });
        }
        if let Err(reason) = check_address(&address) {
            return Err(ManifestError::Address {
                node: id,
                address,
                reason,
            });
        }
        if let Some(domain) = &domain
            && let Err(source) = ids::check(domain)
        {
            return Err(ManifestError::Domain {
                node: id,
                domain: domain.clone(),
                source,
            });
        }
        if measurements.is_empty() || measurements.len() > MAX_MEASUREMENT_SETS {
            return Err(ManifestError::MeasurementSetCount {
                node: id,
                count: measurements.len(),
                max: MAX_MEASUREMENT_SETS,
            });
        }
        let mut runs_on = match provider {
            Provider::Tee(tee) => Some(tee),
            Provider::Sim => None,
        };
        let mut sets = Vec::with_capacity(measurements.len());
        for (set, wire) in measurements.into_iter().enumerate() {
            let measured = measurement_set(&id, runs_on, set, wire)?;
            runs_on.get_or_insert(measured.provider());
            sets.push(measured);
        }
        // Some: the node has at least one set, and every set names a provider.
        let Some(tee) = runs_on else {
            return Err(ManifestError::MeasurementSetCount {
                node: id,
                count: 0,
                max: MAX_MEASUREMENT_SETS,
            });
        };
        nodes.push(Node {
            id,
            provider,
            tee,
            address,
            domain,
            measurements: sets,
        });
    }
    check_identities(&nodes)?;
    Ok(nodes)
}

/// A node's identity is what its evidence proves, never the id it claims: every piece
/// of evidence can match the sets of at most one node. For every two distinct nodes and
/// every pair of their sets, the sets' provider must tell them apart (for Nitro: some PCR
/// is pinned by both with different values; a document carries one value per PCR).
/// Sets of one node may overlap (a rollout).
fn check_identities(nodes: &[Node]) -> Result<(), ManifestError> {
    for (i, first) in nodes.iter().enumerate() {
        for second in nodes.iter().skip(i + 1) {
            for (first_set, a) in first.measurements.iter().enumerate() {
                for (second_set, b) in second.measurements.iter().enumerate() {
                    if let Err(shared) = a.distinguishable(b) {
                        return Err(ManifestError::IndistinguishableNodes {
                            first: first.id.clone(),
                            first_set,
                            second: second.id.clone(),
                            second_set,
                            shared,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// The `"roots"` entries: each names a known provider once, with 64 hex characters (the
/// SHA-256 of the root certificate's DER).
fn roots(
    wire: Vec<(String, String)>,
) -> Result<Vec<(attestation::Provider, [u8; 32])>, ManifestError> {
    let mut roots: Vec<(attestation::Provider, [u8; 32])> = Vec::with_capacity(wire.len());
    for (name, hash) in wire {
        let provider =
            attestation::Provider::from_name(&name).ok_or(ManifestError::RootProvider { name })?;
        let mut digest = [0u8; 32];
        if hash.len() != 64 || hex::decode_to_slice(&hash, &mut digest).is_err() {
            return Err(ManifestError::RootHash { provider });
        }
        if roots.iter().any(|(earlier, _)| *earlier == provider) {
            return Err(ManifestError::DuplicateRoot { provider });
        }
        roots.push((provider, digest));
    }
    Ok(roots)
}

/// One set of `node`: of a known provider, of the one the node runs on (`runs_on`: its
/// hardware's, or for a simulated node the one its first set names), well formed, and
/// pinning the code and the host.
fn measurement_set(
    node: &str,
    runs_on: Option<attestation::Provider>,
    set: usize,
    wire: SetWire,
) -> Result<Measurements, ManifestError> {
    let measured = match &wire.provider {
        None => attestation::Provider::Nitro,
        Some(name) => attestation::Provider::from_name(name).ok_or_else(|| {
            ManifestError::MeasurementProvider {
                node: node.to_owned(),
                set,
                name: name.clone(),
            }
        })?,
    };
    if let Some(runs_on) = runs_on
        && runs_on != measured
    {
        return Err(ManifestError::ProviderMismatch {
            node: node.to_owned(),
            set,
            runs_on,
            measured,
        });
    }
    let measurements = Measurements::from_entries(measured, wire.entries).map_err(|e| match e {
        MeasurementError::Entry { key, reason } => ManifestError::Pcr {
            node: node.to_owned(),
            set,
            index: key,
            reason,
        },
        MeasurementError::Empty => ManifestError::EmptyMeasurementSet {
            node: node.to_owned(),
            set,
        },
        other => ManifestError::Measurements {
            node: node.to_owned(),
            set,
            source: other,
        },
    })?;
    measurements
        .pins_code()
        .map_err(|pinned| ManifestError::CodeNotPinned {
            node: node.to_owned(),
            set,
            pinned,
        })?;
    measurements
        .pins_host()
        .map_err(|unhosted| ManifestError::HostNotPinned {
            node: node.to_owned(),
            set,
            unhosted,
        })?;
    Ok(measurements)
}

/// `host:port` with a printable-ASCII host (IPv6 in brackets) and a port 1 to 65535.
fn check_address(address: &str) -> Result<(), &'static str> {
    if address.is_empty() {
        return Err("empty");
    }
    if address.len() > MAX_ADDRESS_LEN {
        return Err("longer than 255 bytes");
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or("not of the form host:port")?;
    if host.is_empty() {
        return Err("empty host");
    }
    if !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("host may only contain printable ASCII without spaces");
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("an IPv6 host must be in brackets");
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("port is not a decimal number");
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 => Ok(()),
        _ => Err("port must be between 1 and 65535"),
    }
}
