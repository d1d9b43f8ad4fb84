//! Structural schema hashes and store identities.
//!
//! Every type that crosses the wire implements [`Schema`]: a `const` hash of
//! its *structure* (field names and order, variant names and order, and the
//! schemas of the types inside, recursively) plus a human-readable
//! description used to point at the first difference when two peers
//! disagree. `#[derive(Schema)]` writes the impl for user types;
//! `#[derive(ClusterStore)]` and `#[reducer]` do it for the state and the
//! action enum.

use crate::const_sha256::ConstSha256;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

/// A 256-bit structural hash of a type, computed at compile time.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SchemaHash(pub [u8; 32]);

impl SchemaHash {
    /// The hash as 64 lowercase hex digits, as written in a schema pin.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The hex form, computed in `const` context (used for compile-time pin
    /// checks).
    pub const fn hex_bytes(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        let mut i = 0;
        while i < 32 {
            out[i * 2] = DIGITS[(self.0[i] >> 4) as usize];
            out[i * 2 + 1] = DIGITS[(self.0[i] & 0x0f) as usize];
            i += 1;
        }
        out
    }
}

impl fmt::Display for SchemaHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SchemaHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchemaHash({self})")
    }
}

/// Builds schema hashes in `const` context. Every token is length-prefixed so
/// that no two different structures feed the same bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchemaHasher(ConstSha256);

impl SchemaHasher {
    /// Starts a hash for a schema node of kind `tag` (e.g. `"struct"`).
    pub const fn new(tag: &str) -> Self {
        Self(ConstSha256::new()).str(tag)
    }

    /// Adds a name (field, variant, primitive).
    pub const fn str(self, s: &str) -> Self {
        Self(
            self.0
                .update(&(s.len() as u32).to_le_bytes())
                .update(s.as_bytes()),
        )
    }

    /// Adds a count (number of fields, array length).
    pub const fn count(self, n: u64) -> Self {
        Self(self.0.update(&n.to_le_bytes()))
    }

    /// Adds the hash of a nested type.
    pub const fn child(self, h: SchemaHash) -> Self {
        Self(self.0.update(&h.0))
    }

    /// Finishes the hash.
    pub const fn finish(self) -> SchemaHash {
        SchemaHash(self.0.finish())
    }
}

/// A type whose wire structure has a compile-time hash.
///
/// Derive it with `#[derive(Schema)]` for types nested inside a store's state
/// or actions. It is implemented here for the std types that serde encodes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no cluster schema",
    label = "derive `redux_cluster::Schema` for `{Self}` if it is your type; if not, see the notes",
    note = "for a type from another crate: turn on redux-cluster's feature for it (uuid, chrono, time, url, bytes, rust_decimal, smol_str, compact_str, indexmap), or mark the field `#[schema(opaque = \"a name\")]` (hashed by that name) or `#[schema(with = T)]` (hashed as `T`, a type with a schema)",
    note = "for the back-reference of mutually recursive types, mark the field `#[schema(recursive)]`"
)]
pub trait Schema {
    /// The structural hash.
    const HASH: SchemaHash;

    /// Whether two equal values always serialize their elements in the
    /// same order in every process. False for a `HashSet` (its order comes
    /// from a per-process random seed) and anything holding one; maps are
    /// fine, because state digests sort map entries. A state that is not
    /// ordered is not compared by digest (see
    /// [`crate::StoreBuilder::digest_every`]).
    const ORDERED: bool = true;

    /// Appends a readable form of the structure (for mismatch reports).
    fn describe(out: &mut String);
}

/// Stands in for `Self` inside a self-recursive type, so that the hash of a
/// tree node holding `Vec<Self>` is finite. Used by the derive macros.
#[doc(hidden)]
pub enum SelfRef {}

impl Schema for SelfRef {
    const HASH: SchemaHash = SchemaHasher::new("self").finish();
    fn describe(out: &mut String) {
        out.push_str("Self");
    }
}

/// The readable form of `T`'s schema.
pub fn describe<T: Schema + ?Sized>() -> String {
    let mut s = String::new();
    T::describe(&mut s);
    s
}

macro_rules! primitive {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl Schema for $t {
            const HASH: SchemaHash = SchemaHasher::new("prim").str($name).finish();
            fn describe(out: &mut String) { out.push_str($name); }
        }
    )*};
}

primitive! {
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64", u128 => "u128", usize => "u64",
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", i128 => "i128", isize => "i64",
    f32 => "f32", f64 => "f64", bool => "bool", char => "char",
    String => "String", str => "String", () => "()",
}

// Types with the same serde encoding share one schema name, so swapping one
// for another is not reported as drift.
macro_rules! wrapper {
    ($($name:literal: $t:ident),* $(,)?) => {$(
        impl<T: Schema + ?Sized> Schema for $t<T> {
            const HASH: SchemaHash = SchemaHasher::new($name).child(T::HASH).finish();
            const ORDERED: bool = T::ORDERED;
            fn describe(out: &mut String) {
                out.push_str(concat!($name, "<"));
                T::describe(out);
                out.push('>');
            }
        }
    )*};
}

wrapper! { "Box": Box, "Arc": Arc, "Rc": Rc }

macro_rules! seq {
    ($($name:literal: $t:ident $(+ $bound:path)* => $ordered:literal),* $(,)?) => {$(
        impl<T: Schema $(+ $bound)*> Schema for $t<T> {
            const HASH: SchemaHash = SchemaHasher::new($name).child(T::HASH).finish();
            const ORDERED: bool = $ordered && T::ORDERED;
            fn describe(out: &mut String) {
                out.push_str(concat!($name, "<"));
                T::describe(out);
                out.push('>');
            }
        }
    )*};
}

seq! {
    "Vec": Vec => true, "Vec": VecDeque => true, "Vec": LinkedList => true,
    "Vec": BinaryHeap + Ord => true, "Option": Option => true,
    "Set": BTreeSet => true, "Set": HashSet => false,
}

impl<T: Schema> Schema for [T] {
    const HASH: SchemaHash = SchemaHasher::new("Vec").child(T::HASH).finish();
    const ORDERED: bool = T::ORDERED;
    fn describe(out: &mut String) {
        out.push_str("Vec<");
        T::describe(out);
        out.push('>');
    }
}

impl<T: Schema, const N: usize> Schema for [T; N] {
    const HASH: SchemaHash = SchemaHasher::new("array")
        .count(N as u64)
        .child(T::HASH)
        .finish();
    const ORDERED: bool = T::ORDERED;
    fn describe(out: &mut String) {
        out.push('[');
        T::describe(out);
        out.push_str(&format!("; {N}]"));
    }
}

impl<K: Schema, V: Schema, H> Schema for HashMap<K, V, H> {
    const HASH: SchemaHash = SchemaHasher::new("Map")
        .child(K::HASH)
        .child(V::HASH)
        .finish();
    const ORDERED: bool = K::ORDERED && V::ORDERED;
    fn describe(out: &mut String) {
        out.push_str("Map<");
        K::describe(out);
        out.push_str(", ");
        V::describe(out);
        out.push('>');
    }
}

impl<K: Schema, V: Schema> Schema for BTreeMap<K, V> {
    const HASH: SchemaHash = <HashMap<K, V> as Schema>::HASH;
    const ORDERED: bool = K::ORDERED && V::ORDERED;
    fn describe(out: &mut String) {
        <HashMap<K, V> as Schema>::describe(out)
    }
}

macro_rules! tuple {
    ($($n:literal: ($($t:ident),+)),* $(,)?) => {$(
        impl<$($t: Schema),+> Schema for ($($t,)+) {
            const HASH: SchemaHash = SchemaHasher::new("tuple").count($n)
                $(.child($t::HASH))+ .finish();
            const ORDERED: bool = true $(&& $t::ORDERED)+;
            fn describe(out: &mut String) {
                out.push('(');
                $( $t::describe(out); out.push(','); )+
                out.push(')');
            }
        }
    )*};
}

tuple! {
    1: (A), 2: (A, B), 3: (A, B, C), 4: (A, B, C, D), 5: (A, B, C, D, E),
    6: (A, B, C, D, E, F), 7: (A, B, C, D, E, F, G), 8: (A, B, C, D, E, F, G, H),
    9: (A, B, C, D, E, F, G, H, I), 10: (A, B, C, D, E, F, G, H, I, J),
    11: (A, B, C, D, E, F, G, H, I, J, K), 12: (A, B, C, D, E, F, G, H, I, J, K, L),
}

// serde encodes `Result` as an enum `Ok(T) | Err(E)`.
impl<T: Schema, E: Schema> Schema for Result<T, E> {
    const HASH: SchemaHash = SchemaHasher::new("enum")
        .count(2)
        .str("Ok")
        .str("tuple")
        .count(1)
        .child(T::HASH)
        .str("Err")
        .str("tuple")
        .count(1)
        .child(E::HASH)
        .finish();
    const ORDERED: bool = T::ORDERED && E::ORDERED;
    fn describe(out: &mut String) {
        out.push_str("enum{Ok(");
        T::describe(out);
        out.push_str(",),Err(");
        E::describe(out);
        out.push_str(",),}");
    }
}

// serde encodes `Duration` as a struct `{ secs: u64, nanos: u32 }`.
impl Schema for std::time::Duration {
    const HASH: SchemaHash = SchemaHasher::new("struct")
        .str("named")
        .count(2)
        .str("secs")
        .child(<u64 as Schema>::HASH)
        .str("nanos")
        .child(<u32 as Schema>::HASH)
        .finish();
    fn describe(out: &mut String) {
        out.push_str("{secs:u64,nanos:u32,}");
    }
}

// Types serde encodes exactly like another one share its schema.
macro_rules! same_as {
    ($($t:ty => $as:ty),* $(,)?) => {$(
        impl Schema for $t {
            const HASH: SchemaHash = <$as as Schema>::HASH;
            fn describe(out: &mut String) { <$as as Schema>::describe(out) }
        }
    )*};
}

same_as! {
    std::path::PathBuf => String,
    std::num::NonZeroU8 => u8, std::num::NonZeroU16 => u16, std::num::NonZeroU32 => u32,
    std::num::NonZeroU64 => u64, std::num::NonZeroU128 => u128, std::num::NonZeroUsize => u64,
    std::num::NonZeroI8 => i8, std::num::NonZeroI16 => i16, std::num::NonZeroI32 => i32,
    std::num::NonZeroI64 => i64, std::num::NonZeroI128 => i128, std::num::NonZeroIsize => i64,
}

impl<T: Schema + ToOwned + ?Sized> Schema for std::borrow::Cow<'_, T> {
    const HASH: SchemaHash = T::HASH;
    const ORDERED: bool = T::ORDERED;
    fn describe(out: &mut String) {
        T::describe(out)
    }
}

/// The identity of a store on the wire: SHA-256 over its name and schema
/// hash. Equal for the same source on every build and machine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct StoreId(pub [u8; 32]);

impl StoreId {
    /// The id of a store named `name` whose schema hash is `schema`.
    pub const fn new(name: &str, schema: SchemaHash) -> Self {
        Self(
            SchemaHasher::new("store-id")
                .str(name)
                .child(schema)
                .finish()
                .0,
        )
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreId({self})")
    }
}

/// Finds where two schema descriptions first differ, and returns a short
/// excerpt of each side around that point.
pub fn first_difference(ours: &str, theirs: &str) -> Option<(String, String)> {
    let at = ours
        .char_indices()
        .zip(theirs.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .or_else(|| (ours.len() != theirs.len()).then(|| ours.len().min(theirs.len())))?;
    let excerpt = |s: &str| {
        let start = s[..at.min(s.len())]
            .char_indices()
            .rev()
            .nth(20)
            .map_or(0, |(i, _)| i);
        s[start..].chars().take(48).collect::<String>()
    };
    Some((excerpt(ours), excerpt(theirs)))
}

/// Checks a schema pin at compile time; the expansion of `#[reducer]` calls
/// this in a `const` item, so a drifted pin is a build error that names the
/// new hash.
#[doc(hidden)]
pub const fn check_pin(pin: Option<&str>, actual: SchemaHash) {
    let Some(pin) = pin else { return };
    let hex = actual.hex_bytes();
    let p = pin.as_bytes();
    let mut ok = p.len() == 64;
    let mut i = 0;
    while ok && i < 64 {
        ok = p[i] == hex[i];
        i += 1;
    }
    if !ok {
        let msg = PinMessage::new(&hex);
        match core::str::from_utf8(&msg.0) {
            Ok(s) => panic!("{}", s),
            Err(_) => panic!("the store's schema drifted from its pin"),
        }
    }
}

struct PinMessage([u8; PIN_MSG_LEN]);

const PIN_PREFIX: &[u8] =
    b"the store's schema drifted from its pinned hash; the types now hash to ";
const PIN_SUFFIX: &[u8] = b" (update #[cluster_store(schema = \"...\")] if the change is intended: peers built from the old source will refuse this one)";
const PIN_MSG_LEN: usize = PIN_PREFIX.len() + 64 + PIN_SUFFIX.len();

impl PinMessage {
    const fn new(hex: &[u8; 64]) -> Self {
        let mut out = [0u8; PIN_MSG_LEN];
        let mut i = 0;
        while i < PIN_PREFIX.len() {
            out[i] = PIN_PREFIX[i];
            i += 1;
        }
        let mut j = 0;
        while j < 64 {
            out[i + j] = hex[j];
            j += 1;
        }
        let mut k = 0;
        while k < PIN_SUFFIX.len() {
            out[i + 64 + k] = PIN_SUFFIX[k];
            k += 1;
        }
        Self(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_encoding_same_hash() {
        assert_eq!(<Vec<u8> as Schema>::HASH, <VecDeque<u8> as Schema>::HASH);
        assert_eq!(
            <HashMap<String, u8> as Schema>::HASH,
            <BTreeMap<String, u8> as Schema>::HASH
        );
        assert_ne!(<Vec<u8> as Schema>::HASH, <Vec<u16> as Schema>::HASH);
        assert_ne!(<(u8, u16) as Schema>::HASH, <(u16, u8) as Schema>::HASH);
        assert_ne!(<[u8; 3] as Schema>::HASH, <[u8; 4] as Schema>::HASH);
    }

    #[test]
    fn more_std_types_hash_like_their_serde_form() {
        use std::borrow::Cow;
        assert_eq!(
            <std::path::PathBuf as Schema>::HASH,
            <String as Schema>::HASH
        );
        assert_eq!(
            <std::num::NonZeroU32 as Schema>::HASH,
            <u32 as Schema>::HASH
        );
        assert_eq!(
            <Cow<'static, str> as Schema>::HASH,
            <String as Schema>::HASH
        );
        assert_eq!(<LinkedList<u8> as Schema>::HASH, <Vec<u8> as Schema>::HASH);
        assert_eq!(<BinaryHeap<u8> as Schema>::HASH, <Vec<u8> as Schema>::HASH);
        assert_ne!(
            <Result<u8, String> as Schema>::HASH,
            <Result<String, u8> as Schema>::HASH
        );
        assert_ne!(
            <std::time::Duration as Schema>::HASH,
            <(u64, u32) as Schema>::HASH
        );
        let _ = <(u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8) as Schema>::HASH;
        assert_eq!(describe::<Result<u8, ()>>(), "enum{Ok(u8,),Err((),),}");
    }

    #[test]
    fn describe_nested() {
        assert_eq!(
            describe::<Option<Vec<(u8, String)>>>(),
            "Option<Vec<(u8,String,)>>"
        );
    }

    #[test]
    fn first_difference_points_at_change() {
        let d = first_difference("S{a:u8,b:u16}", "S{a:u8,c:u16}");
        let (a, b) = d.expect("they differ");
        assert!(a.contains("b:u16"), "{a}");
        assert!(b.contains("c:u16"), "{b}");
        assert_eq!(first_difference("x", "x"), None);
    }

    #[test]
    fn hex_matches_display() {
        let h = <u64 as Schema>::HASH;
        assert_eq!(h.hex_bytes().as_slice(), h.to_hex().as_bytes());
    }
}
