//! Build the Pingora server from a validated config and run it.

use crate::config::Config;
use crate::proxy::Gateway;
use crate::state::{Runtime, SharedRuntime};
use crate::upstream::health::HealthChecker;
use arc_swap::ArcSwap;
use pingora::connectors::ConnectorOptions;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use std::sync::Arc;

/// Process-level flags handed to Pingora.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunFlags {
    pub upgrade: bool,
    pub daemon: bool,
}

pub fn server_conf(cfg: &Config, flags: RunFlags) -> ServerConf {
    let s = &cfg.server;
    let mut conf = ServerConf {
        threads: s.threads,
        daemon: flags.daemon,
        grace_period_seconds: Some(s.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout_seconds),
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
        ..ServerConf::default()
    };
    if let Some(p) = &s.pid_file {
        conf.pid_file = p.clone();
    }
    if let Some(p) = &s.upgrade_sock {
        conf.upgrade_sock = p.clone();
    }
    conf
}

/// Start listeners and background services; never returns.
pub fn run(cfg: Config, flags: RunFlags) -> Result<(), String> {
    for key in &cfg.unenforced {
        log::warn!("config: `{key}` is accepted but not enforced by this build");
    }
    if cfg.auth.is_none() {
        log::warn!("config: no `auth` section: any client may use the gateway");
    }
    if cfg.admin.is_some() {
        log::warn!("config: `admin` is accepted but the admin listener is not part of this build");
    }
    let conf = server_conf(&cfg, flags);
    let connector_opts = ConnectorOptions::from_server_conf(&conf);
    let listen = cfg.listen.clone();
    let runtime = Runtime::build(cfg, &connector_opts, None).map_err(|e| e.join("\n"))?;
    let shared: SharedRuntime = Arc::new(ArcSwap::from_pointee(runtime));

    let opt = Opt {
        upgrade: flags.upgrade,
        daemon: flags.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway {
            runtime: shared.clone(),
        },
        "llmgate",
    );
    for addr in &listen {
        // A 4 KiB write buffer lets a typical JSON answer leave with its header in
        // one send (Pingora's default, 1460 bytes, splits anything larger).
        let cfg =
            ListenerConfig::tcp(addr.as_str()).l4_buffer(L4BufferSettings::new(64 * 1024, 4096));
        proxy.add_listener(cfg);
    }
    server.add_service(proxy);
    server.add_service(background_service(
        "health checks",
        HealthChecker { runtime: shared },
    ));
    log::info!("llmgate listening on {}", listen.join(", "));
    server.run_forever()
}
