//! `state: {backend: redis}`: rate windows, quotas and usage totals shared by
//! every llmgate using the same Redis (and kept there across restarts).
//!
//! On the request path there is one round trip: admission, a Lua script that
//! runs the key's `rpm` and `tpm` GCRA cells ([`super::gcra`]'s arithmetic on
//! Redis's clock, so instances' clocks need not agree) and takes both or
//! neither. Everything else — settling a `tpm` reservation, usage totals,
//! quota counts — goes through a lock-free channel to the flusher
//! (`persist::Flusher`), which sends it as one pipeline every
//! [`FLUSH_EVERY`]; its answers bring back the quota counts of the other
//! instances.
//!
//! Keys (all under `prefix`, all with a TTL):
//! - `rl:{key}:rpm`, `rl:{key}:tpm`: a hash `{t: TAT µs, u: µs per unit}`,
//!   expiring when the cell is full again;
//! - `q:{model}:{upstream}:{target model}:{next reset}`: a hash
//!   `{requests, tokens}` per quota period, expiring a day after it ends;
//! - `u:{hour}`: a hash of usage totals of one hour, fields
//!   `{key|model|upstream}:{name}:{metric}`, kept [`USAGE_KEEP_S`]; `u:hours`
//!   indexes the hours (a sorted set trimmed to the same age).
//!
//! While Redis cannot be reached, `on_error: allow` admits with this
//! process's own cells (logged once per outage, counted in
//! `llmgate_state_errors_total`) and `deny` answers 503; the connection
//! manager reconnects by itself.

use super::usage::{GroupBy, Record, Row};
use super::{CellKeys, KeyLimits, Refused};
use crate::config::{OnError, RedisConfig};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Writes kept for the flusher while Redis is away.
const MAX_QUEUED: usize = 1 << 20;
/// Usage totals are kept this long (400 days).
pub const USAGE_KEEP_S: u64 = 400 * 24 * 3600;

const ADMIT: &str = include_str!("admit.lua");

const SETTLE: &str = include_str!("settle.lua");

/// Why a shared admission did not admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Limit(Refused),
    /// Redis unreachable and `on_error: deny`.
    Unavailable,
}

/// A write the flusher sends with the next pipeline.
enum Write {
    Settle {
        cells: Arc<CellKeys>,
        unit_us: u64,
        delta: i64,
    },
    Usage(Box<Record>),
}

pub struct Store {
    client: redis::Client,
    con: tokio::sync::OnceCell<ConnectionManager>,
    prefix: String,
    on_error: OnError,
    timeout: Duration,
    /// `host:port/db`, for logs: never the password.
    pub shown: String,
    admit: redis::Script,
    settle: redis::Script,
    /// Writes for the flusher: a lock-free channel (every request thread
    /// sends; only the flusher takes the receiver's lock).
    tx: Sender<Write>,
    rx: Mutex<Receiver<Write>>,
    /// Writes in the channel, bounded by [`MAX_QUEUED`].
    queued: AtomicUsize,
    /// Redis was unreachable on the last call (one log line per outage).
    down: AtomicBool,
    pub errors: AtomicU64,
}

impl Store {
    pub fn new(cfg: &RedisConfig) -> Result<Arc<Store>, String> {
        let client = redis::Client::open(cfg.url.expose())
            .map_err(|_| "state.url: is not a Redis URL".to_string())?;
        let shown = shown_of(&client);
        let (tx, rx) = channel();
        Ok(Arc::new(Store {
            client,
            con: tokio::sync::OnceCell::new(),
            prefix: cfg.prefix.clone(),
            on_error: cfg.on_error,
            timeout: cfg.timeout,
            shown,
            admit: redis::Script::new(ADMIT),
            settle: redis::Script::new(SETTLE),
            tx,
            rx: Mutex::new(rx),
            queued: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            errors: AtomicU64::new(0),
        }))
    }

    async fn con(&self) -> redis::RedisResult<ConnectionManager> {
        let c = self
            .con
            .get_or_try_init(|| async {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_lazy_with_config(self.client.clone(), cfg)
            })
            .await?;
        Ok(c.clone())
    }

    /// Run one call, bounded by `timeout`; a failure is counted and logged
    /// once per outage.
    async fn call<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Option<T>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let out = match self.con().await {
            Ok(c) => tokio::time::timeout(self.timeout, f(c)).await,
            Err(e) => Ok(Err(e)),
        };
        match out {
            Ok(Ok(v)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    log::warn!("state: redis at {} reachable again", self.shown);
                }
                Some(v)
            }
            Ok(Err(e)) => {
                // The kind only: an error's text can quote what was sent.
                let why = if e.is_connection_refusal() {
                    "connection refused".to_string()
                } else if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    format!("{:?}", e.kind())
                };
                self.failed(&why);
                None
            }
            Err(_) => {
                self.failed("timed out");
                None
            }
        }
    }

    fn failed(&self, why: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::Relaxed) {
            let then = match self.on_error {
                OnError::Allow => "admitting with this process's own limits",
                OnError::Deny => "answering 503 where a limit applies",
            };
            log::error!("state: redis at {} failed ({why}); {then}", self.shown);
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Admit one request of key `name` that may use `tokens`: in Redis, or —
    /// Redis away and `on_error: allow` — with this process's cells.
    pub async fn admit(
        self: &Arc<Self>,
        name: &Arc<str>,
        limits: &KeyLimits,
        tokens: u64,
    ) -> Result<Option<super::Reservation>, Denied> {
        let r_unit = limits.rpm.map_or(0, |r| r.unit_us());
        let t_unit = limits.tpm.map_or(0, |r| r.unit_us());
        let cells = match &limits.cells {
            Some(c) => c.clone(),
            None => Arc::new(CellKeys::new(&self.prefix, name)),
        };
        let mut inv = self.admit.prepare_invoke();
        inv.key(cells.rpm.as_str())
            .key(cells.tpm.as_str())
            .arg(r_unit)
            .arg(t_unit)
            .arg(tokens)
            .arg(super::gcra::PERIOD_US);
        let verdict: Option<(u8, u64)> = self
            .call(|mut c| async move { inv.invoke_async(&mut c).await })
            .await;
        match verdict {
            Some((0, _)) => Ok(limits.tpm.map(|rate| super::Reservation {
                home: super::Home::Shared {
                    store: self.clone(),
                    cells,
                },
                rate,
                tokens,
                settled: AtomicBool::new(false),
            })),
            Some((1, wait)) => Err(Denied::Limit(Refused::Requests(Duration::from_micros(
                wait,
            )))),
            Some((_, wait)) => Err(Denied::Limit(Refused::Tokens(Duration::from_micros(wait)))),
            None => match self.on_error {
                OnError::Allow => limits.admit(super::now_us(), tokens).map_err(Denied::Limit),
                OnError::Deny => Err(Denied::Unavailable),
            },
        }
    }

    /// Correct a reservation by `delta` tokens (sent with the next flush).
    pub fn settle(&self, cells: &Arc<CellKeys>, rate: super::Rate, delta: i64) {
        self.push(Write::Settle {
            cells: cells.clone(),
            unit_us: rate.unit_us(),
            delta,
        });
    }

    /// Add an answered request to the shared usage totals.
    pub fn record(&self, r: &Record) {
        self.push(Write::Usage(Box::new(r.clone())));
    }

    fn push(&self, w: Write) {
        // Bounded while Redis is away: past the bound, new writes are lost.
        if self.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if self.tx.send(w).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Usage totals of the hours starting in `[since, until)`, grouped.
    pub async fn usage(
        &self,
        by: GroupBy,
        since: u64,
        until: u64,
    ) -> Option<BTreeMap<String, Row>> {
        let index = format!("{}u:hours", self.prefix);
        let hours: Vec<u64> = self
            .call(|mut c| async move {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(index)
                    .arg(since)
                    .arg(format!("({until}"))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut pipe = redis::pipe();
        for h in &hours {
            pipe.hgetall(format!("{}u:{h}", self.prefix));
        }
        let maps: Vec<HashMap<String, u64>> = self
            .call(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        let group = match by {
            GroupBy::Key => "key:",
            GroupBy::Model => "model:",
            GroupBy::Upstream => "upstream:",
        };
        let mut out: BTreeMap<String, Row> = BTreeMap::new();
        for (field, n) in maps.iter().flatten() {
            let Some(rest) = field.strip_prefix(group) else {
                continue;
            };
            let Some((name, metric)) = rest.rsplit_once(':') else {
                continue;
            };
            let row = out.entry(name.to_string()).or_default();
            match metric {
                "requests" => row.requests += n,
                "prompt" => row.prompt_tokens += n,
                "completion" => row.completion_tokens += n,
                "estimated" => row.estimated_tokens += n,
                _ => {}
            }
        }
        for r in out.values_mut() {
            r.total_tokens = r.prompt_tokens + r.completion_tokens;
        }
        Some(out)
    }
}

/// `host:port/db` of a Redis URL: never its user or password.
pub fn shown(url: &crate::secret::Secret) -> String {
    redis::Client::open(url.expose()).map_or_else(|_| "(invalid)".to_string(), |c| shown_of(&c))
}

fn shown_of(client: &redis::Client) -> String {
    let info = client.get_connection_info();
    format!("{}/{}", info.addr(), info.redis_settings().db())
}

/// A quota the flusher keeps in step with the shared store, by name
/// (`{model}:{upstream}:{target model}`: stable across reloads).
pub struct SharedQuota {
    pub name: String,
    pub quota: Arc<super::Quota>,
}

impl Store {
    /// Send the queued writes and sync `quotas` with every instance's counts
    /// (one pipeline); called every [`FLUSH_EVERY`].
    pub async fn flush(&self, quotas: &[SharedQuota]) {
        let store = self;
        let writes: Vec<Write> = match store.rx.lock() {
            Ok(rx) => rx.try_iter().collect(),
            Err(_) => return,
        };
        store.queued.fetch_sub(writes.len(), Ordering::Relaxed);
        let now_s = super::quota::now_s();
        let mut pipe = redis::pipe();
        let p = &store.prefix;

        // Settlements of one key add up (one script call per key); usage
        // records of one hour and group add up (named once per flush).
        type Group = (u64, Option<Arc<str>>, Arc<str>, Arc<str>);
        let mut settle: HashMap<(usize, u64), (Arc<CellKeys>, i64)> = HashMap::new();
        let mut groups: HashMap<Group, Row> = HashMap::new();
        for w in &writes {
            match w {
                Write::Settle {
                    cells,
                    unit_us,
                    delta,
                } => {
                    let e = settle
                        .entry((Arc::as_ptr(cells) as usize, *unit_us))
                        .or_insert_with(|| (cells.clone(), 0));
                    e.1 += delta;
                }
                Write::Usage(r) => {
                    let g = (
                        r.at_s - r.at_s % 3600,
                        r.key.clone(),
                        r.model.clone(),
                        r.upstream.clone(),
                    );
                    let row = groups.entry(g).or_default();
                    row.requests += 1;
                    row.prompt_tokens += r.prompt;
                    row.completion_tokens += r.completion;
                    if r.estimated {
                        row.estimated_tokens += r.prompt + r.completion;
                    }
                }
            }
        }
        let mut usage: HashMap<(u64, String), u64> = HashMap::new();
        for ((hour, key, model, upstream), row) in &groups {
            let names = [
                ("key", key.as_deref()),
                ("model", Some(&**model)),
                ("upstream", Some(&**upstream)),
            ];
            for (g, name) in names {
                let Some(name) = name else { continue };
                for (metric, n) in [
                    ("requests", row.requests),
                    ("prompt", row.prompt_tokens),
                    ("completion", row.completion_tokens),
                    ("estimated", row.estimated_tokens),
                ] {
                    if n > 0 {
                        *usage
                            .entry((*hour, format!("{g}:{name}:{metric}")))
                            .or_default() += n;
                    }
                }
            }
        }
        if settle.values().any(|(_, d)| *d != 0) {
            // EVALSHA in a pipeline cannot fall back to EVAL: load the script
            // first (a no-op when Redis has it; it may have restarted).
            pipe.cmd("SCRIPT").arg("LOAD").arg(SETTLE).ignore();
        }
        for ((_, unit), (cells, delta)) in &settle {
            if *delta != 0 {
                let mut inv = store.settle.prepare_invoke();
                inv.key(cells.tpm.as_str()).arg(*unit).arg(*delta);
                pipe.invoke_script(&inv).ignore();
            }
        }
        let mut hours: Vec<u64> = usage.keys().map(|(h, _)| *h).collect();
        hours.sort_unstable();
        hours.dedup();
        for ((hour, field), n) in &usage {
            pipe.hincr(format!("{p}u:{hour}"), field, *n).ignore();
        }
        for h in &hours {
            pipe.expire(format!("{p}u:{h}"), USAGE_KEEP_S as i64)
                .ignore();
            pipe.zadd(format!("{p}u:hours"), h, h).ignore();
        }
        if !hours.is_empty() {
            let oldest = now_s.saturating_sub(USAGE_KEEP_S);
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(format!("{p}u:hours"))
                .arg("-inf")
                .arg(format!("({oldest}"))
                .ignore();
        }

        // Quotas: add this process's counts since the last flush and read
        // the totals back (every instance's).
        let quotas: Vec<_> = quotas
            .iter()
            .map(|sq| {
                let q = &sq.quota;
                let (dr, dt, next) = q.unsynced(now_s);
                let period = next.map_or("never".to_string(), |n| n.to_string());
                let key = format!("{p}q:{}:{period}", sq.name);
                pipe.hincr(&key, "requests", dr).hincr(&key, "tokens", dt);
                let ttl = next.map_or(USAGE_KEEP_S, |n| n.saturating_sub(now_s) + 86_400);
                pipe.expire(&key, ttl as i64).ignore();
                (q.clone(), dr, dt)
            })
            .collect();
        if writes.is_empty() && quotas.is_empty() {
            return;
        }
        let answer: Option<Vec<u64>> = store
            .call(|mut c| async move { pipe.query_async(&mut c).await })
            .await;
        match answer {
            Some(totals) => {
                for ((q, _, _), pair) in quotas.iter().zip(totals.chunks(2)) {
                    if let [r, t] = pair {
                        q.synced(*r, *t);
                    }
                }
            }
            None => {
                // Not sent: quota counts stay unsynced for the next try;
                // usage totals are queued again (settlements are dropped:
                // their cells expire within the minute anyway).
                for (q, dr, dt) in &quotas {
                    q.unsync(*dr, *dt);
                }
                for w in writes {
                    if matches!(w, Write::Usage(_)) {
                        store.push(w);
                    }
                }
            }
        }
    }
}
