//! What a query needs besides its key: its arguments, how to build its tags
//! from them, and how to turn them into a fetch.
//!
//! Tags are built only when needed (a miss, or a store that cannot answer
//! without them), and the fetch only when one runs, so a memory hit builds
//! neither.

use crate::tag::TagPath;

pub(crate) struct Call<S, TG, TT, M> {
    state: S,
    tags_of: TG,
    tags: Option<TT>,
    make: M,
}

impl<S, TG, TT, M, F> Call<S, TG, TT, M>
where
    TG: Fn(&S) -> TT,
    TT: AsRef<[TagPath]>,
    M: FnOnce(S) -> F,
{
    pub(crate) fn new(state: S, tags_of: TG, make: M) -> Self {
        Self {
            state,
            tags_of,
            tags: None,
            make,
        }
    }

    /// The query's tags, built on first use.
    pub(crate) fn tags(&mut self) -> &[TagPath] {
        let Self {
            state,
            tags_of,
            tags,
            ..
        } = self;
        let tags: &TT = tags.get_or_insert_with(|| tags_of(state));
        tags.as_ref()
    }

    /// The tags and the fetch, for a query that has to fetch.
    pub(crate) fn split(self) -> (TT, F) {
        let tags = match self.tags {
            Some(tags) => tags,
            None => (self.tags_of)(&self.state),
        };
        (tags, (self.make)(self.state))
    }

    /// The fetch alone (a verification needs no tags).
    pub(crate) fn into_fetch(self) -> F {
        (self.make)(self.state)
    }
}
