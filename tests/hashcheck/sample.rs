// A fixed sample store, shared by `tests/schema.rs` (through `include!`) and
// by the `hashcheck` binary that the schema test builds on its own. Its
// schema hash and store id are pinned in `tests/schema.rs`: do not edit this
// file without updating those pins, since they are the proof that the hash
// is the same in every separate compilation.

/// The sample state.
#[derive(
    ::redux_cluster::ClusterStore, Clone, Default, ::serde::Serialize, ::serde::Deserialize,
)]
#[cluster_store(name = "hashcheck-sample")]
pub struct Sample {
    /// Last version set.
    pub version: String,
    /// Number of `Done` actions.
    pub done: u64,
    /// Labels, by key.
    pub tags: ::std::collections::BTreeMap<String, Vec<u8>>,
    /// A nested type.
    pub owner: Option<SampleOwner>,
}

/// A nested type inside the sample state.
#[derive(::redux_cluster::Schema, Clone, ::serde::Serialize, ::serde::Deserialize)]
pub struct SampleOwner {
    /// Name.
    pub name: String,
    /// Numeric id.
    pub id: (u32, i16),
}

/// The sample actions.
#[::redux_cluster::reducer(Sample, apply = reduce_sample)]
#[derive(Clone, ::serde::Serialize, ::serde::Deserialize)]
pub enum SampleAction {
    /// Sets the version.
    SetVersion(String),
    /// Counts one.
    Done,
    /// Sets a label.
    Tag {
        /// Label key.
        key: String,
        /// Label value.
        value: Vec<u8>,
    },
}

fn reduce_sample(state: &mut Sample, action: &SampleAction) {
    match action {
        SampleAction::SetVersion(v) => state.version.clone_from(v),
        SampleAction::Done => state.done += 1,
        SampleAction::Tag { key, value } => {
            state.tags.insert(key.clone(), value.clone());
        }
    }
}
