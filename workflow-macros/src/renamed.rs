//! `#[renamed_from("old::Name")]`: declares that a journaled value type was
//! renamed, so values journaled under its former name decode into it.

use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::punctuated::Punctuated;
use syn::{Item, LitStr, Token};

pub(crate) fn expand(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let parsed: Item = syn::parse2(item)?;
    let (ident, generics) = match &parsed {
        Item::Struct(s) => (&s.ident, &s.generics),
        Item::Enum(e) => (&e.ident, &e.generics),
        Item::Type(t) => (&t.ident, &t.generics),
        other => {
            return Err(syn::Error::new_spanned(
                item_keyword(other),
                "#[renamed_from] goes on the struct, enum or type alias that was renamed",
            ));
        }
    };
    if let Some(param) = generics.params.first() {
        return Err(syn::Error::new_spanned(
            param,
            "#[renamed_from] cannot declare a generic type renamed: its name depends on its parameters; declare it on a concrete type alias (`type Name = Generic<Arg>;`)",
        ));
    }
    let names = syn::parse::Parser::parse2(Punctuated::<LitStr, Token![,]>::parse_terminated, args)
        .map_err(|e| {
            syn::Error::new(
                e.span(),
                "#[renamed_from] takes the type's former names as strings: #[renamed_from(\"my_app::OldName\")]",
            )
        })?;
    if names.is_empty() {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[renamed_from] needs the type's former name as `std::any::type_name` gave it: #[renamed_from(\"my_app::OldName\")]",
        ));
    }
    for name in &names {
        if name.value().trim().is_empty() {
            return Err(syn::Error::new_spanned(name, "the former name is empty"));
        }
    }
    let names = names.iter();
    Ok(quote! {
        #parsed
        #(
            ::replayflow::__private::inventory::submit! {
                ::replayflow::__private::TypeRename {
                    from: #names,
                    to: || ::core::any::type_name::<#ident>(),
                }
            }
        )*
    })
}

/// The token an error about a misplaced attribute points at.
fn item_keyword(item: &Item) -> TokenStream2 {
    match item {
        Item::Fn(f) => {
            let token = &f.sig.fn_token;
            quote!(#token)
        }
        _ => quote!(#item),
    }
}
