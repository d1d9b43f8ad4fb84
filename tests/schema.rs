//! Structural schema hashes and store identities: what changes a hash, what
//! does not, that the hash is the same in separate compilations, and what a
//! mismatch report shows.

// Most types here exist only to be hashed, never built or read.
#![allow(dead_code)]

use redux_cluster::{
    describe, first_difference, ClusterState, Reducer, Schema, SchemaHash, SchemaHasher, StoreId,
};
use sha2::{Digest, Sha256};

include!("hashcheck/sample.rs");

/// Generates the same three-level tree of types in each module below, with
/// one change at the bottom, so each test compares two `Outer`s that differ
/// only where it says.
macro_rules! tree {
    (inner { $($inner:tt)* } kind { $($kind:tt)* }) => {
        #[derive(redux_cluster::Schema)]
        pub struct Inner { $($inner)* }

        #[derive(redux_cluster::Schema)]
        pub enum Kind { $($kind)* }

        #[derive(redux_cluster::Schema)]
        pub struct Middle {
            pub items: Vec<Inner>,
            pub kind: Option<Kind>,
        }

        #[derive(redux_cluster::Schema)]
        pub struct Outer {
            pub id: u64,
            pub middle: Middle,
        }
    };
}

mod base {
    tree! { inner { pub a: u32, pub b: String } kind { One, Two(u8), Three { x: i16 } } }
}
mod same {
    tree! { inner { pub a: u32, pub b: String } kind { One, Two(u8), Three { x: i16 } } }
}
mod field_renamed {
    tree! { inner { pub a: u32, pub c: String } kind { One, Two(u8), Three { x: i16 } } }
}
mod field_retyped {
    tree! { inner { pub a: u64, pub b: String } kind { One, Two(u8), Three { x: i16 } } }
}
mod field_reordered {
    tree! { inner { pub b: String, pub a: u32 } kind { One, Two(u8), Three { x: i16 } } }
}
mod field_added {
    tree! { inner { pub a: u32, pub b: String, pub c: bool } kind { One, Two(u8), Three { x: i16 } } }
}
mod field_removed {
    tree! { inner { pub a: u32 } kind { One, Two(u8), Three { x: i16 } } }
}
mod variant_added {
    tree! { inner { pub a: u32, pub b: String } kind { One, Two(u8), Three { x: i16 }, Four } }
}
mod variant_reordered {
    tree! { inner { pub a: u32, pub b: String } kind { Two(u8), One, Three { x: i16 } } }
}
mod variant_renamed {
    tree! { inner { pub a: u32, pub b: String } kind { Uno, Two(u8), Three { x: i16 } } }
}
mod variant_payload_retyped {
    tree! { inner { pub a: u32, pub b: String } kind { One, Two(u16), Three { x: i16 } } }
}
mod variant_tuple_to_named {
    tree! { inner { pub a: u32, pub b: String } kind { One, Two { x: u8 }, Three { x: i16 } } }
}

/// The same structure as `base`, with every type renamed: type names are not
/// part of the wire form, so they are not part of the hash.
mod types_renamed {
    #[derive(redux_cluster::Schema)]
    pub struct Leaf {
        pub a: u32,
        pub b: String,
    }
    #[derive(redux_cluster::Schema)]
    pub enum Sort {
        One,
        Two(u8),
        Three { x: i16 },
    }
    #[derive(redux_cluster::Schema)]
    pub struct Branch {
        pub items: Vec<Leaf>,
        pub kind: Option<Sort>,
    }
    #[derive(redux_cluster::Schema)]
    pub struct Root {
        pub id: u64,
        pub middle: Branch,
    }
}

fn outer_hash<T: Schema>() -> SchemaHash {
    T::HASH
}

#[test]
fn same_structure_same_hash() {
    assert_eq!(outer_hash::<base::Outer>(), outer_hash::<same::Outer>());
    assert_eq!(describe::<base::Outer>(), describe::<same::Outer>());
    assert_eq!(
        outer_hash::<base::Outer>(),
        outer_hash::<types_renamed::Root>()
    );
}

#[test]
fn every_nested_change_changes_the_hash() {
    let base = outer_hash::<base::Outer>();
    let changed = [
        ("field renamed", outer_hash::<field_renamed::Outer>()),
        ("field retyped", outer_hash::<field_retyped::Outer>()),
        ("fields reordered", outer_hash::<field_reordered::Outer>()),
        ("field added", outer_hash::<field_added::Outer>()),
        ("field removed", outer_hash::<field_removed::Outer>()),
        ("variant added", outer_hash::<variant_added::Outer>()),
        (
            "variants reordered",
            outer_hash::<variant_reordered::Outer>(),
        ),
        ("variant renamed", outer_hash::<variant_renamed::Outer>()),
        (
            "variant payload retyped",
            outer_hash::<variant_payload_retyped::Outer>(),
        ),
        (
            "tuple variant made named",
            outer_hash::<variant_tuple_to_named::Outer>(),
        ),
    ];
    for (what, hash) in &changed {
        assert_ne!(*hash, base, "{what}: the hash did not change");
    }
    // And all the changes are told apart from each other.
    for (i, (a, ha)) in changed.iter().enumerate() {
        for (b, hb) in &changed[i + 1..] {
            assert_ne!(ha, hb, "{a} and {b} hash the same");
        }
    }
}

#[test]
fn the_change_is_seen_at_every_level() {
    // Each level up the tree carries the change in the leaf.
    assert_ne!(
        <base::Inner as Schema>::HASH,
        <field_renamed::Inner as Schema>::HASH
    );
    assert_ne!(
        <base::Middle as Schema>::HASH,
        <field_renamed::Middle as Schema>::HASH
    );
    assert_ne!(
        <base::Kind as Schema>::HASH,
        <variant_added::Kind as Schema>::HASH
    );
    assert_ne!(
        <base::Middle as Schema>::HASH,
        <variant_added::Middle as Schema>::HASH
    );
    // An unchanged sibling keeps its hash.
    assert_eq!(
        <base::Kind as Schema>::HASH,
        <field_renamed::Kind as Schema>::HASH
    );
    assert_eq!(
        <base::Inner as Schema>::HASH,
        <variant_added::Inner as Schema>::HASH
    );
}

#[test]
fn wrappers_and_containers_change_the_hash() {
    assert_ne!(<Vec<u32> as Schema>::HASH, <Option<u32> as Schema>::HASH);
    assert_ne!(<Vec<u32> as Schema>::HASH, <[u32; 2] as Schema>::HASH);
    assert_ne!(<Option<u32> as Schema>::HASH, <u32 as Schema>::HASH);
    assert_ne!(<(u32, u32) as Schema>::HASH, <[u32; 2] as Schema>::HASH);
    assert_ne!(<(u8,) as Schema>::HASH, <u8 as Schema>::HASH);
    assert_ne!(<u32 as Schema>::HASH, <i32 as Schema>::HASH);
    assert_ne!(<f32 as Schema>::HASH, <f64 as Schema>::HASH);
    assert_ne!(
        <std::collections::BTreeMap<String, u8> as Schema>::HASH,
        <std::collections::BTreeSet<(String, u8)> as Schema>::HASH
    );
    // Same serde encoding, same hash: swapping these is not drift.
    assert_eq!(
        <Vec<u32> as Schema>::HASH,
        <std::collections::VecDeque<u32> as Schema>::HASH
    );
    assert_eq!(
        <std::collections::HashMap<String, u8> as Schema>::HASH,
        <std::collections::BTreeMap<String, u8> as Schema>::HASH
    );
    assert_eq!(
        <std::collections::HashSet<u8> as Schema>::HASH,
        <std::collections::BTreeSet<u8> as Schema>::HASH
    );
    assert_eq!(<usize as Schema>::HASH, <u64 as Schema>::HASH);
    assert_eq!(<str as Schema>::HASH, <String as Schema>::HASH);
}

/// One store per module, each differing from `base` in one way.
macro_rules! store {
    ($name:literal, state { $($state:tt)* } action { $($action:tt)* }) => {
        use serde::{Deserialize, Serialize};

        #[derive(redux_cluster::ClusterStore, Clone, Default, Serialize, Deserialize)]
        #[cluster_store(name = $name)]
        pub struct State { $($state)* }

        #[redux_cluster::reducer(State, apply = ignore)]
        #[derive(Serialize, Deserialize)]
        pub enum Action { $($action)* }

        fn ignore(_: &mut State, _: &Action) {}
    };
}

mod store_base {
    store! { "counter", state { pub n: u64 } action { Inc, Add(u64) } }
}
mod store_same {
    store! { "counter", state { pub n: u64 } action { Inc, Add(u64) } }
}
mod store_state_changed {
    store! { "counter", state { pub n: u32 } action { Inc, Add(u64) } }
}
mod store_action_changed {
    store! { "counter", state { pub n: u64 } action { Inc, Add(u64), Reset } }
}
mod store_renamed {
    store! { "tally", state { pub n: u64 } action { Inc, Add(u64) } }
}

#[test]
fn store_schema_covers_state_and_actions_and_id_covers_the_name() {
    use store_base::State as Base;
    assert_eq!(
        <Base as Reducer>::SCHEMA,
        <store_same::State as Reducer>::SCHEMA
    );
    assert_eq!(<Base as Reducer>::ID, <store_same::State as Reducer>::ID);

    assert_ne!(
        <Base as Reducer>::SCHEMA,
        <store_state_changed::State as Reducer>::SCHEMA
    );
    assert_ne!(
        <Base as Reducer>::ID,
        <store_state_changed::State as Reducer>::ID
    );
    assert_ne!(
        <Base as Reducer>::SCHEMA,
        <store_action_changed::State as Reducer>::SCHEMA
    );
    assert_ne!(
        <Base as Reducer>::ID,
        <store_action_changed::State as Reducer>::ID
    );

    // Renaming the store keeps the schema but makes another store.
    assert_eq!(
        <Base as Reducer>::SCHEMA,
        <store_renamed::State as Reducer>::SCHEMA
    );
    assert_ne!(<Base as Reducer>::ID, <store_renamed::State as Reducer>::ID);
    assert_eq!(<store_renamed::State as ClusterState>::NAME, "tally");

    // The id is exactly `StoreId::new(name, schema)`.
    assert_eq!(
        <Base as Reducer>::ID,
        StoreId::new("counter", <Base as Reducer>::SCHEMA)
    );
    // The store's schema is not just its state's.
    assert_ne!(<Base as Reducer>::SCHEMA, <Base as Schema>::HASH);
}

/// The sample's hashes, as every build must compute them. These literals
/// are what makes the hash a wire contract: a change to the hashing scheme
/// (or to `hashcheck/sample.rs`) shows up here and must be deliberate,
/// since peers built before it will refuse peers built after it.
const SAMPLE_SCHEMA: &str = "10648980540ec07d0fa133f4f3d38ceecd5c96d6646de84ecf771ff691ed8e2e";
const SAMPLE_ID: &str = "074218d016f5c30989a6ac7ba1fc77555b069f09266be82b553a3b99039ccedd";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sample_hashes_are_pinned() {
    assert_eq!(<Sample as Reducer>::SCHEMA.to_hex(), SAMPLE_SCHEMA);
    assert_eq!(hex(&<Sample as Reducer>::ID.0), SAMPLE_ID);
    // And a running store reports the same.
    let store = Sample::start_master().expect("a plain process is its own master");
    assert_eq!(store.schema_hash().to_hex(), SAMPLE_SCHEMA);
    assert_eq!(hex(&store.id().0), SAMPLE_ID);
    assert_eq!(store.id().to_string(), SAMPLE_ID[..16]);
    store
        .dispatch(SampleAction::Tag {
            key: "k".into(),
            value: vec![1],
        })
        .expect("the master applies at once");
    store
        .dispatch(SampleAction::SetVersion("v".into()))
        .expect("the master applies at once");
    store
        .dispatch(SampleAction::Done)
        .expect("the master applies at once");
    assert_eq!(store.state().tags["k"], [1]);
    assert!(store.state().owner.is_none());
    let _ = SampleOwner {
        name: String::new(),
        id: (0, 0),
    };
}

/// The same hashes, by hand with the `sha2` crate: the compile-time SHA-256
/// and the derive's token layout match a reference implementation.
#[test]
fn hashes_match_a_reference_sha256() {
    fn token(h: &mut Sha256, s: &str) {
        h.update((s.len() as u32).to_le_bytes());
        h.update(s.as_bytes());
    }
    let prim = |name: &str| {
        let mut h = Sha256::new();
        token(&mut h, "prim");
        token(&mut h, name);
        SchemaHash(h.finalize().into())
    };
    assert_eq!(<u32 as Schema>::HASH, prim("u32"));
    assert_eq!(<String as Schema>::HASH, prim("String"));

    // `struct { a: u32 }`
    #[derive(redux_cluster::Schema)]
    struct One {
        a: u32,
    }
    let mut h = Sha256::new();
    token(&mut h, "struct");
    token(&mut h, "named");
    h.update(1u64.to_le_bytes());
    token(&mut h, "a");
    h.update(prim("u32").0);
    assert_eq!(<One as Schema>::HASH, SchemaHash(h.finalize().into()));

    // `enum { A, B(u8) }`
    #[derive(redux_cluster::Schema)]
    enum Two {
        A,
        B(u8),
    }
    let mut h = Sha256::new();
    token(&mut h, "enum");
    h.update(2u64.to_le_bytes());
    token(&mut h, "A");
    token(&mut h, "unit");
    token(&mut h, "B");
    token(&mut h, "tuple");
    h.update(1u64.to_le_bytes());
    h.update(prim("u8").0);
    assert_eq!(<Two as Schema>::HASH, SchemaHash(h.finalize().into()));

    // `struct { #[serde(default)] a: u32 }`
    #[derive(redux_cluster::Schema, serde::Deserialize)]
    struct Three {
        #[serde(default)]
        a: u32,
    }
    let mut h = Sha256::new();
    token(&mut h, "struct");
    token(&mut h, "named");
    h.update(1u64.to_le_bytes());
    token(&mut h, "a");
    token(&mut h, "#[serde]");
    token(&mut h, "default");
    h.update(prim("u32").0);
    assert_eq!(<Three as Schema>::HASH, SchemaHash(h.finalize().into()));

    // Every message length across the block and padding boundaries.
    for len in 0..300 {
        let s = "x".repeat(len);
        let mut h = Sha256::new();
        token(&mut h, "t");
        token(&mut h, &s);
        assert_eq!(
            SchemaHasher::new("t").str(&s).finish(),
            SchemaHash(h.finalize().into()),
            "length {len}"
        );
    }
}

#[test]
fn describe_shows_the_structure() {
    assert_eq!(describe::<base::Inner>(), "{a:u32,b:String,}");
    assert_eq!(
        describe::<base::Kind>(),
        "enum{One,Two(u8,),Three{x:i16,},}"
    );
    assert_eq!(
        describe::<base::Outer>(),
        "{id:u64,middle:{items:Vec<{a:u32,b:String,}>,kind:Option<enum{One,Two(u8,),Three{x:i16,},}>,},}"
    );
    // Equal descriptions for equal hashes, different for different ones.
    assert_eq!(describe::<base::Outer>(), describe::<types_renamed::Root>());
    assert_ne!(
        describe::<base::Outer>(),
        describe::<field_reordered::Outer>()
    );
}

/// Serde attributes can change the wire form (a skipped field is not sent,
/// `with` swaps the encoding), so they are part of the hash; a type without
/// them hashes as if serde attributes did not exist.
mod serde_attrs {
    use serde::{Deserialize, Serialize};

    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    pub struct Plain {
        pub a: u32,
        pub b: String,
    }
    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    pub struct Skipped {
        pub a: u32,
        #[serde(skip)]
        pub b: String,
    }
    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    pub struct Defaulted {
        pub a: u32,
        #[serde(default)]
        pub b: String,
    }
    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OnContainer {
        pub a: u32,
        pub b: String,
    }
    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    pub struct Tuple(pub u32, #[serde(skip)] pub String);
    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    pub struct TuplePlain(pub u32, pub String);
    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    pub enum Kind {
        One,
        #[serde(skip)]
        Two(u8),
    }
    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    pub enum KindPlain {
        One,
        Two(u8),
    }
    // The same attributes spelled with other spacing and line breaks.
    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    pub struct RenamedA {
        #[serde(rename = "x", default)]
        pub a: u32,
    }
    #[derive(redux_cluster::Schema, Serialize, Deserialize)]
    pub struct RenamedB {
        #[serde(rename = "x", default)]
        pub a: u32,
    }
}

#[test]
fn serde_attributes_are_part_of_the_hash() {
    use serde_attrs::*;
    let plain = <Plain as Schema>::HASH;
    assert_eq!(
        plain,
        <base::Inner as Schema>::HASH,
        "no attribute, no change"
    );
    let changed = [
        ("skip", <Skipped as Schema>::HASH),
        ("default", <Defaulted as Schema>::HASH),
        ("container", <OnContainer as Schema>::HASH),
    ];
    for (what, h) in &changed {
        assert_ne!(*h, plain, "{what}");
    }
    assert_ne!(changed[0].1, changed[1].1);
    assert_ne!(<Tuple as Schema>::HASH, <TuplePlain as Schema>::HASH);
    assert_ne!(<Kind as Schema>::HASH, <KindPlain as Schema>::HASH);
    assert_eq!(<RenamedA as Schema>::HASH, <RenamedB as Schema>::HASH);
    // A mismatch report shows them.
    assert_eq!(describe::<Skipped>(), "{a:u32,#[serde(skip)]b:String,}");
    assert_eq!(
        describe::<OnContainer>(),
        "#[serde(deny_unknown_fields)]{a:u32,b:String,}"
    );
    assert_eq!(describe::<Tuple>(), "(u32,#[serde(skip)]String,)");
    assert_eq!(describe::<Kind>(), "enum{One,#[serde(skip)]Two(u8,),}");
    assert_eq!(
        describe::<RenamedB>(),
        "{#[serde(rename = \"x\", default)]a:u32,}"
    );
}

/// What a peer is shown when two schemas differ: an excerpt of each side,
/// starting a little before the first difference.
#[test]
fn first_difference_points_at_the_nested_change() {
    let base = describe::<base::Outer>();
    let cases = [
        (describe::<field_renamed::Outer>(), "b:String", "c:String"),
        (describe::<field_retyped::Outer>(), "a:u32", "a:u64"),
        (describe::<field_reordered::Outer>(), "{a:u32", "{b:String"),
        (
            describe::<field_removed::Outer>(),
            "a:u32,b:String",
            "a:u32,}",
        ),
        (
            describe::<variant_added::Outer>(),
            "x:i16,},}",
            "x:i16,},Four,}",
        ),
        (
            describe::<variant_reordered::Outer>(),
            "enum{One,Two",
            "enum{Two(u8,),One",
        ),
        (
            describe::<variant_payload_retyped::Outer>(),
            "Two(u8,)",
            "Two(u16,)",
        ),
    ];
    for (theirs, in_ours, in_theirs) in &cases {
        let (a, b) = first_difference(&base, theirs).expect("they differ");
        assert!(a.contains(in_ours), "{a:?} should show {in_ours:?}");
        assert!(b.contains(in_theirs), "{b:?} should show {in_theirs:?}");
        assert!(
            a.chars().count() <= 48 && b.chars().count() <= 48,
            "{a:?} / {b:?}"
        );
        // Symmetric: swapping the sides swaps the excerpts.
        assert_eq!(first_difference(theirs, &base), Some((b, a)));
    }
    assert_eq!(first_difference(&base, &base), None);
    // One description a prefix of the other still differs, at its end.
    let (a, b) = first_difference("{a:u8,}", "{a:u8,}x").expect("they differ");
    assert_eq!((a.as_str(), b.as_str()), ("{a:u8,}", "{a:u8,}x"));
    // Never splits a multi-byte character.
    let (a, b) = first_difference("{é:u8,}", "{é:u16,}").expect("they differ");
    assert!(a.contains("u8") && b.contains("u16"));
}

/// Builds `hashcheck/` (which includes the same `sample.rs`) as a crate of
/// its own, twice, each time from scratch in its own target directory, and
/// checks both binaries print the pinned hashes: equality across separate
/// compilations, shown directly rather than through the pinned literals.
///
/// Ignored by default: two cold builds of the runtime and its dependencies
/// take minutes on a small machine. Run it with
/// `cargo test -p redux-cluster-tests --test schema -- --ignored`.
#[test]
#[ignore = "two cold cargo builds; run with --ignored"]
fn separate_builds_print_the_same_hashes() {
    use std::path::Path;
    use std::process::Command;

    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runtime = here.join("../redux-cluster");
    let runtime = runtime
        .canonicalize()
        .expect("the runtime crate is beside tests/");
    let krate = tempfile::tempdir().expect("a temp dir");
    let manifest = format!(
        r#"[package]
name = "redux-cluster-hashcheck"
version = "0.0.0"
edition = "2021"
publish = false

[[bin]]
name = "hashcheck"
path = "main.rs"

[dependencies]
redux-cluster = {{ path = {runtime:?} }}
serde = {{ version = "1", features = ["derive"] }}

# Not part of any workspace above the temp dir.
[workspace]
"#
    );
    std::fs::write(krate.path().join("Cargo.toml"), manifest).expect("write the manifest");
    for file in ["main.rs", "sample.rs"] {
        std::fs::copy(here.join("hashcheck").join(file), krate.path().join(file))
            .expect("copy the hashcheck sources");
    }
    // The workspace's lock file, so both builds use the versions the tests do.
    std::fs::copy(here.join("../Cargo.lock"), krate.path().join("Cargo.lock"))
        .expect("copy the lock file");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let target = tempfile::tempdir().expect("a temp dir");
        let out = Command::new(&cargo)
            .args(["run", "--quiet", "--manifest-path"])
            .arg(krate.path().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target.path())
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "hashcheck build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(String::from_utf8(out.stdout).expect("utf-8 output"));
    }
    let expected = format!("schema {SAMPLE_SCHEMA}\nid {SAMPLE_ID}\n");
    assert_eq!(outputs[0], expected);
    assert_eq!(outputs[1], expected);
}

// ---- Foreign types (features of redux-cluster) and `#[schema(...)]` ----

mod foreign {
    use redux_cluster::{reducer, ClusterStore, Schema};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// A type of another crate that has no `Schema` (here: std's `IpAddr`).
    pub type Foreign = std::net::IpAddr;

    /// Stands for a foreign type in the hash (`#[schema(with = ...)]`).
    #[derive(Schema)]
    pub struct IpSchema(pub String);

    #[derive(ClusterStore, Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Account {
        pub id: uuid::Uuid,
        pub created: chrono::DateTime<chrono::Utc>,
        pub day: time::Date,
        pub home: url::Url,
        pub avatar: bytes::Bytes,
        pub balance: rust_decimal::Decimal,
        pub nick: smol_str::SmolStr,
        pub bio: compact_str::CompactString,
        pub tags: indexmap::IndexMap<String, u32>,
        #[schema(opaque = "ip address")]
        pub last_ip: Foreign,
        #[schema(with = IpSchema)]
        pub first_ip: Foreign,
        pub tree: Folder,
        pub notes: BTreeMap<u32, String>,
    }

    impl Default for Account {
        fn default() -> Self {
            Account {
                id: uuid::Uuid::from_u128(7),
                created: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
                day: time::Date::MIN,
                home: url::Url::parse("https://example.com/").expect("url"),
                avatar: bytes::Bytes::from_static(b"png"),
                balance: rust_decimal::Decimal::new(1234, 2),
                nick: "ann".into(),
                bio: "hello".into(),
                tags: indexmap::IndexMap::new(),
                last_ip: [127, 0, 0, 1].into(),
                first_ip: [10, 0, 0, 1].into(),
                tree: Folder::default(),
                notes: BTreeMap::new(),
            }
        }
    }

    /// Mutually recursive: a folder holds files, a file holds folders.
    #[derive(Schema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Folder {
        pub name: String,
        pub files: Vec<File>,
    }

    #[derive(Schema, Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct File {
        pub name: String,
        #[schema(recursive)]
        pub attachments: Vec<Folder>,
    }

    #[reducer(Account)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum AccountAction {
        Rename(smol_str::SmolStr),
        Tag(String, u32),
        Seen(#[schema(opaque = "ip address")] Foreign),
        Put(Folder),
    }

    fn reduce(s: &mut Account, a: &AccountAction) {
        match a {
            AccountAction::Rename(n) => s.nick = n.clone(),
            AccountAction::Tag(t, n) => {
                s.tags.insert(t.clone(), *n);
            }
            AccountAction::Seen(ip) => s.last_ip = *ip,
            AccountAction::Put(f) => s.tree = f.clone(),
        }
    }
}

#[test]
fn foreign_types_have_schemas_and_round_trip_through_a_store() {
    use foreign::*;
    let describe = redux_cluster::describe::<Account>();
    assert!(describe.contains("id:uuid,"), "{describe}");
    assert!(describe.contains("nick:String,"), "{describe}");
    assert!(
        describe.contains("last_ip:opaque(ip address),"),
        "{describe}"
    );
    assert!(describe.contains("first_ip:(String,),"), "{describe}");
    assert!(describe.contains("tags:Map<String, u32>,"), "{describe}");
    // Same wire form, same schema: SmolStr and CompactString are strings,
    // IndexMap is a map.
    assert_eq!(
        <smol_str::SmolStr as Schema>::HASH,
        <String as Schema>::HASH
    );
    assert_eq!(
        <compact_str::CompactString as Schema>::HASH,
        <String as Schema>::HASH
    );
    assert_eq!(
        <indexmap::IndexMap<String, u32> as Schema>::HASH,
        <std::collections::BTreeMap<String, u32> as Schema>::HASH
    );
    // And the store works: the state survives the wire encoding.
    let store = Account::start_master().expect("master");
    store
        .dispatch(AccountAction::Rename("bob".into()))
        .expect("dispatch");
    store
        .dispatch(AccountAction::Seen([192, 168, 1, 2].into()))
        .expect("dispatch");
    let bytes = postcard::to_stdvec(&*store.state()).expect("encode");
    let back: Account = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(back, store.get_state());
    store.shutdown();
}

#[test]
fn mutually_recursive_types_hash_deterministically() {
    use foreign::{File, Folder};
    // Finite, and the same on every call (a const).
    let a = <Folder as Schema>::HASH;
    assert_eq!(a, <Folder as Schema>::HASH);
    assert_ne!(a, <File as Schema>::HASH);
    assert_eq!(
        redux_cluster::describe::<Folder>(),
        "{name:String,files:Vec<{name:String,attachments:opaque(rec Vec<Folder>),}>,}"
    );
}
