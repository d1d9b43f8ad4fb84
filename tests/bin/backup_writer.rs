//! Helper for the kill tests in `tests/backup.rs`: writes backups or journal
//! records in a loop and reports on stdout what is durable, until killed.
//!
//! ```text
//! backup_writer snapshot PATH [PASSWORD]  prints "start S", then "wrote S" per backup
//! backup_writer journal PATH              prints "start S", "durable S",
//!                                         "compacting S", "compacted S"
//! backup_writer hold PATH                 locks PATH, prints "locked", waits for stdin EOF
//! ```
//!
//! A snapshot at seq `s` holds [`state_for`]`(s)`; journal action `s` is
//! `s` as 8 little-endian bytes. The test checks both after every kill.

use redux_cluster::backup::{BackupFile, Ids, Journal, KdfParams, Key, Position};
use redux_cluster::{SchemaHash, StoreId};
use std::io::{Read, Write};
use std::process::ExitCode;

/// The ids every file of the kill tests carries.
pub const IDS: Ids = Ids {
    schema: SchemaHash([0x5c; 32]),
    store: StoreId([0x1d; 32]),
};

/// The state written at `seq`: the seq repeated, a length that varies with
/// it (up to 32 KiB) so that writes take different times.
pub fn state_for(seq: u64) -> Vec<u8> {
    let n = 1 + (seq.wrapping_mul(2_654_435_761) % 4096) as usize;
    seq.to_le_bytes().repeat(n)
}

/// Actions per journal batch for the batch starting at `seq`: 1 to 64.
pub fn batch_for(seq: u64) -> u32 {
    1 + (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as u32
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1..).unwrap_or_default() {
        [mode, path] if mode == "snapshot" => snapshot(path, None),
        [mode, path, pw] if mode == "snapshot" => snapshot(path, Some(pw)),
        [mode, path] if mode == "journal" => journal(path),
        [mode, path] if mode == "hold" => hold(path),
        _ => Err("usage: backup_writer snapshot|journal|hold PATH [PASSWORD]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backup_writer: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

fn say(line: std::fmt::Arguments<'_>) -> Result {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

fn snapshot(path: &str, password: Option<&String>) -> Result {
    let key = password.map(|p| Key::with_params(p, KdfParams::fast_for_tests()));
    let mut file = BackupFile::open(path, IDS, key)?;
    let start = match file.load()? {
        Some(s) => {
            if s.state != state_for(s.position.seq) {
                return Err(
                    format!("state at seq {} is not the one written", s.position.seq).into(),
                );
            }
            s.position.seq
        }
        None => 0,
    };
    say(format_args!("start {start}"))?;
    for seq in start + 1.. {
        file.write(Position { epoch: 1, seq }, &state_for(seq))?;
        say(format_args!("wrote {seq}"))?;
    }
    Ok(())
}

fn journal(path: &str) -> Result {
    let (mut j, replay) = Journal::open(path, IDS, None, Position { epoch: 1, seq: 0 })?;
    for r in &replay.records {
        let want: Vec<u8> = (r.first_seq..=r.last_seq())
            .flat_map(u64::to_le_bytes)
            .collect();
        if r.payload != want {
            return Err(format!("record at seq {} holds other actions", r.first_seq).into());
        }
    }
    say(format_args!("start {}", j.next_seq()))?;
    for n in 1u64.. {
        let first = j.next_seq();
        let count = batch_for(first);
        let payload: Vec<u8> = (first..first + u64::from(count))
            .flat_map(u64::to_le_bytes)
            .collect();
        j.append(first, count, &payload)?;
        say(format_args!("durable {}", first + u64::from(count) - 1))?;
        // Now and then, act as if a snapshot had been written a little
        // behind, and compact.
        if n % 16 == 0 {
            let after = (first + u64::from(count) - 1).saturating_sub(20);
            // Said before, so the test knows what may be gone if the kill
            // lands inside `compact`.
            say(format_args!("compacting {after}"))?;
            j.compact(Position {
                epoch: 1,
                seq: after,
            })?;
            say(format_args!("compacted {after}"))?;
        }
    }
    Ok(())
}

fn hold(path: &str) -> Result {
    let _file = BackupFile::open(path, IDS, None)?;
    say(format_args!("locked"))?;
    // Hold the lock until the test closes our stdin.
    std::io::stdin().read_to_end(&mut Vec::new())?;
    Ok(())
}
