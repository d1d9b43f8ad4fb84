//! A real NATS JetStream cluster for the hub tests: `nats-server` processes
//! (Debian's package; `scripts/test` installs it) on free loopback ports
//! with their own store directories, started, killed with SIGKILL and
//! restarted by PID.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the server (not on a normal user's PATH).
const CANDIDATES: [&str; 3] = [
    "nats-server",
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
];

/// The `nats-server` executable; panics, saying how to get it, when it is
/// missing: a hub test never skips.
pub fn server_exe() -> String {
    for c in CANDIDATES {
        if Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return c.to_string();
        }
    }
    panic!(
        "nats-server not found: the hub tests need it. Run `scripts/test` (it installs \
         Debian's nats-server), or `apt-get install nats-server`"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Node {
    name: String,
    client: u16,
    cluster: u16,
    monitor: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Lines the node logs; each wakes a wait for its health.
    log: Option<std::sync::mpsc::Receiver<String>>,
}

/// A cluster of nodes; every node is killed when it is dropped.
pub struct NatsCluster {
    exe: String,
    /// Further arguments every node gets (logins, TLS).
    extra: Vec<String>,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `n` nodes and waits until each reports JetStream healthy (a
    /// meta leader exists).
    pub fn start(n: usize) -> Self {
        Self::start_with(n, &[])
    }

    /// Like [`NatsCluster::start`], every node with `extra` arguments.
    pub fn start_with(n: usize, extra: &[&str]) -> Self {
        let exe = server_exe();
        let dir = tempfile::tempdir().expect("a temp dir");
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("n{i}"),
                client: free_port(),
                cluster: free_port(),
                monitor: free_port(),
                dir: dir.path().join(format!("n{i}")),
                child: None,
                log: None,
            })
            .collect();
        let mut c = Self {
            exe,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            nodes,
            _dir: dir,
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_healthy(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("nats://127.0.0.1:{}", n.cluster))
            .collect();
        let node = &self.nodes[i];
        let mut cmd = Command::new(&self.exe);
        cmd.args(["-a", "127.0.0.1", "-n", &node.name])
            .args(["-p", &node.client.to_string()])
            .args(["-m", &node.monitor.to_string()])
            .arg("-js")
            .arg("-sd")
            .arg(&node.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if self.nodes.len() > 1 {
            cmd.args(["--cluster_name", "rc-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", node.cluster)])
                .args(["--routes", &routes.join(",")]);
        }
        let mut child = cmd.spawn().expect("start nats-server");
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        self.nodes[i].child = Some(child);
        self.nodes[i].log = Some(rx);
    }

    /// The client URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client))
            .collect()
    }

    /// Kills node `i` with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again (same ports and store) and waits until it is
    /// healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_healthy(i);
    }

    /// Waits until node `i`'s monitoring endpoint says JetStream is healthy
    /// (bounded: a node that never gets there fails the test).
    fn wait_healthy(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        let mut respawns = 0;
        while Instant::now() < deadline {
            let exited = self.nodes[i]
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited && respawns < 3 {
                // It could not bind: another process took a port between
                // `free_port` and the server's bind. New ports, again.
                respawns += 1;
                let node = &mut self.nodes[i];
                (node.client, node.cluster, node.monitor) = (free_port(), free_port(), free_port());
                self.spawn(i);
                continue;
            }
            match get(self.nodes[i].monitor, "/healthz") {
                Ok(body) if body.contains("\"ok\"") => return,
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            // Asked again after the node logs something (it logs as it
            // starts, finds its routes and elects a meta leader), or after
            // 100 ms without a line.
            if let Some(log) = &self.nodes[i].log {
                let _ = log.recv_timeout(Duration::from_millis(100));
            }
        }
        panic!("nats node {i} not healthy within 60 s: {last}");
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A plain HTTP GET on loopback.
fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
