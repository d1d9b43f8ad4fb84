//! Whole-system benchmark: real processes, real links. Prints one JSON line.
//!
//! ```text
//! cargo run --release --example bench -- --transport pipe --dispatcher peers --peers 3 --k 100000
//! cargo run --release --example bench -- --transport pipe --dispatcher latency --peers 1 --n 10000
//! ```
//! Flags: `--transport pipe|unix|quic|tcp-tls`, `--dispatcher peers|master|latency`,
//! `--peers N`, `--k K` (actions per dispatcher), `--n N` (round trips),
//! `--mode action|snapshot`, `--keys N` (filler keys in the state),
//! `--idle N` (extra idle client connections held open during the run,
//! unix transport; shows the server's memory per connection).
//! The run ends when every process has applied every action; `exact` is
//! true only if every process ended at exactly the expected state.
//!
//! `--dispatcher commits --w W`: each peer makes K awaited commits with W
//! in flight; `--journal` puts the master in journal mode (acks wait for
//! the group commit). p50/p99 are per-commit latencies seen by peer 1.
//!
//! `--scenario journal --k K`: one process in journal mode; prints durable
//! actions per second (the clock stops when action K is on disk).
//!
//! `--transport nats --nats URLS` (comma-separated, a running JetStream
//! cluster with a fresh stream; `bench/hubs` starts one per run): every
//! peer is a hub of the store (see `redux_cluster::hub`), and so is this
//! coordinator, which only dispatches the start and watches; the report
//! store stays on a Unix socket. The line adds the log messages published
//! per second and the actions per message.
//!
//! `--scenario reads --n N --keys K`: one process; N reads of the local
//! state through a guard (what a follower's reader does instead of a
//! network round trip), each timed; prints reads per second and p50/p99.
//!
//! `--scenario floor --n N [--transport tcp|udp]`: the machine's floor for
//! a round trip between two processes: a 64-byte ping-pong with a child
//! over a Unix socket (or over TCP or UDP on loopback: what browsers and
//! TLS clients, and QUIC, run on), N
//! times with blocking reads (both sides sleep between messages, as idle
//! processes do: on a VM each wake-up can cost tens of µs), then N times
//! spinning (neither side ever sleeps: what the hardware and kernel cost).

use redux_cluster::client::ConnectConfig;
use redux_cluster::server::ServeConfig;
use redux_cluster::transport::tls::{ServerIdentity, Trust};
use redux_cluster::{cluster, Mode};
use redux_cluster_examples::{
    peak_rss_mib, Bench, BenchAction, BenchReport, ReportAction, WorkerReport,
};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Args {
    transport: String,
    dispatcher: String,
    peers: u32,
    k: u64,
    n: u64,
    mode: String,
    keys: u32,
    idle: u32,
    scenario: String,
    w: u64,
    journal: bool,
    nats: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        transport: "pipe".into(),
        dispatcher: "peers".into(),
        peers: 3,
        k: 100_000,
        n: 10_000,
        mode: "action".into(),
        keys: 0,
        idle: 0,
        scenario: "sync".into(),
        w: 1,
        journal: false,
        nats: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--transport" => a.transport = val()?,
            "--dispatcher" => a.dispatcher = val()?,
            "--peers" => a.peers = val()?.parse().map_err(|e| format!("--peers: {e}"))?,
            "--k" => a.k = val()?.parse().map_err(|e| format!("--k: {e}"))?,
            "--n" => a.n = val()?.parse().map_err(|e| format!("--n: {e}"))?,
            "--mode" => a.mode = val()?,
            "--keys" => a.keys = val()?.parse().map_err(|e| format!("--keys: {e}"))?,
            "--scenario" => a.scenario = val()?,
            "--idle" => a.idle = val()?.parse().map_err(|e| format!("--idle: {e}"))?,
            "--w" => a.w = val()?.parse().map_err(|e| format!("--w: {e}"))?,
            "--journal" => a.journal = true,
            "--nats" => a.nats = val()?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    // `tcp` (plain, loopback) is only a floor: `--scenario floor`.
    let floor_tcp = a.scenario == "floor" && matches!(a.transport.as_str(), "tcp" | "udp");
    if !floor_tcp
        && !matches!(
            a.transport.as_str(),
            "pipe" | "unix" | "quic" | "tcp-tls" | "nats"
        )
    {
        return Err(format!(
            "unknown transport {} (pipe, unix, quic, tcp-tls, nats)",
            a.transport
        ));
    }
    if a.transport == "nats" && a.nats.is_empty() {
        return Err("--transport nats needs --nats URLS".into());
    }
    if !matches!(
        a.dispatcher.as_str(),
        "peers" | "master" | "latency" | "commits"
    ) {
        return Err(format!("unknown dispatcher {}", a.dispatcher));
    }
    if !matches!(a.mode.as_str(), "action" | "snapshot") {
        return Err(format!("unknown mode {}", a.mode));
    }
    if a.dispatcher == "latency" {
        a.peers = a.peers.max(1);
    }
    Ok(a)
}

/// Actions every process must end up having applied.
fn expected_total(a: &Args) -> u64 {
    match a.dispatcher.as_str() {
        "peers" | "commits" => a.k * u64::from(a.peers),
        "master" => a.k,
        _ => a.n,
    }
}

fn exact(a: &Args, s: &Bench) -> bool {
    let total = expected_total(a);
    let per_source_ok = match a.dispatcher.as_str() {
        "peers" | "commits" => (1..=a.peers as usize).all(|i| s.by.get(i).copied() == Some(a.k)),
        "master" => s.by.first().copied() == Some(a.k),
        _ => s.by.iter().sum::<u64>() == a.n,
    };
    s.total == total && per_source_ok && s.keys.len() == a.keys as usize && s.go
}

/// Set in a peer started for a socket transport: its id.
const PEER_ENV: &str = "BENCH_PEER_ID";
/// Set in the echo child of `--scenario floor`: the socket to connect to.
const FLOOR_ENV: &str = "BENCH_FLOOR_SOCKET";
/// Where a peer of a socket transport connects: `unix <dir>`, or
/// `quic|tcp-tls <bench addr> <report addr> <fingerprint>`.
const SOCK_ENV: &str = "BENCH_TARGET";

/// The client config for the bench store (`report == false`) or the report
/// store, from [`SOCK_ENV`].
fn peer_config(spec: &str, report: bool) -> Result<ConnectConfig, Box<dyn std::error::Error>> {
    let parts: Vec<&str> = spec.split(' ').collect();
    match parts.as_slice() {
        ["unix", dir] | ["nats", dir, _] => {
            let name = if report { "report.sock" } else { "bench.sock" };
            Ok(ConnectConfig::unix(std::path::Path::new(dir).join(name)))
        }
        [net, bench, rep, fp] => {
            let addr: std::net::SocketAddr = if report { rep.parse()? } else { bench.parse()? };
            let trust = Trust::Fingerprint(fp.parse()?);
            Ok(if *net == "quic" {
                ConnectConfig::quic(addr, "localhost", trust)
            } else {
                ConnectConfig::tcp_tls(addr, "localhost", trust)
            })
        }
        _ => Err(format!("bad {SOCK_ENV}: {spec}").into()),
    }
}

/// The peers of a socket run: plain processes that connect as clients.
struct Peers(Vec<tokio::process::Child>);

impl Peers {
    fn spawn(n: u32, target: &str) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        let mut v = Vec::new();
        for id in 1..=n {
            v.push(
                tokio::process::Command::new(&exe)
                    .args(&args)
                    .env(PEER_ENV, id.to_string())
                    .env(SOCK_ENV, target)
                    .kill_on_drop(true)
                    .spawn()?,
            );
        }
        Ok(Self(v))
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    let is_peer = cluster::is_worker() || std::env::var_os(PEER_ENV).is_some();
    let res = if args.scenario == "journal" {
        journal(args).await
    } else if args.scenario == "reads" {
        reads(args).await
    } else if args.scenario == "floor" {
        floor(args)
    } else if !is_peer {
        master(args).await
    } else {
        worker(args).await
    };
    if let Err(e) = res {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

async fn master(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mode = if a.mode == "snapshot" {
        Mode::Snapshot
    } else {
        Mode::default()
    };
    let store = if a.transport == "nats" {
        let s = Bench::builder().mode(mode).hub(hub_config(&a.nats))?;
        s.ready().await?;
        s
    } else {
        Bench::builder().mode(mode).start()?
    };
    let report = BenchReport::start_master()?;
    if a.keys > 0 {
        store.dispatch(BenchAction::Fill(a.keys))?;
    }
    let dir = std::env::temp_dir().join(format!("rc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    if a.journal {
        store
            .backup(redux_cluster::BackupConfig::new(dir.join("bench.backup")).journal())
            .await?;
    }
    let mut workers = Vec::new();
    let mut peers = Peers(Vec::new());
    let mut servers = Vec::new();
    if a.transport == "pipe" {
        workers = cluster::fork(a.peers as usize)?;
    } else if a.transport == "nats" {
        servers.push(
            report
                .serve(ServeConfig::unix(dir.join("report.sock")))
                .await?,
        );
        peers = Peers::spawn(a.peers, &format!("nats {} {}", dir.display(), a.nats))?;
    } else if a.transport == "unix" {
        std::fs::create_dir_all(&dir)?;
        servers.push(
            store
                .serve(ServeConfig::unix(dir.join("bench.sock")))
                .await?,
        );
        servers.push(
            report
                .serve(ServeConfig::unix(dir.join("report.sock")))
                .await?,
        );
        peers = Peers::spawn(a.peers, &format!("unix {}", dir.display()))?;
    } else {
        let identity = ServerIdentity::generate(&["localhost".to_string()])?;
        let fp = identity.fingerprint();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse()?;
        let cfg = |id: ServerIdentity| {
            if a.transport == "quic" {
                ServeConfig::quic(any, id)
            } else {
                ServeConfig::tcp_tls(any, id)
            }
        };
        let s = store.serve(cfg(identity.clone())).await?;
        let r = report.serve(cfg(identity)).await?;
        let target = format!(
            "{} {} {} {fp}",
            a.transport,
            s.local_addr().ok_or("no address")?,
            r.local_addr().ok_or("no address")?
        );
        servers.push(s);
        servers.push(r);
        peers = Peers::spawn(a.peers, &target)?;
    }
    report.wait_until(|r| r.ready == a.peers).await?;

    let total = expected_total(&a);
    let start = Instant::now();
    store.dispatch(BenchAction::Go)?;
    if a.dispatcher == "master" {
        for _ in 0..a.k {
            store.dispatch(BenchAction::Inc(0))?;
        }
    }
    store.wait_until(|s| s.total >= total).await?;
    report
        .wait_until(|r| r.done.len() == a.peers as usize)
        .await?;
    let elapsed = start.elapsed();

    let r = report.get_state();
    let all_exact = exact(&a, &store.get_state()) && r.done.iter().all(|w| w.exact);
    let peer_rss = r.done.iter().map(|w| w.rss_mib).fold(0.0, f64::max);
    let lat = r.done.iter().find_map(|w| w.latency_us);
    // Hubs: messages published to the log, and actions per message.
    let (msgs, acts) = r
        .done
        .iter()
        .filter_map(|w| w.published)
        .chain(store.hub_published())
        .fold((0, 0), |(m, n), (a, b)| (m + a, n + b));
    let actions_per_s = total as f64 / elapsed.as_secs_f64();
    let fmt = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:.1}"));
    println!(
        "{{\"system\":\"rust\",\"transport\":\"{}\",\"mode\":\"{}\",\"dispatcher\":\"{}\",\"w\":{},\"journal\":{},\"peers\":{},\"k\":{},\"keys\":{},\"actions_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"coord_rss_mib\":{:.1},\"peer_rss_mib\":{:.1},\"log_messages_per_s\":{:.0},\"actions_per_message\":{:.1},\"exact\":{}}}",
        a.transport,
        a.mode,
        a.dispatcher,
        a.w,
        a.journal,
        a.peers,
        if a.dispatcher == "latency" { a.n } else { a.k },
        a.keys,
        actions_per_s,
        fmt(lat.map(|l| l.0)),
        fmt(lat.map(|l| l.1)),
        fmt(lat.map(|l| l.2)),
        peak_rss_mib(),
        peer_rss,
        msgs as f64 / elapsed.as_secs_f64(),
        if msgs == 0 { 0.0 } else { acts as f64 / msgs as f64 },
        all_exact
    );
    for w in &mut workers {
        w.wait().await?;
    }
    for p in &mut peers.0 {
        p.wait().await?;
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `--scenario journal`: one process, journal mode, K actions dispatched;
/// the clock stops when the last is durable (appended and fdatasync'ed).
async fn journal(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("rc-bench-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Bench::start_master()?;
    let backup = store
        .backup(redux_cluster::BackupConfig::new(dir.join("bench.backup")).journal())
        .await?;
    let start = Instant::now();
    let batch = vec![BenchAction::Inc(0); 64];
    let mut left = a.k;
    while left > 0 {
        let n = left.min(64) as usize;
        store.dispatch_all(&batch[..n])?;
        left -= n as u64;
    }
    let durable = backup.durable(a.k).await?;
    let elapsed = start.elapsed();
    let exact = durable >= a.k && store.state().total == a.k;
    let journal_bytes = std::fs::metadata(dir.join("bench.backup.journal")).map_or(0, |m| m.len());
    println!(
        "{{\"system\":\"rust\",\"scenario\":\"journal\",\"k\":{},\"actions_per_s\":{:.0},\"journal_bytes\":{},\"coord_rss_mib\":{:.1},\"exact\":{}}}",
        a.k,
        a.k as f64 / elapsed.as_secs_f64(),
        journal_bytes,
        peak_rss_mib(),
        exact
    );
    store.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn reads(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = Bench::start_master()?;
    if a.keys > 0 {
        store.dispatch(BenchAction::Fill(a.keys))?;
    }
    store.dispatch(BenchAction::Inc(0))?;
    let mut samples = Vec::with_capacity(a.n as usize);
    let mut sum = 0u64;
    let start = Instant::now();
    for _ in 0..a.n {
        let t = Instant::now();
        sum = sum.wrapping_add(store.state().total);
        samples.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    let (p50, p99, max) = percentiles(samples);
    println!(
        "{{\"system\":\"rust\",\"scenario\":\"reads\",\"n\":{},\"reads_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"exact\":{}}}",
        a.n,
        a.n as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
        max,
        sum == a.n
    );
    store.shutdown();
    Ok(())
}

async fn worker(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (id, store, report, idle) = match std::env::var_os(SOCK_ENV) {
        None => (
            cluster::worker_id().ok_or("no worker id")?,
            Bench::start_master()?,
            BenchReport::start_master()?,
            Vec::new(),
        ),
        Some(spec) => {
            let spec = spec.to_string_lossy().into_owned();
            let id: u32 = std::env::var(PEER_ENV)?.parse()?;
            let store = match spec.split(' ').collect::<Vec<_>>().as_slice() {
                ["nats", _, urls] => Bench::builder().hub(hub_config(urls))?,
                _ => Bench::connect(peer_config(&spec, false)?)?,
            };
            let report = BenchReport::connect(peer_config(&spec, true)?)?;
            // This peer's share of the idle connections.
            let share = a.idle / a.peers + u32::from(id <= a.idle % a.peers);
            let mut idle = Vec::new();
            for _ in 0..share {
                let s = Bench::connect(peer_config(&spec, false)?.relay(false))?;
                idle.push(s);
            }
            for s in &idle {
                s.ready().await?;
            }
            (id, store, report, idle)
        }
    };
    store.ready().await?;
    report.ready().await?;
    report.dispatch(ReportAction::Ready)?;
    store.wait_until(|s| s.go).await?;

    let mut latency = None;
    match a.dispatcher.as_str() {
        "peers" => {
            let src = id as u16;
            for _ in 0..a.k {
                store.dispatch(BenchAction::Inc(src))?;
            }
        }
        "latency" if id == 1 => {
            let mut samples = Vec::with_capacity(a.n as usize);
            for _ in 0..a.n {
                let t = Instant::now();
                store.commit(BenchAction::Inc(id as u16)).await?;
                samples.push(t.elapsed());
            }
            latency = Some(percentiles(samples));
        }
        "commits" => {
            let samples = commits(&store, id as u16, a.k, a.w).await?;
            if id == 1 {
                latency = Some(percentiles(samples));
            }
        }
        _ => {}
    }
    let total = expected_total(&a);
    store.wait_until(|s| s.total >= total).await?;
    let mut ok = exact(&a, &store.get_state());
    // Idle connections follow too: each must end at the same state.
    for s in &idle {
        s.wait_until(|st| st.total >= total).await?;
        ok &= exact(&a, &s.get_state());
    }
    report
        .commit(ReportAction::Done(WorkerReport {
            id,
            rss_mib: peak_rss_mib(),
            exact: ok,
            latency_us: latency,
            published: store.hub_published(),
        }))
        .await?;
    Ok(())
}

/// K awaited commits as `src`, W in flight; returns each one's latency.
async fn commits(
    store: &redux_cluster::Store<Bench>,
    src: u16,
    k: u64,
    w: u64,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let issued = std::sync::Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..w.max(1) {
        let (store, issued) = (store.clone(), std::sync::Arc::clone(&issued));
        tasks.spawn(async move {
            let mut samples = Vec::new();
            while issued.fetch_add(1, Ordering::Relaxed) < k {
                let t = Instant::now();
                store.commit(BenchAction::Inc(src)).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, redux_cluster::DispatchError>(samples)
        });
    }
    let mut all = Vec::with_capacity(k as usize);
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    Ok(all)
}

/// A hub of the bench store on the NATS servers `urls` (comma-separated).
fn hub_config(urls: &str) -> redux_cluster::hub::HubConfig {
    redux_cluster::hub::HubConfig::new(urls.split(','))
}

/// p50, p99 and max of `samples`, in microseconds.
/// A socket the floor ping-pongs over (Unix or TCP).
trait Pong: std::io::Read + std::io::Write {
    fn nonblocking(&self) -> std::io::Result<()>;
}

impl Pong for std::os::unix::net::UnixStream {
    fn nonblocking(&self) -> std::io::Result<()> {
        self.set_nonblocking(true)
    }
}

impl Pong for std::net::TcpStream {
    fn nonblocking(&self) -> std::io::Result<()> {
        self.set_nonblocking(true)
    }
}

/// A connected UDP socket as a stream of 64-byte datagrams.
struct Udp(std::net::UdpSocket);

impl std::io::Read for Udp {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.recv(buf)
    }
}

impl std::io::Write for Udp {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Pong for Udp {
    fn nonblocking(&self) -> std::io::Result<()> {
        self.0.set_nonblocking(true)
    }
}

/// Reads `buf` whole, spinning instead of sleeping (a non-blocking socket).
fn spin_read(s: &mut impl Pong, buf: &mut [u8]) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The echo side of the floor: `n` sleeping rounds, then `n` spinning.
fn echo(s: &mut impl Pong, n: u64) -> std::io::Result<()> {
    let mut buf = [0u8; 64];
    for _ in 0..n {
        s.read_exact(&mut buf)?;
        s.write_all(&buf)?;
    }
    s.nonblocking()?;
    for _ in 0..n {
        spin_read(s, &mut buf)?;
        s.write_all(&buf)?;
    }
    Ok(())
}

/// The timed side of the floor: (sleeping, spinning) round trips.
fn ping(s: &mut impl Pong, n: u64) -> std::io::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut buf = [0u8; 64];
    let mut sleeping = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        sleeping.push(t.elapsed());
    }
    s.nonblocking()?;
    let mut spinning = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&buf)?;
        spin_read(s, &mut buf)?;
        spinning.push(t.elapsed());
    }
    Ok((sleeping, spinning))
}

/// `--scenario floor [--transport tcp|udp]`: see the module docs.
/// Blocking std sockets, no runtime involved.
fn floor(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::{UnixListener, UnixStream};
    let tcp = a.transport == "tcp";
    if a.transport == "udp" {
        return udp_floor(&a);
    }
    if let Some(at) = std::env::var_os(FLOOR_ENV) {
        if tcp {
            let mut s = TcpStream::connect(at.to_string_lossy().as_ref())?;
            s.set_nodelay(true)?;
            echo(&mut s, a.n)?;
        } else {
            echo(&mut UnixStream::connect(at)?, a.n)?;
        }
        return Ok(());
    }
    let spawn = |at: &std::ffi::OsStr| {
        std::process::Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env(FLOOR_ENV, at)
            .spawn()
    };
    let ((sleeping, spinning), mut child) = if tcp {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let child = spawn(listener.local_addr()?.to_string().as_ref())?;
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        (ping(&mut s, a.n)?, child)
    } else {
        let path = std::env::temp_dir().join(format!("bench-floor-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        let child = spawn(path.as_os_str())?;
        let (mut s, _) = listener.accept()?;
        let _ = std::fs::remove_file(&path);
        (ping(&mut s, a.n)?, child)
    };
    child.wait()?;
    print_floor(if tcp { "tcp" } else { "unix" }, a.n, sleeping, spinning);
    Ok(())
}

/// The floor over UDP on loopback (what QUIC runs on): the child binds its
/// own socket and its first datagram tells the parent where it is.
fn udp_floor(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use std::net::UdpSocket;
    if let Some(peer) = std::env::var_os(FLOOR_ENV) {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.connect(peer.to_string_lossy().as_ref())?;
        // The parent learns our address from the first datagram.
        s.send(&[0u8; 64])?;
        return Ok(echo(&mut Udp(s), a.n)?);
    }
    let s = UdpSocket::bind("127.0.0.1:0")?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env(FLOOR_ENV, s.local_addr()?.to_string())
        .spawn()?;
    let mut hello = [0u8; 64];
    let (_, from) = s.recv_from(&mut hello)?;
    s.connect(from)?;
    let (sleeping, spinning) = ping(&mut Udp(s), a.n)?;
    child.wait()?;
    print_floor("udp", a.n, sleeping, spinning);
    Ok(())
}

fn print_floor(over: &str, n: u64, sleeping: Vec<Duration>, spinning: Vec<Duration>) {
    let (p50, p99, _) = percentiles(sleeping);
    let (spin50, spin99, _) = percentiles(spinning);
    println!(
        "{{\"system\":\"rust\",\"scenario\":\"floor\",\"over\":\"{over}\",\"n\":{n},\"p50_us\":{p50:.1},\"p99_us\":{p99:.1},\"spin_p50_us\":{spin50:.1},\"spin_p99_us\":{spin99:.1}}}"
    );
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort_unstable();
    let pct = |p: f64| -> f64 {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples
            .get(i)
            .copied()
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
            * 1e6
    };
    (pct(0.50), pct(0.99), pct(1.0))
}
