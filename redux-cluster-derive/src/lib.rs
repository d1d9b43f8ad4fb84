//! Derive macros for `redux-cluster`. Use them through the `redux-cluster`
//! crate, which re-exports them; the generated code names
//! `::redux_cluster` paths.
//!
//! # Layout
//! - `ctxt.rs`: collects every error so all are reported at once.
//! - `attr.rs`: parses `#[cluster_store(...)]` and `#[reducer(...)]` arguments.
//! - `ast.rs`: the shape of the input type, with self-references replaced.
//! - `valid.rs`: rejects what cannot be hashed.
//! - `expand.rs`: writes the impls.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod valid;

use proc_macro::TokenStream;

/// Makes a struct the state of a cluster store: generates its schema hash,
/// its store name and pin, and `start_master()` / `builder()` constructors.
///
/// Options: `#[cluster_store(name = "…", schema = "…")]`.
#[proc_macro_derive(ClusterStore, attributes(cluster_store, schema))]
pub fn derive_cluster_store(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::cluster_store(input)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Generates the structural schema hash of a type nested in a store's state
/// or actions. Field and variant names, their order, their types, and every
/// `#[serde(...)]` attribute (some change the wire form) count; the type's
/// own name does not.
#[proc_macro_derive(Schema, attributes(schema))]
pub fn derive_schema(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::schema_only(input)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Marks an enum as the action type of a store: `#[reducer(State)]`, or
/// `#[reducer(State, apply = path::to::fn)]`. The reducer function defaults
/// to `reduce`, with the signature `fn(&mut State, &Action)`.
#[proc_macro_attribute]
pub fn reducer(args: TokenStream, item: TokenStream) -> TokenStream {
    let item2: proc_macro2::TokenStream = item.clone().into();
    match expand::reducer(args.into(), item.into()) {
        Ok(t) => t.into(),
        // Keep the enum itself so one error does not cascade into many.
        Err(e) => {
            let mut out = item2;
            out.extend(e.to_compile_error());
            out.into()
        }
    }
}
