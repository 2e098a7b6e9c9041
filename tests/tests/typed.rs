//! The typed layer: `#[derive(TagSchema)]`, `#[cached]` on trait impls and
//! inherent impls, typed invalidation, unique keys, entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use t87s::engine::{SetOptions, TagPath};
use t87s::{cached, MemoryAdapter, QueryCache, Static, TagSchema, Wild};

// ---- the reference integration test: orgs / members / settings ----

#[derive(TagSchema)]
struct OrgTags {
    members: Wild,
    settings: Static,
}

#[derive(TagSchema)]
struct Tags {
    orgs: Wild<OrgTags>,
    global: Static,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Member {
    id: String,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    theme: String,
}

#[derive(Default)]
struct Db {
    members: Mutex<HashMap<String, Vec<Member>>>,
    settings: Mutex<HashMap<String, Settings>>,
    reads: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error("database error")]
struct DbError;

trait Orgs {
    async fn members(&self, org_id: &str) -> Result<Vec<Member>, DbError>;
    async fn member(&self, org_id: &str, member_id: &str) -> Result<Option<Member>, DbError>;
    async fn settings(&self, org_id: String) -> Result<Option<Settings>, DbError>;
}

#[derive(Clone)]
struct OrgCache {
    db: Arc<Db>,
    cache: QueryCache<Tags>,
}

impl Orgs for OrgCache {
    #[cached(tags = [t.orgs(org_id).members(..)])]
    async fn members(&self, org_id: &str) -> Result<Vec<Member>, DbError> {
        self.db.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .db
            .members
            .lock()
            .get(org_id)
            .cloned()
            .unwrap_or_default())
    }

    #[cached(tags = [t.orgs(org_id).members(member_id)], ttl = "1m")]
    async fn member(&self, org_id: &str, member_id: &str) -> Result<Option<Member>, DbError> {
        self.db.reads.fetch_add(1, Ordering::SeqCst);
        let members = self.db.members.lock();
        Ok(members
            .get(org_id)
            .and_then(|m| m.iter().find(|m| m.id == member_id).cloned()))
    }

    #[cached(tags = [t.orgs(&org_id).settings()])]
    async fn settings(&self, org_id: String) -> Result<Option<Settings>, DbError> {
        self.db.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.db.settings.lock().get(&org_id).cloned())
    }
}

fn member(id: &str, name: &str) -> Member {
    Member {
        id: id.into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn reference_workflow_define_query_invalidate_primitives() {
    let db = Arc::new(Db::default());
    db.members.lock().insert(
        "org1".into(),
        vec![member("u1", "Alice"), member("u2", "Bob")],
    );
    db.settings.lock().insert(
        "org1".into(),
        Settings {
            theme: "dark".into(),
        },
    );
    let cache = QueryCache::<Tags>::builder(MemoryAdapter::new())
        .default_ttl("1m")
        .build()
        .unwrap();
    let client = OrgCache {
        db: db.clone(),
        cache,
    };

    // Query.
    assert_eq!(client.members("org1").await.unwrap().len(), 2);
    let alice: Option<Member> = client.member("org1", "u1").await.unwrap();
    assert_eq!(alice.unwrap().name, "Alice");

    // Modify the data: still cached.
    db.members.lock().insert(
        "org1".into(),
        vec![member("u1", "Alice Updated"), member("u2", "Bob")],
    );
    assert_eq!(
        client.member("org1", "u1").await.unwrap().unwrap().name,
        "Alice"
    );

    // Invalidate one member: refetched.
    let t = client.cache.tags();
    client
        .cache
        .invalidate(t.orgs("org1").members("u1"))
        .await
        .unwrap();
    assert_eq!(
        client.member("org1", "u1").await.unwrap().unwrap().name,
        "Alice Updated"
    );
    // The member list is a different tag (`orgs/org1/members` exactly): still cached.
    assert_eq!(client.members("org1").await.unwrap()[0].name, "Alice");

    // Hierarchical: invalidating the org reaches its settings and members.
    assert_eq!(
        client.settings("org1".into()).await.unwrap().unwrap().theme,
        "dark"
    );
    db.settings.lock().insert(
        "org1".into(),
        Settings {
            theme: "light".into(),
        },
    );
    client.cache.invalidate(t.orgs("org1")).await.unwrap();
    assert_eq!(
        client.settings("org1".into()).await.unwrap().unwrap().theme,
        "light"
    );
    assert_eq!(
        client.members("org1").await.unwrap()[0].name,
        "Alice Updated"
    );

    // The primitives escape hatch.
    let primitives = client.cache.primitives();
    let custom = TagPath::new(["custom"]).unwrap();
    primitives
        .set("custom-key", &true, SetOptions::new([custom]))
        .await
        .unwrap();
    assert_eq!(
        primitives.get::<bool>("custom-key").await.unwrap(),
        Some(true)
    );
}

#[tokio::test]
async fn exact_invalidation_and_collection_tags() {
    let db = Arc::new(Db::default());
    db.members
        .lock()
        .insert("o".into(), vec![member("u1", "A")]);
    let client = OrgCache {
        db: db.clone(),
        cache: QueryCache::new(MemoryAdapter::new()),
    };
    client.members("o").await.unwrap();
    client.member("o", "u1").await.unwrap();
    let reads = db.reads.load(Ordering::SeqCst);
    let t = client.cache.tags();

    // Exact on the collection: the list goes stale, the item stays fresh.
    client
        .cache
        .invalidate_exact(t.orgs("o").members(..))
        .await
        .unwrap();
    client.members("o").await.unwrap();
    client.member("o", "u1").await.unwrap();
    assert_eq!(db.reads.load(Ordering::SeqCst), reads + 1);

    // Prefix on the collection: every member below it goes stale too.
    client
        .cache
        .invalidate(t.orgs("o").members(..))
        .await
        .unwrap();
    client.members("o").await.unwrap();
    client.member("o", "u1").await.unwrap();
    assert_eq!(db.reads.load(Ordering::SeqCst), reads + 3);

    // The collection of every org reaches everything.
    client.cache.invalidate(t.orgs(..)).await.unwrap();
    client.member("o", "u1").await.unwrap();
    assert_eq!(db.reads.load(Ordering::SeqCst), reads + 4);
}

// ---- keys are unique ----

#[derive(TagSchema)]
struct KeyTags {
    items: Wild,
}

trait Lookup {
    async fn get(&self, id: u64) -> Result<String, DbError>;
}

macro_rules! source {
    ($name:ident, $label:literal) => {
        #[derive(Clone)]
        struct $name {
            cache: QueryCache<KeyTags>,
            calls: Arc<AtomicUsize>,
        }

        impl Lookup for $name {
            #[cached(tags = [t.items(id)])]
            async fn get(&self, id: u64) -> Result<String, DbError> {
                self.calls.fetch_add(1, Ordering::SeqCst);
                Ok(format!("{} {}", $label, id))
            }
        }
    };
}

source!(FromA, "a");
source!(FromB, "b");

#[tokio::test]
async fn two_impls_with_the_same_method_do_not_share_keys() {
    let cache: QueryCache<KeyTags> = QueryCache::new(MemoryAdapter::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let a = FromA {
        cache: cache.clone(),
        calls: calls.clone(),
    };
    let b = FromB {
        cache: cache.clone(),
        calls: calls.clone(),
    };
    assert_eq!(a.get(1).await.unwrap(), "a 1");
    assert_eq!(b.get(1).await.unwrap(), "b 1");
    assert_eq!(a.get(2).await.unwrap(), "a 2", "f(1) and f(2) differ");
    assert_eq!(a.get(1).await.unwrap(), "a 1");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[derive(Clone)]
struct Shapes {
    cache: QueryCache<KeyTags>,
}

impl Shapes {
    #[cached(tags = [t.items(s)])]
    async fn one(&self, s: String) -> Result<String, DbError> {
        Ok(format!("one({s})"))
    }

    #[cached(tags = [t.items(a), t.items(b)])]
    async fn two(&self, a: String, b: String) -> Result<String, DbError> {
        Ok(format!("two({a},{b})"))
    }

    #[cached(tags = [t.items(n)])]
    async fn num(&self, n: u64) -> Result<String, DbError> {
        Ok(format!("num({n})"))
    }

    #[cached(tags = [t.items(s)])]
    async fn text(&self, s: &str) -> Result<String, DbError> {
        Ok(format!("text({s})"))
    }

    #[cached(tags = [t.items(a)])]
    async fn pair(&self, a: &str, b: &str) -> Result<String, DbError> {
        Ok(format!("pair({a},{b})"))
    }
}

#[tokio::test]
async fn arguments_that_print_alike_never_collide() {
    let s = Shapes {
        cache: QueryCache::new(MemoryAdapter::new()),
    };
    assert_eq!(s.one("a:b".into()).await.unwrap(), "one(a:b)");
    assert_eq!(s.two("a".into(), "b".into()).await.unwrap(), "two(a,b)");
    assert_eq!(s.num(1).await.unwrap(), "num(1)");
    assert_eq!(s.text("1").await.unwrap(), "text(1)");
    // Within one method: ("a:b", "") vs ("a", ":b") and the like.
    assert_eq!(s.pair("a:b", "").await.unwrap(), "pair(a:b,)");
    assert_eq!(s.pair("a", ":b").await.unwrap(), "pair(a,:b)");
    assert_eq!(s.pair("a:", "b").await.unwrap(), "pair(a:,b)");
    // Keys too long for the inline buffer, differing only at the end.
    let long_a = format!("{}a", "x".repeat(400));
    let long_b = format!("{}b", "x".repeat(400));
    assert_eq!(
        s.one(long_a.clone()).await.unwrap(),
        format!("one({long_a})")
    );
    assert_eq!(
        s.one(long_b.clone()).await.unwrap(),
        format!("one({long_b})")
    );
    assert_eq!(
        s.one(long_a.clone()).await.unwrap(),
        format!("one({long_a})")
    );
    // And each is a hit afterwards, with its own value.
    assert_eq!(s.pair("a", ":b").await.unwrap(), "pair(a,:b)");
    assert_eq!(s.one("a:b".into()).await.unwrap(), "one(a:b)");
}

// ---- the call site is typed; futures are Send; entries ----

#[tokio::test]
async fn typed_call_site_and_send_futures() {
    let db = Arc::new(Db::default());
    db.members
        .lock()
        .insert("o".into(), vec![member("u1", "A")]);
    let client = OrgCache {
        db,
        cache: QueryCache::new(MemoryAdapter::new()),
    };
    let c = client.clone();
    // `tokio::spawn` needs a `Send + 'static` future.
    let task = tokio::spawn(async move { c.settings("o".to_string()).await });
    let settings: Result<Option<Settings>, DbError> = task.await.unwrap();
    assert_eq!(settings.unwrap(), None);
    let members: Vec<Member> = client.members("o").await.unwrap();
    assert_eq!(members, vec![member("u1", "A")]);
}

#[tokio::test]
async fn entries_before_and_after_for_cached_methods() {
    let db = Arc::new(Db::default());
    db.members
        .lock()
        .insert("o".into(), vec![member("u1", "A")]);
    let client = OrgCache {
        db: db.clone(),
        cache: QueryCache::new(MemoryAdapter::new()),
    };
    let miss = t87s::entries(client.member("o", "u1"))
        .await
        .unwrap()
        .unwrap();
    assert!(miss.before.is_none());
    assert_eq!(miss.after.value, Some(member("u1", "A")));
    assert_eq!(miss.after.tags[0].as_str(), "orgs/o/members/u1");
    assert_eq!(
        miss.after.expires_at - miss.after.created_at,
        60_000,
        "ttl = \"1m\""
    );

    let hit = t87s::entries(client.member("o", "u1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.before.as_ref(), Some(&hit.after));

    db.members
        .lock()
        .insert("o".into(), vec![member("u1", "B")]);
    client
        .cache
        .invalidate(client.cache.tags().orgs("o"))
        .await
        .unwrap();
    let refetch = t87s::entries(client.member("o", "u1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refetch.before.unwrap().value, Some(member("u1", "A")));
    assert_eq!(refetch.after.value, Some(member("u1", "B")));

    // A call that runs no cached query has no entries.
    let plain = t87s::entries(async { Ok::<u32, DbError>(1) })
        .await
        .unwrap();
    assert!(plain.is_none());
}

#[tokio::test]
async fn the_body_runs_once_for_concurrent_callers() {
    let db = Arc::new(Db::default());
    let client = OrgCache {
        db: db.clone(),
        cache: QueryCache::new(MemoryAdapter::new()),
    };
    let calls: Vec<_> = (0..50).map(|_| client.members("o")).collect();
    for result in futures_join(calls).await {
        assert!(result.unwrap().is_empty());
    }
    assert_eq!(db.reads.load(Ordering::SeqCst), 1);
}

async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out = Vec::new();
    // Poll them together: the first to miss leads, the rest follow.
    let joined = std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out.len() <= i {
                out.resize_with(i + 1, || None);
            }
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(out.drain(..).map(|v| v.expect("ready")).collect::<Vec<_>>())
        }
    });
    joined.await
}

// ---- stale-while-revalidate through `#[cached]`: the refresh runs on a clone ----

#[derive(TagSchema)]
struct SwrTags {
    items: Wild,
}

static REFRESHED: Mutex<Vec<(u64, u64, bool)>> = Mutex::new(Vec::new());

fn note_refresh(old: &u64, new: &u64, changed: bool) {
    REFRESHED.lock().push((*old, *new, changed));
}

#[derive(Clone)]
struct Versioned {
    cache: QueryCache<SwrTags>,
    version: Arc<std::sync::atomic::AtomicU64>,
}

impl Versioned {
    #[cached(tags = [t.items(id)], ttl = "10s", grace = "1m", on_refresh = note_refresh)]
    async fn get(&self, id: u64) -> Result<u64, DbError> {
        Ok(self.version.load(Ordering::SeqCst) * 100 + id)
    }
}

#[tokio::test]
async fn grace_serves_stale_and_refreshes_in_the_background() {
    let clock = t87s::ManualClock::new(t87s_tests::T0);
    let cache = QueryCache::builder(MemoryAdapter::new())
        .clock(clock.clone())
        .build()
        .unwrap();
    let v = Versioned {
        cache,
        version: Arc::new(1.into()),
    };
    assert_eq!(v.get(7).await.unwrap(), 107);
    v.version.store(2, Ordering::SeqCst);
    clock.advance(std::time::Duration::from_secs(11));
    assert_eq!(
        v.get(7).await.unwrap(),
        107,
        "stale, inside grace: served at once"
    );
    t87s_tests::settle().await;
    assert_eq!(
        v.get(7).await.unwrap(),
        207,
        "the background refresh landed"
    );
    // `on_refresh` runs on the blocking pool, after the value is published.
    let engine = v.cache.primitives();
    t87s_tests::wait_until("on_refresh", || engine.in_flight() == 0).await;
    assert_eq!(*REFRESHED.lock(), vec![(107, 207, true)]);
}

// ---- ids of every supported type ----

#[derive(TagSchema)]
struct IdTags {
    things: Wild,
}

#[test]
fn ids_of_every_supported_type() {
    let t = IdTags::root();
    let uuid = uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
    let paths = [
        t.things("a/b").into_path(),
        t.things(String::from("s")).into_path(),
        t.things(-3i64).into_path(),
        t.things(42u8).into_path(),
        t.things('c').into_path(),
        t.things(true).into_path(),
        t.things(uuid).into_path(),
    ];
    let strings: Vec<&str> = paths.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        strings,
        [
            "things/a%2Fb",
            "things/s",
            "things/-3",
            "things/42",
            "things/c",
            "things/true",
            "things/67e55044-10b1-426f-9247-bb680e5fe0c8"
        ]
    );
    // An id and its string spelling name the same item.
    assert_eq!(t.things(1).into_path(), t.things("1").into_path());
}

// ---- a key built while another key is being built ----

#[derive(TagSchema)]
struct NestTags {
    names: Wild,
}

#[derive(Clone)]
struct Names {
    cache: QueryCache<NestTags>,
    fetches: Arc<AtomicUsize>,
}

/// An argument whose key is another cached call's answer: serializing it
/// polls `names.name(id)` (a memory hit answers on the first poll), so that
/// key is built while the outer call's key is being built.
#[derive(Clone)]
struct NamedBy {
    names: Names,
    id: u64,
}

impl Serialize for NamedBy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut inner = std::pin::pin!(self.names.name(self.id));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::future::Future::poll(inner.as_mut(), &mut cx) {
            std::task::Poll::Ready(Ok(name)) => serializer.serialize_str(&name),
            _ => Err(serde::ser::Error::custom("the inner call did not hit")),
        }
    }
}

impl Names {
    #[cached(tags = [t.names(id)])]
    async fn name(&self, id: u64) -> Result<String, DbError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Ok(format!("name-{id}"))
    }

    #[cached(tags = [t.names(by.id)])]
    async fn greeting(&self, by: NamedBy) -> Result<String, DbError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let name = self.name(by.id).await?;
        Ok(format!("hello {name}"))
    }
}

#[tokio::test]
async fn a_key_built_while_building_another_key_is_its_own() {
    let names = Names {
        cache: QueryCache::new(MemoryAdapter::new()),
        fetches: Arc::new(AtomicUsize::new(0)),
    };
    for id in [1, 2] {
        assert_eq!(names.name(id).await.unwrap(), format!("name-{id}"));
    }
    assert_eq!(names.fetches.load(Ordering::SeqCst), 2);
    for round in 0..2 {
        for id in [1, 2] {
            let by = NamedBy {
                names: names.clone(),
                id,
            };
            assert_eq!(
                names.greeting(by).await.unwrap(),
                format!("hello name-{id}"),
                "round {round}"
            );
        }
    }
    // Each greeting fetched once; the inner names were hits every time
    // (their keys built in parts of their own, not in the outer call's).
    assert_eq!(names.fetches.load(Ordering::SeqCst), 4);
}
