//! Backup files and the journal through the public API: round trips, one
//! test per error, and kill tests with a child process SIGKILLed at random
//! moments while it writes.

use redux_cluster::backup::{
    BackupError, BackupFile, Ids, Journal, KdfParams, Key, Position, Snapshot, HEADER_LEN,
};
use redux_cluster::{SchemaHash, StoreId};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;

// The writer's `IDS`, `state_for` and `batch_for`: one definition for both.
#[path = "bin/backup_writer.rs"]
#[allow(dead_code)]
mod writer;
use writer::{batch_for, state_for, IDS};

const WRITER: &str = env!("CARGO_BIN_EXE_backup_writer");
const POS: Position = Position {
    epoch: 42,
    seq: 1000,
};

fn key(pw: &str) -> Key {
    Key::with_params(pw, KdfParams::fast_for_tests())
}

fn state() -> Vec<u8> {
    let map: BTreeMap<String, u64> = (0..100).map(|i| (format!("key-{i}"), i)).collect();
    postcard::to_allocvec(&map).expect("a map encodes")
}

/// A backup written at `POS` with `key`, in a fresh directory.
fn written(key: Option<Key>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.backup");
    let mut f = BackupFile::open(&path, IDS, key).expect("open");
    f.write(POS, &state()).expect("write");
    (dir, path)
}

fn read(path: &Path, key: Option<&Key>) -> Result<Option<Snapshot>, BackupError> {
    BackupFile::read(path, &IDS, key)
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).expect("read");
    f(&mut b);
    std::fs::write(path, b).expect("write");
}

#[test]
fn round_trip_without_key() {
    let (_dir, path) = written(None);
    let s = read(&path, None).unwrap().expect("a snapshot");
    assert_eq!((s.position, s.state, s.encrypted), (POS, state(), false));
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(raw.len(), HEADER_LEN + state().len() + 32);
}

#[test]
fn round_trip_with_key_and_rewrites() {
    let k = key("correct horse");
    let (_dir, path) = written(Some(k.clone()));
    let raw = std::fs::read(&path).unwrap();
    assert!(
        !raw.windows(6).any(|w| w == b"key-42"),
        "the state is encrypted"
    );
    let s = read(&path, Some(&key("correct horse")))
        .unwrap()
        .expect("a snapshot");
    assert_eq!((s.position, s.state, s.encrypted), (POS, state(), true));

    // A rewrite keeps the salt (one derivation per process) and changes the
    // nonce.
    let mut f = BackupFile::open(&path, IDS, Some(k)).unwrap();
    f.write(POS, &state()).unwrap();
    let again = std::fs::read(&path).unwrap();
    assert_eq!(raw[104..120], again[104..120], "salt kept");
    assert_ne!(raw[136..148], again[136..148], "fresh nonce");
}

#[test]
fn no_file_is_none_but_a_bad_one_is_never_a_fresh_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.backup");
    let f = BackupFile::open(&path, IDS, None).unwrap();
    assert_eq!(f.load().unwrap(), None);
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(f.load(), Err(BackupError::Truncated { .. })));
    // A temp file left by a crash before the first rename is not a backup.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(dir.path().join("none.backup.tmp"), b"half a file").unwrap();
    assert_eq!(f.load().unwrap(), None);
}

#[test]
fn wrong_key() {
    let (_dir, path) = written(Some(key("right")));
    let err = read(&path, Some(&key("wrong"))).unwrap_err();
    assert!(matches!(err, BackupError::WrongKey { .. }), "{err}");
    assert!(err.to_string().starts_with("wrong key for "), "{err}");
    assert!(err.to_string().contains("store.backup"), "{err}");
}

#[test]
fn key_required_and_not_encrypted() {
    let (_dir, path) = written(Some(key("pw")));
    let err = read(&path, None).unwrap_err();
    assert!(matches!(err, BackupError::KeyRequired { .. }), "{err}");
    let (_dir, path) = written(None);
    let err = read(&path, Some(&key("pw"))).unwrap_err();
    assert!(matches!(err, BackupError::NotEncrypted { .. }), "{err}");
}

#[test]
fn tampered_body() {
    for k in [None, Some(key("pw"))] {
        let (_dir, path) = written(k.clone());
        edit(&path, |b| b[HEADER_LEN + 3] ^= 0x10);
        let err = read(&path, k.as_ref()).unwrap_err();
        assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("damaged or altered"), "{err}");
    }
}

#[test]
fn tampered_header() {
    for k in [None, Some(key("pw"))] {
        let (_dir, path) = written(k.clone());
        edit(&path, |b| b[97] ^= 0x01); // the seq
        let err = read(&path, k.as_ref()).unwrap_err();
        assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("header checksum"), "{err}");
    }
}

#[test]
fn truncated_file() {
    for k in [None, Some(key("pw"))] {
        let (_dir, path) = written(k.clone());
        let bytes = std::fs::read(&path).unwrap();
        let full = bytes.len() as u64;
        for cut in [0, 5, HEADER_LEN as u64 - 1, HEADER_LEN as u64, full - 1] {
            std::fs::write(&path, &bytes[..cut as usize]).unwrap();
            let err = read(&path, k.as_ref()).unwrap_err();
            match &err {
                BackupError::Truncated { found, .. } => assert_eq!(*found, cut),
                e => panic!("cut at {cut}: {e}"),
            }
            assert!(err.to_string().contains("is truncated"), "{err}");
        }
    }
}

#[test]
fn other_schema_names_both_hashes() {
    let (_dir, path) = written(None);
    let ours = Ids {
        schema: SchemaHash([0xab; 32]),
        ..IDS
    };
    let err = BackupFile::read(&path, &ours, None).unwrap_err();
    assert!(matches!(err, BackupError::SchemaMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&IDS.schema.to_hex()), "{msg}");
    assert!(msg.contains(&ours.schema.to_hex()), "{msg}");
}

#[test]
fn other_store_id() {
    let (_dir, path) = written(None);
    let ours = Ids {
        store: StoreId([0xcd; 32]),
        ..IDS
    };
    let err = BackupFile::read(&path, &ours, None).unwrap_err();
    assert!(matches!(err, BackupError::StoreMismatch { .. }), "{err}");
}

#[test]
fn newer_format_version() {
    let (_dir, path) = written(None);
    edit(&path, |b| b[8..10].copy_from_slice(&7u16.to_le_bytes()));
    let err = read(&path, None).unwrap_err();
    assert!(
        matches!(
            err,
            BackupError::NewerFormat {
                found: 7,
                supported: redux_cluster::backup::FORMAT_VERSION,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn not_a_backup_file() {
    let (_dir, path) = written(None);
    std::fs::write(&path, b"{\"version\":\"from the node original\"}").unwrap();
    let err = read(&path, None).unwrap_err();
    assert!(matches!(err, BackupError::NotABackup { .. }), "{err}");
    assert!(
        err.to_string().contains("not a redux-cluster backup file"),
        "{err}"
    );
}

#[test]
fn io_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("a-dir.backup");
    std::fs::create_dir(&path).unwrap();
    let err = read(&path, None).unwrap_err();
    assert!(matches!(err, BackupError::Io { .. }), "{err}");
    assert!(err.to_string().contains("a-dir.backup"), "{err}");
    let mut f = BackupFile::open(&path, IDS, None).unwrap();
    let err = f.write(POS, b"x").unwrap_err();
    assert!(matches!(err, BackupError::Io { .. }), "{err}");
    assert!(err.to_string().contains("a-dir.backup"), "{err}");
    assert!(
        !dir.path().join("a-dir.backup.tmp").exists(),
        "temp file removed"
    );
}

/// Reads the child's stdout lines until `f` returns true.
fn wait_for(out: &mut BufReader<ChildStdout>, mut f: impl FnMut(&str) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).expect("child stdout");
        assert!(n > 0, "the child exited early; it said: {lines:?}");
        let line = line.trim_end().to_string();
        let done = f(&line);
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// A child process that is killed when dropped, so that a failing test
/// leaves nothing running.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Held while spawning, and while this process holds a lock (see
/// [`no_spawns`]). Between fork and exec a child holds copies of all the
/// parent's descriptors, lock files included.
static SPAWN: Mutex<()> = Mutex::new(());

/// Holds off every spawn in this process while the guard lives. A test that
/// opens a lock in this process takes it first: a sibling test's child
/// forked while the lock is held would keep a copy of its descriptor (and so
/// the lock) until the exec, which the kernel finishes closing only after
/// `spawn` has returned, so the next child could find the lock still taken.
fn no_spawns() -> std::sync::MutexGuard<'static, ()> {
    SPAWN.lock().unwrap_or_else(|e| e.into_inner())
}

fn spawn(args: &[&str]) -> (Kid, BufReader<ChildStdout>) {
    let _one_at_a_time = no_spawns();
    let mut child = Command::new(WRITER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn backup_writer");
    let out = BufReader::new(child.stdout.take().expect("piped"));
    (Kid(child), out)
}

#[test]
fn locked_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.backup");
    let p = path.to_str().unwrap();
    let (mut kid, mut out) = spawn(&["hold", p]);
    wait_for(&mut out, |l| l == "locked");
    let err = BackupFile::open(&path, IDS, None).unwrap_err();
    match &err {
        BackupError::Locked { path: at, holder } => {
            assert_eq!(at, &path);
            assert_eq!(*holder, Some(kid.0.id()));
        }
        e => panic!("{e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("shared.backup is locked by another process (pid"),
        "{msg}"
    );
    let err = Journal::open(&path, IDS, None, Position::default()).unwrap_err();
    assert!(matches!(err, BackupError::Locked { .. }), "{err}");

    // Closing its stdin lets it exit; the lock goes with it.
    drop(kid.0.stdin.take());
    assert!(kid.0.wait().unwrap().success());
    BackupFile::open(&path, IDS, None).expect("free again");
}

/// A tiny deterministic generator, so a failing run can be repeated from
/// the seed it prints.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("BACKUP_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        println!("BACKUP_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Lets the child run on for a random while (a busy wait of up to about a
/// millisecond), so that the kill lands at any point of a write.
fn jitter(rng: &mut Rng) {
    for _ in 0..rng.below(300_000) {
        std::hint::spin_loop();
    }
}

/// Kills the child and returns every line it printed before it died.
fn kill_and_drain(mut kid: Kid, mut out: BufReader<ChildStdout>) -> Vec<String> {
    kid.0.kill().expect("kill");
    kid.0.wait().expect("reap");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("drain");
    rest.lines().map(str::to_string).collect()
}

fn number(line: &str, word: &str) -> Option<u64> {
    line.strip_prefix(word)?.strip_prefix(' ')?.parse().ok()
}

#[test]
fn snapshot_survives_sigkill_at_any_moment() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::seeded();
    let mut last = [0u64; 2];
    let mut inside = 0;
    for round in 0..100 {
        // Half the rounds encrypted, each kind in its own file.
        let encrypted = round % 2 == 1;
        let path = dir.path().join(if encrypted {
            "enc.backup"
        } else {
            "plain.backup"
        });
        let p = path.to_str().unwrap();
        let (child, mut out) = if encrypted {
            spawn(&["snapshot", p, "pw"])
        } else {
            spawn(&["snapshot", p])
        };
        let want = 1 + rng.below(4);
        let mut seen = 0;
        let mut lines = wait_for(&mut out, |l| {
            seen += u64::from(l.starts_with("wrote "));
            seen >= want
        });
        jitter(&mut rng);
        lines.extend(kill_and_drain(child, out));

        let start = lines.first().and_then(|l| number(l, "start"));
        assert_eq!(
            start,
            Some(last[round % 2]),
            "round {round}: the child resumed elsewhere"
        );
        let wrote = lines
            .iter()
            .filter_map(|l| number(l, "wrote"))
            .max()
            .expect("wrote");
        let k = encrypted.then(|| key("pw"));
        let s = BackupFile::read(&path, &IDS, k.as_ref())
            .unwrap_or_else(|e| panic!("round {round}: {e}"))
            .expect("a file");
        // The file is the last write the child reported, or the one after
        // it if the kill came between the rename and the report.
        assert!(
            s.position.seq == wrote || s.position.seq == wrote + 1,
            "round {round}: file at seq {}, child reported {wrote}",
            s.position.seq
        );
        assert!(
            s.state == state_for(s.position.seq),
            "round {round}: state of another seq"
        );
        // Evidence that the kill landed inside a write: a temp file left
        // behind, or a rename that was never reported.
        let tmp = path.with_file_name(format!(
            "{}.tmp",
            path.file_name().unwrap().to_str().unwrap()
        ));
        inside += u32::from(tmp.exists() || s.position.seq == wrote + 1);
        last[round % 2] = s.position.seq;
    }
    println!("{inside} of 100 kills landed inside a write");
}

#[test]
fn journal_keeps_every_durable_batch_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.journal");
    let p = path.to_str().unwrap();
    let mut rng = Rng::seeded();
    let mut durable_so_far = 0;
    let mut compacted_so_far = 0;
    for round in 0..50 {
        let (child, mut out) = spawn(&["journal", p]);
        let want = 1 + rng.below(40);
        let mut seen = 0;
        let mut lines = wait_for(&mut out, |l| {
            seen += u64::from(l.starts_with("durable "));
            seen >= want
        });
        jitter(&mut rng);
        lines.extend(kill_and_drain(child, out));

        let start = lines
            .first()
            .and_then(|l| number(l, "start"))
            .expect("start");
        assert_eq!(
            start,
            durable_so_far + 1,
            "round {round}: where the child resumed"
        );
        let durable: Vec<u64> = lines.iter().filter_map(|l| number(l, "durable")).collect();
        // A compaction that was started may have finished before the kill.
        let compacted = lines
            .iter()
            .filter_map(|l| number(l, "compacting"))
            .fold(compacted_so_far, u64::max);
        let no_spawns = no_spawns();
        let (journal, replay) = Journal::open(&path, IDS, None, Position::default())
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let mut next = replay.first_seq;
        for r in &replay.records {
            assert_eq!(r.first_seq, next, "round {round}: records in order, no gap");
            assert_eq!(r.count, batch_for(r.first_seq), "round {round}");
            let want: Vec<u8> = (r.first_seq..=r.last_seq())
                .flat_map(u64::to_le_bytes)
                .collect();
            assert_eq!(
                r.payload, want,
                "round {round}: payload of seq {}",
                r.first_seq
            );
            next = r.last_seq() + 1;
        }
        assert!(
            replay.first_seq <= compacted + 1,
            "round {round}: the journal starts at {}, but no compaction went past {compacted}",
            replay.first_seq
        );
        for d in durable.iter().chain([&durable_so_far]) {
            // Seqs at or below a compaction point may have been dropped with
            // it: a snapshot holds them.
            if *d > compacted && *d > 0 {
                assert!(
                    replay.first_seq <= *d && *d < next,
                    "round {round}: durable seq {d} missing from replay {}..{next}",
                    replay.first_seq
                );
            }
        }
        durable_so_far = next - 1;
        compacted_so_far = compacted;
        drop(journal);
        drop(no_spawns);
    }
}

#[test]
fn journal_written_here_replays_in_another_process() {
    // The journal from one process is read by the next one: append in this
    // process, replay in a child (which checks every payload and prints
    // where it resumes).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let no_spawns = no_spawns();
    let (mut j, _) = Journal::open(&path, IDS, None, Position::default()).unwrap();
    let mut next = 1;
    for _ in 0..10 {
        let count = batch_for(next);
        let payload: Vec<u8> = (next..next + u64::from(count))
            .flat_map(u64::to_le_bytes)
            .collect();
        j.append(next, count, &payload).unwrap();
        next += u64::from(count);
    }
    drop(j);
    drop(no_spawns);
    let (child, mut out) = spawn(&["journal", path.to_str().unwrap()]);
    let lines = wait_for(&mut out, |l| l.starts_with("start "));
    assert_eq!(number(&lines[0], "start"), Some(next));
    kill_and_drain(child, out);
}
