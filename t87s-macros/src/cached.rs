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
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ImplItemFn, Lit, MetaNameValue, Pat, ReturnType, Token, Type};

use crate::errors::Errors;

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

pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    pub(crate) mutable: bool,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let method: ImplItemFn = match syn::parse2(item.clone()) {
        Ok(method) => method,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "`#[cached]` goes on an `async fn` method inside an `impl` block",
            );
            let error = error.to_compile_error();
            return quote! { #error #item };
        }
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
        // Give the method back untouched, so the rest of the crate (and the
        // IDE) still sees it, with every error at once.
        let errors = errors.into_compile_errors();
        return quote! { #errors #method };
    }
    rewrite(method, &args, &inputs)
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> Args {
    let mut out = Args::default();
    let list = match Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(args.clone()) {
        Ok(list) => list,
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                format!("{e}; `#[cached]` takes `name = value` arguments: {ARGUMENTS}"),
            ));
            return out;
        }
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
            "cache" => {
                match &nv.value {
                    Expr::Path(p) if p.path.get_ident().is_some() => {
                        let ident = p.path.get_ident().cloned();
                        std::mem::replace(&mut out.cache, ident).is_some()
                    }
                    other => {
                        errors.at(other, "`cache` names the field that holds the `QueryCache`, like `cache = cache`");
                        false
                    }
                }
            }
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
    if sig.asyncness.is_none() {
        errors.at(sig.fn_token, "`#[cached]` requires an `async fn`");
    }
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
                if r.reference.is_some() && r.mutability.is_none() {
                    receiver_ok = true;
                } else {
                    errors.at(r, "`#[cached]` methods take `&self`");
                    receiver_ok = true;
                }
            }
            FnArg::Typed(pat_ty) => {
                let Pat::Ident(pat) = &*pat_ty.pat else {
                    errors.at(
                        &pat_ty.pat,
                        "`#[cached]` needs plainly named arguments, like `id: u64`",
                    );
                    continue;
                };
                if pat.by_ref.is_some() || pat.subpat.is_some() {
                    errors.at(
                        &pat_ty.pat,
                        "`#[cached]` needs plainly named arguments, like `id: u64`",
                    );
                    continue;
                }
                if matches!(&*pat_ty.ty, Type::ImplTrait(_)) {
                    errors.at(
                        &pat_ty.ty,
                        "`#[cached]` does not support `impl Trait` arguments; name the type",
                    );
                    continue;
                }
                if borrows_inside(&pat_ty.ty) {
                    errors.at(
                        &pat_ty.ty,
                        format!(
                            "`#[cached]` arguments own their data or are a plain reference `&T`; `{}` borrows inside, and the fetch may outlive the call: take an owned type (`Option<String>` for `Option<&str>`, `String` for `Cow<str>`, `&[String]` or `Vec<String>` for `&[&str]`)",
                            compact(pat_ty.ty.to_token_stream())
                        ),
                    );
                    continue;
                }
                if pat.ident == "t" {
                    errors.at(&pat.ident, "an argument named `t` would hide the tag root `t` of `tags = [...]`; rename the argument");
                    continue;
                }
                args.push(Arg {
                    ident: pat.ident.clone(),
                    ty: (*pat_ty.ty).clone(),
                    mutable: pat.mutability.is_some(),
                });
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

/// Tags see the method's arguments and `t`, nothing else: the arguments
/// decide the key, so a tag built from anything else (a `const`, a
/// `static`, a free function, `self`, a macro) could change while the key
/// does not. Literals are fine. Every offence is reported at its span.
pub(crate) fn check_tag(tag: &Expr, arguments: &[Arg], errors: &mut Errors) {
    const ONLY: &str = "tags can use only the method's arguments and `t`";
    let known = |ident: &Ident| ident == "t" || arguments.iter().any(|a| a.ident == *ident);
    match tag {
        Expr::Lit(_) => {}
        Expr::Path(path) => match (path.qself.is_none(), path.path.get_ident()) {
            (true, Some(ident)) if ident == "self" => errors.at(
                ident,
                format!("{ONLY}, not `self`: the same arguments decide the key and the tags (put what the tag needs of `self` in `scope = ...` and an argument)"),
            ),
            (true, Some(ident)) if known(ident) => {}
            (true, Some(ident)) => errors.at(
                ident,
                format!("{ONLY}; `{ident}` is neither (the key would not see it)"),
            ),
            _ => errors.at(
                path,
                format!("{ONLY}; a path like `{}` names something the key does not see", path.to_token_stream().to_string().replace(' ', "")),
            ),
        },
        Expr::MethodCall(call) => {
            check_tag(&call.receiver, arguments, errors);
            for arg in &call.args {
                check_tag(arg, arguments, errors);
            }
        }
        Expr::Field(field) => check_tag(&field.base, arguments, errors),
        Expr::Reference(reference) => check_tag(&reference.expr, arguments, errors),
        Expr::Unary(unary) => check_tag(&unary.expr, arguments, errors),
        Expr::Paren(paren) => check_tag(&paren.expr, arguments, errors),
        Expr::Group(group) => check_tag(&group.expr, arguments, errors),
        Expr::Cast(cast) => check_tag(&cast.expr, arguments, errors),
        Expr::Binary(binary) => {
            check_tag(&binary.left, arguments, errors);
            check_tag(&binary.right, arguments, errors);
        }
        Expr::Index(index) => {
            check_tag(&index.expr, arguments, errors);
            check_tag(&index.index, arguments, errors);
        }
        Expr::Range(range) => {
            for end in [&range.start, &range.end].into_iter().flatten() {
                check_tag(end, arguments, errors);
            }
        }
        Expr::Tuple(tuple) => {
            for elem in &tuple.elems {
                check_tag(elem, arguments, errors);
            }
        }
        Expr::Call(call) => errors.at(
            &call.func,
            format!("{ONLY}; a function call can read anything (call methods on the arguments instead)"),
        ),
        Expr::Macro(mac) => errors.at(
            &mac.mac.path,
            format!("{ONLY}; a macro can read anything"),
        ),
        other => errors.at(
            other,
            format!("{ONLY}, literals and method calls on them, like `t.posts(id).comments(..)`"),
        ),
    }
}

fn rewrite(mut method: ImplItemFn, args: &Args, inputs: &[Arg]) -> TokenStream {
    let mixed = Span::mixed_site();
    let cache = proc_macro2::Ident::new("__t87s_cache", mixed);
    let key = proc_macro2::Ident::new("__t87s_key", mixed);
    let args_local = proc_macro2::Ident::new("__t87s_args", mixed);
    let options = proc_macro2::Ident::new("__t87s_options", mixed);
    let this = proc_macro2::Ident::new("__t87s_self", mixed);
    let owned_this = proc_macro2::Ident::new("__t87s_owned_self", mixed);
    let ret_local = proc_macro2::Ident::new("__t87s_ret", mixed);
    let t = proc_macro2::Ident::new("t", Span::call_site());

    let field = args
        .cache
        .clone()
        .unwrap_or_else(|| Ident::new("cache", Span::call_site()));
    let names: Vec<&Ident> = inputs.iter().map(|a| &a.ident).collect();
    let scope_local = proc_macro2::Ident::new("__t87s_scope", mixed);
    let key_name = proc_macro2::Ident::new("__T87S_KEY_NAME", mixed);
    let key_hex = proc_macro2::Ident::new("__T87S_KEY_HEX", mixed);
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
        quote_spanned! {tag.span()=> ::t87s::__private::tag_path(#cache, #tag) }
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

    let ret = match &method.sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => quote!(()),
    };
    let body = replace_self(method.block.to_token_stream(), &this);

    let block = quote! {
        {
            #key_consts
            let #cache = &self.#field;
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
    let mixed = Span::mixed_site();
    let label_const = Ident::new("__T87S_LABEL", mixed);
    let head_parts = Ident::new("__T87S_HEAD_PARTS", mixed);
    let head = Ident::new("__T87S_HEAD", mixed);
    let tail_parts = Ident::new("__T87S_TAIL_PARTS", mixed);
    let tail = Ident::new("__T87S_TAIL", mixed);
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
        const #key_name: ::t87s::__private::KeyName = ::t87s::__private::KeyName {
            head: match ::core::str::from_utf8(&#head) {
                ::core::result::Result::Ok(head) => head,
                ::core::result::Result::Err(_) => ::core::panic!("t87s: a key head is UTF-8"),
            },
            tail: match ::core::str::from_utf8(&#tail) {
                ::core::result::Result::Ok(tail) => tail,
                ::core::result::Result::Err(_) => ::core::panic!("t87s: a key tail is UTF-8"),
            },
        };
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
