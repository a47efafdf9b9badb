//! Hot reload: re-read the config file, build a new runtime to the side (keeping
//! health, breaker state and connection pools of upstreams that stay), then swap
//! it in whole. A failed build keeps the old runtime serving. In-flight requests
//! finish on the snapshot they started with.

use crate::config::{self, Config, Problems};
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
    /// The last reloads, newest last (for the status page).
    pub history: std::sync::Mutex<std::collections::VecDeque<ReloadEvent>>,
}

/// One reload, as the status page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadEvent {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub ok: bool,
    /// Problems when refused; settings not applied when accepted.
    pub details: Vec<String>,
}

const HISTORY: usize = 10;

/// A setting of the new config that did not take effect, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplied {
    pub key: String,
    pub why: &'static str,
}

const RESTART: &str = "takes effect only after a restart or an upgrade (llmgate -u, then SIGQUIT)";

/// The keys whose new values a running process cannot take: its sockets,
/// threads, process files and log target are set up once.
fn restart_only(old: &Config, new: &Config) -> Vec<NotApplied> {
    let mut out = Vec::new();
    let mut check = |key: &str, changed: bool| {
        if changed {
            out.push(NotApplied {
                key: key.to_string(),
                why: RESTART,
            });
        }
    };
    check("listen", old.listen != new.listen);
    let (ot, nt) = (old.tls.as_ref(), new.tls.as_ref());
    check("tls.listen", ot.map(|t| &t.listen) != nt.map(|t| &t.listen));
    check("tls.h2", ot.map(|t| t.h2) != nt.map(|t| t.h2));
    check("server.h2c", old.server.h2c != new.server.h2c);
    // Which front end serves the cleartext listeners is chosen at start.
    let edge = |c: &Config| {
        !c.routes.is_empty() || c.server.h2c || c.tls.as_ref().is_some_and(|t| t.redirect_http)
    };
    check(
        "routes (cleartext listeners' front end)",
        edge(old) != edge(new),
    );
    check(
        "admin.listen",
        old.admin.as_ref().map(|a| &a.listen) != new.admin.as_ref().map(|a| &a.listen),
    );
    let (o, n) = (&old.server, &new.server);
    check("server.threads", o.threads != n.threads);
    check("server.work_stealing", o.work_stealing != n.work_stealing);
    check(
        "server.grace_period_seconds",
        o.grace_period_seconds != n.grace_period_seconds,
    );
    check(
        "server.graceful_shutdown_timeout_seconds",
        o.graceful_shutdown_timeout_seconds != n.graceful_shutdown_timeout_seconds,
    );
    check(
        "server.upstream_keepalive_pool_size",
        o.upstream_keepalive_pool_size != n.upstream_keepalive_pool_size,
    );
    check("server.pid_file", o.pid_file != n.pid_file);
    check("server.upgrade_sock", o.upgrade_sock != n.upgrade_sock);
    check("log.access", old.access_log != new.access_log);
    check("state.path", old.state_path != new.state_path);
    check("state (backend redis)", old.redis != new.redis);
    check("usage.log", old.usage_log != new.usage_log);
    out
}

impl Reloader {
    /// Reload now; on failure the old config keeps serving and the problems
    /// are returned. On success: the settings that did not take effect.
    pub fn reload(&self) -> Result<Vec<NotApplied>, Problems> {
        let result = self.reload_now();
        let details = match &result {
            Ok(n) => n
                .iter()
                .map(|n| format!("`{}` not applied: {}", n.key, n.why))
                .collect(),
            Err(problems) => problems.lines(),
        };
        if let Ok(mut h) = self.history.lock() {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(ReloadEvent {
                at_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                ok: result.is_ok(),
                details,
            });
        }
        result
    }

    /// The last reloads, oldest first.
    pub fn history(&self) -> Vec<ReloadEvent> {
        self.history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn reload_now(&self) -> Result<Vec<NotApplied>, Problems> {
        let Some(path) = &self.path else {
            return Err(Problems::whole(
                "this instance runs the built-in demo config: nothing to reload",
            ));
        };
        let cfg = config::load(path).map_err(|e| e.problems)?;
        let old = self.runtime.load_full();
        let mut not_applied = restart_only(&old.config, &cfg);
        if cfg.log_level != old.config.log_level {
            if std::env::var_os("RUST_LOG").is_some() {
                not_applied.push(NotApplied {
                    key: "log.level".into(),
                    why: "the RUST_LOG environment variable is set and wins",
                });
            } else {
                log::set_max_level(level_of(cfg.log_level.as_deref()));
            }
        }
        let new = Runtime::build(cfg, &self.connector_opts, Some(&old))?;
        self.runtime.store(Arc::new(new));
        log::info!(
            "reload: configuration from {} is now active",
            path.display()
        );
        for n in &not_applied {
            log::warn!("reload: `{}` changed but {}", n.key, n.why);
        }
        Ok(not_applied)
    }
}

/// `log.level` as a filter (`info` when unset; validated at load).
pub fn level_of(level: Option<&str>) -> log::LevelFilter {
    level
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Info)
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
                    if let Err(problems) = self.reloader.reload().map(|_| ()) {
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
