//! The parser's rules, on unsigned tokens: what is refused before any key is looked at.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use base64::engine::general_purpose::STANDARD;

/// A certificate-shaped blob: the parser does not decode certificates.
fn cert() -> String {
    cert_n(0)
}

/// The `n`th distinct certificate-shaped blob.
fn cert_n(n: u8) -> String {
    let mut der = [0x30u8; 64];
    der[63] = n;
    STANDARD.encode(der)
}

fn certs(count: usize) -> Vec<String> {
    (0..count).map(|n| cert_n(n as u8)).collect()
}

fn header(extra: &str) -> String {
    format!(
        r#"{{"alg":"RS256","typ":"JWT","x5c":["{}","{}"]{extra}}}"#,
        cert_n(0),
        cert_n(1)
    )
}

fn claims(extra: &str) -> String {
    format!(r#"{{"iat":1750688551,"exp":1750692151{extra}}}"#)
}

fn token(header: &str, claims: &str, sig_len: usize) -> Vec<u8> {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims),
        URL_SAFE_NO_PAD.encode(vec![7u8; sig_len])
    )
    .into_bytes()
}

fn parse(header: &str, claims: &str) -> Result<CsToken, TokenError> {
    CsToken::parse(&token(header, claims, 256))
}

#[test]
fn a_well_formed_token_parses() {
    let t = parse(
        &header(r#","kid":"k1""#),
        &claims(r#","eat_nonce":"0123456789""#),
    )
    .unwrap();
    assert_eq!(t.x5c().len(), 2);
    assert_eq!(t.header().kid(), Some("k1"));
    assert_eq!(t.claims().iat, 1_750_688_551);
    assert_eq!(t.claims().eat_nonce, ["0123456789"]);
    assert_eq!(t.signature(), [7u8; 256]);
    let text = token(
        &header(r#","kid":"k1""#),
        &claims(r#","eat_nonce":"0123456789""#),
        256,
    );
    let second_dot = text.iter().rposition(|b| *b == b'.').unwrap();
    assert_eq!(t.signing_input().len(), text[..second_dot].len());
    // `typ` may be left out.
    parse(
        &format!(r#"{{"alg":"RS256","x5c":["{}"]}}"#, cert()),
        &claims(""),
    )
    .unwrap();
}

#[test]
fn only_rs256_is_accepted() {
    for alg in [
        "none", "HS256", "RS384", "PS256", "ES256", "rs256", "RS256 ", "",
    ] {
        let h = format!(r#"{{"alg":"{alg}","x5c":["{}"]}}"#, cert());
        assert!(
            matches!(parse(&h, &claims("")), Err(TokenError::Algorithm { .. })),
            "{alg:?}"
        );
    }
    for h in [
        format!(r#"{{"x5c":["{}"]}}"#, cert()),
        format!(r#"{{"alg":null,"x5c":["{}"]}}"#, cert()),
        format!(r#"{{"alg":["RS256"],"x5c":["{}"]}}"#, cert()),
    ] {
        assert!(
            matches!(parse(&h, &claims("")), Err(TokenError::Algorithm { .. })),
            "{h}"
        );
    }
    // Given twice, even alike: refused, not resolved.
    let twice = format!(r#"{{"alg":"RS256","alg":"RS256","x5c":["{}"]}}"#, cert());
    assert!(matches!(
        parse(&twice, &claims("")),
        Err(TokenError::Json { part: "header", .. })
    ));
}

#[test]
fn keys_from_elsewhere_and_critical_parameters_are_refused() {
    for (name, value) in [
        ("jku", r#""https://example.com/keys""#),
        ("jwk", r#"{"kty":"RSA"}"#),
        ("x5u", r#""https://example.com/chain""#),
        ("crit", r#"["exp"]"#),
        ("b64", "false"),
        ("zip", r#""DEF""#),
        ("cty", r#""JWT""#),
        ("enc", r#""A256GCM""#),
    ] {
        let h = header(&format!(r#","{name}":{value}"#));
        assert_eq!(
            parse(&h, &claims("")).unwrap_err(),
            TokenError::ForbiddenHeader(FORBIDDEN_HEADERS.iter().find(|f| **f == name).unwrap()),
            "{name}"
        );
    }
    // An unknown, non-critical parameter is ignored.
    parse(&header(r#","x5t":"abc""#), &claims("")).unwrap();
    let typ = format!(r#"{{"alg":"RS256","typ":"at+jwt","x5c":["{}"]}}"#, cert());
    assert!(matches!(
        parse(&typ, &claims("")),
        Err(TokenError::Type { .. })
    ));
}

#[test]
fn x5c_is_required_and_bounded() {
    let with = |entries: Vec<String>| {
        let list = entries
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(",");
        parse(&format!(r#"{{"alg":"RS256","x5c":[{list}]}}"#), &claims(""))
    };
    assert_eq!(
        parse(r#"{"alg":"RS256"}"#, &claims("")).unwrap_err(),
        TokenError::MissingX5c
    );
    assert!(matches!(
        parse(r#"{"alg":"RS256","x5c":"MIIB"}"#, &claims("")),
        Err(TokenError::FieldType { field: "x5c", .. })
    ));
    for count in [0, MAX_X5C_CERTS + 1] {
        assert_eq!(
            with(certs(count)).unwrap_err(),
            TokenError::X5cCount {
                count,
                min: 1,
                max: MAX_X5C_CERTS
            }
        );
    }
    assert_eq!(
        with(certs(MAX_X5C_CERTS)).unwrap().x5c().len(),
        MAX_X5C_CERTS
    );
    // The same certificate twice.
    assert_eq!(
        with(vec![cert_n(0), cert_n(1), cert_n(0)]).unwrap_err(),
        TokenError::X5cEntry {
            index: 2,
            reason: "repeats x5c[0]".to_owned()
        }
    );
    // Each certificate at exactly the limit, and one byte over.
    let at_max = STANDARD.encode(vec![0x30u8; MAX_X5C_CERT_LEN]);
    assert_eq!(with(vec![at_max]).unwrap().x5c()[0].len(), MAX_X5C_CERT_LEN);
    let over = STANDARD.encode(vec![0x30u8; MAX_X5C_CERT_LEN + 1]);
    assert!(matches!(
        with(vec![over]),
        Err(TokenError::X5cEntry { index: 0, .. })
    ));
    // Unpadded, URL-safe or empty entries are not the form RFC 7515 gives x5c.
    let padded = STANDARD.encode([0x30u8; 64 + 1]);
    for bad in [
        padded.trim_end_matches('=').to_owned(),
        STANDARD.encode([0xfbu8; 30]).replace('+', "-"),
        String::new(),
    ] {
        assert!(
            matches!(
                with(vec![cert(), bad.clone()]),
                Err(TokenError::X5cEntry { index: 1, .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        parse(r#"{"alg":"RS256","x5c":[1]}"#, &claims("")),
        Err(TokenError::X5cEntry { index: 0, .. })
    ));
}

#[test]
fn the_compact_form_is_exact() {
    let good = token(&header(""), &claims(""), 256);
    CsToken::parse(&good).unwrap();
    // Whitespace, padding, another alphabet, bytes after it.
    for (i, extra) in [&b"\n"[..], b" ", b"=", b"\0", b"+"].iter().enumerate() {
        let mut bad = good.clone();
        bad.extend_from_slice(extra);
        let err = CsToken::parse(&bad).unwrap_err();
        assert_eq!(
            err,
            TokenError::Character { offset: good.len() },
            "case {i}"
        );
    }
    let mut four = good.clone();
    four.extend_from_slice(b".AAAA");
    assert_eq!(
        CsToken::parse(&four).unwrap_err(),
        TokenError::Parts { found: 4 }
    );
    let two: Vec<u8> = good[..good.iter().rposition(|b| *b == b'.').unwrap()].to_vec();
    assert_eq!(
        CsToken::parse(&two).unwrap_err(),
        TokenError::Parts { found: 2 }
    );
    // An empty signature or claims part.
    let no_sig: Vec<u8> = good[..=good.iter().rposition(|b| *b == b'.').unwrap()].to_vec();
    assert_eq!(
        CsToken::parse(&no_sig).unwrap_err(),
        TokenError::Base64 { part: "signature" }
    );
    // Non-canonical base64url: trailing bits set in the last character.
    let text = String::from_utf8(good.clone()).unwrap();
    let (rest, sig) = text.rsplit_once('.').unwrap();
    assert_eq!(sig.len() % 4, 2, "256 bytes end in a partial group");
    let mut odd = sig.to_owned();
    let last = odd.pop().unwrap();
    odd.push(if last == 'B' { 'C' } else { 'B' });
    assert_eq!(
        CsToken::parse(format!("{rest}.{odd}").as_bytes()).unwrap_err(),
        TokenError::Base64 { part: "signature" }
    );
    assert_eq!(CsToken::parse(b"").unwrap_err(), TokenError::Empty);
}

#[test]
fn signature_length_is_bounded() {
    for len in [MIN_SIGNATURE_LEN, MAX_SIGNATURE_LEN] {
        CsToken::parse(&token(&header(""), &claims(""), len)).unwrap();
    }
    for len in [1, MIN_SIGNATURE_LEN - 1, MAX_SIGNATURE_LEN + 1] {
        assert!(matches!(
            CsToken::parse(&token(&header(""), &claims(""), len)),
            Err(TokenError::SignatureLength { .. })
        ));
    }
}

#[test]
fn size_is_checked_before_decoding() {
    let too_long = vec![b'!'; MAX_TOKEN_LEN + 1];
    assert_eq!(
        CsToken::parse(&too_long).unwrap_err(),
        TokenError::TooLarge {
            len: MAX_TOKEN_LEN + 1,
            max: MAX_TOKEN_LEN
        }
    );
    // At the limit, the size passes and the content is judged.
    let at_limit = vec![b'!'; MAX_TOKEN_LEN];
    assert_eq!(
        CsToken::parse(&at_limit).unwrap_err(),
        TokenError::Character { offset: 0 }
    );
}

#[test]
fn claims_are_typed_and_bounded() {
    let refused = |extra: &str| parse(&header(""), &claims(extra)).unwrap_err();
    assert_eq!(
        parse(&header(""), r#"{"exp":1}"#).unwrap_err(),
        TokenError::MissingClaim("iat")
    );
    assert_eq!(
        parse(&header(""), r#"{"iat":1}"#).unwrap_err(),
        TokenError::MissingClaim("exp")
    );
    for bad in [
        r#"{"iat":-1,"exp":1}"#,
        r#"{"iat":1.5,"exp":1}"#,
        r#"{"iat":"1","exp":1}"#,
    ] {
        assert!(matches!(
            parse(&header(""), bad),
            Err(TokenError::FieldType { field: "iat", .. })
        ));
    }
    assert!(matches!(
        refused(r#","iss":1"#),
        TokenError::FieldType { field: "iss", .. }
    ));
    assert!(matches!(
        refused(r#","secboot":"true""#),
        TokenError::FieldType {
            field: "secboot",
            ..
        }
    ));
    assert!(matches!(
        refused(r#","submods":[]"#),
        TokenError::FieldType {
            field: "submods",
            ..
        }
    ));
    assert!(matches!(
        refused(r#","submods":{"gce":"x"}"#),
        TokenError::FieldType {
            field: "submods.gce",
            ..
        }
    ));
    let long = "a".repeat(MAX_CLAIM_LEN + 1);
    assert!(matches!(
        refused(&format!(r#","hwmodel":"{long}""#)),
        TokenError::FieldLength {
            field: "hwmodel",
            ..
        }
    ));
    // A claim named twice, at any depth.
    assert!(matches!(
        refused(r#","aud":"a","aud":"b""#),
        TokenError::Json { part: "claims", .. }
    ));
    assert!(matches!(
        refused(r#","submods":{"gce":{"zone":"a","zone":"b"}}"#),
        TokenError::Json { part: "claims", .. }
    ));
    assert!(matches!(
        parse(&header(""), "[]"),
        Err(TokenError::Json { part: "claims", .. })
    ));
}

#[test]
fn eat_nonce_is_a_string_or_up_to_six_of_up_to_74_bytes() {
    let nonces = |list: &[String]| {
        let json = list
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(",");
        parse(&header(""), &claims(&format!(r#","eat_nonce":[{json}]"#)))
    };
    let n = |len: usize| "n".repeat(len);
    assert_eq!(
        nonces(&vec![n(MAX_EAT_NONCE_LEN); MAX_EAT_NONCES])
            .unwrap()
            .claims()
            .eat_nonce
            .len(),
        MAX_EAT_NONCES
    );
    for bad in [
        vec![],
        vec![n(10); MAX_EAT_NONCES + 1],
        vec![n(MAX_EAT_NONCE_LEN + 1)],
        vec![n(0)],
    ] {
        assert!(
            matches!(
                nonces(&bad),
                Err(TokenError::FieldLength {
                    field: "eat_nonce",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        parse(&header(""), &claims(r#","eat_nonce":7"#)),
        Err(TokenError::FieldType {
            field: "eat_nonce",
            ..
        })
    ));
    assert!(matches!(
        parse(&header(""), &claims(r#","eat_nonce":["a",7]"#)),
        Err(TokenError::FieldType {
            field: "eat_nonce",
            ..
        })
    ));
}

#[test]
fn image_digest_and_instance_id_have_one_spelling() {
    let digest = "a".repeat(64);
    let with = |d: &str, id: &str| {
        parse(
            &header(""),
            &claims(&format!(
                r#","submods":{{"container":{{"image_digest":"{d}"}},"gce":{{"instance_id":"{id}"}}}}"#
            )),
        )
    };
    let t = with(&format!("sha256:{digest}"), "42").unwrap();
    assert_eq!(t.claims().image_digest_bytes(), Some(&[0xaa; 32]));
    assert_eq!(t.claims().instance_id.as_deref(), Some("42"));
    for bad in [
        format!("sha256:{}", digest.to_uppercase()),
        format!("sha384:{digest}"),
        digest.clone(),
        format!("sha256:{}", &digest[1..]),
    ] {
        assert!(matches!(
            with(&bad, "42"),
            Err(TokenError::FieldFormat {
                field: "submods.container.image_digest",
                ..
            })
        ));
    }
    for bad in ["", "-1", "4 2", "x"] {
        assert!(matches!(
            with(&format!("sha256:{digest}"), bad),
            Err(TokenError::FieldFormat {
                field: "submods.gce.instance_id",
                ..
            })
        ));
    }
}
