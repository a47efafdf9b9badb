//! GCRA (the generic cell rate algorithm): one limit as one atomic word, the
//! theoretical arrival time (TAT) of the next unit. A limit of `n` per minute
//! is a bucket of `n` units refilled continuously at `n` per minute: a unit
//! costs `T = 60 s / n` of the TAT, and a take is admitted while the TAT stays
//! within one minute of now.
//!
//! Why GCRA rather than a sliding-window log: O(1) state per key (one `u64`,
//! lock-free here, one Redis string in a shared store), costs of any size
//! (tokens) and refunds (settlement) are additions to the TAT, the wait until
//! a refused take would be admitted is exact (`Retry-After`), and a changed
//! limit applies at once to what was already used. The trade-off, as with
//! nginx's `limit_req` and Stripe's limiter: after a full burst of `n` the
//! bucket refills steadily, so any sixty seconds can see up to `2n - 1`
//! admitted, never more than `n` at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The window every limit is expressed in.
pub const PERIOD_US: u64 = 60_000_000;

/// `n` units per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u64,
    /// Microseconds of TAT one unit costs.
    unit_us: u64,
}

impl Rate {
    pub fn per_minute(n: u64) -> Rate {
        let n = n.max(1);
        Rate {
            per_minute: n,
            unit_us: (PERIOD_US / n).max(1),
        }
    }

    /// Microseconds of TAT one unit costs.
    pub fn unit_us(&self) -> u64 {
        self.unit_us
    }

    fn cost_us(&self, units: u64) -> u64 {
        units.saturating_mul(self.unit_us)
    }
}

/// One limit's state: TAT in microseconds since the Unix epoch (0: unused).
#[derive(Debug, Default)]
pub struct Cell {
    tat_us: AtomicU64,
}

impl Cell {
    pub fn new(tat_us: u64) -> Cell {
        Cell {
            tat_us: AtomicU64::new(tat_us),
        }
    }

    pub fn tat_us(&self) -> u64 {
        self.tat_us.load(Ordering::Relaxed)
    }

    /// Merge a saved state (a restart): the fuller of the two wins.
    pub fn restore(&self, tat_us: u64) {
        self.tat_us.fetch_max(tat_us, Ordering::AcqRel);
    }

    /// Take `units` at `now_us`, or say how long until they would fit. A take
    /// larger than the whole limit is admitted when the bucket is full (and
    /// charged in full): it could never be admitted otherwise.
    pub fn take(&self, rate: Rate, now_us: u64, units: u64) -> Result<(), Duration> {
        let cost = rate.cost_us(units);
        let needed = cost.min(PERIOD_US);
        let mut tat = self.tat_us.load(Ordering::Acquire);
        loop {
            let base = tat.max(now_us);
            let used = base - now_us;
            if used + needed > PERIOD_US {
                return Err(Duration::from_micros(used + needed - PERIOD_US));
            }
            match self.tat_us.compare_exchange_weak(
                tat,
                base.saturating_add(cost),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(t) => tat = t,
            }
        }
    }

    /// Correct an earlier take by `delta` units (negative: give back), e.g.
    /// a token estimate settled to the real usage. Never refills past full.
    pub fn settle(&self, rate: Rate, now_us: u64, delta: i64) {
        let cost = rate.cost_us(delta.unsigned_abs());
        let _ = self
            .tat_us
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(if delta >= 0 {
                    tat.max(now_us).saturating_add(cost)
                } else if tat <= now_us {
                    tat
                } else {
                    tat.saturating_sub(cost).max(now_us)
                })
            });
    }

    /// The limit changed from `old` to `new` (a reload): what was used
    /// counts in units under the new one, so a lower limit applies at once to
    /// what was already taken.
    pub fn rescale(&self, old: Rate, new: Rate, now_us: u64) {
        if old == new {
            return;
        }
        let _ = self
            .tat_us
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                let used = tat.saturating_sub(now_us);
                let units = used.div_ceil(old.unit_us);
                Some(if used == 0 {
                    tat
                } else {
                    now_us.saturating_add(new.cost_us(units))
                })
            });
    }

    /// Units that could be taken now (for the status page).
    pub fn left(&self, rate: Rate, now_us: u64) -> u64 {
        let used = self.tat_us().saturating_sub(now_us);
        (PERIOD_US.saturating_sub(used) / rate.unit_us).min(rate.per_minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn n_at_once_then_one_per_interval() {
        let r = Rate::per_minute(3);
        let c = Cell::default();
        let t = 1_000 * S;
        for _ in 0..3 {
            assert!(c.take(r, t, 1).is_ok());
        }
        assert_eq!(c.left(r, t), 0);
        // The 4th: exactly one interval (20 s) away.
        assert_eq!(c.take(r, t, 1), Err(Duration::from_secs(20)));
        assert_eq!(c.take(r, t + 5 * S, 1), Err(Duration::from_secs(15)));
        assert!(c.take(r, t + 20 * S, 1).is_ok());
        assert!(c.take(r, t + 20 * S, 1).is_err());
        // A minute of silence refills it whole, never more.
        assert_eq!(c.left(r, t + 200 * S), 3);
    }

    #[test]
    fn costs_and_settlement() {
        let r = Rate::per_minute(1000);
        let c = Cell::default();
        let t = 50 * S;
        assert!(c.take(r, t, 800).is_ok());
        // 300 more do not fit; the wait is for the 100 missing (6 s).
        assert_eq!(c.take(r, t, 300), Err(Duration::from_secs(6)));
        // The 800 reserved were really 200: 600 come back.
        c.settle(r, t, -600);
        assert_eq!(c.left(r, t), 800);
        assert!(c.take(r, t, 300).is_ok());
        // Settling up past the limit pushes the next admission out.
        c.settle(r, t, 1500);
        assert_eq!(c.left(r, t), 0);
        assert!(c.take(r, t + 60 * S, 1).is_err());
        assert!(c.take(r, t + 121 * S, 1).is_ok());
        // Refunds never fill a bucket past full.
        let idle = Cell::default();
        idle.settle(r, t, -5000);
        assert_eq!(idle.left(r, t), 1000);
        assert!(idle.take(r, t, 1000).is_ok());
        assert!(idle.take(r, t, 1).is_err());
    }

    #[test]
    fn a_take_larger_than_the_limit_waits_for_a_full_bucket() {
        let r = Rate::per_minute(100);
        let c = Cell::default();
        let t = 10 * S;
        assert!(c.take(r, t, 1).is_ok());
        assert_eq!(c.take(r, t, 500), Err(Duration::from_millis(600)));
        assert!(c.take(r, t + S, 500).is_ok());
        // Charged in full: five minutes' worth.
        assert!(c.take(r, t + S + 4 * 60 * S, 1).is_err());
    }

    #[test]
    fn a_lower_limit_applies_to_what_was_used() {
        let c = Cell::default();
        let t = 10 * S;
        let (was, now) = (Rate::per_minute(60), Rate::per_minute(10));
        for _ in 0..10 {
            assert!(c.take(was, t, 1).is_ok());
        }
        // 10 used of a new limit of 10: none left.
        c.rescale(was, now, t);
        assert_eq!(c.left(now, t), 0);
        assert!(c.take(now, t, 1).is_err());
        // And back up: 10 used of 60.
        c.rescale(now, was, t);
        assert_eq!(c.left(was, t), 50);
    }
}
