//! `custody status`, `key create` and `sign`, and how their answers are printed.

use super::*;

pub(super) fn status(cli: &Cli) -> Result<(), Failed> {
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

pub(super) fn create_key(
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

pub(super) fn sign(json_mode: bool, file: &ClusterFile, args: &SignArgs) -> Result<Value, Failed> {
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

pub(super) fn describe_key(created: &Value) -> String {
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

pub(super) fn describe_signature(signed: &Value) -> String {
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
