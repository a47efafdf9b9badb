//! `Runtime`: everything the request path needs, built from a validated `Config`
//! and held in an `ArcSwap`. A request pins the snapshot it started with.

use crate::clock::now_ms;
use crate::config::{Config, Problems};
use crate::limits::KeyLimits;
use crate::routing::ModelRoute;
use crate::telemetry::ModelSeries;
use crate::upstream::circuit::BreakerPolicy;
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use pingora::connectors::ConnectorOptions;
use pingora::connectors::TransportConnector as Connector;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub type SharedRuntime = Arc<ArcSwap<Runtime>>;

pub struct ClientKey {
    pub name: Arc<str>,
    /// `None`: every logical model.
    pub models: Option<HashSet<String>>,
    /// `rpm`/`tpm`; `None`: unlimited.
    pub limits: Option<KeyLimits>,
    /// Requests authenticated with this key since the config was loaded.
    pub requests: std::sync::atomic::AtomicU64,
}

impl ClientKey {
    pub fn may_use(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.contains(model))
    }
}

pub struct Runtime {
    pub config: Config,
    pub upstreams: Vec<Upstream>,
    pub models: HashMap<String, Arc<ModelRoute>>,
    /// Client key (exposed) -> key info. `None`: authentication disabled.
    pub keys: Option<HashMap<String, ClientKey>>,
    pub breaker: BreakerPolicy,
    /// Metric series of requests for no configured model (`model="-"`).
    pub unrouted: ModelSeries,
    /// `state: {backend: redis}`: the shared store (kept across reloads).
    pub store: Option<Arc<crate::limits::redis::Store>>,
    /// Plain routes and AI hosts on the edge listeners.
    pub routes: crate::routes::RouteTable,
    /// One connector (and pool) per CA file; `None`: system roots.
    connectors: HashMap<Option<String>, Arc<Connector>>,
}

impl Runtime {
    /// Build a snapshot. `previous` hands over health state of upstreams that keep
    /// their name, so a reload does not reset what the checks learned.
    pub fn build(
        config: Config,
        base: &ConnectorOptions,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, Problems> {
        let mut errors = Vec::new();
        // Connectors own the connection pools: reuse the previous ones so a reload
        // keeps warm connections to upstreams that stay.
        let mut connectors: HashMap<Option<String>, Arc<Connector>> =
            previous.map(|p| p.connectors.clone()).unwrap_or_default();
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for u in &config.upstreams {
            let connector = connectors
                .entry(u.ca_file.clone())
                .or_insert_with(|| {
                    let mut o = base.clone();
                    if u.ca_file.is_some() {
                        o.ca_file = u.ca_file.clone();
                    }
                    Arc::new(Connector::new(Some(o)))
                })
                .clone();
            let health = previous
                .and_then(|p| p.upstreams.iter().find(|x| x.cfg.name == u.name))
                .map(|x| x.health.clone())
                .unwrap_or_default();
            match Upstream::new(
                u.clone(),
                connector,
                health,
                config.server.upstream_keepalive_pool_size,
            ) {
                Ok(up) => upstreams.push(up),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(Problems(errors));
        }
        let models = config
            .models
            .iter()
            .map(|(name, targets)| {
                let mut route = ModelRoute::new(name, targets);
                route.name_targets(|i| config.upstreams.get(i).map_or("", |u| u.name.as_str()));
                if let Some(old) = previous.and_then(|p| p.models.get(name)) {
                    route.carry_quotas(old);
                }
                (name.clone(), Arc::new(route))
            })
            .collect();
        let keys = config.auth.as_ref().map(|keys| {
            keys.iter()
                .map(|k| {
                    // A reload keeps a key's count and limit state (by name),
                    // like upstreams' health.
                    let old = previous
                        .and_then(|p| p.keys.as_ref())
                        .and_then(|old| old.values().find(|o| *o.name == *k.name));
                    let info = ClientKey {
                        name: Arc::from(k.name.as_str()),
                        models: k.models.as_ref().map(|m| m.iter().cloned().collect()),
                        limits: KeyLimits::new(k.rpm, k.tpm, old.and_then(|o| o.limits.as_ref()))
                            .map(|mut l| {
                                l.cells = config.redis.as_ref().map(|r| {
                                    Arc::new(crate::limits::CellKeys::new(&r.prefix, &k.name))
                                });
                                l
                            }),
                        requests: std::sync::atomic::AtomicU64::new(
                            old.map_or(0, |o| {
                                o.requests.load(std::sync::atomic::Ordering::Relaxed)
                            }),
                        ),
                    };
                    (k.key.expose().to_string(), info)
                })
                .collect()
        });
        let hc = &config.health_check;
        let breaker = BreakerPolicy {
            failures: hc.unhealthy_after,
            cooldown: hc.cooldown,
            max_cooldown: hc.max_cooldown,
        };
        let routes = crate::routes::RouteTable::build(&config.routes, previous.map(|p| &p.routes));
        Ok(Runtime {
            routes,
            config,
            upstreams,
            models,
            unrouted: ModelSeries::new(0),
            keys,
            breaker,
            store: previous.and_then(|p| p.store.clone()),
            connectors,
        })
    }

    /// At least one upstream is usable (for `GET /health`).
    pub fn any_healthy(&self) -> bool {
        let now = now_ms();
        self.upstreams
            .iter()
            .any(|u| u.out_of_rotation().is_none() && u.health.usable(now))
    }
}
