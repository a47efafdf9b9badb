//! Hot reload: re-read the config file, build a new runtime to the side (keeping
//! health, breaker state and connection pools of upstreams that stay), then swap
//! it in whole. A failed build keeps the old runtime serving. In-flight requests
//! finish on the snapshot they started with.

use crate::config;
use crate::state::{Runtime, SharedRuntime};
use async_trait::async_trait;
use pingora::connectors::ConnectorOptions;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Reloader {
    /// `None` for the built-in demo config (nothing to re-read).
    pub path: Option<PathBuf>,
    pub runtime: SharedRuntime,
    pub connector_opts: ConnectorOptions,
}

impl Reloader {
    /// Reload now; on failure the old config keeps serving and the problems are returned.
    pub fn reload(&self) -> Result<(), Vec<String>> {
        let Some(path) = &self.path else {
            return Err(vec![
                "this instance runs the built-in demo config: nothing to reload".into(),
            ]);
        };
        let cfg = config::load(path).map_err(|e| e.problems)?;
        let old = self.runtime.load_full();
        if cfg.listen != old.config.listen {
            log::warn!("reload: `listen` changed; new addresses take effect only after a restart or upgrade");
        }
        let new = Runtime::build(cfg, &self.connector_opts, Some(&old))?;
        self.runtime.store(Arc::new(new));
        log::info!(
            "reload: configuration from {} is now active",
            path.display()
        );
        Ok(())
    }
}

/// Reload on SIGHUP (SIGQUIT is Pingora's graceful upgrade, SIGTERM/SIGINT stop).
pub struct SighupReload(pub Arc<Reloader>);

#[async_trait]
impl BackgroundService for SighupReload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            log::error!("cannot listen for SIGHUP; reload only through the admin API");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    if let Err(problems) = self.0.reload() {
                        log::error!("reload failed, old config still serving: {}", problems.join("; "));
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
