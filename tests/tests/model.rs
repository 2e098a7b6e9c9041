//! Model-based property tests: random sequences of queries, raw writes,
//! deletes, prefix and exact invalidations and clock moves over random
//! hierarchical tags, run against every store and checked after every step
//! against a plain reference model of the semantics (fresh, stale within
//! grace, expired, invalidated).
//!
//! The case budget fits CI; run longer with
//! `PROPTEST_CASES=2000 cargo test -p t87s-tests --test model`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use t87s::engine::{QueryOptions, SetOptions, TagPath};
use t87s_tests::{Harness, Store};

/// A small tag universe, so operations overlap: paths of 1 to 3 segments.
fn tag_strategy() -> impl Strategy<Value = Vec<&'static str>> + Clone {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c/d", "é"]), 1..=3)
}

#[derive(Debug, Clone)]
enum Op {
    Query {
        key: u8,
        tags: Vec<Vec<&'static str>>,
        ttl_s: u64,
        grace_s: u64,
    },
    Set {
        key: u8,
        tags: Vec<Vec<&'static str>>,
        ttl_s: u64,
    },
    Get {
        key: u8,
    },
    Delete {
        key: u8,
    },
    Invalidate {
        tag: Vec<&'static str>,
    },
    InvalidateExact {
        tag: Vec<&'static str>,
    },
    Advance {
        ms: u64,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let tags = prop::collection::vec(tag_strategy(), 1..=2);
    prop_oneof![
        4 => (0u8..4, tags.clone(), 1u64..20, prop::sample::select(vec![0u64, 10, 30]))
            .prop_map(|(key, tags, ttl_s, grace_s)| Op::Query { key, tags, ttl_s, grace_s }),
        1 => (0u8..4, tags, 1u64..20).prop_map(|(key, tags, ttl_s)| Op::Set { key, tags, ttl_s }),
        1 => (0u8..4).prop_map(|key| Op::Get { key }),
        1 => (0u8..4).prop_map(|key| Op::Delete { key }),
        2 => tag_strategy().prop_map(|tag| Op::Invalidate { tag }),
        1 => tag_strategy().prop_map(|tag| Op::InvalidateExact { tag }),
        2 => (0u64..25_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The reference model.
#[derive(Default)]
struct Model {
    now: u64,
    /// Invalidations so far: the stamp a fetch starting now gets.
    count: u64,
    entries: HashMap<u8, ModelEntry>,
    prefix_marks: HashMap<Vec<String>, u64>,
    exact_marks: HashMap<Vec<String>, u64>,
}

#[derive(Clone)]
struct ModelEntry {
    value: u64,
    tags: Vec<Vec<String>>,
    stamp: u64,
    expires_at: u64,
    grace_until: u64,
}

impl Model {
    fn stale(&self, e: &ModelEntry) -> bool {
        e.tags.iter().any(|tag| {
            let exact = self.exact_marks.get(tag).is_some_and(|m| *m >= e.stamp);
            exact
                || (1..=tag.len()).any(|n| {
                    self.prefix_marks
                        .get(&tag[..n])
                        .is_some_and(|m| *m >= e.stamp)
                })
        })
    }

    fn live(&self, key: u8) -> Option<&ModelEntry> {
        self.entries
            .get(&key)
            .filter(|e| self.now < e.grace_until.max(e.expires_at))
    }

    fn store(&mut self, key: u8, value: u64, tags: &[Vec<String>], ttl_ms: u64, grace_ms: u64) {
        let expires_at = self.now + ttl_ms;
        let entry = ModelEntry {
            value,
            tags: tags.to_vec(),
            stamp: self.count,
            expires_at,
            grace_until: if grace_ms > 0 {
                expires_at + grace_ms
            } else {
                expires_at
            },
        };
        self.entries.insert(key, entry);
    }
}

fn owned(tags: &[Vec<&'static str>]) -> Vec<Vec<String>> {
    tags.iter()
        .map(|t| t.iter().map(|s| s.to_string()).collect())
        .collect()
}

fn paths(tags: &[Vec<&'static str>]) -> Vec<TagPath> {
    tags.iter()
        .map(|t| TagPath::new(t).expect("non-empty"))
        .collect()
}

async fn check(store: Store, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let h = Harness::new(store).await;
    let mut model = Model {
        now: t87s_tests::T0,
        ..Model::default()
    };
    let source = Arc::new(AtomicU64::new(1));
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Query {
                key,
                tags,
                ttl_s,
                grace_s,
            } => {
                let options = QueryOptions::new()
                    .ttl(Duration::from_secs(ttl_s))
                    .grace(Duration::from_secs(grace_s));
                let src = source.clone();
                let before = source.load(Ordering::SeqCst);
                let got = h
                    .cache
                    .query(
                        &format!("k{key}"),
                        &paths(&tags),
                        options,
                        move || async move {
                            Ok::<_, std::io::Error>(src.fetch_add(1, Ordering::SeqCst))
                        },
                    )
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                h.settle().await;
                let next = source.load(Ordering::SeqCst);
                let owned = owned(&tags);
                let live = model.live(key).cloned();
                match live {
                    Some(e) if !model.stale(&e) && model.now < e.expires_at => {
                        prop_assert_eq!(got, e.value, "step {}: fresh hit", step);
                        prop_assert_eq!(next, before, "step {}: a hit fetches nothing", step);
                    }
                    Some(e) if !model.stale(&e) => {
                        // Stale within grace: the old value now, one refresh
                        // in the background (stored under the entry's stamp
                        // of the read, with the query's lifetimes).
                        prop_assert_eq!(got, e.value, "step {}: stale within grace", step);
                        prop_assert_eq!(next, before + 1, "step {}: exactly one refresh", step);
                        model.store(key, before, &owned, ttl_s * 1000, grace_s * 1000);
                    }
                    _ => {
                        // Missing, dead or invalidated: a fetch in the foreground.
                        prop_assert_eq!(got, before, "step {}: must refetch", step);
                        prop_assert_eq!(next, before + 1, "step {}: one fetch", step);
                        model.store(key, got, &owned, ttl_s * 1000, grace_s * 1000);
                    }
                }
            }
            Op::Set { key, tags, ttl_s } => {
                let value = source.fetch_add(1, Ordering::SeqCst);
                let options = SetOptions::new(paths(&tags))
                    .ttl(Duration::from_secs(ttl_s))
                    .grace(Duration::ZERO);
                h.cache
                    .set(&format!("k{key}"), &value, options)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.store(key, value, &owned(&tags), ttl_s * 1000, 0);
            }
            Op::Get { key } => {
                let got = h
                    .cache
                    .get::<u64>(&format!("k{key}"))
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let expected = model.live(key).filter(|e| !model.stale(e)).map(|e| e.value);
                prop_assert_eq!(got, expected, "step {}: get", step);
            }
            Op::Delete { key } => {
                h.cache
                    .delete(&format!("k{key}"))
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.entries.remove(&key);
            }
            Op::Invalidate { tag } => {
                h.cache
                    .invalidate(&paths(std::slice::from_ref(&tag)))
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model
                    .prefix_marks
                    .insert(owned(&[tag])[0].clone(), model.count);
                model.count += 1;
            }
            Op::InvalidateExact { tag } => {
                h.cache
                    .invalidate_exact(&paths(std::slice::from_ref(&tag)))
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model
                    .exact_marks
                    .insert(owned(&[tag])[0].clone(), model.count);
                model.count += 1;
            }
            Op::Advance { ms } => {
                h.advance(Duration::from_millis(ms));
                model.now += ms;
            }
        }
    }
    prop_assert_eq!(h.cache.in_flight(), 0);
    Ok(())
}

fn run(store: Store) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    let config = ProptestConfig {
        cases,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in prop::collection::vec(op_strategy(), 1..40))| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(check(store, ops))?;
    });
}

#[test]
fn model_memory_objects() {
    run(Store::MemoryObjects);
}

#[test]
fn model_memory_bytes_async() {
    run(Store::MemoryBytesAsync);
}

#[test]
fn model_redis() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if runtime.block_on(t87s_tests::redis_available()) {
        run(Store::Redis);
    }
}
