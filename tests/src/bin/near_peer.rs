//! A process with a near cache, driven line by line on stdin by the near
//! cache suite (`tests/near.rs`): one of the "hosts" sharing a Redis.
//!
//! `near_peer URL PREFIX DB_DIR LEASE_MS strict|eventual` (URL: one, or the
//! comma-separated nodes of a Cluster), then commands:
//!
//! - `get K`: the query `post:K` (tag `posts/K`), whose fetch reads the file
//!   `DB_DIR/K`; prints the value.
//! - `set K V`: writes `V` to `DB_DIR/K`, invalidates `posts/K`; prints `ok`
//!   and how long the invalidation took (µs) once it returned.
//! - `load N`: starts N tasks that query 100 other keys (`load/*` tags)
//!   until the process ends, invalidating one every 50th call; prints `ok`.
//! - `status`: prints `serving applied entries`.
//!
//! Prints `ready` once its near cache serves.
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use t87s::engine::{Primitives, QueryOptions, TagPath};
use t87s::{NearCache, RedisAdapter};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, prefix, db, lease, mode] = args.as_slice() else {
        eprintln!("usage: near_peer URL PREFIX DB_DIR LEASE_MS strict|eventual");
        std::process::exit(2);
    };
    let db = PathBuf::from(db);
    let lease = Duration::from_millis(lease.parse().expect("lease ms"));
    let near = match mode.as_str() {
        "eventual" => NearCache::new().lease(lease).eventual(),
        _ => NearCache::new().lease(lease),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Several URLs, comma-separated: a Cluster.
        let builder = if url.contains(',') {
            RedisAdapter::cluster_builder(url.split(','))
        } else {
            RedisAdapter::builder(url.as_str())
        };
        let adapter = builder
            .prefix(prefix.as_str())
            .near_cache(near)
            .connect()
            .await
            .expect("adapter");
        let started = Instant::now();
        while !adapter.near_status().is_some_and(|s| s.serving) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "near cache never served"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cache = Primitives::builder(adapter.clone())
            .default_ttl("1h")
            .verify_percent(0.0)
            .build()
            .expect("cache");
        let stdout = std::io::stdout();
        writeln!(stdout.lock(), "ready").expect("stdout");
        let (lines, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            let words: Vec<&str> = line.split_whitespace().collect();
            let answer = match words.as_slice() {
                ["get", key] => {
                    let path = db.join(key);
                    let tags = [TagPath::new(["posts", key]).expect("tag")];
                    cache
                        .query(
                            &format!("post:{key}"),
                            &tags,
                            QueryOptions::new(),
                            move || async move { std::fs::read_to_string(path) },
                        )
                        .await
                        .unwrap_or_else(|e| format!("error {e}"))
                }
                ["set", key, value] => {
                    std::fs::write(db.join(key), value).expect("db write");
                    let tags = [TagPath::new(["posts", key]).expect("tag")];
                    let start = Instant::now();
                    match cache.invalidate(&tags).await {
                        Ok(()) => format!("ok {}", start.elapsed().as_micros()),
                        Err(e) => format!("error {e}"),
                    }
                }
                ["load", tasks] => {
                    // Background traffic until the process ends: near hits
                    // on 100 keys, and every 50th call an invalidation of
                    // one of them (a message to every peer, then a miss).
                    for task in 0..tasks.parse::<u64>().unwrap_or(1) {
                        let cache = cache.clone();
                        tokio::spawn(async move {
                            for call in 0u64.. {
                                let k = (call * 7 + task) % 100;
                                let tags = [TagPath::new(["load", &k.to_string()]).expect("tag")];
                                let _ = cache
                                    .query(
                                        &format!("load:{k}"),
                                        &tags,
                                        QueryOptions::new(),
                                        move || async move {
                                            Ok::<_, std::io::Error>(format!("load {k}"))
                                        },
                                    )
                                    .await;
                                if call % 50 == 49 {
                                    let _ = cache.invalidate(&tags).await;
                                }
                                tokio::task::yield_now().await;
                            }
                        });
                    }
                    "ok".to_owned()
                }
                ["status"] => match adapter.near_status() {
                    Some(s) => format!("{} {} {}", s.serving, s.applied, s.entries),
                    None => "none".to_owned(),
                },
                _ => format!("error unknown command {line:?}"),
            };
            let mut out = stdout.lock();
            writeln!(out, "{answer}").expect("stdout");
            out.flush().expect("stdout");
        }
    });
}
