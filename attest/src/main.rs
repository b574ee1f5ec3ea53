//! `attest`: inspect and verify AWS Nitro Enclaves attestation documents.
//!
//! Exit status: 0 when the document is valid (or was printed), 1 when it is not (or
//! cannot be decoded), 2 on usage errors: bad arguments, unreadable files.
#![forbid(unsafe_code)]

use attestation::input::{self, InputError};
use attestation::nitro::report::DocumentReport;
use attestation::nitro::{MAX_PCRS, MeasurementSet, NitroDocument, TrustPolicy, Verifier};
use attestation::time_fmt::parse_time;
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

const ENCODINGS: &str = "\
FILE holds one attestation document, either as raw COSE_Sign1 bytes (untagged, as the \
NSM returns it, or with tag 18), as base64 (standard or URL-safe alphabet, padding \
optional) or as hex (upper or lower case). Whitespace and newlines in base64 and hex \
are ignored.";

const VERIFY_ABOUT: &str = "\
Verify a document's signature and certificate chain at a given time, then apply a \
trust policy.

Only the AWS Nitro root G1 is trusted unless --sim-root is given. Documents from \
debug-mode enclaves (PCR0, PCR1 and PCR2 all zero) are refused unless --allow-debug \
is given. Without --pcr, PCR values are reported but not checked.

Exit status: 0 valid, 1 invalid, 2 usage error.";

#[derive(Debug, Parser)]
#[command(
    name = "attest",
    version,
    about = "Inspect and verify AWS Nitro Enclaves attestation documents",
    after_help = ENCODINGS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a document's fields as JSON, without verifying anything
    #[command(after_help = ENCODINGS)]
    Inspect {
        /// Document file: raw COSE, base64 or hex
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Verify a document's signature and chain at a given time, then apply a trust policy
    #[command(long_about = VERIFY_ABOUT, after_help = ENCODINGS)]
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Document file: raw COSE, base64 or hex
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Time at which the chain and the policy are checked: RFC 3339
    /// (2022-10-12T13:50:06Z) or `now`
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: SystemTime,
    /// Expected value of one PCR; repeat for several. All given PCRs must match
    #[arg(long = "pcr", value_name = "INDEX=HEX", value_parser = parse_pcr)]
    pcrs: Vec<PcrArg>,
    /// Accept documents from debug-mode enclaves (PCR0, PCR1 and PCR2 all zero)
    #[arg(long)]
    allow_debug: bool,
    /// Require the document to carry exactly this nonce
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    nonce: Option<Hex>,
    /// Refuse documents older than this at TIME
    #[arg(long, value_name = "SECONDS")]
    max_age: Option<u64>,
    /// Also trust this simulated NSM root certificate (DER, hex or base64). Only in
    /// builds with the `sim` feature
    #[arg(long, value_name = "FILE")]
    sim_root: Option<PathBuf>,
    /// Print the outcome as a JSON object on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone)]
struct PcrArg {
    index: u8,
    value: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Hex(Vec<u8>);

fn parse_hex(text: &str) -> Result<Hex, String> {
    hex::decode(text)
        .map(Hex)
        .map_err(|e| format!("`{text}` is not hex: {e}"))
}

fn parse_pcr(text: &str) -> Result<PcrArg, String> {
    let (index, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not INDEX=HEX"))?;
    let index = index
        .parse::<u8>()
        .ok()
        .filter(|i| usize::from(*i) < MAX_PCRS)
        .ok_or_else(|| format!("PCR index `{index}` is not in 0..={}", MAX_PCRS - 1))?;
    let Hex(value) = parse_hex(value)?;
    if !matches!(value.len(), 32 | 48 | 64) {
        return Err(format!(
            "PCR{index} value is {} bytes; PCRs are 32, 48 or 64 bytes",
            value.len()
        ));
    }
    Ok(PcrArg { index, value })
}

/// Where verification stopped.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum Stage {
    Parse,
    Verify,
    Policy,
}

/// The outcome of `attest verify`, as printed with `--json`.
#[derive(Debug, Serialize)]
struct Outcome {
    valid: bool,
    error: Option<String>,
    stage: Option<Stage>,
    /// Present when the document could be parsed.
    #[serde(flatten)]
    document: Option<DocumentReport>,
}

impl Outcome {
    fn invalid(stage: Stage, error: impl ToString, document: Option<DocumentReport>) -> Self {
        Outcome {
            valid: false,
            error: Some(error.to_string()),
            stage: Some(stage),
            document,
        }
    }
}

const INVALID: u8 = 1;
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version requests are "errors" with exit status 0.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(USAGE));
        }
    };
    match cli.command {
        Command::Inspect { file } => inspect(&file),
        Command::Verify(args) => verify(args),
    }
}

fn inspect(path: &Path) -> ExitCode {
    let bytes = match input::read_file(path) {
        Ok(bytes) => bytes,
        Err(InputError::Read(e)) => return usage(&format!("cannot read {}: {e}", path.display())),
        Err(e) => return invalid(&format!("{}: {e}", path.display())),
    };
    let doc = match NitroDocument::parse(&bytes) {
        Ok(doc) => doc,
        Err(e) => return invalid(&format!("{}: {e}", path.display())),
    };
    let printed = serde_json::to_string_pretty(&DocumentReport::new(&doc))
        .map_err(|e| format!("cannot format the report: {e}"))
        .and_then(|json| print_stdout(&json));
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => invalid(&msg),
    }
}

fn verify(args: VerifyArgs) -> ExitCode {
    let verifier = match verifier(args.sim_root.as_deref(), args.at) {
        Ok(verifier) => verifier,
        Err(msg) => return usage(&msg),
    };
    let policy = match policy(&args) {
        Ok(policy) => policy,
        Err(msg) => return usage(&msg),
    };
    let outcome = match input::read_file(&args.file) {
        Ok(bytes) => check(&bytes, &verifier, &policy, args.at),
        Err(InputError::Read(e)) => {
            return usage(&format!("cannot read {}: {e}", args.file.display()));
        }
        Err(e) => Outcome::invalid(Stage::Parse, e, None),
    };

    let printed = if args.json {
        serde_json::to_string_pretty(&outcome)
            .map_err(|e| format!("cannot format the outcome: {e}"))
            .and_then(|json| print_stdout(&json))
    } else if let (true, Some(doc)) = (outcome.valid, &outcome.document) {
        print_stdout(&summary(doc, !args.pcrs.is_empty()))
    } else {
        let reason = outcome.error.as_deref().unwrap_or("unknown reason");
        print_stderr(&format!("invalid: {reason}"));
        Ok(())
    };
    match printed {
        Err(msg) => invalid(&msg),
        Ok(()) if outcome.valid => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(INVALID),
    }
}

fn check(bytes: &[u8], verifier: &Verifier, policy: &TrustPolicy, at: SystemTime) -> Outcome {
    let doc = match NitroDocument::parse(bytes) {
        Ok(doc) => doc,
        Err(e) => return Outcome::invalid(Stage::Parse, e, None),
    };
    let report = DocumentReport::new(&doc);
    let verified = match verifier.verify_document(doc, at) {
        Ok(verified) => verified,
        Err(e) => return Outcome::invalid(Stage::Verify, e, Some(report)),
    };
    if let Err(e) = policy.check(&verified, at) {
        return Outcome::invalid(Stage::Policy, e, Some(report));
    }
    Outcome {
        valid: true,
        error: None,
        stage: None,
        document: Some(report),
    }
}

fn summary(doc: &DocumentReport, pcrs_checked: bool) -> String {
    let pcr0 = doc.pcrs.get(&0).map_or("absent", String::as_str);
    let debug = if doc.debug_mode { " (debug mode)" } else { "" };
    let checked = if pcrs_checked {
        ""
    } else {
        " (PCRs not checked: any genuine image passes; give --pcr to check)"
    };
    format!(
        "valid: module {} timestamp {} ({} ms) PCR0 {pcr0}{debug}{checked}",
        doc.module_id, doc.timestamp, doc.timestamp_ms
    )
}

fn verifier(sim_root: Option<&Path>, at: SystemTime) -> Result<Verifier, String> {
    match sim_root {
        None => Ok(Verifier::aws_nitro()),
        Some(path) => trust_simulated_root(path, at),
    }
}

#[cfg(feature = "sim")]
fn trust_simulated_root(path: &Path, at: SystemTime) -> Result<Verifier, String> {
    let der = input::read_file(path).map_err(|e| format!("--sim-root {}: {e}", path.display()))?;
    Verifier::aws_nitro()
        .trust_simulated_root(&der, at)
        .map_err(|e| format!("--sim-root {}: cannot trust it: {e}", path.display()))
}

#[cfg(not(feature = "sim"))]
fn trust_simulated_root(_path: &Path, _at: SystemTime) -> Result<Verifier, String> {
    Err(
        "--sim-root: this build cannot trust simulated roots (built without the `sim` feature)"
            .to_owned(),
    )
}

fn policy(args: &VerifyArgs) -> Result<TrustPolicy, String> {
    let mut policy = if args.pcrs.is_empty() {
        TrustPolicy::without_measurement_checks()
    } else {
        let mut expected = BTreeMap::new();
        for pcr in &args.pcrs {
            if expected.insert(pcr.index, pcr.value.clone()).is_some() {
                return Err(format!("--pcr {} is given more than once", pcr.index));
            }
        }
        let set = MeasurementSet::new(expected).map_err(|e| e.to_string())?;
        TrustPolicy::new(vec![set]).map_err(|e| e.to_string())?
    };
    policy = policy.allow_debug(args.allow_debug);
    if let Some(Hex(nonce)) = &args.nonce {
        policy = policy.expect_nonce(nonce.clone());
    }
    // An auditor may check archived evidence: no age limit unless one is asked for.
    policy = match args.max_age {
        Some(secs) => policy.max_age(Duration::from_secs(secs)),
        None => policy.without_age_limit(),
    };
    Ok(policy)
}

fn usage(msg: &str) -> ExitCode {
    print_stderr(&format!(
        "error: {msg}\n\nFor more information, try '--help'."
    ));
    ExitCode::from(USAGE)
}

fn invalid(msg: &str) -> ExitCode {
    print_stderr(msg);
    ExitCode::from(INVALID)
}

/// Writes a line to stdout; a closed or failing stdout is an error, not a panic.
fn print_stdout(text: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

fn print_stderr(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}
