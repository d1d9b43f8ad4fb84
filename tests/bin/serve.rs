//! A serving master for the hostile-peer tests (tests/hostile.rs), in its
//! own process so that its memory can be read alone.
//!
//! Usage: `serve <unix|tcp|ws> <dir>`. Serves a `Counter` with the login
//! `test1` / `12345` and handshakes limited to 2 s, on `<dir>/sock`, or on
//! TCP + TLS or WebSocket at 127.0.0.1 (any port); prints `serving
//! <target>` (a target the `client` binary takes; `ws://ADDR` for
//! WebSocket) and runs until killed.

use redux_cluster::server::ServeConfig;
use redux_cluster::transport::tcp_tls::TcpTlsOptions;
use redux_cluster::transport::tls::ServerIdentity;
use redux_cluster_tests::Counter;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

const HANDSHAKE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() {
    redux_cluster_tests::main_of(run()).await;
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let transport = args.first().ok_or("unix|tcp|ws")?.clone();
    let dir = PathBuf::from(args.get(1).ok_or("dir")?);
    let store = Counter::start_master()?;
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // Kept until the process is killed.
    let mut servers = Vec::new();
    let target = match transport.as_str() {
        "unix" => {
            let sock = dir.join("sock");
            let cfg = ServeConfig::unix(&sock);
            servers.push(store.serve(limited(cfg)).await?);
            sock.display().to_string()
        }
        "tcp" => {
            let identity = ServerIdentity::generate(&["localhost".into()])?;
            let fp = identity.fingerprint();
            let options = TcpTlsOptions::default().handshake_timeout(HANDSHAKE);
            let cfg = ServeConfig::tcp_tls(any, identity).tcp_tls_options(options);
            let server = store.serve(limited(cfg)).await?;
            let addr = server.local_addr().ok_or("no address")?;
            servers.push(server);
            format!("tcp://{addr}#{fp}")
        }
        #[cfg(feature = "ws")]
        "ws" => {
            use redux_cluster::ws::{ServeWs, WsConfig};
            let cfg = WsConfig::new(any)
                .login("test1", "12345")
                .handshake_timeout(Some(HANDSHAKE));
            let server = store.serve_ws(cfg).await?;
            let target = format!("ws://{}", server.local_addr());
            std::mem::forget(server);
            target
        }
        other => return Err(format!("unknown transport {other}").into()),
    };
    println!("serving {target}");
    std::io::stdout().flush()?;
    std::future::pending::<()>().await;
    drop(servers);
    Ok(())
}

fn limited(cfg: ServeConfig) -> ServeConfig {
    cfg.login("test1", "12345")
        .handshake_timeout(Some(HANDSHAKE))
}
