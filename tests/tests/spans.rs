//! Tracing: a span per fetch, refresh, verification and invalidation, with
//! the query name, the readable key and the tag count; background work runs
//! inside the caller's span; `info` shows invalidations and not the
//! per-request detail, `debug` shows every event with its query name.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use t87s::{cached, ManualClock, MemoryAdapter, QueryCache, TagSchema, Wild};
use tracing::Instrument;
use tracing_subscriber::fmt::MakeWriter;

#[derive(TagSchema)]
struct Tags {
    posts: Wild,
}

#[derive(Clone)]
struct Blog {
    cache: QueryCache<Tags>,
}

impl Blog {
    #[cached(name = "Blog::post", tags = [t.posts(id)], ttl = "1m", grace = "1h")]
    async fn post(&self, id: u64) -> Result<String, String> {
        Ok(format!("post {id}"))
    }
}

/// Everything the subscriber writes, as text.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

/// Runs a miss, a hit, a stale serve (and its refresh) and an invalidation
/// with a subscriber at `level`, each call inside a `request` span.
fn trace_at(level: tracing::Level) -> String {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .with_max_level(level)
        .with_ansi(false)
        .without_time()
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = ManualClock::new(1_000_000);
        let cache = QueryCache::<Tags>::builder(MemoryAdapter::new())
            .clock(clock.clone())
            .build()
            .unwrap();
        let blog = Blog {
            cache: cache.clone(),
        };
        for request in 1..=2 {
            let span = tracing::info_span!("request", id = request);
            blog.post(5).instrument(span).await.unwrap();
        }
        clock.advance(Duration::from_secs(120)); // past the TTL, inside grace
        let span = tracing::info_span!("request", id = 3);
        blog.post(5).instrument(span).await.unwrap();
        // The refresh runs in a task of its own.
        while cache.primitives().in_flight() > 0 {
            tokio::task::yield_now().await;
        }
        let span = tracing::info_span!("request", id = 4);
        cache
            .invalidate(cache.tags().posts(5))
            .instrument(span)
            .await
            .unwrap();
    });
    lines.text()
}

#[test]
fn debug_shows_every_event_inside_its_fetch_refresh_and_invalidation_span() {
    let text = trace_at(tracing::Level::DEBUG);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
            .to_string()
    };
    // The miss: its fetch span carries the query name, the key, the tags.
    let fetched = line("event=\"fetched\"");
    assert!(
        fetched.contains("request{id=1}:fetch{query=\"Blog::post\" key=\"Blog::post(5)@"),
        "{fetched}"
    );
    assert!(fetched.contains("tags=1}"), "{fetched}");
    assert!(
        fetched.contains("elapsed="),
        "the fetch is timed: {fetched}"
    );
    // The hit: a debug event with the query name, in the caller's span.
    let hit = line("event=\"hit\"");
    assert!(hit.contains("request{id=2}"), "{hit}");
    assert!(hit.contains("query=\"Blog::post\""), "{hit}");
    // The refresh runs in a task of its own, inside the caller's span.
    let refreshed = line("event=\"refreshed\"");
    assert!(
        refreshed.contains("request{id=3}:refresh{query=\"Blog::post\""),
        "{refreshed}"
    );
    // The invalidation: a span with the tag count, an info line with the tags.
    let invalidated = line("invalidated tags=posts/5");
    assert!(invalidated.contains(" INFO "), "{invalidated}");
    assert!(
        invalidated.contains("request{id=4}:invalidate{tags=1}"),
        "{invalidated}"
    );
}

#[test]
fn info_shows_invalidations_and_not_the_per_request_detail() {
    let text = trace_at(tracing::Level::INFO);
    assert!(text.contains("invalidated tags=posts/5"), "{text}");
    for detail in [
        "event=\"hit\"",
        "event=\"miss\"",
        "event=\"fetched\"",
        "fetch{",
    ] {
        assert!(!text.contains(detail), "{detail} at info:\n{text}");
    }
}
