//! The snapshot file on disk: atomic replace, an advisory lock, and read.
//!
//! A write goes to `<path>.tmp` in the same directory, is fsynced, renamed
//! over `<path>`, and then the directory is fsynced so that the rename itself
//! survives a power cut. `rename` replaces the name atomically, so a reader
//! (or a process restarted after a crash at any instant) finds either the
//! whole old file or the whole new one, never a mix. A leftover `.tmp` from a
//! crash is simply overwritten by the next write.

use super::crypto::{self, Key, NONCE_LEN};
use super::format;
use super::{BackupError, Ids, Position};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A state read back from a backup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Where in the master's history the state stands.
    pub position: Position,
    /// The state, as the postcard bytes that were written.
    pub state: Vec<u8>,
    /// Whether the file was encrypted.
    pub encrypted: bool,
    /// The file's format version (1: the body is the state alone; 2: the
    /// dispatch sessions, then the state).
    pub version: u16,
    /// The ids in the file: this store's, or an earlier version's.
    pub ids: Ids,
}

/// A backup file, locked for writing by this handle for as long as it lives.
///
/// All methods block (file I/O, fsync, and with a key a first Argon2
/// derivation): call them from `tokio::task::spawn_blocking`.
#[derive(Debug)]
pub struct BackupFile {
    path: PathBuf,
    tmp: PathBuf,
    ids: Ids,
    /// The ids of the store's earlier versions, whose files it also reads.
    older: Vec<Ids>,
    key: Option<Key>,
    _lock: Lock,
}

impl BackupFile {
    /// Takes the lock on the backup at `path` (the file itself need not
    /// exist; its directory must). Encrypts with `key` if there is one.
    ///
    /// # Errors
    /// [`BackupError::Locked`] if another process or handle holds the lock;
    /// [`BackupError::Io`] if the lock file cannot be created.
    pub fn open(path: impl Into<PathBuf>, ids: Ids, key: Option<Key>) -> Result<Self, BackupError> {
        let path = path.into();
        let lock = Lock::acquire(&path)?;
        Ok(Self {
            tmp: sibling(&path, ".tmp"),
            path,
            ids,
            older: Vec::new(),
            key,
            _lock: lock,
        })
    }

    /// Also reads files written by the store's earlier versions.
    pub fn reading_older(mut self, older: Vec<Ids>) -> Self {
        self.older = older;
        self
    }

    /// The backup's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the backup; `Ok(None)` only if there is no file at all.
    ///
    /// # Errors
    /// See [`BackupFile::read`].
    pub fn load(&self) -> Result<Option<Snapshot>, BackupError> {
        Self::read_lineage(&self.path, &self.ids, &self.older, self.key.as_ref())
    }

    /// Replaces the backup with `state` at `position`, atomically and
    /// durably: when this returns `Ok`, the new file survives a crash; if it
    /// fails or the process dies inside it, the file is the old one or (if
    /// only the final directory fsync failed) the new one, whole either way.
    ///
    /// # Errors
    /// [`BackupError::Io`] naming the step that failed; [`BackupError::Kdf`]
    /// if the key's parameters are invalid; [`BackupError::TooLarge`] for an
    /// encrypted state of 64 GiB or more.
    pub fn write(&mut self, position: Position, state: &[u8]) -> Result<(), BackupError> {
        let derived = self.key.as_ref().map(Key::for_writing).transpose()?;
        let encoded = match &derived {
            Some(d) => {
                let mut nonce = [0u8; NONCE_LEN];
                crypto::random(&mut nonce)?;
                format::encode(self.ids, position, state, Some((d, nonce)))?
            }
            None => format::encode(self.ids, position, state, None)?,
        };
        replace(&self.path, &self.tmp, &encoded.parts())
    }

    /// Reads the backup at `path` without taking its lock (a writer replaces
    /// the file atomically, so a reader never sees half of one).
    /// `Ok(None)` only if there is no file at all.
    ///
    /// # Errors
    /// One variant per cause: [`BackupError::NotABackup`],
    /// [`BackupError::NewerFormat`], [`BackupError::Truncated`],
    /// [`BackupError::Corrupt`], [`BackupError::SchemaMismatch`],
    /// [`BackupError::StoreMismatch`], [`BackupError::KeyRequired`],
    /// [`BackupError::NotEncrypted`], [`BackupError::WrongKey`],
    /// [`BackupError::Io`].
    pub fn read(
        path: &Path,
        ids: &Ids,
        key: Option<&Key>,
    ) -> Result<Option<Snapshot>, BackupError> {
        Self::read_lineage(path, ids, &[], key)
    }

    /// [`read`](Self::read), also accepting a file written by one of the
    /// store's earlier versions (`older`).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_lineage(
        path: &Path,
        ids: &Ids,
        older: &[Ids],
        key: Option<&Key>,
    ) -> Result<Option<Snapshot>, BackupError> {
        let bytes = match read_all(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BackupError::io(path, "read", e)),
        };
        let (position, state, encrypted, version, ids) =
            format::decode_lineage(bytes, ids, older, key, path)?;
        Ok(Some(Snapshot {
            position,
            state,
            encrypted,
            version,
            ids,
        }))
    }
}

fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut buf = Vec::with_capacity(f.metadata().map_or(0, |m| m.len() as usize));
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes `parts` to `tmp`, fsyncs it, renames it over `path`, and fsyncs
/// the directory. On failure `tmp` is removed and `path` is untouched.
pub(crate) fn replace(path: &Path, tmp: &Path, parts: &[&[u8]]) -> Result<(), BackupError> {
    replace_with(path, tmp, |f| {
        for part in parts {
            f.write_all(part)
                .map_err(|e| BackupError::io(tmp, "write", e))?;
        }
        Ok(())
    })
}

/// Like [`replace`], with the content written by `fill`.
pub(crate) fn replace_with(
    path: &Path,
    tmp: &Path,
    fill: impl FnOnce(&mut File) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    let result = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| BackupError::io(tmp, "create", e))
        .and_then(|mut f| {
            fill(&mut f)?;
            f.sync_all().map_err(|e| BackupError::io(tmp, "fsync", e))
        })
        .and_then(|()| {
            std::fs::rename(tmp, path)
                .map_err(|e| BackupError::io(path, "rename a new file over", e))
        });
    if let Err(e) = result {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Makes a rename or a new file in `path`'s directory durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BackupError::io(dir, "fsync directory", e))
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file; NTFS journals renames.
        let _ = path;
        Ok(())
    }
}

/// An exclusive advisory lock on `<path>.lock`, held until dropped.
///
/// A separate lock file, because the data file itself is replaced by rename
/// and a lock on the old inode would not guard the new one. The lock file is
/// never deleted: deleting it would let two processes lock two different
/// files of the same name. The kernel releases the lock when the process
/// dies, so a crash never leaves a stale lock.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(path: &Path) -> Result<Self, BackupError> {
        let lock_path = sibling(path, ".lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| BackupError::io(&lock_path, "open lock file", e))?;
        match retry_within(LOCK_GRACE, || try_lock(&file)) {
            Ok(true) => {}
            Ok(false) => {
                let mut s = String::new();
                let holder = file
                    .read_to_string(&mut s)
                    .ok()
                    .and_then(|_| s.trim().parse().ok());
                return Err(BackupError::Locked {
                    path: path.into(),
                    holder,
                });
            }
            Err(e) => return Err(BackupError::io(&lock_path, "lock", e)),
        }
        // Best effort: the pid only makes the error of the next process
        // clearer.
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()));
        Ok(Self { _file: file })
    }
}

/// How long [`Lock::acquire`] waits for a lock that is taken.
///
/// A process that forks while it holds the lock (any thread spawning a
/// child) gives the child a copy of the lock's descriptor, and the kernel
/// drops that copy only at the child's `exec`. So a process that closes a
/// backup and opens it again, or starts a successor, can briefly find the
/// lock held by nobody real. Waiting this long hides that window; a genuine
/// second writer still gets [`BackupError::Locked`].
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs `attempt` until it returns `Ok(true)`, for up to `grace`;
/// `Ok(false)` if it never did.
fn retry_within(
    grace: std::time::Duration,
    mut attempt: impl FnMut() -> io::Result<bool>,
) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + grace;
    loop {
        if attempt()? {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// `Ok(false)` if another open file description holds the lock.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> io::Result<bool> {
    // std's `File::try_lock` is newer than this crate's minimum Rust.
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SchemaHash, StoreId};

    fn ids() -> Ids {
        Ids {
            schema: SchemaHash([3; 32]),
            store: StoreId([4; 32]),
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rc-backup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_lock_freed_within_the_grace_is_taken() {
        let mut tries = 0;
        let got = retry_within(std::time::Duration::from_secs(60), || {
            tries += 1;
            Ok(tries == 3)
        });
        assert!(got.unwrap());
        assert_eq!(tries, 3);
        let got = retry_within(std::time::Duration::ZERO, || Ok(false));
        assert!(!got.unwrap(), "held past the grace: not taken");
        let err = retry_within(std::time::Duration::from_secs(60), || {
            Err(io::Error::other("no locks here"))
        });
        assert!(err.is_err(), "an OS error is not retried");
    }

    #[test]
    fn sibling_appends_to_the_name() {
        assert_eq!(
            sibling(Path::new("a/b.backup"), ".tmp"),
            Path::new("a/b.backup.tmp")
        );
        assert_eq!(sibling(Path::new("b"), ".lock"), Path::new("b.lock"));
    }

    #[test]
    fn write_replaces_and_leaves_no_temp() {
        let d = tmpdir("replace");
        let p = d.join("s.backup");
        let mut f = BackupFile::open(&p, ids(), None).unwrap();
        assert_eq!(f.load().unwrap(), None);
        f.write(Position { epoch: 1, seq: 1 }, b"one").unwrap();
        f.write(Position { epoch: 1, seq: 2 }, b"two").unwrap();
        let s = f.load().unwrap().unwrap();
        assert_eq!((s.position.seq, s.state.as_slice()), (2, &b"two"[..]));
        assert!(!sibling(&p, ".tmp").exists());
        drop(f);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn second_handle_is_locked_out_until_the_first_drops() {
        let d = tmpdir("lock");
        let p = d.join("s.backup");
        let first = BackupFile::open(&p, ids(), None).unwrap();
        let err = BackupFile::open(&p, ids(), None).unwrap_err();
        match &err {
            BackupError::Locked { path, holder } => {
                assert_eq!(path, &p);
                assert_eq!(*holder, Some(std::process::id()));
            }
            e => panic!("{e}"),
        }
        assert!(err.to_string().contains("s.backup is locked"), "{err}");
        drop(first);
        BackupFile::open(&p, ids(), None).unwrap();
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn missing_directory_is_an_io_error_with_the_path() {
        let err = BackupFile::open("/nonexistent-dir-rc/x.backup", ids(), None).unwrap_err();
        assert!(matches!(err, BackupError::Io { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("/nonexistent-dir-rc/x.backup.lock"),
            "{err}"
        );
    }
}
