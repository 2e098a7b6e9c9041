//! Procedural macros for [t87s](https://docs.rs/t87s): `#[derive(TagSchema)]`
//! and `#[cached(...)]`. Use them through the `t87s` crate, which re-exports
//! both; the generated code names only `::t87s::...` paths.

mod cached;
mod errors;
mod schema;

use proc_macro::TokenStream;

/// Derives a tag schema on a struct of `Wild<...>` and `Static` fields.
///
/// See `t87s::TagSchema` for what it generates.
#[proc_macro_derive(TagSchema)]
pub fn derive_tag_schema(input: TokenStream) -> TokenStream {
    schema::expand(input.into()).into()
}

/// Caches an `async fn` method: `#[cached(tags = [t.posts(id)], ttl = "10m")]`.
///
/// See `t87s::cached` for the arguments and the rules.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    cached::expand(args.into(), item.into()).into()
}
