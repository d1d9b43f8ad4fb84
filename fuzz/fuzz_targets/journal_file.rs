#![no_main]
use redux_cluster_fuzz::Board;

libfuzzer_sys::fuzz_target!(
    init: redux_cluster_fuzz::write_seeds("journal_file", vec![redux_cluster::fuzz::journal_seed::<Board>(&redux_cluster_fuzz::sample_actions())]),
    |data: &[u8]| {
        let _ = redux_cluster::fuzz::journal_file::<Board>(data);
    }
);
