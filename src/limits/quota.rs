//! Per-target quotas (`quota: {requests, tokens, reset}`): a budget of
//! requests sent to the target and tokens it answered, renewed at each
//! instant of a cron expression (UTC). A used-up target is skipped like an
//! open breaker, without counting as a failure.
//!
//! The state is two counters and the next reset instant, all atomics; the
//! cron expression is evaluated only when a reset instant has passed.

use crate::config::QuotaConfig;
use chrono::{DateTime, Utc};
use croner::Cron;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct Quota {
    pub cfg: QuotaConfig,
    requests: AtomicU64,
    tokens: AtomicU64,
    /// Unix seconds of the next reset; `u64::MAX`: none.
    next_reset: AtomicU64,
    /// Counted here and not yet added to the shared store (Redis).
    unsynced_requests: AtomicU64,
    unsynced_tokens: AtomicU64,
}

impl Quota {
    pub fn new(cfg: QuotaConfig, now_s: u64) -> Quota {
        let next = next_after(cfg.reset.as_ref(), now_s);
        Quota {
            cfg,
            requests: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            next_reset: AtomicU64::new(next),
            unsynced_requests: AtomicU64::new(0),
            unsynced_tokens: AtomicU64::new(0),
        }
    }

    /// The same usage under a new config (a reload): counts kept, the next
    /// reset recomputed when the schedule changed.
    pub fn carried(&self, cfg: QuotaConfig, now_s: u64) -> Quota {
        let q = Quota::new(cfg, now_s);
        q.requests
            .store(self.requests.load(Ordering::Relaxed), Ordering::Relaxed);
        q.tokens
            .store(self.tokens.load(Ordering::Relaxed), Ordering::Relaxed);
        for (to, from) in [
            (&q.unsynced_requests, &self.unsynced_requests),
            (&q.unsynced_tokens, &self.unsynced_tokens),
        ] {
            to.store(from.swap(0, Ordering::AcqRel), Ordering::Relaxed);
        }
        if q.cfg.reset.as_ref().map(|c| c.pattern.to_string())
            == self.cfg.reset.as_ref().map(|c| c.pattern.to_string())
        {
            q.next_reset
                .store(self.next_reset.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        q
    }

    /// Renew the budget if a reset instant has passed.
    fn roll(&self, now_s: u64) {
        let next = self.next_reset.load(Ordering::Acquire);
        if now_s < next {
            return;
        }
        let after = next_after(self.cfg.reset.as_ref(), now_s);
        // One thread renews; the others see the new instant and carry on.
        if self
            .next_reset
            .compare_exchange(next, after, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            for c in [
                &self.requests,
                &self.tokens,
                &self.unsynced_requests,
                &self.unsynced_tokens,
            ] {
                c.store(0, Ordering::Release);
            }
        }
    }

    /// `Some(wait until the next reset)` (`None` inside: never) when used up.
    pub fn used_up(&self, now_s: u64) -> Option<Option<Duration>> {
        self.roll(now_s);
        let over = |limit: Option<u64>, used: &AtomicU64| {
            limit.is_some_and(|l| used.load(Ordering::Acquire) >= l)
        };
        if !over(self.cfg.requests, &self.requests) && !over(self.cfg.tokens, &self.tokens) {
            return None;
        }
        Some(match self.next_reset.load(Ordering::Acquire) {
            u64::MAX => None,
            next => Some(Duration::from_secs(next.saturating_sub(now_s).max(1))),
        })
    }

    /// A request is sent to the target.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.unsynced_requests.fetch_add(1, Ordering::AcqRel);
    }

    /// The target's answer used `n` tokens.
    pub fn count_tokens(&self, n: u64) {
        self.tokens.fetch_add(n, Ordering::AcqRel);
        self.unsynced_tokens.fetch_add(n, Ordering::AcqRel);
    }

    /// For the shared store: (requests, tokens) counted here since the last
    /// call, and the current period's reset instant.
    pub fn unsynced(&self, now_s: u64) -> (u64, u64, Option<u64>) {
        self.roll(now_s);
        let next = self.next_reset.load(Ordering::Acquire);
        (
            self.unsynced_requests.swap(0, Ordering::AcqRel),
            self.unsynced_tokens.swap(0, Ordering::AcqRel),
            (next != u64::MAX).then_some(next),
        )
    }

    /// The shared totals (every instance's) after adding ours: they become
    /// this process's view, plus what it counted meanwhile.
    pub fn synced(&self, requests: u64, tokens: u64) {
        let r = requests + self.unsynced_requests.load(Ordering::Acquire);
        let t = tokens + self.unsynced_tokens.load(Ordering::Acquire);
        self.requests.store(r, Ordering::Release);
        self.tokens.store(t, Ordering::Release);
    }

    /// Counts [`Quota::unsynced`] took that could not be sent.
    pub fn unsync(&self, requests: u64, tokens: u64) {
        self.unsynced_requests.fetch_add(requests, Ordering::AcqRel);
        self.unsynced_tokens.fetch_add(tokens, Ordering::AcqRel);
    }

    /// Merge a saved state (a restart): counts of the same period (same next
    /// reset) are kept, the larger of the two; a period that has ended since
    /// is not.
    pub fn restore(&self, requests: u64, tokens: u64, next_reset: Option<u64>) {
        if next_reset.unwrap_or(u64::MAX) != self.next_reset.load(Ordering::Acquire) {
            return;
        }
        self.requests.fetch_max(requests, Ordering::AcqRel);
        self.tokens.fetch_max(tokens, Ordering::AcqRel);
    }

    /// (requests used, tokens used, next reset in Unix seconds) for the admin API.
    pub fn state(&self, now_s: u64) -> (u64, u64, Option<u64>) {
        self.roll(now_s);
        let next = self.next_reset.load(Ordering::Acquire);
        (
            self.requests.load(Ordering::Acquire),
            self.tokens.load(Ordering::Acquire),
            (next != u64::MAX).then_some(next),
        )
    }
}

/// The first instant of `cron` strictly after `now_s` (Unix seconds, UTC).
fn next_after(cron: Option<&Cron>, now_s: u64) -> u64 {
    let Some(cron) = cron else {
        return u64::MAX;
    };
    let now = DateTime::<Utc>::from_timestamp(now_s as i64, 0).unwrap_or_default();
    cron.find_next_occurrence(&now, false)
        .map_or(u64::MAX, |t| t.timestamp().max(0) as u64)
}

pub fn now_s() -> u64 {
    super::now_us() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(requests: Option<u64>, tokens: Option<u64>, reset: &str) -> QuotaConfig {
        QuotaConfig {
            requests,
            tokens,
            reset: Some(reset.parse().unwrap()),
        }
    }

    // 2026-12-02T00:00:00Z
    const MIDNIGHT: u64 = 1_796_169_600;

    #[test]
    fn used_up_until_the_next_reset() {
        let q = Quota::new(cfg(Some(2), None, "0 0 * * *"), MIDNIGHT + 3600);
        assert_eq!(q.used_up(MIDNIGHT + 3600), None);
        q.count_request();
        q.count_request();
        // 23 hours to the next midnight.
        assert_eq!(
            q.used_up(MIDNIGHT + 3600),
            Some(Some(Duration::from_secs(23 * 3600)))
        );
        assert_eq!(q.used_up(MIDNIGHT + 86_400), None, "renewed at midnight");
        assert_eq!(
            q.state(MIDNIGHT + 86_400),
            (0, 0, Some(MIDNIGHT + 2 * 86_400))
        );
    }

    #[test]
    fn tokens_count_too_and_a_reload_keeps_the_usage() {
        let q = Quota::new(cfg(None, Some(100), "*/5 * * * *"), MIDNIGHT + 10);
        q.count_tokens(150);
        assert_eq!(
            q.used_up(MIDNIGHT + 10),
            Some(Some(Duration::from_secs(290)))
        );
        let r = q.carried(cfg(None, Some(1000), "*/5 * * * *"), MIDNIGHT + 20);
        assert_eq!(r.used_up(MIDNIGHT + 20), None);
        assert_eq!(r.state(MIDNIGHT + 20), (0, 150, Some(MIDNIGHT + 300)));
        let never = Quota::new(
            QuotaConfig {
                requests: Some(1),
                tokens: None,
                reset: None,
            },
            MIDNIGHT,
        );
        never.count_request();
        assert_eq!(never.used_up(MIDNIGHT + 1_000_000), Some(None));
    }
}
