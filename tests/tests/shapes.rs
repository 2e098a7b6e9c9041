//! Values across deployments: two builds share a store while a value type
//! changes shape. A value written by one and read by the other is a miss,
//! never a wrong value. Each module below stands for one build's definition
//! of the type.

use serde::{Deserialize, Serialize};
use t87s::adapter::ValueForm;
use t87s::engine::{Primitives, SetOptions, TagPath};
use t87s::MemoryAdapter;

mod before {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Post {
        pub title: String,
        pub body: String,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum State {
        Draft,
        Published,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Count {
        pub n: u32,
    }
}

mod same_shape {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Post {
        pub title: String,
        pub body: String,
    }
}

mod reordered {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Post {
        pub body: String,
        pub title: String,
    }
}

mod renamed {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Post {
        pub headline: String,
        pub body: String,
    }
}

mod added {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Post {
        pub title: String,
        pub body: String,
        pub author: String,
    }
}

mod removed {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Post {
        pub title: String,
    }
}

mod retyped {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Count {
        pub n: u64,
    }
}

mod variants_reordered {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum State {
        Published,
        Draft,
    }
}

/// One shared byte store (as Redis is), seen by two "builds".
fn shared() -> Primitives {
    let adapter = MemoryAdapter::builder()
        .value_form(ValueForm::Bytes)
        .build()
        .unwrap();
    Primitives::new(adapter)
}

async fn written_then_read<W, R>(written: &W) -> Option<R>
where
    W: t87s::Cacheable,
    R: t87s::Cacheable,
{
    let cache = shared();
    let tags = SetOptions::new([TagPath::new(["posts", "1"]).unwrap()]);
    cache.set("post:1", written, tags).await.unwrap();
    cache.get::<R>("post:1").await.unwrap()
}

fn post() -> before::Post {
    before::Post {
        title: "Title".into(),
        body: "Body".into(),
    }
}

#[tokio::test]
async fn the_same_shape_in_another_build_is_a_hit() {
    let read: Option<same_shape::Post> = written_then_read(&post()).await;
    assert_eq!(
        read,
        Some(same_shape::Post {
            title: "Title".into(),
            body: "Body".into()
        })
    );
}

#[tokio::test]
async fn reordered_fields_are_a_miss_never_swapped() {
    let read: Option<reordered::Post> = written_then_read(&post()).await;
    assert_eq!(read, None, "title and body would have been swapped");
}

#[tokio::test]
async fn renamed_added_and_removed_fields_are_a_miss() {
    assert_eq!(written_then_read::<_, renamed::Post>(&post()).await, None);
    assert_eq!(written_then_read::<_, added::Post>(&post()).await, None);
    assert_eq!(written_then_read::<_, removed::Post>(&post()).await, None);
}

#[tokio::test]
async fn a_retyped_field_is_a_miss() {
    let read: Option<retyped::Count> = written_then_read(&before::Count { n: 7 }).await;
    assert_eq!(read, None);
}

#[tokio::test]
async fn reordered_enum_variants_are_a_miss() {
    let read: Option<variants_reordered::State> = written_then_read(&before::State::Draft).await;
    assert_eq!(read, None, "Draft would have read as Published");
}
