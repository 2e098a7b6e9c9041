use t87s::{Static, TagSchema, Wild};

#[derive(TagSchema)]
struct AppTags {
    posts: Wild,
    count: u64,
    global: Static,
}

fn main() {
    let _ = AppTags::root().posts(1);
}
