//! The admin listener (bearer `admin.api_key`): `/metrics`, upstream status,
//! redacted config, reload, drain/enable, and a routing dry run; served by
//! Pingora's plain HTTP server (`ServeHttp`), behind the header deadline.

use super::reload::Reloader;
use crate::clock::now_ms;
use crate::config::Config;
use crate::proxy::rewrite::ParsedBody;
use crate::secret::Secret;
use crate::state::{Runtime, SharedRuntime};
use crate::telemetry::Metrics;
use crate::upstream::Upstream;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct AdminApi {
    pub runtime: SharedRuntime,
    pub reloader: Arc<Reloader>,
    pub metrics: Arc<Metrics>,
    pub api_key: Secret,
    pub usage: Arc<crate::limits::usage::UsageMeter>,
}

/// Served by Pingora's plain HTTP server (`ServeHttp`): every answer is made
/// here, whole, before it is written.
#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let (status, content_type, body) = self.handle(session).await;
        let mut resp = http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("content-length", body.len())
            .header("cache-control", "no-store");
        if status == 401 {
            // Browsers then ask for the key (as the password) and send it
            // with every later request, the page's own refreshes included.
            resp = resp.header(
                "www-authenticate",
                "Basic realm=\"llmgate admin\", charset=\"UTF-8\"",
            );
        }
        if content_type.starts_with("text/html") {
            resp = resp
                .header(
                    "content-security-policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'",
                )
                .header("x-content-type-options", "nosniff");
        }
        // Every header above is a static, valid name and value.
        resp.body(body.to_vec()).unwrap_or_else(|_| {
            let mut r = http::Response::new(Vec::new());
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }
}

fn error(status: u16, message: &str, kind: &str, code: &str) -> (u16, &'static str, Bytes) {
    (
        status,
        "application/json",
        crate::error::error_body(message, kind, code),
    )
}

fn ok_json(v: Value) -> (u16, &'static str, Bytes) {
    (200, "application/json", Bytes::from(v.to_string()))
}

impl AdminApi {
    fn authorized(&self, session: &ServerSession) -> bool {
        let presented = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(presented_key)
            .unwrap_or_default();
        // The key of the config now serving: a reload that changes it applies.
        let rt = self.runtime.load();
        let key = rt
            .config
            .admin
            .as_ref()
            .map_or(&self.api_key, |a| &a.api_key);
        constant_time_eq(presented.as_bytes(), key.expose().as_bytes())
    }

    async fn handle(&self, session: &mut ServerSession) -> (u16, &'static str, Bytes) {
        if !self.authorized(session) {
            return error(
                401,
                "admin API key required (Authorization: Bearer)",
                "authentication_error",
                "invalid_api_key",
            );
        }
        let method = session.req_header().method.as_str().to_string();
        let path = session.req_header().uri.path().to_string();
        let rt = self.runtime.load_full();
        match (method.as_str(), path.as_str()) {
            ("GET", "/metrics") => (200, "text/plain; version=0.0.4", Bytes::from(super::metrics::render(&self.metrics, &rt, &self.usage))),
            ("GET", "/admin/upstreams") => ok_json(upstreams_json(&rt)),
            ("GET", "/" | "/status") => (200, "text/html; charset=utf-8", Bytes::from_static(super::status::PAGE.as_bytes())),
            ("GET", "/admin/status") => ok_json(super::status::snapshot(&rt, &self.reloader)),
            ("GET", "/admin/config") => ok_json(config_json(&rt.config)),
            ("GET", "/admin/usage") => match super::usage::answer(&self.usage, rt.store.as_deref(), session.req_header().uri.query()).await {
                Ok(v) => ok_json(v),
                Err(super::usage::Refusal::Query(m)) => error(400, &m, "invalid_request_error", "invalid_request"),
                Err(super::usage::Refusal::Unavailable) => error(503, "usage totals are in Redis, which is unreachable", "server_error", "state_unavailable"),
            },
            ("POST", "/admin/reload") => match self.reloader.reload() {
                Ok(not_applied) => ok_json(json!({
                    "status": "reloaded",
                    "not_applied": not_applied
                        .iter()
                        .map(|n| json!({"key": n.key, "why": n.why}))
                        .collect::<Vec<_>>(),
                })),
                Err(problems) => (
                    400,
                    "application/json",
                    Bytes::from(
                        json!({"error": {"message": "config rejected; the previous config is still serving",
                            "type": "invalid_request_error", "code": "invalid_config", "problems": problems.lines()}})
                        .to_string(),
                    ),
                ),
            },
            ("POST", "/admin/route") => match read_body(session).await {
                Some(body) => route_dry_run(&rt, session, body),
                None => error(400, "could not read the request body", "invalid_request_error", "invalid_request"),
            },
            ("POST", p) if p.starts_with("/admin/upstreams/") => {
                let rest = &p["/admin/upstreams/".len()..];
                let (name, action) = rest.rsplit_once('/').unwrap_or((rest, ""));
                let Some(up) = rt.upstreams.iter().find(|u| u.name() == name) else {
                    return error(404, &format!("no upstream named `{name}`"), "invalid_request_error", "not_found");
                };
                match action {
                    "drain" => up.health.set_drained(true),
                    "enable" => up.health.set_drained(false),
                    _ => return error(404, "use .../drain or .../enable", "invalid_request_error", "not_found"),
                }
                log::warn!("admin: upstream {name} {}", if up.health.is_drained() { "drained" } else { "enabled" });
                ok_json(upstream_json(up))
            }
            (_, "/metrics" | "/admin/upstreams" | "/admin/config" | "/admin/reload" | "/admin/route") => {
                error(405, "method not allowed for this path", "invalid_request_error", "method_not_allowed")
            }
            _ => error(404, "no such admin endpoint", "invalid_request_error", "not_found"),
        }
    }
}

/// The key in `Bearer KEY`, or the password of `Basic base64(user:KEY)`
/// (the user name is not checked).
fn presented_key(value: &str) -> Option<String> {
    use base64::Engine;
    if let Some(k) = value.strip_prefix("Bearer ") {
        return Some(k.to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, key)| key.to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn read_body(session: &mut ServerSession) -> Option<Bytes> {
    let mut buf = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(c)) => {
                buf.extend_from_slice(&c);
                if buf.len() > 1 << 20 {
                    return None;
                }
            }
            Ok(None) => return Some(Bytes::from(buf)),
            Err(_) => return None,
        }
    }
}

fn upstream_json(up: &Upstream) -> Value {
    let now = now_ms();
    let (requests, failures) = up.health.counts();
    json!({
        "name": up.name(),
        "state": up.state_name(now),
        "healthy": up.health.is_healthy(),
        "drained": up.health.is_drained(),
        "enabled": up.cfg.enabled,
        "circuit": up.health.breaker.state(now).as_str(),
        "cooldown_ms": up.health.breaker.cooldown_left(now),
        "in_flight": up.health.in_flight(),
        "requests": requests,
        "failures": failures,
        "last_error": up.health.last_error(),
    })
}

fn upstreams_json(rt: &Runtime) -> Value {
    json!({"upstreams": rt.upstreams.iter().map(upstream_json).collect::<Vec<_>>()})
}

/// The effective config, secrets replaced by `*****`.
fn config_json(c: &Config) -> Value {
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let upstreams: serde_json::Map<String, Value> = c
        .upstreams
        .iter()
        .map(|u| {
            let scheme = if u.tls { "https" } else { "http" };
            (
                u.name.clone(),
                json!({
                    "base_url": format!("{scheme}://{}:{}{}", u.host, u.port, u.base_path),
                    "api_key": u.api_key.as_ref().map(|_| "*****"),
                    "headers": u.headers.iter().map(|(k, _)| (k.as_str().to_string(), Value::from("*****"))).collect::<serde_json::Map<_, _>>(),
                    "connect_timeout_s": secs(u.connect_timeout),
                    "response_timeout_s": secs(u.response_timeout),
                    "first_token_timeout_s": secs(u.first_token_timeout),
                    "idle_timeout_s": secs(u.idle_timeout),
                    "retry_on": u.retry_on,
                    "health_check_path": u.health_path,
                    "ca_file": u.ca_file,
                }),
            )
        })
        .collect();
    let models: serde_json::Map<String, Value> = c
        .models
        .iter()
        .map(|(name, targets)| {
            let t: Vec<Value> = targets
                .iter()
                .map(|t| json!({"upstream": c.upstreams[t.upstream].name, "model": t.model, "priority": t.priority, "weight": t.weight}))
                .collect();
            (name.clone(), Value::from(t))
        })
        .collect();
    json!({
        "listen": c.listen,
        "admin": c.admin.as_ref().map(|a| json!({"listen": a.listen, "api_key": "*****"})),
        "auth": c.auth.as_ref().map(|keys| keys.iter().map(|k| json!({"name": k.name, "key": "*****", "models": k.models, "rpm": k.rpm})).collect::<Vec<_>>()),
        "upstreams": upstreams,
        "models": models,
        "retry": {"on_status": c.retry.on_status, "max_attempts": c.retry.max_attempts, "total_timeout_s": secs(c.retry.total_timeout)},
        "health_check": {"enabled": c.health_check.enabled, "interval_s": secs(c.health_check.interval), "timeout_s": secs(c.health_check.timeout),
            "path": c.health_check.path, "unhealthy_after": c.health_check.unhealthy_after, "healthy_after": c.health_check.healthy_after,
            "cooldown_s": secs(c.health_check.cooldown), "max_cooldown_s": secs(c.health_check.max_cooldown)},
        "limits": {"max_body_bytes": c.limits.max_body_bytes},
        "server": {"threads": c.server.threads, "grace_period_seconds": c.server.grace_period_seconds},
        "state": match &c.redis {
            Some(r) => json!({"backend": "redis", "url": crate::limits::redis::shown(&r.url), "prefix": r.prefix,
                "on_error": match r.on_error { crate::config::OnError::Allow => "allow", crate::config::OnError::Deny => "deny" },
                "timeout_s": secs(r.timeout)}),
            None => json!({"backend": "local", "path": c.state_path}),
        },
    })
}

/// Which targets a request would try now, in order, and why — without calling any
/// upstream. Inside a tier the order is one weighted-random draw.
fn route_dry_run(rt: &Runtime, session: &ServerSession, body: Bytes) -> (u16, &'static str, Bytes) {
    let parsed = match ParsedBody::parse(body) {
        Ok(p) => p,
        Err(m) => return error(400, &m, "invalid_request_error", "invalid_request"),
    };
    let Some(route) = rt.models.get(&parsed.model) else {
        return error(
            404,
            &format!("the model `{}` does not exist", parsed.model),
            "invalid_request_error",
            "model_not_found",
        );
    };
    let key_name = session
        .req_header()
        .headers
        .get("x-llmgate-key-name")
        .and_then(|v| v.to_str().ok());
    let allowed = match (key_name, &rt.keys) {
        (Some(name), Some(keys)) => keys
            .values()
            .find(|k| &*k.name == name)
            .map(|k| k.may_use(&parsed.model)),
        _ => Some(true),
    };
    let now = now_ms();
    let mut tried = crate::routing::TriedSet::default();
    let mut order = Vec::new();
    let now_s = crate::limits::quota::now_s();
    let used_up = |t: &crate::routing::Target| t.quota.as_ref().and_then(|q| q.used_up(now_s));
    for (i, t) in route.targets.iter().enumerate() {
        if rt.upstreams[t.upstream].out_of_rotation().is_some() || used_up(t).is_some() {
            tried.insert(i);
        }
    }
    let mut rng = fastrand::Rng::new();
    while let Some(i) = route.next(
        tried,
        |t| rt.upstreams[t.upstream].health.usable(now),
        &mut rng,
    ) {
        tried.insert(i);
        let t = &route.targets[i];
        let up = &rt.upstreams[t.upstream];
        let why = if up.health.usable(now) {
            "usable"
        } else {
            "not usable: tried only because nothing better is left (fail open)"
        };
        order.push(json!({"upstream": up.name(), "model": t.model, "priority": t.priority, "weight": t.weight, "state": up.state_name(now), "why": why, "quota": quota_state(t, now_s)}));
    }
    let skipped: Vec<Value> = route
        .targets
        .iter()
        .filter_map(|t| {
            let up = &rt.upstreams[t.upstream];
            let why = match (up.out_of_rotation(), used_up(t)) {
                (Some(why), _) => why.to_string(),
                (None, Some(_)) => "quota used up".to_string(),
                (None, None) => return None,
            };
            Some(json!({"upstream": up.name(), "model": t.model, "why": why, "quota": quota_state(t, now_s)}))
        })
        .collect();
    let max = rt
        .config
        .retry
        .max_attempts
        .map_or(order.len(), |m| (m as usize).min(order.len()));
    order.truncate(max);
    ok_json(
        json!({"model": parsed.model, "key_allowed": allowed, "targets": order, "skipped": skipped}),
    )
}

/// A target's quota: limits, what is used, the next reset (`null`: no quota).
fn quota_state(t: &crate::routing::Target, now_s: u64) -> Value {
    let Some(q) = &t.quota else {
        return Value::Null;
    };
    let (requests, tokens, next) = q.state(now_s);
    let reset_at = next
        .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s as i64, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    json!({
        "requests": {"limit": q.cfg.requests, "used": requests},
        "tokens": {"limit": q.cfg.tokens, "used": tokens},
        "next_reset": reset_at,
    })
}
