//! `custody sim` and `custody demo` (feature `sim`).

use super::*;

#[cfg(feature = "sim")]
pub(super) fn sim_file(dir: &Path) -> Result<(ClusterFile, PathBuf), Failed> {
    let path = dir.join("cluster.toml");
    let file = ClusterFile::load(&path).map_err(|e| fail("cluster file", e))?;
    Ok((file, path))
}

#[cfg(feature = "sim")]
pub(super) fn sim(cli: &Cli, command: &SimCommand) -> Result<(), Failed> {
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
