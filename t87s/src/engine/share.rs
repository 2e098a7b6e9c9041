//! How the callers that waited on a failed fetch get an error of their own.

use std::any::Any;
use std::fmt;

use parking_lot::Mutex;

use crate::error::Error;

/// How a failed fetch's error reaches the callers that waited on it
/// (see [`Primitives::query_sharing`](super::Primitives::query_sharing)).
///
/// `#[cached]` picks one at compile time from the method's error type:
/// `Clone` if it is `Clone`, else `Convert` if it is `From<t87s::Error>`,
/// else `Not`.
///
/// ```
/// use t87s::engine::Share;
/// let share: Share<std::io::Error> = Share::Not; // io::Error is neither Clone nor From<t87s::Error>
/// let share: Share<String> = Share::Cloned(String::clone);
/// # let _ = share;
/// ```
pub enum Share<E> {
    /// The waiters fetch again, one at a time: at most one fetch per key
    /// is in flight, and each caller gets its own error.
    Not,
    /// The waiters get clones of the error; no second fetch.
    Cloned(fn(&E) -> E),
    /// The waiters get the error converted from [`Error::SharedFetch`],
    /// which carries its text; no second fetch.
    Converted(fn(Error) -> E),
}

impl<E> Clone for Share<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Share<E> {}

impl<E> fmt::Debug for Share<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Share::Not => "Share::Not",
            Share::Cloned(_) => "Share::Cloned",
            Share::Converted(_) => "Share::Converted",
        })
    }
}

/// A failed fetch, as its flight hands it to the waiters.
pub(crate) struct Failure {
    message: String,
    /// The error itself, when the waiters clone it.
    error: Option<Mutex<Box<dyn Any + Send>>>,
}

impl<E: fmt::Display + Send + 'static> Share<E> {
    /// What the leader leaves for the waiters.
    pub(crate) fn failure(self, error: &E) -> Failure {
        Failure {
            message: error.to_string(),
            error: match self {
                Share::Cloned(clone) => Some(Mutex::new(Box::new(clone(error)))),
                Share::Not | Share::Converted(_) => None,
            },
        }
    }

    /// A waiter's own error, or `None`: take a turn at fetching.
    pub(crate) fn error(self, failure: &Failure) -> Option<E> {
        match self {
            Share::Not => None,
            Share::Cloned(clone) => {
                let held = failure.error.as_ref()?.lock();
                held.downcast_ref::<E>().map(clone)
            }
            Share::Converted(from) => Some(from(Error::SharedFetch {
                message: failure.message.clone(),
            })),
        }
    }
}
