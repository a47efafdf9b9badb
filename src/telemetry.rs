//! Prometheus metrics: the registry and the series the request path counts
//! into. Labels are bounded: logical models and upstream names come from the
//! config (anything else is `-`), outcomes and status classes are fixed sets.
//! Gauges of state (health, breaker, per-key totals) are filled at scrape time
//! by the admin API (`admin::metrics::render`). A low-level module: it
//! imports nothing of the gateway's own.

use once_cell::sync::OnceCell;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::time::Duration;

pub struct Metrics {
    pub(crate) registry: Registry,
    pub requests: IntCounterVec,
    pub attempts: IntCounterVec,
    pub cut: IntCounterVec,
    pub in_flight: IntGauge,
    pub streams: IntGauge,
    pub duration: HistogramVec,
    pub ttfb: HistogramVec,
    pub tokens: IntCounterVec,
    pub(crate) healthy: IntGaugeVec,
    pub(crate) circuit: IntGaugeVec,
    pub(crate) upstream_in_flight: IntGaugeVec,
    pub(crate) key_requests: IntCounterVec,
    pub(crate) key_tokens: IntCounterVec,
    pub(crate) state_errors: IntCounterVec,
    pub route_requests: IntCounterVec,
    pub route_duration: HistogramVec,
    pub(crate) backend_healthy: IntGaugeVec,
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
            let label = if name.starts_with("llmgate_route") {
                "route"
            } else {
                "model"
            };
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                &[label],
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
            key_requests: counter(
                "llmgate_key_requests_total",
                "Answered requests by client key name (this process).",
                &["key"],
            )?,
            key_tokens: counter(
                "llmgate_key_tokens_total",
                "Tokens by client key name and kind (prompt, completion; estimated where no usage was reported).",
                &["key", "kind"],
            )?,
            state_errors: counter(
                "llmgate_state_errors_total",
                "Calls to the shared state store (Redis) that failed or timed out.",
                &["backend"],
            )?,
            route_requests: counter(
                "llmgate_route_requests_total",
                "Plain-route requests by route (host/path_prefix), backend and status class.",
                &["route", "backend", "status"],
            )?,
            route_duration: histogram(
                "llmgate_route_request_duration_seconds",
                "Whole plain-route request duration by route.",
            )?,
            backend_healthy: gauge_vec(
                "llmgate_backend_healthy",
                "1 if the route backend's health checks pass.",
                &["route", "backend"],
            )?,
            registry,
        };
        Ok(m)
    }
}

/// `2xx`, `4xx`, ... for a status code (`none` outside 100–599).
pub fn status_class(status: u16) -> &'static str {
    CLASSES[class_index(status)]
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

/// One logical model's series, each resolved on first use and kept: a
/// `with_label_values` lookup hashes every label and takes the vector's lock,
/// and a request made six of them. Lives in the runtime snapshot, so a reload
/// starts with empty slots; the series themselves stay in the registry.
#[derive(Debug)]
pub struct ModelSeries {
    duration: OnceCell<Histogram>,
    ttfb: OnceCell<Histogram>,
    /// Index: upstream index; the last slot is "no upstream answered".
    by_upstream: Box<[UpstreamSlot]>,
}

#[derive(Debug, Default)]
struct UpstreamSlot {
    requests: [OnceCell<IntCounter>; CLASSES.len()],
    prompt: OnceCell<IntCounter>,
    completion: OnceCell<IntCounter>,
}

/// What one finished request adds to the metrics.
pub struct Observed<'a> {
    pub model: &'a str,
    /// Index and name of the upstream whose answer was sent.
    pub upstream: Option<(usize, &'a str)>,
    pub status: u16,
    pub elapsed: Duration,
    pub ttfb: Option<Duration>,
    pub usage: Option<(u64, u64)>,
}

impl ModelSeries {
    pub fn new(upstreams: usize) -> Self {
        ModelSeries {
            duration: OnceCell::new(),
            ttfb: OnceCell::new(),
            by_upstream: (0..=upstreams).map(|_| UpstreamSlot::default()).collect(),
        }
    }

    pub fn observe(&self, m: &Metrics, o: &Observed<'_>) {
        let model = o.model;
        let (slot, upstream) = match o.upstream {
            Some((i, name)) if i + 1 < self.by_upstream.len() => (&self.by_upstream[i], name),
            _ => (&self.by_upstream[self.by_upstream.len() - 1], "-"),
        };
        let class = class_index(o.status);
        slot.requests[class]
            .get_or_init(|| {
                m.requests
                    .with_label_values(&[model, upstream, CLASSES[class]])
            })
            .inc();
        self.duration
            .get_or_init(|| m.duration.with_label_values(&[model]))
            .observe(o.elapsed.as_secs_f64());
        if let Some(t) = o.ttfb {
            self.ttfb
                .get_or_init(|| m.ttfb.with_label_values(&[model]))
                .observe(t.as_secs_f64());
        }
        if let Some((prompt, completion)) = o.usage {
            slot.prompt
                .get_or_init(|| m.tokens.with_label_values(&[upstream, model, "prompt"]))
                .inc_by(prompt);
            slot.completion
                .get_or_init(|| m.tokens.with_label_values(&[upstream, model, "completion"]))
                .inc_by(completion);
        }
    }
}

/// An upstream's attempt counters for the two outcomes of every answered
/// request, resolved on first use like [`ModelSeries`].
#[derive(Debug, Default)]
pub struct AttemptSeries {
    ok: OnceCell<IntCounter>,
    passthrough: OnceCell<IntCounter>,
}

impl AttemptSeries {
    /// Count an attempt whose answer is sent: `ok` for 2xx, else `passthrough`.
    pub fn answered(&self, m: &Metrics, upstream: &str, status: u16) {
        let (cell, outcome) = if (200..300).contains(&status) {
            (&self.ok, "ok")
        } else {
            (&self.passthrough, "passthrough")
        };
        cell.get_or_init(|| m.attempts.with_label_values(&[upstream, outcome]))
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_series_count_like_direct_lookups() {
        let m = Metrics::new().expect("metrics");
        let s = ModelSeries::new(2);
        let o = |upstream, status| Observed {
            model: "chat",
            upstream,
            status,
            elapsed: Duration::from_millis(5),
            ttfb: Some(Duration::from_millis(1)),
            usage: Some((3, 4)),
        };
        s.observe(&m, &o(Some((1, "b")), 200));
        s.observe(&m, &o(Some((1, "b")), 200));
        s.observe(&m, &o(None, 502));
        s.observe(&m, &o(Some((7, "x")), 600));
        let get = |l: &[&str]| m.requests.with_label_values(l).get();
        assert_eq!(get(&["chat", "b", "2xx"]), 2);
        assert_eq!(get(&["chat", "-", "5xx"]), 1);
        assert_eq!(get(&["chat", "-", "none"]), 1);
        assert_eq!(
            m.tokens.with_label_values(&["b", "chat", "prompt"]).get(),
            6
        );
        assert_eq!(
            m.duration.with_label_values(&["chat"]).get_sample_count(),
            4
        );
        for (status, class) in [
            (99, "none"),
            (100, "1xx"),
            (204, "2xx"),
            (404, "4xx"),
            (599, "5xx"),
            (600, "none"),
        ] {
            assert_eq!(status_class(status), class);
        }
        let a = AttemptSeries::default();
        a.answered(&m, "b", 200);
        a.answered(&m, "b", 404);
        assert_eq!(m.attempts.with_label_values(&["b", "ok"]).get(), 1);
        assert_eq!(m.attempts.with_label_values(&["b", "passthrough"]).get(), 1);
    }
}
