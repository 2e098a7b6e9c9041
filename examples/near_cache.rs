//! Two processes sharing Redis, each with a near cache: the parent writes and
//! invalidates, the child (this same program, started with `child`) reads
//! from memory and never sees the old value after the invalidation returned.
//!
//! `cargo run --example near_cache` (needs Redis at `REDIS_URL`, default
//! `redis://127.0.0.1:6379`).
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use t87s::{cached, NearCache, QueryCache, RedisAdapter, Static, TagSchema, Wild};

#[derive(TagSchema)]
struct AppTags {
    posts: Wild,
    global: Static,
}

/// The "database": a title per post, in a file both processes read.
#[derive(Clone)]
struct Blog {
    cache: QueryCache<AppTags>,
    db: Arc<std::path::PathBuf>,
}

impl Blog {
    #[cached(tags = [t.posts(id)], ttl = "1h")]
    async fn title(&self, id: u64) -> Result<String, std::io::Error> {
        let path = self.db.join(id.to_string());
        std::fs::read_to_string(path)
    }
}

async fn blog(db: std::path::PathBuf) -> Result<Blog, Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let adapter = RedisAdapter::builder(url)
        .prefix("t87s-example-near")
        .near_cache(NearCache::new().lease(Duration::from_secs(2)))
        .connect()
        .await?;
    // Wait until this process holds its lease (it serves from Redis before).
    let start = Instant::now();
    while !adapter.near_status().is_some_and(|s| s.serving) {
        if start.elapsed() > Duration::from_secs(5) {
            return Err("the near cache did not start: is Redis up?".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Blog {
        cache: QueryCache::builder(adapter).build()?,
        db: Arc::new(db),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("child") {
        // The reader: one title per line on stdin asks for a read.
        let blog = blog(args.next().ok_or("db dir")?.into()).await?;
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            line?;
            let title = blog.title(1).await?;
            println!("{title}");
        }
        return Ok(());
    }
    let db = std::env::temp_dir().join(format!("t87s-near-example-{}", std::process::id()));
    std::fs::create_dir_all(&db)?;
    std::fs::write(db.join("1"), "Hello")?;
    let blog = blog(db.clone()).await?;
    blog.cache.invalidate(blog.cache.tags().posts(1)).await?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("child")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut to_child = child.stdin.take().ok_or("child stdin")?;
    let mut from_child = BufReader::new(child.stdout.take().ok_or("child stdout")?);
    let mut read = || -> Result<String, Box<dyn std::error::Error>> {
        writeln!(to_child, "read")?;
        let mut line = String::new();
        from_child.read_line(&mut line)?;
        Ok(line.trim_end().to_owned())
    };
    println!("child reads: {}", read()?); // from Redis, then kept in its memory
    println!("child reads: {}", read()?); // from its memory
    for title in ["Hello again", "Third title"] {
        std::fs::write(db.join("1"), title)?;
        let start = Instant::now();
        blog.cache.invalidate(blog.cache.tags().posts(1)).await?;
        println!(
            "parent wrote {title:?}; invalidate returned in {:?}",
            start.elapsed()
        );
        let seen = read()?;
        println!("child reads: {seen}");
        assert_eq!(seen, title, "the child served an invalidated value");
    }
    child.kill()?;
    std::fs::remove_dir_all(&db)?;
    Ok(())
}
