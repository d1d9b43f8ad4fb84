//! The shape of a derive input, as the hash sees it.

use crate::ctxt::Ctxt;
use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::visit_mut::VisitMut;
use syn::{Attribute, Data, DeriveInput, Ident, Type};

/// A field: its name (named fields only), its type, its serde attributes
/// in canonical form ([`serde_attrs`]), and how its type is hashed.
pub struct Field {
    pub name: Option<Ident>,
    pub ty: Type,
    pub serde: String,
    pub hash_as: HashAs,
}

/// How a field's type enters the hash (`#[schema(...)]` on the field).
pub enum HashAs {
    /// By its structure: `<T as Schema>::HASH` (the default).
    Structure,
    /// By a name the user gives: a type from another crate without a
    /// `Schema`, or the back-reference of mutually recursive types
    /// (`opaque = "name"`; `recursive` names it by the type as written).
    Opaque(String),
    /// As another type that has a `Schema` (`with = Type`).
    With(Type),
}

pub enum Fields {
    Named(Vec<Field>),
    Unnamed(Vec<Field>),
    Unit,
}

pub struct Variant {
    pub ident: Ident,
    pub serde: String,
    pub fields: Fields,
}

pub enum Shape {
    Struct(Fields),
    Enum(Vec<Variant>),
}

pub struct Input {
    pub ident: Ident,
    pub generics: syn::Generics,
    /// The container's serde attributes, canonical.
    pub serde: String,
    pub shape: Shape,
}

impl Input {
    /// Reads the input; a union is reported and `None` returned.
    pub fn from_syn(cx: &mut Ctxt, input: &DeriveInput) -> Option<Self> {
        let mut fix = SelfToMarker {
            own: input.ident.clone(),
        };
        let shape = match &input.data {
            Data::Struct(s) => Shape::Struct(fields(cx, &s.fields, &mut fix)),
            Data::Enum(e) => Shape::Enum(
                e.variants
                    .iter()
                    .map(|v| Variant {
                        ident: v.ident.clone(),
                        serde: serde_attrs(&v.attrs),
                        fields: fields(cx, &v.fields, &mut fix),
                    })
                    .collect(),
            ),
            Data::Union(u) => {
                cx.error_spanned_by(
                    u.union_token,
                    "unions cannot be cluster state: their active field is not known, so they have no stable wire form; use an enum",
                );
                return None;
            }
        };
        Some(Input {
            ident: input.ident.clone(),
            generics: input.generics.clone(),
            serde: serde_attrs(&input.attrs),
            shape,
        })
    }

    /// Every field type hashed by its structure, for validation.
    pub fn field_types(&self) -> Vec<&Type> {
        fn of(f: &Fields) -> Vec<&Type> {
            match f {
                Fields::Named(v) | Fields::Unnamed(v) => v
                    .iter()
                    .filter(|f| matches!(f.hash_as, HashAs::Structure))
                    .map(|f| &f.ty)
                    .collect(),
                Fields::Unit => Vec::new(),
            }
        }
        match &self.shape {
            Shape::Struct(f) => of(f),
            Shape::Enum(vs) => vs.iter().flat_map(|v| of(&v.fields)).collect(),
        }
    }
}

fn fields(cx: &mut Ctxt, f: &syn::Fields, fix: &mut SelfToMarker) -> Fields {
    let mut field = |f: &syn::Field| {
        let mut ty = f.ty.clone();
        fix.visit_type_mut(&mut ty);
        Field {
            name: f.ident.clone(),
            hash_as: hash_as(cx, &f.attrs, &f.ty),
            ty,
            serde: serde_attrs(&f.attrs),
        }
    };
    match f {
        syn::Fields::Named(n) => Fields::Named(n.named.iter().map(&mut field).collect()),
        syn::Fields::Unnamed(u) => Fields::Unnamed(u.unnamed.iter().map(&mut field).collect()),
        syn::Fields::Unit => Fields::Unit,
    }
}

const SCHEMA_KEYS: &str = "`opaque = \"name\"`, `with = Type`, `recursive`";

/// Reads a field's `#[schema(...)]`: how its type is hashed.
fn hash_as(cx: &mut Ctxt, attrs: &[Attribute], ty: &Type) -> HashAs {
    let mut out = HashAs::Structure;
    for attr in attrs.iter().filter(|a| a.path().is_ident("schema")) {
        let res = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("opaque") {
                let lit: syn::LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    cx.error_spanned_by(&lit, "an opaque schema name cannot be empty");
                }
                out = HashAs::Opaque(lit.value());
            } else if meta.path.is_ident("with") {
                out = HashAs::With(meta.value()?.parse()?);
            } else if meta.path.is_ident("recursive") {
                // The type as written, without spaces: `Vec<Folder>`.
                let mut name = String::new();
                canon(quote::ToTokens::to_token_stream(ty), &mut name);
                name.retain(|c| c != ' ');
                out = HashAs::Opaque(format!("rec {name}"));
            } else {
                cx.error_spanned_by(
                    &meta.path,
                    format!("unknown schema key; valid keys are {SCHEMA_KEYS}"),
                );
                if meta.input.peek(syn::Token![=]) {
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

/// The `#[serde(...)]` attributes among `attrs`, in a canonical text: each
/// token once, separated by single spaces, attributes by `;`. Serde
/// attributes can change the wire form (`skip`, `with`, `default`, ...), so
/// they are part of the hash; the text depends only on the tokens written,
/// never on how a compiler version prints them. Empty when there are none,
/// so types without serde attributes hash as they always did.
pub fn serde_attrs(attrs: &[Attribute]) -> String {
    let mut out = String::new();
    for a in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        if !out.is_empty() {
            out.push(';');
        }
        if let syn::Meta::List(l) = &a.meta {
            canon(l.tokens.clone(), &mut out);
        }
    }
    out
}

fn canon(tokens: TokenStream, out: &mut String) {
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                space(out);
                out.push_str(open);
                canon(g.stream(), out);
                out.push_str(close);
            }
            TokenTree::Ident(i) => {
                space(out);
                out.push_str(&i.to_string());
            }
            TokenTree::Punct(p) => {
                if p.as_char() != ',' {
                    space(out);
                }
                out.push(p.as_char());
            }
            TokenTree::Literal(l) => {
                space(out);
                out.push_str(&l.to_string());
            }
        }
    }
}

fn space(out: &mut String) {
    if !out.is_empty() && !out.ends_with(['(', '[', '{', ';']) {
        out.push(' ');
    }
}

/// Replaces `Self` and the type's own name with the `SelfRef` marker, so a
/// directly self-recursive type has a finite hash.
struct SelfToMarker {
    own: Ident,
}

impl VisitMut for SelfToMarker {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(p) = ty {
            if p.qself.is_none() && p.path.segments.len() == 1 {
                let seg = &p.path.segments[0];
                if (seg.ident == "Self" || seg.ident == self.own) && seg.arguments.is_none() {
                    let span = seg.ident.span();
                    *ty = syn::parse_quote_spanned!(span=> ::redux_cluster::__private::SelfRef);
                    return;
                }
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}
