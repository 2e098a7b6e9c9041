//! `#[cached(tags = [...], ttl = "...", grace = "...", on_refresh = f, cache = field)]`.
//!
//! Input:
//!
//! ```text
//! #[cached(tags = [t.posts(id)], ttl = "10m")]
//! async fn post(&self, id: u64) -> Result<Post, DbError> { BODY }
//! ```
//!
//! Output (same attributes, visibility and signature; only the block changes):
//!
//! ```text
//! async fn post(&self, id: u64) -> Result<Post, DbError> {
//!     let cache = &self.cache;
//!     let options = QueryOptions::new().ttl(const { "10m" parsed });
//!     query(cache, type_name::<Self>(), "post#<signature hash>",
//!         |key, args| { let (id,) = args; key.arg(id) }, // built only in a reused buffer
//!         (id,),
//!         |args| { let t = root(cache); let (id,) = args; [tag_path(cache, t.posts(id))] },
//!         options,
//!         share,                                        // Clone, else From<t87s::Error>, else not
//!         move |(id,)| {                                // runs only when a fetch must
//!         let owned = owned_self(self);                 // Self: Clone + Send + Sync + 'static
//!         move || async move {
//!             let this = &owned;
//!             let ret: Result<Post, DbError> = { BODY with self -> this };
//!             ret
//!         }
//!     }).await
//! }
//! ```
//!
//! Generated locals are `__t87s_*` at `Span::mixed_site()`, so user code can
//! neither see nor clash with them. `t` is at the call site: it is the user's.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ImplItemFn, Lit, Pat, ReturnType, Type};

use crate::errors::Errors;
use crate::method::{self, check_tag, Arg};

const ARGUMENTS: &str = "`tags`, `ttl`, `grace`, `on_refresh`, `cache`, `name`, `version`, `scope`";

#[derive(Default)]
struct Args {
    tags: Option<(Span, Vec<Expr>)>,
    ttl: Option<Expr>,
    grace: Option<Expr>,
    on_refresh: Option<Expr>,
    cache: Option<Ident>,
    name: Option<syn::LitStr>,
    version: Option<syn::LitInt>,
    scope: Option<Expr>,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let method = match method::parse_method("cached", item) {
        Ok(method) => method,
        Err(tokens) => return tokens,
    };
    let mut errors = Errors::default();
    let args = parse_args(args, &mut errors);
    let inputs = check_signature(&method, &mut errors);
    if let Some((_, tags)) = &args.tags {
        for tag in tags {
            check_tag(tag, &inputs, &mut errors);
        }
    }
    if !errors.is_empty() {
        // Every error at once, with the method as it was.
        return errors.with_item(method);
    }
    rewrite(method, &args, &inputs)
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> Args {
    let mut out = Args::default();
    let Some(list) = method::parse_list("cached", ARGUMENTS, args, errors) else {
        return out;
    };
    for nv in list {
        let Some(name) = nv.path.get_ident().map(Ident::to_string) else {
            errors.at(
                &nv.path,
                format!("unknown `#[cached]` argument; expected one of {ARGUMENTS}"),
            );
            continue;
        };
        let duplicate = match name.as_str() {
            "tags" => match nv.value {
                Expr::Array(array) => {
                    let span = array.span();
                    let tags: Vec<Expr> = array.elems.into_iter().collect();
                    if tags.is_empty() {
                        errors.at(
                            &nv.path,
                            "`tags` must name at least one tag, like `tags = [t.posts(id)]`",
                        );
                    }
                    out.tags.replace((span, tags)).is_some()
                }
                other => {
                    errors.at(
                        &other,
                        "`tags` takes a list of tags, like `tags = [t.posts(id)]`",
                    );
                    out.tags.replace((other.span(), Vec::new())).is_some()
                }
            },
            "ttl" => out.ttl.replace(nv.value).is_some(),
            "grace" => out.grace.replace(nv.value).is_some(),
            "on_refresh" => out.on_refresh.replace(nv.value).is_some(),
            "scope" => out.scope.replace(nv.value).is_some(),
            "name" => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(text),
                    ..
                }) if !text.value().is_empty() => out.name.replace(text.clone()).is_some(),
                other => {
                    errors.at(
                        other,
                        "`name` pins the method's keys to a non-empty string, like `name = \"Blog::post\"`",
                    );
                    false
                }
            },
            "version" => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Int(n), ..
                }) if n.base10_parse::<u32>().is_ok() => out.version.replace(n.clone()).is_some(),
                other => {
                    errors.at(
                        other,
                        "`version` is a whole number (bump it to leave every old key behind), like `version = 2`",
                    );
                    false
                }
            },
            "cache" => match method::cache_field(&nv.value, errors) {
                Some(ident) => out.cache.replace(ident).is_some(),
                None => false,
            },
            _ => {
                errors.at(
                    &nv.path,
                    format!("unknown `#[cached]` argument `{name}`; expected one of {ARGUMENTS}"),
                );
                false
            }
        };
        if duplicate {
            errors.at(&nv.path, format!("duplicate `{name}` argument"));
        }
    }
    if out.tags.is_none() {
        errors.push(syn::Error::new(
            Span::call_site(),
            "`#[cached]` requires `tags = [...]`: every query names the tags it depends on, like `#[cached(tags = [t.posts(id)])]`",
        ));
    }
    out
}

fn check_signature(method: &ImplItemFn, errors: &mut Errors) -> Vec<Arg> {
    let sig = &method.sig;
    method::check_async("cached", sig, errors);
    let generic = sig
        .generics
        .params
        .iter()
        .any(|p| !matches!(p, syn::GenericParam::Lifetime(_)));
    if generic {
        errors.at(
            &sig.generics,
            "`#[cached]` does not support generic methods (lifetimes are fine): one method, one kind of key",
        );
    }
    match &sig.output {
        ReturnType::Default => {
            errors.at(&sig.ident, "`#[cached]` methods return `Result<T, E>`: a value to cache, or an error that is never cached");
        }
        ReturnType::Type(_, ty) if !looks_like_result(ty) => {
            errors.at(ty, "`#[cached]` methods return `Result<T, E>` (or an alias of it named `...Result`): a value to cache, or an error that is never cached");
        }
        ReturnType::Type(..) => {}
    }
    let mut args = Vec::new();
    let mut receiver_ok = false;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                if matches!(r.kind, syn::ReceiverKind::Reference(_, _, None)) {
                    receiver_ok = true;
                } else {
                    errors.at(r, "`#[cached]` methods take `&self`");
                    receiver_ok = true;
                }
            }
            FnArg::Typed(pat_ty) => {
                let arg = method::argument("cached", pat_ty, true, errors, |ty, errors| {
                    if matches!(ty, Type::ImplTrait(_)) {
                        errors.at(
                            ty,
                            "`#[cached]` does not support `impl Trait` arguments; name the type",
                        );
                        return false;
                    }
                    if borrows_inside(ty) {
                        errors.at(
                            ty,
                            format!(
                                "`#[cached]` arguments own their data or are a plain reference `&T`; `{}` borrows inside, and the fetch may outlive the call: take an owned type (`Option<String>` for `Option<&str>`, `String` for `Cow<str>`, `&[String]` or `Vec<String>` for `&[&str]`)",
                                compact(ty.to_token_stream())
                            ),
                        );
                        return false;
                    }
                    true
                });
                args.extend(arg);
            }
        }
    }
    if !receiver_ok {
        errors.at(&sig.ident, "`#[cached]` methods take `&self`");
    }
    args
}

/// Tokens as a person writes them: `std::borrow::Cow<'_, str>`, not
/// `std :: borrow :: Cow < '_ , str >`.
fn compact(tokens: TokenStream) -> String {
    fn walk(tokens: TokenStream, out: &mut String, word_before: &mut bool) {
        for tree in tokens {
            match tree {
                TokenTree::Ident(ident) => {
                    if *word_before {
                        out.push(' ');
                    }
                    out.push_str(&ident.to_string());
                    *word_before = true;
                }
                TokenTree::Literal(lit) => {
                    if *word_before {
                        out.push(' ');
                    }
                    out.push_str(&lit.to_string());
                    *word_before = true;
                }
                TokenTree::Punct(p) => {
                    out.push(p.as_char());
                    if p.as_char() == ',' {
                        out.push(' ');
                    }
                    *word_before = false;
                }
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        proc_macro2::Delimiter::Parenthesis => ("(", ")"),
                        proc_macro2::Delimiter::Bracket => ("[", "]"),
                        proc_macro2::Delimiter::Brace => ("{", "}"),
                        proc_macro2::Delimiter::None => ("", ""),
                    };
                    out.push_str(open);
                    *word_before = false;
                    walk(g.stream(), out, word_before);
                    out.push_str(close);
                    *word_before = false;
                }
            }
        }
    }
    let mut out = String::new();
    walk(tokens, &mut out, &mut false);
    out
}

/// Whether a type borrows below its top level (`Option<&str>`,
/// `Cow<'_, str>`, `&[&str]`): such an argument cannot be owned for a fetch
/// that outlives the call. A plain `&T` (with `T` owning its data) is fine.
fn borrows_inside(ty: &Type) -> bool {
    fn borrows(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tree| match tree {
            TokenTree::Punct(p) => p.as_char() == '&' || p.as_char() == '\'',
            TokenTree::Group(g) => borrows(g.stream()),
            _ => false,
        })
    }
    match ty {
        Type::Reference(r) => borrows(r.elem.to_token_stream()),
        other => borrows(other.to_token_stream()),
    }
}

/// Whether a return type can be a `Result`: a path whose last segment ends
/// in `Result` (`Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`, an
/// alias like `DbResult<T>`).
fn looks_like_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident.to_string().ends_with("Result")),
        Type::Group(group) => looks_like_result(&group.elem),
        Type::Paren(paren) => looks_like_result(&paren.elem),
        _ => false,
    }
}

fn rewrite(mut method: ImplItemFn, args: &Args, inputs: &[Arg]) -> TokenStream {
    let cache = method::local("__t87s_cache");
    let key = method::local("__t87s_key");
    let args_local = method::local("__t87s_args");
    let options = method::local("__t87s_options");
    let this = method::local("__t87s_self");
    let owned_this = method::local("__t87s_owned_self");
    let ret_local = method::local("__t87s_ret");
    let t = method::tag_root();

    let cache_of_self = method::cache_of_self(&method::field_or_default(args.cache.as_ref()));
    let names: Vec<&Ident> = inputs.iter().map(|a| &a.ident).collect();
    let scope_local = method::local("__t87s_scope");
    let key_name = method::local("__T87S_KEY_NAME");
    let key_hex = method::local("__T87S_KEY_HEX");
    let scope_part = args
        .scope
        .as_ref()
        .map(|scope| quote_spanned! {scope.span()=> #key.arg(#scope_local); });
    let scope_let = args.scope.as_ref().map(|scope| {
        quote_spanned! {scope.span()=> let #scope_local = &(#scope); }
    });
    let key_parts: Vec<TokenStream> = scope_part
        .into_iter()
        .chain(inputs.iter().map(|a| {
            let ident = &a.ident;
            quote_spanned! {a.ty.span()=> #key.arg(#ident); }
        }))
        .collect();
    let key_consts = key_consts(&method, args, &key_name, &key_hex);
    let tag_exprs = args
        .tags
        .as_ref()
        .map(|(_, tags)| tags.clone())
        .unwrap_or_default();
    let tag_items = tag_exprs.iter().map(|tag| {
        let built = method::with_no_id_calls(tag);
        quote_spanned! {tag.span()=> ::t87s::__private::tag_path(#cache, #built) }
    });

    let duration = |name: &str, value: &Expr| -> TokenStream {
        match value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => {
                let message = format!(
                    "invalid duration {:?} in `#[cached({name} = ...)]`; expected a whole number followed by `ms`, `s`, `m`, `h` or `d`, like \"30s\"",
                    text.value()
                );
                quote_spanned! {text.span()=>
                    {
                        const DURATION: ::t87s::__private::Duration =
                            match ::t87s::__private::const_duration(#text) {
                                ::core::option::Option::Some(d) => d,
                                ::core::option::Option::None => ::core::panic!(#message),
                            };
                        DURATION
                    }
                }
            }
            other => quote_spanned! {other.span()=> #other },
        }
    };
    let ttl = args.ttl.as_ref().map(|v| {
        let d = duration("ttl", v);
        quote!(.ttl(#d))
    });
    let grace = args.grace.as_ref().map(|v| {
        let d = duration("grace", v);
        quote!(.grace(#d))
    });
    let on_refresh = args
        .on_refresh
        .as_ref()
        .map(|f| quote_spanned!(f.span()=> .on_refresh(#f)));

    // Reference arguments are owned for the fetch (which may outlive the
    // call) and lent back to the body as the type it declared.
    let owned: Vec<TokenStream> = inputs
        .iter()
        .filter_map(|a| match &a.ty {
            Type::Reference(_) => {
                let ident = &a.ident;
                Some(quote! { let #ident = ::std::borrow::ToOwned::to_owned(#ident); })
            }
            _ => None,
        })
        .collect();
    let lent: Vec<TokenStream> = inputs
        .iter()
        .filter_map(|a| match &a.ty {
            Type::Reference(r) => {
                let ident = &a.ident;
                let elem = anonymize_lifetimes(r.elem.to_token_stream());
                Some(quote! { let #ident: &#elem = ::std::borrow::Borrow::borrow(&#ident); })
            }
            _ => None,
        })
        .collect();
    let remut = inputs.iter().filter(|a| a.mutable).map(|a| {
        let ident = &a.ident;
        quote! { #[allow(unused_mut)] let mut #ident = #ident; }
    });

    let ret = method::return_type(&method.sig);
    let body = replace_self(method.block.to_token_stream(), &this);

    let block = quote! {
        {
            #key_consts
            let #cache = #cache_of_self;
            #scope_let
            let #options = ::t87s::__private::QueryOptions::new() #ttl #grace #on_refresh;
            ::t87s::__private::query(
                #cache,
                &#key_name,
                |#key: &mut ::t87s::__private::KeyBuilder<'_>, #args_local| {
                    #[allow(unused_variables)]
                    let ( #(#names,)* ) = #args_local;
                    #(#key_parts)*
                },
                ( #(#names,)* ),
                |#args_local| {
                    #[allow(unused_variables)]
                    let #t = ::t87s::__private::root(#cache);
                    #[allow(unused_variables)]
                    let ( #(#names,)* ) = #args_local;
                    [ #(#tag_items),* ]
                },
                #options,
                || {
                    #[allow(unused_imports)]
                    use ::t87s::__private::{ShareByClone as _, ShareByFrom as _, ShareNot as _};
                    (&&&::t87s::__private::ShareProbe::<
                        <#ret as ::t87s::__private::Fallible>::Error,
                    >::new())
                        .share()
                },
                move |( #(#names,)* )| {
                    let #owned_this = ::t87s::__private::owned_self(self);
                    #(#owned)*
                    move || async move {
                        // A reference again, so the body's `self` keeps its
                        // meaning (and `Copy`-ness) exactly.
                        let #this = &#owned_this;
                        #(#lent)*
                        #(#remut)*
                        let #ret_local: #ret = #body;
                        #ret_local
                    }
                },
            )
            .await
        }
    };
    // A `mut` argument is re-bound `mut` inside the fetch, where the body
    // runs; in the signature it would only draw an `unused_mut` warning.
    for input in &mut method.sig.inputs {
        if let FnArg::Typed(pat_ty) = input {
            if let Pat::Ident(pat) = &mut *pat_ty.pat {
                pat.mutability = None;
            }
        }
    }
    method.block = match syn::parse2(block) {
        Ok(block) => block,
        Err(e) => return e.to_compile_error(),
    };
    method.to_token_stream()
}

/// The method's key name, fixed at compile time: its identity (module path
/// and the source position of its name, or the pinned `name`) and its
/// `version`, hashed in a `const`; and the label readable keys start with.
fn key_consts(method: &ImplItemFn, args: &Args, key_name: &Ident, key_hex: &Ident) -> TokenStream {
    let ident = &method.sig.ident;
    let method_name = ident.to_string();
    let version = args
        .version
        .as_ref()
        .map_or_else(|| quote!(0u32), |v| quote!(#v));
    let span = ident.span();
    let (pinned, label, shown_method) = match &args.name {
        Some(name) => (quote!(#name), quote!(#name), String::new()),
        None => (
            quote!(""),
            quote!(::t87s::__private::last_segment(::core::module_path!())),
            method_name.clone(),
        ),
    };
    let line = quote_spanned!(span=> ::core::line!());
    let column = quote_spanned!(span=> ::core::column!());
    let label_const = method::local("__T87S_LABEL");
    let head_parts = method::local("__T87S_HEAD_PARTS");
    let head = method::local("__T87S_HEAD");
    let tail_parts = method::local("__T87S_TAIL_PARTS");
    let tail = method::local("__T87S_TAIL");
    let sep = if shown_method.is_empty() { "" } else { "::" };
    quote! {
        const #key_hex: [u8; 16] = ::t87s::__private::identity_hex(
            ::core::module_path!(), #line, #column, #method_name, #pinned, #version,
        );
        const #label_const: &str = #label;
        const #head_parts: &[&str] = &[#label_const, #sep, #shown_method, "("];
        const #head: [u8; ::t87s::__private::total_len(#head_parts)] =
            ::t87s::__private::concat(#head_parts);
        const #tail_parts: &[&str] = &[")@", match ::core::str::from_utf8(&#key_hex) {
            ::core::result::Result::Ok(id) => id,
            ::core::result::Result::Err(_) => ::core::panic!("t87s: a key identity is hex"),
        }, ":"];
        const #tail: [u8; ::t87s::__private::total_len(#tail_parts)] =
            ::t87s::__private::concat(#tail_parts);
        static #key_name: ::t87s::__private::KeyName = ::t87s::__private::KeyName::new(
            match ::core::str::from_utf8(&#head) {
                ::core::result::Result::Ok(head) => head,
                ::core::result::Result::Err(_) => ::core::panic!("t87s: a key head is UTF-8"),
            },
            match ::core::str::from_utf8(&#tail) {
                ::core::result::Result::Ok(tail) => tail,
                ::core::result::Result::Err(_) => ::core::panic!("t87s: a key tail is UTF-8"),
            },
            ::t87s::__private::identity_seed(&#key_hex),
        );
    }
}

/// Replaces every `self` in the body with the owned clone's name.
fn replace_self(tokens: TokenStream, this: &Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Ident(ident) if ident == "self" => {
                let mut renamed = this.clone();
                renamed.set_span(Span::mixed_site().located_at(ident.span()));
                TokenTree::Ident(renamed)
            }
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), replace_self(group.stream(), this));
                new.set_span(group.span());
                TokenTree::Group(new)
            }
            other => other,
        })
        .collect()
}

/// `&'a str` -> `&'_ str`: a type the body can name inside the fetch.
fn anonymize_lifetimes(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut after_quote = false;
    for tree in tokens {
        let tree = match tree {
            TokenTree::Ident(ident) if after_quote => {
                TokenTree::Ident(Ident::new("_", ident.span()))
            }
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), anonymize_lifetimes(group.stream()));
                new.set_span(group.span());
                TokenTree::Group(new)
            }
            other => other,
        };
        after_quote = matches!(&tree, TokenTree::Punct(p) if p.as_char() == '\'');
        out.push(tree);
    }
    out.into_iter().collect()
}
