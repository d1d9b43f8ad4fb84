//! The shape of a derive input, as the hash sees it.

use crate::ctxt::Ctxt;
use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::visit_mut::VisitMut;
use syn::{Attribute, Data, DeriveInput, Ident, Type};

/// A field: its name (named fields only), its type, and its serde
/// attributes in canonical form ([`serde_attrs`]).
pub struct Field {
    pub name: Option<Ident>,
    pub ty: Type,
    pub serde: String,
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
            Data::Struct(s) => Shape::Struct(fields(&s.fields, &mut fix)),
            Data::Enum(e) => Shape::Enum(
                e.variants
                    .iter()
                    .map(|v| Variant {
                        ident: v.ident.clone(),
                        serde: serde_attrs(&v.attrs),
                        fields: fields(&v.fields, &mut fix),
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

    /// Every field type, for validation.
    pub fn field_types(&self) -> Vec<&Type> {
        fn of(f: &Fields) -> Vec<&Type> {
            match f {
                Fields::Named(v) | Fields::Unnamed(v) => v.iter().map(|f| &f.ty).collect(),
                Fields::Unit => Vec::new(),
            }
        }
        match &self.shape {
            Shape::Struct(f) => of(f),
            Shape::Enum(vs) => vs.iter().flat_map(|v| of(&v.fields)).collect(),
        }
    }
}

fn fields(f: &syn::Fields, fix: &mut SelfToMarker) -> Fields {
    let mut field = |f: &syn::Field| {
        let mut ty = f.ty.clone();
        fix.visit_type_mut(&mut ty);
        Field {
            name: f.ident.clone(),
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
