//! Persistence costs: Argon2id derivation, backup write/read time and size,
//! journal appends per second under group commit.
//!
//! ```text
//! cargo bench -p redux-cluster --bench backup            # full run
//! cargo bench -p redux-cluster --bench backup -- quick   # skips the 100 MB state
//! BACKUP_BENCH_DIR=/some/disk cargo bench ...            # where files go (default: temp dir)
//! ```
//!
//! Every write is a real `fsync` (backup) or `fdatasync` (journal) on the
//! directory's file system, so the figures are those of that disk.

use redux_cluster::backup::{BackupFile, Ids, Journal, KdfParams, Key, Position};
use redux_cluster::{SchemaHash, StoreId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const IDS: Ids = Ids {
    schema: SchemaHash([1; 32]),
    store: StoreId([2; 32]),
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "quick");
    let dir = std::env::var_os("BACKUP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("rc-backup-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir, quick);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &Path, quick: bool) -> Result<(), Box<dyn std::error::Error>> {
    kdf()?;

    let map: BTreeMap<String, u64> = (0..1000u64).map(|i| (format!("key-{i:04}"), i)).collect();
    let small = postcard::to_allocvec(&map)?;
    backup(dir, "1000-key BTreeMap<String,u64>", &small, 200)?;
    if !quick {
        let big = postcard::to_allocvec(&vec![0xa5u8; 100 << 20])?;
        backup(dir, "100 MB Vec<u8>", &big, 5)?;
    }

    for batch in [1u32, 64, 1024] {
        journal(dir, batch, false)?;
        journal(dir, batch, true)?;
    }
    Ok(())
}

fn kdf() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("rc-kdf-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let candidates = [
        (19 * 1024, 2),
        (46 * 1024, 1),
        (46 * 1024, 2),
        (64 * 1024, 1),
        (64 * 1024, 2),
    ];
    for (memory_kib, iterations) in candidates {
        let params = KdfParams {
            memory_kib,
            iterations,
            lanes: 1,
        };
        let path = dir.join("k");
        BackupFile::open(&path, IDS, Some(Key::with_params("pw", params)))?
            .write(Position::default(), b"")?;
        let mut times = Vec::new();
        for _ in 0..7 {
            // A fresh key each time: a key remembers what it derived.
            let key = Key::new("pw");
            let t = Instant::now();
            BackupFile::read(&path, &IDS, Some(&key))?;
            times.push(t.elapsed());
        }
        println!(
            "argon2id {memory_kib} KiB, {iterations} pass(es), 1 lane{}: load of a tiny file with a fresh key (= one derivation) median {:.1} ms",
            if params == KdfParams::DEFAULT { " (DEFAULT)" } else { "" },
            ms(median(&mut times))
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn backup(
    dir: &Path,
    name: &str,
    state: &[u8],
    runs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    for encrypted in [false, true] {
        let path = dir.join("bench.backup");
        let _ = std::fs::remove_file(&path);
        let key = encrypted.then(|| Key::new("a password of some length"));
        let mut file = BackupFile::open(&path, IDS, key)?;
        // The first write pays the key derivation; measure the ones after.
        file.write(Position { epoch: 1, seq: 0 }, state)?;
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        for seq in 1..=runs as u64 {
            let t = Instant::now();
            file.write(Position { epoch: 1, seq }, state)?;
            writes.push(t.elapsed());
            let t = Instant::now();
            let s = file.load()?.ok_or("no file")?;
            reads.push(t.elapsed());
            assert_eq!(s.state.len(), state.len());
        }
        let size = std::fs::metadata(&path)?.len();
        println!(
            "backup {name}, {}: state {} B, file {} B, write median {:.2} ms (p90 {:.2}), read median {:.2} ms  [{runs} runs]",
            if encrypted { "AES-256-GCM" } else { "plain+SHA-256" },
            state.len(),
            size,
            ms(median(&mut writes)),
            ms(pct(&mut writes, 0.9)),
            ms(median(&mut reads)),
        );
        drop(file);
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

fn journal(dir: &Path, batch: u32, encrypted: bool) -> Result<(), Box<dyn std::error::Error>> {
    let path = dir.join("bench.journal");
    let _ = std::fs::remove_file(&path);
    let key = encrypted.then(|| Key::new("a password of some length"));
    let (mut j, _) = Journal::open(&path, IDS, key, Position::default())?;
    // ~8-byte actions, as postcard would encode a small enum.
    let payload: Vec<u8> = (0..batch)
        .flat_map(|i| u64::from(i).to_le_bytes())
        .collect();
    let budget = Duration::from_secs(2);
    let t = Instant::now();
    let mut appends = 0u64;
    while t.elapsed() < budget {
        j.append(j.next_seq(), batch, &payload)?;
        appends += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "journal batch {batch:>4} x 8 B, {}: {:.0} appends/s (one write + fdatasync each), {:.0} actions/s, {:.3} ms/append",
        if encrypted { "AES-256-GCM" } else { "plain" },
        appends as f64 / secs,
        appends as f64 * f64::from(batch) / secs,
        secs * 1e3 / appends as f64,
    );
    drop(j);
    std::fs::remove_file(&path)?;
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    pct(v, 0.5)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
