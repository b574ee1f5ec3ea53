//! Concurrent connections per source on the inbound listeners.
//!
//! The global `--max-connections` keeps the parent alive, but one source could fill it,
//! and the enclave's own slots behind it, with slow connections that never attest, so
//! that real peers and operators find no room. Each inbound listener therefore also
//! bounds the connections one source has open at once (`--max-per-source`); a
//! connection past it is closed at once and counted.
//!
//! A source is an IPv4 address, or an IPv6 /64: whoever has one IPv6 address usually
//! has the whole /64, so counting single IPv6 addresses would bound nothing. An
//! IPv4-mapped IPv6 address counts as its IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Default of `--max-per-source`: several nodes behind one NAT, or a local simulated
/// cluster on one address, stay well inside it; one source alone cannot fill the
/// enclave's 64 peer slots.
pub const DEFAULT_MAX_PER_SOURCE: u32 = 16;

/// Who a connection is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => Source::V6Prefix(prefix64(&v6)),
            },
        }
    }
}

fn prefix64(v6: &Ipv6Addr) -> [u8; 8] {
    let o = v6.octets();
    let mut out = [0u8; 8];
    out.iter_mut().zip(o.iter()).for_each(|(d, s)| *d = *s);
    out
}

/// Open connections per source, at most `max` each. Only sources with an open
/// connection have an entry, so the table is never larger than the connections open.
#[derive(Debug)]
pub struct SourceLimit {
    max: usize,
    open: Mutex<HashMap<Source, usize>>,
}

/// One connection counted against its source until dropped.
#[derive(Debug)]
pub struct SourceGuard {
    limit: Arc<SourceLimit>,
    source: Source,
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        let mut open = self.limit.lock();
        if let Some(n) = open.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.source);
            }
        }
    }
}

impl SourceLimit {
    pub fn new(max: usize) -> Arc<SourceLimit> {
        Arc::new(SourceLimit {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Source, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a connection from `ip`, or `None` when its source has `max` open already.
    pub fn try_enter(self: &Arc<Self>, ip: IpAddr) -> Option<SourceGuard> {
        let source = Source::of(ip);
        let mut open = self.lock();
        let n = open.entry(source).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        drop(open);
        Some(SourceGuard {
            limit: Arc::clone(self),
            source,
        })
    }

    /// Connections `ip`'s source has open.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.lock().get(&Source::of(ip)).copied().unwrap_or(0)
    }

    /// Sources with a connection open.
    pub fn sources(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn at_the_limit_and_one_past() {
        let limit = SourceLimit::new(3);
        let a = ip("192.0.2.1");
        let held: Vec<_> = (0..3).map(|_| limit.try_enter(a).unwrap()).collect();
        assert_eq!(limit.open(a), 3);
        assert!(limit.try_enter(a).is_none());
        // Another source is not affected.
        let b = limit.try_enter(ip("192.0.2.2")).unwrap();
        // Closing one makes room for exactly one.
        drop(held);
        assert_eq!(limit.open(a), 0);
        let again: Vec<_> = (0..3).map(|_| limit.try_enter(a).unwrap()).collect();
        assert!(limit.try_enter(a).is_none());
        drop((again, b));
        assert_eq!(
            limit.sources(),
            0,
            "entries are removed with their last connection"
        );
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_its_ipv4() {
        let limit = SourceLimit::new(2);
        let _one = limit.try_enter(ip("2001:db8:1:2::1")).unwrap();
        let _two = limit
            .try_enter(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
            .unwrap();
        assert!(limit.try_enter(ip("2001:db8:1:2::99")).is_none());
        assert!(limit.try_enter(ip("2001:db8:1:3::1")).is_some());
        let _v4 = limit.try_enter(ip("198.51.100.7")).unwrap();
        let _mapped = limit.try_enter(ip("::ffff:198.51.100.7")).unwrap();
        assert!(limit.try_enter(ip("198.51.100.7")).is_none());
    }
}
