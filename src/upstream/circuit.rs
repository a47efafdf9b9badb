//! Passive health: a circuit breaker per upstream, fed by real requests.
//!
//! ```text
//! Closed --(unhealthy_after consecutive failures)--> Open(until = now + cooldown)
//! Open   --(cooldown over)--> HalfOpen: one trial request
//! HalfOpen --success--> Closed (cooldown resets)   --failure--> Open (cooldown doubles, capped)
//! ```
//! Separately, a `Retry-After` (or rate-limit reset) from the upstream cools it
//! down until that time. Lock-free: a handful of atomics, times in milliseconds
//! since a process-wide epoch (`crate::clock`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    pub failures: u32,
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

#[derive(Debug, Default)]
pub struct Breaker {
    fails: AtomicU32,
    /// How many times in a row it opened (drives the exponential cooldown).
    opens: AtomicU32,
    /// 0: closed; else open until this time (half-open after it).
    open_until: AtomicU64,
    /// A half-open trial request is in flight.
    probing: AtomicBool,
    /// Upstream asked us to wait (Retry-After) until this time.
    cooldown_until: AtomicU64,
}

impl Breaker {
    pub fn state(&self, now: u64) -> State {
        match self.open_until.load(Relaxed) {
            0 => State::Closed,
            t if now < t => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// May a new request be sent here now? (Pure: claims nothing.)
    pub fn admits(&self, now: u64) -> bool {
        if self.cooldown_until.load(Relaxed) > now {
            return false;
        }
        match self.state(now) {
            State::Closed => true,
            State::Open => false,
            State::HalfOpen => !self.probing.load(Relaxed),
        }
    }

    /// Called when a request is actually sent here: claims the half-open trial.
    pub fn begin(&self, now: u64) {
        if self.state(now) == State::HalfOpen {
            self.probing.store(true, Relaxed);
        }
    }

    /// The upstream answered (2xx, or a client error it is not to blame for).
    /// Returns true when this closed an open breaker.
    pub fn success(&self) -> bool {
        self.fails.store(0, Relaxed);
        self.opens.store(0, Relaxed);
        self.probing.store(false, Relaxed);
        self.open_until.swap(0, Relaxed) != 0
    }

    /// The attempt ended without an upstream verdict (client went away): release
    /// a claimed trial so another request can probe.
    pub fn abandon(&self) {
        self.probing.store(false, Relaxed);
    }

    /// Connect error, timeout, 5xx, 429, broken stream. `wait`: the upstream's own
    /// Retry-After. Returns true when this opened the breaker.
    pub fn failure(&self, now: u64, p: &BreakerPolicy, wait: Option<Duration>) -> bool {
        if let Some(w) = wait {
            let until = now + w.as_millis() as u64;
            self.cooldown_until.fetch_max(until, Relaxed);
        }
        let fails = self.fails.fetch_add(1, Relaxed) + 1;
        let state = self.state(now);
        let trial_failed = state == State::HalfOpen;
        if !(trial_failed || (state == State::Closed && fails >= p.failures)) {
            return false;
        }
        let opens = self.opens.fetch_add(1, Relaxed).min(20);
        let base = p.cooldown.as_millis() as u64;
        let cooldown = base
            .saturating_mul(1u64 << opens)
            .min(p.max_cooldown.as_millis() as u64);
        // +-20% jitter so a fleet of gateways does not probe in lockstep.
        let jittered = cooldown * fastrand::u64(80..=120) / 100;
        self.open_until.store(now + jittered.max(1), Relaxed);
        self.probing.store(false, Relaxed);
        true
    }

    /// An active check succeeded: end an open period early (the next request is
    /// the trial). Keeps the cooldown growth, unlike a real success.
    pub fn half_open_now(&self, now: u64) {
        let _ = self
            .open_until
            .fetch_update(Relaxed, Relaxed, |t| (t > now).then_some(now));
    }

    /// Milliseconds until the Retry-After cooldown ends (0 if none).
    pub fn cooldown_left(&self, now: u64) -> u64 {
        self.cooldown_until.load(Relaxed).saturating_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: BreakerPolicy = BreakerPolicy {
        failures: 2,
        cooldown: Duration::from_millis(1000),
        max_cooldown: Duration::from_millis(3000),
    };

    #[test]
    fn opens_after_threshold_then_half_opens_with_one_trial() {
        let b = Breaker::default();
        assert!(!b.failure(0, &P, None));
        assert!(b.admits(1));
        assert!(b.failure(10, &P, None));
        assert_eq!(b.state(11), State::Open);
        assert!(!b.admits(11));
        // Cooldown 1000 ms +-20%.
        assert!(b.admits(10 + 1201));
        b.begin(10 + 1201);
        assert!(!b.admits(10 + 1202), "only one trial while half-open");
        assert!(b.success());
        assert_eq!(b.state(2000), State::Closed);
        assert!(b.admits(2000));
    }

    #[test]
    fn failed_trial_reopens_with_growing_capped_cooldown() {
        let b = Breaker::default();
        b.failure(0, &P, None);
        b.failure(0, &P, None);
        let mut now = 0;
        for expected in [2000u64, 3000, 3000] {
            now += 5000;
            assert_eq!(b.state(now), State::HalfOpen);
            b.begin(now);
            assert!(b.failure(now, &P, None));
            let left = b.open_until.load(Relaxed) - now;
            assert!(
                left >= expected * 8 / 10 && left <= expected * 12 / 10,
                "{left} vs {expected}"
            );
        }
    }

    #[test]
    fn retry_after_cools_down_without_opening() {
        let b = Breaker::default();
        b.failure(100, &P, Some(Duration::from_secs(5)));
        assert_eq!(b.state(101), State::Closed);
        assert!(!b.admits(101));
        assert_eq!(b.cooldown_left(101), 4999);
        assert!(b.admits(5101));
    }

    #[test]
    fn abandoned_trial_is_released() {
        let b = Breaker::default();
        b.failure(0, &P, None);
        b.failure(0, &P, None);
        b.begin(10_000);
        assert!(!b.admits(10_000));
        b.abandon();
        assert!(b.admits(10_000));
    }
}
