//! The status page (`GET /` on the admin listener, design.md section 10): one
//! self-contained HTML page, no external assets, that reads
//! `GET /admin/status` every two seconds. Rates, error rates and latency
//! percentiles are worked out in the page from the difference of two
//! readings of cumulative counters, so the server keeps no windows.

use super::reload::Reloader;
use crate::clock::now_ms;
use crate::limits::{Cell, KeyMeter};
use crate::state::Runtime;
use crate::upstream::health::LATENCY_BOUNDS_MS;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

pub const PAGE: &str = include_str!("status.html");

/// Everything the page shows, as cumulative counters and current states.
pub fn snapshot(rt: &Runtime, reloader: &Reloader) -> Value {
    let now = now_ms();
    let upstreams: Vec<Value> = rt
        .upstreams
        .iter()
        .map(|up| {
            let (requests, failures) = up.health.counts();
            json!({
                "name": up.name(),
                "state": up.state_name(now),
                "circuit": up.health.breaker.state(now).as_str(),
                "cooldown_ms": up.health.breaker.cooldown_left(now),
                "in_flight": up.health.in_flight(),
                "requests": requests,
                "failures": failures,
                "tokens": up.health.tokens(),
                "latency": up.health.latency_buckets(),
                "last_error": up.health.last_error(),
            })
        })
        .collect();
    let mut keys: Vec<Value> = rt
        .keys
        .iter()
        .flat_map(|k| k.values())
        .map(|k| {
            let now = crate::limits::now_us();
            let limit = |rate: Option<crate::limits::Rate>, cell: fn(&KeyMeter) -> &Cell| {
                let l = k.limits.as_ref();
                match (rate, l) {
                    (Some(r), Some(l)) => (json!(r.per_minute), json!(cell(&l.meter).left(r, now))),
                    _ => (Value::Null, Value::Null),
                }
            };
            let (rpm, rpm_left) = limit(k.limits.as_ref().and_then(|l| l.rpm), |m| &m.requests);
            let (tpm, tpm_left) = limit(k.limits.as_ref().and_then(|l| l.tpm), |m| &m.tokens);
            json!({
                "name": &*k.name,
                "requests": k.requests.load(Ordering::Relaxed),
                "rpm": rpm,
                "rpm_left": rpm_left,
                "tpm": tpm,
                "tpm_left": tpm_left,
            })
        })
        .collect();
    keys.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({
        "now_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "latency_bounds_ms": LATENCY_BOUNDS_MS,
        "upstreams": upstreams,
        "keys": keys,
        "reloads": reloader.history(),
    })
}
