//! Typed tags: schemas derived on plain structs, and the tags they build.
//!
//! `#[derive(TagSchema)]` on a struct whose fields are [`Wild`] or [`Static`]
//! generates two builder types: `{Name}Root` (what
//! [`QueryCache::tags`](crate::QueryCache::tags) returns) and `{Name}Node<R>`
//! (a tag inside a schema rooted at `R`). Every method is a real, documented
//! method, so completion works on `t.posts(1).`.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::RangeFull;

use crate::storage::MarkerScope;
use crate::tag::TagPath;

/// A tag schema: a struct of [`Wild`] and [`Static`] fields. Derive it.
///
/// ```
/// use t87s::{Static, TagSchema, Wild};
///
/// #[derive(TagSchema)]
/// struct PostTags { comments: Wild, settings: Static }
///
/// #[derive(TagSchema)]
/// struct AppTags { posts: Wild<PostTags>, global: Static }
///
/// let t = AppTags::root();
/// assert_eq!(t.posts(1).comments(7).path().as_str(), "posts/1/comments/7");
/// assert_eq!(t.posts(1).comments(..).path().as_str(), "posts/1/comments");
/// assert_eq!(t.posts(..).path().as_str(), "posts");
/// assert_eq!(t.global().path().as_str(), "global");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tag schema",
    label = "not a tag schema",
    note = "derive it on a struct whose fields are `Wild`, `Wild<OtherSchema>` or `Static`: `#[derive(t87s::TagSchema)]`"
)]
pub trait TagSchema: 'static {
    /// The builder for the schema's top level (no path of its own).
    type Root;
    /// The builder for a node of this schema inside a schema rooted at `R`.
    type Node<R: 'static>: IntoTag<R>;

    /// The top-level builder.
    fn root() -> Self::Root;

    /// A node of this schema at `path`.
    #[doc(hidden)]
    fn node<R: 'static>(path: TagPath) -> Self::Node<R>;

    /// Reads every field, so a schema struct's marker fields are not reported
    /// as dead code. Never called.
    #[doc(hidden)]
    fn __t87s_touch_fields(&self) {}
}

/// A schema field that takes an id: `posts: Wild<PostTags>` gives
/// `t.posts(id)` (one post, a node of `PostTags`) and `t.posts(..)` (every
/// post). `Wild` alone is a leaf: `t.users(id)` has no children.
///
/// ```
/// # use t87s::{TagSchema, Wild};
/// #[derive(TagSchema)]
/// struct Tags { users: Wild }
/// assert_eq!(Tags::root().users("ada").path().as_str(), "users/ada");
/// ```
pub struct Wild<S: TagSchema = Leaf>(PhantomData<S>);

/// A schema field without an id: `global: Static` gives `t.global()`.
///
/// ```
/// # use t87s::{Static, TagSchema};
/// #[derive(TagSchema)]
/// struct Tags { global: Static }
/// assert_eq!(Tags::root().global().path().as_str(), "global");
/// ```
pub struct Static;

/// The schema of a leaf: no children. `Wild` means `Wild<Leaf>`.
///
/// ```
/// let tag: t87s::Tag<()> = <t87s::Leaf as t87s::TagSchema>::node(t87s::engine::TagPath::segment("x"));
/// assert_eq!(tag.path().as_str(), "x");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Leaf;

impl TagSchema for Leaf {
    type Root = ();
    type Node<R: 'static> = Tag<R>;

    fn root() -> Self::Root {}

    fn node<R: 'static>(path: TagPath) -> Self::Node<R> {
        Tag::new(path)
    }
}

/// A tag of the schema rooted at `R`: what queries are tagged with and what
/// [`QueryCache::invalidate`](crate::QueryCache::invalidate) takes.
///
/// Built only through a schema's builders, so a `QueryCache<S>` takes only
/// tags of `S` (a tag of another schema, or a `&str`, does not compile).
/// What a tag reaches in the store is its path: caches of two schemas on one
/// store and prefix that spell a path alike (two services describing the
/// same `posts/1`) invalidate each other's entries, by design; give caches
/// that must not share a prefix of their own.
///
/// ```
/// # use t87s::{Static, TagSchema};
/// #[derive(TagSchema)]
/// struct Tags { global: Static }
/// let tag = Tags::root().global();
/// assert_eq!(tag.to_string(), "global");
/// ```
pub struct Tag<R> {
    path: TagPath,
    schema: PhantomData<fn() -> R>,
}

impl<R> Tag<R> {
    #[doc(hidden)]
    pub fn new(path: TagPath) -> Self {
        Self {
            path,
            schema: PhantomData,
        }
    }

    /// The path this tag stands for.
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct Tags { global: Static }
    /// assert_eq!(Tags::root().global().path().depth(), 1);
    /// ```
    pub fn path(&self) -> &TagPath {
        &self.path
    }

    /// The path, by value.
    ///
    /// ```
    /// # use t87s::{Static, TagSchema};
    /// # #[derive(TagSchema)] struct Tags { global: Static }
    /// let path: t87s::engine::TagPath = Tags::root().global().into_path();
    /// assert_eq!(path.as_str(), "global");
    /// ```
    pub fn into_path(self) -> TagPath {
        self.path
    }
}

impl<R> Clone for Tag<R> {
    fn clone(&self) -> Self {
        Self::new(self.path.clone())
    }
}

impl<R> PartialEq for Tag<R> {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl<R> Eq for Tag<R> {}

impl<R> Hash for Tag<R> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.path.hash(state);
    }
}

impl<R> fmt::Debug for Tag<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({:?})", self.path.as_str())
    }
}

impl<R> fmt::Display for Tag<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.path, f)
    }
}

/// Anything that is a tag of the schema rooted at `R`: a [`Tag<R>`] or a
/// generated node (`t.posts(1)` is itself a tag).
///
/// ```
/// # use t87s::{IntoTag, Static, TagSchema, Wild};
/// #[derive(TagSchema)]
/// struct PostTags { settings: Static }
/// #[derive(TagSchema)]
/// struct AppTags { posts: Wild<PostTags> }
/// let tag = AppTags::root().posts(1).into_tag();
/// assert_eq!(tag.path().as_str(), "posts/1");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tag of the schema `{R}`",
    label = "not a tag of `{R}`",
    note = "build tags from the same schema as the cache: `cache.tags().posts(1)`; raw paths go through `Primitives`"
)]
pub trait IntoTag<R> {
    /// The tag.
    fn into_tag(self) -> Tag<R>;
}

impl<R> IntoTag<R> for Tag<R> {
    fn into_tag(self) -> Tag<R> {
        self
    }
}

impl<R> IntoTag<R> for &Tag<R> {
    fn into_tag(self) -> Tag<R> {
        self.clone()
    }
}

/// One tag of an invalidation and how far it reaches: the tag and every
/// tag below it ([`prefix`](Mark::prefix), what a plain tag converts to), or
/// entries tagged exactly so ([`exact`](Mark::exact)).
/// [`QueryCache::invalidate_many`](crate::QueryCache::invalidate_many) takes
/// both kinds together, in one call to the store.
///
/// ```
/// # use t87s::{Mark, Static, TagSchema, Wild};
/// # #[derive(TagSchema)] struct PostTags { settings: Static }
/// # #[derive(TagSchema)] struct AppTags { posts: Wild<PostTags> }
/// let t = AppTags::root();
/// let marks: [Mark<AppTags>; 2] = [t.posts(1).into(), Mark::exact(t.posts(..))];
/// assert_eq!(marks[0].to_string(), "posts/1");
/// assert_eq!(marks[1].to_string(), "exact(posts)");
/// ```
pub struct Mark<R> {
    pub(crate) tag: Tag<R>,
    pub(crate) scope: MarkerScope,
}

impl<R> Mark<R> {
    /// `tag` and every tag below it (`posts/1` reaches `posts/1/comments`).
    ///
    /// ```
    /// # use t87s::{Mark, TagSchema, Wild};
    /// # #[derive(TagSchema)] struct AppTags { posts: Wild }
    /// let mark = Mark::prefix(AppTags::root().posts(1));
    /// assert_eq!(mark.to_string(), "posts/1");
    /// ```
    pub fn prefix(tag: impl IntoTag<R>) -> Self {
        Self {
            tag: tag.into_tag(),
            scope: MarkerScope::Prefix,
        }
    }

    /// Only entries tagged exactly `tag` (`exact(posts)` is the post list,
    /// not each post).
    ///
    /// ```
    /// # use t87s::{Mark, TagSchema, Wild};
    /// # #[derive(TagSchema)] struct AppTags { posts: Wild }
    /// let mark = Mark::exact(AppTags::root().posts(..));
    /// assert_eq!(mark.to_string(), "exact(posts)");
    /// ```
    pub fn exact(tag: impl IntoTag<R>) -> Self {
        Self {
            tag: tag.into_tag(),
            scope: MarkerScope::Exact,
        }
    }

    pub(crate) fn into_parts(self) -> (TagPath, MarkerScope) {
        (self.tag.into_path(), self.scope)
    }
}

impl<R> Clone for Mark<R> {
    fn clone(&self) -> Self {
        Self {
            tag: self.tag.clone(),
            scope: self.scope,
        }
    }
}

impl<R> fmt::Debug for Mark<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mark({self})")
    }
}

impl<R> fmt::Display for Mark<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = (self.tag.path().clone(), self.scope);
        fmt::Display::fmt(&Shown(std::slice::from_ref(&mark)), f)
    }
}

/// Marks as people read them: `posts/1, exact(posts)`.
pub(crate) struct Shown<'a>(pub(crate) &'a [(TagPath, MarkerScope)]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, (tag, scope)) in self.0.iter().enumerate() {
            if at > 0 {
                f.write_str(", ")?;
            }
            match scope {
                MarkerScope::Prefix => write!(f, "{tag}")?,
                MarkerScope::Exact => write!(f, "exact({tag})")?,
            }
        }
        Ok(())
    }
}

impl<R> From<Tag<R>> for Mark<R> {
    fn from(tag: Tag<R>) -> Self {
        Self::prefix(tag)
    }
}

impl<R> From<&Tag<R>> for Mark<R> {
    fn from(tag: &Tag<R>) -> Self {
        Self::prefix(tag)
    }
}

/// A value that can name one item of a [`Wild`] field: strings, integers,
/// `char`, `bool`, and `uuid::Uuid` with the `uuid` feature.
///
/// Equal ids of different types name the same item (`"1"` and `1` are both
/// `users/1`), which is what a tag should do: a write to user 1 is a write to
/// user 1 however its id was spelled.
///
/// ```
/// use t87s::TagId;
/// assert_eq!(42u64.segment(), "42");
/// assert_eq!("ada".segment(), "ada");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a tag id",
    label = "not a tag id",
    note = "ids are strings, integers, `char`, `bool` or `Uuid` (types implementing `t87s::TagId`); pass `..` for every id"
)]
pub trait TagId {
    /// The id as a path segment (escaping is done by [`TagPath`]).
    fn segment(&self) -> Cow<'_, str>;
}

impl TagId for str {
    fn segment(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl TagId for String {
    fn segment(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl TagId for Cow<'_, str> {
    fn segment(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<T: TagId + ?Sized> TagId for &T {
    fn segment(&self) -> Cow<'_, str> {
        (**self).segment()
    }
}

macro_rules! display_ids {
    ($($t:ty),*) => {$(
        impl TagId for $t {
            fn segment(&self) -> Cow<'_, str> {
                Cow::Owned(self.to_string())
            }
        }
    )*};
}

display_ids!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, char, bool);

#[cfg(feature = "uuid")]
impl TagId for uuid::Uuid {
    fn segment(&self) -> Cow<'_, str> {
        Cow::Owned(self.hyphenated().to_string())
    }
}

/// What a [`Wild`] field's method takes: an id (a [`TagId`]) for one item,
/// or `..` for every item.
///
/// ```
/// # use t87s::{TagSchema, Wild};
/// #[derive(TagSchema)]
/// struct Tags { users: Wild }
/// let t = Tags::root();
/// assert_eq!(t.users(7).path().as_str(), "users/7");
/// assert_eq!(t.users(..).path().as_str(), "users");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a tag id",
    label = "not a tag id",
    note = "ids are strings, integers, `char`, `bool` or `Uuid` (types implementing `t87s::TagId`); pass `..` for every id"
)]
pub trait WildArg {
    /// What the field's method returns for this argument.
    type Output<R: 'static, S: TagSchema>;

    /// Builds it below `collection` (the field's own path).
    #[doc(hidden)]
    fn build<R: 'static, S: TagSchema>(self, collection: TagPath) -> Self::Output<R, S>;
}

impl<T: TagId> WildArg for T {
    type Output<R: 'static, S: TagSchema> = S::Node<R>;

    fn build<R: 'static, S: TagSchema>(self, collection: TagPath) -> S::Node<R> {
        S::node(collection.child(self.segment()))
    }
}

impl WildArg for RangeFull {
    type Output<R: 'static, S: TagSchema> = Tag<R>;

    fn build<R: 'static, S: TagSchema>(self, collection: TagPath) -> Tag<R> {
        Tag::new(collection)
    }
}
