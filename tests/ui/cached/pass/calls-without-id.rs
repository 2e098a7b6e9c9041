//! Methods called without arguments in `tags = [...]` (which the macros route
//! through `NoId`): `Static` fields at any depth, and the tags' own methods.
use t87s::{cached, invalidates, IntoTag, MemoryAdapter, QueryCache, Static, TagSchema, Wild};

#[derive(TagSchema)]
struct PostTags {
    comments: Wild,
    settings: Static,
}

#[derive(TagSchema)]
pub struct AppTags {
    posts: Wild<PostTags>,
    global: Static,
}

#[derive(Clone)]
struct Blog {
    cache: QueryCache<AppTags>,
}

impl Blog {
    #[cached(tags = [
        t.global(),
        t.posts(id).settings(),
        t.posts(id).into_tag(),
        t.posts(id).clone(),
        t.posts(..).into_tag(),
        (t.global()).clone(),
        t.posts(id).comments(..).into_tag(),
    ])]
    async fn post(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("post {id}"))
    }

    #[invalidates(tags = [t.global(), exact(t.posts(id).settings()), t.posts(id).into_tag()])]
    async fn rename(&self, id: u64) -> Result<(), t87s::Error> {
        let _ = id;
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let blog = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
    assert_eq!(blog.post(1).await.ok().as_deref(), Some("post 1"));
    assert!(blog.rename(1).await.is_ok());
}
