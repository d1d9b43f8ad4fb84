//! Persistence: crash-safe snapshot files and an append-only action journal.
//!
//! Two files, each with its own handle:
//! - [`BackupFile`]: the whole state at one `(epoch, seq)`, written to a
//!   temp file, fsynced, renamed over the old one, and the directory
//!   fsynced, so a crash at any moment leaves either the old file or the new
//!   one. Optionally encrypted with AES-256-GCM under a key derived from a
//!   password with Argon2id (see [`Key`]).
//! - [`Journal`]: batches of actions appended after the last snapshot, one
//!   `write` and one `fdatasync` per batch (group commit). A torn last record
//!   is found by its checksum and cut off when the journal is opened;
//!   damage anywhere else is an error, never a silent loss.
//!
//! Both handles hold an advisory lock on `<path>.lock` for as long as they
//! live, so a second process (or a master and a worker given the same path)
//! gets [`BackupError::Locked`] instead of two writers racing.
//!
//! Every call here blocks: file I/O, `fsync`, and with a key one Argon2id
//! derivation per file salt (46 MiB, 2 passes: ~60-80 ms, see
//! [`KdfParams::DEFAULT`]). Call it from `tokio::task::spawn_blocking` or a
//! thread of its own, never from an async task.
//!
//! ```
//! use redux_cluster::backup::{BackupFile, Ids, Key, KdfParams, Position};
//! use redux_cluster::{SchemaHash, StoreId};
//!
//! let dir = std::env::temp_dir().join(format!("rc-backup-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let ids = Ids { schema: SchemaHash([1; 32]), store: StoreId([2; 32]) };
//! let key = Key::with_params("hunter2", KdfParams::fast_for_tests());
//!
//! let mut file = BackupFile::open(dir.join("store.backup"), ids, Some(key))?;
//! assert!(file.load()?.is_none()); // nothing written yet
//! file.write(Position { epoch: 7, seq: 42 }, b"postcard state bytes")?;
//! let snapshot = file.load()?.ok_or("just written")?;
//! assert_eq!(snapshot.position, Position { epoch: 7, seq: 42 });
//! assert_eq!(snapshot.state, b"postcard state bytes");
//! # drop(file);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `format.rs`: the snapshot file's header and its encoding, no I/O.
//! - `crypto.rs`: Argon2id key derivation and AES-256-GCM.
//! - `file.rs`: [`BackupFile`], atomic replace, the lock, and read.
//! - `header.rs`: the header fields both files share, and their checks
//!   (magic, version, checksum, flags, key).
//! - `journal.rs`: [`Journal`], records, group commit, replay, compaction.

mod crypto;
mod file;
pub(crate) mod format;
pub(crate) mod header;
pub(crate) mod journal;

pub use crypto::{KdfParams, Key};
// The file formats themselves: public for the tests and tools, not a
// promise; a store's backup is configured through `BackupConfig`.
pub(crate) use file::sibling;
#[doc(hidden)]
pub use file::{BackupFile, Snapshot};
pub(crate) use format::decode_any_store;
#[doc(hidden)]
pub use format::{FORMAT_VERSION, HEADER_LEN};
#[doc(hidden)]
pub use journal::{Journal, Record, Replay, JOURNAL_VERSION};

use crate::schema::{SchemaHash, StoreId};
use std::io;
use std::path::PathBuf;

/// Which store a file belongs to: checked on every read, so a file written
/// by another store or another schema is refused by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// The schema hash of the state and action types.
    pub schema: SchemaHash,
    /// The store identity.
    pub store: StoreId,
}

impl Ids {
    /// The ids of store type `S`.
    pub fn of<S: crate::Reducer>() -> Self {
        Self {
            schema: S::SCHEMA,
            store: S::ID,
        }
    }

    /// Checks that a file's ids (`found`, read from `path`) are these or
    /// those of one of the store's earlier versions (`older`); returns the
    /// ones found.
    ///
    /// # Errors
    /// As [`Ids::check`], against these ids, when none matches.
    pub fn check_lineage(
        &self,
        older: &[Ids],
        found: &Ids,
        path: &std::path::Path,
    ) -> Result<Ids, BackupError> {
        if older.contains(found) {
            return Ok(*found);
        }
        self.check(found, path).map(|()| *found)
    }

    /// Checks that a file's ids (`found`, read from `path`) are these.
    ///
    /// # Errors
    /// [`BackupError::SchemaMismatch`] or [`BackupError::StoreMismatch`].
    pub fn check(&self, found: &Ids, path: &std::path::Path) -> Result<(), BackupError> {
        if found.schema != self.schema {
            return Err(BackupError::SchemaMismatch {
                path: path.into(),
                found: found.schema,
                expected: self.schema,
                difference: String::new(),
            });
        }
        if found.store != self.store {
            return Err(BackupError::StoreMismatch {
                path: path.into(),
                found: found.store,
                expected: self.store,
            });
        }
        Ok(())
    }
}

pub use crate::protocol::Position;

/// A backup or journal file could not be written or read.
///
/// Every variant names the file. A load that fails never falls back to a
/// fresh state: the caller decides what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file system operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("open", "write", "fsync", "rename", ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another handle in this process) holds the file's
    /// lock, still after a grace period of 250 ms (which covers a lock
    /// briefly held by a child that this process was forking).
    #[error("{} is locked by another process{}; each store (and each of master and worker) needs a backup path of its own", path.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The file that is locked.
        path: PathBuf,
        /// The pid the holder wrote into the lock file, if readable.
        holder: Option<u32>,
    },
    /// The file does not start with the magic bytes of this kind of file.
    #[error("{} is not a redux-cluster {kind} file (bad magic bytes)", path.display())]
    NotABackup {
        /// The file.
        path: PathBuf,
        /// "backup" or "journal".
        kind: &'static str,
    },
    /// The file was written by a newer version of this crate.
    #[error("{} has format version {found}, newer than the {supported} this build reads; upgrade redux-cluster", path.display())]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// The file ends before its header says it should.
    #[error("{} is truncated: {found} of {expected} bytes", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file's bytes are damaged or were altered: a checksum or an
    /// authentication tag does not match, or a field is out of range.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// The file holds a store of another schema.
    #[error("{} holds a store with schema hash {found}, but this build's schema hash is {expected}{difference}", path.display())]
    SchemaMismatch {
        /// The file.
        path: PathBuf,
        /// The schema hash in the file.
        found: SchemaHash,
        /// This build's schema hash.
        expected: SchemaHash,
        /// Where the two schemas first differ (`; first difference: …`),
        /// when the file describes its schema (format 3); else empty.
        difference: String,
    },
    /// The file holds another store (same schema, another name).
    #[error("{} holds store {found}, not store {expected}", path.display())]
    StoreMismatch {
        /// The file.
        path: PathBuf,
        /// The store id in the file.
        found: StoreId,
        /// The store id expected.
        expected: StoreId,
    },
    /// The file is encrypted and the key given is not the one it was
    /// written with.
    #[error("wrong key for {}: the file was encrypted with another password", path.display())]
    WrongKey {
        /// The file.
        path: PathBuf,
    },
    /// The file is encrypted and no key was given.
    #[error("{} is encrypted; a key is needed to read it", path.display())]
    KeyRequired {
        /// The file.
        path: PathBuf,
    },
    /// A key was given but the file is not encrypted. Refused because an
    /// unencrypted file carries no authentication: anyone could have written
    /// it. Load it once without a key to migrate.
    #[error("{} is not encrypted but a key was given; load it once without a key to migrate it", path.display())]
    NotEncrypted {
        /// The file.
        path: PathBuf,
    },
    /// A backup was found but the store has already applied actions, so
    /// loading it would throw them away.
    #[error("the store has already applied {seq} actions; start the backup before dispatching")]
    NotFresh {
        /// Actions applied so far.
        seq: u64,
    },
    /// The backup task has stopped (the store shut down, or a write failed
    /// and was reported through the error hook).
    #[error("the backup task has stopped")]
    Stopped,
    /// The key derivation parameters are invalid.
    #[error("invalid key derivation parameters: {0}")]
    Kdf(String),
    /// A journal append does not continue the journal's sequence.
    #[error("journal {} expects a record starting at seq {expected}, got {found}", path.display())]
    OutOfOrder {
        /// The journal.
        path: PathBuf,
        /// The next seq the journal expects.
        expected: u64,
        /// The first seq of the record given.
        found: u64,
    },
    /// A state or journal record is larger than the format allows.
    #[error("{what} of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its length.
        len: u64,
        /// The maximum.
        max: u64,
    },
    /// A journal append was given a record that cannot be written (for
    /// example, one that holds no action).
    #[error("invalid journal record: {0}")]
    InvalidRecord(&'static str),
    /// An earlier append failed and the journal could not be cut back to
    /// its last good record; it refuses further appends until reopened.
    #[error("journal {} is unusable after a failed write; reopen it to recover", path.display())]
    Poisoned {
        /// The journal.
        path: PathBuf,
    },
}

impl BackupError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        BackupError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        BackupError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
