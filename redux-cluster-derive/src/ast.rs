//! The shape of a derive input, as the hash sees it.

use crate::ctxt::Ctxt;
use proc_macro2::Span;
use syn::visit_mut::VisitMut;
use syn::{Data, DeriveInput, Ident, Type};

pub enum Fields {
    Named(Vec<(Ident, Type)>),
    Unnamed(Vec<Type>),
    Unit,
}

pub struct Variant {
    pub ident: Ident,
    pub fields: Fields,
}

pub enum Shape {
    Struct(Fields),
    Enum(Vec<Variant>),
}

pub struct Input {
    pub ident: Ident,
    pub generics: syn::Generics,
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
            shape,
        })
    }

    /// Every field type, for validation.
    pub fn field_types(&self) -> Vec<&Type> {
        fn of(f: &Fields) -> Vec<&Type> {
            match f {
                Fields::Named(v) => v.iter().map(|(_, t)| t).collect(),
                Fields::Unnamed(v) => v.iter().collect(),
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
    let mut ty = |t: &Type| {
        let mut t = t.clone();
        fix.visit_type_mut(&mut t);
        t
    };
    match f {
        syn::Fields::Named(n) => Fields::Named(
            n.named
                .iter()
                .map(|f| {
                    (
                        f.ident
                            .clone()
                            .unwrap_or_else(|| Ident::new("_", Span::call_site())),
                        ty(&f.ty),
                    )
                })
                .collect(),
        ),
        syn::Fields::Unnamed(u) => Fields::Unnamed(u.unnamed.iter().map(|f| ty(&f.ty)).collect()),
        syn::Fields::Unit => Fields::Unit,
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
