//! `custody sign` and `custody request approve/show/list`: requests that the nodes decide
//! under the custodian's policy, and how their answers are printed and exited with.

use super::*;
use client::requests;
use client::verify::AnswerCheck;
use protocol::authority::{Action, Payload};
use protocol::operator_api::{RequestAnswer, RequestStatus};

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("payload").required(true).args(["eth_tx", "btc_psbt", "digest"])))]
pub(super) struct SignArgs {
    #[arg(long)]
    pub key: String,
    /// An unsigned Ethereum transaction (legacy with EIP-155, or EIP-1559), hex.
    #[arg(long)]
    pub eth_tx: Option<String>,
    /// A PSBT spending P2WPKH inputs, base64.
    #[arg(long)]
    pub btc_psbt: Option<String>,
    /// The network a PSBT spends on, which decides how its addresses read.
    #[arg(long, default_value = "mainnet")]
    pub btc_network: String,
    /// A raw 32-byte digest, hex (signed only under a policy rule for digests).
    #[arg(long)]
    pub digest: Option<String>,
    /// Non-hardened derivation path, e.g. m/0/1.
    #[arg(long)]
    pub path: Option<String>,
    /// The signing set, comma-separated node ids (the node asked chooses when absent);
    /// the nodes sign with no other set.
    #[arg(long, value_delimiter = ',')]
    pub signers: Vec<String>,
    /// How long the request waits for approvals, in seconds (default 3600, at most
    /// 86400).
    #[arg(long)]
    pub ttl: Option<u64>,
    /// The node to send it to (default: the first of the cluster file).
    #[arg(long)]
    pub node: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(super) enum RequestCmd {
    /// Approve a request as the cluster file's operator; the approval that completes
    /// the quorum has the nodes sign, and prints as `sign` does.
    Approve {
        /// The request id (64 hex digits).
        id: String,
        /// The node that holds it (default: the first of the cluster file that does).
        #[arg(long)]
        node: Option<String>,
    },
    /// Show one request: where it stands, what it asks, who approved.
    Show {
        id: String,
        #[arg(long)]
        node: Option<String>,
    },
    /// Every request the nodes of the cluster file hold, and which node holds each.
    List,
}

/// The node a command goes to: the one named, or the first of the cluster file.
pub(super) fn node_or_first(file: &ClusterFile, node: Option<&String>) -> Result<String, Failed> {
    node.or_else(|| file.nodes.first().map(|n| &n.id))
        .cloned()
        .ok_or_else(|| usage("the cluster file lists no nodes"))
}

/// A failed operation: a command line no node would accept is a usage error (exit 2).
pub(super) fn request_failed(json_mode: bool, what: &str, error: ops::OpError) -> Failed {
    match error {
        ops::OpError::Usage(_) | ops::OpError::Ttl { .. } => usage(&format!("{what}: {error}")),
        error => op_failed(json_mode, what, error),
    }
}

/// Says on standard error (never in JSON) that the transaction's sender was checked.
fn note_sender_checked(json_mode: bool) {
    if !json_mode {
        eprintln!("custody: the signed transaction spends from the key's address");
    }
}

pub(super) fn sign(cli: &Cli, args: &SignArgs) -> Result<(), Failed> {
    let (payload, ttl) = requests::payload(
        args.eth_tx.as_deref(),
        args.btc_psbt.as_deref(),
        &args.btc_network,
        args.digest.as_deref(),
    )
    .and_then(|p| Ok((p, requests::ttl_ms(args.ttl)?)))
    .map_err(|e| request_failed(cli.json, "sign", e))?;
    let (file, _) = cluster(cli)?;
    let node = node_or_first(&file, args.node.as_ref())?;
    let action = Action::Sign {
        path: args.path.clone(),
        payload: payload.clone(),
        signers: args.signers.clone(),
    };
    let authority = requests::make(&file, &args.key, action, ttl)
        .map_err(|e| request_failed(cli.json, "sign", e))?;
    let (answer, _) = progress::step(
        &format!(
            "asking {node} to sign a {} with {}",
            payload.kind(),
            args.key
        ),
        false,
        || requests::submit(&file, &node, authority),
    );
    let answer = answer.map_err(|e| op_failed(cli.json, "sign", e))?;
    finish(cli.json, &file, &node, Some(&payload), None, answer)
}

/// Prints `node`'s answer and says what to exit with: signatures are checked and a new
/// key confirmed with every party (against what was `asked`, when this client asked)
/// before anything prints as done; then 0 signed or created, 3 pending, 1 otherwise.
pub(super) fn finish(
    json_mode: bool,
    file: &ClusterFile,
    node: &str,
    payload: Option<&Payload>,
    asked: Option<&ops::KeyAsked>,
    answer: RequestAnswer,
) -> Result<(), Failed> {
    let checked = client::verify::check_answer(payload, &answer).map_err(|source| {
        fail(
            "sign",
            ops::OpError::Unchecked {
                node: node.to_owned(),
                source,
            },
        )
    })?;
    if answer.status == RequestStatus::Created {
        let key = answer.key.as_ref().ok_or_else(|| {
            fail(
                "key create",
                format!("{node} says the key was created but does not name it"),
            )
        })?;
        ops::confirm_created(file, node, asked, key)
            .map_err(|e| op_failed(json_mode, "key create", e))?;
    }
    print_answer(json_mode, &answer);
    if checked == AnswerCheck::SenderChecked {
        note_sender_checked(json_mode);
    }
    match requests::exit_code(answer.status) {
        0 => Ok(()),
        code => Err(Failed(code)),
    }
}

/// An answer as `--json` prints it: the node's answer, except for a created key, which
/// prints as `key create` always did (with the request's id and status).
pub(super) fn print_answer(json_mode: bool, answer: &RequestAnswer) {
    match &answer.key {
        Some(key) if answer.status == RequestStatus::Created => {
            let value = json!({
                "request_id": answer.request_id,
                "status": requests::status_name(answer.status),
                "key_id": key.key_id,
                "scheme": key.scheme,
                "public_key": key.public_key,
                "eth_address": key.eth_address,
                "btc_address": key.btc_address,
                "parties": key.parties,
                "threshold": key.threshold,
                "confirmed_by": key.parties,
            });
            print(
                json_mode,
                &value,
                &format!(
                    "{}
request:     {}",
                    describe_key(&value),
                    answer.request_id
                ),
            );
        }
        _ => {
            let value = serde_json::to_value(answer).unwrap_or(Value::Null);
            print(json_mode, &value, &requests::describe(answer));
        }
    }
}

pub(super) fn request_command(cli: &Cli, command: &RequestCmd) -> Result<(), Failed> {
    let (file, _) = cluster(cli)?;
    match command {
        RequestCmd::Approve { id, node } => {
            let (answer, _) = progress::step(
                &format!("approving request {id} as {}", file.operator.id),
                false,
                || requests::approve(&file, node.as_deref(), id),
            );
            let (node, answer) = answer.map_err(|e| request_failed(cli.json, "approve", e))?;
            finish(cli.json, &file, &node, None, None, answer)
        }
        RequestCmd::Show { id, node } => {
            let (node, view) = requests::show(&file, node.as_deref(), id)
                .map_err(|e| request_failed(cli.json, "request show", e))?;
            let mut value = serde_json::to_value(&view).unwrap_or(Value::Null);
            if let Some(object) = value.as_object_mut() {
                object.insert("node".to_owned(), json!(node));
            }
            print(
                cli.json,
                &value,
                &format!("{}\nheld by:     {node}", requests::describe_view(&view)),
            );
            Ok(())
        }
        RequestCmd::List => {
            let listing = requests::list(&file);
            for (node, error) in &listing.errors {
                eprintln!("custody: request list: {node}: {error}");
            }
            let text: Vec<String> = listing
                .requests
                .iter()
                .map(|held| {
                    let a = &held.view.answer;
                    let approvals = match (a.approvals, a.approvals_needed) {
                        (Some(have), Some(need)) => format!(" {have}/{need} approvals"),
                        _ => String::new(),
                    };
                    protocol::printable(&format!(
                        "{} {:<8} {} {} by {}{approvals}; held by {}",
                        a.request_id,
                        requests::status_name(a.status),
                        held.view.key_id,
                        held.view.action,
                        held.view.requester,
                        held.nodes.join(", ")
                    ))
                })
                .collect();
            let text = if text.is_empty() {
                "no requests".to_owned()
            } else {
                text.join("\n")
            };
            let value = serde_json::to_value(&listing).unwrap_or(Value::Null);
            print(cli.json, &value, &text);
            if listing.errors.len() == file.nodes.len() {
                return Err(Failed(1));
            }
            Ok(())
        }
    }
}
