//! `#[derive(TagSchema)]`: fields -> typed tag builders.
//!
//! For `struct AppTags { posts: Wild<PostTags>, global: Static }` it emits
//! `AppTagsRoot` (the top level, from `QueryCache::tags()`), `AppTagsNode<R>`
//! (an `AppTags` node inside a schema rooted at `R`; itself a tag), a method
//! per field on both, and `impl TagSchema for AppTags`. For `tags = [...]`
//! it also emits the hidden `AppTagsNoId` view (see `t87s::__private::NoId`):
//! a `Wild` field called without an id there (`t.posts()`) is an error that
//! says to write `t.posts(id)` or `t.posts(..)`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields, GenericArgument, Ident, PathArguments, Type};

use crate::errors::Errors;

enum Kind {
    /// `Wild` or `Wild<Child>`.
    Wild(Option<Box<Type>>),
    /// `Static`.
    Static,
}

struct Field {
    ident: Ident,
    segment: String,
    kind: Kind,
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    let fields = parse_fields(&input, &mut errors);
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        // Builders for a generic struct would only add errors to this one.
        return errors.into_compile_errors();
    }
    let generated = generate(&input, &fields);
    if errors.is_empty() {
        generated
    } else {
        // Builders for the valid fields are still emitted, so uses of them
        // elsewhere do not add errors to the real one.
        let errors = errors.into_compile_errors();
        quote! { #errors #generated }
    }
}

fn parse_fields(input: &DeriveInput, errors: &mut Errors) -> Vec<Field> {
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        errors.at(
            &input.generics,
            "`#[derive(TagSchema)]` does not support generics; a schema is a plain struct of `Wild` and `Static` fields",
        );
    }
    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            Fields::Unit => return Vec::new(),
            Fields::Unnamed(_) => {
                errors.at(
                    &input.ident,
                    "`#[derive(TagSchema)]` needs named fields, like `struct AppTags { posts: Wild<PostTags>, global: Static }`",
                );
                return Vec::new();
            }
        },
        _ => {
            errors.at(
                &input.ident,
                "`#[derive(TagSchema)]` goes on a struct, like `struct AppTags { posts: Wild<PostTags>, global: Static }`",
            );
            return Vec::new();
        }
    };
    let mut fields = Vec::new();
    for field in named {
        let Some(ident) = field.ident.clone() else {
            continue;
        };
        match classify(&field.ty) {
            Some(kind) => {
                let segment = ident.to_string().trim_start_matches("r#").to_owned();
                fields.push(Field {
                    ident,
                    segment,
                    kind,
                });
            }
            None => errors.at(
                &field.ty,
                "TagSchema fields must be `Wild`, `Wild<Schema>` or `Static`",
            ),
        }
    }
    fields
}

fn classify(ty: &Type) -> Option<Kind> {
    let Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    match (last.ident.to_string().as_str(), &last.arguments) {
        ("Static", PathArguments::None) => Some(Kind::Static),
        ("Wild", PathArguments::None) => Some(Kind::Wild(None)),
        ("Wild", PathArguments::AngleBracketed(args)) if args.args.len() == 1 => {
            match args.args.first()? {
                GenericArgument::Type(child) => Some(Kind::Wild(Some(Box::new(child.clone())))),
                _ => None,
            }
        }
        _ => None,
    }
}

fn generate(input: &DeriveInput, fields: &[Field]) -> TokenStream {
    let name = &input.ident;
    let vis = &input.vis;
    let root = format_ident!("{}Root", name);
    let node = format_ident!("{}Node", name);
    let r = Ident::new("R", Span::call_site());
    let field_idents = fields.iter().map(|f| &f.ident);

    let root_methods = fields.iter().map(|f| {
        method(
            f,
            name,
            &quote!(#name),
            &quote!(::core::option::Option::None),
        )
    });
    let node_methods = fields.iter().map(|f| {
        method(
            f,
            name,
            &quote!(#r),
            &quote!(::core::option::Option::Some(&self.path)),
        )
    });

    let root_doc = format!(
        "The top level of the [`{name}`] tag schema: what `QueryCache::<{name}>::tags()` returns.\n\n\
         Each method builds a tag (or a node that is itself a tag) from one field of [`{name}`]."
    );
    let view = format_ident!("{}NoId", name);
    let view_doc = format!(
        "An [`{name}`] builder in `tags = [...]` of `#[cached]` or `#[invalidates]`, called \
         without arguments: a `Wild` field without an id is an error that says to write `(id)` \
         or `(..)`. Everything else is the builder's own (it derefs to it)."
    );
    let (needs_id, no_id_methods): (Vec<TokenStream>, Vec<TokenStream>) = fields
        .iter()
        .filter(|f| matches!(f.kind, Kind::Wild(_)))
        .map(|f| no_id(f, name, vis, &r))
        .unzip();
    let node_doc = format!(
        "A node of the [`{name}`] tag schema inside a schema rooted at `R`.\n\n\
         It is itself a tag (see `t87s::IntoTag`); its methods build the tags below it."
    );

    quote! {
        #[doc = #root_doc]
        #[derive(Clone, Copy)]
        #vis struct #root {
            _private: (),
        }

        #[doc = #node_doc]
        #vis struct #node<#r: 'static> {
            path: ::t87s::__private::TagPath,
            schema: ::core::marker::PhantomData<fn() -> #r>,
        }

        #[automatically_derived]
        impl #root {
            #(#root_methods)*
        }

        #[automatically_derived]
        impl<#r: 'static> #node<#r> {
            #(#node_methods)*
        }

        #[doc = #view_doc]
        #[doc(hidden)]
        #vis struct #view<'a, N, #r: 'static> {
            node: &'a N,
            #[allow(dead_code)] // read by `Wild` fields' methods only
            parent: ::core::option::Option<&'a ::t87s::__private::TagPath>,
            schema: ::core::marker::PhantomData<fn() -> #r>,
        }

        #(#needs_id)*

        #[automatically_derived]
        impl<'a, N, #r: 'static> #view<'a, N, #r> {
            #(#no_id_methods)*
        }

        #[automatically_derived]
        impl<'a, N, #r: 'static> ::core::ops::Deref for #view<'a, N, #r> {
            type Target = N;

            fn deref(&self) -> &N {
                self.node
            }
        }

        #[automatically_derived]
        impl ::t87s::__private::NoId for #root {
            type View<'a> = #view<'a, #root, #name>;

            fn no_id(&self) -> #view<'_, #root, #name> {
                #view { node: self, parent: ::core::option::Option::None, schema: ::core::marker::PhantomData }
            }
        }

        #[automatically_derived]
        impl<#r: 'static> ::t87s::__private::NoId for #node<#r> {
            type View<'a> = #view<'a, #node<#r>, #r>;

            fn no_id(&self) -> #view<'_, #node<#r>, #r> {
                #view { node: self, parent: ::core::option::Option::Some(&self.path), schema: ::core::marker::PhantomData }
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Debug for #root {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#root))
            }
        }

        #[automatically_derived]
        impl<#r: 'static> ::core::clone::Clone for #node<#r> {
            fn clone(&self) -> Self {
                Self { path: ::core::clone::Clone::clone(&self.path), schema: ::core::marker::PhantomData }
            }
        }

        #[automatically_derived]
        impl<#r: 'static> ::core::fmt::Debug for #node<#r> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::write!(f, "{}({:?})", ::core::stringify!(#node), self.path.as_str())
            }
        }

        #[automatically_derived]
        impl<#r: 'static> ::core::fmt::Display for #node<#r> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.path, f)
            }
        }

        #[automatically_derived]
        impl<#r: 'static> ::t87s::IntoTag<#r> for #node<#r> {
            fn into_tag(self) -> ::t87s::Tag<#r> {
                ::t87s::Tag::new(self.path)
            }
        }

        #[automatically_derived]
        impl<#r: 'static> ::t87s::IntoTag<#r> for &#node<#r> {
            fn into_tag(self) -> ::t87s::Tag<#r> {
                ::t87s::Tag::new(::core::clone::Clone::clone(&self.path))
            }
        }

        #[automatically_derived]
        impl<#r: 'static> ::core::convert::From<#node<#r>> for ::t87s::Mark<#r> {
            fn from(node: #node<#r>) -> Self {
                ::t87s::Mark::prefix(node)
            }
        }

        #[automatically_derived]
        impl<#r: 'static> ::core::convert::From<&#node<#r>> for ::t87s::Mark<#r> {
            fn from(node: &#node<#r>) -> Self {
                ::t87s::Mark::prefix(node)
            }
        }

        #[automatically_derived]
        impl ::t87s::TagSchema for #name {
            type Root = #root;
            type Node<#r: 'static> = #node<#r>;

            fn root() -> #root {
                #root { _private: () }
            }

            fn node<#r: 'static>(path: ::t87s::__private::TagPath) -> #node<#r> {
                #node { path, schema: ::core::marker::PhantomData }
            }

            fn __t87s_touch_fields(&self) {
                let _ = ( #( &self.#field_idents, )* );
            }
        }
    }
}

/// For a `Wild` field, on the `NoId` view: the trait whose message is the
/// error for its method called without an id, and that method, bound by it
/// (no schema implements it).
fn no_id(
    field: &Field,
    schema: &Ident,
    vis: &syn::Visibility,
    r: &Ident,
) -> (TokenStream, TokenStream) {
    let ident = &field.ident;
    let segment = &field.segment;
    let needs_id = format_ident!("{}_{}_needs_an_id", schema, segment);
    let message = format!(
        "`{segment}()` needs an id: write `{segment}(id)` for one item or `{segment}(..)` for all of them"
    );
    let label = format!("`{segment}` is `Wild`: it takes an id, or `..`");
    let note = format!(
        "`{segment}(..)` is every item of `{segment}`, like `Vec::drain(..)`; `{segment}(id)` is one of them"
    );
    let trait_doc = format!(
        "`{segment}()` (field `{segment}` of [`{schema}`], `Wild`) without an id: never implemented."
    );
    let trait_item = quote! {
        #[doc = #trait_doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
        #vis trait #needs_id {}

        // One impl, for no schema, so the error does not suggest adding one.
        #[diagnostic::do_not_recommend]
        impl #needs_id for ::t87s::__private::NoSchema {}
    };
    let method = quote! {
        #[doc(hidden)]
        #[inline]
        #[must_use]
        pub fn #ident(&self) -> ::t87s::Tag<#r>
        where
            #r: #needs_id,
        {
            ::t87s::Tag::new(::t87s::__private::child(self.parent, #segment))
        }
    };
    (trait_item, method)
}

/// The builder method for one field; `schema_root` is the `R` of the tags it
/// builds and `parent` the path it builds below.
fn method(
    field: &Field,
    schema: &Ident,
    schema_root: &TokenStream,
    parent: &TokenStream,
) -> TokenStream {
    let ident = &field.ident;
    let segment = &field.segment;
    match &field.kind {
        Kind::Static => {
            let doc = format!(
                "The tag `…/{segment}` (field `{segment}` of [`{schema}`]: `Static`, takes no id)."
            );
            quote! {
                #[doc = #doc]
                #[inline]
                #[must_use]
                pub fn #ident(&self) -> ::t87s::Tag<#schema_root> {
                    ::t87s::Tag::new(::t87s::__private::child(#parent, #segment))
                }
            }
        }
        Kind::Wild(child) => {
            let child = match child {
                Some(child) => quote!(#child),
                None => quote!(::t87s::Leaf),
            };
            let doc = format!(
                "The tag `…/{segment}/<id>` for one item (field `{segment}` of [`{schema}`]), \
                 or `…/{segment}` for every item when given `..`.\n\n\
                 Ids are strings, integers, `char`, `bool` or `Uuid` (see `t87s::TagId`)."
            );
            quote! {
                #[doc = #doc]
                #[inline]
                #[must_use]
                pub fn #ident<A: ::t87s::WildArg>(&self, id: A) -> A::Output<#schema_root, #child> {
                    ::t87s::WildArg::build::<#schema_root, #child>(
                        id,
                        ::t87s::__private::child(#parent, #segment),
                    )
                }
            }
        }
    }
}
