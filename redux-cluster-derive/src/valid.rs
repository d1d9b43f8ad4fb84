//! Rejects field types that have no stable wire form, each at its own span.

use crate::ast::Input;
use crate::ctxt::Ctxt;
use syn::Type;

pub fn check(cx: &mut Ctxt, input: &Input) {
    for ty in input.field_types() {
        check_type(cx, ty);
    }
}

fn check_type(cx: &mut Ctxt, ty: &Type) {
    let why = match ty {
        Type::Reference(_) => Some("a borrowed field cannot be received from a peer; use an owned type (String, Vec<T>, Box<T>)"),
        Type::Ptr(_) => Some("a raw pointer has no meaning in another process"),
        Type::BareFn(_) => Some("a function pointer has no meaning in another process"),
        Type::TraitObject(_) => Some("a trait object has no fixed structure to hash; use an enum of the concrete types"),
        Type::ImplTrait(_) => Some("`impl Trait` has no fixed structure to hash"),
        Type::Infer(_) => Some("the type must be written out to be hashed"),
        Type::Never(_) => Some("`!` cannot be sent"),
        Type::Macro(_) => Some("a type macro cannot be hashed; write the type out"),
        _ => None,
    };
    if let Some(why) = why {
        cx.error_spanned_by(
            ty,
            format!("this field type cannot be part of a cluster schema: {why}"),
        );
        return;
    }
    match ty {
        Type::Array(a) => check_type(cx, &a.elem),
        Type::Slice(s) => check_type(cx, &s.elem),
        Type::Paren(p) => check_type(cx, &p.elem),
        Type::Group(g) => check_type(cx, &g.elem),
        Type::Tuple(t) => t.elems.iter().for_each(|e| check_type(cx, e)),
        Type::Path(p) => {
            for seg in &p.path.segments {
                if let syn::PathArguments::AngleBracketed(args) = &seg.arguments {
                    for arg in &args.args {
                        if let syn::GenericArgument::Type(t) = arg {
                            check_type(cx, t);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}
