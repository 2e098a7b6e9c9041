//! Every engine event is also a `tracing` event (target `t87s`, debug level).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use t87s::engine::{Primitives, QueryOptions};
use t87s::MemoryAdapter;
use t87s_tests::{tag, Source};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Counts debug events whose target is `t87s`.
struct Count(Arc<AtomicUsize>);

impl Subscriber for Count {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        if meta.target() == "t87s" && *meta.level() == Level::DEBUG {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn hits_and_misses_are_traced() {
    let seen = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(Count(seen.clone()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cache = Primitives::new(MemoryAdapter::new());
        let src = Source::new(1u32);
        for _ in 0..3 {
            cache
                .query("k", &[tag(&["t"])], QueryOptions::new(), src.fetch())
                .await
                .unwrap();
        }
    });
    // One miss (with its fetch and its store timed), two hits.
    assert_eq!(seen.load(Ordering::SeqCst), 5);
}
