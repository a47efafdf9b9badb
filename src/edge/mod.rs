//! The edge listeners, served by Pingora's HTTP server (TLS, h2, h2c, and
//! cleartext when plain routes are configured): one `ProxyHttp` whose
//! phases stay thin. `request_filter` matches the route; a request for the
//! AI gateway is answered there by the exchange core through
//! [`session::SessionClient`]; a plain route goes on through Pingora's own
//! proxy phases to a backend picked by pingora-load-balancing
//! (`routes.rs`).

mod plain;
pub mod session;
mod strict;
pub mod tls;

use crate::proxy::Gateway;
use crate::routes::{Matched, PlainRoute};
use crate::state::Runtime;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub struct Edge {
    pub gateway: Gateway,
    /// This service's listeners terminate TLS.
    pub https: bool,
}

#[derive(Default)]
pub struct EdgeCtx {
    runtime: Option<Arc<Runtime>>,
    route: Option<Arc<PlainRoute>>,
    /// The exchange core answered (and logged) the request.
    ai: bool,
    tried: Vec<SocketAddr>,
    backend: Option<SocketAddr>,
    started: Option<Instant>,
    body_bytes: u64,
    upgrade: bool,
    /// The status the edge answered with itself (errors, redirects).
    answered: u16,
}

/// `Host` (or h2's `:authority`) without its port.
fn host_of(req: &RequestHeader) -> &str {
    let raw = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    match raw.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => raw.split(':').next().unwrap_or(""),
    }
}

impl Edge {
    async fn answer(
        session: &mut Session,
        ctx: &mut EdgeCtx,
        status: u16,
        message: &str,
        code: &str,
    ) -> Result<bool> {
        let (head, body) = plain::error(status, message, code);
        ctx.answered = status;
        session.write_response_header(Box::new(head), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(true)
    }

    /// `tls.redirect_http`: 308 to the same host and target on https.
    async fn redirect(session: &mut Session, ctx: &mut EdgeCtx, rt: &Runtime) -> Result<bool> {
        let req = session.req_header();
        let port = rt
            .config
            .tls
            .as_ref()
            .and_then(|t| t.listen.first())
            .and_then(|l| l.rsplit(':').next())
            .filter(|p| *p != "443")
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{}{port}{target}", host_of(req));
        let mut head = ResponseHeader::build(308, Some(2))?;
        head.insert_header(http::header::LOCATION, location)?;
        head.insert_header(http::header::CONTENT_LENGTH, 0)?;
        ctx.answered = 308;
        session.write_response_header(Box::new(head), true).await?;
        Ok(true)
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = EdgeCtx;

    fn new_ctx(&self) -> EdgeCtx {
        EdgeCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut EdgeCtx) -> Result<bool> {
        let rt = self.gateway.runtime.load_full();
        ctx.started = Some(Instant::now());
        let path = session.req_header().uri.path().to_string();
        let redirect = !self.https
            && path != "/health"
            && rt.config.tls.as_ref().is_some_and(|t| t.redirect_http);
        if redirect {
            return Self::redirect(session, ctx, &rt).await;
        }
        if let Err(e) = strict::check(session, rt.config.limits.max_header_bytes) {
            // Answered as the fast front end answers a refused head.
            ctx.ai = true;
            let mut client = session::SessionClient::new(session);
            self.gateway.refused(&mut client, e).await;
            return Ok(true);
        }
        let matched = match rt.routes.find(host_of(session.req_header()), &path) {
            Matched::Ai => None,
            Matched::Plain(r) => Some(r.clone()),
        };
        ctx.runtime = Some(rt);
        let Some(route) = matched else {
            ctx.ai = true;
            let Some(req) = session::request_of(session) else {
                return Self::answer(
                    session,
                    ctx,
                    431,
                    "request head too large",
                    "headers_too_large",
                )
                .await;
            };
            let mut client = session::SessionClient::new(session);
            if self.gateway.serve(&mut client, &req).await {
                return Ok(true);
            }
            // The client left, or a committed answer was cut: end the
            // connection (or h2 stream) without a clean end of body.
            return Error::e_explain(ConnectionClosed, "AI answer ended early");
        };
        let declared = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| crate::framing::parse_length(v.as_bytes()));
        ctx.upgrade = session.is_upgrade_req();
        let max = route.cfg.max_body_bytes;
        ctx.route = Some(route);
        if declared.is_some_and(|n| n > max) {
            session.set_keepalive(None);
            return Self::answer(
                session,
                ctx,
                413,
                &format!("request body larger than {max} bytes"),
                "body_too_large",
            )
            .await;
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut EdgeCtx,
    ) -> Result<()> {
        if let (Some(b), Some(r)) = (body.as_ref(), ctx.route.as_ref()) {
            ctx.body_bytes += b.len() as u64;
            if ctx.body_bytes > r.cfg.max_body_bytes {
                return Error::e_explain(HTTPStatus(413), "request body over max_body_bytes");
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut EdgeCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(route) = ctx.route.clone() else {
            return Error::e_explain(InternalError, "no route");
        };
        let Some(addr) = route.tiers.pick(&ctx.tried) else {
            return Error::e_explain(HTTPStatus(502), "no backend of the route is up");
        };
        ctx.tried.push(addr);
        ctx.backend = Some(addr);
        Ok(Box::new(plain::peer(&route, addr)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut EdgeCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing was sent: the next backend may take the request.
        let more = ctx
            .route
            .as_ref()
            .is_some_and(|r| r.tiers.pick(&ctx.tried).is_some());
        e.set_retry(more);
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut EdgeCtx,
    ) -> Result<()> {
        let (Some(route), Some(backend)) = (ctx.route.as_ref(), ctx.backend) else {
            return Ok(());
        };
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        plain::upstream_request(
            upstream_request,
            route,
            backend,
            client,
            self.https,
            ctx.upgrade,
        );
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut EdgeCtx,
    ) -> Result<()> {
        plain::upstream_response(upstream_response, ctx.upgrade);
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut EdgeCtx,
    ) -> FailToProxy {
        if ctx.ai {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let (status, message, code) = match e.etype() {
            HTTPStatus(413) => (
                413,
                "request body over max_body_bytes".to_string(),
                "body_too_large",
            ),
            HTTPStatus(s) if *s >= 400 => (
                *s,
                "no backend of this route could be reached".to_string(),
                "bad_gateway",
            ),
            ConnectTimedout | ReadTimedout | WriteTimedout => (
                504,
                "the backend did not answer in time".to_string(),
                "gateway_timeout",
            ),
            _ => match e.esource() {
                ErrorSource::Downstream => (0, String::new(), ""),
                _ => (
                    502,
                    "no backend of this route could be reached".to_string(),
                    "bad_gateway",
                ),
            },
        };
        let already = session.response_written().is_some();
        if status > 0 && !already {
            ctx.answered = status;
            let (head, body) = plain::error(status, &message, code);
            let _ = session.write_response_header(Box::new(head), false).await;
            let _ = session.write_response_body(Some(body), true).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// A client that leaves or sends garbage is not the gateway's error:
    /// Pingora would log each at error level.
    fn suppress_error_log(&self, _session: &Session, _ctx: &EdgeCtx, e: &Error) -> bool {
        matches!(e.esource(), ErrorSource::Downstream)
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut EdgeCtx) {
        if ctx.ai {
            return;
        }
        let status = session
            .response_written()
            .map_or(ctx.answered, |r| r.status.as_u16());
        let elapsed = ctx.started.map(|s| s.elapsed()).unwrap_or_default();
        let m = &self.gateway.metrics;
        let label = ctx.route.as_ref().map_or("-", |r| r.label.as_str());
        let backend = match (ctx.route.as_ref(), ctx.backend) {
            (Some(r), Some(b)) => r.backend_label(b),
            _ => "-",
        };
        m.route_requests
            .with_label_values(&[label, backend, crate::telemetry::status_class(status)])
            .inc();
        m.route_duration
            .with_label_values(&[label])
            .observe(elapsed.as_secs_f64());
        if self.gateway.access_log.enabled() {
            let req = session.req_header();
            let line = serde_json::json!({
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "route": label,
                "method": req.method.as_str(),
                "host": host_of(req),
                "path": req.uri.path(),
                "backend": (backend != "-").then_some(backend),
                "attempts": ctx.tried.len(),
                "status": status,
                "bytes": session.body_bytes_sent(),
                "duration_ms": (elapsed.as_micros() as f64) / 1000.0,
                "protocol": if session.as_downstream().is_http2() { "h2" } else { "http/1.1" },
                "tls": self.https,
            });
            self.gateway.access_log.write(line.to_string());
        }
    }
}
