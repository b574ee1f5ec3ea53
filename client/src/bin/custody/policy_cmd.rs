//! `custody policy`: approve a policy body, assemble the approvals, submit the envelope
//! to every node.

use super::*;
use client::policy_file::{self, MAX_POLICY_BODY_LEN, MAX_POLICY_ENVELOPE_LEN};

#[derive(Subcommand, Debug)]
pub(super) enum PolicyCmd {
    /// Sign a policy body (JSON) with an operator key; writes the approval.
    Approve {
        #[arg(long)]
        body: PathBuf,
        /// The operator key file.
        #[arg(long)]
        key: PathBuf,
        /// The operator's id in the manifest.
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
    /// Submit an envelope to every node of the cluster file, once this client has
    /// checked that K of the pinned manifest's operators approve it.
    Submit { envelope: PathBuf },
}

/// Reads an approval file, `{"operator", "signature"}` as `policy approve` writes it.
fn read_approval(path: &Path) -> Result<manifest::OperatorSignature, Failed> {
    let shown = path.display().to_string();
    let approval: Value =
        serde_json::from_slice(&read_limited(path, 4096)?).map_err(|e| fail(&shown, e))?;
    let field = |f: &str| {
        approval
            .get(f)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| fail(&shown, format!("no {f}")))
    };
    let signature: [u8; 64] = hex::decode(field("signature")?)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| fail(&shown, "signature: 64 bytes of hex"))?;
    Ok(manifest::OperatorSignature {
        operator: field("operator")?,
        signature: manifest::Signature::from(signature),
    })
}

pub(super) fn policy_command(cli: &Cli, command: &PolicyCmd) -> Result<(), Failed> {
    match command {
        PolicyCmd::Approve { body, key, id, out } => {
            let bytes = read_limited(body, MAX_POLICY_BODY_LEN)?;
            let key = client::operator::load(key).map_err(|e| fail("operator key", e))?;
            let version = policy_file::body_version(&bytes).map_err(|e| fail("policy body", e))?;
            let signature =
                policy_file::sign_policy(&bytes, &key).map_err(|e| fail("policy body", e))?;
            let approval = json!({"operator": id, "signature": hex::encode(signature.as_bytes())});
            std::fs::write(out, approval.to_string())
                .map_err(|e| fail(&out.display().to_string(), e))?;
            print(
                cli.json,
                &json!({"operator": id, "version": version, "out": out}),
                &format!(
                    "{id} approved policy version {version}; approval written to {}",
                    out.display()
                ),
            );
            Ok(())
        }
        PolicyCmd::Assemble {
            body,
            approvals,
            out,
        } => {
            let bytes = read_limited(body, MAX_POLICY_BODY_LEN)?;
            let signatures = approvals
                .iter()
                .map(|path| read_approval(path))
                .collect::<Result<Vec<_>, _>>()?;
            let envelope = policy_file::assemble_policy(&bytes, &signatures)
                .map_err(|e| fail("assemble", e))?;
            let version = policy_file::body_version(&bytes).map_err(|e| fail("policy body", e))?;
            std::fs::write(out, &envelope).map_err(|e| fail(&out.display().to_string(), e))?;
            let operators: Vec<&str> = signatures.iter().map(|s| s.operator.as_str()).collect();
            print(
                cli.json,
                &json!({"out": out, "version": version, "approvals": operators}),
                &format!(
                    "policy version {version} envelope written to {} with the approvals of {}",
                    out.display(),
                    operators.join(", ")
                ),
            );
            Ok(())
        }
        PolicyCmd::Submit { envelope } => {
            let (file, _) = cluster(cli)?;
            let bytes = read_limited(envelope, MAX_POLICY_ENVELOPE_LEN)?;
            // The nodes decide with their manifest's operators, which the pin names:
            // an envelope they would all refuse is not sent.
            let pin = file.pin().map_err(|e| fail("cluster file", e))?;
            let approvers = policy_file::parse_envelope(&bytes)
                .and_then(|parsed| {
                    policy_file::verify_policy(&parsed, pin.operators(), pin.threshold())
                })
                .map_err(|e| fail("policy submit: nothing sent", e))?;
            let mut results = Vec::new();
            let mut text = Vec::new();
            let mut refused = false;
            for node in &file.nodes {
                match ops::submit_policy(&file, &node.id, &bytes) {
                    Ok(answer) => {
                        text.push(format!(
                            "{}: accepted version {} (effective at {} s)",
                            node.id,
                            answer.get("accepted_version").unwrap_or(&Value::Null),
                            answer.get("effective_at_secs").unwrap_or(&Value::Null)
                        ));
                        results.push(json!({"id": node.id, "accepted": true, "answer": answer}));
                    }
                    Err(e) => {
                        refused = true;
                        text.push(format!("{}: refused: {e}", node.id));
                        results.push(
                            json!({"id": node.id, "accepted": false, "error": e.to_string()}),
                        );
                    }
                }
            }
            print(
                cli.json,
                &json!({"nodes": results, "approved_by": approvers}),
                &text.join("\n"),
            );
            if refused { Err(Failed(1)) } else { Ok(()) }
        }
    }
}
