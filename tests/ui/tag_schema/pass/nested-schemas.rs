use t87s::{IntoTag, Static, Tag, TagSchema, Wild};

#[derive(TagSchema)]
pub struct CommentTags {
    reactions: Static,
}

#[derive(TagSchema)]
pub struct PostTags {
    comments: Wild<CommentTags>,
    settings: Static,
}

#[derive(TagSchema)]
pub struct AppTags {
    posts: Wild<PostTags>,
    users: Wild,
    r#type: Static,
}

fn path<T: IntoTag<AppTags>>(tag: T) -> String {
    tag.into_tag().path().to_string()
}

fn main() {
    let t = AppTags::root();
    assert_eq!(path(t.posts(1)), "posts/1");
    assert_eq!(path(t.posts(..)), "posts");
    assert_eq!(path(t.posts(1).comments(7).reactions()), "posts/1/comments/7/reactions");
    assert_eq!(path(t.posts("a/b").settings()), "posts/a%2Fb/settings");
    assert_eq!(path(t.users(String::from("ada"))), "users/ada");
    assert_eq!(path(t.r#type()), "type");
    let tag: Tag<AppTags> = t.posts(1).comments(..);
    assert_eq!(tag.path().depth(), 3);
}
