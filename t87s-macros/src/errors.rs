//! Collects every error of one expansion so the user sees them all at once.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use std::fmt::Display;

#[derive(Default)]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    pub(crate) fn at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Every error as `compile_error!` invocations.
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.errors
            .into_iter()
            .map(|e| e.to_compile_error())
            .collect()
    }

    /// Every error, then `item` given back untouched, so the rest of the
    /// crate (and the IDE) still sees it.
    pub(crate) fn with_item(self, item: impl ToTokens) -> TokenStream {
        let errors = self.into_compile_errors();
        quote! { #errors #item }
    }
}
