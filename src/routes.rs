//! Plain routes at run time (design.md section 6): which route a request is
//! for, and which backend serves it — one pingora-load-balancing
//! `LoadBalancer<Weighted>` per priority tier, each with Pingora's own health
//! check (HTTP when the route names a `path`, else TCP). The checks are run
//! by `health_checks.rs` at each route's interval; a reload keeps the
//! balancers (and what their checks learned) of routes whose backends did
//! not change.

use crate::config::{BackendConfig, HostMatch, RouteConfig, RouteHealth};
use pingora::http::ResponseHeader;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

type Balancer = LoadBalancer<RoundRobin>;

/// The backends of one route: tiers in priority order.
pub struct Tiers {
    tiers: Vec<Balancer>,
    /// What built them: a reload reuses these tiers when it is unchanged.
    key: (Vec<BackendConfig>, Option<RouteHealth>, bool, String),
    pub health: Option<RouteHealth>,
    /// When the checks last ran (`None`: not yet).
    pub last_check: std::sync::Mutex<Option<Instant>>,
}

impl Tiers {
    fn build(cfg: &RouteConfig) -> Tiers {
        let mut priorities: Vec<u32> = cfg.backends.iter().map(|b| b.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        let tiers = priorities
            .iter()
            .map(|&p| {
                let backends = cfg
                    .backends
                    .iter()
                    .filter(|b| b.priority == p)
                    .map(|b| Backend {
                        addr: pingora::protocols::l4::socket::SocketAddr::Inet(b.socket),
                        weight: b.weight as usize,
                        ext: Default::default(),
                    });
                let discovery = pingora::lb::discovery::Static::new(backends.collect());
                let mut lb = Balancer::from_backends(pingora::lb::Backends::new(discovery));
                if let Some(h) = &cfg.health_check {
                    lb.set_health_check(health_check(cfg, h));
                }
                // Static discovery never waits: this only publishes the set.
                let _ = futures_now(lb.update());
                lb
            })
            .collect();
        Tiers {
            tiers,
            key: key_of(cfg),
            health: cfg.health_check.clone(),
            last_check: std::sync::Mutex::new(None),
        }
    }

    /// A healthy backend not yet tried, from the first tier that has one;
    /// when the checks say every backend is down and none was tried, the
    /// first untried one anyway (a check may lag a recovery).
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let untried = |b: &Backend| b.as_inet().is_some_and(|a| !tried.contains(a));
        for lb in &self.tiers {
            if let Some(b) = lb.select_with(b"", 256, |b, healthy| healthy && untried(b)) {
                return b.as_inet().copied();
            }
        }
        if !tried.is_empty() {
            return None;
        }
        self.tiers
            .iter()
            .flat_map(|lb| {
                lb.backends()
                    .get_backend()
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .find(|b| untried(b))
            .and_then(|b| b.as_inet().copied())
    }

    /// Every backend with whether its checks pass.
    pub fn states(&self) -> Vec<(SocketAddr, bool)> {
        let mut out = Vec::new();
        for lb in &self.tiers {
            for b in lb.backends().get_backend().iter() {
                if let Some(a) = b.as_inet() {
                    out.push((*a, lb.backends().ready(b)));
                }
            }
        }
        out
    }

    /// One pass of every tier's checks.
    pub async fn check(&self) {
        for lb in &self.tiers {
            lb.backends().run_health_check(true).await;
        }
    }
}

fn key_of(cfg: &RouteConfig) -> (Vec<BackendConfig>, Option<RouteHealth>, bool, String) {
    (
        cfg.backends.clone(),
        cfg.health_check.clone(),
        cfg.tls,
        cfg.sni.clone(),
    )
}

fn health_check(
    cfg: &RouteConfig,
    h: &RouteHealth,
) -> Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> {
    match &h.path {
        Some(path) => {
            let host = if cfg.tls {
                cfg.sni.as_str()
            } else {
                "localhost"
            };
            let mut hc = HttpHealthCheck::new(host, cfg.tls);
            if let Ok(mut req) = pingora::http::RequestHeader::build("GET", path.as_bytes(), None) {
                let _ = req.append_header("Host", host);
                let _ = req.append_header("User-Agent", "llmgate-health-check");
                hc.req = req;
            }
            hc.peer_template.options.connection_timeout = Some(h.timeout);
            hc.peer_template.options.read_timeout = Some(h.timeout);
            hc.peer_template.options.ca = None;
            hc.consecutive_failure = h.unhealthy_after as usize;
            hc.consecutive_success = h.healthy_after as usize;
            hc.validator = Some(Box::new(|resp: &ResponseHeader| {
                if resp.status.is_success() {
                    Ok(())
                } else {
                    pingora::Error::e_explain(
                        pingora::ErrorType::CustomCode("unhealthy status", resp.status.as_u16()),
                        "health check",
                    )
                }
            }));
            Box::new(hc)
        }
        None => {
            let mut hc = if cfg.tls {
                TcpHealthCheck::new_tls(&cfg.sni)
            } else {
                TcpHealthCheck::new()
            };
            hc.peer_template.options.connection_timeout = Some(h.timeout);
            hc.consecutive_failure = h.unhealthy_after as usize;
            hc.consecutive_success = h.healthy_after as usize;
            hc
        }
    }
}

/// Poll a future that cannot wait (static discovery) to its end.
fn futures_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// One configured route.
pub struct PlainRoute {
    pub cfg: RouteConfig,
    /// `host/path_prefix` (`*` for any host): the route's name in logs and
    /// metrics.
    pub label: String,
    /// Empty for an `ai: true` route.
    pub tiers: Arc<Tiers>,
    /// `ca_file`'s certificates, the roots TLS backends are verified
    /// against (`None`: the system's).
    pub ca: Option<Arc<pingora::protocols::tls::CaType>>,
}

impl PlainRoute {
    /// A backend as the config writes it (its label in logs and metrics).
    pub fn backend_label(&self, addr: SocketAddr) -> &str {
        self.cfg
            .backends
            .iter()
            .find(|b| b.socket == addr)
            .map_or("-", |b| b.addr.as_str())
    }
}

/// The certificates of a PEM file (checked parseable at config load).
fn load_ca(path: &str) -> Option<Arc<pingora::protocols::tls::CaType>> {
    use pingora::utils::tls::WrappedX509;
    let bytes = std::fs::read(path).ok()?;
    let list: Vec<WrappedX509> = rustls_pemfile::certs(&mut bytes.as_slice())
        .filter_map(Result::ok)
        .filter(|der| x509_parser::parse_x509_certificate(der).is_ok())
        .map(|der| WrappedX509::new(der.to_vec(), pingora::utils::tls::parse_x509))
        .collect();
    (!list.is_empty()).then(|| Arc::from(list.into_boxed_slice()))
}

/// What a request on an edge listener is for.
pub enum Matched<'a> {
    /// The AI gateway's: an `ai: true` route, or no route at all (the core
    /// serves `/v1/*` and `/health` and answers anything else with its
    /// 404 JSON, request id and access-log line included).
    Ai,
    Plain(&'a Arc<PlainRoute>),
}

/// Every route, in matching order: exact hosts, then wildcards (longer
/// suffix first), then host-less; within each, the longest `path_prefix`.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Arc<PlainRoute>>,
}

impl RouteTable {
    pub fn build(cfgs: &[RouteConfig], previous: Option<&RouteTable>) -> RouteTable {
        let mut routes: Vec<Arc<PlainRoute>> = cfgs
            .iter()
            .map(|cfg| {
                let tiers = previous
                    .and_then(|p| p.routes.iter().find(|r| r.tiers.key == key_of(cfg)))
                    .map(|r| r.tiers.clone())
                    .unwrap_or_else(|| Arc::new(Tiers::build(cfg)));
                Arc::new(PlainRoute {
                    ca: cfg.ca_file.as_deref().and_then(load_ca),
                    label: label(cfg),
                    cfg: cfg.clone(),
                    tiers,
                })
            })
            .collect();
        routes.sort_by_key(|r| {
            let suffix = match &r.cfg.host {
                HostMatch::Suffix(s) => s.len(),
                _ => 0,
            };
            (
                r.cfg.host.rank(),
                std::cmp::Reverse(suffix),
                std::cmp::Reverse(r.cfg.path_prefix.len()),
            )
        });
        RouteTable { routes }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<PlainRoute>> {
        self.routes.iter()
    }

    /// The route for `host` (port already removed) and `path`.
    pub fn find(&self, host: &str, path: &str) -> Matched<'_> {
        for r in &self.routes {
            if r.cfg.host.matches(host) && path.starts_with(r.cfg.path_prefix.as_str()) {
                return if r.cfg.ai {
                    Matched::Ai
                } else {
                    Matched::Plain(r)
                };
            }
        }
        Matched::Ai
    }
}

fn label(cfg: &RouteConfig) -> String {
    let host = match &cfg.host {
        HostMatch::Any => "*".to_string(),
        HostMatch::Exact(h) => h.clone(),
        HostMatch::Suffix(s) => format!("*{s}"),
    };
    format!("{host}{}", cfg.path_prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn route(host: HostMatch, prefix: &str, ai: bool, port: u16) -> RouteConfig {
        RouteConfig {
            host,
            path_prefix: prefix.into(),
            ai,
            backends: if ai {
                vec![]
            } else {
                vec![BackendConfig {
                    addr: format!("127.0.0.1:{port}"),
                    socket: SocketAddr::from(([127, 0, 0, 1], port)),
                    weight: 1,
                    priority: 1,
                }]
            },
            tls: false,
            ca_file: None,
            sni: "127.0.0.1".into(),
            health_check: None,
            strip_prefix: false,
            preserve_host: true,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            max_body_bytes: 1,
        }
    }

    fn port_of(m: Matched<'_>) -> Option<u16> {
        match m {
            Matched::Plain(r) => r.cfg.backends.first().map(|b| b.socket.port()),
            Matched::Ai => Some(0),
        }
    }

    #[test]
    fn exact_host_then_wildcard_then_any_and_longest_prefix_wins() {
        let t = RouteTable::build(
            &[
                route(HostMatch::Any, "/", false, 1),
                route(HostMatch::Any, "/api", false, 2),
                route(HostMatch::Suffix(".apps.test".into()), "/", false, 3),
                route(HostMatch::Exact("wiki.apps.test".into()), "/docs", false, 4),
                route(HostMatch::Exact("api.example.com".into()), "/", true, 0),
            ],
            None,
        );
        assert_eq!(port_of(t.find("other", "/x")), Some(1));
        assert_eq!(port_of(t.find("other", "/apiary")), Some(2));
        assert_eq!(port_of(t.find("wiki.apps.test", "/docs/a")), Some(4));
        assert_eq!(port_of(t.find("wiki.apps.test", "/x")), Some(3));
        assert_eq!(port_of(t.find("apps.test", "/x")), Some(1));
        assert_eq!(port_of(t.find("api.example.com", "/anything")), Some(0));
        let none = RouteTable::build(&[route(HostMatch::Exact("a".into()), "/", false, 1)], None);
        assert_eq!(port_of(none.find("b", "/v1/chat/completions")), Some(0));
        assert_eq!(port_of(none.find("b", "/health")), Some(0));
        assert_eq!(port_of(none.find("b", "/other")), Some(0));
    }

    #[test]
    fn tiers_pick_healthy_untried_in_priority_order() {
        let mut cfg = route(HostMatch::Any, "/", false, 1);
        cfg.backends.push(BackendConfig {
            addr: "127.0.0.1:2".into(),
            socket: SocketAddr::from(([127, 0, 0, 1], 2)),
            weight: 1,
            priority: 2,
        });
        let t = Tiers::build(&cfg);
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let b = SocketAddr::from(([127, 0, 0, 1], 2));
        assert_eq!(t.pick(&[]), Some(a));
        assert_eq!(t.pick(&[a]), Some(b));
        assert_eq!(t.pick(&[a, b]), None);
    }
}
