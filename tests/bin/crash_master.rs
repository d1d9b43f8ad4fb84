//! A serving master for the crash tests: the test kills it with SIGKILL and
//! starts it again on the same files.
//!
//! Usage: `crash_master <dir> <unix|tcp> <journal|count> <port> [saved]`. Loads
//! `<dir>/counter.backup` (and its journal), serves on `<dir>/sock` or on
//! TCP+TLS at 127.0.0.1:port (port 0: any; the certificate is kept in
//! `<dir>/tls`), prints `loaded <seq> <total> <by1> <by2> <by3> <epoch>`,
//! then `serving <target>` (a target the `client` binary takes), then
//! (with `saved`) `saved <seq>` whenever more is on disk, until it is
//! killed. Its validator rejects `Add(_, 0)` ("adding nothing").

use redux_cluster::server::ServeConfig;
use redux_cluster::transport::tls::ServerIdentity;
use redux_cluster::BackupConfig;
use redux_cluster_tests::{Counter, CounterAction};
use std::io::Write;
use std::path::PathBuf;

#[tokio::main]
async fn main() {
    redux_cluster_tests::main_of(run()).await;
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().ok_or("dir")?);
    let transport = args.get(1).ok_or("unix|tcp")?;
    let mode = args.get(2).ok_or("journal|count")?;
    let port: u16 = args.get(3).map_or(Ok(0), |p| p.parse())?;
    let mut cfg = BackupConfig::new(dir.join("counter.backup"));
    cfg = if mode == "journal" {
        cfg.journal()
    } else {
        cfg.count(1000)
    };
    let store = Counter::builder()
        .validate(|_, action, _| match action {
            CounterAction::Add(_, 0) => Err("adding nothing".into()),
            _ => Ok(()),
        })
        .start()?;
    let backup = store.backup(cfg).await?;
    let s = store.get_state();
    println!(
        "loaded {} {} {} {} {} {:x}",
        store.seq(),
        s.total,
        s.by[1],
        s.by[2],
        s.by[3],
        store.epoch()
    );
    let (serve, target) = if transport == "tcp" {
        let identity = ServerIdentity::load_or_generate(dir.join("tls"), &["localhost".into()])?;
        let fp = identity.fingerprint();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        (ServeConfig::tcp_tls(addr, identity), format!("tcp://#{fp}"))
    } else {
        let sock = dir.join("sock");
        (ServeConfig::unix(&sock), sock.display().to_string())
    };
    let server = store.serve(serve).await?;
    let target = match target.strip_prefix("tcp://") {
        Some(fp) => format!("tcp://{}{fp}", server.local_addr().ok_or("no address")?),
        None => target,
    };
    println!("serving {target}");
    std::io::stdout().flush()?;
    if args.get(4).map(String::as_str) != Some("saved") {
        std::future::pending::<()>().await;
    }
    // Then `saved <seq>` each time more is on disk.
    let mut saved = backup.durable_seq();
    loop {
        saved = backup.durable(saved + 1).await?;
        println!("saved {saved}");
        std::io::stdout().flush()?;
    }
}
