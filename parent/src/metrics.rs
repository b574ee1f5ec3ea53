//! Counters and gauges, rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Which listener a relayed connection came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Inbound from another node, to the enclave's peer port.
    Peer = 0,
    /// Inbound from an operator or application, to the enclave's client port.
    Client = 1,
    /// Outbound from the enclave, to a node listed in the manifest.
    Outbound = 2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Peer, Kind::Client, Kind::Outbound];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Peer => "peer",
            Kind::Client => "client",
            Kind::Outbound => "outbound",
        }
    }
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `--max-outbound` outbound connections were already open.
    Limit = 0,
    /// The enclave did not accept the relayed connection.
    EnclaveUnreachable = 1,
    /// The CONNECT header was malformed, too long or late.
    BadHeader = 2,
    /// CONNECT named a node the manifest does not list.
    UnknownNode = 3,
    /// CONNECT named this node itself.
    OwnNode = 4,
    /// The listed address could not be reached.
    DialFailed = 5,
    /// `--max-per-source` connections from the same source were already open.
    SourceLimit = 6,
    /// The shared pool (`--peer-shared`, or `--client-max`) was full.
    SharedFull = 7,
    /// Known peers held the whole reserved budget (`--peer-reserved`).
    ReservedFull = 8,
    /// This known peer's host held its share of the reserved budget.
    KnownSourceLimit = 9,
}

impl Refused {
    pub const ALL: [Refused; 10] = [
        Refused::Limit,
        Refused::EnclaveUnreachable,
        Refused::BadHeader,
        Refused::UnknownNode,
        Refused::OwnNode,
        Refused::DialFailed,
        Refused::SourceLimit,
        Refused::SharedFull,
        Refused::ReservedFull,
        Refused::KnownSourceLimit,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refused::Limit => "limit",
            Refused::EnclaveUnreachable => "enclave_unreachable",
            Refused::BadHeader => "bad_header",
            Refused::UnknownNode => "unknown_node",
            Refused::OwnNode => "own_node",
            Refused::DialFailed => "dial_failed",
            Refused::SourceLimit => "source_limit",
            Refused::SharedFull => "shared_full",
            Refused::ReservedFull => "reserved_full",
            Refused::KnownSourceLimit => "known_source_limit",
        }
    }
}

/// A blob-store operation; `Invalid` is a request that could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOp {
    Put = 0,
    Get = 1,
    List = 2,
    Delete = 3,
    Invalid = 4,
}

impl BlobOp {
    pub const ALL: [BlobOp; 5] = [
        BlobOp::Put,
        BlobOp::Get,
        BlobOp::List,
        BlobOp::Delete,
        BlobOp::Invalid,
    ];

    pub fn label(self) -> &'static str {
        match self {
            BlobOp::Put => "put",
            BlobOp::Get => "get",
            BlobOp::List => "list",
            BlobOp::Delete => "delete",
            BlobOp::Invalid => "invalid",
        }
    }
}

/// How a blob-store operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobResult {
    Ok = 0,
    NotFound = 1,
    DiskFull = 2,
    Error = 3,
}

impl BlobResult {
    pub const ALL: [BlobResult; 4] = [
        BlobResult::Ok,
        BlobResult::NotFound,
        BlobResult::DiskFull,
        BlobResult::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            BlobResult::Ok => "ok",
            BlobResult::NotFound => "not_found",
            BlobResult::DiskFull => "disk_full",
            BlobResult::Error => "error",
        }
    }
}

#[derive(Debug, Default)]
struct KindCounters {
    total: AtomicU64,
    active: AtomicU64,
}

/// Every metric the parent exports. Shared by all tasks; updates are relaxed atomics.
#[derive(Debug, Default)]
pub struct Metrics {
    kinds: [KindCounters; 3],
    refused: [AtomicU64; 10],
    to_enclave: AtomicU64,
    from_enclave: AtomicU64,
    blob_ops: [[AtomicU64; 4]; 5],
    enclave_reachable: AtomicBool,
}

/// Keeps a connection counted as active until dropped.
#[derive(Debug)]
pub struct ActiveGuard<'a> {
    metrics: &'a Metrics,
    kind: Kind,
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.metrics.kinds.get(self.kind as usize) {
            k.active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Metrics {
    /// Counts an accepted connection and keeps it active while the guard lives.
    pub fn open(&self, kind: Kind) -> ActiveGuard<'_> {
        if let Some(k) = self.kinds.get(kind as usize) {
            k.total.fetch_add(1, Ordering::Relaxed);
            k.active.fetch_add(1, Ordering::Relaxed);
        }
        ActiveGuard {
            metrics: self,
            kind,
        }
    }

    pub fn refused(&self, reason: Refused) {
        if let Some(c) = self.refused.get(reason as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counter of bytes relayed towards the enclave.
    pub fn to_enclave(&self) -> &AtomicU64 {
        &self.to_enclave
    }

    /// The counter of bytes relayed out of the enclave.
    pub fn from_enclave(&self) -> &AtomicU64 {
        &self.from_enclave
    }

    pub fn blob_op(&self, op: BlobOp, result: BlobResult) {
        if let Some(c) = self
            .blob_ops
            .get(op as usize)
            .and_then(|row| row.get(result as usize))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn set_enclave_reachable(&self, reachable: bool) {
        self.enclave_reachable.store(reachable, Ordering::Relaxed);
    }

    pub fn active(&self, kind: Kind) -> u64 {
        self.kinds
            .get(kind as usize)
            .map_or(0, |k| k.active.load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let kinds = || Kind::ALL.iter().zip(self.kinds.iter());

        header(
            &mut out,
            "parent_connections_total",
            "counter",
            "Connections accepted, by listener (refused ones included).",
        );
        for (kind, c) in kinds() {
            let _ = writeln!(
                out,
                "parent_connections_total{{kind=\"{}\"}} {}",
                kind.label(),
                load(&c.total)
            );
        }
        header(
            &mut out,
            "parent_connections_active",
            "gauge",
            "Connections open now, by listener.",
        );
        for (kind, c) in kinds() {
            let _ = writeln!(
                out,
                "parent_connections_active{{kind=\"{}\"}} {}",
                kind.label(),
                load(&c.active)
            );
        }
        header(
            &mut out,
            "parent_connections_refused_total",
            "counter",
            "Connections refused or abandoned before relaying, by reason.",
        );
        for (reason, c) in Refused::ALL.iter().zip(self.refused.iter()) {
            let _ = writeln!(
                out,
                "parent_connections_refused_total{{reason=\"{}\"}} {}",
                reason.label(),
                load(c)
            );
        }
        header(
            &mut out,
            "parent_bytes_relayed_total",
            "counter",
            "Bytes relayed, by direction relative to the enclave.",
        );
        let _ = writeln!(
            out,
            "parent_bytes_relayed_total{{direction=\"to_enclave\"}} {}",
            load(&self.to_enclave)
        );
        let _ = writeln!(
            out,
            "parent_bytes_relayed_total{{direction=\"from_enclave\"}} {}",
            load(&self.from_enclave)
        );
        header(
            &mut out,
            "parent_blob_operations_total",
            "counter",
            "Blob-store operations, by operation and result.",
        );
        for (op, row) in BlobOp::ALL.iter().zip(self.blob_ops.iter()) {
            for (result, c) in BlobResult::ALL.iter().zip(row.iter()) {
                let _ = writeln!(
                    out,
                    "parent_blob_operations_total{{op=\"{}\",result=\"{}\"}} {}",
                    op.label(),
                    result.label(),
                    load(c)
                );
            }
        }
        header(
            &mut out,
            "parent_enclave_reachable",
            "gauge",
            "1 if the last health probe reached the enclave's status port.",
        );
        let _ = writeln!(
            out,
            "parent_enclave_reachable {}",
            u8::from(self.enclave_reachable.load(Ordering::Relaxed))
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_with_help_and_type() {
        let m = Metrics::default();
        let text = m.render();
        for name in [
            "parent_connections_total",
            "parent_connections_active",
            "parent_connections_refused_total",
            "parent_bytes_relayed_total",
            "parent_blob_operations_total",
            "parent_enclave_reachable",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert!(text.contains("parent_connections_total{kind=\"outbound\"} 0\n"));
        assert!(text.contains("parent_connections_refused_total{reason=\"own_node\"} 0\n"));
        for reason in Refused::ALL {
            let line = format!(
                "parent_connections_refused_total{{reason=\"{}\"}} 0\n",
                reason.label()
            );
            assert!(text.contains(&line), "{line}");
        }
        assert!(text.contains("parent_blob_operations_total{op=\"invalid\",result=\"error\"} 0\n"));
        assert!(text.contains("parent_enclave_reachable 0\n"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(series.starts_with("parent_"), "{line}");
            value.parse::<u64>().unwrap();
        }
    }

    #[test]
    fn counts_and_gauges_move() {
        let m = Metrics::default();
        {
            let _a = m.open(Kind::Peer);
            let _b = m.open(Kind::Peer);
            assert_eq!(m.active(Kind::Peer), 2);
            assert!(
                m.render()
                    .contains("parent_connections_active{kind=\"peer\"} 2\n")
            );
        }
        assert_eq!(m.active(Kind::Peer), 0);
        m.refused(Refused::Limit);
        m.to_enclave().fetch_add(64, Ordering::Relaxed);
        m.from_enclave().fetch_add(32, Ordering::Relaxed);
        m.blob_op(BlobOp::Put, BlobResult::DiskFull);
        m.set_enclave_reachable(true);
        let text = m.render();
        for expected in [
            "parent_connections_total{kind=\"peer\"} 2\n",
            "parent_connections_active{kind=\"peer\"} 0\n",
            "parent_connections_refused_total{reason=\"limit\"} 1\n",
            "parent_bytes_relayed_total{direction=\"to_enclave\"} 64\n",
            "parent_bytes_relayed_total{direction=\"from_enclave\"} 32\n",
            "parent_blob_operations_total{op=\"put\",result=\"disk_full\"} 1\n",
            "parent_blob_operations_total{op=\"put\",result=\"ok\"} 0\n",
            "parent_enclave_reachable 1\n",
        ] {
            assert!(text.contains(expected), "{expected}");
        }
    }
}
