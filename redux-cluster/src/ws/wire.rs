//! The JSON messages of the browser protocol, with no I/O.
//!
//! The protocol is described in the `ws` module docs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write;

/// A message from a browser.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ClientMsg {
    /// First message: who, the client's nonce for the login, and where the
    /// client stands if it reconnects.
    Hello {
        #[serde(default)]
        login: Option<String>,
        /// 32 bytes, hex; needed when the server has logins.
        #[serde(default)]
        nonce: Option<String>,
        #[serde(default)]
        resume: Option<Resume>,
    },
    /// Answer to the challenge.
    Proof {
        /// 32 bytes, hex.
        proof: String,
    },
    /// An action to apply; `id` comes back in the ack or error.
    Dispatch { id: u64, action: Value },
    /// Several actions, in order, with ids `first`, `first + 1`, ...:
    /// answered by one `acks` (and an `error` for each that failed).
    Dispatches { first: u64, actions: Vec<Value> },
}

impl ClientMsg {
    /// The message's type, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMsg::Hello { .. } => "hello",
            ClientMsg::Proof { .. } => "proof",
            ClientMsg::Dispatch { .. } => "dispatch",
            ClientMsg::Dispatches { .. } => "dispatches",
        }
    }
}

/// Where a reconnecting client stands.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Resume {
    /// Decimal string (64 bits).
    pub epoch: String,
    pub seq: u64,
}

impl Resume {
    /// The position, or `None` when the epoch is not a number (the client
    /// then gets a snapshot).
    pub fn position(&self) -> Option<(u64, u64)> {
        self.epoch.parse().ok().map(|e| (e, self.seq))
    }
}

/// A message to a browser, except snapshots and patches, which are built
/// from text serialized once for every client ([`snapshot`], [`patch`]).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerMsg<'a> {
    Challenge {
        salt: String,
        iterations: u32,
        nonce: String,
    },
    Welcome {
        login: Option<&'a str>,
        read_only: bool,
        /// The server's SCRAM signature, hex; `None` when no login was asked.
        signature: Option<String>,
        epoch: String,
    },
    Refuse {
        /// `banned`, `bad_credentials`, `login_required` or `protocol`.
        reason: &'a str,
        message: &'a str,
    },
    Ack {
        id: u64,
        seq: u64,
    },
    /// The seqs of `dispatches` from id `first` on; `null` for one that
    /// failed (its `error` came first).
    Acks {
        first: u64,
        seqs: Vec<Option<u64>>,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        message: &'a str,
        /// `rejected` when the validator refused the action (`message` is
        /// then its reason).
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<&'a str>,
    },
}

impl ServerMsg<'_> {
    /// The frame text.
    pub fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// A snapshot frame around `state`, JSON text.
pub(crate) fn snapshot(epoch: u64, seq: u64, state: &str) -> String {
    let mut s = String::with_capacity(state.len() + 64);
    let _ = write!(
        s,
        r#"{{"type":"snapshot","epoch":"{epoch}","seq":{seq},"state":"#
    );
    s.push_str(state);
    s.push('}');
    s
}

/// A patch frame from `from` to `seq`; `ops` are JSON Patch operations,
/// each a JSON text, applied in order.
pub(crate) fn patch<'a>(
    epoch: u64,
    from: u64,
    seq: u64,
    ops: impl Iterator<Item = &'a str>,
    actions: impl Iterator<Item = &'a str>,
) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        r#"{{"type":"patch","epoch":"{epoch}","from":{from},"seq":{seq},"ops":["#
    );
    join(&mut s, ops);
    let mut actions = actions.peekable();
    if actions.peek().is_some() {
        s.push_str(r#"],"actions":["#);
        join(&mut s, actions);
    }
    s.push_str("]}");
    s
}

/// JSON texts, comma-separated (empty ones skipped).
fn join<'a>(s: &mut String, items: impl Iterator<Item = &'a str>) {
    let mut first = true;
    for item in items.filter(|o| !o.is_empty()) {
        if !first {
            s.push(',');
        }
        first = false;
        s.push_str(item);
    }
}

/// One applied action as a patch carries it: `{"seq":…,"action":…}`.
pub(crate) fn action<A: serde::Serialize>(seq: u64, action: &A) -> serde_json::Result<String> {
    #[derive(serde::Serialize)]
    struct Item<'a, A> {
        seq: u64,
        action: &'a A,
    }
    serde_json::to_string(&Item { seq, action })
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Exactly `N` bytes from hex, or `None`.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex::<4>("0001ABff"), Some(b));
        assert_eq!(unhex::<4>("0001abf"), None);
        assert_eq!(unhex::<2>("zz00"), None);
    }

    #[test]
    fn frames_are_json() {
        let s: Value = serde_json::from_str(&snapshot(u64::MAX, 3, r#"{"a":1}"#)).expect("json");
        assert_eq!(s["epoch"], "18446744073709551615");
        assert_eq!(s["state"]["a"], 1);
        let ops = [
            r#"{"op":"add","path":"/a","value":1}"#,
            "",
            r#"{"op":"remove","path":"/b"}"#,
        ];
        let p: Value = serde_json::from_str(&patch(1, 2, 5, ops.into_iter(), std::iter::empty()))
            .expect("json");
        assert_eq!(p["ops"].as_array().map(Vec::len), Some(2));
        assert_eq!(p["from"], 2);
        let e: Value = serde_json::from_str(
            &ServerMsg::Error {
                id: None,
                message: "x\"y",
                code: None,
            }
            .to_text(),
        )
        .expect("json");
        assert_eq!(e["message"], "x\"y");
        assert!(e.get("id").is_none());
    }

    #[test]
    fn client_messages_parse() {
        let h: ClientMsg = serde_json::from_str(
            r#"{"type":"hello","login":"a","resume":{"epoch":"18446744073709551615","seq":4}}"#,
        )
        .expect("hello");
        match h {
            ClientMsg::Hello {
                resume: Some(r), ..
            } => {
                assert_eq!(r.position(), Some((u64::MAX, 4)))
            }
            other => panic!("{other:?}"),
        }
        let d: ClientMsg =
            serde_json::from_str(r#"{"type":"dispatch","id":7,"action":"Done"}"#).expect("d");
        assert!(matches!(d, ClientMsg::Dispatch { id: 7, .. }));
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"nope"}"#).is_err());
    }
}
