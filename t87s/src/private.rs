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
use crate::codec::{Codec, CodecError};
use crate::engine::{Cacheable, Call, First};
use crate::error::Error;
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

/// Builds the cache key of one call: the implementing type, the method (with
/// a hash of its signature, so two traits' same-named methods differ), and
/// the postcard encoding of each argument in order, in hex (length-prefixed
/// and typed, so `("a:b")` and `("a", "b")`, or `"1"` and `1`, never
/// collide).
pub struct KeyBuilder<'a> {
    key: &'a mut String,
    failed: Option<CodecError>,
}

impl KeyBuilder<'_> {
    /// Appends one argument (checked at the argument's span).
    pub fn arg<T: KeyPart + ?Sized>(&mut self, value: &T) {
        if self.failed.is_some() {
            return;
        }
        let mut stack = [0u8; 64];
        match postcard::to_slice(value, &mut stack) {
            Ok(bytes) => push_hex(self.key, bytes),
            Err(postcard::Error::SerializeBufferFull) => match postcard::to_stdvec(value) {
                Ok(bytes) => push_hex(self.key, &bytes),
                Err(e) => self.failed = Some(CodecError::Encode(e.to_string())),
            },
            Err(e) => self.failed = Some(CodecError::Encode(e.to_string())),
        }
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * bytes.len());
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

/// Builds the key of `type_name::method(args)` into `out`.
#[inline]
fn build_key(
    out: &mut String,
    type_name: &str,
    method: &str,
    key_of: impl FnOnce(&mut KeyBuilder<'_>),
) -> Result<(), CodecError> {
    out.push_str(type_name);
    out.push_str("::");
    out.push_str(method);
    out.push(':');
    let mut builder = KeyBuilder {
        key: out,
        failed: None,
    };
    key_of(&mut builder);
    match builder.failed {
        Some(error) => Err(error),
        None => Ok(()),
    }
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
/// allocates nothing: its key is built in a reused thread-local buffer. A
/// key that cannot be built (an argument's `Serialize` failed) bypasses the
/// cache.
#[allow(clippy::too_many_arguments)]
pub async fn query<S, C, T, E, K, A, TG, TT, SH, M, F, Fut>(
    cache: &QueryCache<S, C>,
    type_name: &'static str,
    method: &'static str,
    key_of: K,
    args: A,
    tags: TG,
    options: QueryOptions<T>,
    share: SH,
    make: M,
) -> Result<T, E>
where
    S: TagSchema,
    C: Codec,
    T: Cacheable,
    E: fmt::Display + Send + 'static,
    K: Fn(&mut KeyBuilder<'_>, &A),
    TG: Fn(&A) -> TT,
    TT: AsRef<[TagPath]>,
    SH: FnOnce() -> Share<E>,
    M: FnOnce(A) -> F,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let engine = cache.primitives();
    let capturing = capturing_entries();
    let first = engine.first_look(!capturing, |key| {
        build_key(key, type_name, method, |k| key_of(k, &args)).is_ok()
    });
    let key = match first {
        First::Hit(value) => return Ok(value),
        First::Miss(key) => key,
        First::NoKey => return make(args)().await,
    };
    // Boxed: the full path's future is large, and the hit path above should
    // not pay for moving it around.
    let call = Call::new(args, tags, make);
    let served = Box::pin(engine.run(&key, call, options, share())).await?;
    if capturing {
        let entries = engine.entries_of(served);
        let value = entries.after.value.clone();
        deposit_entries(entries);
        Ok(value)
    } else {
        Ok(served.value)
    }
}
