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

use crate::cache::{capturing_entries, deposit_entries, QueryCache};
use crate::codec::{Codec, CodecError};
use crate::engine::{Cacheable, Call};
use serde::Serialize;

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
/// the postcard encoding of each argument in order (length-prefixed and
/// typed, so `("a:b")` and `("a", "b")`, or `"1"` and `1`, never collide).
pub struct KeyBuilder {
    key: String,
    bytes: Vec<u8>,
    failed: Option<CodecError>,
}

impl KeyBuilder {
    /// Starts the key of `Me::method`.
    pub fn new<Me: ?Sized>(method: &'static str) -> Self {
        let type_name = std::any::type_name::<Me>();
        let mut key = String::with_capacity(type_name.len() + method.len() + 35);
        key.push_str(type_name);
        key.push_str("::");
        key.push_str(method);
        key.push(':');
        Self {
            key,
            bytes: Vec::new(),
            failed: None,
        }
    }

    /// Appends one argument (checked at the argument's span).
    pub fn arg<T: KeyPart + ?Sized>(&mut self, value: &T) {
        if self.failed.is_some() {
            return;
        }
        match postcard::to_extend(value, std::mem::take(&mut self.bytes)) {
            Ok(bytes) => self.bytes = bytes,
            Err(e) => self.failed = Some(CodecError::Encode(e.to_string())),
        }
    }

    /// The key, or why an argument could not be encoded.
    pub fn finish(self) -> Result<String, CodecError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let mut key = self.key;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for byte in self.bytes {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Ok(key)
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

/// The query behind every `#[cached]` method.
///
/// `args` are the method's arguments; `tags` builds the tags from them (only
/// when needed: a memory hit builds none); `make` turns them into the fetch
/// (only when one runs: a hit never clones `self` or the arguments). A key
/// that cannot be built (an argument's `Serialize` failed) bypasses the cache.
#[allow(clippy::too_many_arguments)]
pub async fn query<S, C, T, E, A, TG, TT, M, F, Fut>(
    cache: &QueryCache<S, C>,
    key: Result<String, CodecError>,
    args: A,
    tags: TG,
    options: QueryOptions<T>,
    make: M,
) -> Result<T, E>
where
    S: TagSchema,
    C: Codec,
    T: Cacheable,
    E: fmt::Display + Send + 'static,
    TG: Fn(&A) -> TT,
    TT: AsRef<[TagPath]>,
    M: FnOnce(A) -> F,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let Ok(key) = key else {
        return make(args)().await;
    };
    let engine = cache.primitives();
    let served = engine
        .run(&key, Call::new(args, tags, make), options)
        .await?;
    if capturing_entries() {
        let entries = engine.entries_of(served);
        let value = entries.after.value.clone();
        deposit_entries(entries);
        Ok(value)
    } else {
        Ok(served.value)
    }
}
