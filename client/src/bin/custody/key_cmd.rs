//! `custody status` and `key create`, and how a new key is printed.

use super::*;
use client::requests;
use protocol::authority::Action;
use protocol::operator_api::RequestAnswer;
use request_cmd::{node_or_first, request_failed};

pub(super) fn status(cli: &Cli) -> Result<(), Failed> {
    let (file, _) = cluster(cli)?;
    let reports = ops::status(&file);
    let value = json!({ "nodes": reports });
    let mut text = String::new();
    for r in &reports {
        text.push_str(&format!(
            "{:<12} {:<26} attested: {:<5} {:<7} pcr0: {}{}\n",
            r.id,
            r.phase,
            r.attested,
            r.provider.as_deref().unwrap_or("-"),
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

/// Asks the first party (or the first node) to create a key: a request, approved by this
/// operator, that the nodes act on once enough operators approve it. The node asked,
/// what was asked, and its answer. Refused before anything is sent when the pinned
/// manifest's placement rule refuses the key (see [`check_placement`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn create_key(
    json_mode: bool,
    file: &ClusterFile,
    threshold: u16,
    parties: &[String],
    key_id: Option<String>,
    renew_aux: bool,
    ttl: Option<u64>,
    manifest: Option<&Path>,
) -> Result<(String, ops::KeyAsked, RequestAnswer), Failed> {
    let coordinator = node_or_first(file, parties.first())?;
    check_placement(json_mode, file, manifest, parties, threshold)?;
    let failed = |e| request_failed(json_mode, "key create", e);
    let key_id = match key_id {
        Some(key_id) => key_id,
        None => requests::new_key_id().map_err(failed)?,
    };
    let ttl = requests::ttl_ms(ttl).map_err(failed)?;
    let action = Action::CreateKey {
        threshold,
        parties: parties.to_vec(),
        renew_aux,
    };
    let authority = requests::make(file, &key_id, action, ttl).map_err(failed)?;
    let (answer, _) = progress::step(
        &format!(
            "asking {coordinator} to create {threshold}-of-{} key {key_id} (once approved: auxiliary info, then key generation, then each party confirms it)",
            if parties.is_empty() {
                file.nodes.len()
            } else {
                parties.len()
            }
        ),
        false,
        || requests::submit(file, &coordinator, authority),
    );
    let answer = answer.map_err(|e| op_failed(json_mode, "key create", e))?;
    let asked = ops::KeyAsked {
        key_id,
        threshold,
        parties: parties.to_vec(),
    };
    Ok((coordinator, asked, answer))
}

/// The placement rule on the pinned manifest (from `manifest`, or a simulated cluster's
/// copy), as every node decides it: a refusal prints as a node's refusal would and exits
/// as one, and nothing is sent. Without the manifest at hand the nodes alone decide.
pub(super) fn check_placement(
    json_mode: bool,
    file: &ClusterFile,
    manifest: Option<&Path>,
    parties: &[String],
    threshold: u16,
) -> Result<(), Failed> {
    use client::placement::{check_key, pinned_manifest};
    let Some(pinned) = pinned_manifest(file, manifest).map_err(|e| fail("key create", e))? else {
        if !json_mode {
            eprintln!(
                "custody: key create: placement not checked before sending (no copy of the \
                 pinned manifest; --manifest FILE names one): each node checks it"
            );
        }
        return Ok(());
    };
    let Err(refused) = check_key(&pinned, parties, threshold) else {
        return Ok(());
    };
    let status = protocol::operator_api::RequestStatus::Refused;
    print(
        json_mode,
        &json!({
            "status": requests::status_name(status),
            "reason": refused.to_string(),
            "sent": false,
        }),
        &format!("refused before sending: {refused}"),
    );
    Err(Failed(requests::exit_code(status)))
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
