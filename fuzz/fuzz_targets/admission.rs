#![no_main]
libfuzzer_sys::fuzz_target!(
    init: redux_cluster_fuzz::write_seeds("admission", redux_cluster::fuzz::admission_seeds()),
    |data: &[u8]| {
        redux_cluster::fuzz::admission(data);
    }
);
