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
