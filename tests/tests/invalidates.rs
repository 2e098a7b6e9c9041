//! `#[invalidates]`: after the write returns `Ok`, its tags are invalidated
//! in one call before the method returns; errors go where the user said.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use t87s::adapter::{
    AdapterFuture, EntryKey, MarkerKey, MarkerScope, MarkerSet, Read, StorageAdapter, StoredEntry,
    ValueForm,
};
use t87s::{
    cached, invalidates, AdapterError, Event, EventKind, MemoryAdapter, Observer, QueryCache,
    Static, TagSchema, Wild,
};

#[derive(TagSchema)]
struct Tags {
    posts: Wild,
    global: Static,
}

/// A memory store that counts invalidation calls (and their markers), and
/// can be told to fail the next few.
#[derive(Debug, Default, Clone)]
struct Counting {
    inner: MemoryAdapter,
    calls: Arc<AtomicUsize>,
    markers: Arc<Mutex<Vec<(String, MarkerScope)>>>,
    failures: Arc<AtomicUsize>,
}

impl StorageAdapter for Counting {
    fn value_form(&self) -> ValueForm {
        self.inner.value_form()
    }
    fn read<'a>(
        &'a self,
        key: EntryKey<'a>,
        m: MarkerSet<'a>,
        now: u64,
    ) -> AdapterFuture<'a, Read> {
        self.inner.read(key, m, now)
    }
    fn try_read_now(
        &self,
        key: EntryKey<'_>,
        m: MarkerSet<'_>,
        now: u64,
    ) -> Option<Result<Read, AdapterError>> {
        self.inner.try_read_now(key, m, now)
    }
    fn newest_marker<'a>(&'a self, m: MarkerSet<'a>) -> AdapterFuture<'a, u64> {
        self.inner.newest_marker(m)
    }
    fn version(&self) -> AdapterFuture<'_, u64> {
        self.inner.version()
    }
    fn write<'a>(&'a self, key: EntryKey<'a>, entry: Arc<StoredEntry>) -> AdapterFuture<'a, ()> {
        self.inner.write(key, entry)
    }
    fn delete<'a>(&'a self, key: EntryKey<'a>) -> AdapterFuture<'a, ()> {
        self.inner.delete(key)
    }
    fn invalidate<'a>(&'a self, markers: &'a [MarkerKey<'a>]) -> AdapterFuture<'a, ()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Box::pin(std::future::ready(Err(AdapterError::new(
                "store unreachable (test double)",
            ))));
        }
        self.markers
            .lock()
            .extend(markers.iter().map(|m| (m.path.to_owned(), m.scope)));
        self.inner.invalidate(markers)
    }
    fn clear(&self) -> AdapterFuture<'_, ()> {
        self.inner.clear()
    }
    fn disconnect(&self) -> AdapterFuture<'_, ()> {
        self.inner.disconnect()
    }
}

#[derive(Debug)]
enum AppError {
    Db(&'static str),
    Cache(t87s::Error),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Db(what) => write!(f, "database: {what}"),
            AppError::Cache(e) => write!(f, "cache: {e}"),
        }
    }
}

impl From<t87s::Error> for AppError {
    fn from(e: t87s::Error) -> Self {
        AppError::Cache(e)
    }
}

#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<EventKind>>>);

impl Observer for Seen {
    fn on_event(&self, event: &Event<'_>) {
        self.0.lock().push(event.kind);
    }
}

#[derive(Clone)]
struct Blog {
    cache: QueryCache<Tags>,
    db: Arc<Mutex<Vec<u64>>>,
    reads: Arc<AtomicUsize>,
}

impl Blog {
    fn new(store: &Counting) -> Self {
        Self::observed(store, Seen::default())
    }

    fn observed(store: &Counting, seen: Seen) -> Self {
        Self {
            cache: QueryCache::builder(store.clone())
                .observer(seen)
                .build()
                .unwrap(),
            db: Arc::new(Mutex::new(vec![0; 4])),
            reads: Arc::default(),
        }
    }

    #[cached(tags = [t.posts(id)], ttl = "1h")]
    async fn post(&self, id: usize) -> Result<u64, AppError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.db.lock()[id])
    }

    #[cached(tags = [t.posts(..)], ttl = "1h")]
    async fn total(&self) -> Result<u64, AppError> {
        Ok(self.db.lock().iter().sum())
    }

    #[invalidates(tags = [t.posts(id), exact(t.posts(..)), t.global()])]
    async fn set(&self, id: usize, value: u64) -> Result<(), AppError> {
        self.db.lock()[id] = value;
        Ok(())
    }

    #[invalidates(tags = [t.posts(id)])]
    async fn failing_write(&self, id: usize) -> Result<(), AppError> {
        let _ = id;
        Err(AppError::Db("constraint violated"))
    }

    #[invalidates(tags = [t.posts(id)], on_error = "log")]
    async fn set_logged(&self, id: usize, value: u64) -> Result<u64, AppError> {
        self.db.lock()[id] = value;
        Ok(value)
    }
}

#[tokio::test]
async fn tags_are_invalidated_in_one_call_after_the_write() {
    let store = Counting::default();
    let blog = Blog::new(&store);
    assert_eq!(blog.post(1).await.unwrap(), 0);
    assert_eq!(blog.total().await.unwrap(), 0);
    blog.set(1, 7).await.unwrap();
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        1,
        "one call for three tags"
    );
    assert_eq!(
        *store.markers.lock(),
        [
            ("posts/1".to_string(), MarkerScope::Prefix),
            ("posts".to_string(), MarkerScope::Exact),
            ("global".to_string(), MarkerScope::Prefix),
        ]
    );
    assert_eq!(blog.post(1).await.unwrap(), 7, "never the old value");
    assert_eq!(
        blog.total().await.unwrap(),
        7,
        "exact(posts) covers the list"
    );
}

#[tokio::test]
async fn invalidate_many_mixes_exact_and_prefix_tags_in_one_call() {
    let store = Counting::default();
    let blog = Blog::new(&store);
    blog.db.lock().copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(blog.post(1).await.unwrap(), 2);
    assert_eq!(blog.post(2).await.unwrap(), 3);
    assert_eq!(blog.total().await.unwrap(), 10);
    blog.db.lock().copy_from_slice(&[10, 20, 30, 40]);

    let t = blog.cache.tags();
    blog.cache
        .invalidate_many([t.posts(1).into(), t87s::Mark::exact(t.posts(..))])
        .await
        .unwrap();

    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        1,
        "one call to the store"
    );
    assert_eq!(
        *store.markers.lock(),
        [
            ("posts/1".to_string(), MarkerScope::Prefix),
            ("posts".to_string(), MarkerScope::Exact),
        ]
    );
    assert_eq!(blog.post(1).await.unwrap(), 20, "posts/1: invalidated");
    assert_eq!(blog.total().await.unwrap(), 100, "exact(posts): the list");
    assert_eq!(
        blog.post(2).await.unwrap(),
        3,
        "posts/2 is below posts, which was invalidated exactly: still cached"
    );
}

#[tokio::test]
async fn a_failed_write_invalidates_nothing() {
    let store = Counting::default();
    let blog = Blog::new(&store);
    blog.post(2).await.unwrap();
    let error = blog.failing_write(2).await.unwrap_err();
    assert!(matches!(error, AppError::Db(_)));
    assert_eq!(store.calls.load(Ordering::SeqCst), 0);
    blog.post(2).await.unwrap();
    assert_eq!(blog.reads.load(Ordering::SeqCst), 1, "still cached");
}

#[tokio::test]
async fn a_failed_invalidation_is_the_methods_error() {
    let store = Counting::default();
    let blog = Blog::new(&store);
    store.failures.store(1, Ordering::SeqCst);
    let error = blog.set(0, 5).await.unwrap_err();
    assert!(
        matches!(&error, AppError::Cache(t87s::Error::Adapter(_))),
        "{error:?}"
    );
    assert_eq!(
        blog.db.lock()[0],
        5,
        "the write happened; the caller decides"
    );
}

#[tokio::test(start_paused = true)]
async fn on_error_log_returns_ok_and_retries_in_the_background() {
    let store = Counting::default();
    let seen = Seen::default();
    let blog = Blog::observed(&store, seen.clone());
    assert_eq!(blog.post(3).await.unwrap(), 0);
    store.failures.store(2, Ordering::SeqCst);
    assert_eq!(
        blog.set_logged(3, 9).await.unwrap(),
        9,
        "Ok although the invalidation failed"
    );
    // Paused time: the retries' sleeps pass at once once nothing else runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        3,
        "the first call and two retries"
    );
    assert_eq!(blog.post(3).await.unwrap(), 9, "the retry landed");
    assert!(!seen.0.lock().contains(&EventKind::InvalidationFailed));
    // A store that stays down: retried for 10 minutes, then given up, and
    // said so.
    store.failures.store(usize::MAX, Ordering::SeqCst);
    blog.set_logged(3, 10).await.unwrap();
    tokio::time::sleep(Duration::from_secs(9 * 60)).await;
    assert!(!seen.0.lock().contains(&EventKind::InvalidationFailed));
    tokio::time::sleep(Duration::from_secs(2 * 60)).await;
    assert!(seen.0.lock().contains(&EventKind::InvalidationFailed));
    assert_eq!(blog.cache.primitives().in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn failed_invalidations_are_returned_then_retried_coalesced_until_they_land() {
    let store = Counting::default();
    let blog = Blog::new(&store);
    assert_eq!(
        (blog.post(1).await.unwrap(), blog.post(2).await.unwrap()),
        (0, 0)
    );
    store.failures.store(3, Ordering::SeqCst);
    // Three writes whose invalidations fail: each caller gets the error.
    assert!(blog.set(1, 5).await.is_err());
    assert!(blog.set(1, 6).await.is_err());
    assert!(blog.set(2, 7).await.is_err());
    assert_eq!(store.calls.load(Ordering::SeqCst), 3);
    // One retry, 100 ms later, carries every marker once.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(store.calls.load(Ordering::SeqCst), 4, "one coalesced retry");
    let mut landed = store.markers.lock().clone();
    landed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        landed,
        [
            ("global".to_string(), MarkerScope::Prefix),
            ("posts".to_string(), MarkerScope::Exact),
            ("posts/1".to_string(), MarkerScope::Prefix),
            ("posts/2".to_string(), MarkerScope::Prefix),
        ]
    );
    assert_eq!(
        (blog.post(1).await.unwrap(), blog.post(2).await.unwrap()),
        (6, 7)
    );
    // Nothing is left to retry.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(store.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_once_the_write_returns() {
    let store = Counting::default();
    let blog = Blog::new(&store);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers keep the key hot and keep fetches in flight while the writer writes.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (blog, stop) = (blog.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    blog.post(0).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for value in 1..=300u64 {
        blog.set(0, value).await.unwrap();
        assert_eq!(
            blog.post(0).await.unwrap(),
            value,
            "a read after the write returned"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
}
