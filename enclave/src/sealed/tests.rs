use super::*;

const NODE: &str = "node-1";
const KEY: [u8; 32] = [0x42; 32];

const STORE: StoreId = StoreId([0x5e; STORE_ID_LEN]);

fn at<'a>(node_id: &'a str, name: &'a str) -> BlobPlace<'a> {
    BlobPlace {
        node_id,
        store: &STORE,
        name,
    }
}

fn key() -> DataKey {
    DataKey::from_bytes(&KEY)
}

async fn store(blobs: &MemoryBlobs) -> SealedStore<MemoryBlobs> {
    SealedStore::open(blobs.clone(), key(), NODE).await.unwrap()
}

async fn raw(blobs: &MemoryBlobs, name: &str) -> Vec<u8> {
    blobs.get(name).await.unwrap().unwrap()
}

#[test]
fn seal_open_round_trip_and_format() {
    let blob = seal(&key(), &at(NODE, "share"), 7, b"secret share").unwrap();
    assert_eq!(blob.len(), MIN_BLOB_LEN + b"secret share".len());
    assert_eq!(blob[0], VERSION);
    assert_eq!(blob[1..9], 7u64.to_be_bytes());
    let (counter, pt) = open(&key(), &at(NODE, "share"), &blob).unwrap();
    assert_eq!(counter, 7);
    assert_eq!(pt.as_slice(), b"secret share");
    // Same input, fresh nonce.
    assert_ne!(
        blob,
        seal(&key(), &at(NODE, "share"), 7, b"secret share").unwrap()
    );
    let (_, empty) = open(
        &key(),
        &at(NODE, "e"),
        &seal(&key(), &at(NODE, "e"), 1, b"").unwrap(),
    )
    .unwrap();
    assert!(empty.is_empty());
}

#[test]
fn any_flipped_bit_is_tampered() {
    let blob = seal(&key(), &at(NODE, "share"), 3, b"secret share").unwrap();
    for i in 1..blob.len() {
        for bit in [0x01, 0x80] {
            let mut bad = blob.clone();
            bad[i] ^= bit;
            assert!(
                matches!(
                    open(&key(), &at(NODE, "share"), &bad),
                    Err(SealError::Tampered { ref name }) if name == "share"
                ),
                "byte {i}"
            );
        }
    }
    // A blob of the earlier format (no store id) is not read.
    let mut bad = blob.clone();
    bad[0] = 1;
    assert!(matches!(
        open(&key(), &at(NODE, "share"), &bad),
        Err(SealError::UnsupportedVersion(1))
    ));
}

#[test]
fn another_name_node_or_key_is_tampered() {
    let blob = seal(&key(), &at(NODE, "share"), 1, b"x").unwrap();
    for (node, name, k) in [
        (NODE, "other", KEY),
        ("node-2", "share", KEY),
        (NODE, "share", [0x43; 32]),
    ] {
        assert!(matches!(
            open(&DataKey::from_bytes(&k), &at(node, name), &blob),
            Err(SealError::Tampered { .. })
        ));
    }
}

#[test]
fn another_store_under_the_same_key_is_tampered() {
    let blob = seal(&key(), &at(NODE, "share"), 1, b"x").unwrap();
    let earlier = StoreId([0x11; STORE_ID_LEN]);
    let place = BlobPlace {
        node_id: NODE,
        store: &earlier,
        name: "share",
    };
    assert!(matches!(
        open(&key(), &place, &blob),
        Err(SealError::Tampered { .. })
    ));
    assert_ne!(StoreId::generate().unwrap(), StoreId::generate().unwrap());
}

/// The parent wipes the store; the node recovers its key from peers and starts a new
/// store under it. A blob of the earlier store, at the counter the new store's next
/// write of that name would use, must not pass as that write.
#[tokio::test]
async fn a_blob_of_an_earlier_store_under_the_same_key_is_refused() {
    let blobs = MemoryBlobs::new();
    let mut earlier = store(&blobs).await;
    earlier.put("key-a", b"old share").await.unwrap();
    let old_blob = raw(&blobs, "key-a").await;
    let old_id = *earlier.index().store_id();
    drop(earlier);

    let wiped = MemoryBlobs::new();
    let mut fresh = store(&wiped).await;
    assert_ne!(fresh.index().store_id(), &old_id);
    fresh.put("node-info", b"{}").await.unwrap();
    assert_eq!(fresh.index().next_counter("key-a").unwrap(), 1);
    wiped.put("key-a", old_blob.clone()).await.unwrap();
    assert!(matches!(
        fresh.get("key-a").await,
        Err(SealError::Tampered { ref name }) if name == "key-a"
    ));
    // Its id survives a restart, and the refusal with it.
    let restarted = SealedStore::open(wiped.clone(), key(), NODE).await.unwrap();
    assert_eq!(restarted.index().store_id(), fresh.index().store_id());
    assert!(matches!(
        restarted.get("key-a").await,
        Err(SealError::Tampered { .. })
    ));
    // The same blob in its own store still opens: the refusal is the store id's.
    let own = SealedStore::open(blobs.clone(), key(), NODE).await.unwrap();
    assert_eq!(
        own.get("key-a").await.unwrap().unwrap().as_slice(),
        b"old share"
    );
}

#[test]
fn truncated_and_oversize_blobs() {
    let blob = seal(&key(), &at(NODE, "n"), 1, b"").unwrap();
    assert!(matches!(
        open(&key(), &at(NODE, "n"), &[]),
        Err(SealError::Malformed { len: 0 })
    ));
    for len in 1..MIN_BLOB_LEN {
        assert!(matches!(
            open(&key(), &at(NODE, "n"), &blob[..len]),
            Err(SealError::Malformed { len: l }) if l == len
        ));
    }
    open(&key(), &at(NODE, "n"), &blob).unwrap();

    // Exactly the largest plaintext fits MAX_BLOB_LEN; one more byte does not.
    let big = vec![7u8; MAX_PLAINTEXT_LEN];
    let blob = seal(&key(), &at(NODE, "n"), 1, &big).unwrap();
    assert_eq!(blob.len(), MAX_BLOB_LEN);
    assert_eq!(
        open(&key(), &at(NODE, "n"), &blob).unwrap().1.len(),
        MAX_PLAINTEXT_LEN
    );
    assert!(matches!(
        seal(&key(), &at(NODE, "n"), 1, &vec![7u8; MAX_PLAINTEXT_LEN + 1]),
        Err(SealError::TooLarge { .. })
    ));
    let mut over = blob;
    over.push(0);
    assert!(matches!(
        open(&key(), &at(NODE, "n"), &over),
        Err(SealError::TooLarge { len, .. }) if len == MAX_BLOB_LEN + 1
    ));
}

#[test]
fn long_node_id_is_refused() {
    let long = "n".repeat(256);
    assert!(matches!(
        seal(&key(), &at(&long, "n"), 1, b""),
        Err(SealError::FieldTooLong { len: 256, .. })
    ));
    seal(&key(), &at(&long[..255], "n"), 1, b"").unwrap();
}

#[test]
fn data_key_debug_is_redacted() {
    assert_eq!(format!("{:?}", key()), "DataKey(<redacted>)");
    let a = DataKey::generate().unwrap();
    let b = DataKey::generate().unwrap();
    assert_ne!(a.expose_secret(), b.expose_secret());
    let c = DataKey::from_slice(a.expose_secret()).unwrap();
    assert_eq!(c.expose_secret(), a.expose_secret());
    assert!(matches!(
        DataKey::from_slice(&[0; 31]),
        Err(SealError::KeyLength(31))
    ));
}

#[test]
fn index_rule() {
    let mut index = SealedIndex::new(STORE);
    let (n1, n2) = ([1; NONCE_LEN], [2; NONCE_LEN]);
    // Unknown name: only the first write, uncommitted, is acceptable.
    assert_eq!(index.check("a", 1, &n1).unwrap(), Freshness::Uncommitted);
    assert!(matches!(
        index.check("a", 2, &n1),
        Err(SealError::Inconsistent { .. })
    ));
    assert!(matches!(
        index.check("a", 0, &n1),
        Err(SealError::Rollback { .. })
    ));

    index.record_put("a", 1, n1).unwrap();
    index.record_put("a", 2, n2).unwrap();
    assert_eq!(index.counter(), 2);
    assert_eq!(index.check("a", 2, &n2).unwrap(), Freshness::Current);
    assert_eq!(index.check("a", 3, &n1).unwrap(), Freshness::Uncommitted);
    assert!(matches!(
        index.check("a", 1, &n1),
        Err(SealError::Rollback {
            found: 1,
            expected_at_least: 2,
            ..
        })
    ));
    assert!(matches!(
        index.check("a", 2, &n1),
        Err(SealError::Inconsistent {
            found: 2,
            committed: 2,
            ..
        })
    ));
    assert!(matches!(
        index.check("a", 4, &n1),
        Err(SealError::Inconsistent { found: 4, .. })
    ));

    assert!(index.record_delete("a").unwrap());
    assert_eq!(index.committed("a"), None);
    for counter in 1..=3 {
        assert_eq!(index.check("a", counter, &n1).unwrap(), Freshness::Deleted);
    }
    assert_eq!(index.next_counter("a").unwrap(), 4);
    assert_eq!(index.check("a", 4, &n1).unwrap(), Freshness::Uncommitted);
    assert!(!index.record_delete("a").unwrap());

    let sealed = index.seal(&key(), NODE).unwrap();
    assert_eq!(SealedIndex::open(&key(), NODE, &sealed).unwrap(), index);
}

#[test]
fn index_decoding_refuses_garbage() {
    let mut index = SealedIndex::new(STORE);
    index.record_put("a", 1, [1; NONCE_LEN]).unwrap();
    index.record_delete("b").unwrap();
    let bytes = index.encode().unwrap();
    assert_eq!(
        SealedIndex::decode(&bytes).unwrap(),
        (STORE, index.entries.clone())
    );
    for len in 0..bytes.len() {
        assert!(SealedIndex::decode(&bytes[..len]).is_err(), "{len}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(SealedIndex::decode(&trailing).is_err());
    let mut bad_format = bytes.clone();
    bad_format[0] = 9;
    assert!(SealedIndex::decode(&bad_format).is_err());
    // The index's own all-zero id is never a store's id.
    let mut zero_id = bytes;
    zero_id[1..1 + STORE_ID_LEN].fill(0);
    assert!(matches!(
        SealedIndex::decode(&zero_id),
        Err(SealError::CorruptIndex(_))
    ));
}

#[tokio::test]
async fn store_round_trip_list_delete() {
    let blobs = MemoryBlobs::new();
    let mut store = store(&blobs).await;
    assert!(store.list().is_empty());
    assert_eq!(store.get("share").await.unwrap(), None);
    assert_eq!(store.put("share", b"v1").await.unwrap(), 1);
    assert_eq!(store.put("share", b"v2").await.unwrap(), 2);
    assert_eq!(store.put("other", b"").await.unwrap(), 1);
    assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v2");
    assert_eq!(store.get("other").await.unwrap().unwrap().as_slice(), b"");
    assert_eq!(store.list(), ["other", "share"]);
    assert_eq!(store.index().counter(), 3);

    assert!(store.delete("share").await.unwrap());
    assert!(!store.delete("share").await.unwrap());
    assert_eq!(store.get("share").await.unwrap(), None);
    assert_eq!(store.list(), ["other"]);
    assert_eq!(blobs.list("").await.unwrap(), ["index", "other"]);
    // Each delete tombstones the counter a write would have used: 3, then 4.
    assert_eq!(store.put("share", b"v3").await.unwrap(), 5);
    assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v3");
}

#[tokio::test]
async fn restart_reads_everything_back() {
    let blobs = MemoryBlobs::new();
    let mut first = store(&blobs).await;
    for i in 0..5u8 {
        first.put(&format!("share-{i}"), &[i; 40]).await.unwrap();
    }
    first.put("share-0", b"updated").await.unwrap();
    first.delete("share-4").await.unwrap();
    let index = first.index().clone();
    drop(first);

    let second = store(&blobs).await;
    assert_eq!(second.index(), &index);
    assert_eq!(second.list(), ["share-0", "share-1", "share-2", "share-3"]);
    assert_eq!(
        second.get("share-0").await.unwrap().unwrap().as_slice(),
        b"updated"
    );
    for i in 1..4u8 {
        let value = second.get(&format!("share-{i}")).await.unwrap().unwrap();
        assert_eq!(value.as_slice(), [i; 40]);
    }
    assert_eq!(second.get("share-4").await.unwrap(), None);

    // Another key or node id cannot open the index: an error, not an empty store.
    let other_key = SealedStore::open(blobs.clone(), DataKey::from_bytes(&[1; 32]), NODE).await;
    assert!(matches!(other_key, Err(SealError::Tampered { ref name }) if name == INDEX_NAME));
    let other_node = SealedStore::open(blobs.clone(), key(), "node-2").await;
    assert!(matches!(other_node, Err(SealError::Tampered { .. })));
}

#[tokio::test]
async fn a_flipped_byte_anywhere_is_refused() {
    let blobs = MemoryBlobs::new();
    let mut store = store(&blobs).await;
    store.put("share", b"secret share").await.unwrap();
    let good = raw(&blobs, "share").await;
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x04;
        blobs.put("share", bad).await.unwrap();
        let err = store.get("share").await.unwrap_err();
        assert!(
            matches!(
                err,
                SealError::Tampered { .. } | SealError::UnsupportedVersion(_)
            ),
            "byte {i}: {err}"
        );
    }
    blobs.put("share", good).await.unwrap();
    assert_eq!(
        store.get("share").await.unwrap().unwrap().as_slice(),
        b"secret share"
    );
}

#[tokio::test]
async fn a_blob_copied_under_another_name_is_refused() {
    let blobs = MemoryBlobs::new();
    let mut store = store(&blobs).await;
    store.put("share-a", b"a").await.unwrap();
    store.put("share-b", b"b").await.unwrap();
    blobs
        .put("share-b", raw(&blobs, "share-a").await)
        .await
        .unwrap();
    assert!(matches!(
        store.get("share-b").await,
        Err(SealError::Tampered { ref name }) if name == "share-b"
    ));
    // Also under a name the index does not know.
    blobs
        .put("share-c", raw(&blobs, "share-a").await)
        .await
        .unwrap();
    assert!(matches!(
        store.get("share-c").await,
        Err(SealError::Tampered { .. })
    ));
}

#[tokio::test]
async fn another_nodes_blob_is_refused() {
    let blobs = MemoryBlobs::new();
    let mut store = store(&blobs).await;
    store.put("share", b"mine").await.unwrap();
    let theirs = MemoryBlobs::new();
    let mut other = SealedStore::open(theirs.clone(), key(), "node-2")
        .await
        .unwrap();
    other.put("share", b"theirs").await.unwrap();
    blobs
        .put("share", raw(&theirs, "share").await)
        .await
        .unwrap();
    assert!(matches!(
        store.get("share").await,
        Err(SealError::Tampered { .. })
    ));
}

#[tokio::test]
async fn replaying_an_older_version_is_rollback() {
    let blobs = MemoryBlobs::new();
    let mut store = store(&blobs).await;
    store.put("share", b"v1").await.unwrap();
    let v1 = raw(&blobs, "share").await;
    store.put("share", b"v2").await.unwrap();
    store.put("share", b"v3").await.unwrap();
    blobs.put("share", v1.clone()).await.unwrap();
    assert!(matches!(
        store.get("share").await,
        Err(SealError::Rollback { ref name, found: 1, expected_at_least: 3 }) if name == "share"
    ));
    // And after a restart.
    let restarted = SealedStore::open(blobs.clone(), key(), NODE).await.unwrap();
    assert!(matches!(
        restarted.get("share").await,
        Err(SealError::Rollback { .. })
    ));
    // A deleted blob put back reads as absent.
    let mut store = restarted;
    store.delete("share").await.unwrap();
    blobs.put("share", v1).await.unwrap();
    assert_eq!(store.get("share").await.unwrap(), None);
}

#[tokio::test]
async fn a_tampered_or_replaced_index_is_an_error() {
    let blobs = MemoryBlobs::new();
    let mut store = store(&blobs).await;
    store.put("share", b"v1").await.unwrap();
    let index = raw(&blobs, INDEX_NAME).await;
    for i in 0..index.len() {
        let mut bad = index.clone();
        bad[i] ^= 0x10;
        blobs.put(INDEX_NAME, bad).await.unwrap();
        assert!(
            SealedStore::open(blobs.clone(), key(), NODE).await.is_err(),
            "byte {i}"
        );
    }
    // A data blob put in the index's place.
    blobs
        .put(INDEX_NAME, raw(&blobs, "share").await)
        .await
        .unwrap();
    assert!(matches!(
        SealedStore::open(blobs.clone(), key(), NODE).await,
        Err(SealError::Tampered { .. })
    ));
    blobs.put(INDEX_NAME, vec![VERSION, 2, 3]).await.unwrap();
    assert!(matches!(
        SealedStore::open(blobs.clone(), key(), NODE).await,
        Err(SealError::Malformed { len: 3 })
    ));
    blobs.put(INDEX_NAME, index).await.unwrap();
    let store = SealedStore::open(blobs.clone(), key(), NODE).await.unwrap();
    assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v1");
}

#[tokio::test]
async fn a_missing_blob_is_an_error() {
    let blobs = MemoryBlobs::new();
    let mut store = store(&blobs).await;
    store.put("share", b"v1").await.unwrap();
    blobs.delete("share").await.unwrap();
    assert!(matches!(
        store.get("share").await,
        Err(SealError::Missing { .. })
    ));
}

/// The node stops after writing a blob and before writing the index.
#[tokio::test]
async fn a_write_interrupted_before_its_index_update() {
    let blobs = MemoryBlobs::new();
    let mut store = store(&blobs).await;
    store.put("share", b"v1").await.unwrap();
    let index_v1 = raw(&blobs, INDEX_NAME).await;
    store.put("share", b"v2").await.unwrap();
    let orphan = raw(&blobs, "share").await;
    // As if the index write of v2 never happened.
    blobs.put(INDEX_NAME, index_v1).await.unwrap();

    let mut store = SealedStore::open(blobs.clone(), key(), NODE).await.unwrap();
    assert_eq!(store.index().committed("share"), Some(1));
    assert_eq!(store.get("share").await.unwrap().unwrap().as_slice(), b"v2");

    // The next write reuses counter 2 and pins its nonce: the orphan no longer passes.
    assert_eq!(store.put("share", b"v3").await.unwrap(), 2);
    blobs.put("share", orphan).await.unwrap();
    assert!(matches!(
        store.get("share").await,
        Err(SealError::Inconsistent {
            found: 2,
            committed: 2,
            ..
        })
    ));
}

#[tokio::test]
async fn names_are_checked() {
    let blobs = MemoryBlobs::new();
    let mut store = store(&blobs).await;
    for bad in ["", ".hidden", "a/b", INDEX_NAME] {
        assert!(matches!(
            store.put(bad, b"x").await,
            Err(SealError::InvalidName { .. })
        ));
        assert!(matches!(
            store.get(bad).await,
            Err(SealError::InvalidName { .. })
        ));
    }
    assert!(matches!(
        store.put("big", &vec![0; MAX_PLAINTEXT_LEN + 1]).await,
        Err(SealError::TooLarge { .. })
    ));
    // Nothing was written by the refused calls.
    assert!(blobs.list("").await.unwrap().is_empty());
}
