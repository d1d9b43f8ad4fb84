//! State digests that mean what they say: equal states give equal digests
//! in every process.
//!
//! The wire encoding (postcard) writes a map in its iteration order, which
//! for a `HashMap` comes from a per-process random seed: two equal states
//! would encode differently and be reported as diverged. The digest is
//! computed over a canonical encoding instead: the same shape as the value,
//! with map entries sorted by their own encoding. (A `HashSet` serializes
//! as a plain sequence and cannot be told apart from a `Vec`; states that
//! hold one are marked by [`crate::Schema::ORDERED`] and not compared.)

use serde::ser::{self, Serialize};
use sha2::{Digest as _, Sha256};

/// SHA-256 of the canonical encoding of `value`.
///
/// # Errors
/// The value's `Serialize` failed.
pub(crate) fn of<T: Serialize + ?Sized>(value: &T) -> Result<[u8; 32], Error> {
    let mut out = Vec::new();
    value.serialize(Canon { out: &mut out })?;
    Ok(Sha256::digest(&out).into())
}

/// A value's `Serialize` failed.
#[derive(Debug)]
pub(crate) struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

// One tag per kind of value, so that the encoding of one type is
// unambiguous (the type fixes the shape; tags and lengths delimit).
const UNIT: u8 = 0;
const SCALAR: u8 = 1;
const BYTES: u8 = 2;
const NONE: u8 = 3;
const SOME: u8 = 4;
const VARIANT: u8 = 5;
const SEQ: u8 = 6;
const MAP: u8 = 7;
const MORE: u8 = 1;
const END: u8 = 0;

struct Canon<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Canon<'a> {
    fn scalar(self, b: &[u8]) -> Result<(), Error> {
        self.out.push(SCALAR);
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn bytes(self, b: &[u8]) -> Result<(), Error> {
        self.out.push(BYTES);
        self.out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn variant(&mut self, index: u32) {
        self.out.push(VARIANT);
        self.out.extend_from_slice(&index.to_le_bytes());
    }

    /// A variant's index, then its fields as a sequence.
    fn variant_seq(mut self, index: u32) -> Seq<'a> {
        self.variant(index);
        self.seq()
    }

    fn seq(self) -> Seq<'a> {
        self.out.push(SEQ);
        Seq { out: self.out }
    }
}

/// The elements of a sequence, tuple or struct, each after a `MORE` byte,
/// then `END`.
struct Seq<'a> {
    out: &'a mut Vec<u8>,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.out.push(MORE);
        v.serialize(Canon { out: self.out })
    }

    fn finish(self) -> Result<(), Error> {
        self.out.push(END);
        Ok(())
    }
}

/// A map's entries, each encoded on its own, sorted at the end.
struct Map<'a> {
    out: &'a mut Vec<u8>,
    entries: Vec<Vec<u8>>,
    key: Option<Vec<u8>>,
}

macro_rules! scalars {
    ($($f:ident: $t:ty),* $(,)?) => {$(
        fn $f(self, v: $t) -> Result<(), Error> {
            self.scalar(&v.to_le_bytes())
        }
    )*};
}

impl<'a> ser::Serializer for Canon<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Seq<'a>;
    type SerializeStructVariant = Seq<'a>;

    scalars! {
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128,
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.scalar(&[u8::from(v)])
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.scalar(&v.to_bits().to_le_bytes())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.scalar(&v.to_bits().to_le_bytes())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.scalar(&u32::from(v).to_le_bytes())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.bytes(v)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        self.out.push(SOME);
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push(UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        mut self,
        _: &'static str,
        i: u32,
        _: &'static str,
    ) -> Result<(), Error> {
        self.variant(i);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        i: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        let mut this = self;
        this.variant(i);
        v.serialize(this)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>, Error> {
        Ok(self.seq())
    }
    fn serialize_tuple(self, _: usize) -> Result<Seq<'a>, Error> {
        Ok(self.seq())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Seq<'a>, Error> {
        Ok(self.seq())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        i: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, Error> {
        Ok(self.variant_seq(i))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Map<'a>, Error> {
        Ok(Map {
            out: self.out,
            entries: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Seq<'a>, Error> {
        Ok(self.seq())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        i: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, Error> {
        Ok(self.variant_seq(i))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

macro_rules! seq_impls {
    ($($tr:ident :: $m:ident $(, $key:ty)?);* $(;)?) => {$(
        impl ser::$tr for Seq<'_> {
            type Ok = ();
            type Error = Error;
            fn $m<T: Serialize + ?Sized>(&mut self, $(_: $key,)? v: &T) -> Result<(), Error> {
                self.element(v)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

seq_impls! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
    SerializeStruct::serialize_field, &'static str;
    SerializeStructVariant::serialize_field, &'static str;
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
        let mut buf = Vec::new();
        k.serialize(Canon { out: &mut buf })?;
        self.key = Some(buf);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let mut entry = self
            .key
            .take()
            .ok_or_else(|| Error("a map value without a key".into()))?;
        v.serialize(Canon { out: &mut entry })?;
        self.entries.push(entry);
        Ok(())
    }
    fn end(mut self) -> Result<(), Error> {
        // Keys are distinct, so their encodings are, and each entry starts
        // with its key: sorting the entries sorts by key.
        self.entries.sort_unstable();
        self.out.push(MAP);
        self.out
            .extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            self.out.extend_from_slice(&(e.len() as u64).to_le_bytes());
            self.out.extend_from_slice(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn equal_maps_digest_equal_whatever_their_order() {
        let mut a = HashMap::new();
        let mut b = HashMap::with_capacity(1000);
        for i in 0..500u32 {
            a.insert(format!("k{i}"), vec![i; 3]);
        }
        for i in (0..500u32).rev() {
            b.insert(format!("k{i}"), vec![i; 3]);
        }
        assert_eq!(of(&a).unwrap(), of(&b).unwrap());
        let sorted: BTreeMap<_, _> = a.clone().into_iter().collect();
        assert_eq!(of(&a).unwrap(), of(&sorted).unwrap());
        b.insert("k0".into(), vec![1]);
        assert_ne!(of(&a).unwrap(), of(&b).unwrap());
    }

    #[test]
    fn order_of_a_sequence_counts() {
        assert_ne!(of(&vec![1u8, 2]).unwrap(), of(&vec![2u8, 1]).unwrap());
        assert_ne!(
            of(&(vec![1u8], vec![2u8])).unwrap(),
            of(&(vec![1u8, 2], Vec::<u8>::new())).unwrap()
        );
        assert_ne!(of(&Some(0u8)).unwrap(), of(&None::<u8>).unwrap());
    }
}
