//! `QueryCache<Schema>`: the typed front of the engine.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::clock::Clock;
use crate::codec::{Codec, Postcard};
use crate::duration::IntoDuration;
use crate::engine::{Cacheable, Primitives, PrimitivesBuilder};
use crate::entry::Entries;
use crate::error::{ConfigError, Error};
use crate::observer::Observer;
use crate::schema::{IntoTag, Mark, TagSchema};
use crate::storage::MarkerScope;
use crate::storage::StorageAdapter;
use crate::tag::TagPath;

/// The future of an invalidation. A named type (not an `async fn`'s) so that
/// a wrong argument to `invalidate` is reported once, at the argument.
pub type Invalidation<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// A cache whose tags come from the schema `S`.
///
/// Put one in the struct that implements your queries and mark the methods
/// with [`#[cached(tags = [...])]`](crate::cached). Invalidate with tags built
/// from [`tags`](Self::tags): a `&str` is not a tag and does not compile.
/// [`primitives`](Self::primitives) is the escape hatch to the raw engine.
///
/// Cheap to clone (clones share the store and the in-flight map).
///
/// ```
/// use t87s::{MemoryAdapter, QueryCache, Static, TagSchema, Wild};
///
/// #[derive(TagSchema)]
/// struct AppTags { users: Wild, global: Static }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), t87s::Error> {
/// let cache: QueryCache<AppTags> = QueryCache::new(MemoryAdapter::new());
/// cache.invalidate(cache.tags().users(42)).await?;
/// cache.invalidate_exact(cache.tags().users(..)).await?; // the user list only
/// # Ok(()) }
/// ```
pub struct QueryCache<S: TagSchema, C: Codec = Postcard> {
    primitives: Primitives<C>,
    schema: PhantomData<fn() -> S>,
}

impl<S: TagSchema> QueryCache<S> {
    /// A cache over `adapter` with the engine's defaults (see [`Primitives::new`]).
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache: t87s::QueryCache<AppTags> = t87s::QueryCache::new(t87s::MemoryAdapter::new());
    /// ```
    pub fn new(adapter: impl StorageAdapter) -> Self {
        Self::from_primitives(Primitives::new(adapter))
    }

    /// Options: prefix, default ttl and grace, verification, clock, observer.
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, QueryCache, Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = QueryCache::<AppTags>::builder(MemoryAdapter::new())
    ///     .prefix("blog")
    ///     .default_ttl("10m")
    ///     .default_grace("1h")
    ///     .verify_percent(0.0)
    ///     .build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn builder(adapter: impl StorageAdapter) -> QueryCacheBuilder<S> {
        QueryCacheBuilder {
            inner: Primitives::builder(adapter),
            schema: PhantomData,
        }
    }
}

impl<S: TagSchema, C: Codec> QueryCache<S, C> {
    /// A typed cache over an engine built elsewhere.
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, QueryCache, Static, TagSchema};
    /// # use t87s::engine::Primitives;
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let engine = Primitives::new(MemoryAdapter::new());
    /// let cache = QueryCache::<AppTags>::from_primitives(engine);
    /// ```
    pub fn from_primitives(primitives: Primitives<C>) -> Self {
        Self {
            primitives,
            schema: PhantomData,
        }
    }

    /// The schema's tag builder: `cache.tags().posts(1).comments(..)`.
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, QueryCache, Static, TagSchema, Wild};
    /// # #[derive(TagSchema)] struct PostTags { settings: Static }
    /// # #[derive(TagSchema)] struct AppTags { posts: Wild<PostTags> }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache: QueryCache<AppTags> = QueryCache::new(MemoryAdapter::new());
    /// let settings = cache.tags().posts(1).settings();
    /// assert_eq!(settings.to_string(), "posts/1/settings");
    /// # Ok(()) }
    /// ```
    pub fn tags(&self) -> S::Root {
        S::root()
    }

    /// Makes stale every entry tagged with `tag` or below it, in every
    /// process sharing the store. See [`Primitives::invalidate`].
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, QueryCache, Static, TagSchema, Wild};
    /// # #[derive(TagSchema)] struct PostTags { settings: Static }
    /// # #[derive(TagSchema)] struct AppTags { posts: Wild<PostTags> }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache: QueryCache<AppTags> = QueryCache::new(MemoryAdapter::new());
    /// cache.invalidate(cache.tags().posts(1)).await?; // post 1 and its settings
    /// # Ok(()) }
    /// ```
    pub fn invalidate(&self, tag: impl IntoTag<S>) -> Invalidation<'_> {
        let path = tag.into_tag().into_path();
        Box::pin(async move { self.primitives.invalidate(&[path]).await })
    }

    /// Invalidates several tags in one call to the store (one round trip
    /// on Redis): plain tags reach everything below them, [`Mark::exact`]
    /// only entries tagged exactly so, and both kinds mix.
    ///
    /// ```
    /// # use t87s::{Mark, MemoryAdapter, QueryCache, TagSchema, Wild};
    /// # #[derive(TagSchema)] struct AppTags { users: Wild, posts: Wild }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache: QueryCache<AppTags> = QueryCache::new(MemoryAdapter::new());
    /// let t = cache.tags();
    /// cache.invalidate_many([t.users(1), t.users(2)]).await?;
    /// // Post 7 and everything below it, and the post list (not each post):
    /// cache.invalidate_many([t.posts(7).into(), Mark::exact(t.posts(..))]).await?;
    /// # Ok(()) }
    /// ```
    pub fn invalidate_many<M: Into<Mark<S>>>(
        &self,
        marks: impl IntoIterator<Item = M>,
    ) -> Invalidation<'_> {
        let marks: Vec<(TagPath, MarkerScope)> = marks
            .into_iter()
            .map(|mark| mark.into().into_parts())
            .collect();
        Box::pin(async move { self.primitives.invalidate_marks(&marks).await })
    }

    /// Makes stale only the entries tagged with exactly `tag`.
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, QueryCache, Static, TagSchema, Wild};
    /// # #[derive(TagSchema)] struct PostTags { settings: Static }
    /// # #[derive(TagSchema)] struct AppTags { posts: Wild<PostTags> }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache: QueryCache<AppTags> = QueryCache::new(MemoryAdapter::new());
    /// cache.invalidate_exact(cache.tags().posts(..)).await?; // the post list, not each post
    /// # Ok(()) }
    /// ```
    pub fn invalidate_exact(&self, tag: impl IntoTag<S>) -> Invalidation<'_> {
        let path = tag.into_tag().into_path();
        Box::pin(async move { self.primitives.invalidate_exact(&[path]).await })
    }

    /// Removes every entry and marker from the store.
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, QueryCache, Static, TagSchema, Wild};
    /// # #[derive(TagSchema)] struct PostTags { settings: Static }
    /// # #[derive(TagSchema)] struct AppTags { posts: Wild<PostTags> }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache: QueryCache<AppTags> = QueryCache::new(MemoryAdapter::new());
    /// cache.clear().await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<(), Error> {
        self.primitives.clear().await
    }

    /// Releases the adapter's connections.
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, QueryCache, Static, TagSchema, Wild};
    /// # #[derive(TagSchema)] struct PostTags { settings: Static }
    /// # #[derive(TagSchema)] struct AppTags { posts: Wild<PostTags> }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache: QueryCache<AppTags> = QueryCache::new(MemoryAdapter::new());
    /// cache.disconnect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(&self) -> Result<(), Error> {
        self.primitives.disconnect().await
    }

    /// The raw engine: string keys, raw tag paths, `get`/`set`/`delete`.
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, QueryCache, Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache: QueryCache<AppTags> = QueryCache::new(MemoryAdapter::new());
    /// assert_eq!(cache.primitives().prefix(), "t87s");
    /// ```
    pub fn primitives(&self) -> &Primitives<C> {
        &self.primitives
    }
}

impl<S: TagSchema, C: Codec> Clone for QueryCache<S, C> {
    fn clone(&self) -> Self {
        Self::from_primitives(self.primitives.clone())
    }
}

impl<S: TagSchema, C: Codec> fmt::Debug for QueryCache<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryCache")
            .field("schema", &std::any::type_name::<S>())
            .field("primitives", &self.primitives)
            .finish()
    }
}

/// Options for a [`QueryCache`]: those of [`PrimitivesBuilder`].
///
/// ```
/// # use t87s::{ManualClock, MemoryAdapter, QueryCache, Static, TagSchema};
/// # #[derive(TagSchema)] struct AppTags { global: Static }
/// let cache = QueryCache::<AppTags>::builder(MemoryAdapter::new())
///     .clock(ManualClock::new(0))
///     .refresh_backoff("5s")
///     .build()?;
/// # Ok::<(), t87s::ConfigError>(())
/// ```
pub struct QueryCacheBuilder<S: TagSchema, C: Codec = Postcard> {
    inner: PrimitivesBuilder<C>,
    schema: PhantomData<fn() -> S>,
}

impl<S: TagSchema, C: Codec> QueryCacheBuilder<S, C> {
    fn map(self, f: impl FnOnce(PrimitivesBuilder<C>) -> PrimitivesBuilder<C>) -> Self {
        Self {
            inner: f(self.inner),
            schema: PhantomData,
        }
    }

    /// See [`PrimitivesBuilder::prefix`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).prefix("blog").build()?;
    /// assert_eq!(cache.primitives().prefix(), "blog");
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        self.map(|b| b.prefix(prefix))
    }

    /// See [`PrimitivesBuilder::default_ttl`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).default_ttl("10m").build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn default_ttl(self, ttl: impl IntoDuration) -> Self {
        self.map(|b| b.default_ttl(ttl))
    }

    /// See [`PrimitivesBuilder::default_grace`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).default_grace("1h").build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn default_grace(self, grace: impl IntoDuration) -> Self {
        self.map(|b| b.default_grace(grace))
    }

    /// See [`PrimitivesBuilder::refresh_backoff`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).refresh_backoff("5s").build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn refresh_backoff(self, backoff: impl IntoDuration) -> Self {
        self.map(|b| b.refresh_backoff(backoff))
    }

    /// See [`PrimitivesBuilder::lease_timeout`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).lease_timeout("2s").build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn lease_timeout(self, timeout: impl IntoDuration) -> Self {
        self.map(|b| b.lease_timeout(timeout))
    }

    /// See [`PrimitivesBuilder::max_value_bytes`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).max_value_bytes(1 << 20).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn max_value_bytes(self, limit: usize) -> Self {
        self.map(|b| b.max_value_bytes(limit))
    }

    /// See [`PrimitivesBuilder::verify_percent`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).verify_percent(0.01).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn verify_percent(self, fraction: f64) -> Self {
        self.map(|b| b.verify_percent(fraction))
    }

    /// See [`PrimitivesBuilder::clock`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).clock(t87s::ManualClock::new(0)).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn clock(self, clock: impl Clock) -> Self {
        self.map(|b| b.clock(clock))
    }

    /// See [`PrimitivesBuilder::observer`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// struct Log;
    /// impl t87s::Observer for Log { fn on_event(&self, e: &t87s::Event<'_>) { eprintln!("{e}") } }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).observer(Log).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn observer(self, observer: impl Observer) -> Self {
        self.map(|b| b.observer(observer))
    }

    /// See [`PrimitivesBuilder::codec`].
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let cache = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).codec(t87s::Postcard).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn codec<C2: Codec>(self, codec: C2) -> QueryCacheBuilder<S, C2> {
        QueryCacheBuilder {
            inner: self.inner.codec(codec),
            schema: PhantomData,
        }
    }

    /// Checks every option and builds the cache.
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct AppTags { global: Static }
    /// let err = t87s::QueryCache::<AppTags>::builder(t87s::MemoryAdapter::new()).default_ttl("soon").build().unwrap_err();
    /// assert!(err.to_string().contains("default_ttl"));
    /// ```
    pub fn build(self) -> Result<QueryCache<S, C>, ConfigError> {
        Ok(QueryCache::from_primitives(self.inner.build()?))
    }
}

impl<S: TagSchema, C: Codec> fmt::Debug for QueryCacheBuilder<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryCacheBuilder")
            .field("inner", &self.inner)
            .finish()
    }
}

tokio::task_local! {
    static ENTRIES: RefCell<Option<Box<dyn Any + Send>>>;
}

/// Runs a call to a `#[cached]` method and returns the [`Entries`] of its
/// query (the entry before and after), or `None` if the call ran no cached
/// query. When cached calls nest, the outermost one's entries are returned.
///
/// ```
/// # use t87s::{cached, MemoryAdapter, QueryCache, Static, TagSchema};
/// # #[derive(TagSchema)] struct AppTags { global: Static }
/// #[derive(Clone)]
/// struct Settings { cache: QueryCache<AppTags> }
///
/// impl Settings {
///     #[cached(tags = [t.global()])]
///     async fn theme(&self) -> Result<String, std::io::Error> {
///         Ok("dark".into())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), std::io::Error> {
/// let s = Settings { cache: QueryCache::new(MemoryAdapter::new()) };
/// let miss = t87s::entries(s.theme()).await?.expect("a cached call");
/// assert!(miss.before.is_none());
/// let hit = t87s::entries(s.theme()).await?.expect("a cached call");
/// assert_eq!(hit.before.map(|e| e.value), Some("dark".to_string()));
/// # Ok(()) }
/// ```
pub async fn entries<T, E>(
    call: impl Future<Output = Result<T, E>>,
) -> Result<Option<Entries<T>>, E>
where
    T: Cacheable,
{
    let _scope = Scope::enter();
    let (result, slot) = ENTRIES
        .scope(RefCell::new(None), async move {
            let result = call.await;
            let slot = ENTRIES.with(|slot| slot.borrow_mut().take());
            (result, slot)
        })
        .await;
    let value = result?;
    let entries = slot
        .and_then(|any| any.downcast::<Entries<T>>().ok())
        .map(|boxed| *boxed);
    // The entries must describe the value the call returned.
    Ok(entries.filter(|e| e.after.value == value))
}

/// How many [`entries`] calls are running anywhere: while none is, the hit
/// path skips the task-local lookup.
static SCOPES: AtomicUsize = AtomicUsize::new(0);

struct Scope;

impl Scope {
    fn enter() -> Self {
        SCOPES.fetch_add(1, Ordering::AcqRel);
        Scope
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        SCOPES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether the current task is inside [`entries`].
pub(crate) fn capturing_entries() -> bool {
    SCOPES.load(Ordering::Acquire) > 0 && ENTRIES.try_with(|_| ()).is_ok()
}

/// Hands a query's entries to the enclosing [`entries`] call.
pub(crate) fn deposit_entries<T: Cacheable>(entries: Entries<T>) {
    let _ = ENTRIES.try_with(|slot| *slot.borrow_mut() = Some(Box::new(entries)));
}
