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
            providers,
            operators,
            approvals,
        } => {
            let operators = client::sim::Operators {
                count: *operators,
                approvals: *approvals,
            };
            let operators = operators.check().map_err(|e| usage(&e.to_string()))?;
            let providers = client::sim::node_providers(*nodes, providers.as_deref())
                .map_err(|e| usage(&e.to_string()))?;
            let (file, elapsed) = progress::step(
                &format!(
                    "starting a simulated cluster of {}",
                    describe_shape(&providers)
                ),
                false,
                || client::sim::up_with(dir, &providers, operators, &|line| eprintln!("  {line}")),
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
                    "providers": providers.iter().map(|p| p.name()).collect::<Vec<_>>(),
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

/// A cluster's shape in words: "3 nitro nodes", "2 nitro and 2 gcp-cs nodes".
#[cfg(feature = "sim")]
fn describe_shape(providers: &[attestation::Provider]) -> String {
    let parts: Vec<String> = client::sim::provider_counts(providers)
        .into_iter()
        .map(|(p, n)| format!("{n} {}", p.name()))
        .collect();
    format!("{} nodes", parts.join(" and "))
}

/// The demo key's threshold on a cluster of `providers`: `asked` when given; otherwise 2
/// on one provider, and on several the least that no one provider holds (2+2 nodes:
/// 3-of-4), since the placement rule refuses a key one provider could sign alone.
#[cfg(feature = "sim")]
pub(super) fn demo_threshold(providers: &[attestation::Provider], asked: Option<u16>) -> u16 {
    let counts = client::sim::provider_counts(providers);
    match asked {
        Some(t) => t,
        None if counts.len() > 1 => {
            let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
            u16::try_from(most.saturating_add(1)).unwrap_or(u16::MAX)
        }
        None => 2,
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

/// Where the demo pays: the one address its policy lists.
const EXCHANGE: &str = "0x1111111111111111111111111111111111111111";
/// An address no policy lists.
const STRANGER: &str = "0x000000000000000000000000000000000000dead";
const ETHER: u128 = 1_000_000_000_000_000_000;

/// The demo's policy: payments of the demo key to the exchange, up to 1 ether with the
/// requester's approval alone, more with two operators'; nothing else. Its delays are 0
/// so the demo runs in seconds: a real policy gives operators time to notice a change.
const DEMO_POLICY: &str = r#"{
  "version": 1,
  "effective_after_secs": 0,
  "allowlist_delay_secs": 0,
  "allowlist": [
    {"name": "exchange", "chain": "ethereum:1", "address": "0x1111111111111111111111111111111111111111"}
  ],
  "rules": [
    {"name": "small payments to the exchange", "keys": ["demo"], "chain": "ethereum:1", "asset": "native",
     "to": ["exchange"], "max_amount": "1000000000000000000", "approvals": 1, "action": "allow"},
    {"name": "large payments to the exchange", "keys": ["demo"], "chain": "ethereum:1", "asset": "native",
     "to": ["exchange"], "approvals": 2, "action": "allow"}
  ]
}"#;

/// An unsigned Ethereum payment of the demo.
#[cfg(feature = "sim")]
fn payment(nonce: u64, to: &str, value: u128) -> Result<Payload, Failed> {
    let bytes = chains::eth::unsigned_transfer(&chains::eth::Transfer {
        chain_id: 1,
        nonce,
        to,
        value,
        gas_limit: 21_000,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
    })
    .map_err(|e| fail("demo: transaction", e))?;
    Ok(Payload::EthTx(hex::encode(bytes)))
}

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
pub(super) fn demo(
    cli: &Cli,
    nodes: Option<usize>,
    providers: Option<&[attestation::Provider]>,
    threshold: Option<u16>,
) -> Result<(), Failed> {
    let providers =
        client::sim::node_providers(nodes, providers).map_err(|e| usage(&e.to_string()))?;
    let threshold = demo_threshold(&providers, threshold);
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

    let mixed = client::sim::provider_counts(&providers).len() > 1;
    let (file, elapsed) = progress::step(
        &format!(
            "starting {} (Nitro ones beside their parents); they attest each other",
            describe_shape(&providers)
        ),
        false,
        || client::sim::up(&guard.dir, &providers, &|line| eprintln!("  {line}")),
    );
    let file = file.map_err(|e| fail("demo: starting the cluster", e))?;
    let other = ClusterFile::load(&client::sim::operator_cluster_file(&guard.dir, 1))
        .map_err(|e| fail("demo: the second operator's cluster file", e))?;
    time("cluster_up", elapsed);

    if mixed {
        eprintln!(
            "  the key is {threshold}-of-{}: no one provider may hold a signing quorum \
             (the placement rule)",
            providers.len()
        );
    }
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

    let request = |file: &ClusterFile, payload: &Payload| {
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
    // Whatever the nodes say, a signed payment counts only if this client checks it: the
    // signatures verify and the transaction spends from the demo key's address.
    let check = |answer: &RequestAnswer, payload: &Payload| -> Result<(), String> {
        match (&answer.status, &answer.signature) {
            (RequestStatus::Signed, Some(s)) if s.public_key != key.public_key => {
                Err("the signature is by another key".to_owned())
            }
            (RequestStatus::Signed, Some(_)) => client::verify::check_answer(Some(payload), answer)
                .map(drop)
                .map_err(|e| e.to_string()),
            _ => Err(format!(
                "not signed: {}",
                requests::describe(answer).replace('\n', "; ")
            )),
        }
    };
    let expect = |answer: &RequestAnswer, status: RequestStatus| -> Result<(), String> {
        if answer.status == status {
            Ok(())
        } else {
            Err(format!(
                "expected {status:?}, got: {}",
                requests::describe(answer).replace('\n', "; ")
            ))
        }
    };
    let small = payment(0, EXCHANGE, ETHER / 2)?;
    let stranger = payment(1, STRANGER, 2 * ETHER)?;
    let large = payment(1, EXCHANGE, 5 * ETHER)?;

    // No policy yet: the nodes refuse to sign anything.
    let before = demo_step(
        "asking to pay 0.5 ether before any policy: the nodes refuse it",
        cli.json,
        "demo: sign",
        || request(&file, &small),
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

    let signed_at = std::time::Instant::now();
    let small_signed = demo_step(
        "paying 0.5 ether to the exchange: operator-0's approval is enough",
        cli.json,
        "demo: sign",
        || request(&file, &small),
    )?;
    time("sign", signed_at.elapsed());
    let refused = demo_step(
        "paying 2 ether to an address the policy does not list: refused",
        cli.json,
        "demo: sign",
        || request(&file, &stranger),
    )?;
    let pending = demo_step(
        "paying 5 ether to the exchange: it needs a second operator",
        cli.json,
        "demo: sign",
        || request(&file, &large),
    )?;
    let large_signed = second_approval(cli.json, &other, &node, pending.clone())?;

    let verify_at = std::time::Instant::now();
    let verified = expect(&before, RequestStatus::Refused)
        .and_then(|()| check(&small_signed, &small))
        .and_then(|()| expect(&refused, RequestStatus::Refused))
        .and_then(|()| expect(&pending, RequestStatus::Pending))
        .and_then(|()| check(&large_signed, &large));
    time("verify", verify_at.elapsed());

    let (stop, elapsed) = progress::step("stopping the cluster", false, || {
        let path = guard.dir.join("cluster.toml");
        let mut file = file.clone();
        client::sim::down(&mut file, &path)
    });
    stop.map_err(|e| fail("demo: stopping the cluster", e))?;
    time("cluster_down", elapsed);

    let value = json!({
        "scheme": key.scheme,
        "public_key": key.public_key,
        "eth_address": key.eth_address,
        "btc_address": key.btc_address,
        "key_request": created.request_id,
        "providers": providers.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "threshold": threshold,
        "before_policy": before,
        "signed": small_signed,
        "refused": refused,
        "pending": pending,
        "approved": large_signed,
        "timings_ms": timings,
    });
    let created_value = json!({
        "key_id": key.key_id, "scheme": key.scheme, "public_key": key.public_key,
        "eth_address": key.eth_address, "btc_address": key.btc_address,
        "parties": key.parties, "threshold": key.threshold,
    });
    let summary = format!(
        "{}\n(created once operator-0 asked and operator-1 approved)\n\n\
         0.5 ether to the exchange, before any policy:\n{}\n\n\
         0.5 ether to the exchange, under the policy:\n{}\n\n\
         2 ether to {STRANGER}:\n{}\n\n\
         5 ether to the exchange, operator-0 asks:\n{}\n\n\
         operator-1 approves:\n{}\n\n\
         check:        {}\ntimings (ms): {}",
        describe_key(&created_value),
        requests::describe(&before),
        requests::describe(&small_signed),
        requests::describe(&refused),
        requests::describe(&pending),
        requests::describe(&large_signed),
        match &verified {
            Ok(()) =>
                "both payments verified with k256 and spend from the key's address".to_owned(),
            Err(e) => format!("FAILED: {e}"),
        },
        value
            .get("timings_ms")
            .map(Value::to_string)
            .unwrap_or_default()
    );
    print(cli.json, &value, &summary);
    drop(guard);
    verified.map_err(|e| fail("demo: check", e))
}
