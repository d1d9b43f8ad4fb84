#![no_main]
use redux_cluster_fuzz::Board;

libfuzzer_sys::fuzz_target!(
    init: redux_cluster_fuzz::write_seeds("ws_message", redux_cluster::fuzz::ws_seeds()),
    |data: &[u8]| {
        let _ = redux_cluster::fuzz::ws_message::<Board>(data);
    }
);
