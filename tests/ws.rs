//! Browser clients over WebSocket, driven by a Rust WebSocket client that
//! speaks the JSON protocol as a page would: logins (SCRAM in JSON), bans,
//! resume, the JSON form of every kind of action, and bad frames.

use futures_util::{SinkExt, StreamExt};
use redux_cluster::auth::{nonce, Credentials};
use redux_cluster::ban::BanPolicy;
use redux_cluster::protocol::{Challenge, Welcome};
use redux_cluster::ws::{ServeWs, WsConfig, WsServer};
use redux_cluster::{reducer, ClusterStore};
use redux_cluster_tests::{events, hex, unhex, Scoped};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use serial_test::serial;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(30);

/// A state with a bit of everything JSON Patch must handle.
#[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
#[cluster_store(name = "WsBoard")]
pub struct Board {
    counter: i64,
    items: Vec<String>,
    title: Option<String>,
    pos: (i32, i32),
    tags: BTreeMap<String, u32>,
}

/// One action of every serde shape.
#[reducer(Board)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BoardAction {
    /// Unit.
    Inc,
    /// Newtype.
    Add(i64),
    /// Newtype holding a string.
    Push(String),
    /// Newtype holding an index.
    Remove(usize),
    /// Tuple.
    Move(i32, i32),
    /// Struct.
    Tag { name: String, n: u32 },
    /// Newtype holding an option.
    Title(Option<String>),
}

fn reduce(state: &mut Board, action: &BoardAction) {
    match action {
        BoardAction::Inc => state.counter += 1,
        BoardAction::Add(n) => state.counter += n,
        BoardAction::Push(s) => state.items.push(s.clone()),
        BoardAction::Remove(i) => {
            if *i < state.items.len() {
                state.items.remove(*i);
            }
        }
        BoardAction::Move(x, y) => state.pos = (*x, *y),
        BoardAction::Tag { name, n } => {
            state.tags.insert(name.clone(), *n);
        }
        BoardAction::Title(t) => state.title = t.clone(),
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn serve(cfg: WsConfig) -> (Scoped<Board>, WsServer) {
    let store = Scoped(Board::start_master().expect("master"));
    let server = store.serve_ws(cfg).await.expect("serve_ws");
    (store, server)
}

/// A page's view of the store: a WebSocket and the state it mirrors.
struct Browser {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    state: Value,
    at: Option<(String, u64)>,
    /// The `actions` of every patch applied, in order.
    actions: Vec<Value>,
}

/// How a login ended.
enum Login {
    Welcome(Box<Browser>, Value),
    Refused(Value),
}

impl Login {
    fn ok(self) -> (Browser, Value) {
        match self {
            Login::Welcome(b, w) => (*b, w),
            Login::Refused(r) => panic!("refused: {r}"),
        }
    }

    fn refused(self) -> Value {
        match self {
            Login::Welcome(_, w) => panic!("admitted: {w}"),
            Login::Refused(r) => r,
        }
    }
}

impl Browser {
    async fn open(addr: SocketAddr, forwarded_for: Option<&str>) -> Self {
        let mut req = format!("ws://{addr}/")
            .into_client_request()
            .expect("request");
        if let Some(ip) = forwarded_for {
            req.headers_mut()
                .insert("x-forwarded-for", ip.parse().expect("header"));
        }
        let (ws, _) = tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("in time")
            .expect("connect");
        Self {
            ws,
            state: Value::Null,
            at: None,
            actions: Vec::new(),
        }
    }

    /// Opens and logs in (`credentials` `None`: no login), resuming from
    /// `resume`.
    async fn login(
        addr: SocketAddr,
        credentials: Option<(&str, &str)>,
        resume: Option<(String, u64)>,
        forwarded_for: Option<&str>,
    ) -> Login {
        let mut b = Self::open(addr, forwarded_for).await;
        let client_nonce = nonce();
        let mut hello = json!({"type": "hello", "nonce": hex(&client_nonce)});
        if let Some((login, _)) = credentials {
            hello["login"] = json!(login);
        }
        if let Some((epoch, seq)) = &resume {
            hello["resume"] = json!({"epoch": epoch, "seq": seq});
        }
        b.send(hello).await;
        let mut reply = b.recv().await;
        let mut expected = None;
        if reply["type"] == "challenge" {
            let (login, password) = credentials.expect("challenged without a login");
            let challenge = Challenge {
                salt: unhex(reply["salt"].as_str().expect("salt")),
                iterations: reply["iterations"].as_u64().expect("iterations") as u32,
                nonce: unhex(reply["nonce"].as_str().expect("nonce")),
            };
            let (proof, check) = Credentials::new(login, password)
                .prove(&client_nonce, &challenge)
                .expect("a sane challenge");
            expected = Some(check);
            b.send(json!({"type": "proof", "proof": hex(&proof.proof)}))
                .await;
            reply = b.recv().await;
        }
        match reply["type"].as_str() {
            Some("welcome") => {
                if let Some(check) = expected {
                    let welcome = Welcome {
                        signature: unhex(reply["signature"].as_str().expect("signature")),
                        read_only: reply["read_only"].as_bool().expect("read_only"),
                    };
                    assert!(check.check(&welcome), "the server proved its key");
                }
                b.at = resume;
                Login::Welcome(Box::new(b), reply)
            }
            Some("refuse") => {
                // The server closes after a refusal.
                assert!(b
                    .ws
                    .next()
                    .await
                    .is_none_or(|m| matches!(m, Ok(Message::Close(_)) | Err(_))));
                Login::Refused(reply)
            }
            _ => panic!("unexpected reply {reply}"),
        }
    }

    async fn send(&mut self, v: Value) {
        self.send_raw(Message::text(v.to_string())).await;
    }

    async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    /// The next JSON frame.
    async fn recv(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(LIMIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("open")
                .expect("frame");
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).expect("server frames are JSON");
            }
        }
    }

    /// Applies a snapshot or patch frame to the mirror.
    fn apply(&mut self, f: &Value) {
        match f["type"].as_str() {
            Some("snapshot") => self.state = f["state"].clone(),
            Some("patch") => {
                let (_, at) = self.at.clone().expect("a patch before any snapshot");
                assert_eq!(f["from"].as_u64(), Some(at), "patches chain: {f}");
                let ops: json_patch::Patch = serde_json::from_value(f["ops"].clone()).expect("ops");
                json_patch::patch(&mut self.state, &ops).expect("the patch applies");
                if let Some(a) = f["actions"].as_array() {
                    self.actions.extend(a.iter().cloned());
                }
            }
            other => panic!("not a state frame: {other:?}"),
        }
        let epoch = f["epoch"].as_str().expect("epoch as a string").to_owned();
        self.at = Some((epoch, f["seq"].as_u64().expect("seq")));
    }

    /// Reads frames, mirroring state frames and keeping the others, until
    /// the mirror reaches `seq`.
    async fn until_seq(&mut self, seq: u64) -> Vec<Value> {
        let mut other = Vec::new();
        while self.at.as_ref().is_none_or(|(_, s)| *s < seq) {
            let f = self.recv().await;
            match f["type"].as_str() {
                Some("snapshot" | "patch") => self.apply(&f),
                _ => other.push(f),
            }
        }
        other
    }

    /// Dispatches and waits for the ack; returns its seq.
    async fn dispatch(&mut self, id: u64, action: Value) -> Result<u64, Value> {
        self.send(json!({"type": "dispatch", "id": id, "action": action}))
            .await;
        loop {
            let f = self.recv().await;
            match f["type"].as_str() {
                Some("snapshot" | "patch") => self.apply(&f),
                Some("ack") if f["id"] == id => return Ok(f["seq"].as_u64().expect("seq")),
                Some("error") if f["id"] == id => return Err(f),
                _ => panic!("unexpected frame {f}"),
            }
        }
    }
}

fn state_json(store: &Scoped<Board>) -> Value {
    serde_json::to_value(store.get_state()).expect("json")
}

#[tokio::test]
#[serial]
async fn logins_wrong_passwords_and_bans() {
    let cfg = WsConfig::new(loopback())
        .login("alice", "correct horse")
        .login_read_only("bob", "battery staple")
        .ban_policy(BanPolicy {
            max_failures: 2,
            ..BanPolicy::default()
        });
    let (seen, hook) = events();
    let store = Scoped(Board::builder().on_event(hook).start().expect("master"));
    let server = store.serve_ws(cfg).await.expect("serve_ws");
    let addr = server.local_addr();
    store.dispatch(BoardAction::Inc).expect("dispatch");

    // The right password: welcome (signature checked), then a snapshot.
    let (mut alice, welcome) = Browser::login(addr, Some(("alice", "correct horse")), None, None)
        .await
        .ok();
    assert_eq!(welcome["read_only"], false);
    assert_eq!(welcome["epoch"], store.epoch().to_string());
    alice.until_seq(1).await;
    assert_eq!(alice.state, state_json(&store));
    assert_eq!(alice.dispatch(1, json!("Inc")).await, Ok(2));

    // Read-only: follows, but a dispatch gets an error with its id.
    let (mut bob, welcome) = Browser::login(addr, Some(("bob", "battery staple")), None, None)
        .await
        .ok();
    assert_eq!(welcome["read_only"], true);
    let err = bob.dispatch(9, json!("Inc")).await.expect_err("read-only");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("read-only")),
        "{err}"
    );
    assert_eq!(store.seq(), 2);

    // No login at all.
    let r = Browser::login(addr, None, None, None).await.refused();
    assert_eq!(r["reason"], "login_required");

    // Wrong password, then a ban; then even the right password is refused.
    let r = Browser::login(addr, Some(("alice", "guess")), None, None)
        .await
        .refused();
    assert_eq!(r["reason"], "bad_credentials");
    let r = Browser::login(addr, Some(("mallory", "guess")), None, None)
        .await
        .refused();
    assert_eq!(r["reason"], "banned");
    let r = Browser::login(addr, Some(("alice", "correct horse")), None, None)
        .await
        .refused();
    assert_eq!(r["reason"], "banned");
    assert!(
        r["message"].as_str().is_some_and(|m| m.contains("refused")),
        "{r}"
    );
    // The failed logins and the ban reached the store's event hook.
    {
        let seen = seen.lock().expect("lock");
        assert!(
            seen.iter().any(|e| e.contains("failed login as `alice`")),
            "{seen:?}"
        );
        assert!(
            seen.iter().any(|e| e.contains("failed login as `mallory`")),
            "{seen:?}"
        );
        assert!(seen.iter().any(|e| e.contains("banned for")), "{seen:?}");
    }

    // Browsers already in are not thrown out.
    assert_eq!(alice.dispatch(2, json!({"Add": 5})).await, Ok(3));
    server.shutdown().await;
}

#[tokio::test]
#[serial]
async fn bans_follow_the_forwarded_address_only_behind_a_trusted_proxy() {
    let policy = BanPolicy {
        max_failures: 1,
        ..BanPolicy::default()
    };
    let cfg = WsConfig::new(loopback())
        .login("alice", "pw")
        .ban_policy(policy)
        .trust_proxy(true);
    let (store, server) = serve(cfg).await;
    let addr = server.local_addr();
    let r = Browser::login(addr, Some(("alice", "x")), None, Some("10.0.0.1"))
        .await
        .refused();
    assert_eq!(r["reason"], "banned");
    // Another browser behind the same proxy is not banned with it; one that
    // claims the banned address on the left of the list cannot dodge it.
    Browser::login(
        addr,
        Some(("alice", "pw")),
        None,
        Some("10.0.0.1, 10.0.0.2"),
    )
    .await
    .ok();
    let r = Browser::login(
        addr,
        Some(("alice", "pw")),
        None,
        Some("10.0.0.2, 10.0.0.1"),
    )
    .await
    .refused();
    assert_eq!(r["reason"], "banned");
    server.shutdown().await;
    drop(store);

    // Without trust, the header is ignored: the ban is on the socket's
    // address, whatever the browser claims.
    let cfg = WsConfig::new(loopback())
        .login("alice", "pw")
        .ban_policy(policy);
    let (_store, server) = serve(cfg).await;
    let addr = server.local_addr();
    Browser::login(addr, Some(("alice", "x")), None, Some("10.0.0.1"))
        .await
        .refused();
    let r = Browser::login(addr, Some(("alice", "pw")), None, Some("10.0.0.9"))
        .await
        .refused();
    assert_eq!(r["reason"], "banned");
    server.shutdown().await;
}

#[tokio::test]
#[serial]
async fn every_action_has_its_documented_json_form() {
    let (store, server) = serve(WsConfig::new(loopback())).await;
    let addr = server.local_addr();
    let (mut page, welcome) = Browser::login(addr, None, None, None).await.ok();
    assert!(welcome["signature"].is_null(), "no login, no signature");
    page.until_seq(0).await;

    let cases = [
        (json!("Inc"), BoardAction::Inc),
        (json!({"Add": -3}), BoardAction::Add(-3)),
        (json!({"Push": "a/b~c"}), BoardAction::Push("a/b~c".into())),
        (
            json!({"Push": "second"}),
            BoardAction::Push("second".into()),
        ),
        (json!({"Remove": 0}), BoardAction::Remove(0)),
        (json!({"Move": [4, -2]}), BoardAction::Move(4, -2)),
        (
            json!({"Tag": {"name": "x/y", "n": 7}}),
            BoardAction::Tag {
                name: "x/y".into(),
                n: 7,
            },
        ),
        (
            json!({"Title": "hi"}),
            BoardAction::Title(Some("hi".into())),
        ),
        (json!({"Title": null}), BoardAction::Title(None)),
    ];
    let mut expected = Board::default();
    for (i, (form, action)) in cases.iter().enumerate() {
        assert_eq!(
            &serde_json::to_value(action).expect("json"),
            form,
            "{action:?}"
        );
        let seq = page.dispatch(i as u64, form.clone()).await.expect("ack");
        assert_eq!(seq, i as u64 + 1);
        reduce(&mut expected, action);
    }
    page.until_seq(cases.len() as u64).await;
    assert_eq!(store.get_state(), expected);
    assert_eq!(page.state, serde_json::to_value(&expected).expect("json"));

    // Forms that are not actions are refused with the dispatch's id.
    for (id, bad) in [
        (100, json!("Nope")),
        (101, json!({"Add": "three"})),
        (102, json!({"Move": [1]})),
        (103, json!({"Inc": 1, "Add": 2})),
    ] {
        let err = page.dispatch(id, bad).await.expect_err("not an action");
        assert!(
            err["message"]
                .as_str()
                .is_some_and(|m| m.contains("not an action")),
            "{err}"
        );
    }
    assert_eq!(store.seq(), cases.len() as u64);
    server.shutdown().await;
}

#[tokio::test]
#[serial]
async fn resume_gets_the_missed_patches_or_a_snapshot() {
    let (store, server) = serve(WsConfig::new(loopback()).history(2, 1 << 20)).await;
    let addr = server.local_addr();
    let (mut page, _) = Browser::login(addr, None, None, None).await.ok();
    assert_eq!(page.recv().await["type"], "snapshot");
    page.state = state_json(&store);
    page.at = Some((store.epoch().to_string(), 0));
    let seq = page.dispatch(1, json!({"Push": "a"})).await.expect("ack");
    page.until_seq(seq).await;
    let left_at = page.at.clone().expect("at");
    let mirror = page.state.clone();
    drop(page);

    // One change while away: a patch from where the page left.
    let mut watcher = Browser::login(addr, None, None, None).await.ok().0;
    store
        .dispatch(BoardAction::Push("b".into()))
        .expect("dispatch");
    store.dispatch(BoardAction::Inc).expect("dispatch");
    watcher.until_seq(store.seq()).await;
    let (mut page, _) = Browser::login(addr, None, Some(left_at.clone()), None)
        .await
        .ok();
    page.state = mirror.clone();
    let f = page.recv().await;
    assert_eq!(f["type"], "patch", "{f}");
    page.apply(&f);
    page.until_seq(store.seq()).await;
    assert_eq!(page.state, state_json(&store));

    // Up to date: nothing is sent until the next change.
    let at = page.at.clone().expect("at");
    let (mut fresh, _) = Browser::login(addr, None, Some(at), None).await.ok();
    fresh.state = page.state.clone();
    store.dispatch(BoardAction::Add(10)).expect("dispatch");
    let f = fresh.recv().await;
    assert_eq!(f["type"], "patch", "{f}");
    fresh.apply(&f);
    assert_eq!(fresh.state, state_json(&store));

    // Fallen off the ring (two diffs kept): a snapshot.
    for n in 0..3 {
        store.dispatch(BoardAction::Add(n)).expect("dispatch");
        watcher.until_seq(store.seq()).await;
    }
    let (mut late, _) = Browser::login(addr, None, Some(left_at), None).await.ok();
    let f = late.recv().await;
    assert_eq!(f["type"], "snapshot", "{f}");
    late.apply(&f);
    assert_eq!(late.state, state_json(&store));

    // Another epoch (a restarted master): a snapshot.
    let (mut other, _) = Browser::login(addr, None, Some(("12345".into(), 1)), None)
        .await
        .ok();
    assert_eq!(other.recv().await["type"], "snapshot");
    server.shutdown().await;
}

#[tokio::test]
#[serial]
async fn small_messages_before_login_and_the_configured_size_after() {
    let (store, server) = serve(WsConfig::new(loopback())).await;
    let addr = server.local_addr();
    // A 100 KiB hello is over the handshake limit: the connection ends.
    let mut big = Browser::open(addr, None).await;
    let hello = json!({"type": "hello", "login": "x".repeat(100 << 10)});
    let _ = big.ws.send(Message::text(hello.to_string())).await;
    let ended = tokio::time::timeout(LIMIT, async {
        loop {
            match big.ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    });
    ended.await.expect("the server ended the connection");
    // Logged in, a 100 KiB action is within the configured 1 MiB.
    let (mut b, _) = Browser::login(addr, None, None, None).await.ok();
    let long = "y".repeat(100 << 10);
    let seq = b.dispatch(1, json!({ "Push": long })).await.expect("ack");
    b.until_seq(seq).await;
    assert_eq!(b.state, state_json(&store));
    server.shutdown().await;
}

#[tokio::test]
#[serial]
async fn a_full_server_says_so_and_admits_again_when_a_browser_leaves() {
    let (_store, server) = serve(WsConfig::new(loopback()).max_clients(1)).await;
    let addr = server.local_addr();
    let (mut a, _) = Browser::login(addr, None, None, None).await.ok();
    a.until_seq(0).await;
    let r = Browser::login(addr, None, None, None).await.refused();
    assert_eq!(r["reason"], "unavailable", "{r}");
    assert!(
        r["message"].as_str().is_some_and(|m| m.contains("full")),
        "{r}"
    );
    // Once A has gone, a browser gets in (as soon as the server has seen
    // A's close; until then it is told the server is full).
    a.ws.close(None).await.expect("close");
    let mut refused = 0;
    loop {
        match Browser::login(addr, None, None, None).await {
            Login::Welcome(..) => break,
            Login::Refused(r) => {
                assert_eq!(r["reason"], "unavailable", "{r}");
                refused += 1;
                assert!(refused < 1000, "never admitted again");
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test]
#[serial]
async fn a_malformed_frame_gets_an_error_and_harms_no_one() {
    let (store, server) = serve(WsConfig::new(loopback())).await;
    let addr = server.local_addr();
    let (mut a, _) = Browser::login(addr, None, None, None).await.ok();
    let (mut b, _) = Browser::login(addr, None, None, None).await.ok();
    a.until_seq(0).await;
    b.until_seq(0).await;

    a.send_raw(Message::text("{not json")).await;
    let e = a.recv().await;
    assert_eq!(e["type"], "error", "{e}");
    assert!(e.get("id").is_none(), "{e}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed")),
        "{e}"
    );
    a.send(json!({"type": "launch", "id": 1})).await;
    assert_eq!(a.recv().await["type"], "error");
    a.send_raw(Message::binary(vec![1, 2, 3])).await;
    let e = a.recv().await;
    assert!(
        e["message"].as_str().is_some_and(|m| m.contains("binary")),
        "{e}"
    );
    a.send(json!({"type": "hello"})).await;
    assert_eq!(a.recv().await["type"], "error");

    // B saw none of it and still works; so does A.
    let seq = b.dispatch(1, json!({"Push": "from b"})).await.expect("ack");
    let seq = a
        .dispatch(2, json!({"Push": "from a"}))
        .await
        .expect("ack")
        .max(seq);
    for page in [&mut a, &mut b] {
        let other = page.until_seq(seq).await;
        assert!(other.is_empty(), "no stray frames: {other:?}");
        assert_eq!(page.state, state_json(&store));
    }
    server.shutdown().await;
}

#[tokio::test]
#[serial]
async fn patches_carry_the_applied_actions_when_asked() {
    let (store, server) = serve(WsConfig::new(loopback()).actions(true)).await;
    let addr = server.local_addr();
    let (mut page, _) = Browser::login(addr, None, None, None).await.ok();
    let snapshot = page.recv().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert!(snapshot.get("actions").is_none(), "{snapshot}");
    page.apply(&snapshot);
    // Several actions, maybe coalesced into fewer patches: every one comes
    // once, in order, with its seq.
    store
        .dispatch_all(&[
            BoardAction::Inc,
            BoardAction::Tag {
                name: "x".into(),
                n: 2,
            },
        ])
        .expect("dispatch");
    let seq = page
        .dispatch(1, json!({"Push": "from the page"}))
        .await
        .expect("ack");
    page.until_seq(seq).await;
    assert_eq!(
        page.actions,
        vec![
            json!({"seq": 1, "action": "Inc"}),
            json!({"seq": 2, "action": {"Tag": {"name": "x", "n": 2}}}),
            json!({"seq": 3, "action": {"Push": "from the page"}}),
        ]
    );
    assert_eq!(page.state, state_json(&store));
    server.shutdown().await;
}

#[tokio::test]
#[serial]
async fn a_batch_of_dispatches_gets_one_acks_and_an_error_for_each_bad_one() {
    let (store, server) = serve(WsConfig::new(loopback())).await;
    let (mut page, _) = Browser::login(server.local_addr(), None, None, None)
        .await
        .ok();
    let snapshot = page.recv().await;
    page.apply(&snapshot);
    page.send(json!({
        "type": "dispatches",
        "first": 10,
        "actions": ["Inc", {"Add": "not a number"}, {"Add": 2}]
    }))
    .await;
    let mut errors = Vec::new();
    let acks = loop {
        let f = page.recv().await;
        match f["type"].as_str() {
            Some("snapshot" | "patch") => page.apply(&f),
            Some("error") => errors.push(f),
            Some("acks") => break f,
            _ => panic!("unexpected frame {f}"),
        }
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["id"], 11);
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not an action of this store")),
        "{errors:?}"
    );
    assert_eq!(
        acks,
        json!({"type": "acks", "first": 10, "seqs": [1, null, 2]})
    );
    page.until_seq(2).await;
    assert_eq!(page.state, state_json(&store));
    assert_eq!(store.state().counter, 3);
    server.shutdown().await;
}
