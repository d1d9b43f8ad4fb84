//! The fuzz targets' entry points (`redux_cluster::fuzz`, run by cargo-fuzz
//! from `fuzz/`) on their seeds and on random and damaged inputs, so they
//! keep working between fuzzing runs: seeds must decode whole (or the
//! fuzzer would start from nothing), and nothing may panic.

use proptest::prelude::*;
use redux_cluster::fuzz;
use redux_cluster_tests::{Counter, CounterAction};

fn actions() -> Vec<CounterAction> {
    vec![
        CounterAction::Inc(1),
        CounterAction::Add(2, 40),
        CounterAction::End,
    ]
}

fn state() -> Counter {
    Counter {
        total: 41,
        digest: 7,
        by: [1, 40, 0, 0, 0, 0, 0, 0],
        ended: true,
    }
}

#[test]
fn seeds_decode_whole() {
    assert!(fuzz::snapshot_file::<Counter>(&fuzz::snapshot_seed(
        &state()
    )));
    assert_eq!(
        fuzz::journal_file::<Counter>(&fuzz::journal_seed::<Counter>(&actions())),
        3
    );
    #[cfg(feature = "ws")]
    for seed in fuzz::ws_seeds().iter().take(2) {
        assert!(fuzz::ws_message::<Counter>(seed));
    }
    // Two seeds: a hello, then a hello and a (wrong) proof.
    let seeds = fuzz::admission_seeds();
    assert_eq!(seeds.len(), 2);
    for seed in &seeds {
        fuzz::admission(seed);
    }
}

#[test]
fn a_damaged_header_or_record_is_refused_not_trusted() {
    let snap = fuzz::snapshot_seed(&state());
    let journal = fuzz::journal_seed::<Counter>(&actions());
    // Flip one byte in the state: the body's checksum catches it.
    let mut bad = snap.clone();
    let last = bad.len() - 40;
    bad[last] ^= 0x55;
    assert!(!fuzz::snapshot_file::<Counter>(&bad));
    // Flip one byte in the last record: it is cut off as torn.
    let mut torn = journal.clone();
    let at = torn.len() - 2;
    torn[at] ^= 0x55;
    assert_eq!(fuzz::journal_file::<Counter>(&torn), 2);
    // A changed header, resealed, is refused all the same: the body's
    // checksum covers the header too.
    let mut other = snap;
    other[0] = 1;
    other[40] ^= 1;
    assert!(!fuzz::snapshot_file::<Counter>(&other));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzz::admission(&data);
        fuzz::snapshot_file::<Counter>(&data);
        fuzz::journal_file::<Counter>(&data);
        #[cfg(feature = "ws")]
        fuzz::ws_message::<Counter>(&data);
    }

    #[test]
    fn damaged_files_never_panic(at in any::<prop::sample::Index>(), xor in 1u8.., reseal in any::<bool>()) {
        for mut file in [
            fuzz::snapshot_seed(&state()),
            fuzz::journal_seed::<Counter>(&actions()),
        ] {
            let i = 1 + at.index(file.len() - 1);
            file[i] ^= xor;
            file[0] = u8::from(reseal);
            fuzz::snapshot_file::<Counter>(&file);
            fuzz::journal_file::<Counter>(&file);
        }
    }
}
