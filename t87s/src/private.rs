//! Items the macros' generated code names. Not part of the public API: no
//! stability promise, hidden from docs. Generated code reaches everything
//! through `::t87s::__private`, so users need no other dependency.

use std::fmt;
use std::future::Future;

pub use core::option::Option;
pub use core::result::Result;
pub use std::time::Duration;

pub use crate::engine::QueryOptions;
pub use crate::schema::{IntoTag, Tag, TagSchema, WildArg};
pub use crate::tag::TagPath;

use std::marker::PhantomData;

use crate::cache::{capturing_entries, deposit_entries, QueryCache};
use crate::codec::Codec;
use crate::engine::{Cacheable, Call, First};
use crate::error::Error;
pub use crate::key::KeyError;
use crate::key::KeyParts;
use crate::storage::MarkerScope;
use serde::ser::Error as _;
use serde::Serialize;

pub use crate::engine::Share;

/// Decodes a Redis entry envelope (for the fuzz target): `None` for bytes
/// that are not one.
#[cfg(feature = "redis")]
pub fn decode_redis_entry(bytes: &[u8]) -> Option<crate::entry::StoredEntry> {
    crate::storage::RedisAdapter::decode(bytes)
}

/// `ttl = "10m"` in `#[cached]`: evaluated in a `const`, so a bad literal
/// fails the build.
pub const fn const_duration(text: &str) -> Option<Duration> {
    crate::duration::duration_from_str(text)
}

/// What the field named by `cache = field` of `#[cached]` and
/// `#[invalidates]` (default `cache`) must be: a [`QueryCache`], or behind
/// a pointer to one (`Arc<QueryCache<S>>`).
#[diagnostic::on_unimplemented(
    message = "this field of `self` is not a `QueryCache`",
    label = "not a `QueryCache`",
    note = "`#[cached]` and `#[invalidates]` read the cache from `self.cache`, or from the field named with `cache = field_name`, like `#[cached(tags = [...], cache = field_name)]`: name the field that holds the `QueryCache`"
)]
pub trait CacheField {
    /// The cache's schema.
    type Schema: TagSchema;
    /// The cache's codec.
    type Codec: Codec;

    /// The cache.
    fn query_cache(&self) -> &QueryCache<Self::Schema, Self::Codec>;
}

impl<S: TagSchema, C: Codec> CacheField for QueryCache<S, C> {
    type Schema = S;
    type Codec = C;

    #[inline(always)]
    fn query_cache(&self) -> &Self {
        self
    }
}

/// A pointer to a cache (`Arc<QueryCache<S>>`, `Box`, any `Deref`). Not
/// recommended in errors, which then speak of the field's type.
#[diagnostic::do_not_recommend]
impl<P> CacheField for P
where
    P: std::ops::Deref,
    P::Target: CacheField,
{
    type Schema = <P::Target as CacheField>::Schema;
    type Codec = <P::Target as CacheField>::Codec;

    #[inline(always)]
    fn query_cache(&self) -> &QueryCache<Self::Schema, Self::Codec> {
        (**self).query_cache()
    }
}

/// `&self.cache` in a `#[cached]` or `#[invalidates]` method: the field
/// itself once inlined.
#[inline(always)]
pub fn cache_field<F: CacheField + ?Sized>(field: &F) -> &QueryCache<F::Schema, F::Codec> {
    field.query_cache()
}

/// The schema root for the `t` of `tags = [...]`.
pub fn root<S: TagSchema, C: Codec>(_cache: &QueryCache<S, C>) -> S::Root {
    S::root()
}

/// One element of `tags = [...]`: must be a tag of the cache's own schema.
pub fn tag_path<S: TagSchema, C: Codec>(
    _cache: &QueryCache<S, C>,
    tag: impl IntoTag<S>,
) -> TagPath {
    tag.into_tag().into_path()
}

/// A tag builder seen through its methods that take no id: in `tags = [...]`,
/// `#[cached]` and `#[invalidates]` write `t.posts()` as
/// `NoId::no_id(&t).posts()`. `#[derive(TagSchema)]` gives the view a
/// method for each `Wild` field, with a bound that never holds, so a `Wild`
/// field called without an id is an error that says to write `(id)` or
/// `(..)`; every other method is the builder's own (the view derefs to it;
/// `into_tag()` is called on the builder itself).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tag builder",
    label = "no tags below this",
    note = "tags are built from `t`: `t.posts(id)`, `t.posts(id).comments(..)`, `t.global()`"
)]
pub trait NoId {
    /// The view.
    type View<'a>
    where
        Self: 'a;

    /// `self` through the view.
    fn no_id(&self) -> Self::View<'_>;
}

/// No schema: `#[derive(TagSchema)]` implements the bound of each `Wild`
/// field's method on the `NoId` view for it alone, so that the error for a
/// missing id does not suggest implementing that bound.
pub enum NoSchema {}

/// A tag has nothing below it: its view is itself.
impl<R> NoId for Tag<R> {
    type View<'a>
        = &'a Tag<R>
    where
        Self: 'a;

    fn no_id(&self) -> &Tag<R> {
        self
    }
}

/// The path of a named child below `parent` (or at the top when `None`).
pub fn child(parent: Option<&TagPath>, segment: &str) -> TagPath {
    match parent {
        Some(parent) => parent.child(segment),
        None => TagPath::segment(segment),
    }
}

/// What an argument of a `#[cached]` method must be: part of its key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "this argument is not `Serialize`",
    note = "the arguments of a `#[cached]` method are encoded into its cache key: derive or implement `serde::Serialize` for `{Self}`"
)]
pub trait KeyPart: Serialize {}

impl<T: Serialize + ?Sized> KeyPart for T {}

/// Where a `#[cached]` method's arguments go into its key (checked at each
/// argument's span).
pub struct KeyBuilder<'a> {
    parts: &'a mut KeyParts,
    failed: Option<KeyError>,
}

impl KeyBuilder<'_> {
    /// Appends one argument.
    #[inline(always)]
    pub fn arg<T: KeyPart + ?Sized>(&mut self, value: &T) {
        if self.failed.is_none() {
            if let Err(error) = self.parts.arg(value) {
                self.failed = Some(error);
            }
        }
    }
}

pub use crate::key::KeyName;

/// The digest seed of a method's identity (its 16 hex digits), for
/// [`KeyName::new`].
pub const fn identity_seed(identity: &[u8; 16]) -> u64 {
    crate::key::identity_seed(identity)
}

/// Joins `parts` into the bytes of a constant string of length `N`.
pub const fn concat<const N: usize>(parts: &[&str]) -> [u8; N] {
    crate::key::concat(parts)
}

/// The total length of `parts`.
pub const fn total_len(parts: &[&str]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// The identity of a cached method (module path, source position, method
/// name; or the pinned `name` alone), and its `version`, as 16 hex digits.
pub const fn identity_hex(
    module: &str,
    line: u32,
    column: u32,
    method: &str,
    pinned: &str,
    version: u32,
) -> [u8; 16] {
    crate::key::identity_hex(module, line, column, method, pinned, version)
}

/// The canonical key encoding of one value, and its readable form (for the
/// property tests of the encoding).
pub fn canonical_key<T: Serialize + ?Sized>(value: &T) -> Result<(Vec<u8>, String), KeyError> {
    crate::key::canonical(value)
}

/// The last segment of a module path.
pub const fn last_segment(path: &str) -> &str {
    crate::key::last_segment(path)
}

/// What `#[cached]` needs of `Self` to run refreshes after the call returns.
#[diagnostic::on_unimplemented(
    message = "`#[cached]` methods need `{Self}: Clone + Send + Sync + 'static`",
    label = "`{Self}` is not `Clone + Send + Sync + 'static`",
    note = "a background refresh owns a clone of `self`; derive `Clone` (keep pools and the `QueryCache` in it: they are cheap to clone)"
)]
pub trait OwnedSelf: Clone + Send + Sync + 'static {}

impl<T: Clone + Send + Sync + 'static> OwnedSelf for T {}

/// Clones `self` for a fetch that may outlive the call.
pub fn owned_self<T: OwnedSelf>(this: &T) -> T {
    this.clone()
}

/// How the error type `E` of a `#[cached]` method is shared with the
/// callers that waited on a failed fetch, picked at compile time: by clone if
/// `E: Clone`, else by conversion if `E: From<t87s::Error>`, else not.
///
/// Generated code calls `(&&&ShareProbe::<E>::new()).share()` with the three
/// traits in scope: method lookup tries `&&ShareProbe` (Clone) first, then
/// `&ShareProbe` (From), then `ShareProbe`.
pub struct ShareProbe<E>(PhantomData<fn() -> E>);

impl<E> ShareProbe<E> {
    /// The probe for `E`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<E> Default for ShareProbe<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// `E: Clone`: waiters get clones.
pub trait ShareByClone<E> {
    /// The strategy.
    fn share(&self) -> Share<E>;
}

impl<E: Clone> ShareByClone<E> for &&ShareProbe<E> {
    fn share(&self) -> Share<E> {
        Share::Cloned(E::clone)
    }
}

/// `E: From<t87s::Error>`: waiters get `Error::SharedFetch` converted.
pub trait ShareByFrom<E> {
    /// The strategy.
    fn share(&self) -> Share<E>;
}

impl<E: From<Error>> ShareByFrom<E> for &ShareProbe<E> {
    fn share(&self) -> Share<E> {
        Share::Converted(E::from)
    }
}

/// Any other `E`: waiters take turns fetching.
pub trait ShareNot<E> {
    /// The strategy.
    fn share(&self) -> Share<E>;
}

impl<E> ShareNot<E> for ShareProbe<E> {
    fn share(&self) -> Share<E> {
        Share::Not
    }
}

/// The error type of a `#[cached]` method's `Result`.
#[diagnostic::on_unimplemented(
    message = "a `#[cached]` method must return `Result<T, E>`, not `{Self}`",
    label = "not a `Result`",
    note = "errors are never cached; return `Result<T, E>` with the cached value as `T`"
)]
pub trait Fallible {
    /// `E` of `Result<T, E>`.
    type Error;
}

impl<T, E> Fallible for Result<T, E> {
    type Error = E;
}

/// The query behind every `#[cached]` method.
///
/// `args` are the arguments; `key_of` appends them to the key;
/// `share` says how a failed fetch's error reaches its waiters (called on a
/// miss only);
/// `tags` builds the tags from them (only when needed: a memory hit builds
/// none); `make` turns them into the fetch (only when one runs: a hit never
/// clones `self` or the arguments). A hit on a store that answers at once
/// is answered here, in the call (which runs when the method's future is
/// first polled), with no future of its own and no allocation; anything
/// else is one boxed future. A key that cannot be built (an argument's
/// `Serialize` failed) bypasses the cache.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn query<'a, S, C, T, E, K, A, TG, TT, SH, M, F, Fut>(
    cache: &'a QueryCache<S, C>,
    name: &'static KeyName,
    key_of: K,
    args: A,
    tags: TG,
    options: QueryOptions<T>,
    share: SH,
    make: M,
) -> Answer<T, E, impl Future<Output = Result<T, E>> + 'a>
where
    S: TagSchema,
    C: Codec,
    T: Cacheable,
    E: fmt::Display + Send + 'static,
    K: Fn(&mut KeyBuilder<'_>, &A) + 'a,
    A: 'a,
    TG: Fn(&A) -> TT + 'a,
    TT: AsRef<[TagPath]> + 'a,
    SH: FnOnce() -> Share<E> + 'a,
    M: FnOnce(A) -> F + 'a,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let engine = cache.primitives();
    let capturing = capturing_entries();
    let mut failure = None;
    let first = engine.first_look(!capturing, name, |parts| {
        let mut builder = KeyBuilder {
            parts,
            failed: None,
        };
        key_of(&mut builder, &args);
        match builder.failed {
            None => true,
            Some(error) => {
                failure = Some(error);
                false
            }
        }
    });
    let key = match first {
        First::Hit(value) => return Answer::Ready(Some(Ok(value))),
        First::Miss(key) => Some(key),
        First::NoKey => None,
    };
    Answer::Pending(Box::pin(async move {
        let Some(key) = key else {
            let error = failure.unwrap_or_else(|| KeyError::custom("unknown"));
            engine.uncached(name.label(), &error);
            return make(args)().await;
        };
        let call = Call::new(args, tags, make);
        let served = engine.run(&key, call, options, share()).await?;
        if capturing {
            let entries = engine.entries_of(served);
            let value = entries.after.value.clone();
            deposit_entries(entries);
            Ok(value)
        } else {
            Ok(served.value)
        }
    }))
}

/// What a `#[cached]` call awaits: its answer already (a hit), or the boxed
/// future of the rest of the query.
pub enum Answer<T, E, F> {
    /// Answered in the call (taken by the first poll).
    Ready(Option<Result<T, E>>),
    /// The rest of the query.
    Pending(std::pin::Pin<Box<F>>),
}

// Nothing in it is pinned in place: the future is boxed.
impl<T, E, F> Unpin for Answer<T, E, F> {}

impl<T, E, F: Future<Output = Result<T, E>>> Future for Answer<T, E, F> {
    type Output = Result<T, E>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            // Polled again after it answered: it never answers twice.
            Answer::Ready(answer) => answer
                .take()
                .map_or(std::task::Poll::Pending, std::task::Poll::Ready),
            Answer::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

/// One tag of `#[invalidates(tags = [...])]`, with its scope: the public
/// [`Mark`](crate::Mark), built with the cache at hand so its schema is
/// inferred from it.
pub struct Mark;

impl Mark {
    /// `t.posts(id)`: the tag and everything below it.
    pub fn prefix<S: TagSchema, C: Codec>(
        _cache: &QueryCache<S, C>,
        tag: impl IntoTag<S>,
    ) -> crate::Mark<S> {
        crate::Mark::prefix(tag)
    }

    /// `exact(t.posts(..))`: entries tagged exactly so.
    pub fn exact<S: TagSchema, C: Codec>(
        _cache: &QueryCache<S, C>,
        tag: impl IntoTag<S>,
    ) -> crate::Mark<S> {
        crate::Mark::exact(tag)
    }
}

/// What `#[invalidates]` does with a failed invalidation.
pub enum OnError<E> {
    /// The method returns it, converted.
    Return(fn(Error) -> E),
    /// Logged and retried in the background; the method returns `Ok`.
    Log,
}

/// What `on_error = "return"` needs of the method's error type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry a failed invalidation",
    label = "the error type of this `#[invalidates]` method",
    note = "implement `From<t87s::Error>` for `{Self}`, or write `#[invalidates(tags = [...], on_error = \"log\")]` to log the failure and retry in the background"
)]
pub trait FromCacheError {
    /// The conversion.
    fn from_cache_error(error: Error) -> Self;
}

impl<E: From<Error>> FromCacheError for E {
    fn from_cache_error(error: Error) -> Self {
        E::from(error)
    }
}

/// `on_error = "return"`: the method's error, from a failed invalidation.
pub fn invalidation_error<E: FromCacheError>(error: Error) -> E {
    E::from_cache_error(error)
}

/// After the write of an `#[invalidates]` method returned `Ok`: every tag,
/// in one call to the store.
pub async fn after_write<S: TagSchema, C: Codec, E>(
    cache: &QueryCache<S, C>,
    marks: &[crate::Mark<S>],
    on_error: OnError<E>,
) -> Result<(), E> {
    let marks: Vec<(TagPath, MarkerScope)> = marks.iter().map(|m| m.clone().into_parts()).collect();
    let engine = cache.primitives();
    // A failure is retried in the background either way (see the engine).
    match engine.invalidate_marks(&marks).await {
        Ok(()) => Ok(()),
        Err(error) => match on_error {
            OnError::Return(convert) => Err(convert(error)),
            OnError::Log => Ok(()),
        },
    }
}
