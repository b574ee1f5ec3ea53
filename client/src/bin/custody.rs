//! `custody`: the operator's client. See `custody --help`.

use clap::{Args, Parser, Subcommand};
use client::cluster_file::ClusterFile;
use client::{ops, progress, verify};
use protocol::operator_api::KeyCommand;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Start a simulated cluster, create a key, sign a sample message, verify the
    /// signature, stop everything. Exits 0 only if the signature verified.
    #[cfg(feature = "sim")]
    Demo {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 2)]
        threshold: u16,
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
    /// Sign a digest, or a message hashed with Keccak-256.
    Sign(SignArgs),
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
    /// Start a simulated cluster in the background; writes DIR/cluster.toml.
    Up {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
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
        /// Key id (default: chosen by the node).
        #[arg(long)]
        key_id: Option<String>,
        /// Generate the parties' auxiliary info afresh, even where they already hold it
        /// for this party set (a party refuses to run it again unless asked).
        #[arg(long)]
        renew_aux: bool,
    },
}

#[derive(Args, Debug)]
struct SignArgs {
    #[arg(long)]
    key: String,
    /// A 32-byte digest, hex.
    #[arg(long, conflicts_with = "message", required_unless_present = "message")]
    digest: Option<String>,
    /// A message, hex; the nodes hash it with Keccak-256.
    #[arg(long)]
    message: Option<String>,
    /// Non-hardened derivation path, e.g. m/0/1.
    #[arg(long)]
    path: Option<String>,
    /// Signers, comma-separated (exactly t; default: chosen by the node asked).
    #[arg(long, value_delimiter = ',')]
    signers: Vec<String>,
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
        Command::Demo { nodes, threshold } => demo(cli, *nodes, *threshold),
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
                },
        } => {
            let (file, _) = cluster(cli)?;
            let created = create_key(
                cli.json,
                &file,
                *threshold,
                parties,
                key_id.clone(),
                *renew_aux,
            )?;
            print(cli.json, &created, &describe_key(&created));
            Ok(())
        }
        Command::Sign(args) => {
            let (file, _) = cluster(cli)?;
            let signed = sign(cli.json, &file, args)?;
            print(cli.json, &signed, &describe_signature(&signed));
            Ok(())
        }
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

fn manifest_command(cli: &Cli, command: &ManifestCmd) -> Result<(), Failed> {
    match command {
        ManifestCmd::Approve { body, key, id, out } => {
            let bytes = read_limited(body, manifest::MAX_BODY_LEN)?;
            let parsed = manifest::Manifest::parse(&bytes).map_err(|e| fail("manifest body", e))?;
            let key = client::operator::load(key).map_err(|e| fail("operator key", e))?;
            let signature = manifest::sign(&bytes, &key);
            let approval = json!({"operator": id, "signature": hex::encode(signature.as_bytes())});
            std::fs::write(out, approval.to_string())
                .map_err(|e| fail(&out.display().to_string(), e))?;
            let hash = manifest::hash_of(&bytes);
            print(
                cli.json,
                &json!({"operator": id, "version": parsed.version(), "hash": hash.to_string(), "out": out}),
                &format!(
                    "{id} approved manifest version {} ({hash}); approval written to {}",
                    parsed.version(),
                    out.display()
                ),
            );
            Ok(())
        }
        ManifestCmd::Assemble {
            body,
            approvals,
            out,
        } => {
            let bytes = read_limited(body, manifest::MAX_BODY_LEN)?;
            let mut signatures = Vec::new();
            for path in approvals {
                let approval: Value = serde_json::from_slice(&read_limited(path, 4096)?)
                    .map_err(|e| fail(&path.display().to_string(), e))?;
                let field = |f: &str| {
                    approval
                        .get(f)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| fail(&path.display().to_string(), format!("no {f}")))
                };
                let signature: [u8; 64] = hex::decode(field("signature")?)
                    .ok()
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| {
                        fail(&path.display().to_string(), "signature: 64 bytes of hex")
                    })?;
                signatures.push(manifest::OperatorSignature {
                    operator: field("operator")?,
                    signature: manifest::Signature::from(signature),
                });
            }
            let signed = manifest::SignedManifest::assemble(&bytes, &signatures)
                .map_err(|e| fail("assemble", e))?;
            // Whether the body's own operators approve it: true for a first manifest; an
            // update is approved by the operators of the manifest it replaces instead.
            let own = manifest::accept(None, signed.clone()).map_err(|e| e.to_string());
            std::fs::write(out, signed.envelope_bytes())
                .map_err(|e| fail(&out.display().to_string(), e))?;
            print(
                cli.json,
                &json!({"out": out, "hash": signed.hash().to_string(), "approved_by_its_own_operators": own.is_ok()}),
                &format!(
                    "envelope written to {} ({}); {}",
                    out.display(),
                    signed.hash(),
                    match own {
                        Ok(_) => "approved by enough of its own operators".to_owned(),
                        Err(e) => format!(
                            "not approved by its own operators ({e}): fine only for an update approved by the current ones"
                        ),
                    }
                ),
            );
            Ok(())
        }
        ManifestCmd::Submit { envelope, node } => {
            let (mut file, path) = cluster(cli)?;
            let bytes = read_limited(envelope, manifest::MAX_ENVELOPE_LEN)?;
            let targets: Vec<String> = match node {
                Some(n) => vec![n.clone()],
                None => file.nodes.iter().map(|n| n.id.clone()).collect(),
            };
            match ops::submit(&mut file, &path, &bytes, &targets) {
                Ok(report) => {
                    print_submission(cli, &report);
                    if report.success {
                        Ok(())
                    } else {
                        Err(Failed(1))
                    }
                }
                // Refused before anything was sent: every node is named as not asked.
                Err(e) => {
                    let results: Vec<Value> = targets
                        .iter()
                        .map(|id| json!({"id": id, "accepted": false, "error": format!("not sent: {e}")}))
                        .collect();
                    print(
                        cli.json,
                        &json!({"nodes": results, "refused": e.to_string()}),
                        &format!("nothing sent: {e}"),
                    );
                    Err(fail("manifest submit", e))
                }
            }
        }
    }
}

fn print_submission(cli: &Cli, report: &ops::SubmitReport) {
    use client::pin::Submitted;
    let results: Vec<Value> = report
        .outcomes
        .iter()
        .map(|(id, outcome)| match outcome {
            Submitted::Accepted => json!({"id": id, "accepted": true}),
            Submitted::AlreadyRuns { reason } => {
                json!({"id": id, "accepted": false, "already_runs": true, "error": reason})
            }
            Submitted::NotAccepted { reason } => {
                json!({"id": id, "accepted": false, "error": reason})
            }
        })
        .collect();
    let mut text: Vec<String> = report
        .outcomes
        .iter()
        .map(|(id, outcome)| match outcome {
            Submitted::Accepted => format!("{id}: accepted"),
            Submitted::AlreadyRuns { reason } => {
                format!("{id}: refused: {reason} (it already runs this manifest)")
            }
            Submitted::NotAccepted { reason } => format!("{id}: refused: {reason}"),
        })
        .collect();
    let pin = report.pin.entry();
    text.push(if report.pin_moved {
        format!(
            "pin moved to manifest version {} ({})",
            pin.version, pin.hash
        )
    } else if report.behind.is_empty() {
        format!("pin kept: manifest version {} ({})", pin.version, pin.hash)
    } else {
        format!(
            "pin kept at manifest version {} ({}): {} did not accept it",
            pin.version,
            pin.hash,
            report.behind.join(", ")
        )
    });
    print(
        cli.json,
        &json!({
            "nodes": results,
            "pin": {"version": pin.version, "hash": pin.hash, "moved": report.pin_moved},
            "behind": report.behind,
        }),
        &text.join("\n"),
    );
}

fn status(cli: &Cli) -> Result<(), Failed> {
    let (file, _) = cluster(cli)?;
    let reports = ops::status(&file);
    let value = json!({ "nodes": reports });
    let mut text = String::new();
    for r in &reports {
        text.push_str(&format!(
            "{:<12} {:<26} attested: {:<5} pcr0: {}{}\n",
            r.id,
            r.phase,
            r.attested,
            r.pcr0.as_deref().map_or("-".to_owned(), |p| format!(
                "{}...",
                p.get(..16).unwrap_or(p)
            )),
            r.error
                .as_deref()
                .map_or(String::new(), |e| format!("\n             {e}")),
        ));
        for k in &r.keys {
            text.push_str(&format!(
                "             key {}: {} {}-of-{} ({}) {}\n",
                k.key_id,
                k.scheme,
                k.threshold,
                k.parties.len(),
                k.parties.join(","),
                k.public_key
            ));
        }
        if r.key_count > r.keys.len() {
            text.push_str(&format!(
                "             ... {} keys in all; the first {} by id are listed\n",
                r.key_count,
                r.keys.len()
            ));
        }
    }
    print(cli.json, &value, text.trim_end());
    Ok(())
}

fn create_key(
    json_mode: bool,
    file: &ClusterFile,
    threshold: u16,
    parties: &[String],
    key_id: Option<String>,
    renew_aux: bool,
) -> Result<Value, Failed> {
    let coordinator = parties
        .first()
        .or_else(|| file.nodes.first().map(|n| &n.id))
        .cloned()
        .ok_or_else(|| usage("the cluster file lists no nodes"))?;
    let command = KeyCommand::CreateKey {
        key_id,
        threshold,
        parties: parties.to_vec(),
        renew_aux,
    };
    let (created, _) = progress::step(
        &format!(
            "creating a {threshold}-of-{} key through {coordinator} (auxiliary info, then key generation), then confirming it with every party",
            if parties.is_empty() {
                file.nodes.len()
            } else {
                parties.len()
            }
        ),
        false,
        || ops::create_key(file, &coordinator, &command),
    );
    let created = created.map_err(|e| op_failed(json_mode, "key create", e))?;
    Ok(json!({
        "key_id": created.key_id,
        "scheme": created.scheme,
        "public_key": created.public_key,
        "eth_address": created.eth_address,
        "btc_address": created.btc_address,
        "parties": created.parties,
        "threshold": created.threshold,
        "confirmed_by": created.parties,
    }))
}

fn sign(json_mode: bool, file: &ClusterFile, args: &SignArgs) -> Result<Value, Failed> {
    let coordinator = args
        .signers
        .first()
        .or_else(|| file.nodes.first().map(|n| &n.id))
        .cloned()
        .ok_or_else(|| usage("the cluster file lists no nodes"))?;
    let command = KeyCommand::Sign {
        key_id: args.key.clone(),
        digest: args.digest.clone(),
        message: args.message.clone(),
        path: args.path.clone(),
        signers: args.signers.clone(),
    };
    let (answer, _) = progress::step(
        &format!("signing with {} through {coordinator}", args.key),
        false,
        || ops::command(file, &coordinator, &command),
    );
    let answer = answer.map_err(|e| op_failed(json_mode, "sign", e))?;
    let scheme = ops::scheme_of(&coordinator, &answer).map_err(|e| fail("sign", e))?;
    let pick = |f: &str| answer.get(f).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "scheme": scheme,
        "r": pick("r"),
        "s": pick("s"),
        "v": pick("v"),
        "public_key": pick("public_key"),
        "digest": pick("digest"),
    }))
}

fn describe_key(created: &Value) -> String {
    let f = |k: &str| {
        created
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    let parties = created
        .get("parties")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let threshold = created.get("threshold").map(Value::to_string);
    format!(
        "key id:      {}\nscheme:      {}\npublic key:  {}\nparties:     {parties} (threshold {}; each confirmed the key)\nEthereum:    {}\nBitcoin:     {}",
        f("key_id"),
        f("scheme"),
        f("public_key"),
        threshold.as_deref().unwrap_or("-"),
        f("eth_address"),
        f("btc_address")
    )
}

fn describe_signature(signed: &Value) -> String {
    let f = |k: &str| match signed.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "-".to_owned(),
    };
    format!(
        "scheme:      {}\ndigest:      {}\nr:           {}\ns:           {}\nv:           {}\npublic key:  {}",
        f("scheme"),
        f("digest"),
        f("r"),
        f("s"),
        f("v"),
        f("public_key")
    )
}

#[cfg(feature = "sim")]
fn sim_file(dir: &Path) -> Result<(ClusterFile, PathBuf), Failed> {
    let path = dir.join("cluster.toml");
    let file = ClusterFile::load(&path).map_err(|e| fail("cluster file", e))?;
    Ok((file, path))
}

#[cfg(feature = "sim")]
fn sim(cli: &Cli, command: &SimCommand) -> Result<(), Failed> {
    match command {
        SimCommand::Up { dir, nodes } => {
            let (file, elapsed) = progress::step(
                &format!("starting a simulated cluster of {nodes} nodes"),
                false,
                || client::sim::up(dir, *nodes, &|line| eprintln!("  {line}")),
            );
            let file = file.map_err(|e| fail("sim up", e))?;
            let path = dir.join("cluster.toml");
            print(
                cli.json,
                &json!({"cluster": path, "nodes": file.nodes.iter().map(|n| &n.id).collect::<Vec<_>>(), "ms": elapsed.as_millis() as u64}),
                &format!(
                    "{} nodes running; use --cluster {}",
                    file.nodes.len(),
                    path.display()
                ),
            );
            Ok(())
        }
        SimCommand::Down { dir } => {
            let (mut file, path) = sim_file(dir)?;
            client::sim::down(&mut file, &path).map_err(|e| fail("sim down", e))?;
            print(cli.json, &json!({"stopped": true}), "cluster stopped");
            Ok(())
        }
        SimCommand::Kill { dir, node } => {
            let (mut file, path) = sim_file(dir)?;
            client::sim::kill_enclave(&mut file, &path, node)
                .map_err(|e| fail(&format!("sim kill {node}"), e))?;
            print(
                cli.json,
                &json!({"killed": node}),
                &format!("{node}'s enclave killed"),
            );
            Ok(())
        }
        SimCommand::Restart { dir, node } => {
            let (mut file, path) = sim_file(dir)?;
            let (result, _) = progress::step(&format!("restarting {node}"), false, || {
                client::sim::restart_enclave(&mut file, &path, node)
            });
            result.map_err(|e| fail(&format!("sim restart {node}"), e))?;
            print(
                cli.json,
                &json!({"restarted": node}),
                &format!("{node} running again"),
            );
            Ok(())
        }
    }
}

/// Removes the demo's cluster and directory however the demo ends.
#[cfg(feature = "sim")]
struct DemoCluster {
    dir: PathBuf,
}

#[cfg(feature = "sim")]
impl Drop for DemoCluster {
    fn drop(&mut self) {
        let path = self.dir.join("cluster.toml");
        if let Ok(mut file) = ClusterFile::load(&path) {
            let _ = client::sim::down(&mut file, &path);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(feature = "sim")]
fn demo(cli: &Cli, nodes: usize, threshold: u16) -> Result<(), Failed> {
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let guard = DemoCluster {
        dir: std::env::temp_dir().join(format!("custody-demo-{}-{unique}", std::process::id())),
    };
    let mut timings = serde_json::Map::new();
    let mut time = |name: &str, d: std::time::Duration| {
        timings.insert(name.to_owned(), json!(d.as_millis() as u64));
    };

    let (file, elapsed) = progress::step(
        &format!(
            "starting {nodes} simulated enclave nodes and their parents; they attest each other"
        ),
        false,
        || client::sim::up(&guard.dir, nodes, &|line| eprintln!("  {line}")),
    );
    let file = file.map_err(|e| fail("demo: starting the cluster", e))?;
    time("cluster_up", elapsed);

    let created_at = std::time::Instant::now();
    let created = create_key(
        cli.json,
        &file,
        threshold,
        &[],
        Some("demo".to_owned()),
        false,
    )?;
    time("key_create", created_at.elapsed());

    let message = b"tee-custody demo: pay 1 ETH to 0x000000000000000000000000000000000000dEaD";
    let signers: Vec<String> = file
        .nodes
        .iter()
        .take(usize::from(threshold))
        .map(|n| n.id.clone())
        .collect();
    let signed_at = std::time::Instant::now();
    let signed = sign(
        cli.json,
        &file,
        &SignArgs {
            key: "demo".to_owned(),
            digest: None,
            message: Some(hex::encode(message)),
            path: None,
            signers,
        },
    )?;
    time("sign", signed_at.elapsed());

    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let digest = text(&signed, "digest");
    let expected_digest = hex::encode(chains::keccak256(message));
    let verify_at = std::time::Instant::now();
    let verified = if digest != expected_digest {
        Err(format!(
            "the nodes signed {digest}, not Keccak-256 of the message"
        ))
    } else if text(&signed, "public_key") != text(&created, "public_key") {
        Err("the signature is by another key".to_owned())
    } else {
        verify::verify_hex(
            &text(&created, "public_key"),
            &digest,
            &text(&signed, "r"),
            &text(&signed, "s"),
        )
        .map_err(|e| e.to_string())
    };
    time("verify", verify_at.elapsed());

    let (stop, elapsed) = progress::step("stopping the cluster", false, || {
        let path = guard.dir.join("cluster.toml");
        let mut file = file.clone();
        client::sim::down(&mut file, &path)
    });
    stop.map_err(|e| fail("demo: stopping the cluster", e))?;
    time("cluster_down", elapsed);

    let value = json!({
        "scheme": text(&created, "scheme"),
        "public_key": text(&created, "public_key"),
        "eth_address": text(&created, "eth_address"),
        "btc_address": text(&created, "btc_address"),
        "digest": digest,
        "r": text(&signed, "r"),
        "s": text(&signed, "s"),
        "v": signed.get("v").cloned().unwrap_or(Value::Null),
        "timings_ms": timings,
    });
    let summary = format!(
        "{}\nmessage:     {:?}\n{}\nsignature:   {}\ntimings (ms): {}",
        describe_key(&created),
        String::from_utf8_lossy(message),
        describe_signature(&signed),
        match &verified {
            Ok(()) => "verified with k256 against the public key".to_owned(),
            Err(e) => format!("NOT verified: {e}"),
        },
        value
            .get("timings_ms")
            .map(Value::to_string)
            .unwrap_or_default()
    );
    print(cli.json, &value, &summary);
    drop(guard);
    verified.map_err(|e| fail("demo: signature check", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renew_aux(args: &[&str]) -> bool {
        let cli = Cli::try_parse_from(
            ["custody", "key", "create", "--threshold", "2"]
                .iter()
                .chain(args),
        )
        .unwrap();
        match cli.command {
            Command::Key {
                command: KeyCmd::Create { renew_aux, .. },
            } => renew_aux,
            other => panic!("{other:?}"),
        }
    }

    /// Auxiliary info is generated afresh only when the operator asks.
    #[test]
    fn renew_aux_only_when_asked() {
        assert!(!renew_aux(&[]));
        assert!(renew_aux(&["--renew-aux"]));
        assert!(Cli::try_parse_from(["custody", "key", "create", "--renew-aux"]).is_err());
    }
}
