//! Procedural macros for [t87s](https://docs.rs/t87s): `#[derive(TagSchema)]`
//! and `#[cached(...)]`. Use them through the `t87s` crate, which re-exports
//! both; the generated code names only `::t87s::...` paths.

mod cached;
mod errors;
mod invalidates;
mod method;
mod schema;

use proc_macro::TokenStream;

/// Derives a tag schema on a struct of `Wild<...>` and `Static` fields.
///
/// For `struct AppTags { posts: Wild<PostTags>, users: Wild, global: Static }`
/// it generates:
///
/// - `AppTagsRoot`, the top level (what `QueryCache::<AppTags>::tags()`
///   returns), with one method per field;
/// - `AppTagsNode<R>`, an `AppTags` node inside a schema rooted at `R`, with
///   the same methods, and itself a tag;
/// - `impl t87s::TagSchema for AppTags`;
/// - hidden items for `tags = [...]` of `#[cached]` and `#[invalidates]`,
///   where `t.posts()` (a `Wild` field without an id) is an error that says
///   to write `t.posts(id)` for one post or `t.posts(..)` for every post.
///
/// Field methods:
///
/// | field | method | tag |
/// |---|---|---|
/// | `posts: Wild<PostTags>` | `t.posts(1)` | `posts/1`, a `PostTags` node |
/// | | `t.posts(..)` | `posts`: every post |
/// | `users: Wild` | `t.users("ada")` | `users/ada` (a leaf) |
/// | `global: Static` | `t.global()` | `global` |
///
/// Ids are strings, integers, `char`, `bool` or `Uuid` (`t87s::TagId`).
/// A field of any other type is a compile error at that field.
///
/// ```
/// use t87s::{Static, TagSchema, Wild};
///
/// #[derive(TagSchema)]
/// struct CommentTags { reactions: Static }
///
/// #[derive(TagSchema)]
/// struct PostTags { comments: Wild<CommentTags>, settings: Static }
///
/// #[derive(TagSchema)]
/// struct AppTags { posts: Wild<PostTags>, users: Wild, global: Static }
///
/// let t = AppTags::root();
/// assert_eq!(t.posts(1).comments(7).reactions().to_string(), "posts/1/comments/7/reactions");
/// assert_eq!(t.posts(1).comments(..).to_string(), "posts/1/comments");
/// assert_eq!(t.posts(1).to_string(), "posts/1");
/// assert_eq!(t.users(..).to_string(), "users");
/// ```
#[proc_macro_derive(TagSchema)]
pub fn derive_tag_schema(input: TokenStream) -> TokenStream {
    schema::expand(input.into()).into()
}

/// Caches an `async fn` method: `#[cached(tags = [t.posts(id)], ttl = "10m")]`.
///
/// The method's body becomes the fetch of a stampede-protected query keyed by
/// the method's identity and all of its arguments (in a self-describing
/// encoding: distinct argument lists never share a key). It works in trait
/// impls (native `async fn` in traits) and inherent impls.
///
/// # Arguments
///
/// - `tags = [...]` (required): the tags the result depends on, built from
///   `t` (the cache's schema root), the method's arguments (seen by
///   reference) and literals. Anything else (`self`, a `const`, a `static`,
///   a free function, `Self::X`, a macro, a tag of another schema, an
///   unknown segment) does not compile: the arguments decide the key, so
///   they alone decide the tags.
/// - `ttl = "10m"`, `grace = "1h"`: literals are checked while compiling
///   (`ms`, `s`, `m`, `h`, `d`); any `Duration` expression works too.
/// - `on_refresh = path::to::function`: `fn(&T, &T, bool)`, called with
///   `(old, new, changed)` after a background refresh.
/// - `cache = field`: the field of `self` holding the `QueryCache`
///   (default `cache`).
/// - `name = "Blog::post"`: pins the method's identity in its keys (by
///   default: its module path and the source position of its name, which
///   edits above it in the file move). Readable keys start with it.
/// - `version = 2`: leaves every key of the previous version behind.
/// - `scope = self.tenant`: a value of `self` the body depends on, added to
///   the key (only the arguments are in it otherwise).
///
/// # Requirements
///
/// - `async fn`, `&self`, plainly named arguments (`id: u64`, `name: &str`);
///   lifetimes are fine, type parameters are not;
/// - the return type is `Result<T, E>` with `T` cacheable
///   (`Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync`) and
///   `E: Display + Send + 'static`; errors are returned, never cached (the
///   callers that waited on a failed fetch share its error if `E` is `Clone`
///   or `From<t87s::Error>`, else they take turns);
/// - every argument is `serde::Serialize` (it is part of the key);
/// - `Self: Clone + Send + Sync + 'static`: a refresh may run after the call
///   returns, on a clone of `self` (cloned only when a fetch runs; a hit
///   clones nothing). Reference arguments are owned for that fetch.
///
/// # Example
///
/// ```
/// use t87s::{cached, MemoryAdapter, QueryCache, Static, TagSchema, Wild};
///
/// #[derive(TagSchema)]
/// struct PostTags { comments: Wild, settings: Static }
///
/// #[derive(TagSchema)]
/// struct AppTags { posts: Wild<PostTags> }
///
/// trait Blog {
///     async fn title(&self, id: u64) -> Result<String, std::io::Error>;
/// }
///
/// #[derive(Clone)]
/// struct BlogCache { cache: QueryCache<AppTags> }
///
/// impl Blog for BlogCache {
///     #[cached(tags = [t.posts(id)], ttl = "10m", grace = "1h")]
///     async fn title(&self, id: u64) -> Result<String, std::io::Error> {
///         Ok(format!("post {id}"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let blog = BlogCache { cache: QueryCache::new(MemoryAdapter::new()) };
/// let title: String = blog.title(1).await?;          // miss: runs the body
/// let again: String = blog.title(1).await?;          // hit
/// blog.cache.invalidate(blog.cache.tags().posts(1)).await?;
/// # assert_eq!(title, again);
/// # Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    cached::expand(args.into(), item.into()).into()
}

/// Invalidates tags after a write: `#[invalidates(tags = [t.posts(id)])]`.
///
/// On an `async fn` method returning `Result`: the body runs (the write);
/// if it returns `Ok`, every listed tag is invalidated, all in one call to
/// the store (one round trip on Redis), before the method returns. So when
/// the method returns `Ok`, no process sharing the store serves a value
/// fetched before the write. An `Err` from the body invalidates nothing.
///
/// # Arguments
///
/// - `tags = [...]` (required): tags of the cache's schema, built from `t`
///   and the method's arguments only (checked like `#[cached]`'s, at compile
///   time); `exact(tag)` invalidates entries tagged exactly `tag` (not the
///   ones below it). The tags are built before the body runs.
/// - `on_error = "return"` (default): a failed invalidation is the method's
///   error, through `From<t87s::Error>` (the write happened; the caller
///   decides). `on_error = "log"`: the method returns `Ok`; the failure is
///   logged (`tracing` warning). Either way the invalidation is retried in
///   the background until it lands (see `Primitives::invalidate`).
/// - `cache = field`: the field of `self` holding the `QueryCache` (default `cache`).
///
/// ```
/// use t87s::{cached, invalidates, MemoryAdapter, QueryCache, TagSchema, Wild};
///
/// #[derive(TagSchema)]
/// struct AppTags { posts: Wild }
///
/// #[derive(Clone)]
/// struct Blog { cache: QueryCache<AppTags>, titles: std::sync::Arc<std::sync::Mutex<Vec<String>>> }
///
/// #[derive(Debug)]
/// enum BlogError { Cache(t87s::Error) }
/// impl From<t87s::Error> for BlogError { fn from(e: t87s::Error) -> Self { BlogError::Cache(e) } }
/// impl std::fmt::Display for BlogError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
/// }
///
/// impl Blog {
///     #[cached(tags = [t.posts(id)])]
///     async fn title(&self, id: usize) -> Result<String, BlogError> {
///         Ok(self.titles.lock().unwrap()[id].clone())
///     }
///
///     #[invalidates(tags = [t.posts(id), exact(t.posts(..))])]
///     async fn rename(&self, id: usize, title: String) -> Result<(), BlogError> {
///         self.titles.lock().unwrap()[id] = title; // the write
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BlogError> {
/// let blog = Blog { cache: QueryCache::new(MemoryAdapter::new()), titles: std::sync::Arc::new(std::sync::Mutex::new(vec!["Hello".into()])) };
/// assert_eq!(blog.title(0).await?, "Hello");
/// blog.rename(0, "Hello, world".into()).await?;
/// assert_eq!(blog.title(0).await?, "Hello, world"); // never the old title
/// # Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    invalidates::expand(args.into(), item.into()).into()
}
