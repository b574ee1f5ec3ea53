//! Who may take the enclave's connection slots through the inbound listeners.
//!
//! The enclave serves at most [`ENCLAVE_PEER_SLOTS`] peer and [`ENCLAVE_CLIENT_SLOTS`]
//! client connections and cannot see where they come from; the parent can. Without a
//! limit by source, a few addresses that connect and then send nothing keep every slot
//! busy and real peers and operators find no room.
//!
//! - Peer listener: connections from the host of a node the manifest lists ("known
//!   peers") draw from a reserved budget (`--peer-reserved`), each known host at most
//!   an equal share of it; every other source shares a small pool (`--peer-shared`),
//!   at most `--max-per-source` each. Reserved + shared never exceeds the enclave's
//!   peer slots, so a flood from unknown sources cannot take the peers' room.
//! - Client listener: one pool (`--client-max`, below the enclave's client slots), at
//!   most `--max-per-source` per source, so two sources cannot fill it.
//!
//! A source is an IPv4 address, or an IPv6 /64: whoever has one IPv6 address usually
//! has the whole /64, so counting single IPv6 addresses would bound nothing. An
//! IPv4-mapped IPv6 address counts as its IPv4 address. A known peer is matched on its
//! exact address.
//!
//! [`admit`] decides from the counts alone; [`Admission`] keeps the counts.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Peer connections the enclave serves at once (its `MAX_PEER_CONNECTIONS`).
pub const ENCLAVE_PEER_SLOTS: usize = 64;
/// Client connections the enclave serves at once (its `MAX_CLIENT_CONNECTIONS`).
pub const ENCLAVE_CLIENT_SLOTS: usize = 32;
/// Default of `--peer-reserved`: peer connections kept for the manifest's nodes.
pub const DEFAULT_PEER_RESERVED: u32 = 48;
/// Default of `--peer-shared`: peer connections all other sources share.
pub const DEFAULT_PEER_SHARED: u32 = 16;
/// Default of `--max-per-source`: connections one unknown source may have open on the
/// peer listener, and as many on the client listener. Several operators behind one
/// NAT stay inside it; two sources cannot fill the client pool.
pub const DEFAULT_MAX_PER_SOURCE: u32 = 4;
/// Default of `--client-max`: client connections relayed at once, below the enclave's
/// client slots.
pub const DEFAULT_CLIENT_MAX: u32 = 24;
/// Default of `--max-outbound`: the enclave's outbound dials relayed at once, a budget
/// inbound connections never draw from.
pub const DEFAULT_MAX_OUTBOUND: u32 = 64;

/// Who a connection is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match canonical(ip) {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => Source::V6Prefix(prefix64(&v6)),
        }
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; any other address as it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    }
}

fn prefix64(v6: &Ipv6Addr) -> [u8; 8] {
    let o = v6.octets();
    let mut out = [0u8; 8];
    out.iter_mut().zip(o.iter()).for_each(|(d, s)| *d = *s);
    out
}

/// How many connections one listener relays, and from whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// For known peers, all together.
    pub reserved: usize,
    /// For every other source, all together.
    pub shared: usize,
    /// For one source in the shared pool.
    pub per_source: usize,
}

/// Budgets that would let the parent relay more than the enclave serves, or nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    #[error(
        "--peer-reserved ({reserved}) + --peer-shared ({shared}) exceeds the enclave's {ENCLAVE_PEER_SLOTS} peer slots"
    )]
    PeerOverEnclave { reserved: usize, shared: usize },
    #[error("--client-max ({0}) exceeds the enclave's {ENCLAVE_CLIENT_SLOTS} client slots")]
    ClientOverEnclave(usize),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

impl Budget {
    /// The peer listener's budget; `reserved + shared` at most [`ENCLAVE_PEER_SLOTS`].
    pub fn peer(reserved: usize, shared: usize, per_source: usize) -> Result<Budget, BudgetError> {
        if reserved == 0 {
            return Err(BudgetError::Zero("--peer-reserved"));
        }
        if shared == 0 {
            return Err(BudgetError::Zero("--peer-shared"));
        }
        if per_source == 0 {
            return Err(BudgetError::Zero("--max-per-source"));
        }
        if reserved.saturating_add(shared) > ENCLAVE_PEER_SLOTS {
            return Err(BudgetError::PeerOverEnclave { reserved, shared });
        }
        Ok(Budget {
            reserved,
            shared,
            per_source,
        })
    }

    /// The client listener's budget: no reservation, `max` at most
    /// [`ENCLAVE_CLIENT_SLOTS`].
    pub fn client(max: usize, per_source: usize) -> Result<Budget, BudgetError> {
        if max == 0 {
            return Err(BudgetError::Zero("--client-max"));
        }
        if per_source == 0 {
            return Err(BudgetError::Zero("--max-per-source"));
        }
        if max > ENCLAVE_CLIENT_SLOTS {
            return Err(BudgetError::ClientOverEnclave(max));
        }
        Ok(Budget {
            reserved: 0,
            shared: max,
            per_source,
        })
    }
}

/// Which pool an admitted connection draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pool {
    Reserved,
    Shared,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// Known peers hold the whole reserved budget.
    ReservedFull,
    /// This known host holds its share of the reserved budget.
    KnownSourceLimit,
    /// Other sources hold the whole shared pool.
    SharedFull,
    /// This source holds `per_source` connections of the shared pool.
    SourceLimit,
}

/// Connections open, by pool and by source.
#[derive(Debug, Default)]
pub struct Counts {
    pub reserved: usize,
    pub shared: usize,
    /// Per pool, so that an unknown source sharing a known peer's IPv6 /64 does not
    /// eat into the peer's share.
    pub by_source: HashMap<(Pool, Source), usize>,
}

/// Decides whether one more connection from `source` fits. `known_hosts` is how many
/// distinct known-peer addresses there are: each gets an equal share of the reserved
/// budget, so that one node cannot take the others' room.
pub fn admit(
    budget: &Budget,
    counts: &Counts,
    source: Source,
    known: bool,
    known_hosts: usize,
) -> Result<Pool, Denied> {
    let open = |pool| counts.by_source.get(&(pool, source)).copied().unwrap_or(0);
    if known {
        let share = (budget.reserved / known_hosts.max(1)).max(1);
        if counts.reserved >= budget.reserved {
            return Err(Denied::ReservedFull);
        }
        if open(Pool::Reserved) >= share {
            return Err(Denied::KnownSourceLimit);
        }
        Ok(Pool::Reserved)
    } else {
        if open(Pool::Shared) >= budget.per_source {
            return Err(Denied::SourceLimit);
        }
        if counts.shared >= budget.shared {
            return Err(Denied::SharedFull);
        }
        Ok(Pool::Shared)
    }
}

#[derive(Debug, Default)]
struct State {
    counts: Counts,
    /// Exact addresses of the manifest's nodes (canonical form).
    known: BTreeSet<IpAddr>,
}

/// One listener's counts and known peers.
#[derive(Debug)]
pub struct Admission {
    budget: Budget,
    state: Mutex<State>,
}

/// One admitted connection, counted until dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    source: Source,
    pool: Pool,
}

impl Admitted {
    pub fn pool(&self) -> Pool {
        self.pool
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        let counts = &mut state.counts;
        match self.pool {
            Pool::Reserved => counts.reserved = counts.reserved.saturating_sub(1),
            Pool::Shared => counts.shared = counts.shared.saturating_sub(1),
        }
        let key = (self.pool, self.source);
        if let Some(n) = counts.by_source.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_source.remove(&key);
            }
        }
    }
}

impl Admission {
    pub fn new(budget: Budget, known: impl IntoIterator<Item = IpAddr>) -> Arc<Admission> {
        Arc::new(Admission {
            budget,
            state: Mutex::new(State {
                counts: Counts::default(),
                known: known.into_iter().map(canonical).collect(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the known peers (after a manifest reload); open connections keep the
    /// pool they were admitted to.
    pub fn set_known(&self, known: impl IntoIterator<Item = IpAddr>) {
        self.lock().known = known.into_iter().map(canonical).collect();
    }

    pub fn is_known(&self, ip: IpAddr) -> bool {
        self.lock().known.contains(&canonical(ip))
    }

    /// Counts a connection from `ip`, or says why it does not fit.
    pub fn try_enter(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Denied> {
        let source = Source::of(ip);
        let mut state = self.lock();
        let known = state.known.contains(&canonical(ip));
        let known_hosts = state.known.len();
        let pool = admit(&self.budget, &state.counts, source, known, known_hosts)?;
        let counts = &mut state.counts;
        match pool {
            Pool::Reserved => counts.reserved += 1,
            Pool::Shared => counts.shared += 1,
        }
        *counts.by_source.entry((pool, source)).or_insert(0) += 1;
        drop(state);
        Ok(Admitted {
            admission: Arc::clone(self),
            source,
            pool,
        })
    }

    /// Connections `ip`'s source has open, in both pools.
    pub fn open(&self, ip: IpAddr) -> usize {
        let source = Source::of(ip);
        let state = self.lock();
        [Pool::Reserved, Pool::Shared]
            .iter()
            .filter_map(|pool| state.counts.by_source.get(&(*pool, source)))
            .sum()
    }

    /// Connections open in each pool: (reserved, shared).
    pub fn pools(&self) -> (usize, usize) {
        let state = self.lock();
        (state.counts.reserved, state.counts.shared)
    }

    /// Sources with a connection open (a source in both pools counts twice).
    pub fn sources(&self) -> usize {
        self.lock().counts.by_source.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn peer_budget() -> Budget {
        Budget::peer(8, 4, 2).unwrap()
    }

    #[test]
    fn per_source_at_the_limit_and_one_past() {
        let limit = Admission::new(Budget::client(10, 3).unwrap(), []);
        let a = ip("192.0.2.1");
        let held: Vec<_> = (0..3).map(|_| limit.try_enter(a).unwrap()).collect();
        assert_eq!(limit.open(a), 3);
        assert_eq!(limit.try_enter(a).unwrap_err(), Denied::SourceLimit);
        // Another source is not affected.
        let b = limit.try_enter(ip("192.0.2.2")).unwrap();
        // Closing frees the source's room.
        drop(held);
        assert_eq!(limit.open(a), 0);
        let again: Vec<_> = (0..3).map(|_| limit.try_enter(a).unwrap()).collect();
        assert_eq!(limit.try_enter(a).unwrap_err(), Denied::SourceLimit);
        drop((again, b));
        assert_eq!(
            limit.sources(),
            0,
            "entries are removed with their last connection"
        );
        assert_eq!(limit.pools(), (0, 0));
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_its_ipv4() {
        let limit = Admission::new(Budget::client(10, 2).unwrap(), []);
        let _one = limit.try_enter(ip("2001:db8:1:2::1")).unwrap();
        let _two = limit
            .try_enter(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
            .unwrap();
        assert!(limit.try_enter(ip("2001:db8:1:2::99")).is_err());
        assert!(limit.try_enter(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = limit.try_enter(ip("198.51.100.7")).unwrap();
        let _mapped = limit.try_enter(ip("::ffff:198.51.100.7")).unwrap();
        assert!(limit.try_enter(ip("198.51.100.7")).is_err());
    }

    #[test]
    fn a_flood_at_and_past_the_shared_pool_leaves_the_known_peers_room() {
        let peer = ip("127.0.0.5");
        let limit = Admission::new(peer_budget(), [peer]);
        // Two unknown sources fill the shared pool exactly (2 each, pool of 4).
        let flood: Vec<_> = ["127.0.0.2", "127.0.0.3"]
            .iter()
            .flat_map(|s| {
                [
                    limit.try_enter(ip(s)).unwrap(),
                    limit.try_enter(ip(s)).unwrap(),
                ]
            })
            .collect();
        assert!(flood.iter().all(|a| a.pool() == Pool::Shared));
        // One past it, from a fresh source, is refused.
        assert_eq!(
            limit.try_enter(ip("127.0.0.4")).unwrap_err(),
            Denied::SharedFull
        );
        // The known peer still gets the whole reserved budget.
        let peers: Vec<_> = (0..8).map(|_| limit.try_enter(peer).unwrap()).collect();
        assert!(peers.iter().all(|a| a.pool() == Pool::Reserved));
        assert_eq!(limit.try_enter(peer).unwrap_err(), Denied::ReservedFull);
        assert_eq!(limit.pools(), (8, 4));
        // Known peers do not eat into the shared pool either.
        drop(flood);
        assert_eq!(limit.pools(), (8, 0));
        assert!(limit.try_enter(ip("127.0.0.4")).is_ok());
    }

    #[test]
    fn each_known_host_gets_an_equal_share_of_the_reservation() {
        let (a, b) = (ip("192.0.2.10"), ip("192.0.2.11"));
        let limit = Admission::new(peer_budget(), [a, b]);
        let held: Vec<_> = (0..4).map(|_| limit.try_enter(a).unwrap()).collect();
        assert_eq!(limit.try_enter(a).unwrap_err(), Denied::KnownSourceLimit);
        let other: Vec<_> = (0..4).map(|_| limit.try_enter(b).unwrap()).collect();
        assert_eq!(limit.try_enter(b).unwrap_err(), Denied::ReservedFull);
        drop((held, other));
        // An unknown source in a known peer's IPv6 /64 is counted apart from the peer.
        let v6 = ip("2001:db8::5");
        let limit = Admission::new(peer_budget(), [v6]);
        let _neighbour: Vec<_> = (0..2)
            .map(|_| limit.try_enter(ip("2001:db8::6")).unwrap())
            .collect();
        assert_eq!(
            limit.try_enter(ip("2001:db8::7")).unwrap_err(),
            Denied::SourceLimit
        );
        assert_eq!(limit.try_enter(v6).unwrap().pool(), Pool::Reserved);
        assert!(!limit.is_known(ip("192.0.2.10")));
        limit.set_known([ip("::ffff:192.0.2.10")]);
        assert!(limit.is_known(ip("192.0.2.10")));
        assert!(!limit.is_known(v6));
    }

    #[test]
    fn budgets_never_exceed_what_the_enclave_serves() {
        assert!(Budget::peer(48, 16, 4).is_ok());
        assert!(Budget::peer(63, 1, 4).is_ok());
        assert_eq!(
            Budget::peer(49, 16, 4),
            Err(BudgetError::PeerOverEnclave {
                reserved: 49,
                shared: 16
            })
        );
        assert!(Budget::peer(usize::MAX, 1, 1).is_err());
        assert!(Budget::peer(0, 16, 4).is_err());
        assert!(Budget::peer(48, 0, 4).is_err());
        assert!(Budget::peer(48, 16, 0).is_err());
        assert!(Budget::client(32, 4).is_ok());
        assert_eq!(
            Budget::client(33, 4),
            Err(BudgetError::ClientOverEnclave(33))
        );
        assert!(Budget::client(0, 4).is_err());
        assert!(Budget::client(24, 0).is_err());
        // The defaults fit, and two sources cannot fill the client pool.
        let d = |v: u32| usize::try_from(v).unwrap();
        assert!(Budget::peer(d(DEFAULT_PEER_RESERVED), d(DEFAULT_PEER_SHARED), 4).is_ok());
        assert!(d(DEFAULT_PEER_SHARED) < ENCLAVE_PEER_SLOTS);
        assert!(d(DEFAULT_CLIENT_MAX) < ENCLAVE_CLIENT_SLOTS);
        assert!(2 * d(DEFAULT_MAX_PER_SOURCE) < d(DEFAULT_CLIENT_MAX));
    }
}
