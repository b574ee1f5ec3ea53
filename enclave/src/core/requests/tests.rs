use super::*;
use ids::{KeyId, OperatorId};
use manifest::OperatorKey;
use protocol::authority::{Action, Payload, Request, request_id};

struct Cluster {
    keys: Vec<OperatorKey>,
    manifest: manifest::Manifest,
    hash: [u8; 32],
}

fn cluster() -> Cluster {
    let keys: Vec<OperatorKey> = (0..3).map(|_| OperatorKey::generate().unwrap()).collect();
    let body = serde_json::json!({
        "version": 1, "threshold": 2,
        "operators": keys.iter().enumerate().map(|(i, k)| serde_json::json!({
            "id": format!("operator-{i}"), "public_key": k.public_key_hex()
        })).collect::<Vec<_>>(),
        "nodes": [{"id": "n1", "provider": "sim", "address": "127.0.0.1:1",
            "measurements": [{"8": "00".repeat(48)}]}],
        "placement": {"allow_provider_quorum": true},
    });
    let body = serde_json::to_vec(&body).unwrap();
    Cluster {
        keys,
        manifest: manifest::Manifest::parse(&body).unwrap(),
        hash: *manifest::hash_of(&body).as_bytes(),
    }
}

const NOW: u64 = 1_800_000_000_000;
const TTL: u64 = 3_600_000;

fn request(c: &Cluster, by: usize, nonce: u8) -> (Authorized, Authority) {
    let bytes = Request::new(
        &c.hash,
        &KeyId::new("treasury").unwrap(),
        Action::Sign {
            path: None,
            payload: Payload::Digest("11".repeat(32)),
            signers: Vec::new(),
        },
        &OperatorId::new(format!("operator-{by}")).unwrap(),
        NOW,
        TTL,
        &[nonce; 16],
    )
    .encode()
    .unwrap();
    let id = request_id(&bytes);
    let authority = Authority::new(
        bytes,
        Approval::sign(&format!("operator-{by}"), &c.keys[by], &id),
    );
    (
        authority.verify(&c.manifest, &c.hash, NOW).unwrap(),
        authority,
    )
}

#[test]
fn approvals_accumulate_until_the_request_is_carried_out() {
    let c = cluster();
    let mut book = RequestBook::default();
    let (authorized, authority) = request(&c, 0, 1);
    let id = *authorized.id();
    book.submit(&authorized, authority.clone(), "sign digest", NOW)
        .unwrap();
    // The same request again changes nothing.
    book.submit(&authorized, authority, "sign digest", NOW)
        .unwrap();
    assert_eq!(book.len(), 1);
    let approved = book
        .approve(&id, Approval::sign("operator-1", &c.keys[1], &id), NOW)
        .unwrap();
    assert_eq!(approved.approvals().len(), 2);
    // Checked whole again by the caller, which then records it.
    approved.verify(&c.manifest, &c.hash, NOW).unwrap();
    assert!(book.start(&id, NOW));
    // A second approval while it runs does not start it twice.
    assert!(!book.start(&id, NOW));
    assert!(matches!(
        book.approve(&id, Approval::sign("operator-2", &c.keys[2], &id), NOW),
        Err(BookError::Running { .. })
    ));
    let mut signed = RequestAnswer::new(&id, RequestStatus::Signed);
    signed.rule = Some("small".into());
    book.update(&id, approved, signed.clone());
    assert_eq!(book.get(&id).unwrap().answer, signed);
    assert!(matches!(
        book.approve(&id, Approval::sign("operator-2", &c.keys[2], &id), NOW),
        Err(BookError::Closed {
            status: RequestStatus::Signed,
            ..
        })
    ));
    let unknown = [9u8; 32];
    assert!(matches!(
        book.approve(
            &unknown,
            Approval::sign("operator-2", &c.keys[2], &unknown),
            NOW
        ),
        Err(BookError::Unknown(_))
    ));
}

#[test]
fn expired_requests_take_no_approval_and_are_forgotten_later() {
    let c = cluster();
    let mut book = RequestBook::default();
    let (authorized, authority) = request(&c, 0, 1);
    let id = *authorized.id();
    book.submit(&authorized, authority, "sign digest", NOW)
        .unwrap();
    let expiry = NOW + TTL;
    assert!(
        book.approve(&id, Approval::sign("operator-1", &c.keys[1], &id), expiry)
            .is_ok()
    );
    assert!(matches!(
        book.approve(
            &id,
            Approval::sign("operator-1", &c.keys[1], &id),
            expiry + 1
        ),
        Err(BookError::Expired { .. })
    ));
    assert!(!book.start(&id, expiry + 1));
    assert_eq!(
        book.list(expiry + 1, 10)[0].answer.status,
        RequestStatus::Expired
    );
    book.prune(expiry + KEEP_AFTER_EXPIRY_MS);
    assert_eq!(book.len(), 1);
    book.prune(expiry + KEEP_AFTER_EXPIRY_MS + 1);
    assert!(book.is_empty());
}

#[test]
fn one_requester_cannot_fill_the_book() {
    let c = cluster();
    let mut book = RequestBook::default();
    for n in 0..MAX_PER_REQUESTER {
        let (authorized, authority) = request(&c, 0, n as u8);
        book.submit(&authorized, authority, "sign digest", NOW)
            .unwrap();
    }
    let (authorized, authority) = request(&c, 0, 200);
    assert!(matches!(
        book.submit(&authorized, authority, "sign digest", NOW),
        Err(BookError::RequesterFull { .. })
    ));
    // Another operator still gets in.
    let (authorized, authority) = request(&c, 1, 200);
    book.submit(&authorized, authority, "sign digest", NOW)
        .unwrap();
}

#[test]
fn the_book_is_full_at_its_limit() {
    let c = cluster();
    let mut book = RequestBook::default();
    let mut nonce = 0u8;
    'fill: for by in 0..3 {
        for _ in 0..MAX_PER_REQUESTER {
            if book.len() == MAX_HELD {
                break 'fill;
            }
            let (authorized, authority) = request(&c, by, nonce);
            nonce += 1;
            book.submit(&authorized, authority, "sign digest", NOW)
                .unwrap();
        }
    }
    // Three operators of 16 each hold 48: the limit of the whole book is checked too.
    assert_eq!(book.len(), 3 * MAX_PER_REQUESTER.min(MAX_HELD / 3));
    let stored = RequestBook::decode(&book.encode().unwrap()).unwrap();
    assert_eq!(stored, book);
    let mut full = book.clone();
    let spare = MAX_HELD - full.len();
    let extra = cluster();
    for n in 0..spare {
        let (authorized, authority) = request(&extra, n % 3, n as u8);
        // Another cluster's requests, only to fill the book to exactly its limit.
        full.held.insert(
            *authorized.id(),
            Held {
                authority,
                key_id: "treasury".into(),
                requester: format!("other-{n}"),
                action: "sign digest".into(),
                expires_ms: NOW + TTL,
                received_ms: NOW,
                answer: RequestAnswer::new(authorized.id(), RequestStatus::Pending),
                running: false,
            },
        );
    }
    assert_eq!(full.len(), MAX_HELD);
    let (authorized, authority) = request(&c, 2, 250);
    assert_eq!(
        full.submit(&authorized, authority, "sign digest", NOW)
            .unwrap_err(),
        BookError::Full
    );
    // Stored, the limit holds too.
    let over = Stored {
        version: VERSION,
        held: full
            .held
            .values()
            .cloned()
            .chain(book.held.values().next().cloned())
            .collect(),
    };
    assert!(RequestBook::decode(&serde_json::to_vec(&over).unwrap()).is_err());
}
