//! [`Schema`] for types from other popular crates, each behind a feature of
//! the same name (`uuid`, `chrono`, `time`, `url`, `bytes`, `rust_decimal`,
//! `smol_str`, `compact_str`, `indexmap`), which also turns on that crate's
//! serde support.
//!
//! A type is named after what serde writes for it, so types with the same
//! wire form share a schema (a `SmolStr` is a `String` on the wire, an
//! `IndexMap` a map) and swapping one for the other is not drift. For any
//! other foreign type, mark the field `#[schema(opaque = "name")]` or
//! `#[schema(with = Type)]`.

#[allow(unused_imports)]
use crate::schema::{Schema, SchemaHash, SchemaHasher};

/// A type hashed by a fixed name.
#[allow(unused_macros)]
macro_rules! named {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl Schema for $t {
            const HASH: SchemaHash = SchemaHasher::new("prim").str($name).finish();
            fn describe(out: &mut String) { out.push_str($name); }
        }
    )*};
}

/// A type hashed as another with the same wire form.
#[allow(unused_macros)]
macro_rules! same_as {
    ($($t:ty => $as:ty),* $(,)?) => {$(
        impl Schema for $t {
            const HASH: SchemaHash = <$as as Schema>::HASH;
            const ORDERED: bool = <$as as Schema>::ORDERED;
            fn describe(out: &mut String) { <$as as Schema>::describe(out) }
        }
    )*};
}

#[cfg(feature = "uuid")]
named! { uuid::Uuid => "uuid" }

#[cfg(feature = "chrono")]
named! {
    chrono::DateTime<chrono::Utc> => "chrono::DateTime<Utc>",
    chrono::DateTime<chrono::FixedOffset> => "chrono::DateTime<FixedOffset>",
    chrono::NaiveDate => "chrono::NaiveDate",
    chrono::NaiveTime => "chrono::NaiveTime",
    chrono::NaiveDateTime => "chrono::NaiveDateTime",
    chrono::TimeDelta => "chrono::TimeDelta",
}

#[cfg(feature = "time")]
named! {
    time::OffsetDateTime => "time::OffsetDateTime",
    time::PrimitiveDateTime => "time::PrimitiveDateTime",
    time::Date => "time::Date",
    time::Time => "time::Time",
    time::Duration => "time::Duration",
}

#[cfg(feature = "url")]
named! { url::Url => "url::Url" }

#[cfg(feature = "bytes")]
named! { bytes::Bytes => "bytes", bytes::BytesMut => "bytes" }

// rust_decimal's default serde reads with `deserialize_any`, which a binary
// format like postcard cannot serve; the feature turns on its `serde-str`
// (as its own `serde-bincode` does), so a decimal is a string on every wire.
// JSON readers of the same build then take decimals only as strings.
#[cfg(feature = "rust_decimal")]
named! { rust_decimal::Decimal => "rust_decimal::Decimal" }

#[cfg(feature = "smol_str")]
same_as! { smol_str::SmolStr => String }

#[cfg(feature = "compact_str")]
same_as! { compact_str::CompactString => String }

#[cfg(feature = "indexmap")]
impl<K: Schema, V: Schema, H> Schema for indexmap::IndexMap<K, V, H> {
    const HASH: SchemaHash = <std::collections::BTreeMap<K, V> as Schema>::HASH;
    const ORDERED: bool = <std::collections::BTreeMap<K, V> as Schema>::ORDERED;
    fn describe(out: &mut String) {
        <std::collections::BTreeMap<K, V> as Schema>::describe(out)
    }
}

#[cfg(feature = "indexmap")]
impl<T: Schema, H> Schema for indexmap::IndexSet<T, H> {
    // Kept in insertion order, the same in every process that applied the
    // same actions.
    const HASH: SchemaHash = <std::collections::BTreeSet<T> as Schema>::HASH;
    const ORDERED: bool = <std::collections::BTreeSet<T> as Schema>::ORDERED;
    fn describe(out: &mut String) {
        <std::collections::BTreeSet<T> as Schema>::describe(out)
    }
}
