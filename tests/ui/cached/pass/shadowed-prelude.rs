//! The expansion names only absolute paths: shadowing prelude names is harmless.
#![allow(dead_code)]
use t87s::{cached, MemoryAdapter, QueryCache, TagSchema, Wild};

struct Option;
struct Result;
struct Some;
struct Ok;
struct Clone;

#[derive(TagSchema)]
struct Tags {
    users: Wild,
}

#[derive(core::clone::Clone)]
struct Users {
    cache: QueryCache<Tags>,
}

impl Users {
    #[cached(tags = [t.users(id)], ttl = "1m")]
    async fn name(&self, id: u64) -> core::result::Result<String, std::io::Error> {
        core::result::Result::Ok(id.to_string())
    }
}

fn main() {
    let users = Users { cache: QueryCache::new(MemoryAdapter::new()) };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(users.name(7)).unwrap(), "7");
}
