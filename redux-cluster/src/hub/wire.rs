//! What hubs write to NATS, and how it is named: the store's stream and
//! snapshot bucket, the log messages (many follower batches each) and the
//! snapshots. No I/O.

use crate::schema::SchemaHash;
use crate::session::Saved;
use serde::{Deserialize, Serialize};

/// First byte of every log message and snapshot.
const FORMAT: u8 = 2;
/// The format before validation: entries and saved sessions without
/// rejections; still read.
const FORMAT_BEFORE: u8 = 1;

/// How the shared log of one store is named on the NATS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// The JetStream stream (the ordered log).
    pub stream: String,
    /// The one subject of that stream.
    pub subject: String,
    /// The object store bucket holding snapshots.
    pub bucket: String,
}

impl Names {
    /// The names for the store `name`: characters NATS does not allow in a
    /// stream name become `_`, and a short hash of the exact name keeps two
    /// names that differ only there apart.
    pub fn of(name: &str) -> Self {
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let h = crate::schema::SchemaHasher::new("hub-name")
            .str(name)
            .finish();
        let tag = format!("{:02x}{:02x}{:02x}{:02x}", h.0[0], h.0[1], h.0[2], h.0[3]);
        Self {
            stream: format!("RC_{clean}_{tag}"),
            subject: format!("rc.{clean}_{tag}.log"),
            bucket: format!("RC_{clean}_{tag}_snapshots"),
        }
    }
}

/// The stream's description: the store and its schema, so a hub of
/// another schema is refused before it reads or writes anything.
pub(crate) fn describe(name: &str, schema: &SchemaHash) -> String {
    format!("redux-cluster store `{name}`, schema {schema}")
}

/// The schema a stream description names.
pub(crate) fn schema_in(description: &str) -> Option<SchemaHash> {
    let hex = description.rsplit("schema ").next()?.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(SchemaHash(out))
}

/// The epoch every hub of one stream numbers its actions in: derived from
/// the stream's name and creation time, so all hubs agree on it and a
/// stream deleted and created again starts a new one.
pub(crate) fn epoch_of(stream: &str, created_nanos: i128) -> u64 {
    let h = crate::schema::SchemaHasher::new("hub-epoch")
        .str(stream)
        .str(&created_nanos.to_string())
        .finish();
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.0[..8]);
    u64::from_le_bytes(b) | 1
}

/// The `Nats-Msg-Id` of a hub's `n`th message: the stream drops a retry of
/// a message it already holds.
pub(crate) fn message_id(hub: u64, n: u64) -> String {
    format!("{hub:016x}-{n}")
}

/// One follower batch inside a log message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry<'a> {
    /// The dispatcher's session.
    pub session: u64,
    /// The batch number within it.
    pub batch: u64,
    /// Actions in `packed`.
    pub count: u32,
    /// The actions, encoded one after the other.
    #[serde(borrow)]
    pub packed: &'a [u8],
    /// Actions of the batch the validator rejected (indices within the
    /// batch as sent; they are not in `packed`).
    pub rejected: Vec<crate::validate::Rejection>,
}

/// [`Entry`] in [`FORMAT_BEFORE`].
#[derive(Deserialize)]
struct EntryBefore<'a> {
    session: u64,
    batch: u64,
    count: u32,
    #[serde(borrow)]
    packed: &'a [u8],
}

/// Starts a log message of the store with schema `schema`.
pub(crate) fn start_message(schema: &SchemaHash, out: &mut Vec<u8>) {
    out.push(FORMAT);
    out.extend_from_slice(&schema.0[..8]);
}

/// Bytes a message has before its first entry.
pub(crate) const MESSAGE_HEAD: usize = 9;

/// Appends one entry to a message started by [`start_message`].
pub(crate) fn push_entry(entry: &Entry<'_>, out: &mut Vec<u8>) -> postcard::Result<()> {
    postcard::to_extend(entry, std::mem::take(out)).map(|v| *out = v)
}

/// Why a log message or snapshot cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("written in format {0}, this build reads format {FORMAT}")]
    Format(u8),
    #[error("written by a store of another schema")]
    Schema,
    #[error("malformed: {0}")]
    Malformed(String),
}

/// The entries of a log message, checked against `schema`.
pub(crate) fn entries<'a>(
    body: &'a [u8],
    schema: &SchemaHash,
) -> Result<Vec<Entry<'a>>, WireError> {
    let Some((&format, rest)) = body.split_first() else {
        return Err(WireError::Malformed("empty message".into()));
    };
    if format != FORMAT && format != FORMAT_BEFORE {
        return Err(WireError::Format(format));
    }
    let (prefix, mut rest) = rest
        .split_at_checked(8)
        .ok_or_else(|| WireError::Malformed("truncated header".into()))?;
    if prefix != &schema.0[..8] {
        return Err(WireError::Schema);
    }
    let mut out = Vec::new();
    let malformed = |e: postcard::Error| WireError::Malformed(e.to_string());
    while !rest.is_empty() {
        let (e, r) = if format == FORMAT {
            postcard::take_from_bytes::<Entry<'a>>(rest).map_err(malformed)?
        } else {
            let (e, r) = postcard::take_from_bytes::<EntryBefore<'a>>(rest).map_err(malformed)?;
            let e = Entry {
                session: e.session,
                batch: e.batch,
                count: e.count,
                packed: e.packed,
                rejected: Vec::new(),
            };
            (e, r)
        };
        out.push(e);
        rest = r;
    }
    Ok(out)
}

/// A hub's snapshot: the state after the log message at `position`, with
/// everything needed to go on from the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// The schema of `state`.
    pub schema: [u8; 32],
    /// The stream's epoch.
    pub epoch: u64,
    /// The stream sequence of the last message applied.
    pub position: u64,
    /// The seq of the last action applied.
    pub seq: u64,
    /// The dispatch sessions seen (exactly-once).
    pub sessions: Vec<Saved>,
    /// The encoded state.
    pub state: Vec<u8>,
}

/// [`Snapshot`] in [`FORMAT_BEFORE`].
#[derive(Deserialize)]
struct SnapshotBefore {
    schema: [u8; 32],
    epoch: u64,
    position: u64,
    seq: u64,
    sessions: Vec<crate::session::SavedBefore>,
    state: Vec<u8>,
}

impl Snapshot {
    /// The bytes stored.
    pub fn encode(&self) -> postcard::Result<Vec<u8>> {
        postcard::to_extend(self, vec![FORMAT])
    }

    /// Reads stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let malformed = |e: postcard::Error| WireError::Malformed(e.to_string());
        match bytes.split_first() {
            Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(malformed),
            Some((&FORMAT_BEFORE, rest)) => {
                let s: SnapshotBefore = postcard::from_bytes(rest).map_err(malformed)?;
                Ok(Snapshot {
                    schema: s.schema,
                    epoch: s.epoch,
                    position: s.position,
                    seq: s.seq,
                    sessions: s.sessions.into_iter().map(Into::into).collect(),
                    state: s.state,
                })
            }
            Some((&other, _)) => Err(WireError::Format(other)),
            None => Err(WireError::Malformed("empty snapshot".into())),
        }
    }

    /// The object name of the snapshot at `position`; names sort by
    /// position.
    pub fn name(position: u64) -> String {
        format!("snapshot-{position:020}")
    }

    /// The position an object name stands for.
    pub fn position_in(name: &str) -> Option<u64> {
        name.strip_prefix("snapshot-")?.parse().ok()
    }
}

/// Which snapshots to delete so that `keep` remain, and the stream sequence
/// below which messages are no longer needed (every kept snapshot starts
/// after its own position). `positions` in any order.
pub(crate) fn trim(positions: &[u64], keep: usize) -> (Vec<u64>, Option<u64>) {
    let mut sorted = positions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let cut = sorted.len().saturating_sub(keep.max(1));
    let drop = sorted[..cut].to_vec();
    let below = sorted.get(cut).map(|oldest_kept| oldest_kept + 1);
    (drop, below)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(b: u8) -> SchemaHash {
        SchemaHash([b; 32])
    }

    #[test]
    fn messages_round_trip_and_check_the_schema() {
        let mut m = Vec::new();
        start_message(&schema(7), &mut m);
        assert_eq!(m.len(), MESSAGE_HEAD);
        let a = Entry {
            session: 3,
            batch: 1,
            count: 2,
            packed: b"ab",
            rejected: vec![crate::validate::Rejection {
                index: 1,
                reason: "no".into(),
            }],
        };
        let b = Entry {
            session: u64::MAX,
            batch: 9,
            count: 0,
            packed: b"",
            rejected: Vec::new(),
        };
        push_entry(&a, &mut m).unwrap();
        push_entry(&b, &mut m).unwrap();
        assert_eq!(entries(&m, &schema(7)).unwrap(), vec![a, b]);
        assert_eq!(entries(&m, &schema(8)), Err(WireError::Schema));
        assert!(matches!(
            entries(&m[..m.len() - 1], &schema(7)),
            Err(WireError::Malformed(_))
        ));
        m[0] = 9;
        assert_eq!(entries(&m, &schema(7)), Err(WireError::Format(9)));
        assert!(entries(&[], &schema(7)).is_err());
    }

    #[test]
    fn messages_and_snapshots_of_the_format_before_validation_are_read() {
        #[derive(Serialize)]
        struct Old<'a> {
            session: u64,
            batch: u64,
            count: u32,
            packed: &'a [u8],
        }
        let mut m = vec![FORMAT_BEFORE];
        m.extend_from_slice(&schema(7).0[..8]);
        let old = Old {
            session: 3,
            batch: 1,
            count: 2,
            packed: b"ab",
        };
        m = postcard::to_extend(&old, m).unwrap();
        let e = entries(&m, &schema(7)).unwrap();
        assert_eq!((e[0].session, e[0].batch, e[0].count), (3, 1, 2));
        assert_eq!((e[0].packed, e[0].rejected.len()), (&b"ab"[..], 0));
        let saved = vec![crate::session::SavedBefore {
            session: 1,
            last_batch: 2,
            recent: vec![(2, 10)],
        }];
        let body = ([1u8; 32], 5u64, 42u64, 10u64, saved, vec![9u8]);
        let bytes = postcard::to_extend(&body, vec![FORMAT_BEFORE]).unwrap();
        let s = Snapshot::decode(&bytes).unwrap();
        assert_eq!((s.position, s.seq, s.state), (42, 10, vec![9]));
        assert_eq!(s.sessions[0].recent, vec![(2, 10)]);
    }

    #[test]
    fn names_are_valid_for_nats_and_distinct() {
        let a = Names::of("app::Tasks v2");
        assert!(a
            .stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        assert!(!a.subject.contains(' '));
        assert_ne!(Names::of("a.b").stream, Names::of("a_b").stream);
        assert_eq!(Names::of("Tasks"), Names::of("Tasks"));
    }

    #[test]
    fn descriptions_name_their_schema() {
        let d = describe("Tasks", &schema(0xab));
        assert_eq!(schema_in(&d), Some(schema(0xab)));
        assert_eq!(schema_in("something else"), None);
    }

    #[test]
    fn snapshots_round_trip_and_sort_by_name() {
        let s = Snapshot {
            schema: [1; 32],
            epoch: 5,
            position: 42,
            seq: 1000,
            sessions: vec![Saved {
                session: 1,
                last_batch: 2,
                recent: vec![(2, 1000)],
                rejected: vec![(2, Vec::new())],
            }],
            state: vec![1, 2, 3],
        };
        assert_eq!(Snapshot::decode(&s.encode().unwrap()).unwrap(), s);
        assert_eq!(Snapshot::position_in(&Snapshot::name(42)), Some(42));
        assert!(Snapshot::name(9) < Snapshot::name(10));
        let mut bytes = s.encode().unwrap();
        bytes[0] = FORMAT + 1;
        assert_eq!(Snapshot::decode(&bytes), Err(WireError::Format(FORMAT + 1)));
    }

    #[test]
    fn trimming_keeps_the_newest_and_the_log_after_the_oldest_kept() {
        assert_eq!(trim(&[], 2), (vec![], None));
        assert_eq!(trim(&[10], 2), (vec![], Some(11)));
        assert_eq!(trim(&[30, 10, 20], 2), (vec![10], Some(21)));
        assert_eq!(trim(&[30, 10, 20], 0), (vec![10, 20], Some(31)));
    }

    #[test]
    fn epochs_differ_by_creation() {
        assert_eq!(epoch_of("S", 1), epoch_of("S", 1));
        assert_ne!(epoch_of("S", 1), epoch_of("S", 2));
        assert_eq!(epoch_of("S", 1) & 1, 1);
    }
}
