//! `ProxyHttp` for the AI routes. Phase chart (see docs/phases.md):
//!
//! ```text
//! request_filter  -> handler::handle: endpoint, auth, body, model, admission,
//!                    attempt::run (attempt loop + commit), always answers itself
//! upstream_peer   -> never reached (request_filter always answers)
//! fail_to_proxy   -> only for errors after our own answer started: write nothing
//! logging         -> one access-log line
//! ```
//! Pingora's native upstream phases are bypassed on purpose: its retry buffer
//! holds 64 KiB, so a larger body read in `request_filter` could not be re-sent
//! (design.md section 7).

mod attempt;
mod ctx;
mod handler;
mod respond;
pub mod rewrite;
pub mod sse;
pub mod usage;

pub use ctx::RequestCtx;

use crate::admin::access_log::AccessLog;
use crate::admin::metrics::{status_class, Metrics};
use crate::state::SharedRuntime;
use async_trait::async_trait;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::sync::Arc;

pub struct Gateway {
    pub runtime: SharedRuntime,
    pub metrics: Arc<Metrics>,
    pub access_log: Arc<AccessLog>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.runtime.load_full(), self.metrics.clone())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.metrics.in_flight.inc();
        ctx.counted = true;
        ctx.request_id = ctx::request_id(
            session
                .req_header()
                .headers
                .get("x-request-id")
                .map(|v| v.as_bytes()),
        );
        match handler::handle(session, ctx).await? {
            handler::Done::Answered => Ok(true),
            handler::Done::Cut => Error::e_explain(ErrorType::ConnectionClosed, "response cut"),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Error::e_explain(
            ErrorType::InternalError,
            "request_filter answers every request",
        )
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        // Our handler answers everything it can; what reaches here is a broken
        // client connection or a deliberately cut response: nothing more to write.
        let error_code = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        if error_code == 0 && !ctx.client_gone && ctx.cut.is_none() {
            log::debug!("{} request failed: {}", ctx.request_id, e.etype().as_str());
        }
        FailToProxy {
            error_code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _e: &Error) -> bool {
        ctx.client_gone || ctx.cut.is_some()
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        if !ctx.counted {
            return;
        }
        let m = &ctx.metrics;
        m.in_flight.dec();
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let rt = &ctx.runtime;
        // Labels stay bounded: only configured model and upstream names.
        let model = ctx
            .model
            .as_deref()
            .filter(|m| rt.models.contains_key(*m))
            .unwrap_or("-");
        let upstream = ctx
            .served_by
            .and_then(|i| rt.upstreams.get(i))
            .map_or("-", |u| u.name());
        m.requests
            .with_label_values(&[model, upstream, status_class(status)])
            .inc();
        let elapsed = ctx.started.elapsed();
        m.duration
            .with_label_values(&[model])
            .observe(elapsed.as_secs_f64());
        if let Some(t) = ctx.ttfb {
            m.ttfb.with_label_values(&[model]).observe(t.as_secs_f64());
        }
        if let Some((prompt, completion)) = ctx.usage {
            m.tokens
                .with_label_values(&[upstream, model, "prompt"])
                .inc_by(prompt);
            m.tokens
                .with_label_values(&[upstream, model, "completion"])
                .inc_by(completion);
        }
        if self.access_log.enabled() {
            self.access_log
                .write(access_line(session, ctx, status, elapsed));
        }
    }
}

/// One JSON access-log line. Names only: never a key, never a query string.
fn access_line(
    session: &Session,
    ctx: &RequestCtx,
    status: u16,
    elapsed: std::time::Duration,
) -> String {
    let attempts: Vec<String> = ctx
        .attempts
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                ctx.runtime
                    .upstreams
                    .get(a.upstream)
                    .map_or("?", |u| u.name()),
                a.outcome
            )
        })
        .collect();
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    serde_json::json!({
        "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "request_id": ctx.request_id,
        "key": ctx.key_name,
        "method": session.req_header().method.as_str(),
        "path": session.req_header().uri.path(),
        "model": ctx.model,
        "upstream": ctx.served_by.and_then(|i| ctx.runtime.upstreams.get(i)).map(|u| u.name()),
        "attempts": attempts,
        "status": status,
        "bytes": ctx.bytes_sent,
        "duration_ms": ms(elapsed),
        "ttfb_ms": ctx.ttfb.map(ms),
        "prompt_tokens": ctx.usage.map(|u| u.0),
        "completion_tokens": ctx.usage.map(|u| u.1),
        "client_gone": ctx.client_gone,
        "cut": ctx.cut,
    })
    .to_string()
}
