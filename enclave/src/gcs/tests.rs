//! The client against an in-process fake of Cloud Storage and the metadata server.

mod fake;

use super::token::{TokenCache, parse_token_response};
use super::*;
use crate::sealed::{DataKey, SealError, SealedStore};
use fake::{Answer, BUCKET, Fake};
use std::time::Duration;
use transport::blob::MAX_LIST_LEN;
use zeroize::Zeroizing;

fn config(fake: &Fake, prefix: &str) -> GcsConfig {
    GcsConfig {
        endpoint: fake.url(),
        token_source: TokenSource::Metadata {
            endpoint: fake.url(),
        },
        timeout: Duration::from_secs(5),
        ..GcsConfig::new(BUCKET, prefix)
    }
}

async fn start(prefix: &str) -> (Fake, GcsBlobs) {
    let fake = Fake::start().await;
    let blobs = GcsBlobs::new(config(&fake, prefix)).unwrap();
    (fake, blobs)
}

fn gcs(err: BlobError) -> GcsError {
    match err {
        BlobError::Gcs(e) => *e,
        other => panic!("not a storage error: {other}"),
    }
}

#[tokio::test]
async fn put_get_list_delete() {
    let (fake, blobs) = start("nodes/node-1").await;
    assert_eq!(blobs.get("a").await.unwrap(), None);
    blobs.put("a", b"one".to_vec()).await.unwrap();
    blobs.put("b", vec![]).await.unwrap();
    blobs.put("b2", b"two".to_vec()).await.unwrap();
    assert_eq!(blobs.get("a").await.unwrap(), Some(b"one".to_vec()));
    assert_eq!(blobs.get("b").await.unwrap(), Some(vec![]));
    assert_eq!(blobs.list("").await.unwrap(), ["a", "b", "b2"]);
    assert_eq!(blobs.list("b").await.unwrap(), ["b", "b2"]);
    assert!(blobs.list("c").await.unwrap().is_empty());
    blobs.delete("a").await.unwrap();
    blobs.delete("a").await.unwrap();
    assert_eq!(blobs.get("a").await.unwrap(), None);
    let stored: Vec<String> = fake.with(|s| s.objects.keys().cloned().collect());
    assert_eq!(stored, ["nodes/node-1/b", "nodes/node-1/b2"]);
    assert_eq!(blobs.location(), "gs://custody-test/nodes/node-1/");

    // Other nodes' objects and deeper folders are not this node's blobs.
    fake.with(|s| {
        s.objects.insert("nodes/node-2/a".into(), vec![1]);
        s.objects.insert("nodes/node-1/old/a".into(), vec![1]);
        s.objects.insert("nodes/node-1x".into(), vec![1]);
    });
    assert_eq!(blobs.list("").await.unwrap(), ["b", "b2"]);
}

#[tokio::test]
async fn an_empty_prefix_is_the_top_level() {
    let (fake, blobs) = start("").await;
    blobs.put("a", b"x".to_vec()).await.unwrap();
    assert_eq!(blobs.list("").await.unwrap(), ["a"]);
    assert!(fake.with(|s| s.objects.contains_key("a")));
}

#[tokio::test]
async fn blobs_up_to_the_limit_and_no_further() {
    let (fake, blobs) = start("n").await;
    let max = vec![7u8; MAX_BLOB_LEN];
    blobs.put("big", max.clone()).await.unwrap();
    assert_eq!(blobs.get("big").await.unwrap(), Some(max));

    // One byte more is refused before anything is sent.
    let sent = fake.storage_requests().len();
    let err = blobs
        .put("big", vec![7u8; MAX_BLOB_LEN + 1])
        .await
        .unwrap_err();
    assert!(
        matches!(err, BlobError::Request(CodecError::TooLarge { len }) if len == MAX_BLOB_LEN + 1)
    );
    assert_eq!(fake.storage_requests().len(), sent);
}

#[tokio::test]
async fn invalid_names_are_refused_before_sending() {
    let (fake, blobs) = start("n").await;
    for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(129)] {
        assert!(
            matches!(blobs.put(bad, vec![1]).await, Err(BlobError::Request(_))),
            "{bad}"
        );
        assert!(
            matches!(blobs.get(bad).await, Err(BlobError::Request(_))),
            "{bad}"
        );
        assert!(
            matches!(blobs.delete(bad).await, Err(BlobError::Request(_))),
            "{bad}"
        );
    }
    assert!(matches!(blobs.list("a/").await, Err(BlobError::Request(_))));
    assert!(fake.with(|s| s.requests.is_empty()));
}

/// A response body over the limit is refused, announced or not; exactly the limit is
/// read.
#[tokio::test]
async fn oversized_bodies_are_refused() {
    for (len, length) in [
        (MAX_BLOB_LEN + 1, true),
        (MAX_BLOB_LEN + 1, false),
        (MAX_BLOB_LEN, false),
    ] {
        let (fake, blobs) = start("n").await;
        fake.hook(move |r| {
            (!r.is_token()).then(|| Answer {
                length,
                ..Answer::new(200, vec![1u8; len])
            })
        });
        let result = blobs.get("a").await;
        if len == MAX_BLOB_LEN {
            assert_eq!(result.unwrap().unwrap().len(), MAX_BLOB_LEN);
            continue;
        }
        let err = gcs(result.unwrap_err());
        let announced = length.then_some(u64::try_from(len).unwrap());
        assert!(
            matches!(err, GcsError::Oversized { op: Operation::Get, limit, announced: a, .. }
                if limit == MAX_BLOB_LEN && a == announced),
            "{err}"
        );
        assert_eq!(err.target(), "gs://custody-test/n/a");
    }
}

#[tokio::test]
async fn server_errors_name_the_operation_object_and_status() {
    let (fake, blobs) = start("n").await;
    fake.hook(|r| (!r.is_token()).then(|| Answer::error(500, "backend \"exploded\"")));
    let err = gcs(blobs.put("share", vec![1]).await.unwrap_err());
    assert!(
        matches!(&err, GcsError::Status { op: Operation::Put, target, status: 500, message: Some(m) }
            if target == "gs://custody-test/n/share" && m == "backend \"exploded\""),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "put gs://custody-test/n/share: HTTP status 500: \"backend \\\"exploded\\\"\""
    );
    for (result, op) in [
        (blobs.get("share").await.map(|_| ()), Operation::Get),
        (blobs.delete("share").await, Operation::Delete),
        (blobs.list("sh").await.map(|_| ()), Operation::List),
    ] {
        let err = gcs(result.unwrap_err());
        assert_eq!((err.operation(), err.status()), (op, Some(500)), "{err}");
    }
    assert_eq!(
        gcs(blobs.list("sh").await.unwrap_err()).target(),
        "gs://custody-test/n/sh*"
    );

    // A text body is the message, cut at the limit; an empty one is none.
    let long = "x".repeat(10_000);
    fake.hook(move |r| (!r.is_token()).then(|| Answer::new(503, long.clone())));
    match gcs(blobs.get("a").await.unwrap_err()) {
        GcsError::Status {
            status: 503,
            message: Some(m),
            ..
        } => assert_eq!(m.len(), MAX_MESSAGE_LEN),
        other => panic!("{other}"),
    }
    fake.hook(|r| (!r.is_token()).then(|| Answer::new(502, "")));
    assert!(matches!(
        gcs(blobs.get("a").await.unwrap_err()),
        GcsError::Status {
            status: 502,
            message: None,
            ..
        }
    ));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (fake, blobs) = start("n").await;
    fake.hook(|r| {
        (!r.is_token()).then(|| Answer {
            headers: vec![("Location".into(), "http://127.0.0.1:9/elsewhere".into())],
            ..Answer::new(302, "")
        })
    });
    let err = gcs(blobs.get("a").await.unwrap_err());
    assert_eq!(err.status(), Some(302), "{err}");
    assert_eq!(fake.storage_requests().len(), 1);
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let fake = Fake::start().await;
    let blobs = GcsBlobs::new(GcsConfig {
        timeout: Duration::from_millis(300),
        ..config(&fake, "n")
    })
    .unwrap();
    blobs.put("a", vec![1]).await.unwrap();
    fake.hook(|r| {
        (!r.is_token()).then(|| Answer {
            delay: Duration::from_secs(3),
            ..Answer::new(200, "late")
        })
    });
    let started = std::time::Instant::now();
    let err = gcs(blobs.get("a").await.unwrap_err());
    assert!(
        matches!(&err, GcsError::Timeout { op: Operation::Get, target, after }
            if target == "gs://custody-test/n/a" && *after == Duration::from_millis(300)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // The metadata server is held to the same bound.
    let fake = Fake::start().await;
    fake.hook(|r| {
        r.is_token().then(|| Answer {
            delay: Duration::from_secs(3),
            ..Answer::new(200, "{}")
        })
    });
    let blobs = GcsBlobs::new(GcsConfig {
        timeout: Duration::from_millis(300),
        ..config(&fake, "n")
    })
    .unwrap();
    let err = gcs(blobs.get("a").await.unwrap_err());
    assert!(
        matches!(
            err,
            GcsError::Timeout {
                op: Operation::Token,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn listings_are_paginated() {
    let (fake, blobs) = start("n").await;
    fake.with(|s| {
        s.page_size = 3;
        for i in 0..10 {
            s.objects.insert(format!("n/blob-{i:02}"), vec![]);
        }
    });
    let names = blobs.list("").await.unwrap();
    assert_eq!(names.len(), 10);
    assert_eq!(names.first().unwrap(), "blob-00");
    let lists = fake.storage_requests();
    assert_eq!(lists.len(), 4);
    assert_eq!(
        lists.get(1).unwrap().query.get("pageToken").unwrap(),
        "page-3"
    );
    let first = lists.first().unwrap();
    assert_eq!(first.query.get("prefix").unwrap(), "n/");
    assert_eq!(first.query.get("delimiter").unwrap(), "/");
}

#[tokio::test]
async fn listings_are_bounded() {
    let (fake, blobs) = start("n").await;
    fake.with(|s| {
        for i in 0..MAX_LIST_LEN {
            s.objects.insert(format!("n/b{i}"), vec![]);
        }
    });
    assert_eq!(blobs.list("").await.unwrap().len(), MAX_LIST_LEN);
    fake.with(|s| s.objects.insert("n/one-more".into(), vec![]));
    let err = gcs(blobs.list("").await.unwrap_err());
    assert!(
        matches!(&err, GcsError::TooManyNames { target, limit } if target == "gs://custody-test/n/*" && *limit == MAX_LIST_LEN),
        "{err}"
    );
}

/// What a hostile server lists is checked, and it cannot keep the node paging forever.
#[tokio::test]
async fn hostile_listings_are_refused() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            serde_json::json!({"items": [{"name": "other/a"}]}),
            "outside",
        ),
        (serde_json::json!({"items": [{"name": "n/x"}]}), "outside"),
        (
            serde_json::json!({"items": [{"name": "n/a b"}]}),
            "not a blob name",
        ),
        (
            serde_json::json!({"items": [{"name": "n/a/b"}]}),
            "not a blob name",
        ),
        (serde_json::json!({"items": "nope"}), "JSON"),
        (
            serde_json::json!({"items": [], "nextPageToken": "t".repeat(list::MAX_PAGE_TOKEN_LEN + 1)}),
            "page token",
        ),
        (
            serde_json::json!({"items": [], "nextPageToken": "again"}),
            "pages",
        ),
    ];
    for (page, expected) in cases {
        let (fake, blobs) = start("n").await;
        fake.hook(move |r| (!r.is_token()).then(|| Answer::json(200, page.clone())));
        let err = gcs(blobs.list("a").await.unwrap_err());
        assert!(
            matches!(
                err,
                GcsError::Malformed {
                    op: Operation::List,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[tokio::test]
async fn names_are_percent_encoded() {
    let prefix = "custody nodes/node+1/ü%";
    let (fake, blobs) = start(prefix).await;
    blobs.put("share-1.v2", b"s".to_vec()).await.unwrap();
    assert_eq!(blobs.get("share-1.v2").await.unwrap(), Some(b"s".to_vec()));
    assert_eq!(blobs.list("share").await.unwrap(), ["share-1.v2"]);
    blobs.delete("share-1.v2").await.unwrap();

    let targets: Vec<String> = fake
        .storage_requests()
        .into_iter()
        .map(|r| r.target)
        .collect();
    let encoded = "custody%20nodes%2Fnode%2B1%2F%C3%BC%25%2Fshare-1.v2";
    assert_eq!(
        targets,
        [
            format!("/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={encoded}"),
            format!("/storage/v1/b/{BUCKET}/o/{encoded}?alt=media"),
            format!(
                "/storage/v1/b/{BUCKET}/o?prefix=custody%20nodes%2Fnode%2B1%2F%C3%BC%25%2Fshare\
                 &delimiter=%2F&maxResults=1000&fields=items%28name%29%2CnextPageToken"
            ),
            format!("/storage/v1/b/{BUCKET}/o/{encoded}"),
        ]
    );
    assert!(fake.with(|s| s.objects.is_empty()));
}

#[tokio::test]
async fn tokens_are_cached_and_sent() {
    let (fake, blobs) = start("n").await;
    blobs.put("a", vec![1]).await.unwrap();
    blobs.get("a").await.unwrap();
    blobs.list("").await.unwrap();
    blobs.clone().delete("a").await.unwrap();
    assert_eq!(fake.with(|s| s.tokens_issued), 1);
    let requests = fake.with(|s| s.requests.clone());
    let token = requests.first().unwrap();
    assert!(token.is_token());
    assert_eq!(token.method, "GET");
    assert_eq!(token.headers.get("metadata-flavor").unwrap(), "Google");
    assert!(!token.headers.contains_key("authorization"));
    for r in requests.iter().skip(1) {
        assert_eq!(r.headers.get("authorization").unwrap(), "Bearer tok-1");
        assert!(!r.headers.contains_key("metadata-flavor"));
    }
    assert!(!format!("{blobs:?}").contains("tok-1"));
}

#[tokio::test]
async fn short_lived_tokens_are_fetched_again() {
    let (fake, blobs) = start("n").await;
    fake.with(|s| s.expires_in = REFRESH_MARGIN.as_secs());
    blobs.put("a", vec![1]).await.unwrap();
    blobs.get("a").await.unwrap();
    assert_eq!(fake.with(|s| s.tokens_issued), 2);
    let auth: Vec<String> = fake
        .storage_requests()
        .iter()
        .map(|r| r.headers.get("authorization").unwrap().clone())
        .collect();
    assert_eq!(auth, ["Bearer tok-1", "Bearer tok-2"]);
}

#[tokio::test]
async fn a_refused_token_is_replaced_once() {
    let (fake, blobs) = start("n").await;
    blobs.put("a", vec![1]).await.unwrap();
    // The server revokes the token: the next request is refused, a new token is fetched
    // and the request made again.
    fake.with(|s| s.accepted = Some("revoked".into()));
    assert_eq!(blobs.get("a").await.unwrap(), Some(vec![1]));
    assert_eq!(fake.with(|s| s.tokens_issued), 2);

    // A server that refuses every token gets one retry, not a loop.
    fake.hook(|r| (!r.is_token()).then(|| Answer::error(401, "Invalid Credentials")));
    let before = fake.storage_requests().len();
    let err = gcs(blobs.get("a").await.unwrap_err());
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(fake.storage_requests().len(), before + 2);
    assert_eq!(fake.with(|s| s.tokens_issued), 3);
}

#[tokio::test]
async fn metadata_server_failures_are_token_errors() {
    let (fake, blobs) = start("n").await;
    fake.hook(|r| {
        r.is_token()
            .then(|| Answer::new(500, "metadata unavailable"))
    });
    let err = gcs(blobs.get("a").await.unwrap_err());
    assert!(
        matches!(&err, GcsError::Status { op: Operation::Token, status: 500, target, .. }
            if target == &format!("{}{}", fake.url(), token::TOKEN_PATH)),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("fetch an access token from http://")
    );
    assert!(
        err.to_string()
            .ends_with(": HTTP status 500: \"metadata unavailable\"")
    );

    // A token in an answer of the wrong kind is not shown.
    fake.hook(|r| {
        r.is_token().then(|| {
            Answer::json(
                203,
                serde_json::json!({"access_token": "secret-token", "expires_in": 3600,
                    "token_type": "Bearer"}),
            )
        })
    });
    let err = gcs(blobs.get("a").await.unwrap_err());
    assert!(
        matches!(
            err,
            GcsError::Status {
                op: Operation::Token,
                status: 203,
                message: None,
                ..
            }
        ),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("secret"));

    // A token response over the limit is refused; one of exactly the limit is read.
    for len in [MAX_TOKEN_RESPONSE_LEN + 1, MAX_TOKEN_RESPONSE_LEN] {
        let (fake, blobs) = start("n").await;
        let json = r#"{"access_token":"tok","expires_in":3600,"token_type":"Bearer"}"#;
        let body = format!("{json}{}", " ".repeat(len - json.len()));
        fake.hook(move |r| r.is_token().then(|| Answer::new(200, body.clone())));
        let result = blobs.get("a").await;
        if len == MAX_TOKEN_RESPONSE_LEN {
            // The token was read; storage refuses it (the fake did not issue it).
            assert_eq!(gcs(result.unwrap_err()).status(), Some(401));
        } else {
            let err = gcs(result.unwrap_err());
            assert!(
                matches!(err, GcsError::Oversized { op: Operation::Token, limit, .. } if limit == MAX_TOKEN_RESPONSE_LEN),
                "{err}"
            );
        }
    }

    // A token that is not a bearer token never reaches a header.
    let (fake, blobs) = start("n").await;
    fake.hook(|r| {
        r.is_token().then(|| {
            Answer::json(
                200,
                serde_json::json!({"access_token": "a\r\nX-Evil: 1", "expires_in": 3600,
                    "token_type": "Bearer"}),
            )
        })
    });
    let err = gcs(blobs.get("a").await.unwrap_err());
    assert!(
        matches!(
            err,
            GcsError::Malformed {
                op: Operation::Token,
                reason: Malformed::TokenValue { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(fake.storage_requests().is_empty());
}

#[test]
fn token_responses_are_checked() {
    let parse = |v: serde_json::Value| parse_token_response(v.to_string().as_bytes());
    let (token, lifetime) = parse(serde_json::json!({"access_token": "ya29.a0-_~+/b==",
        "expires_in": 3599, "token_type": "Bearer", "extra": 1}))
    .unwrap();
    assert_eq!(token.expose(), "ya29.a0-_~+/b==");
    assert_eq!(lifetime, Duration::from_secs(3599));
    assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
    let (_, lifetime) = parse(
        serde_json::json!({"access_token": "t", "expires_in": u64::MAX, "token_type": "bearer"}),
    )
    .unwrap();
    assert_eq!(lifetime, token::MAX_LIFETIME);

    let max = "t".repeat(MAX_ACCESS_TOKEN_LEN);
    assert!(
        parse(serde_json::json!({"access_token": max, "expires_in": 1, "token_type": "Bearer"}))
            .is_ok()
    );
    for bad in [
        serde_json::json!({"access_token": format!("{max}t"), "expires_in": 1, "token_type": "Bearer"}),
        serde_json::json!({"access_token": "", "expires_in": 1, "token_type": "Bearer"}),
        serde_json::json!({"access_token": "==", "expires_in": 1, "token_type": "Bearer"}),
        serde_json::json!({"access_token": "a b", "expires_in": 1, "token_type": "Bearer"}),
        serde_json::json!({"access_token": "a=b", "expires_in": 1, "token_type": "Bearer"}),
        serde_json::json!({"access_token": "ä", "expires_in": 1, "token_type": "Bearer"}),
    ] {
        let err = parse(bad.clone()).unwrap_err();
        assert!(matches!(err, Malformed::TokenValue { .. }), "{bad}");
        // The refused value is not shown.
        assert_eq!(
            err.to_string(),
            "access token is empty, longer than 4096 bytes or not a bearer token"
        );
    }
    assert!(matches!(
        parse(serde_json::json!({"access_token": "t", "expires_in": 1, "token_type": "MAC"})),
        Err(Malformed::TokenType(t)) if t == "MAC"
    ));
    for bad in [
        serde_json::json!({"access_token": "t", "token_type": "Bearer"}),
        serde_json::json!({"access_token": "t", "expires_in": -1, "token_type": "Bearer"}),
        serde_json::json!(["t"]),
    ] {
        assert!(matches!(parse(bad), Err(Malformed::Json(_))));
    }
    assert!(matches!(
        parse_token_response(b"not json"),
        Err(Malformed::Json(_))
    ));
}

#[test]
fn the_token_cache_refreshes_a_minute_before_expiry() {
    let token = || AccessToken::new(Zeroizing::new("t".into())).unwrap();
    let t0 = Instant::now();
    let mut cache = TokenCache::default();
    assert!(cache.valid(t0).is_none());
    cache.store(token(), Duration::from_secs(3600), t0);
    assert!(cache.valid(t0).is_some());
    assert!(cache.valid(t0 + Duration::from_secs(3539)).is_some());
    assert!(cache.valid(t0 + Duration::from_secs(3540)).is_none());
    cache.forget();
    assert!(cache.valid(t0).is_none());

    // A token living a minute or less is used once, never cached.
    for lifetime in [0, 59, 60] {
        cache.store(token(), Duration::from_secs(lifetime), t0);
        assert!(cache.valid(t0).is_none(), "{lifetime}");
    }
    cache.store(token(), Duration::from_secs(61), t0);
    assert!(cache.valid(t0).is_some());
}

#[test]
fn configurations_are_checked() {
    let ok = |c: GcsConfig| GcsBlobs::new(c).map(|_| ());
    let base = || GcsConfig::new("custody-blobs", "node-1");
    ok(base()).unwrap();
    for bucket in ["abc", "a.b-c_d", &"a".repeat(63), "0bucket9"] {
        ok(GcsConfig::new(bucket, "")).unwrap();
    }
    for bucket in [
        "ab",
        "Upper",
        "-abc",
        "abc-",
        "a..b",
        "a/b",
        &"a".repeat(64),
        "bücket",
    ] {
        assert!(
            matches!(
                ok(GcsConfig::new(bucket, "")),
                Err(ConfigError::Bucket { .. })
            ),
            "{bucket}"
        );
    }
    for prefix in ["", "a", "nodes/node 1/ü+%", &"p".repeat(MAX_PREFIX_LEN)] {
        ok(GcsConfig::new("abc", prefix)).unwrap();
    }
    for prefix in [
        "/a",
        "a/",
        "a//b",
        "a/./b",
        "..",
        "a\nb",
        "a#b",
        "a?b",
        "a*",
        "[a]",
        &"p".repeat(MAX_PREFIX_LEN + 1),
    ] {
        assert!(
            matches!(
                ok(GcsConfig::new("abc", prefix)),
                Err(ConfigError::Prefix { .. })
            ),
            "{prefix:?}"
        );
    }
    let endpoint = |url: &str| GcsConfig {
        endpoint: url.into(),
        ..base()
    };
    for url in [
        "https://storage.googleapis.com",
        "https://storage.googleapis.com/",
        "https://private.example:8443",
        "http://127.0.0.1:4443",
        "http://localhost:4443",
        "http://[::1]:4443",
    ] {
        ok(endpoint(url)).unwrap();
    }
    for url in [
        "http://storage.googleapis.com",
        "http://10.0.0.1",
        "ftp://storage.googleapis.com",
        "https://user:pw@storage.googleapis.com",
        "https://storage.googleapis.com/storage/v1",
        "https://storage.googleapis.com?x=1",
        "storage.googleapis.com",
        "not a url",
    ] {
        assert!(
            matches!(
                ok(endpoint(url)),
                Err(ConfigError::Endpoint {
                    what: "storage",
                    ..
                })
            ),
            "{url}"
        );
    }
    let metadata = |url: &str| GcsConfig {
        token_source: TokenSource::Metadata {
            endpoint: url.into(),
        },
        ..base()
    };
    ok(metadata("http://169.254.169.254")).unwrap();
    ok(metadata("http://metadata.google.internal")).unwrap();
    assert!(matches!(
        ok(metadata("http://169.254.169.254/computeMetadata")),
        Err(ConfigError::Endpoint {
            what: "metadata",
            ..
        })
    ));
    for timeout in [Duration::ZERO, Duration::from_secs(601)] {
        assert_eq!(
            ok(GcsConfig { timeout, ..base() }),
            Err(ConfigError::Timeout(timeout))
        );
    }
    assert_eq!(
        GcsConfig::new("b", "p").endpoint,
        "https://storage.googleapis.com"
    );
    assert_eq!(TokenSource::default(), TokenSource::metadata());
}

/// The bucket is as untrusted as the parent: the sealed layer above refuses what it
/// replays.
#[tokio::test]
async fn the_sealed_store_detects_a_rolled_back_object() {
    let (fake, blobs) = start("node-1").await;
    let key = || DataKey::from_bytes(&[3; 32]);
    let mut store = SealedStore::open(blobs.clone(), key(), "node-1")
        .await
        .unwrap();
    store.put("share", b"v1").await.unwrap();
    let v1 = fake.with(|s| s.objects.get("node-1/share").cloned().unwrap());
    store.put("share", b"v2").await.unwrap();
    let store = SealedStore::open(blobs, key(), "node-1").await.unwrap();
    assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v2");
    fake.with(|s| s.objects.insert("node-1/share".into(), v1));
    assert!(matches!(
        store.get("share").await,
        Err(SealError::Rollback { .. })
    ));
}
