//! A client process for the cluster-scheme tests; the test process serves.
//!
//! Usage: `client <target> <scenario> [args…] [--login LOGIN PASSWORD]`,
//! where the target is a socket path, or `quic://ADDR#FINGERPRINT` or
//! `tcp://ADDR#FINGERPRINT` (server name `localhost`, pinned certificate);
//! several targets separated by `|` are servers to fail over between (the
//! hubs of one store).
//! - `count SLOT K EXPECT`: dispatch K increments as `SLOT`, wait until the
//!   counter reaches EXPECT, print `final <total> <digest> <seq>`.
//! - `join`: print `joined` or `refused: <error>`.
//! - `readonly`: join, then try a commit; print `refused: <error>`.
//! - `follow E1 [E2 …]`: print `ready`; for each E, wait until the counter
//!   reaches it and print `reached <total> <digest> snapshots <n>`.
//! - `commits SLOT N W EXPECT`: N awaited commits as `SLOT`, W in flight
//!   at a time (through master restarts); prints `acked <k>` every 500,
//!   then waits until the counter reaches EXPECT and prints
//!   `final <total> <digest> <seq> by <by[SLOT]> rollbacks <r>`.
//! - `close SLOT K`: K fire-and-forget dispatches, then `close()`; prints
//!   `closed ok` or `closed: <error>`.
//! - `ahead SLOT N`: N awaited commits one at a time, prints `acked N`,
//!   waits for a rollback event, prints `rolled <total> <seq>`.
//! - `many N SLOT K EXPECT`: N client stores in this process, each
//!   dispatching K as SLOT; print `final …` once all reach EXPECT.
//! - `relay WORKER_EXE`: join (as a relay), fork `WORKER_EXE rejected`
//!   (tests/bin/worker.rs), which dispatches through this process; print
//!   the worker's lines.

use redux_cluster::client::ConnectConfig;
use redux_cluster::transport::tls::Trust;
use redux_cluster_tests::{Counter, CounterAction};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Rollbacks this process's stores reported (see `commits`).
static ROLLBACKS: AtomicU64 = AtomicU64::new(0);
static ROLLED: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[tokio::main]
async fn main() {
    redux_cluster_tests::main_of(run()).await;
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg_login = None;
    if let Some(i) = args.iter().position(|a| a == "--login") {
        let pw = args.get(i + 2).cloned().ok_or("--login LOGIN PASSWORD")?;
        let login = args.get(i + 1).cloned().ok_or("--login LOGIN PASSWORD")?;
        cfg_login = Some((login, pw));
        args.truncate(i);
    }
    let path = args.first().ok_or("socket path")?.clone();
    // `many` holds several connections of one store name in this process.
    let relay = args.get(1).map(String::as_str) != Some("many");
    let target = |path: &str| -> Result<ConnectConfig, Box<dyn std::error::Error>> {
        let remote =
            |rest: &str| -> Result<(std::net::SocketAddr, Trust), Box<dyn std::error::Error>> {
                let (addr, fp) = rest.split_once('#').ok_or("ADDR#FINGERPRINT")?;
                Ok((addr.parse()?, Trust::Fingerprint(fp.parse()?)))
            };
        Ok(if let Some(rest) = path.strip_prefix("quic://") {
            let (addr, trust) = remote(rest)?;
            ConnectConfig::quic(addr, "localhost", trust)
        } else if let Some(rest) = path.strip_prefix("tcp://") {
            let (addr, trust) = remote(rest)?;
            ConnectConfig::tcp_tls(addr, "localhost", trust)
        } else {
            ConnectConfig::unix(path)
        })
    };
    let mut targets = path.split('|');
    let mut cfg = target(targets.next().unwrap_or_default())?.relay(relay);
    for t in targets {
        cfg = cfg.or(target(t)?);
    }
    if let Some((l, p)) = &cfg_login {
        cfg = cfg.login(l, p);
    }
    let num = |i: usize| -> u64 { args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0) };
    let out = |s: String| {
        println!("{s}");
        let _ = std::io::stdout().flush();
    };
    let store = Counter::builder()
        .on_event(|e| {
            if matches!(e, redux_cluster::Event::RolledBack { .. }) {
                ROLLBACKS.fetch_add(1, Ordering::SeqCst);
                ROLLED.notify_waiters();
            }
        })
        .connect(cfg)?;
    match args.get(1).map(String::as_str) {
        Some("count") => {
            store.ready().await?;
            let slot = num(2) as u8;
            for _ in 0..num(3) {
                store.dispatch(CounterAction::Inc(slot))?;
            }
            let expect = num(4);
            let seq = store.wait_until(|s| s.total >= expect).await?;
            let s = store.get_state();
            out(format!("final {} {} {}", s.total, s.digest, seq));
        }
        Some("relay") => {
            store.ready().await?;
            let mut cmd = std::process::Command::new(args.get(2).ok_or("WORKER_EXE")?);
            cmd.arg("rejected").stdout(std::process::Stdio::piped());
            let mut worker = redux_cluster::cluster::spawn_worker(cmd)?;
            let stdout = worker.take_stdout().ok_or("the worker's stdout")?;
            let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
            while let Some(line) = lines.next_line().await? {
                out(line);
            }
        }
        Some("join") => match store.ready().await {
            Ok(()) => out("joined".into()),
            Err(e) => out(format!("refused: {e}")),
        },
        Some("readonly") => {
            store.ready().await?;
            match store.commit(CounterAction::Inc(7)).await {
                Ok(seq) => out(format!("committed {seq}")),
                Err(e) => out(format!("refused: {e}")),
            }
        }
        Some("follow") => {
            store.ready().await?;
            out("ready".into());
            for i in 2..args.len() {
                let expect = num(i);
                store.wait_until(|s| s.total >= expect).await?;
                let s = store.get_state();
                out(format!(
                    "reached {} {} snapshots {}",
                    s.total,
                    s.digest,
                    store.snapshots_applied()
                ));
            }
        }
        Some("commits") => {
            store.ready().await?;
            let (slot, n, w, expect) = (num(2) as u8, num(3), num(4), num(5));
            let issued = Arc::new(AtomicU64::new(0));
            let acked = Arc::new(AtomicU64::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..w {
                let (store, issued, acked) = (store.clone(), issued.clone(), acked.clone());
                tasks.spawn(async move {
                    while issued.fetch_add(1, Ordering::SeqCst) < n {
                        store.commit(CounterAction::Inc(slot)).await?;
                        let k = acked.fetch_add(1, Ordering::SeqCst) + 1;
                        if k % 500 == 0 {
                            println!("acked {k}");
                            let _ = std::io::stdout().flush();
                        }
                    }
                    Ok::<(), redux_cluster::DispatchError>(())
                });
            }
            while let Some(r) = tasks.join_next().await {
                r??;
            }
            let seq = store.wait_until(|s| s.total >= expect).await?;
            let s = store.get_state();
            out(format!(
                "final {} {} {} by {} rollbacks {}",
                s.total,
                s.digest,
                seq,
                s.by[usize::from(slot)],
                ROLLBACKS.load(Ordering::SeqCst)
            ));
        }
        Some("close") => {
            store.ready().await?;
            let (slot, k) = (num(2) as u8, num(3));
            for _ in 0..k {
                store.dispatch(CounterAction::Inc(slot))?;
            }
            match store.close().await {
                Ok(()) => out("closed ok".into()),
                Err(e) => out(format!("closed: {e}")),
            }
        }
        Some("ahead") => {
            store.ready().await?;
            let (slot, n) = (num(2) as u8, num(3));
            for _ in 0..n {
                store.commit(CounterAction::Inc(slot)).await?;
            }
            out(format!("acked {n}"));
            loop {
                let rolled = ROLLED.notified();
                if ROLLBACKS.load(Ordering::SeqCst) > 0 {
                    break;
                }
                rolled.await;
            }
            let (seq, total) = store.with(|s| s.total);
            out(format!("rolled {total} {seq}"));
        }
        Some("many") => {
            let (n, slot, k, expect) = (num(2), num(3) as u8, num(4), num(5));
            let mut stores = vec![store];
            for _ in 1..n {
                let mut cfg = target(&path)?.relay(false);
                if let Some((l, p)) = &cfg_login {
                    cfg = cfg.login(l, p);
                }
                stores.push(Counter::connect(cfg)?);
            }
            for s in &stores {
                s.ready().await?;
            }
            for _ in 0..k {
                for s in &stores {
                    s.dispatch(CounterAction::Inc(slot))?;
                }
            }
            let mut last = (0, 0, 0);
            for s in &stores {
                let seq = s.wait_until(|st| st.total >= expect).await?;
                let st = s.get_state();
                if last.0 != 0 && (st.total, st.digest) != (last.0, last.1) {
                    return Err("clients in one process disagree".into());
                }
                last = (st.total, st.digest, seq);
            }
            out(format!("final {} {} {}", last.0, last.1, last.2));
        }
        _ => return Err("unknown scenario".into()),
    }
    Ok(())
}
