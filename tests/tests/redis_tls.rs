//! `redis-tls`: a `rediss://` URL reaches a Redis that speaks only TLS
//! (a test-started server with a certificate made for it). The only test of
//! this binary: it points `SSL_CERT_FILE` at that certificate, which is how
//! the system's roots are found.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use t87s::engine::{Primitives, QueryOptions};
use t87s::{EventKind, RedisAdapter};
use t87s_tests::servers::RedisServer;
use t87s_tests::{redis_available, tag, unique_prefix, Recorder, Source};

/// A self-signed certificate for 127.0.0.1 in `dir`, made with the
/// `openssl` command; `None` (loudly, or a failure under `CI`) without it.
fn certificate(dir: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        // A server's certificate, not a CA's (webpki refuses a CA as the peer).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(out) if out.status.success() => Some((cert, key)),
        other => {
            let why = format!("openssl could not make a certificate: {other:?}");
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("\n*** SKIPPED: {why} ***\n");
            None
        }
    }
}

#[tokio::test]
async fn a_rediss_url_caches_over_tls() {
    if !redis_available().await {
        return;
    }
    let dir = std::env::temp_dir().join(format!("t87s-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some((cert, key)) = certificate(&dir) else {
        return;
    };
    // SAFETY of the process environment: this binary has this one test.
    std::env::set_var("SSL_CERT_FILE", &cert);
    let server = RedisServer::start_tls(&cert, &key);

    let url = format!("rediss://127.0.0.1:{}", server.port);
    let adapter = RedisAdapter::builder(url)
        .prefix(unique_prefix())
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let events = Recorder::default();
    // No sampled verification: it would re-run the fetch behind a hit and
    // make the fetch count below flaky.
    let cache = Primitives::builder(adapter)
        .observer(events.clone())
        .verify_percent(0.0)
        .build()
        .unwrap();
    let tags = [tag(&["posts", "1"])];
    let src = Source::new(7u64);
    for _ in 0..2 {
        let value = cache
            .query("post:1", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!(value, 7);
    }
    assert_eq!(
        src.calls(),
        1,
        "the second read is a hit from Redis: {:?}",
        events.kinds()
    );
    assert_eq!(events.count(EventKind::AdapterError), 0);
    cache.invalidate(&tags).await.unwrap();
    src.set(8);
    let value = cache
        .query("post:1", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!((value, src.calls()), (8, 2), "invalidated over TLS");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
