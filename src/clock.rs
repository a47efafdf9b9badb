//! The process's monotonic clock in milliseconds, for state shared between
//! threads as plain atomics (breakers, health, cooldowns): times are
//! milliseconds since a process-wide epoch, never 0 (0 can mean "unset").

use once_cell::sync::Lazy;
use std::time::Instant;

static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);

/// Milliseconds since the process-wide epoch (never 0).
pub fn now_ms() -> u64 {
    ms_at(Instant::now())
}

/// [`now_ms`] for an instant already read (one clock read serves several uses).
pub fn ms_at(t: Instant) -> u64 {
    t.saturating_duration_since(*EPOCH).as_millis() as u64 + 1
}
