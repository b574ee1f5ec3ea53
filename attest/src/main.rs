//! `attest`: inspect and verify attestation evidence: AWS Nitro Enclaves documents and
//! Google Cloud Confidential Space tokens, told apart by their content.
//!
//! Exit status: 0 when the evidence is valid (or was printed), 1 when it is not (or
//! cannot be decoded), 2 on usage errors: bad arguments, unreadable files, options for
//! the other provider's evidence.
#![forbid(unsafe_code)]

mod cs;

use attestation::gcp::CsEvidence;
use attestation::gcp::report::TokenReport;
use attestation::input::{self, InputError};
use attestation::nitro::report::DocumentReport;
use attestation::nitro::{MAX_PCRS, MeasurementSet, NitroDocument, TrustPolicy};
use attestation::time_fmt::parse_time;
use attestation::{Provider, Verifier};
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

const ENCODINGS: &str = "\
FILE holds one piece of evidence, told apart by its content. An AWS Nitro attestation \
document is read as raw COSE_Sign1 bytes (untagged, as the NSM returns it, or with tag \
18), as base64 (standard or URL-safe alphabet, padding optional) or as hex (upper or \
lower case); whitespace and newlines in base64 and hex are ignored. A Google Cloud \
Confidential Space token is read as the launcher returns it (a compact JWS, `eyJ..`) or \
as the bundle a node sends (JSON, `{\"v\":1,\"token\":..}`); whitespace around it is \
ignored.";

const VERIFY_ABOUT: &str = "\
Verify evidence's signature and certificate chain at a given time, then apply a trust \
policy.

Only the AWS Nitro root G1 and Google's Confidential Space root are trusted unless \
--sim-root or --sim-gcp-root is given. Documents from debug-mode enclaves (PCR0, PCR1 \
and PCR2 all zero), and tokens from debuggable workloads (dbgstat other than \
disabled-since-boot) or images out of support (no STABLE in support_attributes), are \
refused unless --allow-debug is given. Without --pcr, PCR values are reported but not \
checked; without --image-digest, --project-id, --zone, --instance-id and --hwmodel, a \
token's image and instance are reported but not checked. A token is always checked for \
its issuer, software (CONFIDENTIAL_SPACE), hardware model, secure boot, and its iat, \
nbf and exp at TIME.

Exit status: 0 valid, 1 invalid, 2 usage error.";

#[derive(Debug, Parser)]
#[command(
    name = "attest",
    version,
    about = "Inspect and verify attestation evidence: AWS Nitro Enclaves documents and \
             Google Cloud Confidential Space tokens",
    after_help = ENCODINGS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print evidence's fields as JSON, without verifying anything
    #[command(after_help = ENCODINGS)]
    Inspect {
        /// Evidence file: a Nitro document (raw COSE, base64 or hex) or a Confidential
        /// Space token or bundle
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Verify evidence's signature and chain at a given time, then apply a trust policy
    #[command(long_about = VERIFY_ABOUT, after_help = ENCODINGS)]
    Verify(Box<VerifyArgs>),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Evidence file: a Nitro document (raw COSE, base64 or hex) or a Confidential Space
    /// token or bundle
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Time at which the chain and the policy are checked: RFC 3339
    /// (2022-10-12T13:50:06Z) or `now`
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: SystemTime,
    /// Nitro: expected value of one PCR; repeat for several. All given PCRs must match
    #[arg(long = "pcr", value_name = "INDEX=HEX", value_parser = parse_pcr)]
    pcrs: Vec<PcrArg>,
    /// Accept documents from debug-mode enclaves (PCR0, PCR1 and PCR2 all zero), and
    /// tokens from debuggable workloads or images out of support
    #[arg(long)]
    allow_debug: bool,
    /// Require the evidence to carry exactly this nonce: a document's or a bundle's
    /// nonce, or for a token alone the bytes of one of its `eat_nonce` strings
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    nonce: Option<Hex>,
    /// Refuse evidence older than this at TIME
    #[arg(long, value_name = "SECONDS")]
    max_age: Option<u64>,
    /// Also trust this simulated NSM root certificate (DER, hex or base64). Only in
    /// builds with the `sim` feature
    #[arg(long, value_name = "FILE")]
    sim_root: Option<PathBuf>,
    /// Confidential Space: expected container image digest (submods.container)
    #[arg(long, value_name = "sha256:HEX", help_heading = CS_HEADING)]
    image_digest: Option<String>,
    /// Confidential Space: expected GCP project id (submods.gce)
    #[arg(long, value_name = "PROJECT", help_heading = CS_HEADING)]
    project_id: Option<String>,
    /// Confidential Space: expected zone (submods.gce)
    #[arg(long, value_name = "ZONE", help_heading = CS_HEADING)]
    zone: Option<String>,
    /// Confidential Space: expected instance id, decimal (submods.gce)
    #[arg(long, value_name = "DIGITS", help_heading = CS_HEADING)]
    instance_id: Option<String>,
    /// Confidential Space: expected hardware model: GCP_INTEL_TDX, GCP_AMD_SEV or
    /// GCP_AMD_SEV_SNP (any of them is accepted without it)
    #[arg(long, value_name = "MODEL", help_heading = CS_HEADING)]
    hwmodel: Option<String>,
    /// Confidential Space: require the token's audience (`aud`) to be exactly this
    #[arg(long, value_name = "AUDIENCE", help_heading = CS_HEADING)]
    audience: Option<String>,
    /// Also trust this simulated Confidential Space root certificate (DER, hex or
    /// base64). Only in builds with the `sim` feature
    #[arg(long, value_name = "FILE", help_heading = CS_HEADING)]
    sim_gcp_root: Option<PathBuf>,
    /// Print the outcome as a JSON object on stdout
    #[arg(long)]
    json: bool,
}

const CS_HEADING: &str = "Confidential Space tokens";

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

/// What `inspect` and `verify --json` print of evidence: its provider's report, which
/// names the provider first.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Report {
    Nitro(Box<NitroReport>),
    GcpCs(Box<TokenReport>),
}

/// A document's report, named as a token's report names itself.
#[derive(Debug, Serialize)]
struct NitroReport {
    provider: &'static str,
    #[serde(flatten)]
    document: DocumentReport,
}

impl Report {
    fn nitro(doc: &NitroDocument) -> Self {
        Report::Nitro(Box::new(NitroReport {
            provider: Provider::Nitro.name(),
            document: DocumentReport::new(doc),
        }))
    }

    fn gcp(evidence: &CsEvidence) -> Self {
        Report::GcpCs(Box::new(TokenReport::new(evidence)))
    }
}

/// The outcome of `attest verify`, as printed with `--json`.
#[derive(Debug, Serialize)]
struct Outcome {
    valid: bool,
    error: Option<String>,
    stage: Option<Stage>,
    /// When no report follows: whose evidence the file holds (`nitro`, `gcp-cs`), or null
    /// when its content does not say. A report names its provider itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<Option<&'static str>>,
    /// Present when the evidence could be parsed.
    #[serde(flatten)]
    report: Option<Report>,
}

impl Outcome {
    fn invalid(stage: Stage, error: impl ToString, bytes: &[u8], report: Option<Report>) -> Self {
        Outcome {
            valid: false,
            error: Some(error.to_string()),
            stage: Some(stage),
            provider: report
                .is_none()
                .then(|| Provider::of_evidence(bytes).map(Provider::name)),
            report,
        }
    }

    fn valid(report: Report) -> Self {
        Outcome {
            valid: true,
            error: None,
            stage: None,
            provider: None,
            report: Some(report),
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
        Command::Verify(args) => verify(*args),
    }
}

fn inspect(path: &Path) -> ExitCode {
    let bytes = match input::read_file(path) {
        Ok(bytes) => bytes,
        Err(InputError::Read(e)) => return usage(&format!("cannot read {}: {e}", path.display())),
        Err(e) => return invalid(&format!("{}: {e}", path.display())),
    };
    let parsed = match Provider::of_evidence(&bytes) {
        Some(Provider::GcpCs) => CsEvidence::parse(&bytes)
            .map(|cs| Report::gcp(&cs))
            .map_err(|e| e.to_string()),
        _ => NitroDocument::parse(&bytes)
            .map(|doc| Report::nitro(&doc))
            .map_err(|e| e.to_string()),
    };
    let report = match parsed {
        Ok(report) => report,
        Err(e) => return invalid(&format!("{}: {e}", path.display())),
    };
    let printed = serde_json::to_string_pretty(&report)
        .map_err(|e| format!("cannot format the report: {e}"))
        .and_then(|json| print_stdout(&json));
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => invalid(&msg),
    }
}

fn verify(args: VerifyArgs) -> ExitCode {
    let verifier = match verifier(
        args.sim_root.as_deref(),
        args.sim_gcp_root.as_deref(),
        args.at,
    ) {
        Ok(verifier) => verifier,
        Err(msg) => return usage(&msg),
    };
    let policy = match policy(&args) {
        Ok(policy) => policy,
        Err(msg) => return usage(&msg),
    };
    let expected = match cs::Expected::from_options(args.claim_options(), args.audience.as_deref())
    {
        Ok(expected) => expected,
        Err(msg) => return usage(&msg),
    };
    let cs_policy = match expected.policy(
        args.allow_debug,
        args.nonce.as_ref().map(|Hex(nonce)| nonce.as_slice()),
        args.max_age.map(Duration::from_secs),
    ) {
        Ok(policy) => policy,
        Err(msg) => return usage(&msg),
    };
    let outcome = match input::read_file(&args.file) {
        Ok(bytes) => match Provider::of_evidence(&bytes) {
            Some(Provider::GcpCs) => {
                if !args.pcrs.is_empty() {
                    return usage(&format!(
                        "--pcr checks Nitro documents, and {} holds Confidential Space evidence",
                        args.file.display()
                    ));
                }
                check_cs(&bytes, &verifier, &cs_policy, args.at)
            }
            found => {
                if found == Some(Provider::Nitro) && !expected.is_empty() {
                    return usage(&format!(
                        "{} check Confidential Space tokens, and {} holds a Nitro document",
                        cs_options(&args).join(", "),
                        args.file.display()
                    ));
                }
                check(&bytes, &verifier, &policy, args.at)
            }
        },
        Err(InputError::Read(e)) => {
            return usage(&format!("cannot read {}: {e}", args.file.display()));
        }
        Err(e) => Outcome::invalid(Stage::Parse, e, &[], None),
    };

    let printed = if args.json {
        serde_json::to_string_pretty(&outcome)
            .map_err(|e| format!("cannot format the outcome: {e}"))
            .and_then(|json| print_stdout(&json))
    } else if let (true, Some(report)) = (outcome.valid, &outcome.report) {
        print_stdout(&match report {
            Report::Nitro(nitro) => summary(&nitro.document, !args.pcrs.is_empty()),
            Report::GcpCs(token) => cs::summary(token, expected.set.is_some()),
        })
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

impl VerifyArgs {
    /// The values of [`cs::OPTIONS`], in that order.
    fn claim_options(&self) -> [Option<&str>; 5] {
        [
            self.image_digest.as_deref(),
            self.project_id.as_deref(),
            self.zone.as_deref(),
            self.instance_id.as_deref(),
            self.hwmodel.as_deref(),
        ]
    }
}

/// The Confidential Space options given, by name.
fn cs_options(args: &VerifyArgs) -> Vec<&'static str> {
    cs::OPTIONS
        .iter()
        .zip(args.claim_options())
        .filter(|(_, value)| value.is_some())
        .map(|((option, _), _)| *option)
        .chain(args.audience.is_some().then_some("--audience"))
        .collect()
}

fn check(bytes: &[u8], verifier: &Verifier, policy: &TrustPolicy, at: SystemTime) -> Outcome {
    let doc = match NitroDocument::parse(bytes) {
        Ok(doc) => doc,
        Err(e) => return Outcome::invalid(Stage::Parse, e, bytes, None),
    };
    let report = Report::nitro(&doc);
    let verified = match verifier.nitro().verify_document(doc, at) {
        Ok(verified) => verified,
        Err(e) => return Outcome::invalid(Stage::Verify, e, bytes, Some(report)),
    };
    if let Err(e) = policy.check(&verified, at) {
        return Outcome::invalid(Stage::Policy, e, bytes, Some(report));
    }
    Outcome::valid(report)
}

fn check_cs(
    bytes: &[u8],
    verifier: &Verifier,
    policy: &attestation::gcp::TrustPolicy,
    at: SystemTime,
) -> Outcome {
    let evidence = match CsEvidence::parse(bytes) {
        Ok(evidence) => evidence,
        Err(e) => return Outcome::invalid(Stage::Parse, e, bytes, None),
    };
    let report = Report::gcp(&evidence);
    let verified = match verifier.gcp().verify_evidence(evidence, at) {
        Ok(verified) => verified,
        Err(e) => return Outcome::invalid(Stage::Verify, e, bytes, Some(report)),
    };
    if let Err(e) = policy.check(&verified, at) {
        return Outcome::invalid(Stage::Policy, e, bytes, Some(report));
    }
    Outcome::valid(report)
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

/// Every provider's pinned production root, and the simulated roots asked for.
fn verifier(
    sim_root: Option<&Path>,
    sim_gcp_root: Option<&Path>,
    at: SystemTime,
) -> Result<Verifier, String> {
    let mut verifier = Verifier::production();
    if let Some(path) = sim_root {
        verifier = trust_simulated_root(verifier, SimRoot::Nitro, path, at)?;
    }
    if let Some(path) = sim_gcp_root {
        verifier = trust_simulated_root(verifier, SimRoot::GcpCs, path, at)?;
    }
    Ok(verifier)
}

/// Which simulator's root an option names.
#[derive(Debug, Clone, Copy)]
enum SimRoot {
    /// `--sim-root`: the simulated NSM's (P-384).
    Nitro,
    /// `--sim-gcp-root`: the simulated Confidential Space attester's (RSA).
    GcpCs,
}

impl SimRoot {
    fn option(self) -> &'static str {
        match self {
            SimRoot::Nitro => "--sim-root",
            SimRoot::GcpCs => "--sim-gcp-root",
        }
    }
}

/// `verifier`, also trusting the simulated root certificate in `path`.
#[cfg(feature = "sim")]
fn trust_simulated_root(
    verifier: Verifier,
    which: SimRoot,
    path: &Path,
    at: SystemTime,
) -> Result<Verifier, String> {
    let option = which.option();
    let der = input::read_file(path).map_err(|e| format!("{option} {}: {e}", path.display()))?;
    let trusted = match which {
        SimRoot::Nitro => verifier.trust_simulated_root(&der, at),
        SimRoot::GcpCs => verifier.trust_simulated_gcp_root(&der, at),
    };
    trusted.map_err(|e| format!("{option} {}: cannot trust it: {e}", path.display()))
}

#[cfg(not(feature = "sim"))]
fn trust_simulated_root(
    _verifier: Verifier,
    which: SimRoot,
    _path: &Path,
    _at: SystemTime,
) -> Result<Verifier, String> {
    Err(format!(
        "{}: this build cannot trust simulated roots (built without the `sim` feature)",
        which.option()
    ))
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
