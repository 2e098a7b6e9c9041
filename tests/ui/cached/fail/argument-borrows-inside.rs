//! `#[cached]` with arguments that borrow inside (`Option<&str>`, `Cow<str>`, `&[&str]`): the fetch may outlive the call.
use t87s::{cached, MemoryAdapter, QueryCache, Static, TagSchema, Wild};

#[derive(TagSchema)]
struct PostTags {
    comments: Wild,
    settings: Static,
}

#[derive(TagSchema)]
struct AppTags {
    posts: Wild<PostTags>,
    global: Static,
}

#[derive(Clone)]
struct Blog {
    cache: QueryCache<AppTags>,
}


impl Blog {
    #[cached(tags = [t.posts(..)])]
    async fn search(&self, author: Option<&str>) -> Result<String, std::io::Error> {
        Ok(format!("{author:?}"))
    }

    #[cached(tags = [t.posts(..)])]
    async fn titled(&self, title: std::borrow::Cow<'_, str>) -> Result<String, std::io::Error> {
        Ok(title.into_owned())
    }

    #[cached(tags = [t.posts(..)])]
    async fn tagged(&self, tags: &[&str]) -> Result<String, std::io::Error> {
        Ok(tags.join(","))
    }
}

fn main() {
    let _ = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
}
