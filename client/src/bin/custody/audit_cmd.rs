//! `custody audit export`: fetches a node's audit log and writes it as JSON Lines, then
//! verifies what it wrote; `custody audit verify`: checks an export offline, one line at
//! a time, and says what it proved.

use super::*;
use attestation::Verifier;
use audit::{ExportHeader, ExportVerifier, MAX_HEADER_LEN, MAX_LINE_LEN, VerifiedExport};
use std::io::{BufRead, BufReader, Read};

#[derive(Subcommand, Debug)]
pub(super) enum AuditCmd {
    /// Fetch node N's audit log with a fresh attestation of its head (over attested TLS,
    /// from a node that runs the pinned manifest) and write it as JSON Lines; then verify
    /// the file as `audit verify --cluster` does. Exit 0 only if what was written verifies.
    Export {
        #[arg(long)]
        node: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an export offline: the attestation document (at its own time) binds the
    /// audit key, the head and the manifest; every entry is signed, links to the one
    /// before and follows it without a gap; the entries end at the attested head. Exit 0
    /// if it verifies, 1 if anything does not. With --cluster, the document must also
    /// match the measurements of the node it names.
    Verify {
        /// The export (JSON Lines).
        file: PathBuf,
        /// Trust a simulated NSM root: the one in --sim-root, else the cluster file's.
        /// Simulated clusters only, in builds with the `sim` feature.
        #[arg(long)]
        sim: bool,
        /// The simulated root certificate (DER, hex or base64), with --sim.
        #[arg(long, requires = "sim")]
        sim_root: Option<PathBuf>,
    },
}

pub(super) fn audit_command(cli: &Cli, command: &AuditCmd) -> Result<(), Failed> {
    match command {
        AuditCmd::Export { node, out } => {
            let (file, _) = cluster(cli)?;
            let shown = out.display().to_string();
            let mut writer =
                std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| fail(&shown, e))?);
            let written = ops::audit_export(&file, node, &mut writer)
                .map_err(|e| fail(&format!("audit export {node}"), e))?;
            writer
                .into_inner()
                .map_err(|e| fail(&shown, e.into_error()))?
                .sync_all()
                .map_err(|e| fail(&shown, e))?;
            let verified = verify(cli, out, file.sim_root.is_some(), None)?;
            let mut report = report(&verified, true);
            if let Some(fields) = report.as_object_mut() {
                fields.insert("out".to_owned(), json!(out));
                fields.insert("entries_written".to_owned(), json!(written));
            }
            print(
                cli.json,
                &report,
                &format!(
                    "{written} entries of {node} written to {shown}\n{}",
                    describe(&verified, true)
                ),
            );
            Ok(())
        }
        AuditCmd::Verify {
            file,
            sim,
            sim_root,
        } => {
            let verified = verify(cli, file, *sim, sim_root.as_deref())?;
            print(
                cli.json,
                &report(&verified, cli.cluster.is_some()),
                &describe(&verified, cli.cluster.is_some()),
            );
            Ok(())
        }
    }
}

fn verify(
    cli: &Cli,
    path: &Path,
    sim: bool,
    sim_root: Option<&Path>,
) -> Result<VerifiedExport, Failed> {
    let cluster = match &cli.cluster {
        Some(path) => Some(ClusterFile::load(path).map_err(|e| fail("cluster file", e))?),
        None => None,
    };
    let verifier = roots(sim, sim_root, cluster.as_ref())?;
    let shown = path.display().to_string();
    let refused = |e: audit::AuditError| not_verified(cli.json, &shown, e);
    let file = std::fs::File::open(path).map_err(|e| fail(&shown, e))?;
    let mut lines = Lines {
        reader: BufReader::new(file),
        shown: &shown,
        json: cli.json,
        number: 0,
    };
    let header = lines.next(MAX_HEADER_LEN)?.unwrap_or_default();
    let header = ExportHeader::parse(&header).map_err(refused)?;
    let measurements = match &cluster {
        None => None,
        Some(file) => {
            let node = file
                .node(header.node().as_str())
                .map_err(|e| not_verified(cli.json, &shown, e))?;
            let set = node
                .measurements
                .measurements()
                .map_err(|e| fail(&format!("cluster file: node {}", node.id), e))?;
            Some(vec![set])
        }
    };
    let mut checker =
        ExportVerifier::new(header, &verifier, measurements.as_deref()).map_err(refused)?;
    while let Some(line) = lines.next(MAX_LINE_LEN)? {
        checker.entry(&line).map_err(refused)?;
    }
    checker.finish().map_err(refused)
}

/// The roots trusted for the export's attestation: the production roots, and with
/// `--sim` a simulated root.
fn roots(
    sim: bool,
    sim_root: Option<&Path>,
    cluster: Option<&ClusterFile>,
) -> Result<Verifier, Failed> {
    if !sim {
        return Ok(Verifier::production());
    }
    match (sim_root, cluster) {
        (Some(path), _) => simulated_root(path),
        (None, Some(file)) if file.sim_root.is_some() => {
            file.verifier().map_err(|e| fail("cluster file", e))
        }
        _ => Err(usage(
            "--sim needs --sim-root FILE, or --cluster FILE of a simulated cluster",
        )),
    }
}

#[cfg(feature = "sim")]
fn simulated_root(path: &Path) -> Result<Verifier, Failed> {
    let shown = format!("--sim-root {}", path.display());
    let der = attestation::input::read_file(path).map_err(|e| fail(&shown, e))?;
    Verifier::production()
        .trust_simulated_root(&der, std::time::SystemTime::now())
        .map_err(|e| fail(&shown, e))
}

#[cfg(not(feature = "sim"))]
fn simulated_root(_: &Path) -> Result<Verifier, Failed> {
    Err(fail(
        "--sim",
        "this build cannot trust a simulated root (built without the `sim` feature)",
    ))
}

/// Reads lines with a limit on each, so that a hostile file cannot make the reader
/// hold more than one line.
struct Lines<'a, R> {
    reader: BufReader<R>,
    shown: &'a str,
    json: bool,
    number: u64,
}

impl<R: Read> Lines<'_, R> {
    /// The next line without its line break, or `None` at the end.
    fn next(&mut self, max: usize) -> Result<Option<String>, Failed> {
        self.number = self.number.saturating_add(1);
        let at = || format!("{}: line {}", self.shown, self.number);
        let mut line = Vec::new();
        // One byte more than a line and its break may be: enough to tell it is too long.
        let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(2);
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|e| fail(&at(), e))?;
        if read == 0 {
            return Ok(None);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.len() > max {
            return Err(not_verified(
                self.json,
                self.shown,
                format!("line {}: longer than {max} bytes", self.number),
            ));
        }
        String::from_utf8(line).map(Some).map_err(|_| {
            not_verified(
                self.json,
                self.shown,
                format!("line {}: not UTF-8", self.number),
            )
        })
    }
}

/// The export does not verify: said on standard error and, with `--json`, as
/// `{"valid": false, "error": ..}` on standard output.
fn not_verified(json_mode: bool, shown: &str, error: impl std::fmt::Display) -> Failed {
    if json_mode {
        println!("{}", json!({"valid": false, "error": error.to_string()}));
    }
    fail(&format!("{shown}: NOT verified"), error)
}

fn report(verified: &VerifiedExport, measured: bool) -> Value {
    json!({
        "valid": true,
        "node": verified.node(),
        "count": verified.count(),
        "head": hex::encode(verified.head().hash),
        "public_key": hex::encode(verified.public_key()),
        "manifest_hash": verified.manifest_hash().to_string(),
        "attested_at": attestation::time_fmt::rfc3339(verified.attested_at()),
        "provider": verified.evidence().provider().name(),
        "measurements": verified.measurements(),
        "measurements_checked": measured,
    })
}

fn describe(verified: &VerifiedExport, measured: bool) -> String {
    let pcr = |name: &str| {
        verified
            .measurements()
            .get(name)
            .cloned()
            .unwrap_or_else(|| "-".to_owned())
    };
    let identity = if measured {
        format!(
            "the document matches node {}'s measurements in the cluster file",
            verified.node()
        )
    } else {
        format!(
            "measurements not checked against a manifest: the node id {} is as the export claims it (give --cluster to check)",
            verified.node()
        )
    };
    format!(
        "audit log verified: {} entries of node {}, head {}\n  audit key  {}\n  manifest   {}\n  attested   {} ({}), pcr0 {}, pcr4 {}\n  {identity}",
        verified.count(),
        verified.node(),
        hex::encode(verified.head().hash),
        hex::encode(verified.public_key()),
        verified.manifest_hash(),
        attestation::time_fmt::rfc3339(verified.attested_at()),
        verified.evidence().provider(),
        pcr("pcr0"),
        pcr("pcr4"),
    )
}
