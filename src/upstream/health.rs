//! Upstream health: a small state machine fed by active checks (run by
//! `health_checks::HealthChecker`). It flips only after `unhealthy_after` consecutive failures
//! or `healthy_after` consecutive successes, and logs only on a flip.

use crate::upstream::circuit::Breaker;
use crate::upstream::exchange::ExchangeError;
use crate::upstream::Upstream;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug)]
pub struct Health {
    /// Passive state from real requests (see `circuit.rs`).
    pub breaker: Breaker,
    healthy: AtomicBool,
    /// Set by the admin API: no new requests at all (not even fail-open).
    drained: AtomicBool,
    in_flight: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    fails: AtomicU32,
    oks: AtomicU32,
    last_error: Mutex<Option<String>>,
    /// Time to the answer's first bytes of answered attempts, in buckets
    /// (upper bounds [`LATENCY_BOUNDS_MS`], then everything above): the
    /// status page takes percentiles over the difference of two readings.
    latency: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    tokens: AtomicU64,
}

/// Upper bounds (ms) of the latency buckets kept per upstream.
pub const LATENCY_BOUNDS_MS: [u64; 15] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

impl Default for Health {
    fn default() -> Self {
        // Optimistic start: a new upstream is usable until a check says otherwise.
        Health {
            breaker: Breaker::default(),
            healthy: AtomicBool::new(true),
            drained: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            fails: AtomicU32::new(0),
            oks: AtomicU32::new(0),
            last_error: Mutex::new(None),
            latency: Default::default(),
            tokens: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// What the active checks say.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    pub fn set_drained(&self, drained: bool) {
        self.drained.store(drained, Ordering::Relaxed);
    }

    /// An attempt starts; the guard counts it in flight until dropped.
    pub fn attempt(&self) -> InFlight<'_> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// One answered attempt took `ms` to its first bytes.
    pub fn observe_latency(&self, ms: u64) {
        let i = LATENCY_BOUNDS_MS.partition_point(|&b| b < ms);
        self.latency[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn latency_buckets(&self) -> Vec<u64> {
        self.latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    pub fn add_tokens(&self, n: u64) {
        self.tokens.fetch_add(n, Ordering::Relaxed);
    }

    pub fn tokens(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// (attempts sent, attempts failed) since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Whether new requests should go here: actively healthy and admitted by the
    /// breaker (either can mark an upstream down).
    pub fn usable(&self, now: u64) -> bool {
        self.is_healthy() && self.breaker.admits(now)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// Record one check result; returns `Some(new_state)` only when the state flips.
    pub fn observe(
        &self,
        ok: bool,
        error: Option<String>,
        unhealthy_after: u32,
        healthy_after: u32,
    ) -> Option<bool> {
        if ok {
            // An open breaker goes half-open at once: one real request decides.
            self.breaker.half_open_now(crate::clock::now_ms());
            self.fails.store(0, Ordering::Relaxed);
            let oks = self.oks.fetch_add(1, Ordering::Relaxed) + 1;
            if oks >= healthy_after && !self.healthy.swap(true, Ordering::Relaxed) {
                return Some(true);
            }
        } else {
            if let Ok(mut g) = self.last_error.lock() {
                *g = error;
            }
            self.oks.store(0, Ordering::Relaxed);
            let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if fails >= unhealthy_after && self.healthy.swap(false, Ordering::Relaxed) {
                return Some(false);
            }
        }
        None
    }
}

/// Counts one attempt in flight while alive.
pub struct InFlight<'a>(&'a Health);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET <base_url><path>` with the upstream's own auth and extra headers; 2xx is
/// healthy, anything else (401/403 included: a revoked key is an outage too) is not.
pub async fn check(up: &Upstream, timeout: Duration) -> Result<(), String> {
    let path = up.cfg.health_path.as_deref().unwrap_or("/models");
    let mut head = up.head_start(b"GET", path.as_bytes(), 2);
    head.extend_from_slice(b"\r\n");
    let deadline = std::time::Instant::now() + timeout;
    let run = async {
        // The same exchange as requests (a stale pooled connection is
        // retried on a new one, not counted against the upstream).
        let (mut conn, answer) = up
            .exchange(&head, &[], deadline)
            .await
            .map_err(|e| match e {
                ExchangeError::ConnectTimeout => "connect: ConnectTimedout".to_string(),
                ExchangeError::Connect(kind) => format!("connect: {kind}"),
                ExchangeError::Tls(kind) => format!("tls: {kind}"),
                ExchangeError::Unanswered(reason) => reason,
                ExchangeError::Head(e) => format!("read: {}", e.as_str()),
                ExchangeError::ResponseTimeout => "health check timed out".to_string(),
            })?;
        // Drain a small body so the connection can go back to the pool.
        let mut drained = 0usize;
        while let Ok(Some(b)) = conn.read_body().await {
            drained += b.len();
            if drained > 1 << 20 {
                break;
            }
        }
        up.keep(conn);
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(format!("health check status {}", answer.status))
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err("health check timed out".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_only_after_thresholds() {
        let h = Health::default();
        assert_eq!(h.observe(false, None, 2, 2), None);
        assert!(h.is_healthy());
        assert_eq!(h.observe(false, None, 2, 2), Some(false));
        assert_eq!(h.observe(false, None, 2, 2), None);
        assert_eq!(h.observe(true, None, 2, 2), None);
        assert_eq!(h.observe(true, None, 2, 2), Some(true));
        assert!(h.is_healthy());
    }
}
