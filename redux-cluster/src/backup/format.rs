//! The snapshot file format: a fixed header, the body, and (unencrypted) a
//! SHA-256 trailer. Pure functions over bytes; no I/O.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "RCBACKUP"
//!      8     2  format version (u16 LE, now 2: the body holds the
//!                 dispatch sessions before the state, see persist.rs)
//!     10     2  flags (u16 LE; bit 0: encrypted)
//!     12     4  Argon2id memory, KiB   (u32 LE; 0 when not encrypted)
//!     16     4  Argon2id passes        (u32 LE)
//!     20     4  Argon2id lanes         (u32 LE)
//!     24    32  schema hash
//!     56    32  store id
//!     88     8  epoch (u64 LE)
//!     96     8  seq   (u64 LE)
//!    104    16  KDF salt              (zeros when not encrypted)
//!    120    16  key check value       (zeros when not encrypted)
//!    136    12  AES-GCM nonce         (zeros when not encrypted)
//!    148     8  body length (u64 LE)
//!    156     4  CRC-32C of bytes 0..156
//!    160        body: the postcard state, or its ciphertext followed by the
//!               16-byte GCM tag (associated data: the whole 160-byte header)
//!      …    32  unencrypted only: SHA-256 of header and body
//! ```
//!
//! The header has its own checksum so that a damaged header is reported as
//! damage, not as a wrong key or a foreign schema. The key check value (see
//! `crypto.rs`) tells a wrong password from a tampered body.

use super::crypto::{Derived, Key, NONCE_LEN, TAG_LEN};
use super::header::{seal, Common, Kind, COMMON_LEN};
use super::{BackupError, Ids, Position};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The first bytes of every backup file.
pub(crate) const MAGIC: [u8; 8] = *b"RCBACKUP";
/// The newest snapshot format version this build reads and the one it
/// writes (1: the body is the state; 2: the dispatch sessions, then the
/// state; 3: the schema's readable description, then as 2 — so a build
/// whose schema differs can say where; 4: as 3, the sessions with the
/// actions the validator rejected).
pub const FORMAT_VERSION: u16 = 4;
/// Bytes of the snapshot header.
pub const HEADER_LEN: usize = 160;
/// Bytes of the SHA-256 trailer of an unencrypted file.
pub(crate) const CHECKSUM_LEN: usize = 32;

/// The most AES-GCM encrypts under one nonce (2^36 bytes less 32 in the
/// spec; the `aes-gcm` crate allows 2^36).
pub(crate) const MAX_ENCRYPTED: u64 = (1 << 36) - 32;

/// What marks a snapshot file.
const KIND: Kind = Kind {
    magic: MAGIC,
    version: FORMAT_VERSION,
    name: "backup",
    header_len: HEADER_LEN,
};

/// A decoded snapshot header: the fields it shares with the journal's, then
/// the nonce and the body length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub common: Common,
    pub nonce: [u8; NONCE_LEN],
    pub body_len: u64,
}

impl Header {
    pub fn encrypted(&self) -> bool {
        self.common.encrypted()
    }

    /// The length of the whole file this header announces.
    pub fn file_len(&self) -> Option<u64> {
        let trailer = if self.encrypted() {
            0
        } else {
            CHECKSUM_LEN as u64
        };
        (HEADER_LEN as u64)
            .checked_add(self.body_len)?
            .checked_add(trailer)
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        self.common.encode(&KIND, &mut h);
        h[COMMON_LEN..COMMON_LEN + 12].copy_from_slice(&self.nonce);
        h[148..156].copy_from_slice(&self.body_len.to_le_bytes());
        seal(&mut h);
        h
    }

    /// Decodes the header at the start of `file` (the whole file, so that a
    /// short one is reported as truncated with its length).
    pub fn decode(file: &[u8], path: &Path) -> Result<Header, BackupError> {
        let (common, h) = Common::decode(file, path, &KIND)?;
        let header = Header {
            common,
            nonce: arr(&h[COMMON_LEN..COMMON_LEN + 12]),
            body_len: u64::from_le_bytes(arr(&h[148..156])),
        };
        if header.encrypted() && header.body_len < TAG_LEN as u64 {
            return Err(BackupError::corrupt(
                path,
                format!(
                    "encrypted body of {} bytes is shorter than its tag",
                    header.body_len
                ),
            ));
        }
        Ok(header)
    }
}

/// Copies a slice whose length the caller has fixed into an array.
pub(crate) fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&s[..N]);
    a
}

/// A snapshot ready to be written: the parts in file order.
pub(crate) struct Encoded<'a> {
    pub header: [u8; HEADER_LEN],
    pub body: std::borrow::Cow<'a, [u8]>,
    pub trailer: Option<[u8; CHECKSUM_LEN]>,
}

impl Encoded<'_> {
    /// The parts, to be written one after the other.
    pub fn parts(&self) -> [&[u8]; 3] {
        [
            &self.header,
            &self.body,
            self.trailer.as_ref().map_or(&[][..], |t| &t[..]),
        ]
    }
}

/// Encodes a snapshot of `state` at `position`; encrypted under `key` (with
/// `nonce`, which must never be used twice with that key) if there is one.
pub(crate) fn encode<'a>(
    ids: Ids,
    position: Position,
    state: &'a [u8],
    key: Option<(&Derived, [u8; NONCE_LEN])>,
) -> Result<Encoded<'a>, BackupError> {
    match key {
        None => {
            let header = Header {
                common: Common::new(ids, position, None),
                nonce: [0; NONCE_LEN],
                body_len: state.len() as u64,
            }
            .encode();
            let mut sha = Sha256::new();
            sha.update(header);
            sha.update(state);
            Ok(Encoded {
                header,
                body: state.into(),
                trailer: Some(sha.finalize().into()),
            })
        }
        Some((key, nonce)) => {
            let header = Header {
                common: Common::new(ids, position, Some(key)),
                nonce,
                body_len: state.len() as u64 + TAG_LEN as u64,
            }
            .encode();
            let mut body = Vec::with_capacity(state.len() + TAG_LEN);
            body.extend_from_slice(state);
            let tag = key
                .seal(&nonce, &header, &mut body)
                .map_err(|_| BackupError::TooLarge {
                    what: "encrypted state",
                    len: state.len() as u64,
                    max: MAX_ENCRYPTED,
                })?;
            body.extend_from_slice(&tag);
            Ok(Encoded {
                header,
                body: body.into(),
                trailer: None,
            })
        }
    }
}

/// Decodes a whole snapshot file, checking in this order: magic, version,
/// length, header checksum, ids, the body's checksum or (encrypted) the key
/// and then the tag. Returns the position, the state bytes and whether the
/// file was encrypted.
pub(crate) fn decode(
    file: Vec<u8>,
    ids: &Ids,
    key: Option<&Key>,
    path: &Path,
) -> Result<(Position, Vec<u8>, bool, u16), BackupError> {
    decode_lineage(file, ids, &[], key, path).map(|(p, s, e, v, _)| (p, s, e, v))
}

/// [`decode`], also accepting a file of one of the store's earlier
/// versions (`older`); returns the ids the file holds as well.
pub(crate) fn decode_lineage(
    file: Vec<u8>,
    ids: &Ids,
    older: &[Ids],
    key: Option<&Key>,
    path: &Path,
) -> Result<(Position, Vec<u8>, bool, u16, Ids), BackupError> {
    decode_checked(
        file,
        |found| ids.check_lineage(older, found, path),
        key,
        path,
    )
}

/// Decodes a snapshot file of any store, checking everything but which
/// store it is: to read what a file of another schema says of itself.
pub(crate) fn decode_any_store(
    file: Vec<u8>,
    key: Option<&Key>,
    path: &Path,
) -> Result<(Position, Vec<u8>, bool, u16, Ids), BackupError> {
    decode_checked(file, |found| Ok(*found), key, path)
}

fn decode_checked(
    mut file: Vec<u8>,
    check: impl FnOnce(&Ids) -> Result<Ids, BackupError>,
    key: Option<&Key>,
    path: &Path,
) -> Result<(Position, Vec<u8>, bool, u16, Ids), BackupError> {
    let header = Header::decode(&file, path)?;
    let expected = header
        .file_len()
        .ok_or_else(|| BackupError::corrupt(path, "body length out of range"))?;
    let found = file.len() as u64;
    if found < expected {
        return Err(BackupError::Truncated {
            path: path.into(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(BackupError::corrupt(
            path,
            format!("{} bytes after the end of the body", found - expected),
        ));
    }
    let found = check(&header.common.ids)?;
    // `found == expected` fits in memory, so the body length fits a usize.
    let body_end = HEADER_LEN + header.body_len as usize;
    let position = header.common.position;
    let version = header.common.version;
    match header.common.key_for(key, path)? {
        None => {
            let mut sha = Sha256::new();
            sha.update(&file[..body_end]);
            if sha.finalize()[..] != file[body_end..] {
                return Err(BackupError::corrupt(
                    path,
                    "checksum mismatch: the body was damaged or altered",
                ));
            }
            file.truncate(body_end);
            file.drain(..HEADER_LEN);
            Ok((position, file, false, version, found))
        }
        Some(derived) => {
            let tag: [u8; TAG_LEN] = arr(&file[body_end - TAG_LEN..body_end]);
            let (head, rest) = file.split_at_mut(HEADER_LEN);
            let ciphertext = &mut rest[..header.body_len as usize - TAG_LEN];
            derived
                .open(&header.nonce, head, ciphertext, &tag)
                .map_err(|()| {
                    BackupError::corrupt(
                        path,
                        "authentication failed: the body was damaged or altered",
                    )
                })?;
            file.truncate(body_end - TAG_LEN);
            file.drain(..HEADER_LEN);
            Ok((position, file, true, version, found))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::KdfParams;
    use crate::schema::{SchemaHash, StoreId};
    use std::path::PathBuf;

    fn ids() -> Ids {
        Ids {
            schema: SchemaHash([1; 32]),
            store: StoreId([2; 32]),
        }
    }

    fn join(e: &Encoded<'_>) -> Vec<u8> {
        e.parts().concat()
    }

    fn path() -> PathBuf {
        PathBuf::from("test.backup")
    }

    const POS: Position = Position { epoch: 5, seq: 9 };

    #[test]
    fn header_round_trip() {
        let e = encode(ids(), POS, b"state", None).unwrap();
        let h = Header::decode(&e.header, &path()).unwrap();
        assert_eq!(h.common.position, POS);
        assert_eq!(h.common.ids, ids());
        assert_eq!(h.body_len, 5);
        assert!(!h.encrypted());
        assert_eq!(h.encode(), e.header);
    }

    #[test]
    fn plain_round_trip() {
        let e = encode(ids(), POS, b"state", None).unwrap();
        let file = join(&e);
        assert_eq!(file.len(), HEADER_LEN + 5 + CHECKSUM_LEN);
        let (pos, state, enc, _) = decode(file, &ids(), None, &path()).unwrap();
        assert_eq!((pos, state.as_slice(), enc), (POS, &b"state"[..], false));
    }

    #[test]
    fn encrypted_round_trip_and_layout() {
        let key = Key::with_params("pw", KdfParams::fast_for_tests());
        let d = key.for_writing().unwrap();
        let e = encode(ids(), POS, b"secret state", Some((&d, [7; NONCE_LEN]))).unwrap();
        let file = join(&e);
        assert_eq!(file.len(), HEADER_LEN + 12 + TAG_LEN);
        assert!(
            !file.windows(6).any(|w| w == b"secret"),
            "the state is encrypted"
        );
        let (pos, state, enc, _) = decode(file, &ids(), Some(&key), &path()).unwrap();
        assert_eq!(
            (pos, state.as_slice(), enc),
            (POS, &b"secret state"[..], true)
        );
    }

    #[test]
    fn every_header_byte_is_covered() {
        let e = encode(ids(), POS, b"state", None).unwrap();
        for i in 8..HEADER_LEN {
            let mut f = join(&e);
            f[i] ^= 0x40;
            let err = decode(f, &ids(), None, &path()).unwrap_err();
            assert!(
                matches!(
                    err,
                    BackupError::Corrupt { .. } | BackupError::NewerFormat { .. }
                ),
                "byte {i}: {err}"
            );
        }
    }

    #[test]
    fn empty_and_short_files() {
        for n in 0..HEADER_LEN {
            let e = encode(ids(), POS, b"", None).unwrap();
            let err = decode(join(&e)[..n].to_vec(), &ids(), None, &path()).unwrap_err();
            assert!(matches!(err, BackupError::Truncated { .. }), "{n}: {err}");
        }
        let err = decode(b"{\"json\":1}".to_vec(), &ids(), None, &path()).unwrap_err();
        assert!(matches!(err, BackupError::NotABackup { .. }), "{err}");
    }
}
