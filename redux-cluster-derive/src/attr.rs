//! Arguments of `#[cluster_store(...)]` and `#[reducer(...)]`.

use crate::ctxt::Ctxt;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, LitStr, Path, Token};

/// `#[cluster_store(name = "…", schema = "…", previous = path)]`.
#[derive(Default)]
pub struct StoreAttrs {
    pub name: Option<LitStr>,
    pub schema: Option<LitStr>,
    pub previous: Option<Path>,
}

const STORE_KEYS: &str = "`name`, `schema`, `previous`";

impl StoreAttrs {
    pub fn parse(cx: &mut Ctxt, attrs: &[Attribute]) -> Self {
        let mut out = StoreAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("cluster_store")) {
            let res = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().is_empty() {
                        cx.error_spanned_by(&lit, "a store name cannot be empty");
                    }
                    out.name = Some(lit);
                } else if meta.path.is_ident("previous") {
                    out.previous = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("schema") {
                    let lit: LitStr = meta.value()?.parse()?;
                    let v = lit.value();
                    if v.len() != 64 || !v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                        cx.error_spanned_by(
                            &lit,
                            "a schema pin is 64 lowercase hex digits (the hash the build error or `Store::schema_hash()` shows)",
                        );
                    }
                    out.schema = Some(lit);
                } else {
                    let key = meta
                        .path
                        .get_ident()
                        .map_or_else(|| "?".to_string(), |i| i.to_string());
                    cx.error_spanned_by(
                        &meta.path,
                        format!("unknown cluster_store key `{key}`; valid keys are {STORE_KEYS}"),
                    );
                    // Skip the value so parsing can go on and find more errors.
                    if meta.input.peek(Token![=]) {
                        let _: syn::Expr = meta.value()?.parse()?;
                    }
                }
                Ok(())
            });
            if let Err(e) = res {
                cx.push(e);
            }
        }
        out
    }
}

/// `#[reducer(State)]` or `#[reducer(State, apply = path)]`.
pub struct ReducerArgs {
    pub state: Path,
    pub apply: Option<Path>,
    pub unknown: Vec<syn::Ident>,
}

const REDUCER_KEYS: &str = "`apply`";

impl Parse for ReducerArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(input
                .error("name the state type this action enum belongs to: `#[reducer(MyState)]`"));
        }
        let state: Path = input.parse()?;
        let mut apply = None;
        let mut unknown = Vec::new();
        while input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: syn::Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            if key == "apply" {
                apply = Some(input.parse()?);
            } else {
                let _: syn::Expr = input.parse()?;
                unknown.push(key);
            }
        }
        Ok(ReducerArgs {
            state,
            apply,
            unknown,
        })
    }
}

impl ReducerArgs {
    pub fn validate(&self, cx: &mut Ctxt) {
        for k in &self.unknown {
            cx.error_spanned_by(
                k,
                format!("unknown reducer key `{k}`; valid keys are {REDUCER_KEYS}"),
            );
        }
    }
}
