//! Schema evolution: backups and journals written by earlier versions of a
//! store load into later ones through the declared chain
//! (`#[cluster_store(previous = …)]` and `From` conversions), and are then
//! rewritten in the current schema.

use redux_cluster::backup::{BackupError, KdfParams};
use redux_cluster::{reducer, BackupConfig, ClusterStore, Reducer, Store};
use redux_cluster_tests::Scoped;
use serde::{Deserialize, Serialize};
use serial_test::serial;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The first version: flags switched on, by name, in order.
pub mod v1 {
    use super::*;

    #[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
    #[cluster_store(name = "Flags")]
    pub struct Flags {
        pub on: Vec<String>,
        pub flips: u32,
    }

    #[reducer(Flags)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum FlagAction {
        On(String),
        Off(String),
    }

    fn reduce(s: &mut Flags, a: &FlagAction) {
        match a {
            FlagAction::On(n) => {
                if !s.on.contains(n) {
                    s.on.push(n.clone());
                    s.on.sort();
                }
            }
            FlagAction::Off(n) => s.on.retain(|x| x != n),
        }
        s.flips += 1;
    }
}

/// The second: each flag gets a rollout percentage, the counter widens,
/// and a new action appears.
pub mod v2 {
    use super::*;

    #[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
    #[cluster_store(name = "Flags", previous = v1::Flags)]
    pub struct Flags {
        pub on: BTreeMap<String, u8>,
        pub flips: u64,
    }

    #[reducer(Flags)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum FlagAction {
        On(String, u8),
        Off(String),
        OffAll,
    }

    fn reduce(s: &mut Flags, a: &FlagAction) {
        match a {
            FlagAction::On(n, pct) => {
                s.on.insert(n.clone(), *pct);
            }
            FlagAction::Off(n) => {
                s.on.remove(n);
            }
            FlagAction::OffAll => s.on.clear(),
        }
        s.flips += 1;
    }

    impl From<v1::Flags> for Flags {
        fn from(old: v1::Flags) -> Self {
            Flags {
                on: old.on.into_iter().map(|n| (n, 100)).collect(),
                flips: old.flips.into(),
            }
        }
    }

    impl From<v1::FlagAction> for FlagAction {
        fn from(old: v1::FlagAction) -> Self {
            match old {
                v1::FlagAction::On(n) => FlagAction::On(n, 100),
                v1::FlagAction::Off(n) => FlagAction::Off(n),
            }
        }
    }
}

/// The third: a field renamed and one added, reading v2 (and through it v1).
pub mod v3 {
    use super::*;

    #[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
    #[cluster_store(name = "Flags", previous = v2::Flags)]
    pub struct Flags {
        pub rollout: BTreeMap<String, u8>,
        pub flips: u64,
        pub owner: Option<String>,
    }

    #[reducer(Flags)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum FlagAction {
        Set(String, u8),
        Off(String),
        OffAll,
        Own(String),
    }

    fn reduce(s: &mut Flags, a: &FlagAction) {
        match a {
            FlagAction::Set(n, pct) => {
                s.rollout.insert(n.clone(), *pct);
            }
            FlagAction::Off(n) => {
                s.rollout.remove(n);
            }
            FlagAction::OffAll => s.rollout.clear(),
            FlagAction::Own(o) => s.owner = Some(o.clone()),
        }
        s.flips += 1;
    }

    impl From<v2::Flags> for Flags {
        fn from(old: v2::Flags) -> Self {
            Flags {
                rollout: old.on,
                flips: old.flips,
                owner: None,
            }
        }
    }

    impl From<v2::FlagAction> for FlagAction {
        fn from(old: v2::FlagAction) -> Self {
            match old {
                v2::FlagAction::On(n, p) => FlagAction::Set(n, p),
                v2::FlagAction::Off(n) => FlagAction::Off(n),
                v2::FlagAction::OffAll => FlagAction::OffAll,
            }
        }
    }
}

/// A store unrelated to `Flags` but under the same name.
pub mod other {
    use super::*;

    #[derive(ClusterStore, Clone, Default, Debug, Serialize, Deserialize)]
    #[cluster_store(name = "Flags")]
    pub struct Flags {
        pub words: Vec<String>,
    }

    #[reducer(Flags)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum FlagAction {
        Say(String),
    }

    fn reduce(s: &mut Flags, a: &FlagAction) {
        let FlagAction::Say(w) = a;
        s.words.push(w.clone());
    }
}

fn cfg(path: &Path, key: Option<&str>) -> BackupConfig {
    let c = BackupConfig::new(path).journal();
    match key {
        Some(k) => c.key(k).kdf(KdfParams::fast_for_tests()),
        None => c,
    }
}

/// A v1 master that journals; the first `snapshot_at` actions are closed
/// into the snapshot (a clean close, then a restart), the rest are only in
/// the journal (the second run is shut down without a close). Returns the
/// final v1 state and seq.
async fn write_v1(
    path: &Path,
    key: Option<&str>,
    actions: &[v1::FlagAction],
    snapshot_at: usize,
) -> (v1::Flags, u64) {
    let (first, rest) = actions.split_at(snapshot_at);
    for (i, part) in [first, rest].into_iter().enumerate() {
        let store = Store::<v1::Flags>::builder().start().expect("v1 master");
        store.backup(cfg(path, key)).await.expect("v1 backup");
        for a in part {
            store.commit(a.clone()).await.expect("commit");
        }
        if i == 0 {
            store.close().await.expect("close");
        } else {
            let out = (store.get_state(), store.seq());
            // Every commit above is durable; no final snapshot.
            store.shutdown();
            return out;
        }
    }
    unreachable!()
}

fn v1_actions() -> Vec<v1::FlagAction> {
    use v1::FlagAction::*;
    vec![
        On("dark".into()),
        On("beta".into()),
        Off("dark".into()),
        On("search".into()),
        On("dark".into()),
        Off("beta".into()),
        On("export".into()),
    ]
}

/// Loads the backup at `path` into a fresh store of type `S`.
async fn load<S: Reducer>(path: &Path, key: Option<&str>) -> Result<Scoped<S>, BackupError> {
    let store = Scoped(Store::<S>::builder().start().expect("master"));
    store.backup(cfg(path, key)).await?;
    Ok(store)
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        if e.path().extension().is_none_or(|x| x != "lock") {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

async fn v1_files_load_into_v2_and_v3(key: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flags.backup");
    let (s1, seq) = write_v1(&path, key, &v1_actions(), 3).await;
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), copy.path());

    // v2 reads v1: the state is the v1 state converted, at the same seq.
    let s2 = load::<v2::Flags>(&path, key).await.expect("v2 loads v1");
    assert_eq!(s2.get_state(), v2::Flags::from(s1.clone()));
    assert_eq!(s2.seq(), seq);
    // It goes on in v2, and the files are v2's now.
    let seq2 = s2
        .commit(v2::FlagAction::On("beta".into(), 10))
        .await
        .expect("commit");
    assert_eq!(seq2, seq + 1);
    let want2 = s2.get_state();
    s2.0.shutdown();
    drop(s2);
    assert!(
        !files(dir.path())
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".migrating")),
        "the earlier version's files were kept after the rewrite: {:?}",
        files(dir.path())
    );
    let again = load::<v2::Flags>(&path, key).await.expect("v2 reloads");
    assert_eq!(again.get_state(), want2);
    assert_eq!(again.seq(), seq2);
    again.0.shutdown();
    drop(again);
    match load::<v1::Flags>(&path, key).await {
        Err(BackupError::SchemaMismatch { .. }) => {}
        Err(e) => panic!("expected a schema mismatch, got {e}"),
        Ok(_) => panic!("v1 read v2's files"),
    }

    // v3 reads v1 through v2.
    let copy_path = copy.path().join("flags.backup");
    let s3 = load::<v3::Flags>(&copy_path, key)
        .await
        .expect("v3 loads v1");
    assert_eq!(s3.get_state(), v3::Flags::from(v2::Flags::from(s1)));
    assert_eq!(s3.seq(), seq);
    s3.0.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn plain_v1_files_load_into_v2_and_v3() {
    v1_files_load_into_v2_and_v3(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn encrypted_v1_files_load_into_v2_and_v3() {
    v1_files_load_into_v2_and_v3(Some("correct horse")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_torn_v1_journal_tail_is_still_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flags.backup");
    let (s1, seq) = write_v1(&path, None, &v1_actions(), 2).await;
    // Half a record at the end: a crash in the middle of an append.
    let mut jpath = path.clone().into_os_string();
    jpath.push(".journal");
    let mut bytes = std::fs::read(&jpath).expect("journal");
    bytes.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    std::fs::write(&jpath, bytes).expect("write");
    let s2 = load::<v2::Flags>(&path, None).await.expect("v2 loads");
    assert_eq!(s2.get_state(), v2::Flags::from(s1));
    assert_eq!(s2.seq(), seq);
    s2.0.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_store_outside_the_chain_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flags.backup");
    {
        let store = Store::<other::Flags>::builder().start().expect("master");
        store.backup(cfg(&path, None)).await.expect("backup");
        store
            .commit(other::FlagAction::Say("hi".into()))
            .await
            .expect("commit");
        store.close().await.expect("close");
    }
    match load::<v2::Flags>(&path, None).await {
        Err(e @ BackupError::SchemaMismatch { .. }) => {
            let BackupError::SchemaMismatch {
                found, expected, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(*found, <other::Flags as Reducer>::SCHEMA);
            assert_eq!(*expected, <v2::Flags as Reducer>::SCHEMA);
            // The file says what its schema is, so the error can say where
            // the two differ.
            let msg = e.to_string();
            assert!(
                msg.contains("first difference: here `") && msg.contains("words"),
                "{msg}"
            );
        }
        Err(e) => panic!("expected a schema mismatch, got {e}"),
        Ok(_) => panic!("a foreign store's file was loaded"),
    }
    // Nothing was rewritten: the file is still the other store's.
    let store = load::<other::Flags>(&path, None)
        .await
        .expect("still readable");
    assert_eq!(store.get_state().words, vec!["hi".to_string()]);
    store.0.shutdown();
}

#[test]
fn each_version_knows_what_it_reads() {
    use redux_cluster::History;
    let mut v = Vec::new();
    <<v3::Flags as redux_cluster::ClusterState>::Previous as History<v3::Flags>>::versions(
        &mut v, 0,
    );
    let schemas: Vec<_> = v.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        schemas,
        vec![
            <v2::Flags as Reducer>::SCHEMA,
            <v1::Flags as Reducer>::SCHEMA
        ]
    );
}
