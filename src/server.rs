//! Build the Pingora server from a validated config and run it.

use crate::access_log;
use crate::admin::api::AdminApi;
use crate::admin::notify::Notifier;
use crate::admin::reload::{Reloader, Signals};
use crate::config::Config;
use crate::downstream::{AiListener, Guarded};
use crate::edge::Edge;
use crate::health_checks::HealthChecker;
use crate::limits::usage::UsageMeter;
use crate::persist::Saver;
use crate::proxy::Gateway;
use crate::state::{Runtime, SharedRuntime};
use crate::telemetry::Metrics;
use arc_swap::ArcSwap;
use pingora::connectors::ConnectorOptions;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::proxy::{HttpProxy, ProxyHttp};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::path::PathBuf;
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
        work_stealing: s.work_stealing,
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

/// A listener served by Pingora's HTTP server (admin, edge).
fn listener(addr: &str) -> ListenerConfig {
    // A 4 KiB write buffer lets a typical JSON answer leave with its header in one
    // send (Pingora's default, 1460 bytes, splits anything larger). No read
    // buffer: Pingora reads heads and bodies into buffers of its own, so the
    // default 64 KiB one per connection only added a copy.
    ListenerConfig::tcp(addr).l4_buffer(L4BufferSettings::new(0, 4096))
}

/// A Pingora proxy service (the edge) whose client
/// connections get the header deadline; `h2c`: cleartext clients may speak
/// h2 with prior knowledge.
fn guarded<SV>(
    conf: &Arc<ServerConf>,
    inner: SV,
    name: &str,
    runtime: &SharedRuntime,
    h2c: bool,
) -> Service<Guarded<HttpProxy<SV>>>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let mut proxy = pingora::proxy::http_proxy(conf, inner);
    let mut opts = pingora::apps::HttpServerOptions::default();
    opts.h2c = h2c;
    proxy.server_options = Some(opts);
    proxy.h2_options = Some(h2_limits());
    let app = Guarded {
        app: Arc::new(proxy),
        runtime: runtime.clone(),
    };
    Service::new(name.to_string(), app)
}

/// h2 limits for clients: 128 concurrent streams per connection (nginx's
/// `http2_max_concurrent_streams`), a 64 KiB header list (the default
/// `limits.max_header_bytes`), and bounds on reset streams so a flood of
/// resets (CVE-2023-44487 "rapid reset") ends the connection instead of
/// pinning a core.
fn h2_limits() -> pingora::protocols::http::v2::server::H2Options {
    let mut b = pingora::protocols::http::v2::server::H2Options::new();
    b.max_concurrent_streams(128)
        .max_header_list_size(64 << 10)
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(Some(256));
    b
}

/// Start listeners and background services; never returns. `path`: the config
/// file, re-read on reload (`None` for the built-in demo config).
pub fn run(cfg: Config, path: Option<PathBuf>, flags: RunFlags) -> Result<(), String> {
    if cfg.auth.is_none() {
        log::warn!("config: no `auth` section: any client may use the gateway");
    }
    let conf = server_conf(&cfg, flags);
    let connector_opts = ConnectorOptions::from_server_conf(&conf);
    let listen = cfg.listen.clone();
    let pid_file = cfg.server.pid_file.clone();
    let state_path = cfg.state_path.clone();
    let admin = cfg.admin.clone();
    let tls = cfg.tls.clone();
    let routes_empty = cfg.routes.is_empty();
    let h2c = cfg.server.h2c;
    let redirect_http = cfg.tls.as_ref().is_some_and(|t| t.redirect_http);
    let reopen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (access, writer) = access_log::new(cfg.access_log.clone(), reopen.clone());
    let (usage, usage_writer) = UsageMeter::new(cfg.usage_log.clone(), reopen.clone());
    let store = match &cfg.redis {
        Some(r) => Some(crate::limits::redis::Store::new(r)?),
        None => None,
    };
    let mut runtime = Runtime::build(cfg, &connector_opts, None).map_err(|e| e.join("\n"))?;
    runtime.store = store.clone();
    if let Some(dir) = &state_path {
        crate::persist::load_at_start(dir, &runtime, &usage);
    }
    let shared: SharedRuntime = Arc::new(ArcSwap::from_pointee(runtime));
    let metrics = Arc::new(Metrics::new().map_err(|e| format!("metrics: {e}"))?);
    let reloader = Arc::new(Reloader {
        path,
        runtime: shared.clone(),
        connector_opts,
        history: Default::default(),
    });

    let opt = Opt {
        upgrade: flags.upgrade,
        daemon: flags.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let metrics_for_routes = metrics.clone();
    let gateway = Gateway {
        runtime: shared.clone(),
        metrics: metrics.clone(),
        access_log: Arc::new(access),
        usage: usage.clone(),
    };
    // Cleartext listeners keep the fast HTTP/1.1 front end while they serve
    // the AI gateway alone; plain routes, h2c or a redirect to https put them
    // on Pingora's server with the TLS listeners.
    let edge_cleartext = !routes_empty || h2c || redirect_http;
    if let Some(t) = &tls {
        let mut svc = guarded(
            &server.configuration,
            Edge {
                gateway: gateway.clone(),
                https: true,
            },
            "llmgate tls",
            &shared,
            false,
        );
        for addr in &t.listen {
            let settings = crate::edge::tls::settings(&shared, t.h2)
                .map_err(|e| format!("tls listener {addr}: {e}"))?;
            svc.add_listener(listener(addr).tls(settings));
            log::info!("accepting on {addr} (TLS)");
        }
        server.add_service(svc);
        log::info!("TLS listening on {}", t.listen.join(", "));
    }
    if edge_cleartext {
        let mut svc = guarded(
            &server.configuration,
            Edge {
                gateway,
                https: false,
            },
            "llmgate edge",
            &shared,
            h2c,
        );
        for addr in &listen {
            svc.add_listener(listener(addr));
            log::info!("accepting on {addr} (Pingora's HTTP server: routes, h2c or redirect)");
        }
        server.add_service(svc);
    } else {
        server.add_service(AiListener::new(listen.clone(), gateway));
    }
    if let Some(a) = admin {
        let api = AdminApi {
            runtime: shared.clone(),
            reloader: reloader.clone(),
            metrics,
            api_key: a.api_key,
            usage: usage.clone(),
        };
        let app = Guarded {
            app: Arc::new(pingora::apps::http_app::HttpServer::new_app(api)),
            runtime: shared.clone(),
        };
        let mut svc = Service::new("llmgate admin".to_string(), app);
        svc.add_listener(listener(&a.listen));
        server.add_service(svc);
        log::info!("admin API on {}", a.listen);
    }
    if let Some(w) = writer {
        server.add_service(background_service("access log", w));
    }
    server.add_service(background_service("usage", usage_writer));
    server.add_service(background_service(
        "health checks",
        HealthChecker {
            runtime: shared.clone(),
        },
    ));
    server.add_service(background_service(
        "route health checks",
        crate::health_checks::RouteChecker {
            runtime: shared.clone(),
            metrics: metrics_for_routes,
        },
    ));
    server.add_service(background_service("signals", Signals { reloader, reopen }));
    if let Some(dir) = state_path {
        server.add_service(background_service(
            "state",
            Saver {
                dir,
                runtime: shared.clone(),
                usage: usage.clone(),
            },
        ));
    }
    if let Some(store) = store {
        server.add_service(background_service(
            "state flush",
            crate::persist::Flusher {
                store,
                runtime: shared.clone(),
            },
        ));
    }
    server.add_service(background_service(
        "systemd notify",
        Notifier {
            listen: listen.clone(),
            upgraded: flags.upgrade,
            pid_file,
        },
    ));
    log::info!("llmgate listening on {}", listen.join(", "));
    server.run_forever()
}
