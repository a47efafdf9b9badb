//! Per-key request rate limit: a lock-free fixed one-minute window. Cheap enough
//! for the hot path (two atomics); bursts at a window edge can reach 2x, the usual
//! fixed-window trade-off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct RateLimiter {
    limit: u64,
    window: AtomicU64,
    count: AtomicU64,
}

impl RateLimiter {
    pub fn per_minute(limit: u64) -> Self {
        RateLimiter {
            limit,
            window: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// `Ok(())` admits one request; `Err(wait)` says how long until the window resets.
    pub fn admit(&self) -> Result<(), Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.admit_at(now)
    }

    /// (limit, requests left in the current minute) for the status page.
    pub fn left(&self) -> (u64, u64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let used = if self.window.load(Ordering::Acquire) == now.as_secs() / 60 {
            self.count.load(Ordering::Acquire)
        } else {
            0
        };
        (self.limit, self.limit.saturating_sub(used))
    }

    fn admit_at(&self, now: Duration) -> Result<(), Duration> {
        let window = now.as_secs() / 60;
        if self.window.swap(window, Ordering::AcqRel) != window {
            self.count.store(0, Ordering::Release);
        }
        if self.count.fetch_add(1, Ordering::AcqRel) < self.limit {
            Ok(())
        } else {
            Err(Duration::from_secs((window + 1) * 60)
                .saturating_sub(now)
                .max(Duration::from_secs(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_window_and_resets() {
        let r = RateLimiter::per_minute(2);
        let t = Duration::from_secs(600);
        assert!(r.admit_at(t).is_ok());
        assert!(r.admit_at(t).is_ok());
        let wait = r.admit_at(t + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(r.admit_at(t + Duration::from_secs(60)).is_ok());
    }
}
