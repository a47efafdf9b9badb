//! `state: {backend: local, path: DIR}`: the limit and quota state saved to
//! `DIR/state.json`, so a restart or a binary upgrade does not hand every key
//! a fresh minute and every target a fresh quota.
//!
//! A snapshot file rather than an embedded database: the state is a few
//! numbers per key and per target (GCRA arrival times, quota counts), read
//! once at start and written whole, atomically (temporary file + rename),
//! once a second when it changed and at exit; its loss costs at most the
//! last second of counting. A store such as redb would add a dependency and
//! a file format to run the same two operations.
//!
//! The file is read before the process serves and merged again once it
//! serves (the fuller cell, the larger count of the same quota period): the
//! new process of an upgrade, which starts while the old one still counts,
//! takes what the old one saved until the hand-over.

use crate::limits::redis;
use crate::limits::usage::{SavedRow, UsageMeter};
use crate::state::{Runtime, SharedRuntime};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const FILE: &str = "state.json";
const SAVE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// By key name.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyState>,
    /// By `model/upstream/upstream model`.
    #[serde(default)]
    pub quotas: BTreeMap<String, QuotaState>,
    /// Usage totals (`GET /admin/usage`).
    #[serde(default)]
    pub usage: Vec<SavedRow>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    pub requests_tat_us: u64,
    pub tokens_tat_us: u64,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaState {
    pub requests: u64,
    pub tokens: u64,
    pub next_reset: Option<u64>,
}

/// What `rt` has counted.
pub fn capture(rt: &Runtime) -> Snapshot {
    let mut snap = Snapshot::default();
    for k in rt.keys.iter().flat_map(|k| k.values()) {
        if let Some(l) = &k.limits {
            snap.keys.insert(
                k.name.to_string(),
                KeyState {
                    requests_tat_us: l.meter.requests.tat_us(),
                    tokens_tat_us: l.meter.tokens.tat_us(),
                },
            );
        }
    }
    let now = crate::limits::quota::now_s();
    for (model, route) in &rt.models {
        for t in &route.targets {
            if let Some(q) = &t.quota {
                let (requests, tokens, next_reset) = q.state(now);
                snap.quotas.insert(
                    quota_id(rt, model, t),
                    QuotaState {
                        requests,
                        tokens,
                        next_reset,
                    },
                );
            }
        }
    }
    snap
}

/// Merge `snap` into what `rt` counts.
pub fn restore(rt: &Runtime, snap: &Snapshot) {
    for k in rt.keys.iter().flat_map(|k| k.values()) {
        if let (Some(l), Some(s)) = (&k.limits, snap.keys.get(&*k.name)) {
            l.meter.requests.restore(s.requests_tat_us);
            l.meter.tokens.restore(s.tokens_tat_us);
        }
    }
    for (model, route) in &rt.models {
        for t in &route.targets {
            if let (Some(q), Some(s)) = (&t.quota, snap.quotas.get(&quota_id(rt, model, t))) {
                q.restore(s.requests, s.tokens, s.next_reset);
            }
        }
    }
}

fn quota_id(rt: &Runtime, model: &str, t: &crate::routing::Target) -> String {
    let up = rt.upstreams.get(t.upstream).map_or("?", |u| u.name());
    format!("{model}/{up}/{}", t.model)
}

/// The saved state merged into `rt` and `usage` before the process serves
/// (usage totals only here: they add up, so they are restored once).
pub fn load_at_start(dir: &Path, rt: &Runtime, usage: &UsageMeter) {
    match load(dir) {
        Ok(Some(snap)) => {
            restore(rt, &snap);
            usage.restore(&snap.usage);
            log::info!("state: loaded {}", dir.join(FILE).display());
        }
        Ok(None) => {}
        Err(e) => log::error!("state: {e}; starting from zero"),
    }
}

pub fn load(dir: &Path) -> Result<Option<Snapshot>, String> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not a state file ({e})", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

pub fn save(dir: &Path, snap: &Snapshot) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(snap).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{FILE}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(FILE))
}

/// Loads the saved state once the process serves, then saves it every
/// second while it changes, and once more at exit.
pub struct Saver {
    pub dir: PathBuf,
    pub runtime: SharedRuntime,
    pub usage: Arc<UsageMeter>,
}

impl Saver {
    fn capture(&self) -> Snapshot {
        let mut snap = capture(&self.runtime.load());
        snap.usage = self.usage.rows();
        snap
    }
}

#[async_trait]
impl BackgroundService for Saver {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Loaded at start already (`load_at_start`); once more now that this
        // process serves: in an upgrade, what the old one saved meanwhile.
        if let Ok(Some(snap)) = load(&self.dir) {
            restore(&self.runtime.load(), &snap);
        }
        let mut last = Snapshot::default();
        loop {
            let stop = tokio::select! {
                _ = tokio::time::sleep(SAVE_EVERY) => false,
                _ = shutdown.changed() => true,
            };
            let snap = self.capture();
            if snap != last {
                if let Err(e) = save(&self.dir, &snap) {
                    log::error!("state: cannot save to {}: {e}", self.dir.display());
                }
                last = snap;
            }
            if stop {
                return;
            }
        }
    }
}

/// With `state.backend: redis`: sends the store's queued writes and keeps
/// the runtime's quotas in step with every instance's, every
/// [`redis::FLUSH_EVERY`] (and once more at shutdown).
pub struct Flusher {
    pub store: Arc<redis::Store>,
    pub runtime: SharedRuntime,
}

#[async_trait]
impl BackgroundService for Flusher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        log::info!("state: shared in redis at {}", self.store.shown);
        let mut tick = tokio::time::interval(redis::FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                _ = shutdown.changed() => true,
            };
            let quotas = shared_quotas(&self.runtime.load());
            self.store.flush(&quotas).await;
            if last {
                return;
            }
        }
    }
}

/// Every target quota of the runtime, named for the shared store.
fn shared_quotas(rt: &Runtime) -> Vec<redis::SharedQuota> {
    let mut out = Vec::new();
    for route in rt.models.values() {
        for t in &route.targets {
            if let Some(q) = &t.quota {
                let up = rt.upstreams.get(t.upstream).map_or("", |u| u.name());
                out.push(redis::SharedQuota {
                    name: format!("{}:{up}:{}", route.name, t.model),
                    quota: q.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip() {
        let dir = std::env::temp_dir().join(format!("llmgate-persist-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), None);
        let mut snap = Snapshot::default();
        snap.keys.insert(
            "app".into(),
            KeyState {
                requests_tat_us: 5,
                tokens_tat_us: 7,
            },
        );
        snap.quotas.insert(
            "chat/a/m".into(),
            QuotaState {
                requests: 3,
                tokens: 40,
                next_reset: Some(99),
            },
        );
        save(&dir, &snap).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(snap));
        std::fs::write(dir.join(FILE), b"{not json").unwrap();
        assert!(load(&dir).unwrap_err().contains("not a state file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
