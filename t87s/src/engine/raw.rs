//! The raw operations: `get`, `set`, `delete`, invalidation, `clear`,
//! `disconnect`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::look::Look;
use super::{Cacheable, Primitives, SetOptions};
use crate::codec::Codec;
use crate::error::Error;
use crate::observer::EventKind;
use crate::schema::Shown;
use crate::storage::{MarkerKey, MarkerScope};
use crate::tag::TagPath;

impl<C: Codec> Primitives<C> {
    /// Reads `key` without fetching: the value if it is fresh or within grace
    /// and not invalidated, else `None`. An entry of another type, or bytes
    /// that do not decode, read as `None`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache = t87s::engine::Primitives::new(t87s::MemoryAdapter::new());
    /// assert_eq!(cache.get::<String>("nothing").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn get<T: Cacheable>(&self, key: &str) -> Result<Option<T>, Error> {
        let now = self.inner.settings.clock.now_ms();
        let (read, newest) = self.look(key, None, now).await?;
        Ok(match self.classify::<T>(read.entry, newest, now) {
            Look::Fresh(_, value) | Look::Graced(_, value) => Some(value),
            Look::Undecodable(error) => {
                self.emit(EventKind::Undecodable, key, Some(&error));
                None
            }
            Look::Invalidated(_) | Look::Dead | Look::Missing => None,
        })
    }

    /// Stores `value` at `key` under the options' tags, as if a fetch had
    /// just produced it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use t87s::engine::{Primitives, SetOptions, TagPath};
    /// let cache = Primitives::new(t87s::MemoryAdapter::new());
    /// let tag = TagPath::new(["config"])?;
    /// cache.set("config", &"dark".to_string(), SetOptions::new([tag])).await?;
    /// assert_eq!(cache.get::<String>("config").await?, Some("dark".into()));
    /// # Ok(()) }
    /// ```
    pub async fn set<T: Cacheable>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<(), Error> {
        let version = self.inner.settings.adapter.version().await?;
        let lifetimes = self.lifetimes(options.ttl, options.grace);
        let now = self.inner.settings.clock.now_ms();
        let object = self.object_entry(
            Arc::new(value.clone()),
            options.tags,
            lifetimes,
            version,
            now,
        );
        let stored = self.stored_form(&object, value)?;
        self.inner
            .settings
            .adapter
            .write(self.key(key), stored)
            .await?;
        Ok(())
    }

    /// Removes `key`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache = t87s::engine::Primitives::new(t87s::MemoryAdapter::new());
    /// cache.delete("gone").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        self.inner.settings.adapter.delete(self.key(key)).await?;
        Ok(())
    }

    /// Makes stale every entry tagged with one of `tags` or with a path below
    /// one of them. When it returns, no query anywhere that shares the store
    /// serves a value fetched before the call. O(1) in the number of entries.
    ///
    /// When the store fails, the error is returned at once and the
    /// invalidation is retried in the background until it lands (first after
    /// 100 ms, then at most every second; coalesced, bounded). The cache
    /// gives up only after 10 minutes of failures, or when 65,536 markers
    /// wait, with an [`EventKind::InvalidationFailed`] event.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use t87s::engine::{Primitives, TagPath};
    /// let cache = Primitives::new(t87s::MemoryAdapter::new());
    /// cache.invalidate(&[TagPath::new(["posts"])?]).await?; // every post
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, tags: &[TagPath]) -> Result<(), Error> {
        self.mark(tags, MarkerScope::Prefix).await
    }

    /// Makes stale only the entries tagged with exactly one of `tags`; entries
    /// tagged below them stay fresh.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use t87s::engine::{Primitives, TagPath};
    /// let cache = Primitives::new(t87s::MemoryAdapter::new());
    /// cache.invalidate_exact(&[TagPath::new(["posts"])?]).await?; // the post list only
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_exact(&self, tags: &[TagPath]) -> Result<(), Error> {
        self.mark(tags, MarkerScope::Exact).await
    }

    /// Removes every entry and marker from the store; values fetched before
    /// the call are never served afterwards.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// t87s::engine::Primitives::new(t87s::MemoryAdapter::new()).clear().await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<(), Error> {
        self.inner.settings.adapter.clear().await?;
        self.inner.local_epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Releases the adapter's connections.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// t87s::engine::Primitives::new(t87s::MemoryAdapter::new()).disconnect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(&self) -> Result<(), Error> {
        self.inner.settings.adapter.disconnect().await?;
        Ok(())
    }

    async fn mark(&self, tags: &[TagPath], scope: MarkerScope) -> Result<(), Error> {
        let marks: Vec<(TagPath, MarkerScope)> =
            tags.iter().map(|tag| (tag.clone(), scope)).collect();
        self.invalidate_marks(&marks).await
    }

    /// Invalidates each tag in its own scope (prefix or exact), all in one
    /// call to the store. A failure is returned at once, and the markers are
    /// retried in the background until they land (see `retry`).
    pub(crate) async fn invalidate_marks(
        &self,
        marks: &[(TagPath, MarkerScope)],
    ) -> Result<(), Error> {
        let span = tracing::info_span!(target: "t87s", "invalidate", tags = marks.len());
        self.invalidate_in_span(marks).instrument(span).await
    }

    async fn invalidate_in_span(&self, marks: &[(TagPath, MarkerScope)]) -> Result<(), Error> {
        let since = self.retry_sequence();
        let started = Instant::now();
        let result = self.try_invalidate(marks).await;
        if result.is_ok() {
            // Stamped newer than any failure of these markers before it.
            self.landed(marks, since);
            let elapsed = started.elapsed();
            tracing::info!(
                target: "t87s",
                tags = %Shown(marks),
                ?elapsed,
                "invalidated"
            );
            for (tag, _) in marks {
                self.emit_timed(EventKind::Invalidated, tag.as_str(), elapsed);
            }
        }
        if let Err(error) = &result {
            let tags: Vec<&str> = marks.iter().map(|(tag, _)| tag.as_str()).collect();
            tracing::warn!(
                target: "t87s",
                tags = ?tags,
                error = %error,
                "an invalidation failed; retrying it in the background"
            );
            self.retry_later(marks);
        }
        result
    }

    /// One call to the store for `marks`.
    pub(crate) async fn try_invalidate(
        &self,
        marks: &[(TagPath, MarkerScope)],
    ) -> Result<(), Error> {
        if marks.is_empty() {
            return Ok(());
        }
        let markers: Vec<MarkerKey<'_>> = marks
            .iter()
            .map(|(tag, scope)| MarkerKey {
                prefix: &self.inner.settings.prefix,
                path: tag.as_str(),
                scope: *scope,
            })
            .collect();
        self.inner.settings.adapter.invalidate(&markers).await?;
        self.inner.local_epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}
