//! `#[invalidates(tags = [...], on_error = "return" | "log", cache = field)]`.
//!
//! Input:
//!
//! ```text
//! #[invalidates(tags = [t.posts(id), exact(t.posts(..))])]
//! async fn rename(&self, id: u64, title: String) -> Result<(), DbError> { BODY }
//! ```
//!
//! Output (same attributes, visibility and signature; only the block changes):
//!
//! ```text
//! async fn rename(&self, id: u64, title: String) -> Result<(), DbError> {
//!     let marks = { let t = root(&self.cache); [prefix(.., t.posts(id)), exact(.., t.posts(..))] };
//!     let ret: Result<(), DbError> = async { BODY }.await;        // the write
//!     match ret {
//!         Ok(value) => after_write(&self.cache, &marks, on_error).await.map(|()| value), // one call
//!         Err(e) => Err(e),
//!     }
//! }
//! ```
//!
//! The tags are built before the body runs (it may move the arguments).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ImplItemFn, Lit, ReturnType};

use crate::errors::Errors;
use crate::method::{self, check_tag, Arg};

const ARGUMENTS: &str = "`tags`, `on_error`, `cache`";

#[derive(Default)]
struct Args {
    tags: Vec<Expr>,
    has_tags: bool,
    log: bool,
    cache: Option<syn::Ident>,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let method = match method::parse_method("invalidates", item) {
        Ok(method) => method,
        Err(tokens) => return tokens,
    };
    let mut errors = Errors::default();
    let args = parse_args(args, &mut errors);
    let inputs = check_signature(&method, &mut errors);
    for tag in &args.tags {
        check_tag(unwrap_exact(tag).0, &inputs, &mut errors);
    }
    if !errors.is_empty() {
        return errors.with_item(method);
    }
    rewrite(method, &args)
}

/// `exact(tag)` -> (`tag`, true); anything else -> (itself, false).
fn unwrap_exact(tag: &Expr) -> (&Expr, bool) {
    if let Expr::Call(call) = tag {
        if let Expr::Path(path) = &*call.func {
            if path.path.is_ident("exact") && call.args.len() == 1 {
                if let Some(inner) = call.args.first() {
                    return (inner, true);
                }
            }
        }
    }
    (tag, false)
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> Args {
    let mut out = Args::default();
    let Some(list) = method::parse_list("invalidates", ARGUMENTS, args, errors) else {
        return out;
    };
    let mut seen_error_mode = false;
    for nv in list {
        let name = nv.path.get_ident().map(ToString::to_string);
        match name.as_deref() {
            Some("tags") => {
                if out.has_tags {
                    errors.at(&nv.path, "duplicate `tags` argument");
                }
                out.has_tags = true;
                match nv.value {
                    Expr::Array(array) if !array.elems.is_empty() => {
                        out.tags = array.elems.into_iter().collect();
                    }
                    other => errors.at(
                        &other,
                        "`tags` takes a non-empty list of tags, like `tags = [t.posts(id), exact(t.posts(..))]`",
                    ),
                }
            }
            Some("on_error") => {
                if seen_error_mode {
                    errors.at(&nv.path, "duplicate `on_error` argument");
                }
                seen_error_mode = true;
                match &nv.value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(mode),
                        ..
                    }) if mode.value() == "return" || mode.value() == "log" => {
                        out.log = mode.value() == "log";
                    }
                    other => errors.at(
                        other,
                        "`on_error` is \"return\" (the method returns the invalidation's error through `From<t87s::Error>`) or \"log\" (logged and retried in the background)",
                    ),
                }
            }
            Some("cache") => {
                if let Some(ident) = method::cache_field(&nv.value, errors) {
                    if out.cache.replace(ident).is_some() {
                        errors.at(&nv.path, "duplicate `cache` argument");
                    }
                }
            }
            _ => errors.at(
                &nv.path,
                format!("unknown `#[invalidates]` argument; expected one of {ARGUMENTS}"),
            ),
        }
    }
    if !out.has_tags {
        errors.push(syn::Error::new(
            Span::call_site(),
            "`#[invalidates]` requires `tags = [...]`: the tags the write makes stale, like `#[invalidates(tags = [t.posts(id)])]`",
        ));
    }
    out
}

fn check_signature(method: &ImplItemFn, errors: &mut Errors) -> Vec<Arg> {
    let sig = &method.sig;
    method::check_async("invalidates", sig, errors);
    if matches!(sig.output, ReturnType::Default) {
        errors.at(
            &sig.ident,
            "`#[invalidates]` methods return `Result<T, E>`: tags are invalidated only after `Ok`",
        );
    }
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) if !matches!(r.kind, syn::ReceiverKind::Reference(..)) => {
                errors.at(r, "`#[invalidates]` methods take `&self` or `&mut self`");
            }
            FnArg::Receiver(_) => {}
            FnArg::Typed(pat_ty) => {
                args.extend(method::argument(
                    "invalidates",
                    pat_ty,
                    false,
                    errors,
                    |_, _| true,
                ));
            }
        }
    }
    args
}

fn rewrite(mut method: ImplItemFn, args: &Args) -> TokenStream {
    let cache = method::local("__t87s_cache");
    let marks = method::local("__t87s_marks");
    let ret_local = method::local("__t87s_ret");
    let value = method::local("__t87s_value");
    let t = method::tag_root();
    let cache_of_self = method::cache_of_self(&method::field_or_default(args.cache.as_ref()));
    let items = args.tags.iter().map(|tag| {
        let (inner, exact) = unwrap_exact(tag);
        let build = if exact { quote!(exact) } else { quote!(prefix) };
        let built = method::with_no_id_calls(inner);
        quote_spanned! {inner.span()=> ::t87s::__private::Mark::#build(#cache, #built) }
    });
    let ret = method::return_type(&method.sig);
    let on_error = if args.log {
        quote!(::t87s::__private::OnError::Log)
    } else {
        quote!(::t87s::__private::OnError::Return(
            ::t87s::__private::invalidation_error
        ))
    };
    let body = &method.block;
    // The body runs in a plain `async` block: it borrows or moves what it
    // uses, as it would in the method, and `return` and `?` end the write.
    let block = quote! {
        {
            let #marks = {
                let #cache = #cache_of_self;
                #[allow(unused_variables)]
                let #t = ::t87s::__private::root(#cache);
                [ #(#items),* ]
            };
            let #ret_local: #ret = async #body.await;
            match #ret_local {
                ::core::result::Result::Ok(#value) => {
                    ::t87s::__private::after_write(#cache_of_self, &#marks, #on_error)
                        .await
                        .map(|()| #value)
                }
                ::core::result::Result::Err(error) => ::core::result::Result::Err(error),
            }
        }
    };
    method.block = match syn::parse2(block) {
        Ok(block) => block,
        Err(e) => return e.to_compile_error(),
    };
    method.to_token_stream()
}
