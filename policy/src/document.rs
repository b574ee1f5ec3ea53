//! The policy document: the JSON body operators approve, parsed and validated in full
//! before anything uses it. A field that is misspelt, out of range or refers to nothing is
//! refused with the rule or entry that holds it; nothing is silently ignored or defaulted
//! into something weaker.
//!
//! Every limit is checked before or while parsing: the body's size first, then the number
//! of rules and allowlist entries as they are read (entries past the limit are skipped,
//! not kept, and the document refused).
//!
//! The document's format version is in the context its signatures cover
//! (`tee-custody policy v1`, see [`crate::envelope`]); its `version` field numbers the
//! custodian's successive policies and only ever grows.

use crate::bounded::Bounded;
use crate::chain::{Asset, Chain, normalize_address, parse_amount};
use crate::error::{Place, PolicyError, Reason};
use ids::{KeyId, NodeId, OperatorId};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;

/// Largest policy body, checked before parsing.
pub const MAX_POLICY_LEN: usize = 64 * 1024;
/// Most rules in a policy.
pub const MAX_RULES: usize = 256;
/// Most allowlist entries in a policy.
pub const MAX_ALLOWLIST: usize = 1024;
/// Longest rule or allowlist name, in bytes (printable ASCII).
pub const MAX_NAME_LEN: usize = 64;
/// Longest `effective_after_secs` and `allowlist_delay_secs`: 365 days.
pub const MAX_DELAY_SECS: u64 = 365 * 86_400;
/// Longest velocity window: 31 days (the ledger keeps spends that long).
pub const MAX_WINDOW_SECS: u64 = 31 * 86_400;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

/// A day of the week, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// The UTC day of the week of a Unix time (1970-01-01 was a Thursday).
    pub fn of(now_secs: u64) -> Weekday {
        match (now_secs / 86_400 + 3) % 7 {
            0 => Weekday::Mon,
            1 => Weekday::Tue,
            2 => Weekday::Wed,
            3 => Weekday::Thu,
            4 => Weekday::Fri,
            5 => Weekday::Sat,
            _ => Weekday::Sun,
        }
    }
}

/// A spending limit over a sliding window, this request included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Velocity {
    pub window_secs: u64,
    pub max_amount: u128,
}

/// A named address on one chain, usable by rules after the allowlist delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowlistEntry {
    name: String,
    chain: Chain,
    address: String,
}

impl AllowlistEntry {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Normalized (see [`crate::normalize_address`]).
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// One rule; see [`crate::engine`] for when it matches and what it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    name: String,
    keys: Option<Vec<KeyId>>,
    chain: Chain,
    asset: Option<Asset>,
    to: Option<Vec<String>>,
    max_amount: Option<u128>,
    max_fee: Option<u128>,
    velocity: Option<Velocity>,
    hours_utc: Option<(u8, u8)>,
    days: Option<Vec<Weekday>>,
    signers_include: Vec<NodeId>,
    approvals: usize,
    approvers: Option<Vec<OperatorId>>,
    action: Action,
}

impl Rule {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn keys(&self) -> Option<&[KeyId]> {
        self.keys.as_deref()
    }
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
    pub fn asset(&self) -> Option<&Asset> {
        self.asset.as_ref()
    }
    /// Allowlist names, each an entry on this rule's chain.
    pub fn to(&self) -> Option<&[String]> {
        self.to.as_deref()
    }
    pub fn max_amount(&self) -> Option<u128> {
        self.max_amount
    }
    /// The most an Ethereum transaction may pay for gas (gas limit times the highest
    /// price per gas it offers), in wei.
    pub fn max_fee(&self) -> Option<u128> {
        self.max_fee
    }
    pub fn velocity(&self) -> Option<Velocity> {
        self.velocity
    }
    /// `[from, to)`, hours of the UTC day.
    pub fn hours_utc(&self) -> Option<(u8, u8)> {
        self.hours_utc
    }
    pub fn days(&self) -> Option<&[Weekday]> {
        self.days.as_deref()
    }
    pub fn signers_include(&self) -> &[NodeId] {
        &self.signers_include
    }
    /// Distinct approving operators needed (1 on a deny rule that does not say).
    pub fn approvals(&self) -> usize {
        self.approvals
    }
    pub fn approvers(&self) -> Option<&[OperatorId]> {
        self.approvers.as_deref()
    }
    pub fn action(&self) -> Action {
        self.action
    }
}

/// A structurally valid policy. Says nothing about who approved it: see [`crate::accept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    version: u64,
    effective_after_secs: u64,
    allowlist_delay_secs: u64,
    allowlist: Vec<AllowlistEntry>,
    rules: Vec<Rule>,
}

impl Policy {
    /// Parses and validates body bytes: size, then JSON (unknown fields refused, counts
    /// bounded while reading), then every field and cross-reference.
    pub fn parse(body: &[u8]) -> Result<Policy, PolicyError> {
        if body.len() > MAX_POLICY_LEN {
            return Err(PolicyError::BodyTooLarge {
                len: body.len(),
                max: MAX_POLICY_LEN,
            });
        }
        let wire: PolicyWire =
            serde_json::from_slice(body).map_err(|e| PolicyError::Body(e.to_string()))?;
        if wire.version == 0 {
            return Err(PolicyError::VersionZero);
        }
        let doc = Place::Document;
        for (field, value) in [
            ("effective_after_secs", wire.effective_after_secs),
            ("allowlist_delay_secs", wire.allowlist_delay_secs),
        ] {
            in_range(&doc, field, value, 0, MAX_DELAY_SECS)?;
        }
        let allowlist = allowlist(wire.allowlist.within("allowlist entries")?)?;
        let mut rules = Vec::new();
        let mut names = BTreeSet::new();
        // The bitcoin network each key spends on: a PSBT's sighashes name no network, so a
        // key named on two would let a requester pick the laxer rules.
        let mut networks: std::collections::BTreeMap<KeyId, Chain> =
            std::collections::BTreeMap::new();
        for (index, rule) in wire.rules.within("rules")?.into_iter().enumerate() {
            let rule = rule.check(index, &allowlist)?;
            if !names.insert(rule.name.clone()) {
                return Err(PolicyError::DuplicateRule(rule.name));
            }
            if let Chain::Bitcoin { .. } = rule.chain {
                for key in rule.keys.iter().flatten() {
                    match networks.insert(key.clone(), rule.chain) {
                        Some(other) if other != rule.chain => {
                            let place = Place::Rule {
                                index,
                                name: shown(&rule.name),
                            };
                            return Err(PolicyError::field(
                                &place,
                                "keys",
                                Reason::KeyOnTwoNetworks {
                                    key: key.to_string(),
                                    other: other.to_string(),
                                },
                            ));
                        }
                        _ => {}
                    }
                }
            }
            rules.push(rule);
        }
        Ok(Policy {
            version: wire.version,
            effective_after_secs: wire.effective_after_secs,
            allowlist_delay_secs: wire.allowlist_delay_secs,
            allowlist,
            rules,
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// How long after a node accepts this version it takes effect (unless it is the
    /// node's first policy).
    pub fn effective_after_secs(&self) -> u64 {
        self.effective_after_secs
    }

    /// How long after a node first accepted a policy listing an address it is usable.
    pub fn allowlist_delay_secs(&self) -> u64 {
        self.allowlist_delay_secs
    }

    pub fn allowlist(&self) -> &[AllowlistEntry] {
        &self.allowlist
    }

    pub fn entry(&self, name: &str) -> Option<&AllowlistEntry> {
        self.allowlist.iter().find(|e| e.name == name)
    }

    /// In order: the first that matches decides.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

fn in_range(
    place: &Place,
    field: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), PolicyError> {
    if value < min || value > max {
        return Err(PolicyError::field(
            place,
            field,
            Reason::OutOfRange { value, min, max },
        ));
    }
    Ok(())
}

/// A rule or entry name: 1 to [`MAX_NAME_LEN`] bytes of printable ASCII.
fn check_name(name: &str) -> Result<(), Reason> {
    if name.is_empty() {
        return Err(Reason::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Reason::TooLong { max: MAX_NAME_LEN });
    }
    if !name.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(Reason::NotPrintable);
    }
    Ok(())
}

/// The name as a [`Place`] shows it: a refused name is shown cut short.
fn shown(name: &str) -> String {
    name.chars().take(MAX_NAME_LEN).collect()
}

fn allowlist(entries: Vec<EntryWire>) -> Result<Vec<AllowlistEntry>, PolicyError> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let place = Place::Entry {
            index,
            name: shown(&entry.name),
        };
        check_name(&entry.name).map_err(|r| PolicyError::field(&place, "name", r))?;
        let chain: Chain = entry
            .chain
            .parse()
            .map_err(|r| PolicyError::field(&place, "chain", r))?;
        let address = normalize_address(&chain, &entry.address)
            .map_err(|r| PolicyError::field(&place, "address", r))?;
        if !names.insert(entry.name.clone()) {
            return Err(PolicyError::DuplicateEntry(entry.name));
        }
        out.push(AllowlistEntry {
            name: entry.name,
            chain,
            address,
        });
    }
    Ok(out)
}

/// Refuses an empty list or one naming an item twice.
fn distinct<T: Ord + Clone + fmt::Display>(
    place: &Place,
    field: &'static str,
    items: &[T],
) -> Result<(), PolicyError> {
    if items.is_empty() {
        return Err(PolicyError::field(place, field, Reason::Empty));
    }
    let mut seen = BTreeSet::new();
    for item in items {
        if !seen.insert(item.clone()) {
            return Err(PolicyError::field(
                place,
                field,
                Reason::Duplicate(item.to_string()),
            ));
        }
    }
    Ok(())
}

/// Ids of one kind, each checked against the identifier rule.
fn ids_of<T>(
    place: &Place,
    field: &'static str,
    raw: Vec<String>,
    make: fn(String) -> Result<T, ids::IdError>,
) -> Result<Vec<T>, PolicyError> {
    raw.into_iter()
        .map(|s| make(s).map_err(|e| PolicyError::field(place, field, Reason::Id(e))))
        .collect()
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl RuleWire {
    fn check(self, index: usize, allowlist: &[AllowlistEntry]) -> Result<Rule, PolicyError> {
        let place = Place::Rule {
            index,
            name: shown(&self.name),
        };
        let p = &place;
        check_name(&self.name).map_err(|r| PolicyError::field(p, "name", r))?;
        let chain: Chain = self
            .chain
            .parse()
            .map_err(|r| PolicyError::field(p, "chain", r))?;
        if chain == Chain::Digest {
            for (field, present) in [
                ("asset", self.asset.is_some()),
                ("to", self.to.is_some()),
                ("max_amount", self.max_amount.is_some()),
                ("velocity", self.velocity.is_some()),
            ] {
                if present {
                    return Err(PolicyError::field(p, field, Reason::NotOnDigest));
                }
            }
        }
        let keys = match self.keys {
            Some(raw) => {
                let keys = ids_of(p, "keys", raw, KeyId::new)?;
                distinct(p, "keys", &keys)?;
                Some(keys)
            }
            None => None,
        };
        let asset = match self.asset {
            Some(s) => {
                Some(Asset::parse(&chain, &s).map_err(|r| PolicyError::field(p, "asset", r))?)
            }
            None => None,
        };
        if let Some(to) = &self.to {
            distinct(p, "to", to)?;
            for name in to {
                let entry = allowlist.iter().find(|e| &e.name == name).ok_or_else(|| {
                    PolicyError::field(p, "to", Reason::UnknownEntry(shown(name)))
                })?;
                if entry.chain != chain {
                    return Err(PolicyError::field(
                        p,
                        "to",
                        Reason::WrongChain {
                            entry: name.clone(),
                            entry_chain: entry.chain.to_string(),
                        },
                    ));
                }
            }
        }
        let max_amount = match &self.max_amount {
            Some(s) => Some(parse_amount(s).map_err(|r| PolicyError::field(p, "max_amount", r))?),
            None => None,
        };
        let ethereum = matches!(chain, Chain::Ethereum { .. });
        let max_fee = match &self.max_fee {
            Some(_) if !ethereum => {
                return Err(PolicyError::field(p, "max_fee", Reason::OnlyOnEthereum));
            }
            Some(s) => Some(parse_amount(s).map_err(|r| PolicyError::field(p, "max_fee", r))?),
            None => None,
        };
        let limits = self.max_amount.is_some() || self.velocity.is_some();
        if ethereum && limits && asset.is_none() {
            return Err(PolicyError::field(p, "asset", Reason::AssetRequired));
        }
        if matches!(chain, Chain::Bitcoin { .. }) && self.action == Action::Allow && keys.is_none()
        {
            return Err(PolicyError::field(p, "keys", Reason::KeysRequired));
        }
        let velocity = match self.velocity {
            Some(v) => {
                in_range(p, "velocity.window_secs", v.window_secs, 1, MAX_WINDOW_SECS)?;
                let max_amount = parse_amount(&v.max_amount)
                    .map_err(|r| PolicyError::field(p, "velocity.max_amount", r))?;
                Some(Velocity {
                    window_secs: v.window_secs,
                    max_amount,
                })
            }
            None => None,
        };
        let hours_utc = match self.hours_utc {
            Some([from, to]) if from < to && to <= 24 => Some((from, to)),
            Some(_) => return Err(PolicyError::field(p, "hours_utc", Reason::Hours)),
            None => None,
        };
        if let Some(days) = &self.days {
            distinct(p, "days", days)?;
        }
        let signers_include = ids_of(
            p,
            "signers_include",
            self.signers_include.unwrap_or_default(),
            NodeId::new,
        )?;
        if !signers_include.is_empty() {
            distinct(p, "signers_include", &signers_include)?;
        }
        let approvers = match self.approvers {
            Some(raw) => {
                let approvers = ids_of(p, "approvers", raw, OperatorId::new)?;
                distinct(p, "approvers", &approvers)?;
                Some(approvers)
            }
            None => None,
        };
        let approvals = match (self.approvals, self.action) {
            (Some(n), _) => n,
            (None, Action::Deny) => 1,
            (None, Action::Allow) => {
                return Err(PolicyError::field(p, "approvals", Reason::Missing));
            }
        };
        let listed = approvers.as_ref().map_or(usize::MAX, Vec::len);
        if approvals == 0 || approvals > listed {
            return Err(PolicyError::field(
                p,
                "approvals",
                Reason::Approvals {
                    approvals,
                    approvers: listed,
                },
            ));
        }
        Ok(Rule {
            name: self.name,
            keys,
            chain,
            asset,
            to: self.to,
            max_amount,
            max_fee,
            velocity,
            hours_utc,
            days: self.days,
            signers_include,
            approvals,
            approvers,
            action: self.action,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyWire {
    version: u64,
    effective_after_secs: u64,
    allowlist_delay_secs: u64,
    allowlist: Bounded<EntryWire, MAX_ALLOWLIST>,
    rules: Bounded<RuleWire, MAX_RULES>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryWire {
    name: String,
    chain: String,
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleWire {
    name: String,
    keys: Option<Vec<String>>,
    chain: String,
    asset: Option<String>,
    to: Option<Vec<String>>,
    max_amount: Option<String>,
    max_fee: Option<String>,
    velocity: Option<VelocityWire>,
    hours_utc: Option<[u8; 2]>,
    days: Option<Vec<Weekday>>,
    signers_include: Option<Vec<String>>,
    approvals: Option<usize>,
    approvers: Option<Vec<String>>,
    action: Action,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VelocityWire {
    window_secs: u64,
    max_amount: String,
}

#[cfg(test)]
#[path = "document_tests.rs"]
mod tests;
