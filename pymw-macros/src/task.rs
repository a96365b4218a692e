//! `#[pymw::task]`: emits the function untouched, plus a registration and a
//! typed handle module.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, Path, ReturnType, Type};

/// Options of `#[pymw::task(...)]`.
#[derive(Default)]
pub(crate) struct TaskArgs {
    /// `name = "..."`: the registered name.
    name: Option<LitStr>,
    /// `crate = "..."`: the path of the pymw crate, for renamed dependencies.
    krate: Option<Path>,
    /// `validate = path`: `fn(&T, &T) -> bool` deciding whether two replicas'
    /// values agree (BOINC redundancy); default: bitwise.
    validate: Option<Path>,
    /// `version = "..."`: the task's code identity, instead of a hash of the
    /// function's tokens.
    version: Option<LitStr>,
}

/// Collects every error instead of stopping at the first (serde's `Ctxt`).
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn spanned(
        &mut self,
        tokens: impl quote::ToTokens,
        message: impl std::fmt::Display,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

pub(crate) fn parse_args(args: TokenStream, errors: &mut Errors) -> TaskArgs {
    let mut parsed = TaskArgs::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let name: LitStr = meta.value()?.parse()?;
            if name.value().is_empty() {
                return Err(syn::Error::new(
                    name.span(),
                    "#[pymw::task] name must not be empty: give a name, or remove `name = \"\"` to register the task as `module::function`",
                ));
            }
            parsed.name = Some(name);
            Ok(())
        } else if meta.path.is_ident("crate") {
            let path: LitStr = meta.value()?.parse()?;
            parsed.krate = Some(path.parse()?);
            Ok(())
        } else if meta.path.is_ident("validate") {
            parsed.validate = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("version") {
            let version: LitStr = meta.value()?.parse()?;
            if version.value().trim().is_empty() {
                return Err(syn::Error::new(
                    version.span(),
                    "#[pymw::task] version must not be empty: give a version such as `version = \"2\"` (change it when results change), or remove it to identify the task by its code",
                ));
            }
            parsed.version = Some(version);
            Ok(())
        } else {
            Err(meta.error(
                "unknown option of #[pymw::task]: the options are `name = \"...\"`, `version = \"...\"`, `validate = path::to::fn` and `crate = \"...\"`",
            ))
        }
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args) {
        errors.push(error);
    }
    parsed
}

/// Expands `#[pymw::task(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = parse_args(args, &mut errors);
    let function: ItemFn = syn::parse2(item)?;
    check_signature(&function, &mut errors);
    errors.finish()?;
    Ok(generate(&args, &function))
}

/// Rejects every shape a worker cannot call, each with its own span and fix.
fn check_signature(function: &ItemFn, errors: &mut Errors) {
    let sig = &function.sig;
    if let Some(token) = &sig.asyncness {
        errors.spanned(
            token,
            "#[pymw::task] does not support `async fn`: make the task a plain `fn` (it runs on a worker of its own)",
        );
    }
    if let syn::Safety::Unsafe(token) = &sig.safety {
        errors.spanned(
            token,
            "#[pymw::task] cannot be `unsafe fn`: a worker cannot uphold its safety contract; wrap the unsafe code in a safe function",
        );
    }
    if let Some(token) = &sig.constness {
        errors.spanned(token, "#[pymw::task] cannot be `const fn`: remove `const`");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "#[pymw::task] cannot have an `extern` ABI: remove it");
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            "#[pymw::task] cannot be generic: a worker must know the concrete types; write one task per type",
        );
    } else if let Some(clause) = &sig.generics.where_clause {
        errors.spanned(
            clause,
            "#[pymw::task] cannot have a `where` clause: remove it",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "#[pymw::task] cannot be variadic");
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                "#[pymw::task] must be a free function, not a method: take the value as an ordinary argument instead of `self`",
            ),
            FnArg::Typed(arg) => check_argument_type(&arg.ty, errors),
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        match &**ty {
            Type::Reference(_) => errors.spanned(
                ty,
                "#[pymw::task] must return an owned value: the value is sent back from another process; return e.g. `String` instead of `&str`",
            ),
            Type::ImplTrait(_) => errors.spanned(
                ty,
                "#[pymw::task] cannot return `impl Trait`: name the concrete, serializable type",
            ),
            _ => {}
        }
    }
}

fn check_argument_type(ty: &Type, errors: &mut Errors) {
    match ty {
        Type::Reference(_) => errors.spanned(
            ty,
            "#[pymw::task] arguments must be owned: they are sent to another process; take e.g. `String` instead of `&str`, `Vec<T>` instead of `&[T]`",
        ),
        Type::ImplTrait(_) => errors.spanned(
            ty,
            "#[pymw::task] arguments cannot be `impl Trait`: name the concrete, serializable type",
        ),
        Type::Paren(inner) => check_argument_type(&inner.elem, errors),
        Type::Tuple(tuple) => tuple.elems.iter().for_each(|t| check_argument_type(t, errors)),
        _ => {}
    }
}

/// Whether the return type is spelled `Result<..>` (any path ending in
/// `Result`): then `Err` is a task failure rather than a value.
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

/// The task's code identity: `version:` and the user's version, else
/// `tokens:` and a hash of the function as written, doc comments left out
/// (editing them changes no result). Tokens, not text: formatting and plain
/// comments do not count either.
fn code_identity(args: &TaskArgs, function: &ItemFn) -> String {
    if let Some(version) = &args.version {
        return format!("version:{}", version.value());
    }
    let mut function = function.clone();
    function.attrs.retain(|attr| !attr.path().is_ident("doc"));
    format!(
        "tokens:{:016x}",
        fnv1a(quote!(#function).to_string().as_bytes())
    )
}

/// 64-bit FNV-1a, as `pymw_core::registry::stable_hash` (which this crate
/// does not depend on).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn generate(args: &TaskArgs, function: &ItemFn) -> TokenStream {
    let krate = args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::pymw));
    let private = quote!(#krate::__private);
    let vis = &function.vis;
    let ident = &function.sig.ident;
    let name = match &args.name {
        Some(name) => quote!(#name),
        // Evaluated inside the generated module, which is named after the
        // function: `module_path!()` there is exactly `path::to::function`.
        None => quote!(::core::module_path!()),
    };
    let types: Vec<&Type> = function
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(arg) => Some(&*arg.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let vars: Vec<_> = (0..types.len())
        .map(|i| format_ident!("__pymw_arg{}", i))
        .collect();
    // One argument travels as itself, several as a tuple, none as `()`.
    let (args_type, args_pattern) = match types.as_slice() {
        [ty] => (quote!(#ty), quote!(#(#vars)*)),
        _ => (quote!((#(#types,)*)), quote!((#(#vars,)*))),
    };
    let return_type = match &function.sig.output {
        ReturnType::Type(_, ty) => quote!(#ty),
        ReturnType::Default => quote!(()),
    };
    let is_result = returns_result(&function.sig.output);
    let (value_type, call) = if is_result {
        (
            quote!(<#return_type as #private::TaskResult>::Value),
            quote!({ use #private::error_kind::{BoxedKind as _, DisplayKind as _, ErrorKind as _}; super::#ident(#(#vars),*).map_err(|e| (&e).pymw_error_kind().message(&e)) }),
        )
    } else {
        (
            return_type.clone(),
            quote!(#private::Plain(super::#ident(#(#vars),*))),
        )
    };
    let argument_checks = types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> #private::assert_argument::<#ty>();));
    let value_span = match &function.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => Span::call_site(),
    };
    let value_check = quote_spanned!(value_span=> #private::assert_value::<#value_type>(););
    let validate = match &args.validate {
        Some(path) => quote_spanned! {path.span()=>
            ::core::option::Option::Some(|a, b| #private::validate::<#value_type>(a, b, #path))
        },
        None => quote!(::core::option::Option::None),
    };
    let code = code_identity(args, function);
    let doc = format!(
        "The pymw task [`{ident}`](fn@{ident}): `{ident}::task()` is its typed handle for a master."
    );
    quote! {
        #function

        #[doc = #doc]
        #[allow(non_snake_case, clippy::module_name_repetitions)]
        #vis mod #ident {
            #[allow(unused_imports)]
            use super::*;

            /// The task's registered name.
            pub const NAME: &str = #name;

            /// The typed handle to submit this task with.
            #[must_use]
            pub fn task() -> #private::Task<#args_type, #value_type> {
                #private::Task::__new(&ENTRY)
            }

            const _: () = {
                #(#argument_checks)*
                #value_check
            };

            /// The task's code identity, part of its fingerprint.
            pub const CODE: &str = #code;

            static FINGERPRINT: #private::FingerprintCell = #private::FingerprintCell::new();

            fn fingerprint() -> &'static #private::Fingerprint {
                FINGERPRINT.get::<#args_type, #value_type>(NAME, CODE)
            }

            static ENTRY: #private::TaskEntry = #private::TaskEntry {
                name: NAME,
                function: ::core::module_path!(),
                fingerprint: || fingerprint().value(),
                layout: || fingerprint().layout(),
                invoke: |input, output| {
                    #private::invoke(input, output, |#args_pattern: #args_type| #call)
                },
                validate: #validate,
            };

            #private::inventory::submit! {
                #private::Registration(&ENTRY)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: &str, item: &str) -> Result<String, String> {
        expand(args.parse().unwrap(), item.parse().unwrap())
            .map(|tokens| tokens.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn single_argument_travels_as_itself() {
        let out = expand_str("", "fn square(x: u64) -> u64 { x * x }").unwrap();
        assert!(out.contains("Task < u64 , u64 >"), "{out}");
        assert!(
            out.contains("Plain (super :: square (__pymw_arg0))"),
            "{out}"
        );
    }

    #[test]
    fn several_arguments_travel_as_a_tuple() {
        let out = expand_str("", "fn f(a: u8, b: String) {}").unwrap();
        assert!(out.contains("Task < (u8 , String ,) , () >"), "{out}");
    }

    #[test]
    fn result_returns_use_the_ok_type() {
        let out = expand_str("", "fn f(a: u8) -> anyhow::Result<u8> { Ok(a) }").unwrap();
        assert!(out.contains("TaskResult > :: Value"), "{out}");
        assert!(!out.contains("Plain"), "{out}");
    }

    #[test]
    fn default_name_is_the_module_path_inside_the_handle_module() {
        let out = expand_str("", "fn f() {}").unwrap();
        assert!(
            out.contains("pub const NAME : & str = :: core :: module_path ! ()"),
            "{out}"
        );
        assert!(out.contains("mod f"), "{out}");
    }

    #[test]
    fn name_and_crate_options() {
        let out = expand_str(r#"name = "sq", crate = "my_pymw""#, "fn f() {}").unwrap();
        assert!(out.contains(r#"pub const NAME : & str = "sq""#), "{out}");
        assert!(out.contains("my_pymw :: __private"), "{out}");
    }

    #[test]
    fn validate_option_names_the_function() {
        let out = expand_str("validate = close_enough", "fn f(a: u8) -> f64 { 0.0 }").unwrap();
        assert!(
            out.contains("validate :: < f64 > (a , b , close_enough)"),
            "{out}"
        );
        let out = expand_str("", "fn f(a: u8) -> f64 { 0.0 }").unwrap();
        assert!(
            out.contains("validate : :: core :: option :: Option :: None"),
            "{out}"
        );
    }

    #[test]
    fn code_identity_is_a_token_hash_or_the_version() {
        let code = |args: &str, item: &str| {
            let out = expand_str(args, item).unwrap();
            let start = out.find("pub const CODE : & str = \"").unwrap() + 26;
            out[start..start + out[start..].find('"').unwrap()].to_string()
        };
        let body = code("", "fn f(a: u8) -> u8 { a + 1 }");
        assert!(body.starts_with("tokens:"), "{body}");
        assert_eq!(
            body,
            code("", "fn f(a: u8) -> u8 {\n    a + 1 // one more\n}")
        );
        assert_eq!(body, code("", "/// Adds one.\nfn f(a: u8) -> u8 { a + 1 }"));
        assert_eq!(
            body,
            code(r#"name = "other""#, "fn f(a: u8) -> u8 { a + 1 }")
        );
        assert_ne!(body, code("", "fn f(a: u8) -> u8 { a + 2 }"), "a fixed bug");
        let versioned = code(r#"version = "2""#, "fn f(a: u8) -> u8 { a + 1 }");
        assert_eq!(versioned, "version:2");
        assert_eq!(
            versioned,
            code(r#"version = "2""#, "fn f(a: u8) -> u8 { a + 2 }"),
            "a version keeps the identity across edits"
        );
    }

    #[test]
    fn empty_version_is_rejected() {
        let err = expand_str(r#"version = " ""#, "fn f() {}").unwrap_err();
        assert!(err.contains("version must not be empty"), "{err}");
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let err = expand_str("bogus = 1", "async fn f<T>(x: &T) {}").unwrap_err();
        assert!(err.contains("unknown option"), "{err}");
        let all = expand(
            "bogus = 1".parse().unwrap(),
            "async fn f<T>(x: &T) {}".parse().unwrap(),
        )
        .unwrap_err()
        .into_iter()
        .count();
        assert_eq!(all, 4);
    }
}
