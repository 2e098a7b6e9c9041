use t87s::{TagSchema, Wild};

#[derive(TagSchema)]
struct AppTags<T> {
    posts: Wild,
    marker: std::marker::PhantomData<T>,
}

fn main() {}
