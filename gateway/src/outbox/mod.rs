//! The durable outbox: every rendered message is committed here before it is published, and
//! removed only after the broker acknowledged it (MQTT PUBACK). A gateway killed with `kill -9`
//! restarts and publishes whatever was still waiting (duplicates are possible; CloudEvent ids are
//! stable, so subscribers de-duplicate).
//!
//! Design: [redb](https://docs.rs/redb), an ACID embedded key-value store in one file
//! (copy-on-write B-trees, checksummed commit slots, crash-safe without a recovery log of our
//! own). Keys are a gateway-local sequence number (`u64`, strictly increasing); values are
//! [`record`]-encoded messages. Why redb rather than a hand-written segmented log: deletes out of
//! order (acks arrive per packet id, retained state is evicted from the middle), crash
//! consistency and torn-write detection are the hard parts of a log, and redb has them tested;
//! it is pure Rust (no C toolchain for the Raspberry Pi build). Throughput comes from group
//! commit: the writer task commits everything that arrived while the previous commit was
//! syncing in one transaction, so one fsync covers many events.
//!
//! Bounded: `max_bytes` of record data. When full, the policy is, in order:
//! 1. evict the oldest retained-state record (occupancy, node status): a newer one supersedes it;
//! 2. for a campaign trigger, evict the oldest zone event; if only triggers remain, **refuse the
//!    new trigger** — counted (`footfall_outbox_dropped_total{class="campaign_trigger",
//!    action="refused"}`) and logged at error level, never silent;
//! 3. for a zone event, `when_full = "drop_oldest"` (default) evicts the oldest zone event,
//!    `"refuse_new"` refuses the new one;
//! 4. a state record with no room is refused.
//!
//! Every eviction and refusal is counted by class and action.

pub mod record;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Deserialize;

use crate::cloudevents::OutMessage;
use crate::metrics;
pub use record::Class;

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const AUDIT: TableDefinition<&str, u64> = TableDefinition::new("audit");
/// Metadata key: the engine sequence number of the newest event ever appended.
pub const ENGINE_SEQ: &str = "engine_seq";

/// What to do with a new zone event when the outbox is full and no retained state is left to
/// evict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Evict the oldest zone event (default: recent context is worth more than old).
    #[default]
    DropOldest,
    /// Keep what is stored and refuse the new event.
    RefuseNew,
}

/// `[outbox]` in the config file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Database file; default `{gateway.state_dir}/outbox.redb`.
    pub path: Option<PathBuf>,
    /// Most record bytes kept (topic + payload + 30 bytes per record). Default 256 MiB.
    pub max_bytes: u64,
    /// Policy for zone events when full.
    pub when_full: WhenFull,
    /// Most records committed in one transaction.
    pub max_batch: usize,
    /// Fsync every commit that adds records (default true). `false` trades durability across
    /// power loss for latency; records still survive a process crash.
    pub fsync: bool,
    /// Most bytes of database pages redb keeps in memory (read cache and write buffer).
    /// Default 4 MiB. redb's own default, 1 GiB, keeps every page a commit writes, so during a
    /// broker outage the process grew with the backlog on disk (+24 MiB of RSS for 19 MB of
    /// outbox); the publisher reads each record about once, so a small cache costs re-reads from
    /// the OS page cache, not durability.
    pub cache_bytes: u64,
    /// Testing aid: also keep every appended event id forever, in the same transaction
    /// (`audit` table), so loss tests can compare "ever stored" with "received". Grows without
    /// bound: never enable in production.
    pub audit: bool,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_bytes: 256 * 1024 * 1024,
            when_full: WhenFull::DropOldest,
            max_batch: 4096,
            fsync: true,
            cache_bytes: 4 * 1024 * 1024,
            audit: false,
        }
    }
}

/// Outbox failures: the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// redb reported an error.
    #[error("outbox {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::Error,
    },
    /// The directory for the database could not be created.
    #[error("outbox {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    class: Class,
    len: u64,
}

/// A record read back for publishing.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Outbox sequence number.
    pub seq: u64,
    /// The message.
    pub msg: OutMessage,
    /// When it was appended, µs since the Unix epoch.
    pub appended_us: u64,
}

/// What one commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Sequence numbers given to the appended messages (refused ones are absent).
    pub appended: Vec<u64>,
    /// Records removed because the broker acknowledged them (and were present).
    pub removed: usize,
    /// Records evicted to make room.
    pub evicted: usize,
    /// New messages refused.
    pub refused: usize,
}

/// The writer's handle: owns the in-memory index used for the capacity policy. Readers use
/// [`OutboxReader`] (redb is MVCC: reads never wait for a commit's fsync).
#[derive(Debug)]
pub struct Outbox {
    db: Arc<Database>,
    path: PathBuf,
    index: BTreeMap<u64, Meta>,
    by_class: BTreeMap<Class, BTreeSet<u64>>,
    bytes: u64,
    next_seq: u64,
    cfg: OutboxConfig,
    last_immediate: Instant,
}

/// A cheap, cloneable read handle.
#[derive(Clone, Debug)]
pub struct OutboxReader {
    db: Arc<Database>,
    path: PathBuf,
}

fn store_err(path: &Path) -> impl Fn(redb::Error) -> OutboxError + '_ {
    move |source| OutboxError::Store {
        path: path.to_owned(),
        source,
    }
}

macro_rules! tri {
    ($path:expr, $e:expr) => {
        $e.map_err(|e| store_err($path)(redb::Error::from(e)))?
    };
}

impl Outbox {
    /// Opens (or creates) the outbox at `path` and rebuilds the index from what is stored.
    pub fn open(path: &Path, cfg: OutboxConfig) -> Result<Self, OutboxError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OutboxError::Io {
                path: path.to_owned(),
                source,
            })?;
        }
        let cache = usize::try_from(cfg.cache_bytes).unwrap_or(usize::MAX);
        let db = tri!(path, Database::builder().set_cache_size(cache).create(path));
        // Make sure both tables exist so readers never see "table does not exist".
        let txn = tri!(path, db.begin_write());
        {
            let _ = tri!(path, txn.open_table(RECORDS));
            let _ = tri!(path, txn.open_table(META));
        }
        tri!(path, txn.commit());

        let mut index = BTreeMap::new();
        let mut by_class: BTreeMap<Class, BTreeSet<u64>> = BTreeMap::new();
        let mut bytes = 0u64;
        let mut corrupt = Vec::new();
        {
            let txn = tri!(path, db.begin_read());
            let table = tri!(path, txn.open_table(RECORDS));
            for item in tri!(path, table.range(0u64..)) {
                let (k, v) = tri!(path, item);
                let seq = k.value();
                let val = v.value();
                match record::peek_class(val) {
                    Some(class) => {
                        let len = val.len() as u64;
                        index.insert(seq, Meta { class, len });
                        by_class.entry(class).or_default().insert(seq);
                        bytes += len;
                    }
                    None => corrupt.push(seq),
                }
            }
        }
        let next_seq = index.keys().next_back().map_or(1, |s| s + 1);
        let mut ob = Self {
            db: Arc::new(db),
            path: path.to_owned(),
            index,
            by_class,
            bytes,
            next_seq,
            cfg,
            last_immediate: Instant::now(),
        };
        if !corrupt.is_empty() {
            tracing::error!(count = corrupt.len(), path = %path.display(), "outbox: dropping unreadable records");
            ob.commit(&[], &corrupt, 0)?;
        }
        ob.publish_depth();
        Ok(ob)
    }

    /// A read handle.
    pub fn reader(&self) -> OutboxReader {
        OutboxReader {
            db: Arc::clone(&self.db),
            path: self.path.clone(),
        }
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Record bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The highest sequence number ever given out (0 before the first append).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    fn publish_depth(&self) {
        metrics::outbox_depth(self.index.len() as u64, self.bytes);
    }

    fn oldest(&self, class: Class) -> Option<u64> {
        self.by_class.get(&class).and_then(|s| s.first().copied())
    }

    fn forget(&mut self, seq: u64) -> Option<Meta> {
        let meta = self.index.remove(&seq)?;
        if let Some(set) = self.by_class.get_mut(&meta.class) {
            set.remove(&seq);
        }
        self.bytes = self.bytes.saturating_sub(meta.len);
        Some(meta)
    }

    /// Decides what to evict so that `len` more bytes of `class` fit. `Ok(victims)` to evict
    /// first, or `Err(())` to refuse the new record.
    fn make_room(&self, class: Class, len: u64, planned: &mut Vec<u64>) -> Result<(), ()> {
        if len > self.cfg.max_bytes {
            return Err(());
        }
        let mut freed = 0u64;
        let mut candidates: Vec<Box<dyn Iterator<Item = u64> + '_>> = Vec::new();
        let iter_of = |c: Class| {
            self.by_class
                .get(&c)
                .into_iter()
                .flat_map(|s| s.iter().copied())
        };
        candidates.push(Box::new(iter_of(Class::State)));
        match class {
            Class::State => {}
            Class::Event if self.cfg.when_full == WhenFull::DropOldest => {
                candidates.push(Box::new(iter_of(Class::Event)));
            }
            Class::Event => {}
            Class::Trigger => candidates.push(Box::new(iter_of(Class::Event))),
        }
        let start = planned.len();
        for cand in candidates {
            for seq in cand {
                if self.bytes - freed + len <= self.cfg.max_bytes {
                    return Ok(());
                }
                if let Some(m) = self.index.get(&seq) {
                    freed += m.len;
                    planned.push(seq);
                }
            }
        }
        if self.bytes - freed + len <= self.cfg.max_bytes {
            Ok(())
        } else {
            planned.truncate(start);
            Err(())
        }
    }

    /// One transaction: removes `acked`, appends `new` (evicting or refusing per the policy),
    /// and commits — durably (fsync) when anything was appended. `now_us` is the append time
    /// recorded for the latency metric.
    pub fn commit(
        &mut self,
        new: &[OutMessage],
        acked: &[u64],
        now_us: u64,
    ) -> Result<CommitReport, OutboxError> {
        self.commit_with_seq(new, acked, now_us, None)
    }

    /// [`Outbox::commit`], also recording `engine_seq` (the engine sequence number of the
    /// newest appended event) in the same transaction, so that after any crash the engine
    /// resumes numbering past every event that was ever stored.
    pub fn commit_with_seq(
        &mut self,
        new: &[OutMessage],
        acked: &[u64],
        now_us: u64,
        engine_seq: Option<u64>,
    ) -> Result<CommitReport, OutboxError> {
        let path = self.path.clone();
        let path = path.as_path();
        let mut report = CommitReport::default();
        let mut appended_ids: Vec<&str> = Vec::new();
        let mut txn = tri!(path, self.db.begin_write());
        let immediate = (!new.is_empty() && self.cfg.fsync)
            || self.last_immediate.elapsed() >= Duration::from_secs(1);
        tri!(
            path,
            txn.set_durability(if immediate {
                Durability::Immediate
            } else {
                Durability::None
            })
        );
        {
            let mut table = tri!(path, txn.open_table(RECORDS));
            for seq in acked {
                if self.forget(*seq).is_some() {
                    tri!(path, table.remove(*seq));
                    report.removed += 1;
                }
            }
            let mut victims = Vec::new();
            for msg in new {
                let enc = record::encode(msg, now_us);
                let len = enc.len() as u64;
                let class = Class::of(msg.class);
                victims.clear();
                if self.bytes + len > self.cfg.max_bytes {
                    if self.make_room(class, len, &mut victims).is_err() {
                        report.refused += 1;
                        metrics::outbox_dropped(class.label(), "refused");
                        if class == Class::Trigger {
                            tracing::error!(event_id = %msg.event_id, topic = %msg.topic,
                                "outbox full of campaign triggers: refusing a new trigger");
                        } else {
                            tracing::warn!(event_id = %msg.event_id, class = class.label(), "outbox full: refusing a new record");
                        }
                        continue;
                    }
                    for v in &victims {
                        if let Some(m) = self.forget(*v) {
                            tri!(path, table.remove(*v));
                            report.evicted += 1;
                            metrics::outbox_dropped(m.class.label(), "evicted");
                        }
                    }
                    tracing::warn!(
                        evicted = victims.len(),
                        "outbox full: evicted older records"
                    );
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                tri!(path, table.insert(seq, enc.as_slice()));
                self.index.insert(seq, Meta { class, len });
                self.by_class.entry(class).or_default().insert(seq);
                self.bytes += len;
                report.appended.push(seq);
                appended_ids.push(msg.event_id.as_str());
            }
        }
        if self.cfg.audit && !report.appended.is_empty() {
            let mut audit = tri!(path, txn.open_table(AUDIT));
            for id in &appended_ids {
                tri!(path, audit.insert(*id, 1u64));
            }
        }
        if let Some(es) = engine_seq.filter(|_| !new.is_empty()) {
            let mut meta = tri!(path, txn.open_table(META));
            let prev = tri!(path, meta.get(ENGINE_SEQ)).map_or(0, |g| g.value());
            if es > prev {
                tri!(path, meta.insert(ENGINE_SEQ, es));
            }
        }
        tri!(path, txn.commit());
        if immediate {
            self.last_immediate = Instant::now();
        }
        metrics::outbox_appended(report.appended.len() as u64);
        metrics::outbox_acked(report.removed as u64);
        self.publish_depth();
        Ok(report)
    }

    /// Reads a value from the outbox's small metadata table.
    pub fn meta_get(&self, key: &str) -> Result<Option<u64>, OutboxError> {
        let path = self.path.as_path();
        let txn = tri!(path, self.db.begin_read());
        let table = tri!(path, txn.open_table(META));
        let v = tri!(path, table.get(key)).map(|g| g.value());
        Ok(v)
    }

    /// Writes a value to the metadata table (durably).
    pub fn meta_set(&mut self, key: &str, value: u64) -> Result<(), OutboxError> {
        let path = self.path.clone();
        let path = path.as_path();
        let txn = tri!(path, self.db.begin_write());
        {
            let mut table = tri!(path, txn.open_table(META));
            tri!(path, table.insert(key, value));
        }
        tri!(path, txn.commit());
        Ok(())
    }

    /// Every event id ever appended while `audit` was on (see [`OutboxConfig::audit`]).
    pub fn audit_ids(&self) -> Result<Vec<String>, OutboxError> {
        let path = self.path.as_path();
        let txn = tri!(path, self.db.begin_read());
        let table = match txn.open_table(AUDIT) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(store_err(path)(e.into())),
        };
        let mut out = Vec::new();
        for item in tri!(path, table.range::<&str>(..)) {
            let (k, _) = tri!(path, item);
            out.push(k.value().to_owned());
        }
        Ok(out)
    }

    /// The oldest waiting record of `class`, if any (for tests and diagnostics).
    pub fn oldest_of(&self, class: Class) -> Option<u64> {
        self.oldest(class)
    }
}

impl OutboxReader {
    /// Up to `max` records with sequence number ≥ `from`, in order. Unreadable records come
    /// back as `Err(seq)` so the caller can drop them.
    pub fn read_from(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<Result<Stored, u64>>, OutboxError> {
        let path = self.path.as_path();
        let txn = tri!(path, self.db.begin_read());
        let table = tri!(path, txn.open_table(RECORDS));
        let mut out = Vec::new();
        for item in tri!(path, table.range(from..)).take(max) {
            let (k, v) = tri!(path, item);
            let seq = k.value();
            out.push(match record::decode(v.value()) {
                Some((msg, appended_us)) => Ok(Stored {
                    seq,
                    msg,
                    appended_us,
                }),
                None => Err(seq),
            });
        }
        Ok(out)
    }

    /// The lowest stored sequence number.
    pub fn first_seq(&self) -> Result<Option<u64>, OutboxError> {
        let path = self.path.as_path();
        let txn = tri!(path, self.db.begin_read());
        let table = tri!(path, txn.open_table(RECORDS));
        let first = tri!(path, table.first()).map(|(k, _)| k.value());
        Ok(first)
    }

    /// Every stored event id, in order (tests and `footfall outbox` diagnostics).
    pub fn event_ids(&self) -> Result<Vec<String>, OutboxError> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let chunk = self.read_from(from, 1024)?;
            let Some(last) = chunk.last() else { break };
            from = match last {
                Ok(s) => s.seq,
                Err(seq) => *seq,
            } + 1;
            out.extend(
                chunk
                    .into_iter()
                    .filter_map(Result::ok)
                    .map(|s| s.msg.event_id),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::{MessageClass, CONTENT_TYPE};
    use footfall_engine::time::Timestamp;

    fn msg(class: MessageClass, id: u32, payload_len: usize) -> OutMessage {
        OutMessage {
            topic: "footfall/v1/s/x".to_owned(),
            payload: vec![b'x'; payload_len],
            qos: 1,
            retain: class.retained(),
            expiry_s: None,
            content_type: CONTENT_TYPE,
            event_id: format!("{id:032x}"),
            class,
            time: Timestamp(1),
        }
    }

    fn cfg(max_bytes: u64, when_full: WhenFull) -> OutboxConfig {
        OutboxConfig {
            max_bytes,
            when_full,
            fsync: false,
            ..OutboxConfig::default()
        }
    }

    fn size(m: &OutMessage) -> u64 {
        record::encode(m, 0).len() as u64
    }

    #[test]
    fn survives_reopen_and_removes_acked() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("o.redb");
        let seqs = {
            let mut ob = Outbox::open(&path, cfg(1 << 20, WhenFull::DropOldest))?;
            let r = ob.commit(
                &[
                    msg(MessageClass::ZoneEnter, 1, 10),
                    msg(MessageClass::ZoneExit, 2, 10),
                ],
                &[],
                5,
            )?;
            assert_eq!(r.appended.len(), 2);
            r.appended
        };
        let mut ob = Outbox::open(&path, cfg(1 << 20, WhenFull::DropOldest))?;
        assert_eq!(ob.len(), 2);
        let got = ob.reader().read_from(0, 10)?;
        let ids: Vec<_> = got
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|s| s.msg.event_id.clone())
            .collect();
        assert_eq!(ids, vec![format!("{:032x}", 1), format!("{:032x}", 2)]);
        let r = ob.commit(&[msg(MessageClass::ZoneEnter, 3, 10)], &seqs[..1], 6)?;
        assert_eq!(r.removed, 1);
        assert!(r.appended[0] > seqs[1], "sequence numbers never go back");
        assert_eq!(
            ob.reader().event_ids()?,
            vec![format!("{:032x}", 2), format!("{:032x}", 3)]
        );
        Ok(())
    }

    #[test]
    fn backlog_far_larger_than_the_cache_round_trips() -> anyhow::Result<()> {
        // A broker outage: ~2 MB of records through a 64 KiB cache, read back after a reopen.
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("o.redb");
        let small = OutboxConfig {
            cache_bytes: 64 * 1024,
            ..cfg(64 << 20, WhenFull::DropOldest)
        };
        let n = 4000u32;
        {
            let mut ob = Outbox::open(&path, small.clone())?;
            for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
                let batch: Vec<_> = chunk
                    .iter()
                    .map(|&i| msg(MessageClass::ZoneEnter, i, 500))
                    .collect();
                assert_eq!(ob.commit(&batch, &[], 1)?.appended.len(), chunk.len());
            }
        }
        let ob = Outbox::open(&path, small)?;
        assert_eq!(ob.len(), n as usize);
        let want: Vec<_> = (0..n).map(|i| format!("{i:032x}")).collect();
        assert_eq!(ob.reader().event_ids()?, want);
        Ok(())
    }

    #[test]
    fn full_evicts_state_first_and_never_triggers() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let e = msg(MessageClass::ZoneEnter, 0, 100);
        let cap = size(&e) * 3;
        let mut ob = Outbox::open(&dir.path().join("o.redb"), cfg(cap, WhenFull::DropOldest))?;
        ob.commit(
            &[
                msg(MessageClass::Occupancy, 1, 100),
                msg(MessageClass::ZoneEnter, 2, 100),
                msg(MessageClass::CampaignTrigger, 3, 100),
            ],
            &[],
            0,
        )?;
        // Full: a zone event evicts the occupancy record first.
        let r = ob.commit(&[msg(MessageClass::ZoneExit, 4, 100)], &[], 0)?;
        assert_eq!((r.evicted, r.refused), (1, 0));
        assert!(ob.oldest_of(Class::State).is_none());
        // A trigger evicts the oldest zone event.
        let r = ob.commit(&[msg(MessageClass::CampaignTrigger, 5, 100)], &[], 0)?;
        assert_eq!((r.evicted, r.refused), (1, 0));
        // Another trigger evicts the last zone event; then only triggers remain.
        ob.commit(&[msg(MessageClass::CampaignTrigger, 6, 100)], &[], 0)?;
        let r = ob.commit(&[msg(MessageClass::CampaignTrigger, 7, 100)], &[], 0)?;
        assert_eq!(
            (r.evicted, r.refused),
            (0, 1),
            "a trigger never evicts a trigger"
        );
        let r = ob.commit(&[msg(MessageClass::ZoneEnter, 8, 100)], &[], 0)?;
        assert_eq!(
            (r.evicted, r.refused),
            (0, 1),
            "zone events never evict triggers"
        );
        let ids = ob.reader().event_ids()?;
        assert_eq!(ids, [3, 5, 6].map(|i| format!("{i:032x}")).to_vec());
        assert!(ob.bytes() <= cap);
        Ok(())
    }

    #[test]
    fn refuse_new_policy_keeps_old_events() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let e = msg(MessageClass::ZoneEnter, 0, 50);
        let mut ob = Outbox::open(
            &dir.path().join("o.redb"),
            cfg(size(&e) * 2, WhenFull::RefuseNew),
        )?;
        ob.commit(
            &[
                msg(MessageClass::ZoneEnter, 1, 50),
                msg(MessageClass::ZoneEnter, 2, 50),
            ],
            &[],
            0,
        )?;
        let r = ob.commit(&[msg(MessageClass::ZoneEnter, 3, 50)], &[], 0)?;
        assert_eq!((r.evicted, r.refused), (0, 1));
        assert_eq!(
            ob.reader().event_ids()?,
            [1, 2].map(|i| format!("{i:032x}")).to_vec()
        );
        Ok(())
    }

    #[test]
    fn oversized_record_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut ob = Outbox::open(&dir.path().join("o.redb"), cfg(64, WhenFull::DropOldest))?;
        let r = ob.commit(&[msg(MessageClass::CampaignTrigger, 1, 500)], &[], 0)?;
        assert_eq!(r.refused, 1);
        assert!(ob.is_empty());
        Ok(())
    }

    #[test]
    fn meta_round_trip() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("o.redb");
        {
            let mut ob = Outbox::open(&path, OutboxConfig::default())?;
            assert_eq!(ob.meta_get("boot")?, None);
            ob.meta_set("boot", 7)?;
        }
        let ob = Outbox::open(&path, OutboxConfig::default())?;
        assert_eq!(ob.meta_get("boot")?, Some(7));
        Ok(())
    }
}
