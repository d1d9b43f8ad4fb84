//! The serializers: postcard, appending into a caller's buffer.
//!
//! postcard's own `to_extend` consumes its buffer and loses it on error;
//! here an error leaves the buffer as it was, which is what the action ring
//! and the dispatch queue need.

use serde::{de::DeserializeOwned, Serialize};

struct Append<'a> {
    buf: &'a mut Vec<u8>,
}

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.buf.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends the postcard form of `value` to `buf`; on error `buf` is
/// unchanged.
///
/// # Errors
/// When serde refuses the value (postcard encodes every serde data model
/// type, so in practice a user `Serialize` impl returning an error).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> postcard::Result<()> {
    let before = buf.len();
    let res = postcard::serialize_with_flavor(value, Append { buf: &mut *buf });
    if res.is_err() {
        buf.truncate(before);
    }
    res
}

/// The postcard form of `value`.
///
/// # Errors
/// As [`encode_into`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> postcard::Result<Vec<u8>> {
    let mut v = Vec::new();
    encode_into(value, &mut v)?;
    Ok(v)
}

/// Decodes a whole buffer; trailing bytes are an error.
///
/// # Errors
/// Malformed or trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> postcard::Result<T> {
    let (v, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(v)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

/// Decodes `count` values packed back to back, with the byte range of each.
///
/// # Errors
/// Malformed bytes, fewer values than `count`, or trailing bytes.
pub fn decode_packed<T: DeserializeOwned>(
    count: u32,
    packed: &[u8],
) -> postcard::Result<Vec<(T, std::ops::Range<usize>)>> {
    let mut out = Vec::with_capacity((count as usize).min(packed.len()));
    let mut rest = packed;
    for _ in 0..count {
        let start = packed.len() - rest.len();
        let (v, r) = postcard::take_from_bytes::<T>(rest)?;
        rest = r;
        out.push((v, start..packed.len() - rest.len()));
    }
    if rest.is_empty() {
        Ok(out)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}
