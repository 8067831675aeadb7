use super::*;
use pingora_cache::trace::Span;
use pingora_http::ResponseHeader;
use std::time::{Duration, SystemTime};

fn meta(tags: Option<&str>) -> CacheMeta {
    let mut h = ResponseHeader::build(200, None).unwrap();
    h.insert_header("content-type", "text/plain").unwrap();
    if let Some(t) = tags {
        h.insert_header("cache-tag", t).unwrap();
    }
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
}

fn key(path: &str, query: Option<&str>) -> CacheKey {
    let mut k = CacheKey::new(format!("r\n{path}?{query:?}"), "");
    k.extensions.insert(EntryInfo {
        route: "r".into(),
        path: path.into(),
        query: query.map(str::to_string),
    });
    k
}

async fn put(
    store: &'static Store,
    k: &CacheKey,
    tags: Option<&str>,
    body: &[&[u8]],
) -> Result<()> {
    let span = Span::inactive().handle();
    let mut miss = store.get_miss_handler(k, &meta(tags), &span).await?;
    for (i, part) in body.iter().enumerate() {
        miss.write_body(Bytes::copy_from_slice(part), i + 1 == body.len())
            .await?;
    }
    let size = match miss.finish().await? {
        MissFinishType::Created(n) => n,
        MissFinishType::Appended(n, _) => n,
    };
    // What pingora-cache does after a finished write: the LRU learns the entry.
    let entry = pingora_cache::CacheEntryKey::from_entry_id(k.to_compact(), None);
    let evicted = store
        .eviction()
        .admit(entry, size, SystemTime::now() + Duration::from_secs(60));
    assert!(evicted.is_empty());
    Ok(())
}

async fn get(store: &'static Store, k: &CacheKey) -> Option<Vec<u8>> {
    let span = Span::inactive().handle();
    let (_, mut hit) = store.lookup(k, &span).await.unwrap()?;
    let mut out = Vec::new();
    while let Some(b) = hit.read_body().await.unwrap() {
        out.extend_from_slice(&b);
    }
    Some(out)
}

#[tokio::test]
async fn stores_only_finished_bodies_within_bounds() {
    let store = Store::leak(4 << 20);
    let a = key("/a", None);
    put(store, &a, None, &[b"hel", b"lo"]).await.unwrap();
    assert_eq!(get(store, &a).await.as_deref(), Some(&b"hello"[..]));

    // A writer that never finishes (upstream cut the body short) leaves nothing behind.
    let b = key("/b", None);
    let span = Span::inactive().handle();
    let mut miss = store
        .get_miss_handler(&b, &meta(None), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"partial"), false)
        .await
        .unwrap();
    assert!(get(store, &b).await.is_none(), "visible while written");
    drop(miss);
    assert!(
        get(store, &b).await.is_none(),
        "kept after an unfinished write"
    );

    // Over a quarter of the store: refused, not truncated.
    let big = vec![b'x'; (1 << 20) + 1];
    let c = key("/c", None);
    assert!(put(store, &c, None, &[&big]).await.is_err());
    assert!(get(store, &c).await.is_none());
}

#[tokio::test]
async fn ranges_of_a_hit_are_slices() {
    let store = Store::leak(4 << 20);
    let k = key("/r", None);
    put(store, &k, None, &[b"0123456789"]).await.unwrap();
    let span = Span::inactive().handle();
    let (_, mut hit) = store.lookup(&k, &span).await.unwrap().unwrap();
    hit.seek(2, Some(5)).unwrap();
    assert_eq!(hit.read_body().await.unwrap().as_deref(), Some(&b"234"[..]));
    assert!(
        hit.seek(10, None).is_err(),
        "a range past the end is refused"
    );
    assert!(
        hit.seek(5, Some(2)).is_err(),
        "an inverted range is refused"
    );
}

#[tokio::test]
async fn purges_by_resource_prefix_tag_route_and_all() {
    let store = Store::leak(4 << 20);
    let keys = [
        key("/items/1", None),
        key("/items/1", Some("v=2")),
        key("/items/2", None),
        key("/other", None),
    ];
    let tags = [Some("item-1, list"), None, Some("list"), None];
    for (k, t) in keys.iter().zip(tags) {
        put(store, k, t, &[b"x"]).await.unwrap();
    }
    assert_eq!(store.len(), 4);
    assert!(store.bytes() > 0);
    let one = Selector::Resource {
        path: "/items/1".into(),
        query: Some("v=2".into()),
    };
    assert_eq!(store.purge(&one), 1);
    assert!(get(store, &keys[1]).await.is_none());
    assert!(get(store, &keys[0]).await.is_some());
    assert_eq!(store.purge(&Selector::Tag("list".into())), 2);
    assert_eq!(store.purge(&Selector::Tag("list".into())), 0);
    put(store, &keys[0], None, &[b"x"]).await.unwrap();
    assert_eq!(store.purge(&Selector::Prefix("/items/".into())), 1);
    assert_eq!(store.purge(&Selector::Route("r".into())), 1);
    put(store, &keys[3], None, &[b"x"]).await.unwrap();
    assert_eq!(store.purge(&Selector::All), 1);
    assert!(store.is_empty());
    assert_eq!(store.bytes(), 0, "the LRU forgot purged entries");
}

#[tokio::test]
async fn tags_are_bounded() {
    let many: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    let long = "x".repeat(MAX_TAG_LEN + 1);
    let m = meta(Some(&format!("{},{long}", many.join(","))));
    let tags = tags_of(&m);
    assert_eq!(tags.len(), MAX_TAGS);
    assert!(!tags.contains(&long));
}

#[tokio::test]
async fn a_fetch_that_overlaps_a_purge_is_not_stored() {
    let store = Store::leak(4 << 20);
    let k = key("/p", None);
    let span = Span::inactive().handle();
    let mut miss = store
        .get_miss_handler(&k, &meta(None), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"old"), true)
        .await
        .unwrap();
    store.purge(&Selector::Prefix("/p".into()));
    assert!(miss.finish().await.is_err());
    assert!(
        get(store, &k).await.is_none(),
        "the purged answer came back"
    );
    assert_eq!(store.in_flight.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn bodies_being_fetched_are_bounded_together() {
    // 4 MiB store: entries up to 1 MiB, 2 MiB in flight at once.
    let store = Store::leak(4 << 20);
    let span = Span::inactive().handle();
    let mb = Bytes::from(vec![b'x'; 900 << 10]);
    let mut misses = Vec::new();
    for i in 0..3 {
        let k = key(&format!("/f{i}"), None);
        let mut m = store
            .get_miss_handler(&k, &meta(None), &span)
            .await
            .unwrap();
        m.write_body(mb.clone(), true).await.unwrap();
        misses.push((k, m));
    }
    assert!(store.in_flight.load(Ordering::Relaxed) <= 2 << 20);
    let mut stored = 0;
    for (k, m) in misses {
        if m.finish().await.is_ok() {
            stored += 1;
            assert!(get(store, &k).await.is_some());
        }
    }
    assert_eq!(stored, 2, "the third fetch went over the in-flight bound");
    assert_eq!(store.in_flight.load(Ordering::Relaxed), 0);
}
