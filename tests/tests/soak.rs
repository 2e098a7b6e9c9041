//! Soak: unbounded distinct keys and tags against a bounded MemoryAdapter,
//! for minutes; resident memory must stay under a bound.
//!
//! Opt-in (it takes minutes): `cargo test -p t87s-tests --release --test soak -- --ignored --nocapture`.
//! `T87S_SOAK_SECS` sets the duration (default 120).

use std::time::{Duration, Instant};

use t87s::engine::{Primitives, QueryOptions, TagPath};
use t87s::MemoryAdapter;

/// Resident set size of this process, in bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak run of minutes; run with --ignored"]
async fn memory_stays_bounded_under_unbounded_keys_and_tags() {
    let secs: u64 = std::env::var("T87S_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let adapter = MemoryAdapter::builder()
        .max_entries(20_000)
        .max_markers(20_000)
        .build()
        .unwrap();
    let cache = Primitives::builder(adapter.clone())
        .verify_percent(0.0)
        .default_ttl("2s")
        .build()
        .unwrap();
    let started = Instant::now();
    let mut ops: u64 = 0;
    let mut samples = Vec::new();
    let mut next_sample = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(secs) {
        for _ in 0..1_000 {
            let id = ops.to_string();
            let tags = [
                TagPath::new(["users", &id, "posts"]).unwrap(),
                TagPath::new(["teams", &(ops % 1_009).to_string()]).unwrap(),
            ];
            let value = vec![0u8; 256];
            cache
                .query(
                    &format!("q:{id}"),
                    &tags,
                    QueryOptions::new(),
                    move || async move { Ok::<_, std::io::Error>(value) },
                )
                .await
                .unwrap();
            if ops.is_multiple_of(3) {
                cache
                    .invalidate(&[TagPath::new(["users", &id]).unwrap()])
                    .await
                    .unwrap();
            }
            ops += 1;
        }
        if started.elapsed() >= next_sample {
            samples.push((
                started.elapsed().as_secs(),
                rss_bytes(),
                adapter.entry_count(),
                adapter.marker_count(),
            ));
            next_sample += Duration::from_secs(10);
        }
    }
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    for (t, rss, entries, markers) in &samples {
        println!(
            "t={t:>4}s rss={:>6.1} MiB entries={entries} markers={markers}",
            *rss as f64 / 1048576.0
        );
    }
    println!(
        "{ops} operations in {secs}s; peak rss {:.1} MiB",
        peak as f64 / 1048576.0
    );
    assert!(adapter.entry_count() <= 20_000);
    assert!(adapter.marker_count() <= 20_000);
    assert!(
        peak < 256 * 1024 * 1024,
        "resident memory {peak} over 256 MiB"
    );
    // After the first samples (allocator warm-up), memory is flat.
    if let (Some(early), Some(late)) = (samples.get(2), samples.last()) {
        assert!(
            late.1 < early.1 + early.1 / 2 + 16 * 1024 * 1024,
            "rss kept growing: {} -> {}",
            early.1,
            late.1
        );
    }
}
