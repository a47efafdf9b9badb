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
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The signals a daemon gets besides Pingora's own (SIGTERM graceful stop,
/// SIGINT fast stop, SIGQUIT graceful upgrade): SIGHUP reloads the config,
/// SIGUSR1 reopens log files (logrotate), SIGUSR2 and SIGWINCH are logged
/// and ignored (nginx gives them upgrade and worker meanings that do not
/// apply here; by default they would end or be lost on the process).
pub struct Signals {
    pub reloader: Arc<Reloader>,
    /// Bumped on SIGUSR1; the log writers reopen their files when it changes.
    pub reopen: Arc<AtomicU64>,
}

#[async_trait]
impl BackgroundService for Signals {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut hup), Ok(mut usr1), Ok(mut usr2), Ok(mut winch)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
            signal(SignalKind::user_defined2()),
            signal(SignalKind::window_change()),
        ) else {
            log::error!("cannot listen for signals; reload only through the admin API");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    if let Err(problems) = self.reloader.reload() {
                        log::error!("reload failed, old config still serving: {}", problems.join("; "));
                    }
                }
                _ = usr1.recv() => {
                    self.reopen.fetch_add(1, Ordering::Relaxed);
                    log::info!("SIGUSR1: reopening log files");
                }
                _ = usr2.recv() => log::warn!("SIGUSR2 ignored (upgrade with `llmgate -u` and SIGQUIT)"),
                _ = winch.recv() => log::info!("SIGWINCH ignored"),
                _ = shutdown.changed() => return,
            }
        }
    }
}
