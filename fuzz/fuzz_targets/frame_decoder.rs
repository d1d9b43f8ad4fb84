//! Feeds arbitrary bytes to the frame decoder, as a peer's stream would.
//! Decoding must never panic, never claim more bytes than it was given, and
//! every message it accepts must survive an encode/decode round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use redux_cluster::protocol::{FrameCodec, LEN_PREFIX};

fuzz_target!(|data: &[u8]| {
    // The default maximum, and a small one so the oversized path is hit too.
    for codec in [FrameCodec::default(), FrameCodec::new(64)] {
        let mut rest = data;
        loop {
            match codec.decode(rest) {
                Ok(Some((msg, used))) => {
                    assert!(used >= LEN_PREFIX && used <= rest.len());
                    let mut again = Vec::new();
                    codec
                        .encode(&msg, &mut again)
                        .expect("a decoded message re-encodes within the same maximum");
                    let (back, n) = codec
                        .decode(&again)
                        .expect("a re-encoded message decodes")
                        .expect("a re-encoded frame is complete");
                    assert_eq!(back, msg);
                    assert_eq!(n, again.len());
                    rest = &rest[used..];
                }
                Ok(None) => {
                    // The stream ends here: anything left is a cut frame.
                    assert_eq!(codec.finish(rest).is_ok(), rest.is_empty());
                    break;
                }
                Err(_) => break,
            }
        }
    }
});
