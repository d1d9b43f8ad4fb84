#![no_main]
use redux_cluster_fuzz::Board;

libfuzzer_sys::fuzz_target!(
    init: redux_cluster_fuzz::write_seeds("snapshot_file", vec![redux_cluster::fuzz::snapshot_seed(&redux_cluster_fuzz::sample_state())]),
    |data: &[u8]| {
        let _ = redux_cluster::fuzz::snapshot_file::<Board>(data);
    }
);
