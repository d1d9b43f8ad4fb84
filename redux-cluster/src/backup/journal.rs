//! The journal: batches of actions appended after the last snapshot, so that
//! a crash loses nothing that was acknowledged.
//!
//! ```text
//! header (140 bytes)
//!      0   8  magic "RCJOURNL"
//!      8   2  format version (u16 LE, now 2)
//!     10   2  flags (bit 0: encrypted)
//!     12  12  Argon2id memory KiB, passes, lanes (u32 LE each)
//!     24  32  schema hash
//!     56  32  store id
//!     88   8  epoch (u64 LE)
//!     96   8  seq of the first record's first action (u64 LE)
//!    104  16  KDF salt
//!    120  16  key check value
//!    136   4  CRC-32C of bytes 0..136
//! records, each
//!      0   8  first seq (u64 LE)
//!      8   4  count of actions (u32 LE, at least 1)
//!     12   4  payload length (u32 LE)
//!     16   4  CRC-32C of bytes 0..16
//!     20   n  payload: the batch's actions as the caller encoded them;
//!             encrypted: 12-byte nonce, ciphertext, 16-byte tag (associated
//!             data: schema, store id, epoch, then bytes 0..16)
//!   20+n   4  CRC-32C of bytes 0..20+n
//! ```
//!
//! Records are contiguous: each starts at the seq after the previous one
//! ends. One append is one `write` and one `fdatasync` (group commit: the
//! caller puts every action that arrived during the previous sync into one
//! record). Since nothing is written past a record before it is synced, only
//! the last record can be torn by a crash; [`Journal::open`] cuts such a tail
//! off. A damaged record with an intact one after it is not a crash artifact,
//! and is an error.

use super::crypto::{self, Derived, Key, NONCE_LEN, TAG_LEN};
use super::file::{self, Lock};
use super::format::arr;
use super::header::{seal, Common, Kind, COMMON_LEN};
use super::{BackupError, Ids, Position};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 8] = *b"RCJOURNL";
/// The newest journal format version this build reads and the one it
/// writes. 3: as 2, each batch with the actions the validator rejected;
/// 2: each record's payload holds the dispatch batches it applied before
/// the actions (see persist.rs); 1: the actions alone.
pub const JOURNAL_VERSION: u16 = 3;
const VERSION: u16 = JOURNAL_VERSION;
pub(crate) const HEADER_LEN: usize = COMMON_LEN + 4;
const REC_HEAD: usize = 20;
const REC_OVERHEAD: usize = REC_HEAD + 4;
const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// The largest payload one record holds, as written (after encryption).
const MAX_PAYLOAD: usize = 1 << 30;
const AAD_PREFIX: usize = 32 + 32 + 8;

/// One record read back: `count` actions starting at `first_seq`, encoded
/// by the caller into `payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The seq of the first action in the record.
    pub first_seq: u64,
    /// How many actions the record holds.
    pub count: u32,
    /// The actions, as they were given to [`Journal::append`].
    pub payload: Vec<u8>,
}

impl Record {
    /// The seq of the last action in the record.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count) - 1
    }
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The epoch the journal's seqs belong to.
    pub epoch: u64,
    /// The seq the journal starts at (the first record's first seq, if any).
    /// The records may begin before the newest snapshot: skip the actions
    /// it already holds.
    pub first_seq: u64,
    /// The records, in order, contiguous from `first_seq`.
    pub records: Vec<Record>,
    /// The journal's format version (1: payloads are as appended by a
    /// build before the dispatch sessions were journaled; 2: now).
    pub version: u16,
    /// The ids in the file: this store's, or an earlier version's (whose
    /// actions the records then hold).
    pub ids: Ids,
    /// Bytes of a torn or damaged last record that were cut off: a batch
    /// whose append had not returned when the process stopped.
    pub truncated_bytes: u64,
}

impl Replay {
    /// The seq the next append must start at.
    pub fn next_seq(&self) -> u64 {
        self.records
            .last()
            .map_or(self.first_seq, |r| r.last_seq() + 1)
    }
}

/// What marks a journal file.
const KIND: Kind = Kind {
    magic: MAGIC,
    version: VERSION,
    name: "journal",
    header_len: HEADER_LEN,
};

/// The journal's header: the fields every backup header has, where the
/// position is the journal's epoch and the seq of its first action.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    common: Common,
}

impl Header {
    fn new(ids: Ids, start: Position, key: Option<&Derived>) -> Self {
        let first = Position {
            epoch: start.epoch,
            seq: start.seq.saturating_add(1),
        };
        Self {
            common: Common::new(ids, first, key),
        }
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        self.common.encode(&KIND, &mut h);
        seal(&mut h);
        h
    }

    fn decode(file: &[u8], path: &Path) -> Result<Self, BackupError> {
        let (common, _) = Common::decode(file, path, &KIND)?;
        Ok(Self { common })
    }

    /// What every record's associated data starts with, so a record cannot
    /// be moved into another store's or another epoch's journal.
    fn aad_prefix(&self) -> [u8; AAD_PREFIX] {
        let mut a = [0u8; AAD_PREFIX];
        a[..32].copy_from_slice(&self.common.ids.schema.0);
        a[32..64].copy_from_slice(&self.common.ids.store.0);
        a[64..].copy_from_slice(&self.common.position.epoch.to_le_bytes());
        a
    }
}

/// A record whose checksums hold, located in the file.
struct Found {
    first_seq: u64,
    count: u32,
    payload: std::ops::Range<usize>,
    size: usize,
}

/// Parses the record at the start of `b`; `None` if it is short or a
/// checksum fails (a torn or damaged record).
fn parse_record(b: &[u8]) -> Option<Found> {
    if b.len() < REC_OVERHEAD {
        return None;
    }
    if crc32c::crc32c(&b[..16]) != u32::from_le_bytes(arr(&b[16..20])) {
        return None;
    }
    let len = u32::from_le_bytes(arr(&b[12..16])) as usize;
    if len > MAX_PAYLOAD || b.len() < REC_OVERHEAD + len {
        return None;
    }
    let end = REC_HEAD + len;
    if crc32c::crc32c(&b[..end]) != u32::from_le_bytes(arr(&b[end..end + 4])) {
        return None;
    }
    Some(Found {
        first_seq: u64::from_le_bytes(arr(&b[0..8])),
        count: u32::from_le_bytes(arr(&b[8..12])),
        payload: REC_HEAD..end,
        size: end + 4,
    })
}

/// Appends one record to `buf`.
fn encode_record(
    buf: &mut Vec<u8>,
    first_seq: u64,
    count: u32,
    payload: &[u8],
    seal: Option<(&Derived, &[u8; AAD_PREFIX])>,
) -> Result<(), BackupError> {
    let len = payload.len() + if seal.is_some() { SEAL_OVERHEAD } else { 0 };
    if len > MAX_PAYLOAD {
        return Err(BackupError::TooLarge {
            what: "journal record",
            len: len as u64,
            max: MAX_PAYLOAD as u64,
        });
    }
    let start = buf.len();
    buf.extend_from_slice(&first_seq.to_le_bytes());
    buf.extend_from_slice(&count.to_le_bytes());
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    let hcrc = crc32c::crc32c(&buf[start..start + 16]);
    buf.extend_from_slice(&hcrc.to_le_bytes());
    match seal {
        None => buf.extend_from_slice(payload),
        Some((key, prefix)) => {
            let mut nonce = [0u8; NONCE_LEN];
            crypto::random(&mut nonce)?;
            let mut aad = [0u8; AAD_PREFIX + 16];
            aad[..AAD_PREFIX].copy_from_slice(prefix);
            aad[AAD_PREFIX..].copy_from_slice(&buf[start..start + 16]);
            buf.extend_from_slice(&nonce);
            let at = buf.len();
            buf.extend_from_slice(payload);
            let tag =
                key.seal(&nonce, &aad, &mut buf[at..])
                    .map_err(|_| BackupError::TooLarge {
                        what: "journal record",
                        len: len as u64,
                        max: MAX_PAYLOAD as u64,
                    })?;
            buf.extend_from_slice(&tag);
        }
    }
    let crc = crc32c::crc32c(&buf[start..]);
    buf.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// An open journal, locked for appending by this handle for as long as it
/// lives.
///
/// All methods block (file I/O and `fdatasync`): call them from
/// `tokio::task::spawn_blocking` or a thread of their own.
pub struct Journal {
    path: PathBuf,
    tmp: PathBuf,
    file: File,
    header: Header,
    aad: [u8; AAD_PREFIX],
    key: Option<Derived>,
    len: u64,
    next_seq: u64,
    buf: Vec<u8>,
    poisoned: bool,
    /// This store's ids: what the journal holds once it is this version's.
    ids: Ids,
    _lock: Lock,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("epoch", &self.header.common.position.epoch)
            .field("first_seq", &self.header.common.position.seq)
            .field("next_seq", &self.next_seq)
            .field("size_bytes", &self.len)
            .field("encrypted", &self.key.is_some())
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path`, replays it, and cuts off a
    /// torn last record. A new journal starts after `start` (the position of
    /// the snapshot it follows); an existing one keeps its own start, given
    /// in the [`Replay`].
    ///
    /// # Errors
    /// [`BackupError::Locked`] if another handle holds the journal; for a
    /// damaged or foreign file the same errors as [`super::BackupFile::read`];
    /// [`BackupError::Corrupt`] if a record other than the last is damaged
    /// or the records do not follow each other.
    pub fn open(
        path: impl Into<PathBuf>,
        ids: Ids,
        key: Option<Key>,
        start: Position,
    ) -> Result<(Self, Replay), BackupError> {
        Self::open_lineage(path, ids, &[], key, start)
    }

    /// [`open`](Self::open), also reading a journal written by one of the
    /// store's earlier versions (`older`; its [`Replay::ids`] says which).
    /// Such a journal takes no appends until a
    /// [`compact`](Self::compact) that keeps no record rewrites it with
    /// this store's ids.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_lineage(
        path: impl Into<PathBuf>,
        ids: Ids,
        older: &[Ids],
        key: Option<Key>,
        start: Position,
    ) -> Result<(Self, Replay), BackupError> {
        let path = path.into();
        let lock = Lock::acquire(&path)?;
        let tmp = file::sibling(&path, ".tmp");
        let bytes = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(BackupError::io(&path, "read", e)),
        };
        let (header, derived, replay, good_len) = match bytes {
            None => {
                let derived = key.as_ref().map(Key::for_writing).transpose()?;
                let header = Header::new(ids, start, derived.as_ref());
                file::replace(&path, &tmp, &[&header.encode()])?;
                let replay = Replay {
                    epoch: header.common.position.epoch,
                    first_seq: header.common.position.seq,
                    records: Vec::new(),
                    version: VERSION,
                    truncated_bytes: 0,
                    ids,
                };
                (header, derived, replay, HEADER_LEN as u64)
            }
            Some(bytes) => {
                let (header, derived, replay) = read(&bytes, &path, &ids, older, key.as_ref())?;
                let good_len = bytes.len() as u64 - replay.truncated_bytes;
                (header, derived, replay, good_len)
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| BackupError::io(&path, "open", e))?;
        if replay.truncated_bytes > 0 {
            file.set_len(good_len)
                .and_then(|()| file.sync_data())
                .map_err(|e| BackupError::io(&path, "cut the torn tail off", e))?;
        }
        file.seek(SeekFrom::Start(good_len))
            .map_err(|e| BackupError::io(&path, "seek", e))?;
        let journal = Self {
            aad: header.aad_prefix(),
            next_seq: replay.next_seq(),
            path,
            tmp,
            file,
            header,
            key: derived,
            len: good_len,
            buf: Vec::new(),
            poisoned: false,
            ids,
            _lock: lock,
        };
        Ok((journal, replay))
    }

    /// Appends `count` actions starting at `first_seq`, encoded by the
    /// caller into `payload`, as one record: one `write`, one `fdatasync`.
    /// When this returns `Ok`, the record survives a crash.
    ///
    /// # Errors
    /// [`BackupError::OutOfOrder`] unless `first_seq` is [`Journal::next_seq`];
    /// [`BackupError::InvalidRecord`] if `count` is 0;
    /// [`BackupError::TooLarge`] for a payload over 1 GiB;
    /// [`BackupError::Io`] if the write or the sync fails (the record is then
    /// not in the journal). After a failed sync the journal is
    /// [`BackupError::Poisoned`]: the kernel may have dropped pages it
    /// reported written, so only a reopen (which re-reads the file) is safe.
    pub fn append(
        &mut self,
        first_seq: u64,
        count: u32,
        payload: &[u8],
    ) -> Result<(), BackupError> {
        if self.poisoned {
            return Err(BackupError::Poisoned {
                path: self.path.clone(),
            });
        }
        if self.header.common.ids != self.ids {
            return Err(BackupError::corrupt(
                &self.path,
                "the journal holds an earlier version's actions; a snapshot and compaction must rewrite it before anything is appended",
            ));
        }
        if count == 0 {
            return Err(BackupError::InvalidRecord(
                "a record holds at least one action",
            ));
        }
        if first_seq != self.next_seq {
            return Err(BackupError::OutOfOrder {
                path: self.path.clone(),
                expected: self.next_seq,
                found: first_seq,
            });
        }
        let next = first_seq
            .checked_add(u64::from(count))
            .ok_or(BackupError::InvalidRecord("the record's seqs overflow u64"))?;
        self.buf.clear();
        let seal = self.key.as_ref().map(|k| (k, &self.aad));
        encode_record(&mut self.buf, first_seq, count, payload, seal)?;
        if let Err(e) = self.file.write_all(&self.buf) {
            // Put the end back where it was, so the next append does not
            // land after half a record.
            let undo = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.seek(SeekFrom::Start(self.len)));
            if undo.is_err() {
                self.poisoned = true;
            }
            return Err(BackupError::io(&self.path, "append to", e));
        }
        if let Err(e) = self.file.sync_data() {
            self.poisoned = true;
            return Err(BackupError::io(&self.path, "fdatasync", e));
        }
        self.len += self.buf.len() as u64;
        self.next_seq = next;
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Starts a fresh journal after a snapshot at `after` was written, keeping
    /// only records with actions past `after.seq` (a record that straddles it
    /// is kept whole). Another epoch drops every record. Atomic: a crash
    /// leaves the old journal or the new one, both consistent with the
    /// snapshot.
    ///
    /// # Errors
    /// [`BackupError::Io`]; [`BackupError::Poisoned`];
    /// [`BackupError::Corrupt`] if a record header read back is damaged.
    pub fn compact(&mut self, after: Position) -> Result<(), BackupError> {
        if self.poisoned {
            return Err(BackupError::Poisoned {
                path: self.path.clone(),
            });
        }
        let from = after.seq.saturating_add(1);
        let same_epoch = after.epoch == self.header.common.position.epoch;
        let current = self.header.common.ids == self.ids;
        if current && same_epoch && from <= self.header.common.position.seq {
            return Ok(()); // nothing to drop
        }
        // Where the kept records start in the file, and their first seq.
        let keep = if same_epoch && from < self.next_seq {
            Some(self.find_from(from)?)
        } else {
            None
        };
        let mut header = self.header.clone();
        if keep.is_none() {
            // No record of an earlier version is kept: the journal is now
            // this version's.
            header.common.ids = self.ids;
        }
        header.common.position.epoch = after.epoch;
        header.common.position.seq = keep.map_or(from, |(_, seq)| seq);
        let encoded = header.encode();
        let (path, tmp) = (&self.path, &self.tmp);
        let file = &mut self.file;
        let end = self.len;
        file::replace_with(path, tmp, |out| {
            out.write_all(&encoded)
                .map_err(|e| BackupError::io(tmp, "write", e))?;
            if let Some((offset, _)) = keep {
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| BackupError::io(path, "seek", e))?;
                let copied = io::copy(&mut (&mut *file).take(end - offset), out)
                    .map_err(|e| BackupError::io(tmp, "copy records into", e))?;
                if copied != end - offset {
                    return Err(BackupError::corrupt(
                        path,
                        "journal shrank while compacting",
                    ));
                }
            }
            Ok(())
        })?;
        // The name now points at the new file; the handle still at the old.
        let reopened = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .and_then(|mut f| {
                let len = f.seek(SeekFrom::End(0))?;
                Ok((f, len))
            });
        match reopened {
            Ok((f, len)) => {
                self.file = f;
                self.len = len;
            }
            Err(e) => {
                self.poisoned = true;
                return Err(BackupError::io(&self.path, "reopen", e));
            }
        }
        if keep.is_none() {
            self.next_seq = from;
        }
        self.aad = header.aad_prefix();
        self.header = header;
        Ok(())
    }

    /// The offset and first seq of the first record holding a seq >= `from`.
    fn find_from(&mut self, from: u64) -> Result<(u64, u64), BackupError> {
        let path = &self.path;
        self.file
            .seek(SeekFrom::Start(HEADER_LEN as u64))
            .map_err(|e| BackupError::io(path, "seek", e))?;
        let mut r = io::BufReader::new(&mut self.file);
        let mut offset = HEADER_LEN as u64;
        let mut head = [0u8; REC_HEAD];
        while offset < self.len {
            r.read_exact(&mut head)
                .map_err(|e| BackupError::io(path, "read", e))?;
            if crc32c::crc32c(&head[..16]) != u32::from_le_bytes(arr(&head[16..20])) {
                return Err(BackupError::corrupt(
                    path,
                    format!("record header at offset {offset} changed on disk"),
                ));
            }
            let first = u64::from_le_bytes(arr(&head[0..8]));
            let count = u32::from_le_bytes(arr(&head[8..12]));
            let len = u32::from_le_bytes(arr(&head[12..16]));
            if first + u64::from(count) > from {
                return Ok((offset, first));
            }
            r.seek_relative(i64::from(len) + 4)
                .map_err(|e| BackupError::io(path, "seek", e))?;
            offset += (REC_OVERHEAD as u64) + u64::from(len);
        }
        Err(BackupError::corrupt(
            path,
            format!(
                "no record holds seq {from} though the journal reaches seq {}",
                self.next_seq - 1
            ),
        ))
    }

    /// The seq the next append must start at.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The epoch the journal's seqs belong to.
    pub fn epoch(&self) -> u64 {
        self.header.common.position.epoch
    }

    /// The journal's size on disk, in bytes: a cue for when to snapshot and
    /// compact.
    pub fn size_bytes(&self) -> u64 {
        self.len
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads a whole journal file: its header, the key it needs, and its
/// records up to a torn tail.
fn read(
    bytes: &[u8],
    path: &Path,
    ids: &Ids,
    older: &[Ids],
    key: Option<&Key>,
) -> Result<(Header, Option<Derived>, Replay), BackupError> {
    let (header, derived) = check_header(bytes, path, ids, older, key)?;
    let (records, good_len) = scan(bytes, &header, derived.as_ref(), path)?;
    let replay = Replay {
        epoch: header.common.position.epoch,
        first_seq: header.common.position.seq,
        records,
        version: header.common.version,
        truncated_bytes: (bytes.len() - good_len) as u64,
        ids: header.common.ids,
    };
    Ok((header, derived, replay))
}

/// The bytes of an unencrypted journal file with `records` (first seq,
/// count, payload), for the fuzz targets' seeds.
pub(crate) fn file_of(
    ids: Ids,
    start: Position,
    records: &[(u64, u32, Vec<u8>)],
) -> Result<Vec<u8>, BackupError> {
    let mut buf = Header::new(ids, start, None).encode().to_vec();
    for (first_seq, count, payload) in records {
        encode_record(&mut buf, *first_seq, *count, payload, None)?;
    }
    Ok(buf)
}

/// [`read`] for the fuzz targets: the records of a journal file's bytes.
pub(crate) fn replay_of(bytes: &[u8], ids: &Ids) -> Result<Replay, BackupError> {
    read(bytes, Path::new("fuzz"), ids, &[], None).map(|(_, _, replay)| replay)
}

/// Decodes and checks the header, and derives the key it needs.
fn check_header(
    bytes: &[u8],
    path: &Path,
    ids: &Ids,
    older: &[Ids],
    key: Option<&Key>,
) -> Result<(Header, Option<Derived>), BackupError> {
    let header = Header::decode(bytes, path)?;
    ids.check_lineage(older, &header.common.ids, path)?;
    let derived = header.common.key_for(key, path)?;
    Ok((header, derived))
}

/// Reads the records after the header. Returns them and the length of the
/// good prefix of the file (shorter than the file if the tail is torn).
fn scan(
    bytes: &[u8],
    header: &Header,
    key: Option<&Derived>,
    path: &Path,
) -> Result<(Vec<Record>, usize), BackupError> {
    let aad_prefix = header.aad_prefix();
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    let mut expected = header.common.position.seq;
    while at < bytes.len() {
        let Some(found) = parse_record(&bytes[at..]) else {
            // Torn tail, or damage in the middle? Only the last record can be
            // torn, so if an intact record of a later seq follows, this is
            // damage. (Later seq: stale blocks of an older version of the
            // file, which some file systems expose in an unsynced tail after
            // a power cut, hold earlier seqs.)
            let later = (at + 1..bytes.len())
                .find(|&s| parse_record(&bytes[s..]).is_some_and(|r| r.first_seq > expected));
            if let Some(later) = later {
                return Err(BackupError::corrupt(
                    path,
                    format!("damaged record at offset {at} (seq {expected}), followed by an intact record at offset {later}"),
                ));
            }
            return Ok((records, at));
        };
        if found.first_seq != expected || found.count == 0 {
            return Err(BackupError::corrupt(
                path,
                format!(
                    "record at offset {at} holds seqs {}+{}, expected one starting at {expected}",
                    found.first_seq, found.count
                ),
            ));
        }
        let raw = &bytes[at + found.payload.start..at + found.payload.end];
        let payload = match key {
            None => raw.to_vec(),
            Some(key) => {
                if raw.len() < SEAL_OVERHEAD {
                    return Err(BackupError::corrupt(
                        path,
                        format!("record at offset {at} is too short to be encrypted"),
                    ));
                }
                let nonce: [u8; NONCE_LEN] = arr(raw);
                let tag: [u8; TAG_LEN] = arr(&raw[raw.len() - TAG_LEN..]);
                let mut aad = [0u8; AAD_PREFIX + 16];
                aad[..AAD_PREFIX].copy_from_slice(&aad_prefix);
                aad[AAD_PREFIX..].copy_from_slice(&bytes[at..at + 16]);
                let mut plain = raw[NONCE_LEN..raw.len() - TAG_LEN].to_vec();
                key.open(&nonce, &aad, &mut plain, &tag).map_err(|()| {
                    BackupError::corrupt(
                        path,
                        format!("record at offset {at} fails authentication: it was altered"),
                    )
                })?;
                plain
            }
        };
        expected = found
            .first_seq
            .checked_add(u64::from(found.count))
            .ok_or_else(|| {
                BackupError::corrupt(path, format!("record at offset {at} overflows the seq"))
            })?;
        records.push(Record {
            first_seq: found.first_seq,
            count: found.count,
            payload,
        });
        at += found.size;
    }
    Ok((records, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::KdfParams;
    use crate::schema::{SchemaHash, StoreId};

    fn ids() -> Ids {
        Ids {
            schema: SchemaHash([5; 32]),
            store: StoreId([6; 32]),
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rc-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn payload(first: u64, count: u32) -> Vec<u8> {
        (first..first + u64::from(count))
            .flat_map(u64::to_le_bytes)
            .collect()
    }

    const START: Position = Position { epoch: 3, seq: 0 };

    /// Writes records of 1, 2, 3 actions; returns the file's bytes and the
    /// offset of the last record.
    fn three_records(p: &Path, key: Option<Key>) -> (Vec<u8>, usize) {
        let (mut j, replay) = Journal::open(p, ids(), key, START).unwrap();
        assert!(replay.records.is_empty());
        j.append(1, 1, &payload(1, 1)).unwrap();
        j.append(2, 2, &payload(2, 2)).unwrap();
        let last = j.size_bytes() as usize;
        j.append(4, 3, &payload(4, 3)).unwrap();
        drop(j);
        (std::fs::read(p).unwrap(), last)
    }

    #[test]
    fn round_trip_plain_and_encrypted() {
        for key in [
            None,
            Some(Key::with_params("pw", KdfParams::fast_for_tests())),
        ] {
            let d = tmpdir(if key.is_some() { "rt-enc" } else { "rt" });
            let p = d.join("j");
            let (bytes, _) = three_records(&p, key.clone());
            assert_eq!(
                bytes.windows(8).any(|w| w == 5u64.to_le_bytes()),
                key.is_none()
            );
            let (j, replay) = Journal::open(&p, ids(), key, START).unwrap();
            assert_eq!(replay.epoch, 3);
            assert_eq!(replay.truncated_bytes, 0);
            let got: Vec<_> = replay
                .records
                .iter()
                .map(|r| (r.first_seq, r.count))
                .collect();
            assert_eq!(got, [(1, 1), (2, 2), (4, 3)]);
            for r in &replay.records {
                assert_eq!(r.payload, payload(r.first_seq, r.count));
            }
            assert_eq!(j.next_seq(), 7);
            drop(j);
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn torn_tail_at_every_offset_loses_only_the_last_record() {
        for key in [
            None,
            Some(Key::with_params("pw", KdfParams::fast_for_tests())),
        ] {
            let d = tmpdir(if key.is_some() { "torn-enc" } else { "torn" });
            let p = d.join("j");
            let (bytes, last) = three_records(&p, key.clone());
            for cut in last..bytes.len() {
                std::fs::write(&p, &bytes[..cut]).unwrap();
                let (mut j, replay) = Journal::open(&p, ids(), key.clone(), START).unwrap();
                assert_eq!(replay.records.len(), 2, "cut at {cut}");
                assert_eq!(replay.truncated_bytes as usize, cut - last);
                assert_eq!(j.next_seq(), 4);
                // The journal goes on from there.
                j.append(4, 1, &payload(4, 1)).unwrap();
                drop(j);
                let (_, replay) = Journal::open(&p, ids(), key.clone(), START).unwrap();
                assert_eq!(replay.records.len(), 3, "cut at {cut}");
                assert_eq!(replay.truncated_bytes, 0);
            }
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn flipped_byte_in_last_record_loses_only_it() {
        let d = tmpdir("flip-last");
        let p = d.join("j");
        let (bytes, last) = three_records(&p, None);
        for i in last..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            std::fs::write(&p, &b).unwrap();
            let (_, replay) = Journal::open(&p, ids(), None, START).unwrap();
            assert_eq!(replay.records.len(), 2, "flip at {i}");
            assert_eq!(replay.truncated_bytes as usize, bytes.len() - last);
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn flipped_byte_in_middle_record_is_an_error() {
        let d = tmpdir("flip-mid");
        let p = d.join("j");
        let (bytes, last) = three_records(&p, None);
        let second = HEADER_LEN + REC_OVERHEAD + 8;
        for i in second..last {
            let mut b = bytes.clone();
            b[i] ^= 0x80;
            std::fs::write(&p, &b).unwrap();
            let err = Journal::open(&p, ids(), None, START).unwrap_err();
            assert!(
                matches!(err, BackupError::Corrupt { .. }),
                "flip at {i}: {err}"
            );
        }
        // The file was not cut.
        assert_eq!(std::fs::metadata(&p).unwrap().len() as usize, bytes.len());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn appends_must_follow_on() {
        let d = tmpdir("order");
        let (mut j, _) =
            Journal::open(d.join("j"), ids(), None, Position { epoch: 1, seq: 10 }).unwrap();
        assert_eq!(j.next_seq(), 11);
        assert!(matches!(
            j.append(12, 1, b"x"),
            Err(BackupError::OutOfOrder {
                expected: 11,
                found: 12,
                ..
            })
        ));
        assert!(matches!(
            j.append(11, 0, b""),
            Err(BackupError::InvalidRecord(_))
        ));
        j.append(11, 2, b"xy").unwrap();
        assert_eq!(j.next_seq(), 13);
        drop(j);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn compact_drops_what_the_snapshot_holds() {
        for key in [
            None,
            Some(Key::with_params("pw", KdfParams::fast_for_tests())),
        ] {
            let d = tmpdir(if key.is_some() {
                "compact-enc"
            } else {
                "compact"
            });
            let p = d.join("j");
            three_records(&p, key.clone()); // [1], [2,3], [4,5,6]
            let (mut j, _) = Journal::open(&p, ids(), key.clone(), START).unwrap();
            j.compact(Position { epoch: 3, seq: 0 }).unwrap(); // nothing to drop
            j.compact(Position { epoch: 3, seq: 2 }).unwrap(); // [2,3] straddles: kept
            j.append(7, 1, &payload(7, 1)).unwrap();
            drop(j);
            let (mut j, replay) = Journal::open(&p, ids(), key.clone(), START).unwrap();
            let got: Vec<_> = replay
                .records
                .iter()
                .map(|r| (r.first_seq, r.count))
                .collect();
            assert_eq!(got, [(2, 2), (4, 3), (7, 1)]);
            assert_eq!(replay.first_seq, 2);
            for r in &replay.records {
                assert_eq!(r.payload, payload(r.first_seq, r.count));
            }
            j.compact(Position { epoch: 3, seq: 7 }).unwrap(); // everything
            assert_eq!(j.next_seq(), 8);
            j.append(8, 1, &payload(8, 1)).unwrap();
            j.compact(Position { epoch: 9, seq: 100 }).unwrap(); // new epoch
            assert_eq!((j.epoch(), j.next_seq()), (9, 101));
            j.append(101, 1, &payload(101, 1)).unwrap();
            drop(j);
            let (_, replay) = Journal::open(&p, ids(), key, START).unwrap();
            assert_eq!((replay.epoch, replay.first_seq), (9, 101));
            assert_eq!(replay.records.len(), 1);
            assert!(!file::sibling(&p, ".tmp").exists());
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn header_errors() {
        let d = tmpdir("header");
        let p = d.join("j");
        let key = Key::with_params("pw", KdfParams::fast_for_tests());
        three_records(&p, Some(key.clone()));
        let open = |ids, key| Journal::open(&p, ids, key, START).map(drop).unwrap_err();
        let other = Ids {
            schema: SchemaHash([9; 32]),
            ..ids()
        };
        assert!(matches!(
            open(other, Some(key.clone())),
            BackupError::SchemaMismatch { .. }
        ));
        let other = Ids {
            store: StoreId([9; 32]),
            ..ids()
        };
        assert!(matches!(
            open(other, Some(key.clone())),
            BackupError::StoreMismatch { .. }
        ));
        assert!(matches!(open(ids(), None), BackupError::KeyRequired { .. }));
        let wrong = Key::with_params("nope", KdfParams::fast_for_tests());
        assert!(matches!(
            open(ids(), Some(wrong)),
            BackupError::WrongKey { .. }
        ));
        let mut b = std::fs::read(&p).unwrap();
        b[40] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(
            open(ids(), Some(key.clone())),
            BackupError::Corrupt { .. }
        ));
        std::fs::write(&p, b"RCBACKUP and then some").unwrap();
        assert!(matches!(
            open(ids(), None),
            BackupError::NotABackup {
                kind: "journal",
                ..
            }
        ));
        std::fs::write(&p, &MAGIC[..5]).unwrap();
        assert!(matches!(open(ids(), None), BackupError::Truncated { .. }));
        let mut b = Header::new(ids(), START, None).encode().to_vec();
        b[8] = (VERSION + 1) as u8;
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(
            open(ids(), None),
            BackupError::NewerFormat { found, .. } if found == VERSION + 1
        ));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn second_open_is_locked() {
        let d = tmpdir("lock");
        let p = d.join("j");
        let (_j, _) = Journal::open(&p, ids(), None, START).unwrap();
        let err = Journal::open(&p, ids(), None, START).unwrap_err();
        assert!(matches!(err, BackupError::Locked { .. }), "{err}");
        std::fs::remove_dir_all(d).unwrap();
    }
}
