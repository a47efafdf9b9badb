//! Usage totals by key, model and upstream (`GET /admin/usage`), and the
//! optional usage log (one JSON line per answered request).
//!
//! A request thread adds its record to its own shard of the per-minute totals
//! (an uncontended lock; names hashed by address, not text); a query or a
//! save merges the shards. The usage log, when on, gets the records through
//! a channel to its writer thread, like the access log. Minutes older than
//! two days are folded into hours, so the totals stay small however long the
//! process runs.

pub use super::usage_log::Record;
use super::usage_log::{LogPath, UsageWriter};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

const QUEUE: usize = 65_536;
/// Minutes kept at minute resolution.
const FINE_FOR_S: u64 = 2 * 24 * 3600;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub estimated_tokens: u64,
}

impl Row {
    fn add(&mut self, o: &Row) {
        self.requests += o.requests;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.total_tokens += o.total_tokens;
        self.estimated_tokens += o.estimated_tokens;
    }
}

/// One group's totals of one period, as saved in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedRow {
    pub at: u64,
    pub key: Option<String>,
    pub model: String,
    pub upstream: String,
    #[serde(flatten)]
    pub row: Row,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Key,
    Model,
    Upstream,
}

/// Names compared by identity: a key's, model's and upstream's name is one
/// shared string for as long as a config lives, so a record is added without
/// hashing any text (a reload's new strings only start new groups, which the
/// query merges by name).
#[derive(Debug, Clone)]
struct Name(Arc<str>);

impl PartialEq for Name {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for Name {}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (Arc::as_ptr(&self.0) as *const u8 as usize).hash(h);
    }
}

type Group = (Option<Name>, Name, Name);

/// Hashes the names' addresses with one multiply each (std's SipHash cost
/// more than the rest of adding a record).
#[derive(Debug, Default, Clone, Copy)]
struct PtrHash;

impl std::hash::BuildHasher for PtrHash {
    type Hasher = PtrHasher;
    fn build_hasher(&self) -> PtrHasher {
        PtrHasher(0)
    }
}

#[derive(Debug)]
struct PtrHasher(u64);

impl std::hash::Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// Totals per period start (Unix seconds; minutes, then hours) and group.
#[derive(Debug, Default)]
pub struct Totals {
    periods: BTreeMap<u64, HashMap<Group, Row, PtrHash>>,
    /// When minutes were last folded into hours.
    compacted_at: u64,
}

impl Totals {
    pub fn add(&mut self, r: &Record) {
        let tokens = r.prompt + r.completion;
        let row = Row {
            requests: 1,
            prompt_tokens: r.prompt,
            completion_tokens: r.completion,
            total_tokens: tokens,
            estimated_tokens: if r.estimated { tokens } else { 0 },
        };
        let minute = r.at_s - r.at_s % 60;
        if !self.periods.contains_key(&minute) && minute >= self.compacted_at + 3600 {
            self.compact(minute);
            self.compacted_at = minute;
        }
        self.periods
            .entry(minute)
            .or_default()
            .entry((
                r.key.clone().map(Name),
                Name(r.model.clone()),
                Name(r.upstream.clone()),
            ))
            .or_default()
            .add(&row);
    }

    /// Rows of the periods starting in `[since, until)`, grouped, by name.
    pub fn query(&self, by: GroupBy, since: u64, until: u64) -> BTreeMap<String, Row> {
        let mut out: BTreeMap<String, Row> = BTreeMap::new();
        for (_, groups) in self.periods.range(since..until) {
            for ((key, model, upstream), row) in groups {
                let name = match by {
                    GroupBy::Key => key.as_ref().map_or("-", |k| &*k.0),
                    GroupBy::Model => &*model.0,
                    GroupBy::Upstream => &*upstream.0,
                };
                out.entry(name.to_string()).or_default().add(row);
            }
        }
        out
    }

    /// Every row, for the state file, merged by name (groups of one name
    /// from before a reload or a restart become one row).
    pub fn rows(&self) -> Vec<SavedRow> {
        let mut merged: BTreeMap<(u64, Option<&str>, &str, &str), Row> = BTreeMap::new();
        for (&at, groups) in &self.periods {
            for ((key, model, upstream), row) in groups {
                let k = (at, key.as_ref().map(|k| &*k.0), &*model.0, &*upstream.0);
                merged.entry(k).or_default().add(row);
            }
        }
        merged
            .into_iter()
            .map(|((at, key, model, upstream), row)| SavedRow {
                at,
                key: key.map(str::to_string),
                model: model.to_string(),
                upstream: upstream.to_string(),
                row,
            })
            .collect()
    }

    /// Add saved rows (a restart).
    pub fn restore(&mut self, rows: &[SavedRow]) {
        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        let mut name = |s: &str| -> Name {
            Name(
                names
                    .entry(s.to_string())
                    .or_insert_with(|| Arc::from(s))
                    .clone(),
            )
        };
        for r in rows {
            let group = (
                r.key.as_deref().map(&mut name),
                name(&r.model),
                name(&r.upstream),
            );
            self.periods
                .entry(r.at)
                .or_default()
                .entry(group)
                .or_default()
                .add(&r.row);
        }
    }

    /// Fold minutes older than two days into their hour.
    fn compact(&mut self, now_s: u64) {
        let cutoff = now_s.saturating_sub(FINE_FOR_S);
        let old: Vec<u64> = self
            .periods
            .range(..cutoff)
            .map(|(&t, _)| t)
            .filter(|t| t % 3600 != 0)
            .collect();
        for t in old {
            if let Some(groups) = self.periods.remove(&t) {
                let hour = self.periods.entry(t - t % 3600).or_default();
                for (g, row) in groups {
                    hour.entry(g).or_default().add(&row);
                }
            }
        }
    }
}

/// Shards of the totals: each request thread adds to its own (an
/// uncontended lock, no channel); a query or a save merges them.
const SHARDS: usize = 16;

/// The request path's side: each record is added to this thread's shard of
/// the totals and, when the usage log is on, handed to its writer thread.
pub struct UsageMeter {
    shards: Vec<Mutex<Totals>>,
    tx: Option<SyncSender<Record>>,
    /// The usage log is on: records carry their request id.
    pub logs: bool,
    dropped: AtomicU64,
}

fn shard_index() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static SHARD: usize = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl UsageMeter {
    pub fn new(log: LogPath, reopen: Arc<AtomicU64>) -> (Arc<UsageMeter>, UsageWriter) {
        let (tx, rx) = match log {
            Some(_) => {
                let (tx, rx) = sync_channel(QUEUE);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let meter = Arc::new(UsageMeter {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            tx,
            logs: log.is_some(),
            dropped: AtomicU64::new(0),
        });
        let writer = UsageWriter {
            rx: Mutex::new(rx),
            log,
            reopen,
        };
        (meter, writer)
    }

    pub fn record(&self, r: Record) {
        if let Ok(mut t) = self.shards[shard_index()].lock() {
            t.add(&r);
        }
        if let Some(tx) = &self.tx {
            if tx.try_send(r).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Totals of the periods starting in `[since, until)`, grouped, by name.
    pub fn query(&self, by: GroupBy, since: u64, until: u64) -> BTreeMap<String, Row> {
        let mut out: BTreeMap<String, Row> = BTreeMap::new();
        for shard in &self.shards {
            if let Ok(t) = shard.lock() {
                for (name, row) in t.query(by, since, until) {
                    out.entry(name).or_default().add(&row);
                }
            }
        }
        out
    }

    /// Every row, merged by name, for the state file.
    pub fn rows(&self) -> Vec<SavedRow> {
        let mut all = Totals::default();
        for shard in &self.shards {
            if let Ok(t) = shard.lock() {
                all.restore(&t.rows());
            }
        }
        all.rows()
    }

    /// Add saved rows (a restart).
    pub fn restore(&self, rows: &[SavedRow]) {
        if let Ok(mut t) = self.shards[0].lock() {
            t.restore(rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at_s: u64, key: &str, model: &str, up: &str, p: u64, c: u64, est: bool) -> Record {
        Record {
            at_s,
            request_id: "r".into(),
            key: Some(Arc::from(key)),
            model: Arc::from(model),
            upstream: Arc::from(up),
            status: 200,
            prompt: p,
            completion: c,
            estimated: est,
        }
    }

    #[test]
    fn grouped_and_windowed() {
        let mut t = Totals::default();
        let h = 1_796_169_600;
        t.add(&rec(h + 5, "dify", "chat", "a", 10, 5, false));
        t.add(&rec(h + 70, "dify", "chat", "b", 1, 1, true));
        t.add(&rec(h + 130, "n8n", "embed", "a", 3, 0, false));
        let by_key = t.query(GroupBy::Key, 0, u64::MAX);
        assert_eq!(by_key["dify"].requests, 2);
        assert_eq!(by_key["dify"].total_tokens, 17);
        assert_eq!(by_key["dify"].estimated_tokens, 2);
        assert_eq!(
            t.query(GroupBy::Upstream, 0, u64::MAX)["a"].prompt_tokens,
            13
        );
        // Minute resolution: [h+60, h+120) holds only the second.
        let w = t.query(GroupBy::Model, h + 60, h + 120);
        assert_eq!(w.len(), 1);
        assert_eq!(w["chat"].requests, 1);
        // Folding into hours keeps the totals.
        t.compact(h + 3 * 86_400);
        assert_eq!(t.periods.len(), 1);
        assert_eq!(t.query(GroupBy::Key, 0, u64::MAX), by_key);
    }

    #[test]
    fn saved_rows_merge_by_name() {
        let mut t = Totals::default();
        t.add(&rec(120, "k", "m", "u", 1, 1, false));
        let saved = t.rows();
        let mut fresh = Totals::default();
        fresh.restore(&saved);
        fresh.restore(&saved);
        // A live record: the same names in other strings.
        fresh.add(&rec(130, "k", "m", "u", 1, 1, false));
        let rows = fresh.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].row.requests, 3);
    }
}
