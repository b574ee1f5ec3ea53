//! `custody manifest`: approve, assemble, submit and show manifests.

use super::*;

pub(super) fn manifest_command(cli: &Cli, command: &ManifestCmd) -> Result<(), Failed> {
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

pub(super) fn print_submission(cli: &Cli, report: &ops::SubmitReport) {
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
