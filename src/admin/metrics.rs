//! Prometheus metrics. Labels are bounded: logical models and upstream names come
//! from the config (anything else is `-`), outcomes and status classes are fixed
//! sets. Health and breaker gauges are filled at scrape time from the runtime.

use crate::state::Runtime;
use crate::upstream::circuit::{now_ms, State};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub attempts: IntCounterVec,
    pub cut: IntCounterVec,
    pub in_flight: IntGauge,
    pub streams: IntGauge,
    pub duration: HistogramVec,
    pub ttfb: HistogramVec,
    pub tokens: IntCounterVec,
    healthy: IntGaugeVec,
    circuit: IntGaugeVec,
    upstream_in_flight: IntGaugeVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        let histogram = |name: &str, help: &str| -> Result<HistogramVec, prometheus::Error> {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                &["model"],
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let m = Metrics {
            requests: counter(
                "llmgate_requests_total",
                "Requests by logical model, answering upstream and status class.",
                &["model", "upstream", "status"],
            )?,
            attempts: counter(
                "llmgate_attempts_total",
                "Upstream attempts by upstream and outcome (ok, passthrough, or the failover reason).",
                &["upstream", "outcome"],
            )?,
            cut: counter(
                "llmgate_responses_cut_total",
                "Responses that failed after commit (stream error event or cut body), by upstream.",
                &["upstream"],
            )?,
            in_flight: gauge("llmgate_in_flight_requests", "Requests being handled.")?,
            streams: gauge("llmgate_in_flight_streams", "SSE streams being relayed.")?,
            duration: histogram("llmgate_request_duration_seconds", "Whole request duration by logical model.")?,
            ttfb: histogram(
                "llmgate_time_to_first_byte_seconds",
                "Request start to first response byte sent (after commit), by logical model.",
            )?,
            tokens: counter(
                "llmgate_tokens_total",
                "Tokens reported in upstream usage, by upstream, model and kind (prompt, completion).",
                &["upstream", "model", "kind"],
            )?,
            healthy: gauge_vec("llmgate_upstream_healthy", "1 if the active health checks pass.", &["upstream"])?,
            circuit: gauge_vec(
                "llmgate_upstream_circuit_state",
                "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 cooling down after Retry-After.",
                &["upstream"],
            )?,
            upstream_in_flight: gauge_vec(
                "llmgate_upstream_in_flight",
                "Requests currently sent to the upstream.",
                &["upstream"],
            )?,
            registry,
        };
        Ok(m)
    }

    /// Prometheus text format, with health gauges taken from `rt` now.
    pub fn render(&self, rt: &Runtime) -> Vec<u8> {
        self.healthy.reset();
        self.circuit.reset();
        self.upstream_in_flight.reset();
        let now = now_ms();
        for u in &rt.upstreams {
            let name = [u.name()];
            self.healthy
                .with_label_values(&name)
                .set(i64::from(u.health.is_healthy()));
            let b = &u.health.breaker;
            let state = match b.state(now) {
                _ if b.cooldown_left(now) > 0 => 3,
                State::Closed => 0,
                State::Open => 1,
                State::HalfOpen => 2,
            };
            self.circuit.with_label_values(&name).set(state);
            self.upstream_in_flight
                .with_label_values(&name)
                .set(u.health.in_flight() as i64);
        }
        let mut out = Vec::with_capacity(8192);
        let enc = TextEncoder::new();
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        if enc.encode(&families, &mut out).is_err() {
            out.clear();
        }
        out
    }
}

/// `2xx`, `4xx`, ... for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}
