//! What `#[cached]` and `#[invalidates]` share: the method they go on, the
//! `name = value` list of their arguments, the method's arguments, and the
//! rules for `tags = [...]`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::parse_quote_spanned;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ImplItemFn, MetaNameValue, Pat, PatType, ReturnType, Signature, Token, Type};

use crate::errors::Errors;

/// One argument of the method, as the tags and the key see it.
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    pub(crate) mutable: bool,
}

/// The method under `#[attribute]`, or the tokens to return instead: an
/// error at the attribute, and the item given back untouched.
pub(crate) fn parse_method(attribute: &str, item: TokenStream) -> Result<ImplItemFn, TokenStream> {
    syn::parse2(item.clone()).map_err(|_| {
        let error = syn::Error::new(
            Span::call_site(),
            format!("`#[{attribute}]` goes on an `async fn` method inside an `impl` block"),
        )
        .to_compile_error();
        quote! { #error #item }
    })
}

/// The `name = value` list of `#[attribute(...)]`; `None` after an error
/// that names the `arguments` it takes.
pub(crate) fn parse_list(
    attribute: &str,
    arguments: &str,
    args: TokenStream,
    errors: &mut Errors,
) -> Option<Punctuated<MetaNameValue, Token![,]>> {
    match Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(args) {
        Ok(list) => Some(list),
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                format!("{e}; `#[{attribute}]` takes `name = value` arguments: {arguments}"),
            ));
            None
        }
    }
}

/// The value of `cache = field`: the field of `self` that holds the
/// `QueryCache`; `None` after an error at anything else.
pub(crate) fn cache_field(value: &Expr, errors: &mut Errors) -> Option<Ident> {
    match value {
        Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
        other => {
            errors.at(
                other,
                "`cache` names the field that holds the `QueryCache`, like `cache = cache`",
            );
            None
        }
    }
}

/// The field of `self` that holds the `QueryCache`: the one `cache = field`
/// named, else `cache`.
pub(crate) fn field_or_default(cache: Option<&Ident>) -> Ident {
    cache
        .cloned()
        .unwrap_or_else(|| Ident::new("cache", Span::call_site()))
}

/// A local of the generated code, `__t87s_*`: at `Span::mixed_site()`, so
/// user code can neither see nor clash with it.
pub(crate) fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The tag root `t` of `tags = [...]`: at the call site, it is the user's.
pub(crate) fn tag_root() -> Ident {
    Ident::new("t", Span::call_site())
}

/// The `QueryCache` in `field` of `self`, through
/// `::t87s::__private::cache_field` (a field access once inlined): a field
/// that is not a `QueryCache` is an error at its name that says to name the
/// right one with `cache = field_name`.
pub(crate) fn cache_of_self(field: &Ident) -> TokenStream {
    quote_spanned! {field.span()=> ::t87s::__private::cache_field(&self.#field) }
}

/// An error at `fn` unless the method is an `async fn`.
pub(crate) fn check_async(attribute: &str, sig: &Signature, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token,
            format!("`#[{attribute}]` requires an `async fn`"),
        );
    }
}

/// One typed argument of the method as an [`Arg`], or `None` after an error
/// at it. It is plainly named (`id: u64`; with `plain_binding`, neither
/// `ref id` nor `id @ ..`), its type passes `check_type` (which reports its
/// own errors), and it is not called `t`, the tag root of `tags = [...]`.
pub(crate) fn argument(
    attribute: &str,
    pat_ty: &PatType,
    plain_binding: bool,
    errors: &mut Errors,
    check_type: impl FnOnce(&Type, &mut Errors) -> bool,
) -> Option<Arg> {
    let pat = match &*pat_ty.pat {
        Pat::Ident(pat) if !plain_binding || (pat.by_ref.is_none() && pat.subpat.is_none()) => pat,
        other => {
            errors.at(
                other,
                format!("`#[{attribute}]` needs plainly named arguments, like `id: u64`"),
            );
            return None;
        }
    };
    if !check_type(&pat_ty.ty, errors) {
        return None;
    }
    if pat.ident == "t" {
        errors.at(
            &pat.ident,
            "an argument named `t` would hide the tag root `t` of `tags = [...]`; rename the argument",
        );
        return None;
    }
    Some(Arg {
        ident: pat.ident.clone(),
        ty: (*pat_ty.ty).clone(),
        mutable: pat.mutability.is_some(),
    })
}

/// The method's return type as tokens (`()` when it has none).
pub(crate) fn return_type(sig: &Signature) -> TokenStream {
    match &sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => quote!(()),
    }
}

/// A tag as the macros emit it: on a builder chain from `t`, every method
/// called without arguments (`t.global()`, `t.posts(1).settings()`) is
/// called through `::t87s::__private::NoId`, so that a `Wild` field's
/// method without an id (`t.posts()`) is an error that says to write
/// `t.posts(id)` or `t.posts(..)`, at the method's name, rather than a
/// count of arguments. `into_tag()` and anything else is left as written.
pub(crate) fn with_no_id_calls(tag: &Expr) -> Expr {
    fn from_t(expr: &Expr) -> bool {
        match expr {
            Expr::Path(path) => path.qself.is_none() && path.path.is_ident("t"),
            Expr::MethodCall(call) => from_t(&call.receiver),
            Expr::Paren(paren) => from_t(&paren.expr),
            Expr::Group(group) => from_t(&group.expr),
            _ => false,
        }
    }
    fn rewrite(expr: Expr) -> Expr {
        match expr {
            Expr::MethodCall(mut call) => {
                let receiver = rewrite(*call.receiver);
                // `into_tag` takes its tag by value: not through a view.
                let no_id =
                    call.args.is_empty() && call.turbofish.is_none() && call.method != "into_tag";
                call.receiver = if no_id {
                    Box::new(parse_quote_spanned! {receiver.span()=>
                        ::t87s::__private::NoId::no_id(&#receiver)
                    })
                } else {
                    Box::new(receiver)
                };
                Expr::MethodCall(call)
            }
            other => other,
        }
    }
    if from_t(tag) {
        rewrite(tag.clone())
    } else {
        tag.clone()
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
