//! Per-key rate limits (design.md section 8): `rpm` counts admitted requests,
//! `tpm` tokens (prompt + completion), each a GCRA cell ([`gcra`]).
//!
//! Admission reserves a token estimate — the prompt from the body's size
//! (about four bytes a token) plus `max_tokens`/`max_completion_tokens`
//! (`max_output_tokens` on the Responses API) when given — and the request settles to its real usage when its answer ends
//! (also when the client left or the stream was cut): usage the upstream
//! reported, else the estimate stands; nothing answered by an upstream, or an
//! answer that is not a success, gives the reservation back.
//!
//! A key's cells live as long as its name stays in the config: a reload hands
//! them to the new snapshot (rescaled when its limit changed).

pub mod gcra;
pub mod quota;
pub mod redis;
pub mod usage;
pub mod usage_log;

pub use gcra::{Cell, Rate};
pub use quota::Quota;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The state of one key's limits.
#[derive(Debug, Default)]
pub struct KeyMeter {
    pub requests: Cell,
    pub tokens: Cell,
}

/// One key's limits as configured, and their state.
#[derive(Debug, Clone)]
pub struct KeyLimits {
    pub rpm: Option<Rate>,
    pub tpm: Option<Rate>,
    pub meter: Arc<KeyMeter>,
    /// The key's cells in the shared store (`state.backend: redis`), named
    /// once rather than per request.
    pub cells: Option<Arc<CellKeys>>,
}

/// The Redis keys of one client key's `rpm` and `tpm` cells.
#[derive(Debug)]
pub struct CellKeys {
    pub rpm: String,
    pub tpm: String,
}

impl CellKeys {
    pub fn new(prefix: &str, key_name: &str) -> CellKeys {
        CellKeys {
            rpm: format!("{prefix}rl:{key_name}:rpm"),
            tpm: format!("{prefix}rl:{key_name}:tpm"),
        }
    }
}

/// Which limit refused a request, and when it would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Requests(Duration),
    Tokens(Duration),
}

/// Tokens a request reserved against its key's `tpm`, settled at its end.
pub struct Reservation {
    pub(crate) home: Home,
    pub rate: Rate,
    pub tokens: u64,
    pub(crate) settled: AtomicBool,
}

/// Where a reservation was taken.
pub(crate) enum Home {
    Local(Arc<KeyMeter>),
    Shared {
        store: Arc<redis::Store>,
        cells: Arc<CellKeys>,
    },
}

impl KeyLimits {
    /// `None` when the key has no limit.
    pub fn new(rpm: Option<u64>, tpm: Option<u64>, previous: Option<&KeyLimits>) -> Option<Self> {
        if rpm.is_none() && tpm.is_none() {
            return None;
        }
        let (rpm, tpm) = (rpm.map(Rate::per_minute), tpm.map(Rate::per_minute));
        let meter = match previous {
            Some(p) => {
                let now = now_us();
                if let (Some(old), Some(new)) = (p.rpm, rpm) {
                    p.meter.requests.rescale(old, new, now);
                }
                if let (Some(old), Some(new)) = (p.tpm, tpm) {
                    p.meter.tokens.rescale(old, new, now);
                }
                p.meter.clone()
            }
            None => Arc::default(),
        };
        Some(KeyLimits {
            rpm,
            tpm,
            meter,
            cells: None,
        })
    }

    /// Admit one request that may use `tokens` (an estimate), or refuse it.
    pub fn admit(&self, now_us: u64, tokens: u64) -> Result<Option<Reservation>, Refused> {
        if let Some(r) = self.rpm {
            self.meter
                .requests
                .take(r, now_us, 1)
                .map_err(Refused::Requests)?;
        }
        let Some(t) = self.tpm else {
            return Ok(None);
        };
        if let Err(wait) = self.meter.tokens.take(t, now_us, tokens) {
            // Not admitted: the request it counted does not count.
            if let Some(r) = self.rpm {
                self.meter.requests.settle(r, now_us, -1);
            }
            return Err(Refused::Tokens(wait));
        }
        Ok(Some(Reservation {
            home: Home::Local(self.meter.clone()),
            rate: t,
            tokens,
            settled: AtomicBool::new(false),
        }))
    }
}

impl Reservation {
    /// The request ended having used `used` tokens (only the first call counts).
    pub fn settle(&self, used: u64) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        let delta = used as i64 - self.tokens as i64;
        if delta == 0 {
            return;
        }
        match &self.home {
            Home::Local(meter) => meter.tokens.settle(self.rate, now_us(), delta),
            Home::Shared { store, cells } => store.settle(cells, self.rate, delta),
        }
    }
}

/// Prompt tokens of a request, estimated before it runs from its body's size
/// (about four bytes a token); its `tpm` reservation adds the completion
/// limit it asks for, if any.
pub fn prompt_estimate(body_len: usize) -> u64 {
    (body_len as u64).div_ceil(4)
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_by_tpm_does_not_count_against_rpm() {
        let l = KeyLimits::new(Some(2), Some(100), None).unwrap();
        let t = 1_000_000_000;
        assert!(l.admit(t, 90).is_ok());
        assert!(matches!(l.admit(t, 50), Err(Refused::Tokens(_))));
        let r = l.admit(t, 10).unwrap().unwrap();
        assert!(matches!(l.admit(t, 0), Err(Refused::Requests(_))));
        r.settle(10);
    }

    #[test]
    fn a_reload_keeps_the_state_and_applies_the_new_limit() {
        let a = KeyLimits::new(Some(10), None, None).unwrap();
        let t = now_us();
        for _ in 0..5 {
            assert!(a.admit(t, 0).is_ok());
        }
        let b = KeyLimits::new(Some(5), None, Some(&a)).unwrap();
        assert!(matches!(b.admit(t, 0), Err(Refused::Requests(_))));
        assert!(KeyLimits::new(None, None, Some(&a)).is_none());
    }

    #[test]
    fn estimates() {
        assert_eq!(prompt_estimate(1000), 250);
        assert_eq!(prompt_estimate(1001), 251);
    }
}
