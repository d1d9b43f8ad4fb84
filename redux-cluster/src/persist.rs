//! Persistence of a running store (the seed's `backup`): loads the backup
//! at start, then keeps it up to date in a background task, and in journal
//! mode appends every applied action with group commit.
//!
//! The apply path never waits for the disk: the task copies what it needs
//! (the encoded state, or encoded actions from the action ring) under a read
//! lock and writes in `spawn_blocking`. In journal mode, a journal that
//! falls behind the ring is caught up with a snapshot, never by losing
//! actions.

use crate::backup::{
    BackupError, BackupFile, Ids, Journal, KdfParams, Key, Position, Replay, Snapshot,
    FORMAT_VERSION, JOURNAL_VERSION,
};
use crate::codec;
use crate::core::Shared;
use crate::log::{Mark, MarkBefore, Read};
use crate::reducer::Reducer;
use crate::session::{Saved, SavedBefore};
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
    let epoch_now = shared.core.read().epoch;
    let (files, snap, replay) = {
        let cfg = cfg.clone();
        blocking(move || open_files::<S>(&cfg, epoch_now)).await?
    };
    // Restore: the snapshot, then the journal's actions after it.
    let loaded_seq = restore(shared, &cfg.path, snap.as_ref(), replay.as_ref())?;
    let files = Arc::new(PlMutex::new(files));
    rewrite_if_needed(
        shared,
        &files,
        &cfg,
        loaded_seq,
        snap.as_ref(),
        replay.as_ref(),
    )
    .await?;

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
    let task = if cfg.journal {
        let wake = Arc::new(Notify::new());
        shared.start_journal(durable_now);
        shared.attach_link(&wake);
        tokio::spawn(journal_loop(Arc::clone(shared), files, wake, pos, tx))
    } else {
        tokio::spawn(backup_loop(Arc::clone(shared), files, cfg, pos, tx))
    };
    shared.own_persist(task);
    Ok(Backup {
        durable: rx,
        loaded: loaded_seq,
    })
}

/// Locks and reads the snapshot file and (in journal mode) the journal,
/// accepting files of the store's earlier versions. Blocking.
fn open_files<S: Reducer>(
    cfg: &BackupConfig,
    epoch_now: u64,
) -> Result<(Files, Option<Snapshot>, Option<Replay>), BackupError> {
    let ids = Ids::of::<S>();
    // Files of the store's earlier versions are read too, then rewritten.
    let older: Vec<Ids> = crate::history::readable::<S>()
        .into_iter()
        .skip(1)
        .map(|(schema, store)| Ids { schema, store })
        .collect();
    let key = cfg.key.as_ref().map(|k| Key::with_params(k, cfg.kdf));
    let path = &cfg.path;
    let mut file = BackupFile::open(path, ids, key.clone())?.reading_older(older.clone());
    let snap = match file.load() {
        Ok(s) => s,
        Err(e)
            if cfg.replace_unreadable
                && !matches!(e, BackupError::Locked { .. } | BackupError::Io { .. }) =>
        {
            tracing::warn!(error = %e, "moving an unreadable backup aside and starting empty");
            let mut aside = path.clone().into_os_string();
            aside.push(".unreadable");
            std::fs::rename(path, &aside).map_err(|source| BackupError::Io {
                path: path.clone(),
                op: "move aside",
                source,
            })?;
            drop(file);
            file = BackupFile::open(path, ids, key.clone())?;
            None
        }
        Err(e) => return Err(with_difference::<S>(e, key.as_ref())),
    };
    let start = snap.as_ref().map_or(
        Position {
            epoch: epoch_now,
            seq: 0,
        },
        |s| s.position,
    );
    let (journal, replay) = if cfg.journal {
        let (j, r) = Journal::open_lineage(cfg.journal_path(), ids, &older, key, start)?;
        (Some(j), Some(r))
    } else {
        (None, None)
    };
    Ok((Files { file, journal }, snap, replay))
}

/// After a restore: starts a new epoch if the history may have lost
/// acknowledged actions, and rewrites the files when they are not this
/// build's (older format, earlier version of the store, another epoch) or
/// there is no snapshot file yet.
async fn rewrite_if_needed<S: Reducer>(
    shared: &Shared<S>,
    files: &Arc<PlMutex<Files>>,
    cfg: &BackupConfig,
    loaded_seq: Option<u64>,
    snap: Option<&Snapshot>,
    replay: Option<&Replay>,
) -> Result<(), BackupError> {
    let ids = Ids::of::<S>();
    // Without a journal, actions acknowledged after the last save are gone,
    // and followers may have seen them: a new epoch makes every follower
    // resynchronise (and report the rollback) instead of silently running
    // ahead. With a journal, nothing left this process before it was on
    // disk (a torn last record was never synced, so never sent), so the
    // history is whole and the epoch stays.
    let renewed = loaded_seq.is_some() && !cfg.journal;
    if renewed {
        shared.core.write().epoch = crate::core::new_epoch();
    }
    let old_format = snap.is_some_and(|s| s.version < FORMAT_VERSION)
        || replay.is_some_and(|r| r.version < JOURNAL_VERSION);
    // Written by an earlier version of the store: converted on the way in,
    // rewritten in this version's schema now.
    let migrated = snap.is_some_and(|s| s.ids != ids) || replay.is_some_and(|r| r.ids != ids);
    // Without a snapshot file, one is written now: a store that already
    // held state when its backup started would otherwise wait for its next
    // action, and with a journal the snapshot is what records the schema's
    // description (so a build of another schema can say where it differs).
    let unsaved = snap.is_none() && (cfg.journal || shared.core.read().seq > 0);
    if !(renewed || old_format || migrated || unsaved) {
        return Ok(());
    }
    // The files then hold the new epoch (and the current format and schema:
    // a compaction after a snapshot of everything rewrites the journal). An
    // earlier version's files are kept beside them until the rewrite has
    // succeeded.
    let kept = if migrated {
        keep_beside(&[cfg.path.clone(), cfg.journal_path()])?
    } else {
        Vec::new()
    };
    write_snapshot(shared, files, cfg.journal).await?;
    for k in kept {
        let _ = std::fs::remove_file(k);
    }
    Ok(())
}

/// Puts a loaded snapshot and the journal's actions after it into `shared`
/// (which must be fresh), with the dispatch sessions they carry. Returns
/// the seq reached, if anything was loaded.
fn restore<S: Reducer>(
    shared: &Shared<S>,
    path: &std::path::Path,
    snap: Option<&Snapshot>,
    replay: Option<&Replay>,
) -> Result<Option<u64>, BackupError> {
    if snap.is_none() && replay.is_none_or(|r| r.records.is_empty()) {
        return Ok(None);
    }
    let corrupt = |reason: String| BackupError::Corrupt {
        path: path.into(),
        reason,
    };
    let mut sessions = shared.sessions.lock();
    let mut core = shared.core.write();
    if core.seq != 0 {
        return Err(BackupError::NotFresh { seq: core.seq });
    }
    if let Some(s) = snap {
        let (_, saved, state) = split_snapshot(s.version, &s.state)
            .map_err(|e| corrupt(format!("dispatch sessions do not decode: {e}")))?;
        let state = crate::history::read_state::<S>(s.ids.schema, state)
            .map_err(|e| corrupt(format!("state does not decode: {e}")))?;
        core.install(state, s.position.epoch, s.position.seq);
        sessions.restore(saved);
    }
    if let Some(r) = replay {
        if snap.is_none() {
            core.epoch = r.epoch;
        }
        let from = core.seq;
        for rec in &r.records {
            if rec.first_seq > core.seq + 1 {
                return Err(corrupt(format!(
                    "the journal starts at action {} but the snapshot ends at {}",
                    rec.first_seq, core.seq
                )));
            }
            let (marks, packed) = journal_marks(r.version, &rec.payload)
                .map_err(|e| corrupt(format!("journal record's sessions do not decode: {e}")))?;
            let converted;
            let (actions, packed) = if r.ids.schema == S::SCHEMA {
                let actions = codec::decode_packed::<S::Action>(rec.count, packed)
                    .map_err(|e| corrupt(format!("journal record does not decode: {e}")))?;
                (actions, packed)
            } else {
                // An earlier version's actions: converted, then encoded as
                // this version's, which is what the ring hands followers.
                let (actions, bytes) =
                    crate::history::convert_packed::<S>(r.ids.schema, rec.count, packed)
                        .map_err(|e| corrupt(format!("journal record does not convert: {e}")))?;
                converted = bytes;
                (actions, &converted[..])
            };
            let skip = ((core.seq + 1 - rec.first_seq) as usize).min(actions.len());
            core.apply_packed(&actions[skip..], packed, None);
            // Marks the snapshot's table already holds are not counted
            // twice (a batch rejected whole, at `from`, may not be there).
            for m in marks.iter().filter(|m| m.seq >= from) {
                sessions.record(m.session, m.batch, m.committed());
            }
        }
    }
    let seq = core.seq;
    drop(core);
    drop(sessions);
    shared.publish_reset(seq);
    Ok(Some(seq))
}

/// Hard-links each existing file of `paths` to `<path>.migrating`, so an
/// earlier version's files survive until their rewrite has succeeded;
/// returns the links made.
fn keep_beside(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BackupError> {
    let mut kept = Vec::new();
    for p in paths.iter().filter(|p| p.exists()) {
        let aside = crate::backup::sibling(p, ".migrating");
        let _ = std::fs::remove_file(&aside);
        std::fs::hard_link(p, &aside).map_err(|source| BackupError::Io {
            path: aside.clone(),
            op: "keep beside",
            source,
        })?;
        kept.push(aside);
    }
    Ok(kept)
}

/// Splits a snapshot body into the schema's description (format 3), the
/// dispatch sessions (format 2 and later) and the state.
pub(crate) fn split_snapshot(
    version: u16,
    body: &[u8],
) -> postcard::Result<(String, Vec<Saved>, &[u8])> {
    let (describe, rest) = if version >= 3 {
        postcard::take_from_bytes::<String>(body)?
    } else {
        (String::new(), body)
    };
    let (saved, state) = if version >= 4 {
        split_sessions::<Vec<Saved>>(true, rest)?
    } else {
        let (saved, state) = split_sessions::<Vec<SavedBefore>>(version >= 2, rest)?;
        (saved.into_iter().map(Into::into).collect(), state)
    };
    Ok((describe, saved, state))
}

/// Splits a journal record's payload of format `version` into the marks
/// of the dispatch batches it holds and the actions.
pub(crate) fn journal_marks(version: u16, payload: &[u8]) -> postcard::Result<(Vec<Mark>, &[u8])> {
    if version >= 3 {
        return split_sessions::<Vec<Mark>>(true, payload);
    }
    let (marks, packed) = split_sessions::<Vec<MarkBefore>>(version >= 2, payload)?;
    Ok((marks.into_iter().map(Into::into).collect(), packed))
}

/// `e`, with the first difference between this build's schema and the
/// one the file at `path` describes, when it is a schema mismatch and the
/// file (format 3) says what its schema is.
fn with_difference<S: Reducer>(e: BackupError, key: Option<&Key>) -> BackupError {
    let BackupError::SchemaMismatch {
        path,
        found,
        expected,
        difference,
    } = e
    else {
        return e;
    };
    let theirs = std::fs::read(&path).ok().and_then(|bytes| {
        let (_, body, _, version, _) = crate::backup::decode_any_store(bytes, key, &path).ok()?;
        let (describe, _, _) = split_snapshot(version, &body).ok()?;
        Some(describe).filter(|d| !d.is_empty())
    });
    let difference = match theirs
        .and_then(|t| crate::schema::first_difference(&crate::reducer::describe_store::<S>(), &t))
    {
        Some((ours, theirs)) => {
            format!("; first difference: here `{ours}`, in the file `{theirs}`")
        }
        None => difference,
    };
    BackupError::SchemaMismatch {
        path,
        found,
        expected,
        difference,
    }
}

/// Splits a payload of format 2 into what precedes the data (the dispatch
/// sessions) and the data; format 1 had only the data.
pub(crate) fn split_sessions<T: serde::de::DeserializeOwned + Default>(
    with: bool,
    payload: &[u8],
) -> postcard::Result<(T, &[u8])> {
    if with {
        postcard::take_from_bytes(payload)
    } else {
        Ok((T::default(), payload))
    }
}

/// Encodes the state with its position, under a read lock.
///
/// The body is the dispatch session table, then the state: taken together
/// (sessions lock, then core, as the apply path takes them) so that they
/// match.
fn snapshot<S: Reducer>(shared: &Shared<S>) -> Result<(Position, Vec<u8>), BackupError> {
    let sessions = shared.sessions.lock();
    let core = shared.core.read();
    let encode_err = |e: postcard::Error| BackupError::Corrupt {
        path: PathBuf::new(),
        reason: format!("state does not encode: {e}"),
    };
    // Format 3: what the schema is, then the sessions, then the state.
    let mut bytes =
        postcard::to_stdvec(&crate::reducer::describe_store::<S>()).map_err(encode_err)?;
    codec::encode_into(&sessions.save(), &mut bytes).map_err(encode_err)?;
    drop(sessions);
    codec::encode_into(&core.state, &mut bytes).map_err(encode_err)?;
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
        let closed = shared.closed.load(std::sync::atomic::Ordering::SeqCst);
        if seq == saved {
            if closed {
                return;
            }
            if shared.wait_change(version).await.is_some() {
                unsaved_since.get_or_insert_with(tokio::time::Instant::now);
            }
            continue;
        }
        let since = *unsaved_since.get_or_insert_with(tokio::time::Instant::now);
        let deadline = cfg.timeout.map(|t| since + t);
        // A closing store saves what it has, whatever the window.
        let due = closed
            || seq - saved >= count
            || deadline.is_some_and(|d| d <= tokio::time::Instant::now());
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
        // A closed store (`None`) is handled at the top of the loop.
        match deadline {
            Some(d) => {
                tokio::select! {
                    _ = shared.wait_change(version) => {}
                    _ = tokio::time::sleep_until(d) => {}
                }
            }
            None => {
                let _ = shared.wait_change(version).await;
            }
        }
    }
}

/// Journal mode: append what the action ring holds past the cursor, one
/// sync per batch, then let the store send and acknowledge it.
async fn journal_loop<S: Reducer>(
    shared: Arc<Shared<S>>,
    files: Arc<PlMutex<Files>>,
    wake: Arc<Notify>,
    start: Position,
    durable: watch::Sender<u64>,
) {
    let mut cursor = start.seq;
    loop {
        let res = match take_group(&shared, cursor) {
            Group::UpToDate => {
                if shared.closed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                wake.notified().await;
                continue;
            }
            // Behind the ring: a snapshot covers what was missed.
            Group::Evicted => write_snapshot(&shared, &files, true).await.map(|p| p.seq),
            Group::Actions {
                first,
                count,
                payload,
            } => {
                let f = Arc::clone(&files);
                let appended = blocking(move || {
                    let mut f = f.lock();
                    let big = match &mut f.journal {
                        Some(j) => {
                            j.append(first, count, &payload)?;
                            j.size_bytes() > COMPACT_BYTES
                        }
                        None => false,
                    };
                    Ok(big)
                })
                .await;
                let last = first + u64::from(count) - 1;
                match appended {
                    Ok(true) => write_snapshot(&shared, &files, true)
                        .await
                        .map(|p| p.seq.max(last)),
                    Ok(false) => Ok(last),
                    Err(e) => Err(e),
                }
            }
        };
        match res {
            Ok(seq) => {
                cursor = cursor.max(seq);
                durable.send_replace(cursor);
                shared.set_durable(cursor);
            }
            Err(e) => {
                shared.durability_failed(e.to_string());
                shared.report(crate::Error::Backup(e));
                return;
            }
        }
    }
}

/// What the journal copies out of the ring in one go.
enum Group {
    UpToDate,
    Evicted,
    /// A record's worth: the batch marks in it, then the packed actions.
    Actions {
        first: u64,
        count: u32,
        payload: Vec<u8>,
    },
}

/// Copies the actions after `cursor` (up to [`GROUP_BYTES`]) and the marks
/// of the dispatch batches they end, under a read lock.
fn take_group<S: Reducer>(shared: &Shared<S>, cursor: u64) -> Group {
    let core = shared.core.read();
    if core.seq <= cursor {
        return Group::UpToDate;
    }
    let Some(log) = &core.log else {
        return Group::Evicted;
    };
    let mut packed = Vec::new();
    let (mut first, mut count) = (0, 0u32);
    let mut at = cursor + 1;
    while packed.len() < GROUP_BYTES {
        match log.read_from(at, GROUP_BYTES - packed.len()) {
            Read::Actions {
                first_seq,
                count: n,
                packed: p,
            } => {
                if count == 0 {
                    first = first_seq;
                }
                packed.extend_from_slice(p);
                count += n;
                at = first_seq + u64::from(n);
            }
            Read::UpToDate => break,
            Read::Evicted => return Group::Evicted,
        }
    }
    if count == 0 {
        return Group::UpToDate;
    }
    let marks: Vec<Mark> = log.marks_in(first, at - 1).cloned().collect();
    let Ok(mut payload) = postcard::to_stdvec(&marks) else {
        // Plain integers always encode; a snapshot is the safe fallback.
        return Group::Evicted;
    };
    payload.extend_from_slice(&packed);
    Group::Actions {
        first,
        count,
        payload,
    }
}
