//! Persistence of a running store (the seed's `backup`): loads the backup
//! at start, then keeps it up to date in a background task, and in journal
//! mode appends every applied action with group commit.
//!
//! The apply path never waits for the disk: the task copies what it needs
//! (the encoded state, or encoded actions from the action ring) under a read
//! lock and writes in `spawn_blocking`. In journal mode, a journal that
//! falls behind the ring is caught up with a snapshot, never by losing
//! actions.

use crate::backup::{BackupError, BackupFile, Ids, Journal, KdfParams, Key, Position};
use crate::codec;
use crate::core::Shared;
use crate::log::Read;
use crate::reducer::Reducer;
use parking_lot::Mutex as PlMutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Journal bytes after which it is compacted into the snapshot file.
const COMPACT_BYTES: u64 = 64 << 20;
/// Most bytes of actions appended in one group commit.
const GROUP_BYTES: usize = 4 << 20;

/// Where and how often to save a store (the seed's `backup` options).
#[derive(Clone)]
pub struct BackupConfig {
    path: PathBuf,
    key: Option<String>,
    kdf: KdfParams,
    count: Option<u64>,
    timeout: Option<Duration>,
    journal: bool,
    replace_unreadable: bool,
}

impl std::fmt::Debug for BackupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupConfig")
            .field("path", &self.path)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("count", &self.count)
            .field("timeout", &self.timeout)
            .field("journal", &self.journal)
            .finish()
    }
}

impl BackupConfig {
    /// Save to `path` (a lock file `<path>.lock` sits beside it; the
    /// journal, if on, is `<path>.journal`). With neither `count` nor
    /// `timeout`, every action triggers a save.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            key: None,
            kdf: KdfParams::default(),
            count: None,
            timeout: None,
            journal: false,
            replace_unreadable: false,
        }
    }

    /// Encrypt with AES-256-GCM under a key derived from `password`
    /// (Argon2id, random per-file salt).
    pub fn key(mut self, password: &str) -> Self {
        self.key = Some(password.to_string());
        self
    }

    /// Argon2id cost (default: 46 MiB, 2 passes).
    pub fn kdf(mut self, params: KdfParams) -> Self {
        self.kdf = params;
        self
    }

    /// Save once `n` actions are unsaved: at most `n` actions can be lost.
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n.max(1));
        self
    }

    /// Save once the oldest unsaved action is this old: at most this much
    /// time can be lost.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Journal mode: append every applied action (one `fdatasync` per
    /// batch), so nothing acknowledged as durable is lost; the snapshot file
    /// is rewritten when the journal grows or falls behind.
    pub fn journal(mut self) -> Self {
        self.journal = true;
        self
    }

    /// When the file cannot be read (corrupt, wrong key, another schema),
    /// move it aside to `<path>.unreadable` and start empty, instead of
    /// failing. Off by default: a backup is never dropped silently.
    pub fn replace_unreadable(mut self) -> Self {
        self.replace_unreadable = true;
        self
    }

    fn journal_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".journal");
        PathBuf::from(p)
    }
}

/// A running backup. Dropping it does not stop the task: the store owns it
/// and stops it on shutdown.
#[derive(Debug, Clone)]
pub struct Backup {
    durable: watch::Receiver<u64>,
    loaded: Option<u64>,
}

impl Backup {
    /// The sequence number the store continued from, if a backup was loaded.
    pub fn loaded_seq(&self) -> Option<u64> {
        self.loaded
    }

    /// Waits until action `seq` is on disk (journal mode: appended and
    /// synced; otherwise: included in a written snapshot).
    ///
    /// # Errors
    /// [`BackupError::Stopped`] when the backup task has stopped first
    /// (store shut down, or a write failed; the failure went to the error
    /// hook).
    pub async fn durable(&self, seq: u64) -> Result<u64, BackupError> {
        let mut rx = self.durable.clone();
        let v = rx
            .wait_for(|d| *d >= seq)
            .await
            .map_err(|_| BackupError::Stopped)?;
        Ok(*v)
    }

    /// The highest sequence number known to be on disk.
    pub fn durable_seq(&self) -> u64 {
        *self.durable.borrow()
    }
}

struct Files {
    file: BackupFile,
    journal: Option<Journal>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(BackupError::Stopped))
}

/// Loads the backup into `shared` (which must be fresh) and starts the task.
pub(crate) async fn start<S: Reducer>(
    shared: &Arc<Shared<S>>,
    cfg: BackupConfig,
) -> Result<Backup, BackupError> {
    let ids = Ids::of::<S>();
    let key = cfg.key.as_ref().map(|k| Key::with_params(k, cfg.kdf));
    let (path, jpath, replace) = (cfg.path.clone(), cfg.journal_path(), cfg.replace_unreadable);
    let journaled = cfg.journal;
    let epoch_now = shared.core.read().epoch;
    let (files, loaded) = blocking(move || {
        let mut file = BackupFile::open(&path, ids, key.clone())?;
        let snap = match file.load() {
            Ok(s) => s,
            Err(e)
                if replace && !matches!(e, BackupError::Locked { .. } | BackupError::Io { .. }) =>
            {
                tracing::warn!(error = %e, "moving an unreadable backup aside and starting empty");
                let mut aside = path.clone().into_os_string();
                aside.push(".unreadable");
                std::fs::rename(&path, &aside).map_err(|source| BackupError::Io {
                    path: path.clone(),
                    op: "move aside",
                    source,
                })?;
                drop(file);
                file = BackupFile::open(&path, ids, key.clone())?;
                None
            }
            Err(e) => return Err(e),
        };
        let start = snap.as_ref().map_or(
            Position {
                epoch: epoch_now,
                seq: 0,
            },
            |s| s.position,
        );
        let (journal, replay) = if journaled {
            let (j, r) = Journal::open(&jpath, ids, key, start)?;
            (Some(j), Some(r))
        } else {
            (None, None)
        };
        Ok((Files { file, journal }, (snap, replay)))
    })
    .await?;

    // Restore: the snapshot, then the journal's actions after it.
    let (snap, replay) = loaded;
    let mut loaded_seq = None;
    if snap.is_some() || replay.as_ref().is_some_and(|r| !r.records.is_empty()) {
        let mut core = shared.core.write();
        if core.seq != 0 {
            return Err(BackupError::NotFresh { seq: core.seq });
        }
        let path = &cfg.path;
        let corrupt = |reason: String| BackupError::Corrupt {
            path: path.clone(),
            reason,
        };
        if let Some(s) = &snap {
            core.state = codec::decode(&s.state)
                .map_err(|e| corrupt(format!("state does not decode: {e}")))?;
            core.seq = s.position.seq;
            core.epoch = s.position.epoch;
        }
        if let Some(r) = &replay {
            if snap.is_none() {
                core.epoch = r.epoch;
            }
            for rec in &r.records {
                if rec.first_seq > core.seq + 1 {
                    return Err(corrupt(format!(
                        "the journal starts at action {} but the snapshot ends at {}",
                        rec.first_seq, core.seq
                    )));
                }
                let actions = codec::decode_packed::<S::Action>(rec.count, &rec.payload)
                    .map_err(|e| corrupt(format!("journal record does not decode: {e}")))?;
                for (i, (a, _)) in actions.iter().enumerate() {
                    if rec.first_seq + i as u64 == core.seq + 1 {
                        core.state.reduce(a);
                        core.seq += 1;
                    }
                }
            }
        }
        loaded_seq = Some(core.seq);
        let seq = core.seq;
        drop(core);
        shared.publish_reset(seq);
    }

    let (pos, durable_now) = {
        let core = shared.core.read();
        (
            Position {
                epoch: core.epoch,
                seq: core.seq,
            },
            core.seq,
        )
    };
    let (tx, rx) = watch::channel(durable_now);
    let files = Arc::new(PlMutex::new(files));
    let task = if journaled {
        let wake = Arc::new(Notify::new());
        shared.attach_link(&wake);
        tokio::spawn(journal_loop(Arc::clone(shared), files, wake, pos, tx))
    } else {
        tokio::spawn(backup_loop(Arc::clone(shared), files, cfg, pos, tx))
    };
    shared.own_task(task.abort_handle());
    Ok(Backup {
        durable: rx,
        loaded: loaded_seq,
    })
}

/// Encodes the state with its position, under a read lock.
fn snapshot<S: Reducer>(shared: &Shared<S>) -> Result<(Position, Vec<u8>), BackupError> {
    let core = shared.core.read();
    let bytes = codec::encode(&core.state).map_err(|e| BackupError::Corrupt {
        path: PathBuf::new(),
        reason: format!("state does not encode: {e}"),
    })?;
    Ok((
        Position {
            epoch: core.epoch,
            seq: core.seq,
        },
        bytes,
    ))
}

async fn write_snapshot<S: Reducer>(
    shared: &Shared<S>,
    files: &Arc<PlMutex<Files>>,
    compact: bool,
) -> Result<Position, BackupError> {
    let (pos, bytes) = snapshot(shared)?;
    let files = Arc::clone(files);
    blocking(move || {
        let mut f = files.lock();
        f.file.write(pos, &bytes)?;
        if compact {
            if let Some(j) = &mut f.journal {
                j.compact(pos)?;
            }
        }
        Ok(pos)
    })
    .await
}

/// Count/timeout mode: rewrite the snapshot when enough is unsaved.
async fn backup_loop<S: Reducer>(
    shared: Arc<Shared<S>>,
    files: Arc<PlMutex<Files>>,
    cfg: BackupConfig,
    start: Position,
    durable: watch::Sender<u64>,
) {
    let count = cfg
        .count
        .unwrap_or(if cfg.timeout.is_some() { u64::MAX } else { 1 });
    let mut saved = start.seq;
    let mut unsaved_since: Option<tokio::time::Instant> = None;
    loop {
        let version = shared.version();
        let seq = shared.seq.load(std::sync::atomic::Ordering::SeqCst);
        if seq == saved {
            if shared.wait_change(version).await.is_none() {
                return;
            }
            unsaved_since.get_or_insert_with(tokio::time::Instant::now);
            continue;
        }
        let since = *unsaved_since.get_or_insert_with(tokio::time::Instant::now);
        let deadline = cfg.timeout.map(|t| since + t);
        let due =
            seq - saved >= count || deadline.is_some_and(|d| d <= tokio::time::Instant::now());
        if due {
            match write_snapshot(&shared, &files, false).await {
                Ok(pos) => {
                    saved = pos.seq;
                    unsaved_since = None;
                    durable.send_replace(pos.seq);
                }
                Err(e) => {
                    shared.report(crate::Error::Backup(e));
                    return;
                }
            }
            continue;
        }
        match deadline {
            Some(d) => {
                tokio::select! {
                    r = shared.wait_change(version) => if r.is_none() { return },
                    _ = tokio::time::sleep_until(d) => {}
                }
            }
            None => {
                if shared.wait_change(version).await.is_none() {
                    return;
                }
            }
        }
    }
}

/// Journal mode: append what the action ring holds past the cursor, one
/// sync per batch.
async fn journal_loop<S: Reducer>(
    shared: Arc<Shared<S>>,
    files: Arc<PlMutex<Files>>,
    wake: Arc<Notify>,
    start: Position,
    durable: watch::Sender<u64>,
) {
    let mut cursor = start.seq;
    loop {
        // Copy a group of actions out of the ring.
        let group = {
            let core = shared.core.read();
            if core.seq <= cursor {
                None
            } else if let Some(log) = &core.log {
                let mut bytes = Vec::new();
                let (mut first, mut count, mut evicted) = (0, 0u32, false);
                let mut at = cursor + 1;
                while bytes.len() < GROUP_BYTES {
                    match log.read_from(at, GROUP_BYTES - bytes.len()) {
                        Read::Actions {
                            first_seq,
                            count: n,
                            packed,
                        } => {
                            if count == 0 {
                                first = first_seq;
                            }
                            bytes.extend_from_slice(packed);
                            count += n;
                            at = first_seq + u64::from(n);
                        }
                        Read::UpToDate => break,
                        Read::Evicted => {
                            evicted = true;
                            break;
                        }
                    }
                }
                Some((first, count, bytes, evicted))
            } else {
                Some((0, 0, Vec::new(), true))
            }
        };
        let res = match group {
            None => {
                if shared.closed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                wake.notified().await;
                continue;
            }
            Some((_, _, _, true)) => {
                // Behind the ring: a snapshot covers what was missed.
                write_snapshot(&shared, &files, true).await.map(|p| p.seq)
            }
            Some((first, count, bytes, false)) => {
                let f = Arc::clone(&files);
                let appended = blocking(move || {
                    let mut f = f.lock();
                    let big = match &mut f.journal {
                        Some(j) => {
                            j.append(first, count, &bytes)?;
                            j.size_bytes() > COMPACT_BYTES
                        }
                        None => false,
                    };
                    Ok(big)
                })
                .await;
                match appended {
                    Ok(true) => write_snapshot(&shared, &files, true)
                        .await
                        .map(|p| p.seq.max(first + u64::from(count) - 1)),
                    Ok(false) => Ok(first + u64::from(count) - 1),
                    Err(e) => Err(e),
                }
            }
        };
        match res {
            Ok(seq) => {
                cursor = cursor.max(seq);
                durable.send_replace(cursor);
            }
            Err(e) => {
                shared.report(crate::Error::Backup(e));
                return;
            }
        }
    }
}
