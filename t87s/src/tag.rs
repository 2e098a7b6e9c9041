//! Tag paths: hierarchical names such as `posts/123/comments`.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

/// The character that separates the segments of an encoded path.
const SEPARATOR: char = '/';

/// A tag path that could not be built or decoded.
///
/// ```
/// let err = t87s::engine::TagPath::new(Vec::<&str>::new()).unwrap_err();
/// assert_eq!(err, t87s::engine::TagError::Empty);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// A tag needs at least one segment.
    #[error("a tag path needs at least one segment, like [\"posts\"]")]
    Empty,
    /// An encoded path that t87s would not produce: a `%` escape other than
    /// `%25` or `%2F`, or an empty segment not spelled `%00`.
    #[error("invalid encoded tag path {0:?}; t87s escapes `%` as `%25`, `/` as `%2F` and an empty segment as `%00`")]
    BadEscape(String),
}

/// A hierarchical tag such as `["posts", "123", "comments"]`.
///
/// Invalidating a tag makes stale every entry tagged with it or with any path
/// below it, so `posts/123` covers `posts/123/comments`.
///
/// Segments may hold any text: `/` and `%` inside a segment are escaped and an
/// empty segment is spelled `%00`, so two different segment lists never encode
/// alike (`["a/b"]` is not `["a", "b"]`).
/// Clones are cheap: a path of up to 23 bytes is held inline (no
/// allocation: most tags, so a cached entry's one tag costs no allocation of
/// its own), a longer one is shared.
///
/// ```
/// use t87s::engine::TagPath;
/// let tag = TagPath::new(["posts", "1/2", "comments"])?;
/// assert_eq!(tag.as_str(), "posts/1%2F2/comments");
/// assert_eq!(tag.segments().collect::<Vec<_>>(), ["posts", "1/2", "comments"]);
/// assert!(TagPath::new(["posts"])?.is_prefix_of(&tag));
/// # Ok::<(), t87s::engine::TagError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagPath {
    encoded: SmolStr,
}

impl TagPath {
    /// Builds a path from its segments. At least one segment is required.
    ///
    /// ```
    /// let tag = t87s::engine::TagPath::new(["users", "42"])?;
    /// assert_eq!(tag.to_string(), "users/42");
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn new<I, S>(segments: I) -> Result<Self, TagError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut encoded = String::new();
        let mut count = 0usize;
        for segment in segments {
            if count > 0 {
                encoded.push(SEPARATOR);
            }
            escape_into(segment.as_ref(), &mut encoded);
            count += 1;
        }
        if count == 0 {
            return Err(TagError::Empty);
        }
        Ok(Self {
            encoded: encoded.into(),
        })
    }

    /// A path of one segment.
    ///
    /// ```
    /// assert_eq!(t87s::engine::TagPath::segment("posts").as_str(), "posts");
    /// assert_eq!(t87s::engine::TagPath::segment("a/b").depth(), 1);
    /// ```
    pub fn segment(segment: impl AsRef<str>) -> Self {
        let mut encoded = String::new();
        escape_into(segment.as_ref(), &mut encoded);
        Self {
            encoded: encoded.into(),
        }
    }

    /// Parses the encoded form produced by [`TagPath::as_str`].
    ///
    /// ```
    /// use t87s::engine::TagPath;
    /// let tag = TagPath::new(["users", "a/b"])?;
    /// assert_eq!(TagPath::from_encoded(tag.as_str())?, tag);
    /// assert!(TagPath::from_encoded("users/%zz").is_err());
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn from_encoded(encoded: &str) -> Result<Self, TagError> {
        if encoded.is_empty() {
            return Err(TagError::Empty);
        }
        // One pass over the bytes (this runs on every entry a byte store
        // reads): each segment is `%00` or non-empty, with `%` only in
        // `%25` and `%2F`.
        for segment in encoded.as_bytes().split(|b| *b == SEPARATOR as u8) {
            if segment == EMPTY_SEGMENT.as_bytes() {
                continue;
            }
            if segment.is_empty() {
                return Err(TagError::BadEscape(encoded.to_owned()));
            }
            let mut rest = segment;
            while let Some(at) = rest.iter().position(|b| *b == b'%') {
                match rest.get(at + 1..at + 3) {
                    Some(b"25") | Some(b"2F") => rest = rest.get(at + 3..).unwrap_or_default(),
                    _ => return Err(TagError::BadEscape(encoded.to_owned())),
                }
            }
        }
        Ok(Self {
            encoded: encoded.into(),
        })
    }

    /// Appends one segment, returning the child path.
    ///
    /// ```
    /// use t87s::engine::TagPath;
    /// let child = TagPath::new(["posts"])?.child("7");
    /// assert_eq!(child.as_str(), "posts/7");
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn child(&self, segment: impl AsRef<str>) -> Self {
        let mut encoded = String::with_capacity(self.encoded.len() + 1 + segment.as_ref().len());
        encoded.push_str(&self.encoded);
        encoded.push(SEPARATOR);
        escape_into(segment.as_ref(), &mut encoded);
        Self {
            encoded: encoded.into(),
        }
    }

    /// The encoded, unambiguous form: escaped segments joined by `/`.
    ///
    /// ```
    /// assert_eq!(t87s::engine::TagPath::new(["a/b", "c"])?.as_str(), "a%2Fb/c");
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        self.encoded.as_str()
    }

    /// The decoded segments.
    ///
    /// ```
    /// let tag = t87s::engine::TagPath::new(["a/b", ""])?;
    /// assert_eq!(tag.segments().collect::<Vec<_>>(), ["a/b", ""]);
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn segments(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        self.encoded.split(SEPARATOR).map(unescape)
    }

    /// How many segments the path has.
    ///
    /// ```
    /// assert_eq!(t87s::engine::TagPath::new(["a", "b"])?.depth(), 2);
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn depth(&self) -> usize {
        // A byte scan, as in `prefixes`.
        let separators = self.encoded.bytes().filter(|b| *b == SEPARATOR as u8);
        separators.count() + 1
    }

    /// The encoded forms of every prefix, shortest first, ending with the path
    /// itself: `posts`, `posts/1`, `posts/1/comments`. No allocation.
    ///
    /// ```
    /// let tag = t87s::engine::TagPath::new(["posts", "1", "comments"])?;
    /// assert_eq!(tag.prefixes().collect::<Vec<_>>(), ["posts", "posts/1", "posts/1/comments"]);
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn prefixes(&self) -> impl Iterator<Item = &str> + '_ {
        Prefixes::of(&self.encoded)
    }

    /// Whether `self` equals `other` or is an ancestor of it.
    ///
    /// ```
    /// let posts = t87s::engine::TagPath::new(["posts"])?;
    /// assert!(posts.is_prefix_of(&posts.child("1")));
    /// assert!(!posts.child("1").is_prefix_of(&posts));
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn is_prefix_of(&self, other: &TagPath) -> bool {
        let (me, them) = (self.as_str(), other.as_str());
        them.starts_with(me) && (them.len() == me.len() || them[me.len()..].starts_with(SEPARATOR))
    }
}

/// The prefixes of an encoded tag path, shortest first, ending with the
/// path itself ([`TagPath::prefixes`]). A byte scan: tags are short, where a
/// `char` search's setup costs more than it saves.
pub(crate) struct Prefixes<'a> {
    text: &'a str,
    /// Where the scan for the next separator starts (past the end once the
    /// whole path was given).
    at: usize,
}

impl<'a> Prefixes<'a> {
    pub(crate) fn of(text: &'a str) -> Self {
        Self { text, at: 0 }
    }
}

impl<'a> Iterator for Prefixes<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let (text, at) = (self.text, self.at);
        let rest = text.as_bytes().get(at..)?;
        let end = (rest.iter().position(|b| *b == SEPARATOR as u8)).map_or(text.len(), |i| at + i);
        self.at = end + 1;
        text.get(..end)
    }
}

/// How an empty segment is spelled, so `[""]` never encodes as the empty text.
const EMPTY_SEGMENT: &str = "%00";

fn escape_into(segment: &str, out: &mut String) {
    if segment.is_empty() {
        out.push_str(EMPTY_SEGMENT);
        return;
    }
    for c in segment.chars() {
        match c {
            '%' => out.push_str("%25"),
            SEPARATOR => out.push_str("%2F"),
            c => out.push(c),
        }
    }
}

fn unescape(segment: &str) -> Cow<'_, str> {
    if segment == EMPTY_SEGMENT {
        return Cow::Borrowed("");
    }
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    Cow::Owned(segment.replace("%2F", "/").replace("%25", "%"))
}

impl fmt::Display for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encoded)
    }
}

impl fmt::Debug for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagPath({:?})", &*self.encoded)
    }
}

impl AsRef<TagPath> for TagPath {
    fn as_ref(&self) -> &TagPath {
        self
    }
}

impl Serialize for TagPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encoded)
    }
}

impl<'de> Deserialize<'de> for TagPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let encoded = <Cow<'de, str>>::deserialize(deserializer)?;
        TagPath::from_encoded(&encoded).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_segment_lists_encode_distinctly() {
        let cases: Vec<Vec<&str>> = vec![
            vec!["a/b"],
            vec!["a", "b"],
            vec!["a%2Fb"],
            vec!["a", ""],
            vec!["a/"],
            vec![""],
            vec!["", ""],
            vec!["%"],
            vec!["%25"],
            vec!["%00"],
            vec!["a", "", "b"],
        ];
        let encoded: Vec<TagPath> = cases.iter().map(|c| TagPath::new(c).unwrap()).collect();
        for (i, a) in encoded.iter().enumerate() {
            assert_eq!(a.segments().collect::<Vec<_>>(), cases[i], "round trip");
            assert_eq!(TagPath::from_encoded(a.as_str()).unwrap(), *a);
            for b in &encoded[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn foreign_encodings_are_rejected() {
        for bad in ["", "a//b", "a/", "%zz", "a%2", "%0", "x%00"] {
            assert!(TagPath::from_encoded(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefix_relation_respects_segment_boundaries() {
        let post1 = TagPath::new(["posts", "1"]).unwrap();
        let post12 = TagPath::new(["posts", "12"]).unwrap();
        assert!(!post1.is_prefix_of(&post12));
        assert!(post1.is_prefix_of(&post1.child("comments")));
        assert_eq!(post1.child("comments").depth(), 3);
    }
}
