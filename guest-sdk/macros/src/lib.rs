//! Procedural macros of `mpwasm-guest`: `#[task]` and `#[main]`.
//! Use them through `mpwasm_guest::task` and `mpwasm_guest::main`.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{parse_macro_input, FnArg, ItemFn, Pat, ReturnType, Type};

/// Exports a function as a task callable by name from the host.
///
/// The function takes zero or more serde-deserializable arguments (several
/// arrive as one tuple) and returns a serde-serializable value, or
/// `Result<T, E>` with `E: Display`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[task] takes no arguments")
            .to_compile_error()
            .into();
    }
    let func = parse_macro_input!(item as ItemFn);
    match expand_task(&func) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_task(func: &ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let name = &func.sig.ident;
    let name_str = name.to_string();
    if func.sig.asyncness.is_some() || !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &func.sig,
            "#[task] functions must be plain, non-generic, non-async functions",
        ));
    }
    let mut types = Vec::new();
    let mut idents = Vec::new();
    for (i, input) in func.sig.inputs.iter().enumerate() {
        match input {
            FnArg::Typed(pt) => {
                types.push((*pt.ty).clone());
                idents.push(match &*pt.pat {
                    Pat::Ident(p) => p.ident.clone(),
                    _ => format_ident!("__arg{}", i),
                });
            }
            FnArg::Receiver(r) => {
                return Err(syn::Error::new_spanned(r, "#[task] functions take no self"))
            }
        }
    }
    let (arg_ty, arg_pat) = match types.len() {
        1 => {
            let t = &types[0];
            let i = &idents[0];
            (quote!(#t), quote!(#i))
        }
        _ => (quote!((#(#types,)*)), quote!((#(#idents,)*))),
    };
    let call = quote!(#name(#(#idents),*));
    let body = if returns_result(&func.sig.output) {
        call
    } else {
        quote!(::mpwasm_guest::internal::infallible(#call))
    };
    let wrapper = format_ident!("__mpwasm_task_{}", name);
    Ok(quote! {
        #func

        #[doc(hidden)]
        fn #wrapper(
            codec: ::mpwasm_guest::internal::Codec,
            input: &[u8],
            out: &mut ::std::vec::Vec<u8>,
        ) -> ::core::result::Result<(), ::mpwasm_guest::internal::TaskError> {
            ::mpwasm_guest::internal::run_task(codec, input, out, |#arg_pat: #arg_ty| #body)
        }

        ::mpwasm_guest::internal::inventory::submit! {
            ::mpwasm_guest::internal::Task { name: #name_str, run: #wrapper }
        }
    })
}

/// Whether the written return type is a `Result<..>` (by its last path
/// segment, as `?`-style macros conventionally decide).
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

/// Marks the guest's entry point for `mpwasm run`.
///
/// The function takes no arguments and returns `()` (exit code 0), an
/// `i32` exit code, or `Result<(), E>` with `E: Debug`: `Err(e)` prints
/// `Error: {e:?}` on stderr and exits with code 1, as Rust's own `main`
/// does.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[main] takes no arguments")
            .to_compile_error()
            .into();
    }
    let func = parse_macro_input!(item as ItemFn);
    let name = &func.sig.ident;
    let run = if returns_result(&func.sig.output) {
        quote! {
            match #name() {
                ::core::result::Result::Ok(()) => 0,
                ::core::result::Result::Err(e) => ::mpwasm_guest::internal::main_failed(e),
            }
        }
    } else {
        match &func.sig.output {
            ReturnType::Default => quote!({ #name(); 0 }),
            ReturnType::Type(..) => quote!(#name()),
        }
    };
    quote! {
        #func

        ::mpwasm_guest::internal::inventory::submit! {
            ::mpwasm_guest::internal::Main { run: { fn __mpwasm_main() -> i32 { #run } __mpwasm_main } }
        }
    }
    .into()
}
