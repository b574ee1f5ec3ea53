//! `custody sim` and `custody demo` (feature `sim`).

use super::*;
use client::requests;
use protocol::authority::{Action, Payload};
use protocol::operator_api::{RequestAnswer, RequestStatus};

#[cfg(feature = "sim")]
pub(super) fn sim_file(dir: &Path) -> Result<(ClusterFile, PathBuf), Failed> {
    let path = dir.join("cluster.toml");
    let file = ClusterFile::load(&path).map_err(|e| fail("cluster file", e))?;
    Ok((file, path))
}

#[cfg(feature = "sim")]
pub(super) fn sim(cli: &Cli, command: &SimCommand) -> Result<(), Failed> {
    match command {
        SimCommand::Up {
            dir,
            nodes,
            operators,
            approvals,
        } => {
            let operators = client::sim::Operators {
                count: *operators,
                approvals: *approvals,
            };
            let operators = operators.check().map_err(|e| usage(&e.to_string()))?;
            let (file, elapsed) = progress::step(
                &format!("starting a simulated cluster of {nodes} nodes"),
                false,
                || client::sim::up_with(dir, *nodes, operators, &|line| eprintln!("  {line}")),
            );
            let file = file.map_err(|e| fail("sim up", e))?;
            let files: Vec<PathBuf> = (0..operators.count)
                .map(|i| client::sim::operator_cluster_file(dir, i))
                .collect();
            let path = dir.join("cluster.toml");
            print(
                cli.json,
                &json!({
                    "cluster": path,
                    "operator_clusters": files,
                    "approvals": operators.approvals,
                    "nodes": file.nodes.iter().map(|n| &n.id).collect::<Vec<_>>(),
                    "ms": elapsed.as_millis() as u64,
                }),
                &format!(
                    "{} nodes running; use --cluster {} (operator-0; {} of {} operators approve, each with its own cluster-operator-<i>.toml)",
                    file.nodes.len(),
                    path.display(),
                    operators.approvals,
                    operators.count
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

/// The demo's policy: digests with the demo key are signed once two operators approve.
const DEMO_POLICY: &str = r#"{
  "version": 1,
  "effective_after_secs": 86400,
  "allowlist_delay_secs": 86400,
  "allowlist": [],
  "rules": [
    {"name": "demo digests", "keys": ["demo"], "chain": "digest", "approvals": 2, "action": "allow"}
  ]
}"#;

#[cfg(feature = "sim")]
fn demo_step<T>(
    name: &str,
    json_mode: bool,
    what: &str,
    run: impl FnOnce() -> Result<T, ops::OpError>,
) -> Result<T, Failed> {
    let (result, _) = progress::step(name, false, run);
    result.map_err(|e| op_failed(json_mode, what, e))
}

/// Operator 1 approves request `id` at `node` when it is pending; the answer then.
#[cfg(feature = "sim")]
fn second_approval(
    json_mode: bool,
    other: &ClusterFile,
    node: &str,
    answer: RequestAnswer,
) -> Result<RequestAnswer, Failed> {
    if answer.status != RequestStatus::Pending {
        return Ok(answer);
    }
    demo_step(
        &format!(
            "{} approves request {}",
            other.operator.id, answer.request_id
        ),
        json_mode,
        "demo: approval",
        || requests::approve(other, Some(node), &answer.request_id).map(|(_, a)| a),
    )
}

#[cfg(feature = "sim")]
pub(super) fn demo(cli: &Cli, nodes: usize, threshold: u16) -> Result<(), Failed> {
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
    let other = ClusterFile::load(&client::sim::operator_cluster_file(&guard.dir, 1))
        .map_err(|e| fail("demo: the second operator's cluster file", e))?;
    time("cluster_up", elapsed);

    // A key needs the approval of two operators: operator-0 asks, operator-1 approves.
    let created_at = std::time::Instant::now();
    let (node, asked, answer) = create_key(
        cli.json,
        &file,
        threshold,
        &[],
        Some("demo".to_owned()),
        false,
        None,
    )?;
    let created = second_approval(cli.json, &other, &node, answer)?;
    let key = match (&created.status, &created.key) {
        (RequestStatus::Created, Some(key)) => key.clone(),
        _ => return Err(fail("demo: key create", requests::describe(&created))),
    };
    ops::confirm_created(&file, &node, Some(&asked), &key)
        .map_err(|e| op_failed(cli.json, "demo: key create", e))?;
    time("key_create", created_at.elapsed());

    let message = b"tee-custody demo: pay 1 ETH to 0x000000000000000000000000000000000000dEaD";
    let digest = hex::encode(chains::keccak256(message));
    let payload = Payload::Digest(digest.clone());
    let request = |file: &ClusterFile| {
        requests::make(
            file,
            "demo",
            Action::Sign {
                path: None,
                payload: payload.clone(),
                signers: Vec::new(),
            },
            protocol::authority::DEFAULT_TTL_MS,
        )
        .and_then(|authority| requests::submit(file, &node, authority))
    };

    // No policy yet: the nodes refuse to sign anything.
    let refused = demo_step(
        "asking for a signature before any policy: the nodes refuse it",
        cli.json,
        "demo: sign",
        || request(&file),
    )?;

    // The policy, approved by two operators, goes to every node.
    let policy_at = std::time::Instant::now();
    let keys = [&file, &other]
        .iter()
        .map(|f| {
            let key = client::operator::load(&f.operator.key_file)
                .map_err(|e| fail("demo: operator key", e))?;
            let signature = client::policy_file::sign_policy(DEMO_POLICY.as_bytes(), &key)
                .map_err(|e| fail("demo: policy", e))?;
            Ok(manifest::OperatorSignature {
                operator: f.operator.id.clone(),
                signature,
            })
        })
        .collect::<Result<Vec<_>, Failed>>()?;
    let envelope = client::policy_file::assemble_policy(DEMO_POLICY.as_bytes(), &keys)
        .map_err(|e| fail("demo: policy", e))?;
    for n in &file.nodes {
        demo_step(
            &format!("submitting the policy to {}", n.id),
            cli.json,
            "demo: policy submit",
            || ops::submit_policy(&file, &n.id, &envelope),
        )?;
    }
    time("policy", policy_at.elapsed());

    // Under the policy a digest needs two operators: operator-1 approves.
    let signed_at = std::time::Instant::now();
    let pending = demo_step(
        "asking for the signature again, under the policy",
        cli.json,
        "demo: sign",
        || request(&file),
    )?;
    let signed = second_approval(cli.json, &other, &node, pending.clone())?;
    time("sign", signed_at.elapsed());

    let verify_at = std::time::Instant::now();
    let verified = match (&signed.status, &signed.signature) {
        (RequestStatus::Signed, Some(s)) if s.public_key != key.public_key => {
            Err("the signature is by another key".to_owned())
        }
        (RequestStatus::Signed, Some(_)) => client::verify::check_answer(Some(&payload), &signed)
            .map(drop)
            .map_err(|e| e.to_string()),
        _ => Err(format!(
            "not signed: {}",
            requests::describe(&signed).replace('\n', "; ")
        )),
    };
    time("verify", verify_at.elapsed());

    let (stop, elapsed) = progress::step("stopping the cluster", false, || {
        let path = guard.dir.join("cluster.toml");
        let mut file = file.clone();
        client::sim::down(&mut file, &path)
    });
    stop.map_err(|e| fail("demo: stopping the cluster", e))?;
    time("cluster_down", elapsed);

    let signature = signed.signature.clone();
    let field = |f: fn(&protocol::operator_api::SignedDigest) -> String| {
        signature.as_ref().map(f).unwrap_or_default()
    };
    let value = json!({
        "scheme": key.scheme,
        "public_key": key.public_key,
        "eth_address": key.eth_address,
        "btc_address": key.btc_address,
        "key_request": created.request_id,
        "refused": refused,
        "pending": pending,
        "digest": digest,
        "r": field(|s| s.r.clone()),
        "s": field(|s| s.s.clone()),
        "v": signature.as_ref().map(|s| s.v),
        "timings_ms": timings,
    });
    let created_value = json!({
        "key_id": key.key_id, "scheme": key.scheme, "public_key": key.public_key,
        "eth_address": key.eth_address, "btc_address": key.btc_address,
        "parties": key.parties, "threshold": key.threshold,
    });
    let summary = format!(
        "{}\n(created once operator-0 asked and operator-1 approved)\n\nbefore any policy:\n{}\n\nunder the policy, operator-0 asks:\n{}\n\noperator-1 approves:\n{}\nmessage:     {:?}\nsignature:   {}\ntimings (ms): {}",
        describe_key(&created_value),
        requests::describe(&refused),
        requests::describe(&pending),
        requests::describe(&signed),
        String::from_utf8_lossy(message),
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
