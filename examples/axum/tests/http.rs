//! The service over real HTTP on a loopback port: a writer and readers with
//! no stale read once a write returned, 200 concurrent cold reads that run
//! one SQL query, and the metrics the run produced.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use t87s_example_axum::{app, seeded, App, Post};

/// Serves the app on 127.0.0.1 (a free port) until the test ends.
async fn serve(name: &str) -> (App, SocketAddr) {
    let db = seeded(name, 10).await.unwrap();
    let (state, router) = app(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (state, addr)
}

/// One request on a connection of its own: the status and the body.
async fn call(addr: SocketAddr, method: Method, path: &str, body: &str) -> (StatusCode, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    call(addr, Method::GET, path, "").await
}

fn post_of(body: &str) -> Post {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_cold_reads_run_one_sql_query() {
    let (state, addr) = serve("cold_reads").await;
    let before = state.sql_queries();
    let reads = (0..200).map(|_| tokio::spawn(get(addr, "/posts/3")));
    for read in reads {
        let (status, body) = read.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(post_of(&body).title, "Post 3");
    }
    assert_eq!(
        state.sql_queries() - before,
        1,
        "one SQL query for 200 readers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_after_a_write_returns_while_readers_hammer_the_post() {
    let (state, addr) = serve("writes").await;
    let writing = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicU64::new(0));
    // Readers keep the post and the list hot (and their fetches racing the
    // writes) for as long as the writer writes.
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (writing, reads) = (writing.clone(), reads.clone());
            tokio::spawn(async move {
                let path = if r % 2 == 0 { "/posts/2" } else { "/posts" };
                while writing.load(Ordering::Relaxed) {
                    let (status, _) = get(addr, path).await;
                    assert_eq!(status, StatusCode::OK);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut stale = 0;
    let writes = 100;
    for i in 0..writes {
        let title = format!("v{i}");
        let (status, _) = call(
            addr,
            Method::PUT,
            "/posts/2",
            &format!("{{\"title\":\"{title}\"}}"),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        // The write returned: every read from now on sees it.
        let (_, post) = get(addr, "/posts/2").await;
        let (_, list) = get(addr, "/posts").await;
        if post_of(&post).title != title {
            stale += 1;
        }
        if !list.contains(&format!("\"title\":\"{title}\"")) {
            stale += 1;
        }
    }
    writing.store(false, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert_eq!(stale, 0, "stale reads after {writes} writes");
    assert!(reads.load(Ordering::Relaxed) > 0, "the readers read");
    assert!(
        state.sql_queries() < reads.load(Ordering::Relaxed) + 2 * writes,
        "the cache answered some reads"
    );

    // Comments: a write invalidates them; the post is untouched by it.
    let (status, _) = call(
        addr,
        Method::POST,
        "/posts/2/comments",
        "{\"body\":\"second\"}",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, comments) = get(addr, "/posts/2/comments").await;
    assert!(comments.contains("second"), "{comments}");
    assert_eq!(get(addr, "/posts/99").await.0, StatusCode::NOT_FOUND);

    // The metrics of the run, labelled by query name, never by key.
    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "t87s_events_total{query=\"Blog::post\",event=\"hit\"}",
        "t87s_events_total{query=\"Blog::post\",event=\"miss\"}",
        "t87s_events_total{query=\"Blog::posts\",event=\"miss\"}",
        "t87s_fetch_seconds_count{query=\"Blog::post\"}",
        "t87s_invalidations_total{root=\"posts\"}",
    ] {
        assert!(metrics.contains(line), "no {line} in:\n{metrics}");
    }
    assert!(!metrics.contains("@"), "a key in a label:\n{metrics}");
}
