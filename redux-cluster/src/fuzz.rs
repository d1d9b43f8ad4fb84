//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz) and for the
//! random-input test that keeps them working: each takes arbitrary bytes
//! and must not panic, hang, or allocate by what the bytes announce. Not a
//! promise: internals change without notice.

use crate::admission::client::{ClientLogin, ClientStep};
use crate::admission::server::{self, Admission, Step};
use crate::admission::{Access, PeerKey};
use crate::auth::{Credentials, Logins};
#[cfg(feature = "backup")]
use crate::backup::{format, journal, Ids};
use crate::ban::BanPolicy;
#[cfg(feature = "backup")]
use crate::codec;
#[cfg(feature = "backup")]
use crate::log::Mark;
use crate::protocol::{FrameCodec, Hello, Message, Proof, HANDSHAKE_MAX_FRAME, PROTOCOL_VERSION};
#[cfg(any(feature = "backup", feature = "ws"))]
use crate::reducer::Reducer;
#[cfg(feature = "backup")]
use crate::session::{Saved, Sessions};
use std::sync::OnceLock;
use tokio::time::Instant;

/// One server's logins, made once (a login's keys take PBKDF2 to make).
fn access() -> &'static Access {
    static ACCESS: OnceLock<Access> = OnceLock::new();
    ACCESS.get_or_init(|| Access::new(Logins::new().add("ann", "pw"), BanPolicy::default()))
}

/// The frames at the front of `data`, as a peer would send them before a
/// login; stops at the first that does not decode.
fn frames(data: &[u8]) -> impl Iterator<Item = Message<'_>> {
    let codec = FrameCodec::new(HANDSHAKE_MAX_FRAME);
    let mut rest = data;
    std::iter::from_fn(move || {
        let (msg, used) = codec.decode(rest).ok()??;
        rest = rest.get(used..)?;
        Some(msg)
    })
}

/// Feeds the frames in `data` to a server's admission (as a network peer,
/// then as the server's own user) and to a client's login.
pub fn admission(data: &[u8]) {
    let (key_byte, data) = data.split_first().unwrap_or((&0, &[]));
    let key = match key_byte % 3 {
        0 => PeerKey::ip(std::net::Ipv4Addr::new(10, 0, 0, *key_byte).into()),
        1 => PeerKey::Owner,
        _ => PeerKey::Uid(u32::from(*key_byte)),
    };
    let mut adm = Admission::new(Some(access()), key);
    for msg in frames(data) {
        let now = Instant::now();
        let step = match msg {
            Message::Hello(h) => adm.hello(
                server::Hello {
                    protocol: Some(h.protocol),
                    login: h.login,
                    nonce: Some(h.nonce),
                },
                now,
            ),
            Message::Proof(p) => adm.proof(Some(&p.proof), now),
            other => adm.unexpected(other.kind()),
        };
        // The server has a login, so nobody gets in without its password.
        assert!(
            !matches!(step, Step::Welcome(_)),
            "admitted without the password"
        );
    }
    let creds = Credentials::new("ann", "pw");
    let mut login = ClientLogin::new(Some(&creds));
    for msg in frames(data) {
        match login.on_message(Some(msg)) {
            // The proof (PBKDF2) is not computed here: too slow to fuzz.
            Ok(ClientStep::Prove(_)) => {}
            // Never admitted without the server's signature.
            Ok(ClientStep::Admitted) => panic!("a client with a password was admitted unproven"),
            Err(_) => break,
        }
    }
    // A bounded ban list whatever the input.
    access().bans.lock().collect(Instant::now());
}

/// Decodes `data` as a browser's message, and its action as one of `S`;
/// returns whether it was a well-formed message.
#[cfg(feature = "ws")]
pub fn ws_message<S: Reducer>(data: &[u8]) -> bool {
    use crate::ws::wire::{unhex, ClientMsg};
    let Ok(msg) = serde_json::from_slice::<ClientMsg>(data) else {
        return false;
    };
    let _ = msg.kind();
    match msg {
        ClientMsg::Hello { resume, nonce, .. } => {
            let _ = resume.and_then(|r| r.position());
            nonce.is_none_or(|n| unhex::<32>(&n).is_some())
        }
        ClientMsg::Proof { proof } => unhex::<32>(&proof).is_some(),
        ClientMsg::Dispatch { action, .. } => serde_json::from_value::<S::Action>(action).is_ok(),
        ClientMsg::Dispatches { actions, .. } => actions
            .into_iter()
            .all(|a| serde_json::from_value::<S::Action>(a).is_ok()),
    }
}

#[cfg(feature = "backup")]
/// `data` with the header checksum made right when its first byte is odd,
/// so the fuzzer reaches past it.
fn sealed(data: &[u8], header_len: usize) -> Vec<u8> {
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    let mut bytes = rest.to_vec();
    if first & 1 == 1 && bytes.len() >= header_len {
        crate::backup::header::seal(&mut bytes[..header_len]);
    }
    bytes
}

#[cfg(feature = "backup")]
/// Reads `data` as a snapshot file of store `S`, then its sessions and
/// state; returns whether all of it decoded.
pub fn snapshot_file<S: Reducer>(data: &[u8]) -> bool {
    let bytes = sealed(data, format::HEADER_LEN);
    let path = std::path::Path::new("fuzz");
    let whole = match format::decode(bytes, &Ids::of::<S>(), None, path) {
        Ok((_, body, _, version)) => snapshot_body::<S>(version, &body),
        Err(_) => false,
    };
    // The body alone, as if the checks had passed.
    if let Some((_, body)) = data.split_first() {
        snapshot_body::<S>(format::FORMAT_VERSION, body);
    }
    whole
}

#[cfg(feature = "backup")]
fn snapshot_body<S: Reducer>(version: u16, body: &[u8]) -> bool {
    match crate::persist::split_snapshot(version, body) {
        Ok((_, saved, state)) => {
            Sessions::default().restore(saved);
            codec::decode::<S>(state).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(feature = "backup")]
/// Reads `data` as a journal file of store `S`, then each record's marks
/// and actions; returns how many records decoded whole.
pub fn journal_file<S: Reducer>(data: &[u8]) -> usize {
    let bytes = sealed(data, journal::HEADER_LEN);
    let decoded = match journal::replay_of(&bytes, &Ids::of::<S>()) {
        Ok(replay) => replay
            .records
            .iter()
            .filter(|rec| journal_record::<S>(replay.version, rec.count, &rec.payload))
            .count(),
        Err(_) => 0,
    };
    // A record's payload alone, as if its checksums had passed.
    if let Some((count, payload)) = data.split_first() {
        journal_record::<S>(journal::JOURNAL_VERSION, u32::from(*count), payload);
    }
    decoded
}

#[cfg(feature = "backup")]
fn journal_record<S: Reducer>(version: u16, count: u32, payload: &[u8]) -> bool {
    match crate::persist::journal_marks(version, payload) {
        Ok((marks, packed)) => {
            let mut sessions = Sessions::default();
            for m in marks {
                sessions.record(m.session, m.batch, m.committed());
            }
            codec::decode_packed::<S::Action>(count, packed).is_ok()
        }
        Err(_) => false,
    }
}

/// Seeds for [`admission`]: a login's hello then a proof, as frames.
pub fn admission_seeds() -> Vec<Vec<u8>> {
    let codec = FrameCodec::default();
    let mut seed = vec![0u8];
    let hello = Message::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        login: Some("ann"),
        nonce: [1; 32],
    });
    let proof = Message::Proof(Proof { proof: [2; 32] });
    let mut ok = codec.encode(&hello, &mut seed).is_ok();
    let only_hello = seed.clone();
    ok &= codec.encode(&proof, &mut seed).is_ok();
    if ok {
        vec![only_hello, seed]
    } else {
        Vec::new()
    }
}

/// Seeds for [`ws_message`]: one message of each type.
pub fn ws_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"type":"hello","login":"ann","nonce":"0101010101010101010101010101010101010101010101010101010101010101","resume":{"epoch":"18446744073709551615","seq":7}}"#,
        r#"{"type":"proof","proof":"0202020202020202020202020202020202020202020202020202020202020202"}"#,
        r#"{"type":"dispatch","id":1,"action":{"Put":[3,{"text":"x","tags":["a"],"done":true}]}}"#,
        r#"{"type":"dispatch","id":2,"action":"Clear"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

#[cfg(feature = "backup")]
/// A seed for [`snapshot_file`]: a valid file of `state` (after the byte
/// that says whether to reseal the header).
pub fn snapshot_seed<S: Reducer>(state: &S) -> Vec<u8> {
    let saved = vec![Saved {
        session: 9,
        last_batch: 3,
        recent: vec![(2, 5), (3, 6)],
        rejected: vec![(
            3,
            vec![crate::validate::Rejection {
                index: 0,
                reason: "seed".into(),
            }],
        )],
    }];
    let mut body = Vec::new();
    let encoded = codec::encode_into(&crate::reducer::describe_store::<S>(), &mut body)
        .and_then(|()| codec::encode_into(&saved, &mut body))
        .and_then(|()| codec::encode_into(state, &mut body));
    if encoded.is_err() {
        return Vec::new();
    }
    let position = crate::Position { epoch: 7, seq: 6 };
    match format::encode(Ids::of::<S>(), position, &body, None) {
        Ok(e) => std::iter::once(&[0u8][..])
            .chain(e.parts())
            .flatten()
            .copied()
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(feature = "backup")]
/// A seed for [`journal_file`]: a valid journal of `actions`, one record
/// each (after the byte that says whether to reseal the header).
pub fn journal_seed<S: Reducer>(actions: &[S::Action]) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        let seq = i as u64 + 1;
        let marks = vec![Mark {
            session: 9,
            batch: seq,
            seq,
            rejected: Vec::new(),
        }];
        let mut payload = postcard::to_stdvec(&marks).unwrap_or_default();
        if codec::encode_into(action, &mut payload).is_err() {
            return Vec::new();
        }
        records.push((seq, 1, payload));
    }
    let start = crate::Position { epoch: 7, seq: 0 };
    match journal::file_of(Ids::of::<S>(), start, &records) {
        Ok(file) => std::iter::once(0u8).chain(file).collect(),
        Err(_) => Vec::new(),
    }
}
