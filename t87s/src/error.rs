//! Error types.

use std::error::Error as StdError;
use std::fmt;

use crate::codec::CodecError;
use crate::duration::DurationError;

/// A storage adapter could not do what was asked (connection lost, timeout,
/// store full...).
///
/// ```
/// let err = t87s::AdapterError::new("redis timed out after 50ms");
/// assert_eq!(err.to_string(), "redis timed out after 50ms");
/// ```
pub struct AdapterError {
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl AdapterError {
    /// An error with a message that tells the user what to check.
    ///
    /// ```
    /// let err = t87s::AdapterError::new("store full");
    /// assert_eq!(err.to_string(), "store full");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source`.
    ///
    /// ```
    /// let io = std::io::Error::other("connection refused");
    /// let err = t87s::AdapterError::with_source("could not reach the store", io);
    /// assert!(std::error::Error::source(&err).is_some());
    /// ```
    pub fn with_source(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Debug for AdapterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdapterError")
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for AdapterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for AdapterError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// An option given to a builder is not valid. Raised when the builder is
/// built, never during a request.
///
/// ```
/// let err = t87s::engine::Primitives::builder(t87s::MemoryAdapter::new())
///     .default_ttl("ten minutes")
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, t87s::ConfigError::Duration { option: "default_ttl", .. }));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration option did not parse.
    #[error("option `{option}`: {source}")]
    Duration {
        /// The option's name.
        option: &'static str,
        /// What was wrong with it.
        source: DurationError,
    },
    /// `verify_percent` outside `0.0..=1.0`.
    #[error("option `verify_percent` must be between 0.0 and 1.0 (a fraction of hits), got {0}")]
    VerifyPercent(f64),
    /// A zero capacity.
    #[error("option `{0}` must be at least 1")]
    ZeroCapacity(&'static str),
    /// A duration that cannot work (zero where time must pass, or so long
    /// that the store would reject it or the arithmetic overflow).
    #[error("option `{option}` is {value:?}; it must be between {min:?} and {max:?}")]
    OutOfRange {
        /// The option's name.
        option: &'static str,
        /// What was given.
        value: std::time::Duration,
        /// The shortest that works.
        min: std::time::Duration,
        /// The longest that works.
        max: std::time::Duration,
    },
}

impl ConfigError {
    /// `value` if it lies in `min..=max`, else [`ConfigError::OutOfRange`].
    pub(crate) fn within(
        option: &'static str,
        value: std::time::Duration,
        min: std::time::Duration,
        max: std::time::Duration,
    ) -> Result<std::time::Duration, ConfigError> {
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::OutOfRange {
                option,
                value,
                min,
                max,
            })
        }
    }
}

/// What a cache operation other than a query can fail with.
///
/// Queries never return it: a failing store makes a query run its fetch
/// (fail-open) and the fault goes to the [`Observer`](crate::Observer).
///
/// ```
/// let err: t87s::Error = t87s::AdapterError::new("store is down").into();
/// assert_eq!(err.to_string(), "the cache store failed: store is down");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage adapter failed.
    #[error("the cache store failed: {0}")]
    Adapter(#[from] AdapterError),
    /// A value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A builder option cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A value's encoding is over the cache's `max_value_bytes`.
    #[error("a value of {size} bytes is over the cache's limit of {limit} bytes (`max_value_bytes`); it was not stored")]
    ValueTooLarge {
        /// The encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// This call waited on another caller's fetch of the same key, and that
    /// fetch failed: its error, shared. Returned by `#[cached]` methods whose
    /// error type is `From<t87s::Error>` (and not `Clone`); see
    /// [`Primitives::query`](crate::engine::Primitives::query).
    #[error("the fetch this call waited on failed: {message}")]
    SharedFetch {
        /// The failed fetch's error, as text.
        message: String,
    },
}
