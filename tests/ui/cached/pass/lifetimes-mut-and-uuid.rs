//! A method with named lifetimes, a `mut` argument the body changes (no
//! `unused_mut` warning: warnings are errors here), and a `Uuid` argument.
#![deny(warnings)]

use t87s::{cached, MemoryAdapter, QueryCache, TagSchema, Wild};

#[derive(TagSchema)]
struct Tags {
    users: Wild,
}

#[derive(Clone)]
struct Users {
    cache: QueryCache<Tags>,
}

impl Users {
    #[cached(tags = [t.users(name)])]
    async fn greet<'a>(&self, name: &'a str, mut times: u8) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        while times > 0 {
            out.push_str(name);
            times -= 1;
        }
        Ok(out)
    }

    #[cached(tags = [t.users(id)], name = "Users::by_id", version = 2)]
    async fn by_id(&self, id: uuid::Uuid) -> Result<String, std::fmt::Error> {
        Ok(id.to_string())
    }
}

fn main() {
    let users = Users { cache: QueryCache::new(MemoryAdapter::new()) };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(users.greet("ab", 2)).unwrap(), "abab");
    assert!(rt.block_on(users.by_id(uuid::Uuid::nil())).is_ok());
}
