//! A blog service on axum 0.8 and SQLite (sqlx), with its reads cached by
//! t87s: `GET` endpoints call `#[cached]` trait methods, writes are
//! `#[invalidates]` methods, `/metrics` is the Prometheus exporter's text.
//!
//! `cargo run -p t87s-example-axum` serves it on 127.0.0.1:3000 (`PORT` to
//! change it, `RUST_LOG=t87s=debug` for every cache event); the database is
//! SQLite in memory, seeded at start. The cache is in memory, or on Redis
//! with `T87S_REDIS=redis://127.0.0.1:6379`, with a near cache in front of it
//! if `T87S_NEAR=1` too (`bench/near-throughput` runs both against wrk). Its test (`tests/http.rs`) drives it
//! over real HTTP.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use t87s::{cached, invalidates, MemoryAdapter, QueryCache, TagSchema, Wild};

/// The tags: a post, and the comments below it.
#[derive(TagSchema)]
pub struct PostTags {
    comments: Wild,
}

/// The schema of the service's cache.
#[derive(TagSchema)]
pub struct AppTags {
    posts: Wild<PostTags>,
}

/// A post, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    /// Its id.
    pub id: i64,
    /// Its title.
    pub title: String,
}

/// A comment of a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// Its id.
    pub id: i64,
    /// What it says.
    pub body: String,
}

/// What can go wrong. `Clone`, so callers that waited on a failed fetch
/// get its error without fetching again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// No such post.
    #[error("not found")]
    NotFound,
    /// The database failed.
    #[error("database: {0}")]
    Db(Arc<sqlx::Error>),
    /// An invalidation failed (it is retried in the background).
    #[error("cache: {0}")]
    Cache(Arc<t87s::Error>),
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        AppError::Db(Arc::new(error))
    }
}

impl From<t87s::Error> for AppError {
    fn from(error: t87s::Error) -> Self {
        AppError::Cache(Arc::new(error))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Db(_) | AppError::Cache(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

/// The reads handlers need: a trait, so a handler could take a mock. The
/// futures are declared `Send` (axum needs it of a handler's future).
pub trait Blog: Send + Sync {
    /// One post.
    fn post(&self, id: i64) -> impl Future<Output = Result<Post, AppError>> + Send;
    /// Every post, newest first.
    fn posts(&self) -> impl Future<Output = Result<Vec<Post>, AppError>> + Send;
    /// The comments of a post.
    fn comments(&self, post_id: i64)
        -> impl Future<Output = Result<Vec<Comment>, AppError>> + Send;
}

/// The service's state: the pool, the cache, and how many SQL queries ran.
#[derive(Clone)]
pub struct App {
    db: SqlitePool,
    cache: QueryCache<AppTags>,
    sql_queries: Arc<AtomicU64>,
}

impl Blog for App {
    #[cached(name = "Blog::post", tags = [t.posts(id)], ttl = "10m", grace = "1h")]
    async fn post(&self, id: i64) -> Result<Post, AppError> {
        self.sql_queries.fetch_add(1, Ordering::Relaxed);
        let row = sqlx::query("SELECT id, title FROM posts WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        let row = row.ok_or(AppError::NotFound)?;
        Ok(Post {
            id: row.try_get("id")?,
            title: row.try_get("title")?,
        })
    }

    // `posts` is the tag of the list: `exact(t.posts(..))` below
    // invalidates it without touching every post.
    #[cached(name = "Blog::posts", tags = [t.posts(..)], ttl = "1m")]
    async fn posts(&self) -> Result<Vec<Post>, AppError> {
        self.sql_queries.fetch_add(1, Ordering::Relaxed);
        let rows = sqlx::query("SELECT id, title FROM posts ORDER BY id DESC")
            .fetch_all(&self.db)
            .await?;
        let posts = rows.iter().map(|row| {
            Ok(Post {
                id: row.try_get("id")?,
                title: row.try_get("title")?,
            })
        });
        posts
            .collect::<Result<_, sqlx::Error>>()
            .map_err(AppError::from)
    }

    #[cached(name = "Blog::comments", tags = [t.posts(post_id).comments(..)], ttl = "10m")]
    async fn comments(&self, post_id: i64) -> Result<Vec<Comment>, AppError> {
        self.sql_queries.fetch_add(1, Ordering::Relaxed);
        let rows = sqlx::query("SELECT id, body FROM comments WHERE post_id = ? ORDER BY id")
            .bind(post_id)
            .fetch_all(&self.db)
            .await?;
        let comments = rows.iter().map(|row| {
            Ok(Comment {
                id: row.try_get("id")?,
                body: row.try_get("body")?,
            })
        });
        comments
            .collect::<Result<_, sqlx::Error>>()
            .map_err(AppError::from)
    }
}

impl App {
    /// Renames a post. When it returns `Ok`, the post and the list are
    /// stale everywhere the store is shared (its comments are not).
    #[invalidates(tags = [exact(t.posts(id)), exact(t.posts(..))])]
    pub async fn rename(&self, id: i64, title: String) -> Result<(), AppError> {
        let done = sqlx::query("UPDATE posts SET title = ? WHERE id = ?")
            .bind(title)
            .bind(id)
            .execute(&self.db)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AppError::NotFound);
        }
        Ok(())
    }

    /// Adds a comment; the post's comments are stale when it returns `Ok`.
    #[invalidates(tags = [t.posts(post_id).comments(..)])]
    pub async fn comment(&self, post_id: i64, body: String) -> Result<i64, AppError> {
        let done = sqlx::query("INSERT INTO comments (post_id, body) VALUES (?, ?)")
            .bind(post_id)
            .bind(body)
            .execute(&self.db)
            .await?;
        Ok(done.last_insert_rowid())
    }

    /// How many SQL reads the cached methods ran.
    pub fn sql_queries(&self) -> u64 {
        self.sql_queries.load(Ordering::Relaxed)
    }
}

/// A fresh in-memory SQLite database (its own name, so tests get one each),
/// seeded with `posts` posts and a comment on each.
pub async fn seeded(name: &str, posts: i64) -> Result<SqlitePool, sqlx::Error> {
    let options =
        SqliteConnectOptions::from_str(&format!("sqlite:file:{name}?mode=memory&cache=shared"))?;
    // The database lives while a connection is open: keep one.
    let db = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await?;
    sqlx::query("CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL)")
        .execute(&db)
        .await?;
    sqlx::query(
        "CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL, body TEXT NOT NULL)",
    )
    .execute(&db)
    .await?;
    for id in 1..=posts {
        sqlx::query("INSERT INTO posts (id, title) VALUES (?, ?)")
            .bind(id)
            .bind(format!("Post {id}"))
            .execute(&db)
            .await?;
        sqlx::query("INSERT INTO comments (post_id, body) VALUES (?, ?)")
            .bind(id)
            .bind(format!("First comment on post {id}"))
            .execute(&db)
            .await?;
    }
    Ok(db)
}

/// The Prometheus recorder, installed once per process.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder already installed (a host process): ours
            // then renders nothing, and the service still runs.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The service over `db`, with a cache of its own (in memory).
pub fn app(db: SqlitePool) -> (App, Router) {
    app_with(db, QueryCache::new(MemoryAdapter::new()))
}

/// The service over `db` and `cache`: any store, such as Redis with a near
/// cache, shared by several processes of the service.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = t87s::RedisAdapter::builder("redis://127.0.0.1:6379")
///     .near_cache(t87s::NearCache::new())
///     .connect()
///     .await?;
/// let db = t87s_example_axum::seeded("blog", 20).await?;
/// let (_, router) = t87s_example_axum::app_with(db, t87s::QueryCache::new(redis));
/// # let _ = router;
/// # Ok(()) }
/// ```
pub fn app_with(db: SqlitePool, cache: QueryCache<AppTags>) -> (App, Router) {
    let state = App {
        db,
        cache,
        sql_queries: Arc::default(),
    };
    let metrics = prometheus();
    let router = Router::new()
        .route("/posts", get(list))
        .route("/posts/{id}", get(show).put(rename))
        .route("/posts/{id}/comments", get(comments).post(comment))
        .route("/metrics", get(move || async move { metrics.render() }))
        .with_state(state.clone());
    (state, router)
}

async fn list(State(app): State<App>) -> Result<Json<Vec<Post>>, AppError> {
    Ok(Json(app.posts().await?))
}

async fn show(State(app): State<App>, Path(id): Path<i64>) -> Result<Json<Post>, AppError> {
    Ok(Json(app.post(id).await?))
}

async fn comments(
    State(app): State<App>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Comment>>, AppError> {
    Ok(Json(app.comments(id).await?))
}

/// The body of a rename.
#[derive(Deserialize)]
pub struct Rename {
    /// The new title.
    pub title: String,
}

async fn rename(
    State(app): State<App>,
    Path(id): Path<i64>,
    Json(body): Json<Rename>,
) -> Result<StatusCode, AppError> {
    app.rename(id, body.title).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of a new comment.
#[derive(Deserialize)]
pub struct NewComment {
    /// What it says.
    pub body: String,
}

async fn comment(
    State(app): State<App>,
    Path(id): Path<i64>,
    Json(body): Json<NewComment>,
) -> Result<(StatusCode, Json<i64>), AppError> {
    let id = app.comment(id, body.body).await?;
    Ok((StatusCode::CREATED, Json(id)))
}
