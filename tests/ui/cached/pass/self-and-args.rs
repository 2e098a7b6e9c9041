//! Reference arguments, `mut` arguments, `return` and `?` in the body,
//! another cache field, a `Duration` constant for the ttl, `on_refresh`.
use std::time::Duration;

use t87s::{cached, MemoryAdapter, QueryCache, TagSchema, Wild};

#[derive(TagSchema)]
struct Tags {
    users: Wild,
}

const TTL: Duration = Duration::from_secs(60);

fn changed(old: &String, new: &String, changed: bool) {
    let _ = (old, new, changed);
}

#[derive(Clone)]
struct Users {
    store: QueryCache<Tags>,
    greeting: String,
}

impl Users {
    #[cached(tags = [t.users(name)], cache = store, ttl = TTL, on_refresh = changed)]
    async fn greet(&self, name: &str, mut times: u8, ids: &[u64]) -> Result<String, std::fmt::Error> {
        if times == 0 {
            return Ok(String::new());
        }
        let mut out = String::new();
        while times > 0 {
            std::fmt::Write::write_fmt(&mut out, format_args!("{} {name} {}; ", self.greeting, ids.len()))?;
            times -= 1;
        }
        Ok(out)
    }
}

fn main() {
    let users = Users { store: QueryCache::new(MemoryAdapter::new()), greeting: "hi".into() };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let name = String::from("ada");
    let out = rt.block_on(users.greet(&name, 2, &[1, 2, 3])).unwrap();
    assert_eq!(out, "hi ada 3; hi ada 3; ");
}

#[derive(Clone)]
struct Moves {
    cache: QueryCache<Tags>,
    n: u64,
}

impl Moves {
    /// `self` inside a `move` closure is still a copied reference.
    #[cached(tags = [t.users(id)])]
    async fn twice(&self, id: u64) -> Result<u64, std::fmt::Error> {
        let get = move || self.n + id;
        Ok(get() + self.n)
    }
}
