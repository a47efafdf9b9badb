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
