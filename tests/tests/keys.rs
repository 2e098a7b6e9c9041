//! Keys of `#[cached]` calls: distinct calls never share one, whatever shape
//! serde gives the arguments; keys name the method's identity, are stable
//! (pinned literally here) and read well in events.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use t87s::{cached, Event, EventKind, MemoryAdapter, Observer, QueryCache, TagSchema, Wild};

#[derive(TagSchema)]
struct Tags {
    items: Wild,
}

/// Records every event's kind and key.
#[derive(Clone, Default)]
struct Keys(Arc<Mutex<Vec<(EventKind, String)>>>);

impl Observer for Keys {
    fn on_event(&self, event: &Event<'_>) {
        self.0.lock().push((event.kind, event.key.to_owned()));
    }
}

impl Keys {
    fn of(&self, kind: EventKind) -> Vec<String> {
        self.0
            .lock()
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, key)| key.clone())
            .collect()
    }
}

fn cache(events: &Keys) -> QueryCache<Tags> {
    QueryCache::builder(MemoryAdapter::new())
        .observer(events.clone())
        .build()
        .unwrap()
}

#[derive(Clone)]
struct Svc {
    cache: QueryCache<Tags>,
    calls: Arc<AtomicUsize>,
}

impl Svc {
    fn new(events: &Keys) -> Self {
        Self {
            cache: cache(events),
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn fetched<T: std::fmt::Debug>(&self, arg: &T) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("{arg:?}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Filter {
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Loose {
    Num(u64),
    Text(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Paging {
    page: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Search {
    query: String,
    #[serde(flatten)]
    paging: Paging,
}

impl Svc {
    #[cached(tags = [t.items(..)])]
    async fn filtered(&self, filter: Filter) -> Result<String, std::io::Error> {
        Ok(self.fetched(&filter))
    }

    #[cached(tags = [t.items(..)])]
    async fn loose(&self, value: Loose) -> Result<String, std::io::Error> {
        Ok(self.fetched(&value))
    }

    #[cached(tags = [t.items(..)])]
    async fn search(&self, search: Search) -> Result<String, std::io::Error> {
        Ok(self.fetched(&search))
    }

    #[cached(tags = [t.items(..)])]
    async fn unit_or_empty(&self, value: Option<Vec<()>>) -> Result<String, std::io::Error> {
        Ok(self.fetched(&value))
    }

    #[cached(tags = [t.items(..)])]
    async fn mapped(&self, map: HashMap<String, u32>) -> Result<String, std::io::Error> {
        Ok(self.fetched(&map))
    }

    #[cached(tags = [t.items(id)])]
    async fn post(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(self.fetched(&id))
    }
}

#[tokio::test]
async fn skipped_fields_never_share_a_key() {
    let svc = Svc::new(&Keys::default());
    let a = Filter {
        author: Some("rust".into()),
        tag: None,
    };
    let b = Filter {
        author: None,
        tag: Some("rust".into()),
    };
    assert_eq!(svc.filtered(a.clone()).await.unwrap(), format!("{a:?}"));
    assert_eq!(svc.filtered(b.clone()).await.unwrap(), format!("{b:?}"));
    assert_eq!(svc.calls(), 2);
}

#[tokio::test]
async fn untagged_variants_never_share_a_key() {
    let svc = Svc::new(&Keys::default());
    assert_eq!(svc.loose(Loose::Num(0)).await.unwrap(), "Num(0)");
    assert_eq!(
        svc.loose(Loose::Text(String::new())).await.unwrap(),
        "Text(\"\")"
    );
    assert_eq!(svc.calls(), 2);
}

#[tokio::test]
async fn unit_and_empty_sequence_never_share_a_key() {
    let svc = Svc::new(&Keys::default());
    svc.unit_or_empty(None).await.unwrap();
    svc.unit_or_empty(Some(vec![])).await.unwrap();
    svc.unit_or_empty(Some(vec![()])).await.unwrap();
    assert_eq!(svc.calls(), 3);
}

#[tokio::test]
async fn flattened_arguments_are_cached_not_bypassed() {
    let events = Keys::default();
    let svc = Svc::new(&events);
    let search = Search {
        query: "rust".into(),
        paging: Paging { page: 2 },
    };
    svc.search(search.clone()).await.unwrap();
    svc.search(search.clone()).await.unwrap();
    assert_eq!(svc.calls(), 1, "the second call is a hit");
    assert!(events.of(EventKind::Uncached).is_empty());
    let other = Search {
        query: "rust".into(),
        paging: Paging { page: 3 },
    };
    svc.search(other).await.unwrap();
    assert_eq!(svc.calls(), 2);
}

#[tokio::test]
async fn maps_key_by_content_not_iteration_order() {
    let svc = Svc::new(&Keys::default());
    let mut a = HashMap::new();
    let mut b = HashMap::new();
    for i in 0..32u32 {
        a.insert(format!("k{i}"), i);
        b.insert(format!("k{}", 31 - i), 31 - i);
    }
    svc.mapped(a).await.unwrap();
    svc.mapped(b).await.unwrap();
    assert_eq!(svc.calls(), 1, "equal maps share a key");
    let mut c = HashMap::new();
    c.insert("k0".to_string(), 1u32);
    svc.mapped(c).await.unwrap();
    assert_eq!(svc.calls(), 2);
}

// ---- method identity ----

trait Authors {
    async fn name(&self, id: u64) -> Result<String, std::io::Error>;
}

trait Editors {
    async fn name(&self, id: u64) -> Result<String, std::io::Error>;
}

#[derive(Clone)]
struct People {
    cache: QueryCache<Tags>,
}

impl Authors for People {
    #[cached(tags = [t.items(id)])]
    async fn name(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("author {id}"))
    }
}

impl Editors for People {
    #[cached(tags = [t.items(id)])]
    async fn name(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("editor {id}"))
    }
}

#[tokio::test]
async fn two_traits_with_the_same_method_never_share_keys() {
    let people = People {
        cache: cache(&Keys::default()),
    };
    assert_eq!(Authors::name(&people, 1).await.unwrap(), "author 1");
    assert_eq!(Editors::name(&people, 1).await.unwrap(), "editor 1");
    assert_eq!(
        <People as Editors>::name(&people, 1).await.unwrap(),
        "editor 1"
    );
    assert_eq!(
        <People as Authors>::name(&people, 1).await.unwrap(),
        "author 1"
    );
}

mod north {
    use super::*;
    #[derive(Clone)]
    pub struct Store {
        pub cache: QueryCache<Tags>,
    }
    impl Store {
        #[cached(tags = [t.items(id)])]
        pub async fn get(&self, id: u64) -> Result<String, std::io::Error> {
            Ok(format!("north {id}"))
        }
    }
}

mod south {
    use super::*;
    #[derive(Clone)]
    pub struct Store {
        pub cache: QueryCache<Tags>,
    }
    impl Store {
        #[cached(tags = [t.items(id)])]
        pub async fn get(&self, id: u64) -> Result<String, std::io::Error> {
            Ok(format!("south {id}"))
        }
    }
}

#[tokio::test]
async fn types_of_the_same_name_never_share_keys() {
    let shared = cache(&Keys::default());
    let north = north::Store {
        cache: shared.clone(),
    };
    let south = south::Store { cache: shared };
    assert_eq!(north.get(1).await.unwrap(), "north 1");
    assert_eq!(south.get(1).await.unwrap(), "south 1");
}

// ---- readable, pinned, versioned, scoped ----

#[tokio::test]
async fn keys_read_well_in_events() {
    let events = Keys::default();
    let svc = Svc::new(&events);
    svc.post(5).await.unwrap();
    svc.post(5).await.unwrap();
    let miss = &events.of(EventKind::Miss)[0];
    let hit = &events.of(EventKind::Hit)[0];
    assert_eq!(miss, hit);
    assert!(miss.starts_with("keys::post(5)@"), "{miss}");
    svc.filtered(Filter {
        author: Some("rust".into()),
        tag: None,
    })
    .await
    .unwrap();
    let filtered = &events.of(EventKind::Miss)[1];
    assert!(
        filtered.starts_with(r#"keys::filtered(Filter { author: Some("rust") })@"#),
        "{filtered}"
    );
}

#[derive(Clone)]
struct Pinned {
    cache: QueryCache<Tags>,
}

impl Pinned {
    #[cached(tags = [t.items(id)], name = "Blog::post")]
    async fn post(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("post {id}"))
    }

    #[cached(tags = [t.items(id)], name = "Blog::post", version = 2)]
    async fn post_v2(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("post {id}, v2"))
    }

    /// The same method moved elsewhere (another line, module or type): its
    /// pinned name keeps its keys.
    #[cached(tags = [t.items(id)], name = "Blog::post")]
    async fn post_moved(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("moved {id}"))
    }
}

/// Keys are part of what a deployment shares with the next one: these are
/// pinned literally. If this test fails, every cache in the field goes cold
/// on upgrade; change the encoding only on purpose.
#[tokio::test]
async fn golden_keys() {
    let events = Keys::default();
    let pinned = Pinned {
        cache: cache(&events),
    };
    pinned.post(5).await.unwrap();
    pinned.post_v2(5).await.unwrap();
    let misses = events.of(EventKind::Miss);
    assert_eq!(misses[0], "Blog::post(5)@7aa5f2f64db68256:0705");
    assert_eq!(misses[1], "Blog::post(5)@3ab09ae5a14b0934:0705");
    let (bytes, text) = t87s::__private::canonical_key(&Filter {
        author: Some("rust".into()),
        tag: None,
    })
    .unwrap();
    assert_eq!(text, r#"Filter { author: Some("rust") }"#);
    assert_eq!(
        bytes,
        [
            &[0x1e, 6][..],
            b"Filter",
            &[0x20, 6],
            b"author",
            &[0x14, 0x11, 4],
            b"rust",
            &[0x21, 3],
            b"tag",
            &[0x00],
        ]
        .concat()
    );
}

#[tokio::test]
async fn a_pinned_name_survives_moving_the_method_and_a_version_leaves_it_behind() {
    let pinned = Pinned {
        cache: cache(&Keys::default()),
    };
    assert_eq!(pinned.post(7).await.unwrap(), "post 7");
    assert_eq!(
        pinned.post_moved(7).await.unwrap(),
        "post 7",
        "same pinned key"
    );
    assert_eq!(
        pinned.post_v2(7).await.unwrap(),
        "post 7, v2",
        "a new version"
    );
}

#[derive(Clone)]
struct Tenant {
    cache: QueryCache<Tags>,
    tenant: String,
}

impl Tenant {
    #[cached(tags = [t.items(id)], scope = self.tenant)]
    async fn doc(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("{} doc {id}", self.tenant))
    }
}

#[tokio::test]
async fn scope_puts_fields_of_self_in_the_key() {
    let shared = cache(&Keys::default());
    let acme = Tenant {
        cache: shared.clone(),
        tenant: "acme".into(),
    };
    let globex = Tenant {
        cache: shared,
        tenant: "globex".into(),
    };
    assert_eq!(acme.doc(1).await.unwrap(), "acme doc 1");
    assert_eq!(globex.doc(1).await.unwrap(), "globex doc 1");
    assert_eq!(acme.doc(1).await.unwrap(), "acme doc 1");
}

// ---- an argument that cannot be encoded ----

struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this type refuses to be serialized",
        ))
    }
}

impl Svc {
    #[cached(tags = [t.items(..)])]
    async fn refusing(&self, value: Refuses) -> Result<u32, std::io::Error> {
        let _ = value;
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(1)
    }
}

#[tokio::test]
async fn an_argument_that_cannot_be_encoded_is_reported_every_call() {
    let events = Keys::default();
    let svc = Svc::new(&events);
    for _ in 0..3 {
        assert_eq!(svc.refusing(Refuses).await.unwrap(), 1);
    }
    assert_eq!(svc.calls(), 3, "uncached: the body runs every time");
    let uncached = events.of(EventKind::Uncached);
    assert_eq!(uncached.len(), 3, "an event on every call");
    assert_eq!(uncached[0], "keys::refusing");
}

// ---- the encoding itself ----

#[derive(Debug, Clone, PartialEq, Serialize)]
enum Shape {
    Unit,
    Newtype(u8),
    Tuple(i16, bool),
    Struct {
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<String>,
        b: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
enum Untagged {
    Small(u8),
    Big(u64),
    Text(String),
    Pair(u8, u8),
    Shape(Shape),
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Args {
    first: Option<Untagged>,
    rest: Vec<Untagged>,
    map: BTreeMap<String, Option<u8>>,
    unit: (),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Unit),
        any::<u8>().prop_map(Shape::Newtype),
        (any::<i16>(), any::<bool>()).prop_map(|(x, y)| Shape::Tuple(x, y)),
        (
            proptest::option::of("[a-c]{0,2}"),
            proptest::collection::vec(any::<u8>(), 0..3)
        )
            .prop_map(|(a, b)| Shape::Struct { a, b }),
    ]
}

fn untagged() -> impl Strategy<Value = Untagged> {
    prop_oneof![
        (0u8..3).prop_map(Untagged::Small),
        (0u64..3).prop_map(Untagged::Big),
        "[a-c]{0,2}".prop_map(Untagged::Text),
        (0u8..2, 0u8..2).prop_map(|(a, b)| Untagged::Pair(a, b)),
        shape().prop_map(Untagged::Shape),
        Just(Untagged::Nothing),
    ]
}

fn args() -> impl Strategy<Value = Args> {
    (
        proptest::option::of(untagged()),
        proptest::collection::vec(untagged(), 0..3),
        proptest::collection::btree_map("[a-b]{0,1}", proptest::option::of(0u8..2), 0..3),
    )
        .prop_map(|(first, rest, map)| Args {
            first,
            rest,
            map,
            unit: (),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Distinct values of nested, untagged, skipping types never encode alike.
    #[test]
    fn distinct_values_never_encode_alike(a in args(), b in args()) {
        let (ka, _) = t87s::__private::canonical_key(&a).unwrap();
        let (kb, _) = t87s::__private::canonical_key(&b).unwrap();
        prop_assert_eq!(ka == kb, a == b, "{:?} vs {:?}", a, b);
    }

    /// Two argument lists never encode alike when one splits differently:
    /// `("a:b")` vs `("a", "b")`, `(1, 23)` vs `(12, 3)`.
    #[test]
    fn argument_lists_are_self_delimiting(a in "[a-c:]{0,4}", b in "[a-c:]{0,4}", c in "[a-c:]{0,4}") {
        let one = [t87s::__private::canonical_key(&a).unwrap().0, t87s::__private::canonical_key(&format!("{b}{c}")).unwrap().0].concat();
        let two = [t87s::__private::canonical_key(&format!("{a}{b}")).unwrap().0, t87s::__private::canonical_key(&c).unwrap().0].concat();
        prop_assert_eq!(one == two, a == format!("{a}{b}") && format!("{b}{c}") == c);
    }
}
