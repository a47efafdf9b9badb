//! One configured provider at run time: its resolved peer, the headers the gateway
//! sets on its behalf, its retry policy and its health.

pub mod circuit;
pub mod exchange;
pub mod h1;
pub mod health;
pub mod io;
pub mod pool;

use crate::config::{Format, Problem, UpstreamConfig};
use crate::telemetry::AttemptSeries;
use h1::Conn;
use health::Health;
use http::HeaderValue;
use io::{ConnectError, Io};
use pingora::connectors::TransportConnector as Connector;
use pingora::upstreams::peer::{HttpPeer, Peer as _};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// How long an idle upstream connection stays in the pool. Kept below common
/// server-side keep-alive limits (nginx: 75 s) so we rarely pick a connection the
/// other side is closing.
pub const POOL_IDLE: Duration = Duration::from_secs(30);

/// Sent to Anthropic upstreams unless their `headers` set another version.
const ANTHROPIC_VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

pub struct Upstream {
    pub cfg: UpstreamConfig,
    /// The name, shared (usage records carry it without a copy).
    pub label: Arc<str>,
    pub peer: HttpPeer,
    /// `Host` header value (host, plus port when not the scheme's default).
    pub authority: HeaderValue,
    /// The key header of the upstream's format (`Authorization: Bearer <key>`,
    /// `x-api-key`, `x-goog-api-key`), the value marked sensitive.
    pub auth: Option<(&'static str, HeaderValue)>,
    pub health: Arc<Health>,
    /// Opens new connections (TCP, TLS); idle ones live in [`pool`].
    pub connector: Arc<Connector>,
    /// The peer's reuse hash: the pool key.
    pool_key: u64,
    /// Idle connections kept per thread (`server.upstream_keepalive_pool_size`).
    pool_max: usize,
    /// Attempt counters for answered requests, resolved on first use.
    pub attempts: AttemptSeries,
    /// The resolved address (plain TCP connects here directly).
    addr: SocketAddr,
    /// Lower-case names of this upstream's config headers: the client's
    /// headers of those names are not sent.
    pub sets: Vec<Box<[u8]>>,
    /// Guarded client headers this upstream accepts (`forward_headers`), less
    /// those the gateway sets for it (config headers, `Authorization` from
    /// `api_key`). Both lists empty: the client's headers go as prepared once.
    pub allows: Vec<Box<[u8]>>,
}

impl Upstream {
    pub fn new(
        cfg: UpstreamConfig,
        connector: Arc<Connector>,
        health: Arc<Health>,
        pool_max: usize,
    ) -> Result<Self, Problem> {
        let problem = |key: &str, message: String| Problem {
            path: Some(format!("upstreams.{}.{key}", cfg.name)),
            message,
        };
        let addr = resolve(&cfg.host, cfg.port)
            .ok_or_else(|| problem("base_url", format!("cannot resolve host `{}`", cfg.host)))?;
        let mut peer = HttpPeer::new(addr, cfg.tls, cfg.host.clone());
        peer.options.connection_timeout = Some(cfg.connect_timeout);
        peer.options.total_connection_timeout = Some(cfg.connect_timeout);
        peer.options.idle_timeout = Some(POOL_IDLE);
        let default_port = if cfg.tls { 443 } else { 80 };
        let host = if cfg.host.contains(':') {
            format!("[{}]", cfg.host)
        } else {
            cfg.host.clone()
        };
        let authority = if cfg.port == default_port {
            host
        } else {
            format!("{host}:{}", cfg.port)
        };
        let authority = HeaderValue::from_str(&authority)
            .map_err(|_| problem("base_url", "bad host".into()))?;
        let (key_header, key_prefix) = cfg.format.key_header();
        let auth = match &cfg.api_key {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("{key_prefix}{}", k.expose()))
                    .map_err(|_| problem("api_key", "not a valid header value".into()))?;
                v.set_sensitive(true);
                Some((key_header, v))
            }
            None => None,
        };
        let mut sets: Vec<Box<[u8]>> = cfg
            .headers
            .iter()
            .map(|(n, _)| n.as_str().as_bytes().into())
            .collect();
        if cfg.format == Format::Anthropic
            && !cfg.headers.iter().any(|(n, _)| n == ANTHROPIC_VERSION.0)
        {
            // Ours, not the client's: the translation is written for this version.
            sets.push(ANTHROPIC_VERSION.0.as_bytes().into());
        }
        let allows = cfg
            .forward_headers
            .iter()
            .filter(|n| !(auth.is_some() && n.as_str() == key_header))
            .filter(|n| !cfg.headers.iter().any(|(h, _)| h == *n))
            .map(|n| n.as_str().as_bytes().into())
            .collect();
        Ok(Upstream {
            sets,
            allows,
            label: Arc::from(cfg.name.as_str()),
            cfg,
            pool_key: peer.reuse_hash(),
            peer,
            authority,
            auth,
            health,
            connector,
            pool_max,
            attempts: AttemptSeries::default(),
            addr,
        })
    }

    /// The start of every request head sent to this upstream — requests and
    /// health checks alike: the request line for `<base_path><rest>` and the
    /// headers its config sets (Host, Authorization from `api_key`,
    /// `headers:`). The caller adds its own headers and the blank line;
    /// `extra`: bytes it will add, reserved now.
    pub fn head_start(&self, method: &[u8], rest: &[u8], extra: usize) -> bytes::BytesMut {
        let mut head = bytes::BytesMut::with_capacity(256 + rest.len() + extra);
        head.extend_from_slice(method);
        head.extend_from_slice(b" ");
        head.extend_from_slice(self.cfg.base_path.as_bytes());
        head.extend_from_slice(rest);
        head.extend_from_slice(b" HTTP/1.1\r\n");
        crate::framing::put_header(&mut head, b"host", self.authority.as_bytes());
        if let Some((k, v)) = &self.auth {
            crate::framing::put_header(&mut head, k.as_bytes(), v.as_bytes());
        }
        for (k, v) in &self.cfg.headers {
            crate::framing::put_header(&mut head, k.as_str().as_bytes(), v.as_bytes());
        }
        if self.cfg.format == Format::Anthropic
            && !self
                .cfg
                .headers
                .iter()
                .any(|(n, _)| n == ANTHROPIC_VERSION.0)
        {
            crate::framing::put_header(
                &mut head,
                ANTHROPIC_VERSION.0.as_bytes(),
                ANTHROPIC_VERSION.1.as_bytes(),
            );
        }
        head
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// A new connection (the caller bounds the wait): plain TCP opened here,
    /// TLS through Pingora's connector (SNI = host, verification as
    /// configured).
    pub async fn open(&self) -> Result<Conn, ConnectError> {
        if !self.cfg.tls {
            let tcp = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| ConnectError::from_io(&e))?;
            // As Pingora's connector does: requests are written whole.
            let _ = tcp.set_nodelay(true);
            return Ok(Conn::new(Io::Tcp(tcp)));
        }
        // Boxed: connecting with TLS is a large future, and inline it would
        // make every attempt's future that large.
        match Box::pin(self.connector.new_stream(&self.peer)).await {
            Ok(s) => Ok(Conn::new(Io::Pingora(s))),
            Err(e) => {
                use pingora::ErrorType as E;
                let name = e.etype().as_str().to_string();
                Err(match e.etype() {
                    E::ConnectTimedout => ConnectError::Timeout,
                    E::TLSHandshakeFailure
                    | E::TLSHandshakeTimedout
                    | E::InvalidCert
                    | E::HandshakeError
                    | E::TLSWantX509Lookup => ConnectError::Tls(name),
                    _ => ConnectError::Failed(name),
                })
            }
        }
    }

    /// An idle connection of this thread's pool, checked to be still open.
    pub fn pooled(&self) -> Option<Conn> {
        pool::take(self.pool_key)
    }

    /// Return a connection after an exchange; kept only if it can carry another.
    pub fn keep(&self, conn: Conn) {
        if let Some(c) = conn.into_reusable() {
            pool::give(self.pool_key, c, self.pool_max);
        }
    }

    /// Why this upstream gets no requests at all, if it does not: `disabled`
    /// in the config, or `drained` through the admin API.
    pub fn out_of_rotation(&self) -> Option<&'static str> {
        if !self.cfg.enabled {
            Some("disabled")
        } else if self.health.is_drained() {
            Some("drained")
        } else {
            None
        }
    }

    /// One word for what the admin API and the status page show.
    pub fn state_name(&self, now: u64) -> &'static str {
        let b = &self.health.breaker;
        if let Some(why) = self.out_of_rotation() {
            why
        } else if !self.health.is_healthy() {
            "unhealthy"
        } else if b.cooldown_left(now) > 0 {
            "cooling_down"
        } else {
            match b.state(now) {
                circuit::State::Closed => "healthy",
                circuit::State::Open => "circuit_open",
                circuit::State::HalfOpen => "half_open",
            }
        }
    }

    /// A status that fails over: in `retry_on`, or the format's overload answer.
    pub fn retries_on(&self, status: u16) -> bool {
        self.cfg.retry_on.contains(&status) || self.cfg.format.always_retries(status)
    }
}

fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    (host, port).to_socket_addrs().ok()?.next()
}
