//! File format -> validated model. Every problem is collected (not just the first)
//! as `key.path: what is wrong`; no message ever contains a secret value.

use super::file::*;
use super::issues::{Issues, Problems};
use super::model::*;
use super::values::{duration, health_path, parse_byte_size, statuses};
use crate::secret::Secret;
use http::HeaderName;
use std::collections::HashSet;
use std::time::Duration;

/// `retry.backoff`: like [`duration`] but zero (the default) means off, and
/// anything over 10 s is refused: a pause that long is an outage of its own.
fn backoff(issues: &mut Issues, value: Option<&String>) -> Duration {
    let Some(text) = value else {
        return Duration::ZERO;
    };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d <= Duration::from_secs(10) => d,
        Ok(_) => {
            issues.add("retry.backoff", "must be at most 10s");
            Duration::ZERO
        }
        Err(_) if text.trim() == "0" => Duration::ZERO,
        Err(_) => {
            issues.add(
                "retry.backoff",
                format!("`{text}` is not a duration (use e.g. 50ms, or 0 for none)"),
            );
            Duration::ZERO
        }
    }
}

pub fn validate(file: FileConfig) -> Result<Config, Problems> {
    let mut issues = Issues::default();

    let listen = match file.listen {
        None => vec!["0.0.0.0:8080".to_string()],
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    if listen.is_empty() {
        issues.add("listen", "needs at least one address");
    }
    let mut seen_listen = HashSet::new();
    for (i, l) in listen.iter().enumerate() {
        if l.parse::<std::net::SocketAddr>().is_err() {
            issues.add(
                format!("listen[{i}]"),
                format!("`{l}` is not an IP:port address"),
            );
        }
        if !seen_listen.insert(l.as_str()) {
            issues.add(format!("listen[{i}]"), format!("`{l}` is listed twice"));
        }
    }

    let admin = file.admin.map(|a| {
        if a.listen.parse::<std::net::SocketAddr>().is_err() {
            issues.add(
                "admin.listen",
                format!("`{}` is not an IP:port address", a.listen),
            );
        }
        if seen_listen.contains(a.listen.as_str()) {
            issues.add("admin.listen", "is also a main listen address");
        }
        if a.api_key.len() < 8 {
            issues.add("admin.api_key", "must be at least 8 characters");
        }
        AdminConfig {
            listen: a.listen,
            api_key: Secret::new(a.api_key),
        }
    });

    let retry_file = file.retry;
    let default_on_status = match retry_file.as_ref().and_then(|r| r.on_status.clone()) {
        Some(list) => {
            statuses(&mut issues, "retry.on_status", &list);
            list
        }
        None => DEFAULT_RETRY_ON.to_vec(),
    };

    let hc = file.health_check;
    let global_health_path = hc
        .as_ref()
        .and_then(|h| h.path.as_deref())
        .unwrap_or("/models");
    let global_health_path = health_path(&mut issues, "health_check.path", global_health_path);

    let (upstreams, index_of) = super::upstreams::upstreams(
        &mut issues,
        file.upstreams,
        &default_on_status,
        &global_health_path,
    );

    let formats: Vec<Format> = upstreams.iter().map(|u| u.format).collect();
    let models = super::targets::models(&mut issues, file.models, &index_of, &formats);

    let auth = super::auth::auth(&mut issues, file.auth, &models);

    let retry = RetryConfig {
        on_status: default_on_status,
        max_attempts: retry_file.as_ref().and_then(|r| r.max_attempts),
        total_timeout: duration(
            &mut issues,
            "retry.total_timeout",
            retry_file.as_ref().and_then(|r| r.total_timeout.as_ref()),
            Duration::from_secs(600),
        ),
        backoff: backoff(
            &mut issues,
            retry_file.as_ref().and_then(|r| r.backoff.as_ref()),
        ),
    };
    if retry.max_attempts == Some(0) {
        issues.add("retry.max_attempts", "must be at least 1");
    }

    let health_check = HealthCheckConfig {
        enabled: hc.as_ref().and_then(|h| h.enabled).unwrap_or(true),
        interval: duration(
            &mut issues,
            "health_check.interval",
            hc.as_ref().and_then(|h| h.interval.as_ref()),
            Duration::from_secs(10),
        ),
        timeout: duration(
            &mut issues,
            "health_check.timeout",
            hc.as_ref().and_then(|h| h.timeout.as_ref()),
            Duration::from_secs(2),
        ),
        path: global_health_path,
        cooldown: duration(
            &mut issues,
            "health_check.cooldown",
            hc.as_ref().and_then(|h| h.cooldown.as_ref()),
            Duration::from_secs(2),
        ),
        max_cooldown: duration(
            &mut issues,
            "health_check.max_cooldown",
            hc.as_ref().and_then(|h| h.max_cooldown.as_ref()),
            Duration::from_secs(60),
        ),
        unhealthy_after: hc.as_ref().and_then(|h| h.unhealthy_after).unwrap_or(2),
        healthy_after: hc.as_ref().and_then(|h| h.healthy_after).unwrap_or(1),
    };
    if health_check.unhealthy_after == 0 {
        issues.add("health_check.unhealthy_after", "must be at least 1");
    }
    if health_check.healthy_after == 0 {
        issues.add("health_check.healthy_after", "must be at least 1");
    }

    let mut size = |key: &str, value: Option<ByteSize>, default: u64| -> u64 {
        let n = match value {
            None => default,
            Some(ByteSize::Number(n)) => n,
            Some(ByteSize::Text(t)) => parse_byte_size(&t).unwrap_or_else(|| {
                issues.add(key, format!("`{t}` is not a size (use e.g. 32MiB, 512KB)"));
                default
            }),
        };
        if n == 0 {
            issues.add(key, "must be greater than zero");
        }
        n
    };
    let limits = file.limits;
    let max_body_bytes = size(
        "limits.max_body_bytes",
        limits.as_ref().and_then(|l| l.max_body_bytes.clone()),
        32 << 20,
    );
    let max_header_bytes = size(
        "limits.max_header_bytes",
        limits.as_ref().and_then(|l| l.max_header_bytes.clone()),
        64 << 10,
    );
    let header_timeout = duration(
        &mut issues,
        "limits.header_timeout",
        limits.as_ref().and_then(|l| l.header_timeout.as_ref()),
        Duration::from_secs(10),
    );
    let body_timeout = duration(
        &mut issues,
        "limits.body_timeout",
        limits.as_ref().and_then(|l| l.body_timeout.as_ref()),
        Duration::from_secs(30),
    );
    let body_total_timeout = duration(
        &mut issues,
        "limits.body_total_timeout",
        limits.as_ref().and_then(|l| l.body_total_timeout.as_ref()),
        Duration::from_secs(300),
    );

    let usage_log = match file.usage.and_then(|u| u.log) {
        None => None,
        Some(l) if l == "off" => None,
        Some(l) if l.starts_with('/') => Some(l),
        Some(l) => {
            issues.add(
                "usage.log",
                format!("`{l}` is neither `off` nor an absolute path"),
            );
            None
        }
    };
    let (state_path, redis) = super::state::state(&mut issues, file.state);
    let tls = super::edge::tls(&mut issues, file.tls, &listen);
    let routes = super::edge::routes(
        &mut issues,
        file.routes,
        &super::edge::HealthDefaults {
            enabled: health_check.enabled,
            interval: health_check.interval,
            timeout: health_check.timeout,
            unhealthy_after: health_check.unhealthy_after,
            healthy_after: health_check.healthy_after,
        },
    );

    let sticky = match file.sticky {
        None => None,
        Some(st) => {
            let header = match st
                .header
                .as_deref()
                .map(|h| HeaderName::from_bytes(h.as_bytes()))
            {
                None => None,
                Some(Ok(h)) => Some(h.as_str().to_string()),
                Some(Err(_)) => {
                    issues.add("sticky.header", "is not a valid header name");
                    None
                }
            };
            if header.is_none() && !st.by_key {
                issues.add("sticky", "needs `header` or `by_key: true`");
            }
            Some(StickyConfig {
                header,
                by_key: st.by_key,
            })
        }
    };

    let s = file.server;
    let server = ServerSettings {
        // nginx's `worker_processes auto`: the CPUs this process may use
        // (affinity and cgroup quota included).
        threads: s.as_ref().and_then(|s| s.threads).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        }),
        work_stealing: s.as_ref().and_then(|s| s.work_stealing).unwrap_or(false),
        grace_period_seconds: s
            .as_ref()
            .and_then(|s| s.grace_period_seconds)
            .unwrap_or(30),
        graceful_shutdown_timeout_seconds: s
            .as_ref()
            .and_then(|s| s.graceful_shutdown_timeout_seconds)
            .unwrap_or(5),
        upstream_keepalive_pool_size: s
            .as_ref()
            .and_then(|s| s.upstream_keepalive_pool_size)
            .unwrap_or(256),
        pid_file: s.as_ref().and_then(|s| s.pid_file.clone()),
        upgrade_sock: s.as_ref().and_then(|s| s.upgrade_sock.clone()),
        h2c: s.as_ref().and_then(|s| s.h2c).unwrap_or(false),
    };
    if server.threads == 0 {
        issues.add("server.threads", "must be at least 1");
    }

    let access_log = match file.log.as_ref().and_then(|l| l.access.as_deref()) {
        None | Some("stdout") => AccessLogTarget::Stdout,
        Some("off") => AccessLogTarget::Off,
        Some(path) if path.starts_with('/') => AccessLogTarget::File(path.to_string()),
        Some(other) => {
            issues.add(
                "log.access",
                format!("`{other}` is not stdout, off or an absolute file path"),
            );
            AccessLogTarget::Stdout
        }
    };
    let log_level = file.log.and_then(|l| l.level);
    if let Some(l) = &log_level {
        if l.parse::<log::LevelFilter>().is_err() {
            issues.add(
                "log.level",
                format!("`{l}` is not one of off, error, warn, info, debug, trace"),
            );
        }
    }

    if !issues.0.is_empty() {
        return Err(Problems(issues.0));
    }
    Ok(Config {
        listen,
        tls,
        routes,
        admin,
        auth,
        upstreams,
        models,
        retry,
        sticky,
        health_check,
        limits: LimitsConfig {
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
            header_timeout,
            body_timeout,
            body_total_timeout,
        },
        state_path,
        redis,
        usage_log,
        server,
        log_level,
        access_log,
    })
}
