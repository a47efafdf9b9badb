//! `GET /metrics`: the registry in Prometheus text format, with the gauges
//! of state taken from the runtime and the usage totals at scrape time.

use crate::clock::now_ms;
use crate::limits::usage::{GroupBy, UsageMeter};
use crate::state::Runtime;
use crate::telemetry::Metrics;
use crate::upstream::circuit::State;
use prometheus::{Encoder, TextEncoder};

/// Prometheus text format, with health gauges taken from `rt` now.
pub fn render(m: &Metrics, rt: &Runtime, usage: &UsageMeter) -> Vec<u8> {
    // Per-key series come from the usage totals at scrape time: nothing
    // on the request path.
    m.key_requests.reset();
    m.key_tokens.reset();
    for (key, row) in usage.query(GroupBy::Key, 0, u64::MAX) {
        m.key_requests
            .with_label_values(&[key.as_str()])
            .inc_by(row.requests);
        for (kind, n) in [
            ("prompt", row.prompt_tokens),
            ("completion", row.completion_tokens),
        ] {
            m.key_tokens
                .with_label_values(&[key.as_str(), kind])
                .inc_by(n);
        }
    }
    if let Some(store) = &rt.store {
        let c = m.state_errors.with_label_values(&["redis"]);
        c.reset();
        c.inc_by(store.errors.load(std::sync::atomic::Ordering::Relaxed));
    }
    m.healthy.reset();
    m.circuit.reset();
    m.upstream_in_flight.reset();
    let now = now_ms();
    for u in &rt.upstreams {
        let name = [u.name()];
        m.healthy
            .with_label_values(&name)
            .set(i64::from(u.health.is_healthy()));
        let b = &u.health.breaker;
        let state = match b.state(now) {
            _ if b.cooldown_left(now) > 0 => 3,
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        };
        m.circuit.with_label_values(&name).set(state);
        m.upstream_in_flight
            .with_label_values(&name)
            .set(u.health.in_flight() as i64);
    }
    let mut out = Vec::with_capacity(8192);
    let enc = TextEncoder::new();
    let mut families = m.registry.gather();
    families.extend(prometheus::gather());
    if enc.encode(&families, &mut out).is_err() {
        out.clear();
    }
    out
}
