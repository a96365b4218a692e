//! `#[pymw::main]`: inserts `pymw::init()` as the first statement of `main`.

use crate::task::Errors;
use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr, Path};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let mut krate: Option<Path> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let path: LitStr = meta.value()?.parse()?;
            krate = Some(path.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown option of #[pymw::main]: the only option is `crate = \"...\"`"))
        }
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args) {
        errors.push(error);
    }
    let mut function: ItemFn = syn::parse2(item)?;
    if !function.sig.inputs.is_empty() {
        errors.spanned(
            &function.sig.inputs,
            "#[pymw::main] goes on `fn main()`, which takes no arguments",
        );
    }
    errors.finish()?;
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::pymw));
    let init: syn::Stmt = syn::parse_quote!(#krate::init(););
    function.block.stmts.insert(0, init);
    Ok(quote!(#function))
}

#[cfg(test)]
mod tests {
    #[test]
    fn inserts_init_first() {
        let out = super::expand(
            proc_macro2::TokenStream::new(),
            "fn main() { run(); }".parse().unwrap(),
        )
        .unwrap()
        .to_string();
        assert_eq!(out, "fn main () { :: pymw :: init () ; run () ; }");
    }
}
