//! The active health checks as a Pingora background service: each round reads
//! the current runtime, so a reload changes what is checked.

use crate::state::SharedRuntime;
use crate::upstream::health::check;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Checks every upstream that has a health path, every `health_check.interval`.
pub struct HealthChecker {
    pub runtime: SharedRuntime,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let rt = self.runtime.load_full();
            let hc = rt.config.health_check.clone();
            if hc.enabled {
                let mut set = tokio::task::JoinSet::new();
                for (i, up) in rt.upstreams.iter().enumerate() {
                    if up.cfg.health_path.is_some() && up.cfg.enabled {
                        let rt = rt.clone();
                        set.spawn(async move {
                            let up = &rt.upstreams[i];
                            let res = check(up, hc.timeout).await;
                            let flip = up.health.observe(
                                res.is_ok(),
                                res.err(),
                                hc.unhealthy_after,
                                hc.healthy_after,
                            );
                            match flip {
                                Some(true) => log::warn!("upstream {} is healthy again", up.name()),
                                Some(false) => log::warn!(
                                    "upstream {} marked unhealthy: {}",
                                    up.name(),
                                    up.health.last_error().unwrap_or_default()
                                ),
                                None => {}
                            }
                        });
                    }
                }
                while set.join_next().await.is_some() {}
            }
            tokio::select! {
                _ = tokio::time::sleep(hc.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Runs the plain routes' backend checks (Pingora's, set on each tier's
/// `LoadBalancer` by `routes.rs`), each route at its own interval, and logs
/// every backend that goes down or comes back.
pub struct RouteChecker {
    pub runtime: SharedRuntime,
    pub metrics: std::sync::Arc<crate::telemetry::Metrics>,
}

#[async_trait]
impl BackgroundService for RouteChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut known: std::collections::HashMap<(String, std::net::SocketAddr), bool> =
            Default::default();
        loop {
            let rt = self.runtime.load_full();
            let now = std::time::Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for route in rt.routes.iter() {
                let Some(h) = &route.tiers.health else {
                    continue;
                };
                let due = {
                    let mut last = route
                        .tiers
                        .last_check
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let due = last.is_none_or(|t| now.duration_since(t) >= h.interval);
                    if due {
                        *last = Some(now);
                    }
                    due
                };
                if due {
                    let route = route.clone();
                    set.spawn(async move { route.tiers.check().await });
                }
            }
            while set.join_next().await.is_some() {}
            self.metrics.backend_healthy.reset();
            for route in rt.routes.iter() {
                for (addr, up) in route.tiers.states() {
                    self.metrics
                        .backend_healthy
                        .with_label_values(&[route.label.as_str(), &addr.to_string()])
                        .set(i64::from(up));
                    let before = known.insert((route.label.clone(), addr), up);
                    match (before, up) {
                        (Some(true) | None, false) => {
                            log::warn!("route {}: backend {addr} marked down", route.label)
                        }
                        (Some(false), true) => {
                            log::warn!("route {}: backend {addr} is up again", route.label)
                        }
                        _ => {}
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
