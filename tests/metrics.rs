//! Metrics (feature `metrics`): a Prometheus recorder is installed, served
//! over HTTP the way an application would, and scraped while a master and
//! a client commit over a Unix socket.

use metrics_exporter_prometheus::PrometheusBuilder;
use redux_cluster::client::ConnectConfig;
use redux_cluster::server::ServeConfig;
use redux_cluster_tests::{Counter, CounterAction, Scoped};
use std::io::{Read, Write};
use std::time::Duration;

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(60);

/// Serves the recorder's text on `/metrics` (one thread, one request at a
/// time), as an application would; returns the address.
fn serve_metrics(handle: metrics_exporter_prometheus::PrometheusHandle) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut req = [0u8; 1024];
            let _ = conn.read(&mut req);
            let body = handle.render();
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("response");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of the first sample whose line starts with `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_and_a_client_report_their_metrics() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test process");
    let addr = serve_metrics(handle);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sock");
    let master = Scoped(Counter::start_master().expect("master"));
    let _server = master.serve(ServeConfig::unix(&path)).await.expect("serve");
    tokio::time::timeout(LIMIT, async {
        let client = Counter::builder()
            .connect(ConnectConfig::unix(&path).relay(false))
            .expect("client");
        for _ in 0..10 {
            client.commit(CounterAction::Inc(1)).await.expect("commit");
        }
        client.close().await.expect("close");
        // The master saw the client leave (cleanly) before this returns.
        master.wait_until(|s| s.total == 10).await.expect("applied");
    })
    .await
    .expect("within the limit");
    let text = tokio::task::spawn_blocking(move || scrape(addr))
        .await
        .expect("scrape");
    // Ten actions applied by the master and ten by the client.
    assert_eq!(
        value(
            &text,
            "redux_cluster_actions_applied_total{store=\"Counter\"}"
        ),
        Some(20.0),
        "{text}"
    );
    // Ten commits, each timed.
    assert_eq!(
        value(
            &text,
            "redux_cluster_commit_seconds_count{store=\"Counter\"}"
        ),
        Some(10.0),
        "{text}"
    );
    // The join got a snapshot; the rest came as action frames.
    assert!(
        value(
            &text,
            "redux_cluster_snapshots_sent_total{store=\"Counter\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
    assert!(
        value(
            &text,
            "redux_cluster_action_frames_sent_total{store=\"Counter\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
    assert!(
        text.contains("redux_cluster_events_total{store=\"Counter\",event=\"peer_joined\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("redux_cluster_queue_depth{store=\"Counter\"} 0"),
        "{text}"
    );
}
