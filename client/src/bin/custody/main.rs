//! `custody`: the operator's client. See `custody --help`.

use clap::{Args, Parser, Subcommand};
use client::cluster_file::ClusterFile;
use client::{ops, progress, verify};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod audit_cmd;
mod key_cmd;
mod manifest_cmd;
mod policy_cmd;
mod request_cmd;
#[cfg(feature = "sim")]
mod sim_cmd;
#[cfg(test)]
mod tests;

use audit_cmd::{AuditCmd, audit_command};
use key_cmd::{create_key, describe_key, status};
use manifest_cmd::manifest_command;
use policy_cmd::{PolicyCmd, policy_command};
use request_cmd::{RequestCmd, SignArgs, finish, request_command, sign};
#[cfg(feature = "sim")]
use sim_cmd::{demo, sim};

#[derive(Parser, Debug)]
#[command(
    name = "custody",
    version,
    about = "Operator's client for the MPC custody cluster"
)]
struct Cli {
    /// The cluster file (written by `custody sim up`, or by hand for a real cluster).
    #[arg(long, global = true)]
    cluster: Option<PathBuf>,
    /// Machine-readable output: one JSON document on standard output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a simulated cluster, create a key that two operators approve, show a
    /// payment refused without a policy, submit a policy, sign a small payment, show one
    /// to an unlisted address refused and a large one signed once a second operator
    /// approves, check both signed transactions, stop everything. Exits 0 only if every
    /// step went as the policy says.
    #[cfg(feature = "sim")]
    Demo {
        /// Nodes (default 3, all Nitro).
        #[arg(long)]
        nodes: Option<usize>,
        /// Each node's provider, in order: nitro or gcp-cs (e.g. nitro,nitro,gcp-cs,gcp-cs).
        #[arg(long, value_delimiter = ',', value_parser = parse_provider)]
        providers: Option<Vec<attestation::Provider>>,
        /// Signers the key needs (default: 2 on one provider; on several, the least
        /// that no one provider holds, as the placement rule requires).
        #[arg(long)]
        threshold: Option<u16>,
    },
    /// Simulated clusters on this machine.
    #[cfg(feature = "sim")]
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Every node's phase, whether its attestation verified (against the measurements
    /// and the pinned manifest), its PCR0, and the keys it holds.
    Status,
    /// Threshold keys.
    Key {
        #[command(subcommand)]
        command: KeyCmd,
    },
    /// Ask the nodes to sign a transaction, a PSBT or a digest under the custodian's
    /// policy. Exit status: 0 signed, 3 pending (more approvals needed), 1 refused,
    /// failed or expired, 2 usage.
    Sign(SignArgs),
    /// Requests the nodes hold: approve one, show one, list them.
    Request {
        #[command(subcommand)]
        command: RequestCmd,
    },
    /// Policies: approve a body, assemble the approvals, submit the result.
    Policy {
        #[command(subcommand)]
        command: PolicyCmd,
    },
    /// Check an ECDSA signature offline: exit 0 if valid, 1 if not.
    Verify {
        /// Compressed or uncompressed SEC1 public key, hex.
        #[arg(long)]
        public_key: String,
        #[arg(long)]
        digest: String,
        #[arg(long)]
        r: String,
        #[arg(long)]
        s: String,
    },
    /// Fetch a fresh attestation document from a node, for `attest verify`.
    Attest {
        node: String,
        /// Nonce to bind, hex (at most 512 bytes).
        #[arg(long)]
        nonce: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Operator keys.
    Operator {
        #[command(subcommand)]
        command: OperatorCmd,
    },
    /// Manifests: approve a body, assemble the approvals, submit the result.
    Manifest {
        #[command(subcommand)]
        command: ManifestCmd,
    },
    /// Nodes' audit logs.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
}

#[derive(Subcommand, Debug)]
enum ManifestCmd {
    /// Sign a manifest body (JSON) with an operator key; writes the approval.
    Approve {
        #[arg(long)]
        body: PathBuf,
        /// The operator key file.
        #[arg(long)]
        key: PathBuf,
        /// The operator's id in the manifest that approves this body.
        #[arg(long)]
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Combine a body and operators' approvals into the envelope nodes accept.
    Assemble {
        #[arg(long)]
        body: PathBuf,
        #[arg(long = "approval", required = true)]
        approvals: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Submit an envelope to every node of the cluster file (or one). It must be the
    /// pinned manifest or a later version approved by K of the pinned operators; the pin
    /// moves to it once every node runs it.
    Submit {
        envelope: PathBuf,
        #[arg(long)]
        node: Option<String>,
    },
}

#[cfg(feature = "sim")]
#[derive(Subcommand, Debug)]
enum SimCommand {
    /// Start a simulated cluster in the background; writes DIR/cluster.toml (operator
    /// 0) and DIR/cluster-operator-<i>.toml for every other operator.
    Up {
        #[arg(long)]
        dir: PathBuf,
        /// Nodes (default 3, all Nitro; with --providers, as many as it lists).
        #[arg(long)]
        nodes: Option<usize>,
        /// Each node's provider, in order: nitro (an enclave beside a parent) or gcp-cs (a
        /// Confidential Space node, which listens itself), e.g. nitro,nitro,gcp-cs,gcp-cs.
        #[arg(long, value_delimiter = ',', value_parser = parse_provider)]
        providers: Option<Vec<attestation::Provider>>,
        /// Operators the manifest lists.
        #[arg(long, default_value_t = 3)]
        operators: usize,
        /// Operators whose approval a manifest, a policy or a new key needs.
        #[arg(long, default_value_t = 2)]
        approvals: usize,
    },
    /// Stop every process of the cluster.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Kill a node's enclave (SIGKILL).
    Kill {
        #[arg(long)]
        dir: PathBuf,
        node: String,
    },
    /// Restart a node's enclave and wait until it runs.
    Restart {
        #[arg(long)]
        dir: PathBuf,
        node: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCmd {
    /// Create a threshold key.
    Create {
        /// Number of signers needed (t).
        #[arg(long)]
        threshold: u16,
        /// Parties, comma-separated (default: every node).
        #[arg(long, value_delimiter = ',')]
        parties: Vec<String>,
        /// Key id (default: `key-` and 16 random hex digits).
        #[arg(long)]
        key_id: Option<String>,
        /// Generate the parties' auxiliary info afresh, even where they already hold it
        /// for this party set (a party refuses to run it again unless asked).
        #[arg(long)]
        renew_aux: bool,
        /// How long the request waits for approvals, in seconds (default 3600, at most
        /// 86400).
        #[arg(long)]
        ttl: Option<u64>,
        /// The pinned manifest's envelope, to check the key's placement before sending
        /// (a simulated cluster's own copy is used without it).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum OperatorCmd {
    /// Create an operator key file (mode 0600) and print its public key.
    New {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "operator")]
        id: String,
    },
}

/// A failure, already explained on standard error; the exit code says what kind.
struct Failed(u8);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(code)) => ExitCode::from(code),
    }
}

fn fail(what: &str, error: impl std::fmt::Display) -> Failed {
    eprintln!("custody: {what}: {error}");
    Failed(1)
}

/// A key operation that failed: explained on standard error and, with `--json`, when its
/// participants did not complete it, also as JSON on standard output: per participant,
/// its node id, the kind of failure, its reason and the node ids the protocol blamed.
fn op_failed(json_mode: bool, what: &str, error: ops::OpError) -> Failed {
    if json_mode && let ops::OpError::Failed { node, failure } = &error {
        println!(
            "{}",
            json!({
                "error": error.to_string(),
                "node": node,
                "step": failure.step,
                "failures": failure.failures,
            })
        );
    }
    fail(what, error)
}

fn usage(message: &str) -> Failed {
    eprintln!("custody: {message}");
    Failed(2)
}

fn print(json_mode: bool, value: &Value, text: &str) {
    if json_mode {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

/// A provider a simulated node can stand in, by name.
#[cfg(feature = "sim")]
fn parse_provider(name: &str) -> Result<attestation::Provider, String> {
    attestation::Provider::from_name(name)
        .filter(|p| client::sim::SIMULATED.contains(p))
        .ok_or_else(|| format!("unknown provider {name:?} (nitro or gcp-cs)"))
}

fn cluster(cli: &Cli) -> Result<(ClusterFile, PathBuf), Failed> {
    let path = cli
        .cluster
        .clone()
        .ok_or_else(|| usage("this command needs --cluster FILE"))?;
    let file = ClusterFile::load(&path).map_err(|e| fail("cluster file", e))?;
    Ok((file, path))
}

fn run(cli: &Cli) -> Result<(), Failed> {
    match &cli.command {
        #[cfg(feature = "sim")]
        Command::Demo {
            nodes,
            providers,
            threshold,
        } => demo(cli, *nodes, providers.as_deref(), *threshold),
        #[cfg(feature = "sim")]
        Command::Sim { command } => sim(cli, command),
        Command::Status => status(cli),
        Command::Key {
            command:
                KeyCmd::Create {
                    threshold,
                    parties,
                    key_id,
                    renew_aux,
                    ttl,
                    manifest,
                },
        } => {
            let (file, _) = cluster(cli)?;
            let (node, asked, answer) = create_key(
                cli.json,
                &file,
                *threshold,
                parties,
                key_id.clone(),
                *renew_aux,
                *ttl,
                manifest.as_deref(),
            )?;
            finish(cli.json, &file, &node, None, Some(&asked), answer)
        }
        Command::Sign(args) => sign(cli, args),
        Command::Request { command } => request_command(cli, command),
        Command::Policy { command } => policy_command(cli, command),
        Command::Verify {
            public_key,
            digest,
            r,
            s,
        } => match verify::verify_hex(public_key, digest, r, s) {
            Ok(()) => {
                print(cli.json, &json!({"valid": true}), "signature valid");
                Ok(())
            }
            Err(e) => {
                print(
                    cli.json,
                    &json!({"valid": false, "reason": e.to_string()}),
                    &format!("signature NOT valid: {e}"),
                );
                Err(Failed(1))
            }
        },
        Command::Attest { node, nonce, out } => {
            let (file, _) = cluster(cli)?;
            let nonce = hex::decode(nonce).map_err(|e| usage(&format!("--nonce: {e}")))?;
            let document =
                ops::attest(&file, node, &nonce).map_err(|e| fail(&format!("attest {node}"), e))?;
            std::fs::write(out, &document).map_err(|e| fail(&out.display().to_string(), e))?;
            print(
                cli.json,
                &json!({"node": node, "out": out, "bytes": document.len()}),
                &format!(
                    "{} bytes from {node} written to {}; check it with: attest verify {} --at now --nonce <hex> --pcr 0=<hex>",
                    document.len(),
                    out.display(),
                    out.display()
                ),
            );
            Ok(())
        }
        Command::Manifest { command } => manifest_command(cli, command),
        Command::Audit { command } => audit_command(cli, command),
        Command::Operator {
            command: OperatorCmd::New { out, id },
        } => {
            let key = client::operator::create(out).map_err(|e| fail("operator key", e))?;
            print(
                cli.json,
                &json!({"id": id, "public_key": key.public_key_hex()}),
                &format!(
                    "operator key written to {}\nadd to the manifest's operators: {{\"id\": \"{id}\", \"public_key\": \"{}\"}}",
                    out.display(),
                    key.public_key_hex()
                ),
            );
            Ok(())
        }
    }
}

/// Reads a file that comes from outside, with a size limit.
fn read_limited(path: &Path, max: usize) -> Result<Vec<u8>, Failed> {
    let shown = path.display().to_string();
    let len = std::fs::metadata(path).map_err(|e| fail(&shown, e))?.len();
    if len > max as u64 {
        return Err(fail(&shown, format!("larger than {max} bytes")));
    }
    std::fs::read(path).map_err(|e| fail(&shown, e))
}
