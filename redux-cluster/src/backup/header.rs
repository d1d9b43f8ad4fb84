//! The first 136 bytes that the snapshot file's header and the journal's
//! header share, and the checks both run on them. Pure functions over
//! bytes; no I/O.
//!
//! ```text
//! offset  size  field
//!      0     8  magic (one per kind of file)
//!      8     2  format version (u16 LE)
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
//! ```
//!
//! Each kind adds its own fields after these and ends its header with a
//! CRC-32C of everything before it.

use super::crypto::{Derived, Key, KCV_LEN, SALT_LEN};
use super::format::arr;
use super::{BackupError, Ids, KdfParams, Position};
use crate::schema::{SchemaHash, StoreId};
use std::path::Path;

/// Bytes of the shared prefix.
pub(crate) const COMMON_LEN: usize = 136;

const FLAG_ENCRYPTED: u16 = 1;

/// What tells one kind of file from another.
pub(crate) struct Kind {
    pub magic: [u8; 8],
    /// The newest version this build reads, and the one it writes.
    pub version: u16,
    /// For messages: "backup" or "journal".
    pub name: &'static str,
    /// Bytes of the whole header, its CRC-32C included.
    pub header_len: usize,
}

/// The shared fields of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Common {
    /// The format version read from the file; a header being written gets
    /// its kind's version, whatever this says.
    pub version: u16,
    pub flags: u16,
    pub kdf: KdfParams,
    pub ids: Ids,
    /// The snapshot's position; for a journal, its epoch and the seq of its
    /// first action.
    pub position: Position,
    pub salt: [u8; SALT_LEN],
    pub kcv: [u8; KCV_LEN],
}

impl Common {
    /// The fields of a file written under `key` (or in the clear).
    pub fn new(ids: Ids, position: Position, key: Option<&Derived>) -> Self {
        Self {
            version: 0,
            flags: if key.is_some() { FLAG_ENCRYPTED } else { 0 },
            kdf: key.map_or(
                KdfParams {
                    memory_kib: 0,
                    iterations: 0,
                    lanes: 0,
                },
                |k| k.params,
            ),
            ids,
            position,
            salt: key.map_or([0; SALT_LEN], |k| k.salt),
            kcv: key.map_or([0; KCV_LEN], Derived::check_value),
        }
    }

    pub fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// Writes the shared fields into the start of `h`, a header of `kind`.
    pub fn encode(&self, kind: &Kind, h: &mut [u8]) {
        h[0..8].copy_from_slice(&kind.magic);
        h[8..10].copy_from_slice(&kind.version.to_le_bytes());
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
    }

    /// Decodes the shared fields of the header of `kind` at the start of
    /// `file` (the whole file, so that a short one is reported as truncated
    /// with its length), checking in this order: magic, version, length,
    /// the header's CRC, flags. Returns them and the header's bytes.
    pub fn decode<'a>(
        file: &'a [u8],
        path: &Path,
        kind: &Kind,
    ) -> Result<(Self, &'a [u8]), BackupError> {
        let magic_len = file.len().min(kind.magic.len());
        if file[..magic_len] != kind.magic[..magic_len] {
            return Err(BackupError::NotABackup {
                path: path.into(),
                kind: kind.name,
            });
        }
        let version = (file.len() >= 10).then(|| u16::from_le_bytes([file[8], file[9]]));
        if let Some(found) = version.filter(|v| *v > kind.version) {
            return Err(BackupError::NewerFormat {
                path: path.into(),
                found,
                supported: kind.version,
            });
        }
        if file.len() < kind.header_len {
            return Err(BackupError::Truncated {
                path: path.into(),
                expected: kind.header_len as u64,
                found: file.len() as u64,
            });
        }
        let h = &file[..kind.header_len];
        let crc_at = kind.header_len - 4;
        if crc32c::crc32c(&h[..crc_at]) != u32::from_le_bytes(arr(&h[crc_at..])) {
            return Err(BackupError::corrupt(
                path,
                format!("{} header checksum mismatch", kind.name),
            ));
        }
        if version == Some(0) {
            return Err(BackupError::corrupt(path, "format version 0"));
        }
        let flags = u16::from_le_bytes(arr(&h[10..12]));
        if flags & !FLAG_ENCRYPTED != 0 {
            return Err(BackupError::corrupt(
                path,
                format!("unknown flags {flags:#06x}"),
            ));
        }
        let common = Self {
            version: version.unwrap_or(0),
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
        };
        Ok((common, h))
    }

    /// The key this file needs, derived from `key`: `None` for a file in
    /// the clear. A key for a clear file, no key for an encrypted one,
    /// implausible KDF parameters and a wrong key are each their own error.
    pub fn key_for(&self, key: Option<&Key>, path: &Path) -> Result<Option<Derived>, BackupError> {
        match (self.encrypted(), key) {
            (false, None) => Ok(None),
            (false, Some(_)) => Err(BackupError::NotEncrypted { path: path.into() }),
            (true, None) => Err(BackupError::KeyRequired { path: path.into() }),
            (true, Some(key)) => {
                self.kdf
                    .check_read()
                    .map_err(|reason| BackupError::corrupt(path, reason))?;
                let d = key.derive(self.salt, self.kdf)?;
                if d.check_value() != self.kcv {
                    return Err(BackupError::WrongKey { path: path.into() });
                }
                Ok(Some(d))
            }
        }
    }
}

/// Writes the CRC-32C of everything before the last 4 bytes of `h` into
/// them.
pub(crate) fn seal(h: &mut [u8]) {
    let crc_at = h.len() - 4;
    let crc = crc32c::crc32c(&h[..crc_at]);
    h[crc_at..].copy_from_slice(&crc.to_le_bytes());
}
