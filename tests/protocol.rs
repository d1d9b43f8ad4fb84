//! The frame codec and every protocol message, with no sockets: round
//! trips, frames split and joined at every byte, and bad input of every
//! kind, which must give a typed error and never a panic.

use proptest::prelude::*;
use redux_cluster::protocol::{
    Ack, Actions, Challenge, Digest, Dispatch, Diverged, FrameCodec, Goodbye, Heartbeat, Hello,
    Join, JoinRefusal, JoinRefused, Joined, Message, Nack, Position, Proof, Refuse, RefuseReason,
    Rejected, Snapshot, Welcome, DEFAULT_MAX_FRAME, LEN_PREFIX, PROTOCOL_VERSION,
};
use redux_cluster::{FrameError, SchemaHash, StoreId};

/// One message of every variant, with fields away from their defaults so a
/// field dropped or swapped by the codec would show.
fn every_message() -> Vec<Message<'static>> {
    let hash = SchemaHash([7; 32]);
    let id = StoreId::new("tasks", hash);
    vec![
        Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            login: Some("alice"),
            nonce: [1; 32],
        }),
        Message::Hello(Hello {
            protocol: u16::MAX,
            login: None,
            nonce: [0; 32],
        }),
        Message::Challenge(Challenge {
            salt: [2; 16],
            iterations: 600_000,
            nonce: [3; 32],
        }),
        Message::Proof(Proof { proof: [4; 32] }),
        Message::Welcome(Welcome {
            signature: [5; 32],
            read_only: true,
        }),
        Message::Refuse(Refuse {
            reason: RefuseReason::Version,
            detail: "protocol 2 is not supported",
        }),
        Message::Refuse(Refuse {
            reason: RefuseReason::BadCredentials,
            detail: "",
        }),
        Message::Refuse(Refuse {
            reason: RefuseReason::Banned,
            detail: "try again in 3 h",
        }),
        Message::Refuse(Refuse {
            reason: RefuseReason::LoginRequired,
            detail: "login",
        }),
        Message::Refuse(Refuse {
            reason: RefuseReason::Unavailable,
            detail: "shutting down",
        }),
        Message::Join(Join {
            channel: 3,
            store: id,
            schema: hash,
            name: "tasks",
            describe: "{version:String,done:u64,}",
            resume: Some(Position {
                epoch: u64::MAX,
                seq: 41,
            }),
            session: 0x1234_5678_9abc_def0,
            acked_batch: 6,
            older: vec![SchemaHash([3; 32]), SchemaHash([4; 32])],
        }),
        Message::Join(Join {
            channel: u32::MAX,
            store: id,
            schema: hash,
            name: "",
            describe: "",
            resume: None,
            session: 0,
            acked_batch: 0,
            older: Vec::new(),
        }),
        Message::Joined(Joined {
            channel: 3,
            epoch: 0xdead_beef,
            applied: vec![(7, 1001), (8, 1003)],
            schema: hash,
        }),
        Message::Joined(Joined {
            channel: 4,
            epoch: 1,
            applied: Vec::new(),
            schema: SchemaHash([5; 32]),
        }),
        Message::JoinRefused(JoinRefused {
            channel: 3,
            reason: JoinRefusal::SchemaMismatch,
            schema: Some(SchemaHash([9; 32])),
            describe: "{version:String,done:u32,}",
        }),
        Message::JoinRefused(JoinRefused {
            channel: 4,
            reason: JoinRefusal::UnknownStore,
            schema: None,
            describe: "",
        }),
        Message::JoinRefused(JoinRefused {
            channel: 5,
            reason: JoinRefusal::Duplicate,
            schema: None,
            describe: "",
        }),
        Message::JoinRefused(JoinRefused {
            channel: 6,
            reason: JoinRefusal::Outdated,
            schema: Some(SchemaHash([8; 32])),
            describe: "",
        }),
        Message::Snapshot(Snapshot {
            channel: 3,
            epoch: 17,
            seq: 1000,
            state: &[0, 1, 2, 3, 255],
        }),
        Message::Snapshot(Snapshot {
            channel: 0,
            epoch: 0,
            seq: 0,
            state: &[],
        }),
        Message::Actions(Actions {
            channel: 3,
            first_seq: 1001,
            count: 3,
            packed: &[1, 0, 1],
        }),
        Message::Dispatch(Dispatch {
            channel: 3,
            batch: 7,
            request: 12,
            count: 1,
            packed: &[0, 5, b'h', b'e', b'l', b'l', b'o'],
        }),
        Message::Ack(Ack {
            channel: 3,
            batch: 7,
            request: 12,
            seq: 1004,
        }),
        Message::Nack(Nack {
            channel: 3,
            batch: 8,
            request: 13,
            reason: "read-only login",
        }),
        Message::Digest(Digest {
            channel: 3,
            seq: 1004,
            digest: [0xab; 32],
        }),
        Message::Diverged(Diverged {
            channel: 3,
            seq: 1004,
        }),
        Message::Heartbeat(Heartbeat { ping: 0 }),
        Message::Heartbeat(Heartbeat { ping: u64::MAX }),
        Message::Goodbye(Goodbye {
            reason: "shutting down",
        }),
        Message::Rejected(Rejected {
            channel: 3,
            batch: 8,
            index: 2,
            reason: "adding nothing",
        }),
    ]
}

/// Which variant a message is. The match has no wildcard arm on purpose: a
/// new variant does not compile here until `every_message` covers it too.
fn variant(m: &Message<'_>) -> usize {
    match m {
        Message::Hello(_) => 0,
        Message::Challenge(_) => 1,
        Message::Proof(_) => 2,
        Message::Welcome(_) => 3,
        Message::Refuse(_) => 4,
        Message::Join(_) => 5,
        Message::Joined(_) => 6,
        Message::JoinRefused(_) => 7,
        Message::Snapshot(_) => 8,
        Message::Actions(_) => 9,
        Message::Dispatch(_) => 10,
        Message::Ack(_) => 11,
        Message::Nack(_) => 12,
        Message::Digest(_) => 13,
        Message::Diverged(_) => 14,
        Message::Heartbeat(_) => 15,
        Message::Goodbye(_) => 16,
        Message::Rejected(_) => 17,
    }
}
const VARIANTS: usize = 18;

fn encode(codec: &FrameCodec, msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    codec.encode(msg, &mut out).expect("encodes");
    out
}

#[test]
fn the_sample_covers_every_variant() {
    let mut seen = [false; VARIANTS];
    for m in every_message() {
        seen[variant(&m)] = true;
    }
    assert!(seen.iter().all(|s| *s), "missing variants: {seen:?}");
}

#[test]
fn every_message_round_trips() {
    let codec = FrameCodec::default();
    for msg in every_message() {
        let buf = encode(&codec, &msg);
        let len = u32::from_le_bytes(buf[..LEN_PREFIX].try_into().expect("4 bytes")) as usize;
        assert_eq!(
            len,
            buf.len() - LEN_PREFIX,
            "{msg:?}: the prefix is the body length"
        );
        let (back, used) = codec
            .decode(&buf)
            .expect("decodes")
            .expect("the whole frame is there");
        assert_eq!(back, msg);
        assert_eq!(used, buf.len());
        codec.finish(&buf[used..]).expect("nothing left over");
    }
}

#[test]
fn encode_appends_after_existing_bytes() {
    let codec = FrameCodec::default();
    let msg = Message::Heartbeat(Heartbeat { ping: 9 });
    let mut out = b"already here".to_vec();
    codec.encode(&msg, &mut out).expect("encodes");
    assert_eq!(&out[..12], b"already here");
    let (back, used) = codec
        .decode(&out[12..])
        .expect("decodes")
        .expect("complete");
    assert_eq!(back, msg);
    assert_eq!(12 + used, out.len());
}

#[test]
fn frames_back_to_back_decode_in_order() {
    let codec = FrameCodec::default();
    let all = every_message();
    let mut buf = Vec::new();
    for m in &all {
        codec.encode(m, &mut buf).expect("encodes");
    }
    let mut rest = &buf[..];
    let mut got = Vec::new();
    while let Some((msg, used)) = codec.decode(rest).expect("decodes") {
        got.push(msg);
        rest = &rest[used..];
    }
    assert_eq!(got, all);
    assert!(rest.is_empty());
    codec
        .finish(rest)
        .expect("the stream ended on a frame boundary");
}

#[test]
fn every_partial_buffer_asks_for_more() {
    let codec = FrameCodec::default();
    for msg in every_message() {
        let buf = encode(&codec, &msg);
        for cut in 0..buf.len() {
            assert!(
                codec
                    .decode(&buf[..cut])
                    .expect("a prefix is not an error")
                    .is_none(),
                "{msg:?} cut at {cut} of {}",
                buf.len()
            );
        }
    }
}

#[test]
fn bytes_arriving_one_at_a_time_give_the_same_messages() {
    let codec = FrameCodec::default();
    let all = every_message();
    let mut stream = Vec::new();
    for m in &all {
        codec.encode(m, &mut stream).expect("encodes");
    }
    // A reader that appends each byte as it arrives and takes frames off
    // the front as soon as they are complete.
    let mut buf = Vec::new();
    let mut got = 0;
    for &b in &stream {
        buf.push(b);
        if let Some((msg, used)) = codec.decode(&buf).expect("decodes") {
            assert_eq!(msg, all[got]);
            got += 1;
            buf.drain(..used);
        }
    }
    assert_eq!(got, all.len());
    assert!(buf.is_empty());
}

#[test]
fn a_frame_cut_at_the_end_of_the_stream_is_truncated() {
    let codec = FrameCodec::default();
    let msg = Message::Goodbye(Goodbye { reason: "bye" });
    let buf = encode(&codec, &msg);
    for have in 1..buf.len() {
        match codec.finish(&buf[..have]) {
            Err(FrameError::Truncated { need, have: h }) => {
                assert_eq!(h, have);
                // Once the prefix is in, the codec knows the full size.
                let expect = if have >= LEN_PREFIX {
                    buf.len()
                } else {
                    LEN_PREFIX
                };
                assert_eq!(need, expect, "cut at {have}");
            }
            other => panic!("cut at {have}: expected Truncated, got {other:?}"),
        }
    }
    codec.finish(&[]).expect("an empty rest is a clean end");
    let err = codec.finish(&buf[..2]).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        "stream ended inside a frame: 2 of 4 bytes received"
    );
}

#[test]
fn an_oversized_length_is_refused_before_the_body_arrives() {
    let codec = FrameCodec::new(16);
    assert_eq!(codec.max(), 16);
    // Only the prefix has arrived, announcing one byte too many.
    let prefix = 17u32.to_le_bytes();
    match codec.decode(&prefix) {
        Err(FrameError::Oversized { len: 17, max: 16 }) => {}
        other => panic!("expected Oversized, got {other:?}"),
    }
    match codec.frame_len(&prefix) {
        Err(FrameError::Oversized { len: 17, max: 16 }) => {}
        other => panic!("expected Oversized, got {other:?}"),
    }
    // Exactly the maximum is fine: the codec waits for the body.
    assert!(codec
        .decode(&16u32.to_le_bytes())
        .expect("at the limit")
        .is_none());
    assert_eq!(
        codec.frame_len(&16u32.to_le_bytes()).expect("at the limit"),
        Some(16)
    );
    // The largest possible announcement, with the default maximum.
    let huge = u32::MAX.to_le_bytes();
    match FrameCodec::default().decode(&huge) {
        Err(FrameError::Oversized { len, max }) => {
            assert_eq!(len, u32::MAX as usize);
            assert_eq!(max, DEFAULT_MAX_FRAME);
        }
        other => panic!("expected Oversized, got {other:?}"),
    }
    let err = codec.decode(&prefix).expect_err("oversized");
    assert_eq!(
        err.to_string(),
        "frame of 17 bytes exceeds the maximum of 16 bytes"
    );
}

#[test]
fn an_oversized_message_is_not_encoded() {
    let codec = FrameCodec::new(64);
    let big = vec![0u8; 100];
    let msg = Message::Snapshot(Snapshot {
        channel: 1,
        epoch: 1,
        seq: 1,
        state: &big,
    });
    let mut out = b"earlier frames".to_vec();
    match codec.encode(&msg, &mut out) {
        Err(FrameError::Oversized { len, max: 64 }) => assert!(len > 100, "{len}"),
        other => panic!("expected Oversized, got {other:?}"),
    }
    assert_eq!(out, b"earlier frames", "the buffer is left as it was");
    // The same message fits a codec with room for it.
    let roomy = FrameCodec::new(1024);
    let buf = encode(&roomy, &msg);
    let (back, _) = roomy.decode(&buf).expect("decodes").expect("complete");
    assert_eq!(back, msg);
    // A larger frame than a peer allows is refused by that peer.
    assert!(matches!(
        FrameCodec::new(64).decode(&buf),
        Err(FrameError::Oversized { max: 64, .. })
    ));
}

#[test]
fn max_is_capped_by_the_prefix_width() {
    assert_eq!(FrameCodec::new(usize::MAX).max(), u32::MAX as usize);
    assert_eq!(FrameCodec::default().max(), DEFAULT_MAX_FRAME);
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn garbage_bodies_are_malformed() {
    let codec = FrameCodec::default();
    let heartbeat = encode(&codec, &Message::Heartbeat(Heartbeat { ping: 5 }));
    // postcard writes the variant index first, as a varint.
    const GOODBYE: u8 = 16;
    let valid = frame(&[GOODBYE, 2, b'o', b'k']);
    let control = codec
        .decode(&valid)
        .expect("the same bytes, made valid, decode")
        .expect("complete");
    assert_eq!(control.0, Message::Goodbye(Goodbye { reason: "ok" }));
    let mut trailing = heartbeat[LEN_PREFIX..].to_vec();
    trailing.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", vec![]),
        ("unknown variant", vec![200]),
        ("unterminated varint", vec![0xff, 0xff, 0xff]),
        ("variant with no fields", vec![GOODBYE]),
        ("string longer than the body", vec![GOODBYE, 50, b'a']),
        ("invalid utf-8", vec![GOODBYE, 2, 0xc3, 0x28]),
        ("bool that is not 0 or 1", {
            let mut welcome = vec![variant(&Message::Welcome(Welcome {
                signature: [0; 32],
                read_only: false,
            })) as u8];
            welcome.extend([0; 32]);
            welcome.push(9);
            welcome
        }),
        ("a valid message then trailing bytes", trailing),
    ];
    for (what, body) in cases {
        match codec.decode(&frame(&body)) {
            Err(FrameError::Malformed(_)) => {}
            other => panic!("{what}: expected Malformed, got {other:?}"),
        }
    }
    let err = codec.decode(&frame(&[200])).expect_err("malformed");
    assert!(err.to_string().starts_with("malformed frame: "), "{err}");
}

#[test]
fn a_bad_frame_does_not_hide_the_good_ones_before_it() {
    let codec = FrameCodec::default();
    let good = Message::Ack(Ack {
        channel: 1,
        batch: 1,
        request: 2,
        seq: 3,
    });
    let mut buf = encode(&codec, &good);
    buf.extend(frame(&[200]));
    let (msg, used) = codec.decode(&buf).expect("decodes").expect("complete");
    assert_eq!(msg, good);
    assert!(matches!(
        codec.decode(&buf[used..]),
        Err(FrameError::Malformed(_))
    ));
}

/// What the fuzz target does: decode frames off the front until the codec
/// asks for more or refuses the input.
fn decode_all(codec: &FrameCodec, mut buf: &[u8]) {
    loop {
        match codec.decode(buf) {
            Ok(Some((_, used))) => {
                assert!(used >= LEN_PREFIX && used <= buf.len());
                buf = &buf[used..];
            }
            Ok(None) => {
                let _ = codec.finish(buf);
                return;
            }
            Err(_) => return,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&FrameCodec::default(), &bytes);
        decode_all(&FrameCodec::new(32), &bytes);
    }

    #[test]
    fn a_valid_prefix_with_a_random_body_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        tag in 0u8..(VARIANTS as u8 + 2),
    ) {
        // A real variant tag first, so the decoder goes deep into a message.
        let mut b = vec![tag];
        b.extend_from_slice(&body);
        decode_all(&FrameCodec::default(), &frame(&b));
        decode_all(&FrameCodec::default(), &frame(&body));
    }

    #[test]
    fn corrupting_a_valid_frame_never_panics(
        which in 0..every_message().len(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let codec = FrameCodec::default();
        let mut buf = encode(&codec, &every_message()[which]);
        for (at, byte) in flips {
            let i = LEN_PREFIX + at.index(buf.len() - LEN_PREFIX);
            buf[i] ^= byte;
        }
        decode_all(&codec, &buf);
    }

    #[test]
    fn payload_messages_round_trip(
        channel in any::<u32>(),
        seq in any::<u64>(),
        count in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
        reason in ".{0,40}",
    ) {
        let codec = FrameCodec::default();
        let msgs = [
            Message::Actions(Actions { channel, first_seq: seq, count, packed: &payload }),
            Message::Dispatch(Dispatch { channel, batch: seq, request: seq, count, packed: &payload }),
            Message::Snapshot(Snapshot { channel, epoch: seq, seq, state: &payload }),
            Message::Nack(Nack { channel, batch: seq, request: seq, reason: &reason }),
        ];
        let mut buf = Vec::new();
        for m in &msgs {
            codec.encode(m, &mut buf).expect("encodes");
        }
        let mut rest = &buf[..];
        for m in &msgs {
            let (back, used) = codec.decode(rest).expect("decodes").expect("complete");
            prop_assert_eq!(&back, m);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
    }
}
