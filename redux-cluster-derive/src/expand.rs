//! Writes the impls. Generated code names only absolute
//! `::redux_cluster::` paths and sits inside `const _: () = { ... };` so it
//! adds no names to the user's module.

use crate::ast::{Field, Fields, HashAs, Input, Shape};
use crate::attr::{ReducerArgs, StoreAttrs};
use crate::ctxt::Ctxt;
use crate::valid;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

/// `#[derive(Schema)]`.
pub fn schema_only(input: DeriveInput) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::default();
    let parsed = Input::from_syn(&mut cx, &input);
    if let Some(p) = &parsed {
        valid::check(&mut cx, p);
    }
    cx.check()?;
    let Some(parsed) = parsed else {
        return Ok(TokenStream::new());
    };
    let imp = schema_impl(&parsed);
    Ok(quote!(const _: () = { #imp };))
}

/// `#[derive(ClusterStore)]`.
pub fn cluster_store(input: DeriveInput) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::default();
    let attrs = StoreAttrs::parse(&mut cx, &input.attrs);
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(
            &input.generics,
            "a cluster store state cannot be generic: peers must agree on one concrete type",
        );
    }
    if let syn::Data::Enum(e) = &input.data {
        cx.error_spanned_by(
            e.enum_token,
            "#[derive(ClusterStore)] goes on the state struct; put #[reducer(State)] on the action enum",
        );
    }
    let parsed = Input::from_syn(&mut cx, &input);
    if let Some(p) = &parsed {
        valid::check(&mut cx, p);
    }
    cx.check()?;
    let Some(parsed) = parsed else {
        return Ok(TokenStream::new());
    };
    let ident = &parsed.ident;
    let schema = schema_impl(&parsed);
    let name = attrs.name.map_or_else(|| ident.to_string(), |l| l.value());
    let pin = match attrs.schema {
        Some(l) => quote!(::core::option::Option::Some(#l)),
        None => quote!(::core::option::Option::None),
    };
    let previous = match attrs.previous {
        Some(p) => quote!(#p),
        None => quote!(::redux_cluster::NoPrevious),
    };
    Ok(quote! {
        const _: () = {
            #schema
            impl ::redux_cluster::ClusterState for #ident {
                const NAME: &'static str = #name;
                const PIN: ::core::option::Option<&'static str> = #pin;
                type Previous = #previous;
            }
        };
        impl #ident {
            /// Starts this store: as the master in a plain process, or joined
            /// to the master when this process is a worker it forked.
            ///
            /// # Errors
            /// See [`redux_cluster::StartError`].
            #[allow(dead_code)]
            pub fn start_master() -> ::core::result::Result<::redux_cluster::Store<Self>, ::redux_cluster::StartError>
            where
                Self: ::redux_cluster::Reducer,
            {
                ::redux_cluster::Store::<Self>::builder().start()
            }

            /// Starts this store as a client of a server (the seed's
            /// `createClient`); it reconnects and resumes on its own.
            ///
            /// # Errors
            /// See [`redux_cluster::StartError`].
            #[allow(dead_code)]
            pub fn connect(
                cfg: ::redux_cluster::client::ConnectConfig,
            ) -> ::core::result::Result<::redux_cluster::Store<Self>, ::redux_cluster::StartError>
            where
                Self: ::redux_cluster::Reducer,
            {
                ::redux_cluster::Store::<Self>::builder().connect(cfg)
            }

            /// A builder for this store, to set options before starting it.
            #[allow(dead_code)]
            pub fn builder() -> ::redux_cluster::StoreBuilder<Self>
            where
                Self: ::redux_cluster::Reducer,
            {
                ::redux_cluster::Store::<Self>::builder()
            }
        }
    })
}

/// `#[reducer(State)]` on the action enum.
pub fn reducer(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::default();
    let args: ReducerArgs = syn::parse2(args)?;
    args.validate(&mut cx);
    let input: DeriveInput = syn::parse2(item.clone())?;
    match &input.data {
        syn::Data::Enum(_) => {}
        syn::Data::Struct(s) => cx.error_spanned_by(
            s.struct_token,
            "#[reducer(State)] goes on the action enum; the state struct takes #[derive(ClusterStore)]",
        ),
        syn::Data::Union(_) => {}
    }
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(
            &input.generics,
            "an action enum cannot be generic: peers must agree on one concrete type",
        );
    }
    let parsed = Input::from_syn(&mut cx, &input);
    if let Some(p) = &parsed {
        valid::check(&mut cx, p);
    }
    cx.check()?;
    let Some(parsed) = parsed else {
        return Ok(item);
    };
    let action = &parsed.ident;
    let state = &args.state;
    let schema = schema_impl(&parsed);
    // `self` and `action` resolve at the call site (they may come from a
    // `macro_rules!` fragment); errors still point at the user's path.
    let at = |s: proc_macro2::Span| proc_macro2::Span::call_site().located_at(s);
    let apply = match &args.apply {
        Some(p) => quote_spanned!(at(p.span())=> #p(self, action)),
        None => quote_spanned!(at(state.span())=> reduce(self, action)),
    };
    // The chain of earlier versions is checked here, where the state's
    // `Reducer` impl exists: a missing `From` is reported at this spot.
    let history = quote_spanned! {state.span()=>
        <<#state as ::redux_cluster::ClusterState>::Previous as ::redux_cluster::History<#state>>
    };
    let pin_check = quote_spanned! {state.span()=>
        const _: () = ::redux_cluster::__private::check_pin(
            <#state as ::redux_cluster::ClusterState>::PIN,
            <#state as ::redux_cluster::Reducer>::SCHEMA,
        );
    };
    // `#[schema(...)]` on a field is read above; an attribute macro's
    // output keeps the enum as written, where the attribute is unknown.
    let item = without_schema_attrs(input);
    Ok(quote! {
        #item
        const _: () = {
            #schema
            impl ::redux_cluster::Reducer for #state {
                type Action = #action;
                const SCHEMA: ::redux_cluster::SchemaHash =
                    ::redux_cluster::__private::SchemaHasher::new("store")
                        .child(<#state as ::redux_cluster::Schema>::HASH)
                        .child(<#action as ::redux_cluster::Schema>::HASH)
                        .finish();
                const ID: ::redux_cluster::StoreId = ::redux_cluster::StoreId::new(
                    <#state as ::redux_cluster::ClusterState>::NAME,
                    <#state as ::redux_cluster::Reducer>::SCHEMA,
                );
                #[inline]
                fn reduce(&mut self, action: &Self::Action) {
                    #apply
                }
                fn older_versions(
                    out: &mut ::std::vec::Vec<(::redux_cluster::SchemaHash, ::redux_cluster::StoreId)>,
                    depth: usize,
                ) {
                    #history::versions(out, depth)
                }
                fn older_state(
                    schema: ::redux_cluster::SchemaHash,
                    bytes: &[u8],
                    depth: usize,
                ) -> ::core::option::Option<::core::result::Result<Self, ::std::string::String>> {
                    #history::state(schema, bytes, depth)
                }
                fn older_actions(
                    schema: ::redux_cluster::SchemaHash,
                    count: u32,
                    packed: &[u8],
                    depth: usize,
                ) -> ::core::option::Option<::core::result::Result<::std::vec::Vec<#action>, ::std::string::String>> {
                    #history::actions(schema, count, packed, depth)
                }
            }
            #pin_check
        };
    })
}

/// The enum with the `#[schema(...)]` attributes of its fields removed.
fn without_schema_attrs(mut input: DeriveInput) -> TokenStream {
    if let syn::Data::Enum(e) = &mut input.data {
        for v in &mut e.variants {
            for f in v.fields.iter_mut() {
                f.attrs.retain(|a| !a.path().is_ident("schema"));
            }
        }
    }
    quote!(#input)
}

fn schema_impl(input: &Input) -> TokenStream {
    let ident = &input.ident;
    let mut generics = input.generics.clone();
    for p in generics.type_params_mut() {
        p.bounds.push(syn::parse_quote!(::redux_cluster::Schema));
    }
    let (impl_g, ty_g, where_c) = generics.split_for_impl();
    let (top_h, top_d) = serde(&input.serde);
    let (hash, describe) = match &input.shape {
        Shape::Struct(f) => {
            let (h, d) = fields(f);
            (
                quote!(::redux_cluster::__private::SchemaHasher::new("struct") #top_h #h .finish()),
                quote!(#top_d #d),
            )
        }
        Shape::Enum(vs) => {
            let n = vs.len() as u64;
            let mut h = quote!();
            let mut d = quote!(#top_d out.push_str("enum{"););
            for v in vs {
                let name = v.ident.to_string();
                let (fh, fd) = fields(&v.fields);
                let (sh, sd) = serde(&v.serde);
                h.extend(quote!(.str(#name) #sh #fh));
                d.extend(quote!(#sd out.push_str(#name); #fd out.push(',');));
            }
            d.extend(quote!(out.push('}');));
            (
                quote!(::redux_cluster::__private::SchemaHasher::new("enum") #top_h .count(#n) #h .finish()),
                d,
            )
        }
    };
    let ordered = ordered(&input.shape);
    quote! {
        impl #impl_g ::redux_cluster::Schema for #ident #ty_g #where_c {
            const HASH: ::redux_cluster::SchemaHash = #hash;
            const ORDERED: bool = #ordered;
            fn describe(out: &mut ::std::string::String) {
                #describe
            }
        }
    }
}

/// `true && <T as Schema>::ORDERED && ...` over every field type (an
/// opaque field counts as ordered).
fn ordered(shape: &Shape) -> TokenStream {
    let all: Vec<&Fields> = match shape {
        Shape::Struct(f) => vec![f],
        Shape::Enum(vs) => vs.iter().map(|v| &v.fields).collect(),
    };
    let mut out = quote!(true);
    for f in all {
        let fs: Vec<&Field> = match f {
            Fields::Named(v) | Fields::Unnamed(v) => v.iter().collect(),
            Fields::Unit => Vec::new(),
        };
        for f in fs {
            let ty = match &f.hash_as {
                HashAs::Structure => &f.ty,
                HashAs::With(t) => t,
                HashAs::Opaque(_) => continue,
            };
            out.extend(quote_spanned!(ty.span()=> && <#ty as ::redux_cluster::Schema>::ORDERED));
        }
    }
    out
}

/// The hash chain and description statements for serde attributes in
/// canonical form; nothing when there are none. (The tag cannot be a field
/// or variant name, so it cannot be confused with one.)
fn serde(canon: &str) -> (TokenStream, TokenStream) {
    if canon.is_empty() {
        return (quote!(), quote!());
    }
    let shown = format!("#[serde({canon})]");
    (
        quote!(.str("#[serde]").str(#canon)),
        quote!(out.push_str(#shown);),
    )
}

/// The hash chain and description statements for one set of fields.
fn fields(f: &Fields) -> (TokenStream, TokenStream) {
    let child = |f: &Field| match &f.hash_as {
        HashAs::Structure => {
            let ty = &f.ty;
            quote_spanned!(ty.span()=> <#ty as ::redux_cluster::Schema>::HASH)
        }
        HashAs::With(ty) => quote_spanned!(ty.span()=> <#ty as ::redux_cluster::Schema>::HASH),
        HashAs::Opaque(name) => {
            quote!(::redux_cluster::__private::SchemaHasher::new("opaque").str(#name).finish())
        }
    };
    // `out` resolves at the call site even when the type comes from a
    // `macro_rules!` fragment; only the error location follows the type.
    let desc = |f: &Field| {
        let ty = match &f.hash_as {
            HashAs::Structure => &f.ty,
            HashAs::With(ty) => ty,
            HashAs::Opaque(name) => {
                let shown = format!("opaque({name})");
                return quote!(out.push_str(#shown););
            }
        };
        let span = proc_macro2::Span::call_site().located_at(ty.span());
        quote_spanned!(span=> <#ty as ::redux_cluster::Schema>::describe(out);)
    };
    match f {
        Fields::Named(v) => {
            let n = v.len() as u64;
            let mut h = quote!(.str("named").count(#n));
            let mut d = quote!(out.push('{'););
            for f in v {
                let name = f.name.as_ref().map(ToString::to_string).unwrap_or_default();
                let c = child(f);
                let ds = desc(f);
                let (sh, sd) = serde(&f.serde);
                h.extend(quote!(.str(#name) #sh .child(#c)));
                d.extend(quote!(#sd out.push_str(#name); out.push(':'); #ds out.push(',');));
            }
            d.extend(quote!(out.push('}');));
            (h, d)
        }
        Fields::Unnamed(v) => {
            let n = v.len() as u64;
            let mut h = quote!(.str("tuple").count(#n));
            let mut d = quote!(out.push('('););
            for f in v {
                let c = child(f);
                let ds = desc(f);
                let (sh, sd) = serde(&f.serde);
                h.extend(quote!(#sh .child(#c)));
                d.extend(quote!(#sd #ds out.push(',');));
            }
            d.extend(quote!(out.push(')');));
            (h, d)
        }
        Fields::Unit => (quote!(.str("unit")), quote!()),
    }
}
