//! The snapshot file format: a fixed header, the body, and (unencrypted) a
//! SHA-256 trailer. Pure functions over bytes; no I/O.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "RCBACKUP"
//!      8     2  format version (u16 LE, now 1)
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

use super::crypto::{Derived, Key, KCV_LEN, NONCE_LEN, SALT_LEN, TAG_LEN};
use super::{BackupError, Ids, KdfParams, Position};
use crate::schema::{SchemaHash, StoreId};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The first bytes of every backup file.
pub(crate) const MAGIC: [u8; 8] = *b"RCBACKUP";
/// The newest snapshot format version this build reads and the one it
/// writes.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the snapshot header.
pub const HEADER_LEN: usize = 160;
/// Bytes of the SHA-256 trailer of an unencrypted file.
pub(crate) const CHECKSUM_LEN: usize = 32;

/// The most AES-GCM encrypts under one nonce (2^36 bytes less 32 in the
/// spec; the `aes-gcm` crate allows 2^36).
pub(crate) const MAX_ENCRYPTED: u64 = (1 << 36) - 32;

const FLAG_ENCRYPTED: u16 = 1;
const CRC_AT: usize = 156;

/// A decoded snapshot header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub flags: u16,
    pub kdf: KdfParams,
    pub ids: Ids,
    pub position: Position,
    pub salt: [u8; SALT_LEN],
    pub kcv: [u8; KCV_LEN],
    pub nonce: [u8; NONCE_LEN],
    pub body_len: u64,
}

impl Header {
    pub fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
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
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[10..12].copy_from_slice(&self.flags.to_le_bytes());
        h[12..16].copy_from_slice(&self.kdf.memory_kib.to_le_bytes());
        h[16..20].copy_from_slice(&self.kdf.iterations.to_le_bytes());
        h[20..24].copy_from_slice(&self.kdf.lanes.to_le_bytes());
        h[24..56].copy_from_slice(&self.ids.schema.0);
        h[56..88].copy_from_slice(&self.ids.store.0);
        h[88..96].copy_from_slice(&self.position.epoch.to_le_bytes());
        h[96..104].copy_from_slice(&self.position.seq.to_le_bytes());
        h[104..120].copy_from_slice(&self.salt);
        h[120..136].copy_from_slice(&self.kcv);
        h[136..148].copy_from_slice(&self.nonce);
        h[148..156].copy_from_slice(&self.body_len.to_le_bytes());
        let crc = crc32c::crc32c(&h[..CRC_AT]);
        h[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes the header at the start of `file` (the whole file, so that a
    /// short one is reported as truncated with its length).
    pub fn decode(file: &[u8], path: &Path) -> Result<Header, BackupError> {
        let found = file.len() as u64;
        let truncated = |expected: u64| BackupError::Truncated {
            path: path.into(),
            expected,
            found,
        };
        let magic_len = file.len().min(MAGIC.len());
        if file[..magic_len] != MAGIC[..magic_len] {
            return Err(BackupError::NotABackup {
                path: path.into(),
                kind: "backup",
            });
        }
        if file.len() < 10 {
            return Err(truncated(HEADER_LEN as u64));
        }
        let version = u16::from_le_bytes([file[8], file[9]]);
        if version > FORMAT_VERSION {
            return Err(BackupError::NewerFormat {
                path: path.into(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if file.len() < HEADER_LEN {
            return Err(truncated(HEADER_LEN as u64));
        }
        let h = &file[..HEADER_LEN];
        let crc = u32::from_le_bytes(arr(&h[CRC_AT..]));
        if crc32c::crc32c(&h[..CRC_AT]) != crc {
            return Err(BackupError::corrupt(path, "header checksum mismatch"));
        }
        if version == 0 {
            return Err(BackupError::corrupt(path, "format version 0"));
        }
        let flags = u16::from_le_bytes(arr(&h[10..12]));
        if flags & !FLAG_ENCRYPTED != 0 {
            return Err(BackupError::corrupt(
                path,
                format!("unknown flags {flags:#06x}"),
            ));
        }
        let header = Header {
            flags,
            kdf: KdfParams {
                memory_kib: u32::from_le_bytes(arr(&h[12..16])),
                iterations: u32::from_le_bytes(arr(&h[16..20])),
                lanes: u32::from_le_bytes(arr(&h[20..24])),
            },
            ids: Ids {
                schema: SchemaHash(arr(&h[24..56])),
                store: StoreId(arr(&h[56..88])),
            },
            position: Position {
                epoch: u64::from_le_bytes(arr(&h[88..96])),
                seq: u64::from_le_bytes(arr(&h[96..104])),
            },
            salt: arr(&h[104..120]),
            kcv: arr(&h[120..136]),
            nonce: arr(&h[136..148]),
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
    let mut header = Header {
        flags: 0,
        kdf: KdfParams {
            memory_kib: 0,
            iterations: 0,
            lanes: 0,
        },
        ids,
        position,
        salt: [0; SALT_LEN],
        kcv: [0; KCV_LEN],
        nonce: [0; NONCE_LEN],
        body_len: state.len() as u64,
    };
    match key {
        None => {
            let header = header.encode();
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
            header.flags = FLAG_ENCRYPTED;
            header.kdf = key.params;
            header.salt = key.salt;
            header.kcv = key.check_value();
            header.nonce = nonce;
            header.body_len = state.len() as u64 + TAG_LEN as u64;
            let header = header.encode();
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
    mut file: Vec<u8>,
    ids: &Ids,
    key: Option<&Key>,
    path: &Path,
) -> Result<(Position, Vec<u8>, bool), BackupError> {
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
    ids.check(&header.ids, path)?;
    // `found == expected` fits in memory, so the body length fits a usize.
    let body_end = HEADER_LEN + header.body_len as usize;
    match (header.encrypted(), key) {
        (false, Some(_)) => Err(BackupError::NotEncrypted { path: path.into() }),
        (true, None) => Err(BackupError::KeyRequired { path: path.into() }),
        (false, None) => {
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
            Ok((header.position, file, false))
        }
        (true, Some(key)) => {
            header
                .kdf
                .check_read()
                .map_err(|reason| BackupError::corrupt(path, reason))?;
            let derived = key.derive(header.salt, header.kdf)?;
            if derived.check_value() != header.kcv {
                return Err(BackupError::WrongKey { path: path.into() });
            }
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
            Ok((header.position, file, true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(h.position, POS);
        assert_eq!(h.ids, ids());
        assert_eq!(h.body_len, 5);
        assert!(!h.encrypted());
        assert_eq!(h.encode(), e.header);
    }

    #[test]
    fn plain_round_trip() {
        let e = encode(ids(), POS, b"state", None).unwrap();
        let file = join(&e);
        assert_eq!(file.len(), HEADER_LEN + 5 + CHECKSUM_LEN);
        let (pos, state, enc) = decode(file, &ids(), None, &path()).unwrap();
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
        let (pos, state, enc) = decode(file, &ids(), Some(&key), &path()).unwrap();
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
