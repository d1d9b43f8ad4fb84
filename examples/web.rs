//! Browser tabs sharing one store: a counter and a todo list kept by a Rust
//! master, served to pages over WebSocket (the seed's `redux-cluster-ws`).
//!
//! Build the browser client once, then run:
//! ```text
//! (cd clients/js && npm install && npx tsc)
//! cargo run --example web --features ws
//! ```
//! and open the printed `http://` address in several tabs (login `test2`,
//! password `123456`). Options: `--http ADDR` (default 127.0.0.1:8080),
//! `--ws ADDR` (default 127.0.0.1:10002), `--login NAME --password PW`,
//! `--open yes` (no login: every browser is admitted; bench/ws uses it),
//! `--actions no` (patches without the actions, so no DevTools).
//! Lines on standard input dispatch from Rust: `inc`, `dec`, `add TEXT`,
//! `clear`; `state` prints the state as JSON.

use redux_cluster::ws::{ServeWs, WsConfig};
use redux_cluster_examples::board::{Board, BoardAction};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Args {
    http: SocketAddr,
    ws: SocketAddr,
    login: String,
    password: String,
    open: bool,
    actions: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        http: SocketAddr::from(([127, 0, 0, 1], 8080)),
        ws: SocketAddr::from(([127, 0, 0, 1], redux_cluster::ws::DEFAULT_PORT)),
        login: "test2".into(),
        password: "123456".into(),
        open: false,
        actions: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--http" => a.http = value.parse().map_err(|e| format!("--http: {e}"))?,
            "--ws" => a.ws = value.parse().map_err(|e| format!("--ws: {e}"))?,
            "--login" => a.login = value,
            "--password" => a.password = value,
            "--open" => a.open = value == "yes",
            "--actions" => a.actions = value != "no",
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    // The master checks each action before it is applied: a rejected one
    // is applied nowhere, and the page's `dispatch` promise rejects.
    let store = Board::builder()
        .validate(|state, action, _peer| match action {
            BoardAction::AddTodo(text) if text.trim().is_empty() => {
                Err("a todo needs some text".into())
            }
            BoardAction::ToggleTodo(i) | BoardAction::RemoveTodo(i) if *i >= state.todos.len() => {
                Err(format!("there is no todo #{i}").into())
            }
            _ => Ok(()),
        })
        .start()?;
    let ws = store
        // Actions go to the pages too, for the Redux DevTools extension.
        .serve_ws(if args.open {
            WsConfig::new(args.ws).actions(args.actions)
        } else {
            WsConfig::new(args.ws)
                .login(&args.login, &args.password)
                .actions(args.actions)
        })
        .await?;
    let http = TcpListener::bind(args.http).await?;
    let ws_port = ws.local_addr().port();
    // Machine-readable lines first: the end-to-end test reads them.
    println!("http http://{}/", http.local_addr()?);
    println!("ws ws://{}/", ws.local_addr());
    eprintln!(
        "open http://{}/ in several tabs; login {}",
        http.local_addr()?,
        args.login
    );

    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = http.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Err(e) = serve_http(conn, ws_port).await {
                    eprintln!("http: {e}");
                }
            });
        }
    });

    // Standard input is read on a plain thread: it blocks.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let line = line.trim();
        let action = match line.split_once(' ').unwrap_or((line, "")) {
            ("inc", _) => BoardAction::Increment,
            ("dec", _) => BoardAction::Decrement,
            ("add", text) => BoardAction::AddTodo(text.to_owned()),
            ("clear", _) => BoardAction::ClearDone,
            ("state", _) => {
                println!("state {}", serde_json::to_string(&store.get_state())?);
                continue;
            }
            ("", _) => continue,
            (other, _) => {
                eprintln!("unknown command {other}");
                continue;
            }
        };
        let seq = store.commit(action).await?;
        println!("dispatched {seq}");
    }
    // Standard input closed: keep serving until interrupted.
    tokio::signal::ctrl_c().await?;
    ws.shutdown().await;
    Ok(())
}

/// A minimal static file server: the page and the built client.
async fn serve_http(mut conn: TcpStream, ws_port: u16) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return Ok(());
        }
        let n = conn.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/");
    let (status, kind, body) = match path {
        "/" | "/index.html" => (
            "200 OK",
            "text/html; charset=utf-8",
            include_str!("web/index.html")
                .replace("__WS_PORT__", &ws_port.to_string())
                .into_bytes(),
        ),
        "/redux-cluster.js" | "/devtools.js" => {
            let name = if path == "/devtools.js" {
                "devtools.js"
            } else {
                "index.js"
            };
            let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../clients/js/dist")
                .join(name);
            match tokio::task::spawn_blocking(move || std::fs::read(file)).await {
                Ok(Ok(js)) => ("200 OK", "text/javascript; charset=utf-8", js),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    b"build the client first: cd clients/js && npm install && npx tsc".to_vec(),
                ),
            }
        }
        _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(header.as_bytes()).await?;
    conn.write_all(&body).await?;
    conn.shutdown().await
}
