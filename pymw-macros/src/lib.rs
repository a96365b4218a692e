//! Procedural macros of pymw. Use them through the `pymw` crate:
//! `#[pymw::task]` and `#[pymw::main]`.
//!
//! Each entry point parses, calls one `expand` function, and turns its error
//! into `compile_error!` while still emitting the original item, so that IDEs
//! keep working on code with a mistake in it.

use proc_macro::TokenStream;

mod main_fn;
mod task;

/// Makes a free function a pymw task; see the `pymw` crate's documentation.
///
/// A task's identity (its fingerprint: what a worker checks an input
/// against, and what resume and the result cache match earlier results by)
/// covers its name, the serde layout of its argument and value types and
/// its code: a hash of the function's tokens as written (formatting,
/// comments and doc comments do not count). Editing the body, e.g. to fix a
/// bug, makes it a new task whose earlier results are not reused. The hash
/// covers this function only, not the helpers it calls: after a change in a
/// helper that changes results, change the function or its `version`.
///
/// - `version = "..."`: identify the code by this version instead of its
///   tokens, to keep cached and resumable results across edits that do not
///   change them; change it when results change.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match task::expand(args.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => with_error(item, error),
    }
}

/// Calls `pymw::init()` first in `main`; see the `pymw` crate's documentation.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match main_fn::expand(args.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => with_error(item, error),
    }
}

/// The original item followed by the errors (tokio-macros'
/// `token_stream_with_error`).
fn with_error(item: proc_macro2::TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote::quote!(#item #errors).into()
}
